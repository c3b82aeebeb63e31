"""`hatui lab up|down|status|fault|exec`: the local lab in network namespaces (needs root)."""

from __future__ import annotations

import argparse
import json
import sys

from hatui.commands import add_lab_option, examples
from hatui.config import load_lab
from hatui.errors import EXIT_OK, UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lab", help="build, inspect, break and remove the local lab (root)",
        description="The local lab: a real Heartbeat cluster in network namespaces on this machine,\n"
                    "described by lab.toml (one lab per machine; up, down, fault and exec need root).",
        epilog=examples("sudo hatui lab up", "hatui lab status", "sudo hatui lab fault master crash",
                        "sudo hatui lab down"))
    add_lab_option(parser)
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True

    p = sub.add_parser("up", help="build the lab and wait until each native pair is stable",
                       description="Build the lab (namespaces, links, sshd, Heartbeat, the service, the Proxmox\n"
                                   "emulator) and wait until each native pair is stable. A lab that is up already\n"
                                   "is checked and repaired where needed.",
                       epilog=examples("sudo hatui lab up", "sudo hatui lab up --lab labs/small.toml"))
    add_lab_option(p)
    p.set_defaults(func=run_up)

    p = sub.add_parser("down", help="remove everything the lab made (namespaces, mounts, routes, processes)",
                       description="Remove everything the lab recorded in its state directory: namespaces,\n"
                                   "mounts, routes and processes. Harmless when there is no lab.",
                       epilog=examples("sudo hatui lab down"))
    add_lab_option(p)
    p.set_defaults(func=run_down)

    p = sub.add_parser("status", help="which hosts run, who holds each VIP, where the state is",
                       description="The lab's phase, hosts, addresses, heartbeat and who holds each VIP\n"
                                   "(live checks need root; without it only the recorded state).",
                       epilog=examples("hatui lab status", "sudo hatui lab status --json"))
    add_lab_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_status)

    from hatui.lab.faults import ACTIONS
    p = sub.add_parser("fault", help="inject a fault: " + ", ".join(ACTIONS),
                       description="Inject a fault into a lab host:\n"
                                   "  stop-heartbeat / start-heartbeat   the init script inside the host\n"
                                   "  crash                              NICs down, the host's processes killed\n"
                                   "  restore                            boot it again (sshd, heartbeat)\n"
                                   "  cut-link / heal-link NETWORK       unplug / plug the host's NIC on NETWORK",
                       epilog=examples("sudo hatui lab fault master stop-heartbeat",
                                       "sudo hatui lab fault slave cut-link replication",
                                       "sudo hatui lab fault master restore"))
    add_lab_option(p)
    p.add_argument("host", help="host name from lab.toml")
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("network", nargs="?", help="network name for cut-link / heal-link (e.g. replication)")
    p.set_defaults(func=run_fault)

    p = sub.add_parser("exec", help="run a command inside a lab host",
                       description="Run a command inside a lab host's namespaces (a shell without one).",
                       epilog=examples("sudo hatui lab exec master", "sudo hatui lab exec slave -- cl_status rscstatus"))
    add_lab_option(p)
    p.add_argument("host")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="command (default: a shell)")
    p.set_defaults(func=run_exec)


def _lab(args: argparse.Namespace):
    return load_lab(args.lab)


def run_up(args: argparse.Namespace) -> int:
    from hatui.lab import build as ops

    lab = _lab(args)
    report = ops.up(lab, out=lambda line: print(line, flush=True))
    for note in report.notes:
        if report.already_up:
            print(f"hatui lab up: {note}")
    if not report.already_up:
        print(f"lab up in {report.seconds:.1f} s" + (" (repaired)" if report.repaired else "")
              + f"; run commands inside a host with {report.state_dir}/bin/node HOST CMD")
    return EXIT_OK


def run_down(args: argparse.Namespace) -> int:
    from hatui.lab import build as ops

    lab = _lab(args)
    report = ops.down(lab)
    if report.nothing_to_do:
        print(f"hatui lab down: no lab recorded in {report.state_dir}; nothing to do")
        return EXIT_OK
    for line in report.removed:
        print(f"  removed    {line}")
    for line in report.problems:
        print(f"  problem    {line}", file=sys.stderr)
    print(f"lab down in {report.seconds:.2f} s")
    return EXIT_OK if not report.problems else 2


def run_status(args: argparse.Namespace) -> int:
    from hatui.lab import build as ops

    lab = _lab(args)
    st = ops.status(lab)
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return EXIT_OK
    print(f"lab '{st['lab']}' ({st['file']}): {st['phase']}   state {st['state_dir']}")
    if st["phase"] == "down":
        return EXIT_OK
    if not st["live"]:
        print("  (not root: live checks skipped)")
    if st.get("host_leg"):
        leg = st["host_leg"]
        print(f"  root leg   {leg['name']} {leg['address']} on {leg['network']};  route {st['route']}")
    print(f"  ssh        key {st['ssh']['key_file']}  known_hosts {st['ssh']['known_hosts']}")
    if st.get("proxmox"):  # hatui.lab.vms
        px = st["proxmox"]
        print(f"  proxmox    emulator {'running' if px['running'] else 'NOT running'} (PID {px['pid']}) on {px['url']}, "
              f"nodes {', '.join(px['nodes'] or [])}; VMs: hatui vms list")
        for host, limits in sorted((px.get("limits") or {}).items()):
            print(f"             {host}: {limits}")
    for name, h in st["hosts"].items():
        nics = " ".join(f"{n}={i['address']}" + (f"({i['state']})" if i.get("state") not in (None, "UP") else "")
                        for n, i in h["nics"].items())
        extra = f"  heartbeat {h['heartbeat']}" if "heartbeat" in h else ""
        print(f"  {name:<8} {'running' if h['running'] else 'off':<8} {h['netns']:<14} {nics}{extra}")
    for name, p in st["pairs"].items():
        holders = ", ".join(p.get("holders", [])) or "nobody"
        served = p.get("served_by") or "nobody"
        rs = ", ".join(f"{m} {r or 'stopped'}" for m, r in p.get("rscstatus", {}).items())
        print(f"  pair {name:<6} VIP {p['vip']} held by {holders}, served by {served}" + (f"; rscstatus {rs}" if rs else ""))
        if p.get("left_out"):
            print(f"             left out of the resource group: {' '.join(p['left_out'])} (no DRBD stand-in)")
    return EXIT_OK


def run_fault(args: argparse.Namespace) -> int:
    from hatui.lab import faults

    lab = _lab(args)
    result = faults.inject(lab, args.host, args.action, args.network)
    print(str(result))
    return EXIT_OK


def run_exec(args: argparse.Namespace) -> int:
    import os

    from hatui.lab.hosts import host_command
    from hatui.lab.preflight import require_root

    lab = _lab(args)
    require_root("hatui lab exec")
    if args.host not in lab.hosts:
        raise UsageError(f"no host named {args.host!r} in {lab.path}")
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else list(args.cmd)
    argv = host_command(lab, args.host) + (cmd or ["/bin/bash"])
    from hatui.lab.netns import CLEAN_ENV

    os.execvpe(argv[0], argv, {**CLEAN_ENV, "TERM": os.environ.get("TERM", "xterm")})
    return EXIT_OK  # pragma: no cover

"""`hatui vms ...`: list, create, start/stop and snapshot the lab's Proxmox VMs.

Until the lab model is wired in, the API comes from flags or the environment:

    --endpoint / HATUI_PVE_ENDPOINT          https://pve1.lab:8006
    --token-id / HATUI_PVE_TOKEN_ID          hatui@pve!tui
    --token-secret-file / HATUI_PVE_TOKEN_SECRET_FILE, else env HATUI_PVE_TOKEN_SECRET
    --ca-file / HATUI_PVE_CA_FILE, --fingerprint / HATUI_PVE_FINGERPRINT, --insecure
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from hatui.errors import EXIT_OK, UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("vms", help="list, create, start/stop and snapshot the Proxmox VMs")
    conn = parser.add_argument_group("Proxmox API (flags override the HATUI_PVE_* environment)")
    conn.add_argument("--endpoint", default=os.environ.get("HATUI_PVE_ENDPOINT"), help="https://HOST:8006")
    conn.add_argument("--token-id", default=os.environ.get("HATUI_PVE_TOKEN_ID"), help="USER@REALM!TOKENID")
    conn.add_argument("--token-secret-file", default=os.environ.get("HATUI_PVE_TOKEN_SECRET_FILE"), metavar="FILE",
                      help="file holding the token secret (else $HATUI_PVE_TOKEN_SECRET)")  # fmt: skip
    conn.add_argument("--ca-file", default=os.environ.get("HATUI_PVE_CA_FILE"), metavar="FILE", help="CA to verify the server with")
    conn.add_argument("--fingerprint", default=os.environ.get("HATUI_PVE_FINGERPRINT"), help="pinned SHA-256 of the server certificate")
    conn.add_argument("--insecure", action="store_true", help="do NOT verify TLS (prints a warning)")
    conn.add_argument("--timeout", type=float, default=15.0, help="seconds per API request [15]")
    actions = parser.add_subparsers(dest="vms_action", metavar="ACTION", required=True)

    p = actions.add_parser("list", help="VMs with state, node, uptime, CPU, memory and snapshots")
    p.add_argument("--no-snapshots", action="store_true", help="skip the per-VM snapshot lookups")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = actions.add_parser("create", help="create a VM (an identical existing VM is left alone; a different one is reported)")
    p.add_argument("--vmid", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--memory", type=int, default=512, metavar="MB")
    p.add_argument("--disk", type=int, action="append", metavar="GB", help="disk size, repeatable [50 and 10]")
    p.add_argument("--nic", action="append", metavar="BRIDGE", help="bridge of each NIC, repeatable [vmbr0 and vmbr1]")
    p.add_argument("--storage", default="local-lvm")

    for name, text in (("start", "start VMs"), ("stop", "stop VMs (hard)"), ("shutdown", "shut VMs down (ACPI)")):
        p = actions.add_parser(name, help=text)
        _targets(p)
    p = actions.add_parser("snapshot", help="snapshot VMs")
    p.add_argument("snapname")
    p.add_argument("--vmstate", action="store_true", help="include RAM (running VMs)")
    _targets(p)
    p = actions.add_parser("rollback", help="roll VMs back to a snapshot")
    p.add_argument("snapname")
    p.add_argument("--start", action="store_true", help="start the VM after a rollback without RAM")
    _targets(p)
    p = actions.add_parser("delete-snapshot", help="delete a snapshot of VMs")
    p.add_argument("snapname")
    _targets(p)
    parser.set_defaults(func=run)


def _targets(p: argparse.ArgumentParser) -> None:
    p.add_argument("vms", nargs="*", metavar="VM", help="VMID or name")
    p.add_argument("--all", action="store_true", help="every VM in the cluster")


def _client(args: argparse.Namespace):
    from hatui.proxmox import DEFAULT_SECRET_ENV, PveClient, PveSettings

    if not args.endpoint or not args.token_id:
        raise UsageError("vms: give --endpoint and --token-id (or HATUI_PVE_ENDPOINT and HATUI_PVE_TOKEN_ID)")
    settings = PveSettings.load(
        args.endpoint,
        args.token_id,
        secret_env=DEFAULT_SECRET_ENV,
        secret_file=args.token_secret_file,
        verify_tls=not args.insecure,
        ca_file=args.ca_file,
        fingerprint=args.fingerprint,
        timeout=args.timeout,
    )
    return PveClient(settings)


def run(args: argparse.Namespace) -> int:
    client = _client(args)
    action = args.vms_action
    if action == "list":
        return _list(client, args)
    if action == "create":
        from hatui.proxmox import VmSpec

        spec = VmSpec(args.name, args.vmid, args.node, cores=args.cores, memory_mb=args.memory,
                      disks_gb=args.disk or [50, 10], nics=args.nic or ["vmbr0", "vmbr1"], storage=args.storage)  # fmt: skip
        result = client.create_vm(spec)
        state = "created" if result.created else "already exists, matches the spec"
        print(f"{spec.name} ({spec.vmid}) on {result.node}: {state}")
        for note in result.notes:
            print(f"  note: {note}")
        return EXIT_OK
    targets = _resolve(client, args)
    for r in targets:
        label = f"{r.get('name', '?')} ({r['vmid']}) on {r['node']}"
        if action == "start":
            res = client.start(int(r["vmid"]))
        elif action == "stop":
            res = client.stop(int(r["vmid"]))
        elif action == "shutdown":
            res = client.shutdown(int(r["vmid"]))
        elif action == "snapshot":
            res = client.snapshot(int(r["vmid"]), args.snapname, vmstate=args.vmstate)
        elif action == "rollback":
            res = client.rollback(int(r["vmid"]), args.snapname, start=args.start)
        elif action == "delete-snapshot":
            res = client.delete_snapshot(int(r["vmid"]), args.snapname)
        else:  # pragma: no cover - argparse restricts the choices
            raise UsageError(f"vms: unknown action {action}")
        print(f"{label}: {res.type} {res.exitstatus} ({res.elapsed:.1f}s)")
    return EXIT_OK


def _resolve(client, args: argparse.Namespace) -> list[dict]:
    if args.all:
        return sorted(client.resources(), key=lambda r: int(r["vmid"]))
    if not args.vms:
        raise UsageError(f"vms {args.vms_action}: name the VMs (VMID or name) or pass --all")
    return [client.locate(int(v) if v.isdigit() else v) for v in args.vms]


def _list(client, args: argparse.Namespace) -> int:
    vms = client.list_vms(with_snapshots=not args.no_snapshots)
    if args.json:
        out = []
        for v in vms:
            d = {k: getattr(v, k) for k in ("vmid", "name", "node", "status", "uptime", "cpu", "cpus", "mem", "maxmem", "lock", "hastate", "parent", "snapshot_error")}
            d["snapshots"] = None if v.snapshots is None else [s.__dict__ for s in v.snapshots]
            out.append(d)
        json.dump(out, sys.stdout, indent=2)
        print()
        return EXIT_OK
    if not vms:
        print("no VMs")
        return EXIT_OK
    print(f"{'VMID':>5}  {'NAME':<12} {'NODE':<8} {'STATE':<8} {'UPTIME':>8} {'CPU':>6} {'MEM':>13}  SNAPSHOTS")
    for v in vms:
        mem = f"{v.mem // 1048576}/{v.maxmem // 1048576}M"
        if v.snapshots is None:
            snaps = f"? ({v.snapshot_error})" if v.snapshot_error else "-"
        else:
            snaps = ", ".join(s.name + ("*" if s.name == v.parent else "") for s in v.snapshots) or "-"
        lock = f" [{v.lock}]" if v.lock else ""
        print(f"{v.vmid:>5}  {v.name:<12} {v.node:<8} {v.status + lock:<8} {_uptime(v.uptime):>8} {v.cpu * 100:>5.1f}% {mem:>13}  {snaps}")
    return EXIT_OK


def _uptime(seconds: int) -> str:
    if not seconds:
        return "-"
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


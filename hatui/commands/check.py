"""`hatui check`: validate lab.toml and print a one-screen summary."""

from __future__ import annotations

import argparse

from hatui.commands import add_lab_option
from hatui.config import ConfigError, Lab, load_lab
from hatui.errors import EXIT_OK, EXIT_USAGE


def register(subparsers) -> None:
    parser = subparsers.add_parser("check", help="validate the lab description and summarise it")
    add_lab_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        lab = load_lab(args.lab)
    except ConfigError as exc:
        import sys

        for line in exc.lines():
            print(line, file=sys.stderr)
        print(f"hatui: {len(exc.problems)} problem(s) in {exc.file}", file=sys.stderr)
        return EXIT_USAGE
    print(summary(lab))
    return EXIT_OK


def summary(lab: Lab) -> str:
    kind = "local lab (built by `hatui lab up`)" if lab.local else "real hosts"
    lines = [f"{lab.path}: OK  lab '{lab.name}', {kind}"]
    if lab.address_range:
        lines.append(f"  addresses   {lab.address_range}  state {lab.state_dir}")
    nets = ", ".join(f"{n.name} {n.cidr}" for n in lab.networks.values())
    lines.append(f"  networks    {nets}")
    lines.append(f"  hosts       {len(lab.hosts)}:")
    for host in lab.hosts.values():
        nics = " ".join(f"{nic.name}={nic.address}" for nic in host.nics.values())
        vm = f"  vm {host.vm.vmid} on {host.vm.node} ({host.vm.cores} core, {host.vm.memory_mb} MB, " \
             f"{'+'.join(str(d) for d in host.vm.disks_gb)} GB)" if host.vm else ""
        lines.append(f"    {host.name:<8} {host.stack:<7} {host.role:<6} {nics}{vm}")
    lines.append(f"  pairs       {len(lab.pairs)}:")
    for pair in lab.pairs.values():
        hb = pair.heartbeat
        lines.append(f"    {pair.name:<8} {pair.stack:<7} {pair.master} -> {pair.slave}  VIP {pair.vip}  "
                     f"keepalive {hb.keepalive_ms} ms, deadtime {hb.deadtime_ms} ms, "
                     f"auto_failback {'on' if pair.auto_failback else 'off'}")
        lines.append(f"             group: {' '.join(pair.resources)}")
    if lab.proxmox:
        px = lab.proxmox
        tls = "verified" if px.verify_tls else "NOT VERIFIED"
        secret = f"env {px.token_secret_env}" if px.token_secret_env else f"file {px.token_secret_file}"
        lines.append(f"  proxmox     {px.endpoint}  nodes {', '.join(px.nodes)}  token {px.token_id} ({secret}), TLS {tls}")
    else:
        lines.append("  proxmox     not configured")
    ld, dr = lab.load, lab.drill
    rates = ", ".join(f"{r:g}" for r in ld.rates)
    lines.append(f"  load        {ld.connections} connections at {rates} conn/s x {ld.repetitions}, "
                 f"{ld.uri}, timeout {ld.timeout_s:g} s, probe every {ld.probe_interval_ms:g} ms, engine {ld.engine}")
    lines.append(f"  drill       stacks {', '.join(dr.stacks)}; {dr.fault} on the {dr.fault_target} at {dr.fault_at}, "
                 f"recover at {dr.recover_at}")
    for phase in ("failover", "failback"):
        t = getattr(lab.thresholds, phase)
        down = f"downtime <= {t.max_downtime_ms:g} ms" if t.max_downtime_ms is not None else "no downtime limit"
        avail = f"availability >= {t.min_availability_pct:g} %" if t.min_availability_pct is not None else "no availability limit"
        lines.append(f"  {phase:<11} {down}, {avail}")
    return "\n".join(lines)

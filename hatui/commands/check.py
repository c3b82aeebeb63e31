"""`hatui check`: validate lab.toml and print a one-screen summary (or JSON with --json)."""

from __future__ import annotations

import argparse

from hatui.commands import add_json_option, add_lab_option, examples, print_json
from hatui.config import Lab, load_lab
from hatui.drill.plan import DrillPlan, make_plan, refuse_drill_engine
from hatui.errors import EXIT_OK, HatuiError

SCHEMA = "hatui.check/1"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help="validate the lab description and summarise it",
        description="Validate the lab description and print a one-screen summary: hosts, pairs, Proxmox,\n"
                    "load and drill settings, thresholds, and the drill plan the defaults give (runs and\n"
                    "expected duration). A broken file gives one line per problem (file:line, key path,\n"
                    "expected vs found) and exit code 2.",
        epilog=examples("hatui check", "hatui check --lab labs/rack2.toml --json"))
    add_lab_option(parser)
    add_json_option(parser, SCHEMA)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    lab = load_lab(args.lab)  # a ConfigError is printed by cli.main (as JSON under --json)
    refuse_drill_engine(lab)  # a valid file, but no drill could honour its engine
    plan, plan_error = _default_plan(lab)
    if args.json:
        print_json(as_json(lab, plan, plan_error))
    else:
        print(summary(lab, plan, plan_error))
    return EXIT_OK


def _default_plan(lab: Lab) -> tuple[DrillPlan | None, str | None]:
    """The plan `hatui export` runs without overrides, or why there is none."""
    try:
        return make_plan(lab), None
    except HatuiError as exc:
        return None, str(exc)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def about(seconds: float) -> str:
    """A rough duration for people: '45 s', '12 min', '1 h 27 min'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def plan_line(plan: DrillPlan | None, plan_error: str | None) -> str:
    """Runs and duration: load plus settling, as the export's ETA counts them."""
    if plan is None:
        return f"none with these defaults: {plan_error}"
    return (f"{_count(len(plan.runs), 'run')} ({_count(len(plan.stacks), 'stack')} × {_count(len(plan.rates), 'rate')} × "
            f"{_count(plan.repetitions, 'repetition')}), about {about(plan.planned_seconds)}")


def as_json(lab: Lab, plan: DrillPlan | None, plan_error: str | None) -> dict:
    px = lab.proxmox
    return {
        "schema": SCHEMA, "ok": True, "file": str(lab.path), "lab": lab.name, "local": lab.local,
        "hosts": {h.name: {"stack": h.stack, "role": h.role, "address": str(h.address),
                           "nics": {n.name: str(n.address) for n in h.nics.values()},
                           "vm": {"vmid": h.vm.vmid, "node": h.vm.node} if h.vm else None}
                  for h in lab.hosts.values()},
        "pairs": {p.name: {"stack": p.stack, "master": p.master, "slave": p.slave, "vip": str(p.vip),
                           "resources": list(p.resources)} for p in lab.pairs.values()},
        "proxmox": {"endpoint": px.endpoint, "nodes": list(px.nodes), "token_id": px.token_id,
                    "verify_tls": px.verify_tls} if px else None,
        "plan": {**plan.info(), "planned_seconds": round(plan.planned_seconds, 1)} if plan else {"error": plan_error},
    }


def summary(lab: Lab, plan: DrillPlan | None, plan_error: str | None) -> str:
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
    lines.append(f"  plan        {plan_line(plan, plan_error)}")
    return "\n".join(lines)

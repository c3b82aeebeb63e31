"""`hatui status`: one reading of the cluster state, as a compact table or JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from hatui.collectors.cluster import SCHEMA, ClusterState
from hatui.collectors.severity import Severity
from hatui.commands import add_json_option, add_lab_option, examples
from hatui.config import load_lab
from hatui.core import Core
from hatui.errors import UsageError

MARK = {Severity.OK: "OK", Severity.WARN: "!", Severity.ALERT: "!!"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "status", help="show the cluster state (who holds the VIP, heartbeat, DRBD)",
        description="One reading of the cluster over SSH: who holds each VIP, whether the service answers,\n"
                    "heartbeat, resource status, DRBD, load and uptime of every node.",
        epilog=examples("hatui status", "hatui status --pair native --json"))
    add_lab_option(parser)
    add_json_option(parser, SCHEMA)
    parser.add_argument("--pair", action="append", metavar="NAME", help="only this pair (repeatable)")
    parser.add_argument("--stack", choices=["native", "virtual"], help="only the pairs of this stack")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    lab = load_lab(args.lab)
    pairs = list(lab.pairs.values())
    if args.pair:
        unknown = [p for p in args.pair if p not in lab.pairs]
        if unknown:
            raise UsageError(f"no pair named {', '.join(unknown)} in {lab.path} (pairs: {', '.join(lab.pairs)})")
        pairs = [lab.pairs[p] for p in args.pair]
    if args.stack:
        pairs = [p for p in pairs if p.stack == args.stack]
    state = asyncio.run(_collect(lab, [p.name for p in pairs]))
    if args.json:
        print(json.dumps(state.to_json(), indent=2))
    else:
        print(render(state))
    return 0


async def _collect(lab, pairs: list[str]) -> ClusterState:
    async with Core(lab) as core:
        return await core.poll(pairs)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def render(state: ClusterState) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.taken_at))
    out = [f"lab {state.lab}  {stamp}  ({state.duration_s:.2f} s)  {MARK[state.severity]}"]
    rows = [["", "PAIR", "STACK", "VIP", "HELD BY", "SERVICE", "WHY"]]
    for p in state.pairs.values():
        held = "+".join(p.vip_owners) or "nobody"
        if p.service is None:
            service = "-"
        elif p.service.ok:
            service = f"{p.service.status} by {p.service.served_by or '?'}"
        else:
            service = p.service.error or "failed"
        rows.append([MARK[p.severity], p.name, p.stack, p.vip, held, service, p.reason])
    out += _table(rows)
    out.append("")
    rows = [["", "NODE", "PAIR", "ROLE", "SSH", "HEARTBEAT", "RSC", "DRBD", "LOAD", "UP"]]
    for n in state.nodes.values():
        if not n.reachable:
            rows.append([MARK[n.severity], n.host, n.pair or "-", n.role, "--", f"unreachable: {n.error}", "", "", "", ""])
            continue
        drbd = "; ".join(_drbd_cell(r) for r in n.drbd) if n.drbd_available else "n/a"
        rows.append([MARK[n.severity], n.host, n.pair or "-", n.role, f"{n.latency_ms:.0f}ms", n.heartbeat,
                     n.rscstatus or "-", drbd or "none", f"{n.load1:.2f}" if n.load1 is not None else "-",
                     _duration(n.uptime_s)])
    out += _table(rows)
    out += _heartbeat_files(state)
    problems = [f"  {n.host}: {n.reason}" for n in state.nodes.values() if n.severity > Severity.OK and n.reachable]
    if problems:
        out += ["", "problems:"] + problems
    return "\n".join(out)


LOG_EVENTS_SHOWN = 3


def _heartbeat_files(state: ClusterState) -> list[str]:
    """ha.cf/haresources checks against lab.toml, then each node's latest Heartbeat log events."""
    checked = [n for n in state.nodes.values() if n.ha_config is not None]
    out = []
    if checked and not any(n.ha_config for n in checked):
        out += ["", f"heartbeat config: ha.cf and haresources match lab.toml on {', '.join(n.host for n in checked)}"]
    elif checked:
        out += ["", "heartbeat config:"]
        out += [f"  {MARK[f.severity]:2} {n.host}: {f.reason}" for n in checked for f in n.ha_config]
    logged = [n for n in state.nodes.values() if n.ha_log]
    if logged:
        out += ["", f"heartbeat log (last {LOG_EVENTS_SHOWN} events per node):"]
        out += _table([["", n.host, e.clock, e.message] for n in logged for e in n.ha_log[-LOG_EVENTS_SHOWN:]])
    return out


def _drbd_cell(resource) -> str:
    peers = ",".join(f"{p.name or 'peer'} {p.connection}/{p.disk}" + (f" {p.done:.1f}%" if p.done is not None else "")
                     for p in resource.peers)
    return f"{resource.name or resource.minor} {resource.role}/{resource.disk}" + (f" [{peers}]" if peers else "")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"

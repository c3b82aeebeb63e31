"""What the panes show, as plain rows: pure functions of the core's data (no Textual).

Each builder returns `TableRow`s (a stable key, a severity or None, and the cell texts); the
panes only add styling. Keeping this pure makes the formatting easy to test and reuse.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from hatui.collectors.severity import Severity
from hatui.ui import format as fmt


@dataclass
class TableRow:
    key: str
    severity: Severity | None
    cells: list[str]


@dataclass
class Note:
    """A line under a table: a problem or a resync in progress."""

    severity: Severity
    text: str


# --- nodes ---------------------------------------------------------------------------------

NODE_COLUMNS = [("", "sev"), ("host", "host"), ("stack", "stack"), ("role", "role"), ("ssh", "ssh"),
                ("heartbeat", "heartbeat"), ("holds VIP", "vip"), ("load", "load"), ("up", "up")]


def _stack(state, node, lab) -> str:
    pair = state.pairs.get(node.pair) if node.pair else None
    if pair is not None:
        return pair.stack
    host = lab.hosts.get(node.host) if lab is not None else None
    return host.stack if host is not None else "-"


def node_rows(state, lab=None) -> list[TableRow]:
    rows = []
    for node in state.nodes.values():
        stack = _stack(state, node, lab)
        pair = state.pairs.get(node.pair) if node.pair else None
        if not node.reachable:
            cells = [node.host, stack, node.role, "--", "unreachable", "-", "-", "-"]
        else:
            vip = pair.vip if pair is not None and node.holds(pair.vip) else "-"
            load = f"{node.load1:.2f}" if node.load1 is not None else "-"
            cells = [node.host, stack, node.role, "ok", node.heartbeat, vip, load, fmt.duration(node.uptime_s)]
        rows.append(TableRow(node.host, node.severity, [fmt.mark(node.severity)] + cells))
    return rows


def node_notes(state) -> list[Note]:
    """Pair and node problems, worst first (pairs before nodes at the same level)."""
    notes = []
    for pair in state.pairs.values():
        if pair.severity > Severity.OK:
            notes.append(Note(pair.severity, f"{pair.name}: {pair.reason}"))
    for node in state.nodes.values():
        if node.severity > Severity.OK:
            notes.append(Note(node.severity, f"{node.host}: {fmt.one_line(node.reason, 300)}"))
    return sorted(notes, key=lambda n: -int(n.severity))


# --- DRBD ----------------------------------------------------------------------------------

DRBD_COLUMNS = [("", "sev"), ("resource", "res"), ("connection", "conn"), ("role", "role"),
                ("disk", "disk"), ("replication", "repl"), ("done", "done")]


def _res_name(res) -> str:
    if res.name:
        return res.name
    return f"minor {res.minor}" if res.minor is not None else "?"


def drbd_rows(state, problems_only: bool = False) -> list[TableRow]:
    rows = []
    for node in state.nodes.values():
        if not node.reachable:
            if not problems_only or node.severity > Severity.OK:
                rows.append(TableRow(node.host, Severity.ALERT,
                                     ["!!", node.host, "unreachable", "", "", "", ""]))
            continue
        if not node.drbd_available:
            if not problems_only:
                rows.append(TableRow(node.host, None, ["", node.host, "no DRBD", "", "", "", ""]))
            continue
        for res in node.drbd:
            name = _res_name(res)
            key = f"{node.host}/{name}"
            peers = [p for p in res.peers if not problems_only or p.severity > Severity.OK]
            if problems_only and res.severity == Severity.OK and not peers:
                continue
            rows.append(TableRow(key, res.severity, [fmt.mark(res.severity), f"{node.host} {name}", "",
                                                     res.role or "-", res.disk or "-", "", ""]))
            for i, peer in enumerate(peers):
                who = peer.name or "peer"
                done = f"{peer.done:.1f}%" if peer.done is not None else ""
                rows.append(TableRow(f"{key}/{who}/{i}", peer.severity, [
                    fmt.mark(peer.severity), f"  → {who}", peer.connection or "-", peer.role or "-",
                    peer.disk or "-", peer.replication or "-", done]))
    return rows


SYNC_TARGET_STATES = {"SyncTarget", "PausedSyncT", "WFBitMapT", "StartingSyncT", "VerifyT"}


def drbd_notes(state, problems_only: bool = False) -> list[Note]:
    """Resyncs (once per pair of nodes: from the target's side when it answers) with a progress
    bar and ETA, then the reasons of every resource not OK that a resync does not explain."""
    notes = []
    reachable = {name for name, node in state.nodes.items() if node.reachable}
    syncing: set[tuple[str, str]] = set()
    for node in state.nodes.values():
        if not node.reachable:
            continue
        for res in node.drbd:
            name = _res_name(res)
            for peer in res.peers:
                if peer.done is None:
                    continue
                syncing.add((node.host, name))
                if peer.replication not in SYNC_TARGET_STATES and peer.name in reachable:
                    continue  # the target's own row says the same
                oos = f"  out of sync {fmt.kib(peer.out_of_sync_kib)}" if peer.out_of_sync_kib else ""
                notes.append(Note(peer.severity, f"{node.host} {name} ← {peer.name or 'peer'}  "
                                  f"{peer.replication or ''}  {fmt.progress(peer.done, peer.eta_s, 22)}{oos}"))
    for node in state.nodes.values():
        if not node.reachable:
            continue
        for res in node.drbd:
            name = _res_name(res)
            if res.severity > Severity.OK and (res.severity == Severity.ALERT or (node.host, name) not in syncing):
                notes.append(Note(res.severity, f"{node.host} {name}: {fmt.one_line(res.reason, 300)}"))
    return notes


# --- Heartbeat -----------------------------------------------------------------------------

HB_PAIR_COLUMNS = [("", "sev"), ("pair", "pair"), ("stack", "stack"), ("VIP", "vip"), ("runs on", "owner"),
                   ("failback", "failback"), ("last takeover", "takeover")]
HB_RESOURCE_COLUMNS = [("pair", "pair"), ("#", "n"), ("resource (haresources order)", "res"), ("runs on", "owner")]


@dataclass
class Takeover:
    at: float  # wall clock of the reading that saw it
    old: str
    new: str

    def describe(self) -> str:
        return f"{time.strftime('%H:%M:%S', time.localtime(self.at))} {self.old}→{self.new}"


@dataclass
class TakeoverTracker:
    """Derives takeovers from the VIP owner changes seen between readings."""

    owners: dict[str, str] = field(default_factory=dict)
    last: dict[str, Takeover] = field(default_factory=dict)

    def observe(self, state) -> list[tuple[str, Takeover]]:
        seen = []
        for pair in state.pairs.values():
            owner = pair.vip_owner
            if owner is None:
                continue
            previous = self.owners.get(pair.name)
            if previous is not None and previous != owner:
                takeover = Takeover(state.taken_at, previous, owner)
                self.last[pair.name] = takeover
                seen.append((pair.name, takeover))
            self.owners[pair.name] = owner
        return seen


def _runs_on(pair) -> str:
    if not pair.vip_owners:
        return "nowhere"
    if len(pair.vip_owners) > 1:
        return "BOTH " + "+".join(pair.vip_owners)
    return pair.vip_owners[0]


def heartbeat_pair_rows(state, tracker: TakeoverTracker | None = None) -> list[TableRow]:
    rows = []
    for pair in state.pairs.values():
        takeover = tracker.last.get(pair.name) if tracker else None
        rows.append(TableRow(pair.name, pair.severity, [
            fmt.mark(pair.severity), pair.name, pair.stack, pair.vip, _runs_on(pair),
            "auto" if pair.auto_failback else "manual", takeover.describe() if takeover else "-"]))
    return rows


def heartbeat_resource_rows(state) -> list[TableRow]:
    rows = []
    for pair in state.pairs.values():
        where = _runs_on(pair)
        for i, resource in enumerate(pair.resources, 1):
            rows.append(TableRow(f"{pair.name}/{i}", None, [pair.name if i == 1 else "", str(i), resource, where]))
    return rows


HB_EVENTS_PER_NODE = 2


def heartbeat_details(state, pair_name: str | None) -> list[Note]:
    """The pair's ha.cf/haresources checks (one line when they match lab.toml), then each node's
    latest Heartbeat log events."""
    pair = state.pairs.get(pair_name) if pair_name else None
    if pair is None:
        return []
    nodes = [state.nodes[host] for host in (pair.master, pair.slave) if host in state.nodes]
    checked = [node for node in nodes if node.ha_config is not None]
    notes = [Note(f.severity, f"{node.host}: {fmt.one_line(f.reason, 200)}") for node in checked for f in node.ha_config]
    if checked and not notes:
        notes.append(Note(Severity.OK, f"{' and '.join(n.host for n in checked)}: ha.cf and haresources match lab.toml"))
    for node in nodes:
        for event in (node.ha_log or [])[-HB_EVENTS_PER_NODE:]:
            notes.append(Note(event.severity, f"{node.host} {event.clock} {fmt.one_line(event.message, 200)}"))
    return notes


# --- VMs -----------------------------------------------------------------------------------

VM_COLUMNS = [("", "sev"), ("vm", "vm"), ("vmid", "vmid"), ("node", "node"), ("pair", "pair"),
              ("status", "status"), ("cpu", "cpu"), ("mem", "mem"), ("uptime", "uptime")]


def _get(item: Any, *names: str) -> Any:
    for name in names:
        if isinstance(item, dict) and name in item:
            return item[name]
        if hasattr(item, name):
            return getattr(item, name)
    return None


def vm_rows(lab, vms: list | None) -> list[TableRow]:
    """Configured VMs (lab.toml) merged with a listing from the core (dicts or objects)."""
    listed: dict[str, Any] = {}
    for item in vms or []:
        name, vmid = _get(item, "name", "host"), _get(item, "vmid")
        if name is not None:
            listed[str(name)] = item
        if vmid is not None:
            listed[f"#{vmid}"] = item
    pair_of = {}
    for pair in lab.pairs.values():
        pair_of[pair.master] = pair_of[pair.slave] = pair.name
    rows = []
    for host in lab.vms:
        item = listed.get(host.name) or listed.get(f"#{host.vm.vmid}")
        status = str(_get(item, "status") or "-") if item is not None else "-"
        cpu = _get(item, "cpu")
        mem, maxmem = _get(item, "mem"), _get(item, "maxmem")
        uptime = _get(item, "uptime")
        lock = _get(item, "lock")
        if lock:
            status = f"{status} (lock {lock})"
        severity = None
        if item is not None:
            severity = Severity.OK if status == "running" else Severity.WARN
        rows.append(TableRow(host.name, severity, [
            fmt.mark(severity) if severity is not None else "", host.name, str(host.vm.vmid),
            str(_get(item, "node") or host.vm.node), pair_of.get(host.name, "-"), status,
            f"{float(cpu) * 100:.0f} %" if isinstance(cpu, (int, float)) else "-",
            (f"{mem / 2**20:.0f}/{maxmem / 2**20:.0f} MB" if isinstance(mem, (int, float)) and isinstance(maxmem, (int, float))
             else f"{host.vm.memory_mb} MB"),
            fmt.duration(uptime) if isinstance(uptime, (int, float)) else "-"]))
    return rows


# --- command log ---------------------------------------------------------------------------

LOG_COLUMNS = [("host", "host"), ("exit", "exit"), ("time", "time"), ("command", "command")]


def describe_command(command: str) -> str:
    """One line for the log: hatui's multi-section poll script by its sections, else the command."""
    sections = re.findall(r"echo @@([a-z_]+)", command)
    if len(sections) >= 3:
        return f"poll script ({' '.join(sections)})"
    return fmt.one_line(command, 200)


def log_cells(event) -> list[str]:
    status = "ERR" if event.exit_status is None else str(event.exit_status)
    command = describe_command(event.command)
    if getattr(event, "error", None):
        command = f"({fmt.one_line(event.error, 120)}) {command}"
    return [event.host, status, f"{event.duration_s:.2f}s", command]


# --- drill results -------------------------------------------------------------------------

RESULT_COLUMNS = [("run", "run"), ("stack", "stack"), ("rate", "rate"), ("phase", "phase"),
                  ("request", "request"), ("reply", "reply"), ("error", "error"), ("avail", "avail"),
                  ("downtime", "downtime"), ("valid", "valid")]


def result_rows(results: Iterable[Any]) -> list[TableRow]:
    rows = []
    for n, run in enumerate(results, 1):
        for phase, pr in run.phases.items():
            broken = bool(pr.thresholds_broken) or run.status != "ok"
            severity = Severity.ALERT if broken else (Severity.OK if run.valid else Severity.WARN)
            rows.append(TableRow(f"{run.run_id}/{phase}", severity, [
                str(n), run.stack, f"{run.rate:g}", phase, str(pr.requests), str(pr.replies), str(pr.error),
                fmt.percent(pr.availability_pct),
                ("≥" if pr.downtime_lower_bound else "") + fmt.millis(pr.downtime_ms),
                ("yes" if run.valid else "NO") + (" !!" if broken else "")]))
    return rows


def error_breakdown(errors: dict[str, int]) -> str:
    parts = [f"{name} {count}" for name, count in sorted(errors.items(), key=lambda kv: -kv[1]) if count]
    return f"({', '.join(parts)})" if parts else ""


# --- title ---------------------------------------------------------------------------------

def vip_summary(state) -> list[tuple[Severity, str]]:
    """`native: master holds 10.251.0.100`, then `vm01: vm01a holds .110` (shared prefix cut)."""
    out = []
    first_vip = None
    for pair in state.pairs.values():
        vip = fmt.short_vip(pair.vip, first_vip)
        first_vip = first_vip or pair.vip
        if not pair.vip_owners:
            text = f"{pair.name}: nobody holds {vip}"
        elif len(pair.vip_owners) > 1:
            text = f"{pair.name}: {'+'.join(pair.vip_owners)} ALL hold {vip}"
        else:
            text = f"{pair.name}: {pair.vip_owners[0]} holds {vip}"
        out.append((pair.severity, text))
    return out


def load_journal(path) -> tuple[list, list[str]]:
    """Finished runs from a drill journal (JSON lines). Tolerates absence and odd lines.

    A line is a finished run when it is a `run-finished` event carrying a `result`, or when it
    is itself a run result (has `run_id` and `phases`). Later lines for the same run win.
    """
    from pathlib import Path

    from hatui import journal
    from hatui.drill.results import RunResult

    results: dict[str, Any] = {}
    problems: list[str] = []
    bad = 0
    for data in journal.read_lines(path):
        if data is journal.UNREADABLE:
            bad += 1
            continue
        if not isinstance(data, dict):
            continue
        candidate = None
        if data.get("kind") in ("run-finished", "run_finished") and isinstance(data.get("result"), dict):
            candidate = data["result"]
        elif "run_id" in data and isinstance(data.get("phases"), dict):
            candidate = data
        if candidate is None:
            continue
        try:
            run = RunResult.from_dict(candidate)
        except (TypeError, ValueError, KeyError, AttributeError):
            bad += 1
            continue
        results[run.run_id] = run
    if bad:
        problems.append(f"{Path(path)}: {bad} line(s) could not be read")
    return list(results.values()), problems

"""Cluster state: one timestamped reading of every pair, from one SSH round trip per node.

Each node runs one small shell script (POLL_SCRIPT) whose sections are split on `@@` markers
and handed to the pure parsers. Which node *really* holds a VIP comes from its interfaces
(`cl_status rscstatus` says `local` on an idle slave); the service is checked over HTTP on the
VIP itself.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from hatui.collectors import drbd as drbd_parser
from hatui.collectors import heartbeat as hb_parser
from hatui.collectors.drbd_log import parse_drbdadm_errors
from hatui.collectors.severity import Finding, Severity, worst
from hatui.config import Lab, Pair
from hatui.httpcheck import CHECK_MARKER, HttpCheck, http_get, with_marker
from hatui.transport import CommandResult, SshPool, TransportError

SCHEMA = "hatui.status/1"

# One round trip per node. Every section ends with its exit status so "not installed" (127)
# is told apart from "stopped". Comment lines of ha.cf/haresources are blanked (not dropped) so
# the parsers' line numbers stay right; the log is read from the path ha.cf names, if any.
POLL_SCRIPT = r"""
echo @@hostname; uname -n
echo @@hbstatus; cl_status hbstatus 2>&1; echo "@@rc $?"
echo @@rscstatus; cl_status rscstatus 2>&1; echo "@@rc $?"
echo @@addr; ip -o -4 addr show 2>&1
echo @@uptime; cat /proc/uptime /proc/loadavg 2>&1
echo @@drbd
if command -v drbdadm >/dev/null 2>&1; then drbdadm status 2>&1; echo "@@rc $?";
elif [ -r /proc/drbd ]; then cat /proc/drbd; echo "@@rc $?"; else echo "@@rc 127"; fi
echo @@crm_mon
if command -v crm_mon >/dev/null 2>&1; then crm_mon --output-as=xml 2>/dev/null || crm_mon -1 --as-xml 2>&1; echo "@@rc $?";
else echo "@@rc 127"; fi
echo @@ha_cf; sed 's/^[[:space:]]*#.*//' /etc/ha.d/ha.cf 2>&1; echo "@@rc $?"
echo @@haresources; sed 's/^[[:space:]]*#.*//' /etc/ha.d/haresources 2>&1; echo "@@rc $?"
echo @@ha_log; log=$(awk '$1 == "logfile" { f = $2 } END { print f }' /etc/ha.d/ha.cf 2>/dev/null)
if [ -n "$log" ] && [ -r "$log" ]; then tail -n 40 "$log"; echo "@@rc $?"; else echo "@@rc 127"; fi
""".strip()


@dataclass
class Section:
    text: str
    rc: int | None


def split_sections(output: str) -> dict[str, Section]:
    """`@@name` starts a section, `@@rc N` ends it with its exit status."""
    sections: dict[str, Section] = {}
    name, lines, rc = None, [], None
    for line in output.splitlines():
        if line.startswith("@@rc "):
            try:
                rc = int(line[5:].strip())
            except ValueError:
                rc = None
            continue
        match = re.fullmatch(r"@@([a-z_]+)", line.strip())
        if match:
            if name is not None:
                sections[name] = Section("\n".join(lines), rc)
            name, lines, rc = match.group(1), [], None
            continue
        if name is not None:
            lines.append(line)
    if name is not None:
        sections[name] = Section("\n".join(lines), rc)
    return sections


@dataclass
class NodeState:
    host: str
    address: str
    pair: str | None
    role: str  # master | slave | client
    reachable: bool = False
    error: str | None = None
    hostname: str | None = None
    heartbeat: str = "unknown"  # running | stopped | not installed | unknown
    rscstatus: str | None = None
    addresses: list[str] = field(default_factory=list)
    uptime_s: float | None = None
    load1: float | None = None
    drbd: list[Any] = field(default_factory=list)
    drbd_available: bool = False
    pacemaker: Any = None
    ha_cf: Any = None  # parsed /etc/ha.d/ha.cf (HaCf); None when not read
    haresources: Any = None  # parsed /etc/ha.d/haresources (ResultList of HaResourceGroup)
    ha_config: list[Finding] | None = None  # ha.cf's own checks + differences from lab.toml
    ha_log: list[Any] | None = None  # recent Heartbeat log events (HbLogEvent), oldest first
    latency_ms: float | None = None
    checked_at: float = 0.0
    problems: list[str] = field(default_factory=list)
    severity: Severity = Severity.OK
    reason: str = ""

    def holds(self, address: str) -> bool:
        return address in self.addresses


@dataclass
class PairState:
    name: str
    stack: str
    vip: str
    master: str
    slave: str
    resources: list[str]
    auto_failback: bool
    vip_owners: list[str] = field(default_factory=list)
    service: HttpCheck | None = None
    severity: Severity = Severity.OK
    reason: str = ""

    @property
    def vip_owner(self) -> str | None:
        """The node serving the VIP; None when nobody or (split brain) more than one holds it."""
        return self.vip_owners[0] if len(self.vip_owners) == 1 else None


@dataclass
class ClusterState:
    lab: str
    taken_at: float
    duration_s: float
    nodes: dict[str, NodeState]
    pairs: dict[str, PairState]
    severity: Severity = Severity.OK
    reason: str = ""

    def to_json(self) -> dict:
        """The documented `hatui status --json` document (schema `hatui.status/1`)."""
        return {
            "schema": SCHEMA,
            "lab": self.lab,
            "taken_at": self.taken_at,
            "duration_s": round(self.duration_s, 4),
            "severity": str(self.severity),
            "reason": self.reason,
            "pairs": [_pair_json(p) for p in self.pairs.values()],
            "nodes": [_node_json(n) for n in self.nodes.values()],
        }


def _pair_json(p: PairState) -> dict:
    return {
        "name": p.name, "stack": p.stack, "vip": p.vip, "master": p.master, "slave": p.slave,
        "resources": p.resources, "auto_failback": p.auto_failback,
        "vip_owner": p.vip_owner, "vip_owners": p.vip_owners,
        "service": asdict(p.service) if p.service else None,
        "severity": str(p.severity), "reason": p.reason,
    }


def _node_json(n: NodeState) -> dict:
    return {
        "host": n.host, "address": n.address, "pair": n.pair, "role": n.role,
        "reachable": n.reachable, "error": n.error, "hostname": n.hostname,
        "heartbeat": n.heartbeat, "rscstatus": n.rscstatus, "addresses": n.addresses,
        "uptime_s": n.uptime_s, "load1": n.load1, "latency_ms": n.latency_ms,
        "drbd": [_drbd_json(r) for r in n.drbd] if n.drbd_available else None,
        "problems": n.problems, "checked_at": n.checked_at,
        "heartbeat_config": None if n.ha_config is None else [
            {"severity": str(f.severity), "reason": f.reason} for f in n.ha_config],
        "heartbeat_log": None if n.ha_log is None else [_log_event_json(e) for e in n.ha_log],
        "severity": str(n.severity), "reason": n.reason,
    }


def _log_event_json(event) -> dict:
    return {"timestamp": event.timestamp, "program": event.program, "level": event.level, "kind": event.kind,
            "node": event.node, "detail": event.detail, "message": event.message, "severity": str(event.severity)}


def _drbd_json(resource) -> dict:
    return {
        "name": resource.name, "minor": resource.minor, "role": resource.role, "disk": resource.disk,
        "severity": str(resource.severity), "reason": getattr(resource, "reason", ""),
        "peers": [{
            "name": peer.name, "connection": peer.connection, "role": peer.role, "disk": peer.disk,
            "replication": peer.replication, "done": peer.done, "out_of_sync_kib": peer.out_of_sync_kib,
            "severity": str(peer.severity),
        } for peer in resource.peers],
    }


# --------------------------------------------------------------------------------------------


def node_from_output(node: NodeState, result: CommandResult) -> NodeState:
    """Fill a NodeState from the poll script's output (pure; never raises)."""
    return node_from_text(node, result.stdout, result.duration_s)


def node_from_text(node: NodeState, stdout: str, duration_s: float) -> NodeState:
    """`node_from_output` on captured text (canned readings, replays)."""
    node.reachable = True
    node.latency_ms = round(duration_s * 1000, 1)
    sections = split_sections(stdout)
    if "hostname" not in sections:
        node.problems.append("poll output not understood (no sections)")
    node.hostname = (sections.get("hostname", Section("", 0)).text.strip() or None)

    hb = sections.get("hbstatus")
    if hb is not None:
        if hb.rc == 127 or "not found" in hb.text:
            node.heartbeat = "not installed"
        else:
            node.heartbeat = hb_parser.parse_hbstatus(hb.text).state if hb.text.strip() else (
                "running" if hb.rc == 0 else "stopped")
    rsc = sections.get("rscstatus")
    if rsc is not None and node.heartbeat == "running":
        node.rscstatus = hb_parser.parse_rscstatus(rsc.text).value

    addr = sections.get("addr")
    if addr is not None:
        node.addresses = parse_ipv4_addresses(addr.text)

    up = sections.get("uptime")
    if up is not None:
        node.uptime_s, node.load1 = parse_uptime(up.text)

    drbd = sections.get("drbd")
    if drbd is not None and drbd.rc != 127:
        node.drbd_available = True
        parsed = drbd_parser.parse_drbd(drbd.text)
        node.drbd = list(parsed)
        problems = list(parsed.problems)
        errors = parse_drbdadm_errors(drbd.text) if drbd.rc else []
        if errors:  # drbdadm failed: its own error lines say why, "unrecognised output" does not
            problems = [p for p in problems if not p.startswith("unrecognised DRBD output")]
            problems += [f"drbdadm status failed: {e.explain()}" for e in errors]
        node.problems.extend(f"drbd: {p}" for p in problems)

    crm = sections.get("crm_mon")
    if crm is not None and crm.rc not in (127, None) and crm.text.strip():
        from hatui.collectors.pacemaker import parse_crm_mon  # only on Pacemaker clusters

        node.pacemaker = parse_crm_mon(crm.text)

    if node.heartbeat != "not installed":
        _heartbeat_files(node, sections)
    return node


LOG_EVENTS_KEPT = 8


def _heartbeat_files(node: NodeState, sections: dict[str, Section]) -> None:
    """ha.cf, haresources and the log's recent events; `check_ha_config` compares with lab.toml.
    The log is history, not state: its events are shown but not judged (an old "node dead" would
    keep the node red long after the peer came back)."""
    if "ha_cf" not in sections:
        return  # output of an older poll script: nothing was read
    node.ha_config = []
    for name, parse, attr in (("ha_cf", hb_parser.parse_ha_cf, "ha_cf"),
                              ("haresources", hb_parser.parse_haresources, "haresources")):
        section = sections.get(name, Section("", None))
        if section.rc:
            node.ha_config.append(Finding(Severity.WARN, f"{name.replace('_', '.')} not readable: "
                                                         f"{section.text.strip()[:120]}"))
        else:
            setattr(node, attr, parse(section.text))
    if node.ha_cf is not None and node.ha_cf.severity:
        node.ha_config.append(Finding(node.ha_cf.severity, f"ha.cf: {node.ha_cf.reason}"))
    log = sections.get("ha_log")
    if log is not None and log.rc == 0:
        node.ha_log = list(hb_parser.parse_heartbeat_log(log.text))[-LOG_EVENTS_KEPT:]


def check_ha_config(node: NodeState, lab: Lab) -> None:
    """Add where the node's running ha.cf and haresources differ from its pair in lab.toml."""
    if node.pair is None or node.ha_config is None:
        return
    pair = lab.pairs[node.pair]
    if node.ha_cf is not None:
        node.ha_config += ha_cf_differences(node.ha_cf, lab, pair, node.host)
    if node.haresources is not None and not (node.ha_cf is not None and node.ha_cf.pacemaker_enabled):
        node.ha_config += haresources_differences(node.haresources, pair)


def ha_cf_differences(cf: hb_parser.HaCf, lab: Lab, pair: Pair, host: str) -> list[Finding]:
    """lab.toml's timing, peer and failback vs the running ha.cf (a difference is a WARN: drills
    would measure another configuration than the one described)."""
    found = []
    want = pair.heartbeat
    for key in ("keepalive_ms", "warntime_ms", "deadtime_ms", "initdead_ms"):
        running, wanted = getattr(cf, key), getattr(want, key)
        if running != wanted:
            shown = "not set" if running is None else f"{running} ms"
            found.append(Finding(Severity.WARN, f"ha.cf {key[:-3]} {shown}, lab.toml says {wanted} ms"))
    if want.media == "ucast":
        peer = lab.hosts[pair.peer(host)]
        nic = lab.replication_nic(pair, host)
        peer_nic = peer.nic_on(lab.hosts[host].nics[nic].network) if nic else None
        peers = [m.args[0] for m in cf.media if m.kind == "ucast" and m.args]
        if peer_nic is not None and str(peer_nic.address) not in peers:
            found.append(Finding(Severity.WARN, f"ha.cf has no ucast to {pair.peer(host)}'s {peer_nic.address}"
                                                f" (ucast to: {', '.join(peers) or 'none'})"))
    failback = hb_parser.parse_bool(cf.auto_failback or "")
    if failback is not pair.auto_failback:
        found.append(Finding(Severity.WARN, f"ha.cf auto_failback {cf.auto_failback or 'not set'}, "
                                            f"lab.toml says {'on' if pair.auto_failback else 'off'}"))
    return found


def haresources_differences(groups, pair: Pair) -> list[Finding]:
    """lab.toml's resource group vs haresources: one group, at home on the master, same order."""
    found = [Finding(Severity.WARN, f"haresources: {p}") for p in groups.problems]
    if len(groups) > 1:
        found.append(Finding(Severity.WARN, f"haresources has {len(groups)} groups, lab.toml one"))
    for group in groups[:1]:
        if group.node != pair.master:
            found.append(Finding(Severity.WARN, f"haresources puts the group on {group.node}, "
                                                f"lab.toml's master is {pair.master}"))
        running = [r.raw for r in group.resources]
        if running != pair.resources:
            found.append(Finding(Severity.WARN, f"haresources group {' '.join(running)} differs from "
                                                f"lab.toml's {' '.join(pair.resources)}"))
    return found


def parse_ipv4_addresses(text: str) -> list[str]:
    """Addresses from `ip -o -4 addr show` (loopback excluded)."""
    out = []
    for match in re.finditer(r"^\d+:\s+(\S+)\s+inet\s+([\d.]+)/\d+", text, re.M):
        if match.group(1) != "lo":
            out.append(match.group(2))
    return out


def parse_uptime(text: str) -> tuple[float | None, float | None]:
    lines = text.split("\n")
    uptime = load = None
    try:
        uptime = float(lines[0].split()[0])
    except (IndexError, ValueError):
        pass
    try:
        load = float(lines[1].split()[0])
    except (IndexError, ValueError):
        pass
    return uptime, load


def judge_node(node: NodeState) -> None:
    findings: list[Finding] = []
    if not node.reachable:
        findings.append(Finding(Severity.ALERT, f"unreachable: {node.error}"))
    else:
        if node.role in ("master", "slave") and node.heartbeat != "running":
            findings.append(Finding(Severity.WARN, f"heartbeat {node.heartbeat}"))
        if node.rscstatus == "transition":
            findings.append(Finding(Severity.WARN, "heartbeat in transition"))
        findings.extend(Finding(Severity.WARN, p) for p in node.problems)
        findings.extend(node.ha_config or [])
        findings.extend(node.drbd)
        if node.pacemaker is not None:
            findings.append(node.pacemaker)
    verdict = worst(findings)
    node.severity, node.reason = verdict.severity, verdict.reason


def judge_pair(pair: PairState) -> None:
    findings: list[Finding] = []
    if not pair.vip_owners:
        findings.append(Finding(Severity.ALERT, f"no node holds {pair.vip}"))
    elif len(pair.vip_owners) > 1:
        findings.append(Finding(Severity.ALERT, f"split brain: {' and '.join(pair.vip_owners)} both hold {pair.vip}"))
    elif pair.vip_owners[0] != pair.master:
        findings.append(Finding(Severity.WARN, f"{pair.vip} is on {pair.vip_owners[0]}, not the master"))
    if pair.service is not None and not pair.service.ok:
        findings.append(Finding(Severity.ALERT, f"service on {pair.vip} failed: {pair.service.error or pair.service.status}"))
    verdict = worst(findings)
    pair.severity, pair.reason = verdict.severity, verdict.reason


async def collect_state(lab: Lab, pool: SshPool, *, pairs: list[Pair] | None = None,
                        check_service: bool = True, timeout: float | None = None) -> ClusterState:
    """Poll every node of the given pairs (default: all) once; never raises for a bad host."""
    started, wall = time.monotonic(), time.time()
    pairs = list(lab.pairs.values()) if pairs is None else pairs
    nodes: dict[str, NodeState] = {}
    for pair in pairs:
        for role, name in (("master", pair.master), ("slave", pair.slave)):
            host = lab.hosts[name]
            nodes[name] = NodeState(host=name, address=str(host.address), pair=pair.name, role=role)

    async def poll(node: NodeState) -> None:
        try:
            result = await pool.run(node.host, POLL_SCRIPT, timeout=timeout)
        except TransportError as error:
            node.reachable, node.error = False, error.reason
        else:
            node_from_output(node, result)
            check_ha_config(node, lab)
        node.checked_at = time.time()
        judge_node(node)

    async def check(pair: Pair) -> HttpCheck:
        return await http_get(str(pair.vip_address), with_marker(lab.load.uri, CHECK_MARKER), timeout=min(1.0, lab.load.timeout_s))

    services = [check(p) for p in pairs] if check_service else []
    outcomes = await asyncio.gather(*(poll(n) for n in nodes.values()), *services)
    checks = outcomes[len(nodes):]

    pair_states: dict[str, PairState] = {}
    for i, pair in enumerate(pairs):
        vip = str(pair.vip_address)
        state = PairState(name=pair.name, stack=pair.stack, vip=vip, master=pair.master, slave=pair.slave,
                          resources=list(pair.resources), auto_failback=pair.auto_failback,
                          vip_owners=[n for n in (pair.master, pair.slave) if nodes[n].holds(vip)],
                          service=checks[i] if check_service else None)
        judge_pair(state)
        pair_states[pair.name] = state
    verdict = worst(list(pair_states.values()), list(nodes.values()))
    return ClusterState(lab=lab.name, taken_at=wall, duration_s=time.monotonic() - started,
                        nodes=nodes, pairs=pair_states, severity=verdict.severity, reason=verdict.reason)

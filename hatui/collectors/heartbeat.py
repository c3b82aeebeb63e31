"""Heartbeat 3.0.x (v1 / haresources mode) parsers.

* ``cl_status`` sub-commands: `parse_hbstatus` (plain, ``-v``, ``-m``, and ``heartbeat -s`` /
  init-script status) and the one-word answers `parse_nodestatus` and `parse_rscstatus` (each
  also understands its ``-m`` sentence).
* `parse_ha_cf` (``/etc/ha.d/ha.cf``: directives, times converted to ms, media, nodes...).
* `parse_haresources` (``/etc/ha.d/haresources``: node + ordered resource group).
* `parse_heartbeat_log` (syslog or ha-log lines: takeover, shutdown notice, node/link dead...).

Convention (as in every collectors module): never raises; each result carries
``problems: list[str]`` (list results are a `ResultList` with ``.problems``).  Unreadable input
gives an empty/None value plus a problem; unknown words are kept as printed and marked WARN.
Severity of a one-word answer says what the word means in isolation (``dead`` = ALERT); whether
``rscstatus none`` is right for this node is for the caller to judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hatui.collectors.severity import Finding, ResultList, Severity, clean_text, worst

OK, WARN, ALERT = Severity.OK, Severity.WARN, Severity.ALERT

# stderr of cl_status (cl_log) when it cannot talk to heartbeat or was called wrongly
_ERROR_HINTS = ("Cannot signon", "REASON:", "invalid sub-command", "Not enough parameters",
                "No enough parameter", "Error", "Cannot get", "try crm_mon")


def _guard(fn, fallback):
    """Run a parser; a bug inside must not escape (return the fallback with a problem)."""
    try:
        return fn()
    except Exception as exc:
        result = fallback()
        result.problems.append(f"internal parser error: {type(exc).__name__}: {exc}")
        if not isinstance(result, ResultList):  # (a ResultList derives its severity)
            result.severity, result.reason = Severity.WARN, result.problems[-1]
        return result


def _lines(raw: Any) -> tuple[list[str], list[str]]:
    text, problems = clean_text(raw)
    return [ln.rstrip() for ln in text.split("\n")], problems


# --- cl_status hbstatus ---------------------------------------------------------------------------

@dataclass
class HbNode:
    name: str
    status: str | None = None  # active | up | dead | init | ping
    nodetype: str | None = None  # normal | ping
    links: dict[str, str | None] = field(default_factory=dict)  # eth0 -> up|dead (None: not shown)
    severity: Severity = Severity.OK
    reason: str = ""


@dataclass
class CcmMember:
    node_id: int | None
    name: str
    born: int | None


@dataclass
class HbStatus:
    state: str = "unknown"  # running | stopped | refused | unknown
    detail: str | None = None  # refusal reason, signon error
    pid: int | None = None  # "heartbeat -s": heartbeat OK [pid N et al]
    version: str | None = None
    managed_by: str | None = None  # haresources | pacemaker
    pacemaker_mode: str | None = None  # "respawn" in 'managed by: pacemaker (respawn)'
    ccm: str | None = None  # "with quorum" | "WITHOUT quorum" | "evicted"
    ccm_instance: int | None = None
    members: list[CcmMember] = field(default_factory=list)
    member_of_partition: bool | None = None
    nodes: list[HbNode] = field(default_factory=list)
    severity: Severity = Severity.WARN
    reason: str = ""
    problems: list[str] = field(default_factory=list)


_NODE_LINE = re.compile(r"^(\S+)\s+(\S+)\s+\(nodetype:\s*([^)\s]*)\)\s*$")
_LINK_LINE = re.compile(r"^\s+(\S+)(?:\s+(\S+))?\s*$")
_NODE_STATUS_SEV = {"active": OK, "up": OK, "ping": OK, "init": WARN, "dead": ALERT}
_LINK_STATUS_SEV = {"up": OK, "dead": WARN}


def _node_finding(node: HbNode) -> Finding:
    found: list[Finding] = []
    if node.status is not None:
        sev = _NODE_STATUS_SEV.get(node.status, WARN)
        if node.nodetype == "ping" and sev == ALERT:
            sev = WARN  # a ping node is an outside IP, not a cluster member
        if sev:
            found.append(Finding(sev, f"node {node.status}" if node.status in _NODE_STATUS_SEV
                                 else f"unknown node status {node.status[:40]!r}"))
    for link, status in node.links.items():
        if status is not None and _LINK_STATUS_SEV.get(status, WARN):
            found.append(Finding(WARN, f"link {link} {status}"))
    return worst(found)


def _parse_node_blocks(lines: list[str], start: int, problems: list[str]) -> list[HbNode]:
    """The node blocks of `hbstatus -v`: 'node<TAB>status<TAB>(nodetype: t)' then '<TAB>link<TAB>status'."""
    nodes: list[HbNode] = []
    for n, line in enumerate(lines[start:], start + 1):
        if not line.strip() or line.strip() == "this node has the following heartbeat links:":
            continue
        if m := _NODE_LINE.match(line):
            nodes.append(HbNode(m.group(1), m.group(2), m.group(3) or None))
        elif nodes and (m := _LINK_LINE.match(line)):
            nodes[-1].links[m.group(1)] = m.group(2)
        else:
            problems.append(f"line {n}: not understood: {line.strip()[:80]!r}")
    for node in nodes:
        f = _node_finding(node)
        node.severity, node.reason = f.severity, f.reason
    return nodes


def parse_hbstatus(text: Any) -> HbStatus:
    """``cl_status hbstatus [-v] [-m]`` or ``heartbeat -s`` / ``/etc/init.d/heartbeat status``."""
    return _guard(lambda: _hbstatus(text), HbStatus)


_CCM_MEMBER = re.compile(r"^\s+(\d{1,9})\s+(\S+)\s+\(born:\s*(\d{1,9})\)")


def _hbstatus(raw: Any) -> HbStatus:
    lines, problems = _lines(raw)
    st = HbStatus(problems=problems)
    for i, line in enumerate(lines):
        s = line.strip()
        if not s:
            continue
        if s.startswith("Heartbeat is running on this machine"):
            st.state = "running"
        elif s.startswith("Heartbeat is stopped on this machine") or re.match(
                r"^heartbeat is stopped\b", s):
            st.state = "stopped"
        elif s.startswith("Heartbeat is apparently running"):
            st.state = "refused"
        elif m := re.match(r"^\S+ OK \[pid (\d{1,9})\b", s):  # heartbeat -s
            st.state, st.pid = "running", int(m.group(1))
        elif m := re.match(r"^\((.*)\)$", s):  # -v after a refused signon: (reason)
            st.detail = m.group(1)
        elif m := re.match(r"^version:\s*(.*)$", s):
            st.state, st.version = "running", m.group(1).strip()
        elif m := re.match(r"^Heartbeat version (\S+)", s):
            st.state, st.version = "running", m.group(1)
        elif m := re.match(r'^managed by:\s*"?(\w+)"?(?:\s+\((.*)\))?', s):
            st.managed_by, st.pacemaker_mode = m.group(1), m.group(2)
        elif s.startswith("Resources controlled by"):
            st.managed_by = "pacemaker" if "Pacemaker" in s else "haresources"
        elif m := re.match(r"^ccm membership (.*)$", s):
            st.ccm = m.group(1).strip()
        elif m := re.match(r"^instance (\d{1,9})$", s):
            st.ccm_instance = int(m.group(1))
        elif re.match(r"^members \d+$", s):
            pass  # the member lines follow
        elif m := _CCM_MEMBER.match(line):
            st.members.append(CcmMember(int(m.group(1)), m.group(2), int(m.group(3))))
        elif m := re.match(r"^(NOT )?member of partition$", s):
            st.member_of_partition = m.group(1) is None
        elif _NODE_LINE.match(line):  # the node blocks end the output
            st.nodes = _parse_node_blocks(lines, i, st.problems)
            break
        elif any(h in s for h in _ERROR_HINTS):
            st.detail = s if st.detail is None else f"{st.detail}; {s}"
        else:
            st.problems.append(f"line {i + 1}: not understood: {s[:80]!r}")
    if st.state == "unknown" and not st.problems:
        st.problems.append("no heartbeat status found" if any(ln.strip() for ln in lines)
                           else "empty input")
    _hbstatus_severity(st)
    return st


def _hbstatus_severity(st: HbStatus) -> None:
    found = [{"running": Finding(OK), "stopped": Finding(ALERT, "heartbeat stopped"),
              "refused": Finding(WARN, "heartbeat refuses API connection"),
              }.get(st.state, Finding(WARN, "heartbeat state unknown"))]
    if st.ccm == "evicted":
        found.append(Finding(ALERT, "evicted from ccm membership"))
    elif st.ccm is not None and st.ccm != "with quorum":
        found.append(Finding(WARN, f"ccm membership {st.ccm}"))
    if st.member_of_partition is False:
        found.append(Finding(WARN, "not member of partition"))
    found += [Finding(n.severity, f"{n.name}: {n.reason}") for n in st.nodes if n.severity]
    f = worst(found)
    st.severity, st.reason = f.severity, f.reason


# --- one-word answers ----------------------------------------------------------------------------

@dataclass
class HbValue:
    """A one-word cl_status answer (nodestatus, rscstatus)."""

    value: str | None = None
    subject: str | None = None  # the node named in the -m sentence, when given
    severity: Severity = Severity.WARN
    reason: str = ""
    problems: list[str] = field(default_factory=list)


def _one_word(raw: Any, what: str, meaning: dict[str, Severity], human: re.Pattern) -> HbValue:
    lines, problems = _lines(raw)
    result = HbValue(problems=problems)
    body = [ln.strip() for ln in lines if ln.strip()]
    errors = [s for s in body if any(h in s for h in _ERROR_HINTS)]
    body = [s for s in body if s not in errors]
    for e in errors:
        result.problems.append(f"cl_status error: {e[:120]}")
    if not body:
        if not errors:
            result.problems.append("empty input")
        result.reason = f"no {what} answer"
        return result
    first = body[0]
    if m := human.match(first):
        result.subject, result.value = m.groupdict().get("subject"), m.group("value")
    elif len(first.split()) == 1:
        result.value = first
    else:
        result.problems.append(f"not a {what} answer: {first[:80]!r}")
        result.reason = f"no {what} answer"
        return result
    if len(body) > 1:
        result.problems.append(f"{len(body) - 1} extra line(s) after the {what} answer")
    if result.value in meaning:
        result.severity = meaning[result.value]
        result.reason = f"{what} {result.value}" if result.severity else ""
    else:
        result.reason = f"unknown {what} {result.value[:40]!r}"
    return result


def _one_word_parser(what: str, meaning: dict[str, Severity], human: str):
    pattern = re.compile(human)

    def parse(text: Any) -> HbValue:
        return _guard(lambda: _one_word(text, what, meaning, pattern), HbValue)

    parse.__name__ = f"parse_{what}"
    parse.__doc__ = f"``cl_status {what}`` (script or -m form) -> `HbValue`."
    return parse


parse_nodestatus = _one_word_parser(
    "nodestatus", _NODE_STATUS_SEV, r"^The cluster node (?P<subject>\S+) is (?P<value>\S+)$")
# none/local/foreign/all are all normal somewhere; only "transition" (takeover running) is busy.
parse_rscstatus = _one_word_parser(
    "rscstatus", {"none": OK, "local": OK, "foreign": OK, "all": OK, "transition": WARN},
    r"^This node is holding (?P<value>\S+) resources\.$")


# --- ha.cf ---------------------------------------------------------------------------------------

@dataclass
class HaMedium:
    kind: str  # bcast | mcast | ucast | serial (and the *6 variants)
    interface: str | None
    args: list[str] = field(default_factory=list)  # mcast: group port ttl loop; ucast: peer


@dataclass
class HaCf:
    keepalive_ms: int | None = None  # heartbeat default 1000
    deadtime_ms: int | None = None  # default 30000
    warntime_ms: int | None = None
    initdead_ms: int | None = None
    deadping_ms: int | None = None
    udpport: int | None = None  # default 694
    nodes: list[str] = field(default_factory=list)
    media: list[HaMedium] = field(default_factory=list)
    auto_failback: str | None = None  # on | off | legacy (default legacy)
    crm: str | None = None  # value of "crm" / "pacemaker"; absent => haresources (R1) mode
    autojoin: str | None = None
    ping_nodes: list[str] = field(default_factory=list)
    ping_groups: dict[str, list[str]] = field(default_factory=dict)
    respawn: list[tuple[str, str]] = field(default_factory=list)  # (user, command)
    stonith_hosts: list[str] = field(default_factory=list)
    logfile: str | None = None
    debugfile: str | None = None
    logfacility: str | None = None
    use_logd: bool | None = None
    directives: list[tuple[str, str]] = field(default_factory=list)  # everything, as written
    severity: Severity = Severity.OK
    reason: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def pacemaker_enabled(self) -> bool:
        return self.crm is not None and parse_bool(self.crm) is not False

    @property
    def mode(self) -> str:
        return "pacemaker" if self.pacemaker_enabled else "haresources"


_TRUE = {"true", "on", "yes", "y", "1"}
_FALSE = {"false", "off", "no", "n", "0"}


def parse_bool(value: str) -> bool | None:
    """Heartbeat booleans (cl_str_to_boolean); None when it is not one."""
    v = value.strip().lower()
    return True if v in _TRUE else False if v in _FALSE else None


_TIME = re.compile(r"^(\d{1,12}(?:\.\d{0,9})?|\.\d{1,9})\s*(ms|us|s|msec|usec|sec)?$", re.IGNORECASE)


def parse_time_ms(value: str) -> int | None:
    """Heartbeat time value -> ms: ``2`` (seconds), ``1.5``, ``500ms``, ``1s``, ``100000us``."""
    m = _TIME.match(value.strip())
    if not m:
        return None
    number, unit = float(m.group(1)), (m.group(2) or "s").lower()
    scale = {"ms": 1, "msec": 1, "us": 0.001, "usec": 0.001}.get(unit, 1000)
    return int(round(number * scale))


_TIMES = {"keepalive": "keepalive_ms", "deadtime": "deadtime_ms", "warntime": "warntime_ms",
          "initdead": "initdead_ms", "deadping": "deadping_ms"}
_MEDIA = {"bcast", "mcast", "ucast", "serial", "bcast6", "mcast6", "ucast6"}


def parse_ha_cf(text: Any) -> HaCf:
    return _guard(lambda: _ha_cf(text), HaCf)


def _ha_cf(raw: Any) -> HaCf:
    lines, problems = _lines(raw)
    cf = HaCf(problems=problems)
    for n, line in enumerate(lines, 1):
        line = re.sub(r"(^|\s)#.*$", "", line).strip()  # comments
        if not line:
            continue
        parts = line.split()
        key, args = parts[0].lower(), parts[1:]
        value = " ".join(args)
        cf.directives.append((parts[0], value))
        if not re.fullmatch(r"[a-z_][a-z0-9_-]*", key):
            cf.problems.append(f"line {n}: not a directive: {line[:80]!r}")
        elif not args:  # every ha.cf directive takes a value
            cf.problems.append(f"line {n}: {parts[0]} without a value")
        elif key in _TIMES:
            ms = parse_time_ms(value)
            if ms is None:
                cf.problems.append(f"line {n}: bad time for {key}: {value[:40]!r}")
            setattr(cf, _TIMES[key], ms)
        elif key in _MEDIA:
            if key.startswith("serial"):
                cf.media += [HaMedium(key, dev) for dev in args]
            elif key.startswith("bcast"):  # bcast eth0 eth1 ...
                cf.media += [HaMedium(key, dev) for dev in args]
            else:
                cf.media.append(HaMedium(key, args[0] if args else None, args[1:]))
        elif key == "node":
            cf.nodes += args
        elif key == "udpport":
            cf.udpport = int(value) if re.fullmatch(r"[0-9]{1,5}", value) else None
        elif key in ("auto_failback", "autojoin", "logfile", "debugfile", "logfacility"):
            setattr(cf, key, value or None)
        elif key in ("crm", "pacemaker"):
            cf.crm = value or None
        elif key == "use_logd":
            cf.use_logd = parse_bool(value)
        elif key == "ping":
            cf.ping_nodes += args
        elif key == "ping_group" and args:
            cf.ping_groups[args[0]] = args[1:]
        elif key == "respawn" and len(args) >= 2:
            cf.respawn.append((args[0], " ".join(args[1:])))
        elif key == "stonith_host":
            cf.stonith_hosts.append(value)
    if not cf.directives:
        cf.problems.append("no directives found")
    _ha_cf_checks(cf)
    return cf


def _ha_cf_checks(cf: HaCf) -> None:
    """Sanity checks heartbeat itself complains about (or that break failover timing)."""
    keep = cf.keepalive_ms if cf.keepalive_ms is not None else 1000
    dead = cf.deadtime_ms if cf.deadtime_ms is not None else 30000
    found = []
    if dead <= keep:
        found.append(Finding(ALERT, f"deadtime {dead} ms not above keepalive {keep} ms"))
    elif dead < 2 * keep:
        found.append(Finding(WARN, f"deadtime {dead} ms under two keepalives"))
    if cf.warntime_ms is not None and not keep <= cf.warntime_ms < dead:
        found.append(Finding(WARN, f"warntime {cf.warntime_ms} ms not between keepalive and deadtime"))
    if cf.initdead_ms is not None and cf.initdead_ms < 2 * dead:
        found.append(Finding(WARN, f"initdead {cf.initdead_ms} ms under twice deadtime"))
    if cf.directives and not cf.media:
        found.append(Finding(WARN, "no heartbeat media (bcast/mcast/ucast/serial)"))
    if cf.directives and not cf.nodes and cf.autojoin in (None, "none"):
        found.append(Finding(WARN, "no node directive"))
    if cf.auto_failback is None or cf.auto_failback.lower() == "legacy":
        found.append(Finding(WARN, "auto_failback not set (legacy: no hb_standby/takeover)"))
    f = worst(found, [Finding(WARN, p) for p in cf.problems])
    cf.severity, cf.reason = f.severity, f.reason


# --- haresources ---------------------------------------------------------------------------------

@dataclass
class HaResource:
    raw: str  # as written: "Filesystem::/dev/drbd0::/data::ext3"
    agent: str  # "Filesystem"; a bare IP means "IPaddr"
    args: list[str] = field(default_factory=list)


@dataclass
class HaResourceGroup:
    node: str  # preferred (home) node
    resources: list[HaResource] = field(default_factory=list)  # start order (stop = reversed)
    line: int = 0  # first physical line of the group

    @property
    def key(self) -> str | None:
        """ResourceManager's group key (first resource), used by takegroup/givegroup."""
        return self.resources[0].raw if self.resources else None


_BARE_IP = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}(?:/\S*)?$")


def split_resource(raw: str) -> HaResource:
    """``Script::arg1::arg2`` -> HaResource; a bare IP[/mask/if/bcast] is ``IPaddr::<it>``."""
    if _BARE_IP.match(raw):
        return HaResource(raw, "IPaddr", [raw])
    agent, *args = raw.split("::")
    return HaResource(raw, agent, args)


def parse_haresources(text: Any) -> ResultList:
    """-> `ResultList` of `HaResourceGroup`, in file order."""
    return _guard(lambda: _haresources(text), ResultList)


def _haresources(raw: Any) -> ResultList:
    lines, problems = _lines(raw)
    groups: list[HaResourceGroup] = []
    logical, start = "", 0
    for n, line in enumerate(lines + [""], 1):
        if line.lstrip().startswith("#") and not logical:
            continue
        if not logical:
            start = n
        if line.endswith("\\"):  # continuation
            logical += line[:-1] + " "
            continue
        logical += line
        tokens = logical.split()
        logical = ""
        if "#" in " ".join(tokens):  # a trailing comment ends the line
            tokens = " ".join(tokens).split("#", 1)[0].split()
        if not tokens:
            continue
        if len(tokens) == 1:
            problems.append(f"line {start}: node {tokens[0][:40]!r} without resources")
            continue
        groups.append(HaResourceGroup(tokens[0], [split_resource(t) for t in tokens[1:]], start))
    if not groups and not problems:
        problems.append("no resource groups found")
    return ResultList(groups, problems=problems, format="haresources")


# --- heartbeat log -------------------------------------------------------------------------------

@dataclass
class HbLogEvent:
    timestamp: str | None  # as printed
    host: str | None
    program: str | None  # heartbeat, mach_down, ResourceManager, IPaddr2...
    pid: int | None
    level: str | None  # info | WARN | ERROR | CRIT | debug ...
    kind: str
    message: str
    node: str | None = None  # the cluster node the event is about
    detail: str | None = None  # resource group, link, interval...
    severity: Severity = Severity.OK
    reason: str = ""

    @property
    def clock(self) -> str:
        """The time of day of the timestamp (both log formats carry one), else the timestamp."""
        found = re.search(r"\d\d:\d\d:\d\d", self.timestamp or "")
        return found.group(0) if found else (self.timestamp or "?")


_SYSLOG_PREFIX = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+)\s+(?P<host>\S+)\s+"
    r"(?P<prog>[^\s\[:]+)(?:\[(?P<pid>\d{1,9})\])?:\s*(?:\[(?P<pid2>\d{1,9})\]:\s*)?(?P<rest>.*)$")
_HALOG_PREFIX = re.compile(  # heartbeat's own logfile: heartbeat[3684]: 2012/05/09_12:10:40 info: ...
    r"^(?P<prog>[^\s\[:]+)\[(?P<pid>\d{1,9})\]:\s*(?P<ts>\d{4}/\d\d/\d\d_\d\d:\d\d:\d\d)\s+(?P<rest>.*)$")
# Heartbeat 3.0's resource scripts (ResourceManager, mach_down, IPaddr2...) in its logfile:
# "2026/12/02_16:49:54  mach_down(default)[3879]:    info: ..."
_HALOG30_PREFIX = re.compile(
    r"^(?P<ts>\d{4}/\d\d/\d\d_\d\d:\d\d:\d\d)\s+(?P<prog>[^\s\[(]+)(?:\([^)]*\))?\[(?P<pid>\d{1,9})\]:\s*(?P<rest>.*)$")
_LEVEL = re.compile(r"^(?P<level>info|INFO|debug|DEBUG|notice|WARN|WARNING|warning|ERROR|error|"
                    r"CRIT|CRITICAL|crit|emerg|EMERG):\s*(?P<msg>.*)$")

# (kind, regex on the message, severity); named groups "node" and "detail" are picked up.
_LOG_EVENTS: list[tuple[str, re.Pattern, Severity]] = [(k, re.compile(p), s) for k, p, s in [
    ("shutdown_notice", r"Received shutdown notice from '(?P<node>[^']+)'", WARN),
    ("acquiring_from", r"Resources being acquired from (?P<node>\S+?)\.?$", WARN),
    ("taking_over_group", r"Taking over resource group (?P<detail>.+?)\s*$", WARN),
    ("takeover_complete", r"mach_down takeover complete(?: for node (?P<node>\S+?))?\.?$", OK),
    ("foreign_acquired", r"foreign resources acquired", OK),
    ("acquiring_group", r"Acquiring resource group: (?P<node>\S+) (?P<detail>.+?)\s*$", OK),
    ("releasing_group", r"Releasing resource group: (?P<node>\S+) (?P<detail>.+?)\s*$", OK),
    ("local_acquisition_complete", r"Local Resource acquisition completed", OK),
    ("initial_acquisition_complete", r"Initial resource acquisition complete", OK),
    ("node_dead", r"[Nn]ode (?P<node>\S+?): is dead", ALERT),
    ("link_dead", r"Link (?P<node>[^\s:]+):(?P<detail>\S+?) dead", WARN),
    ("link_up", r"Link (?P<node>[^\s:]+):(?P<detail>\S+?) up", OK),
    ("late_heartbeat", r"Late heartbeat: Node (?P<node>\S+?): interval (?P<detail>\d+ ms)", WARN),
    ("node_status", r"Status update for node (?P<node>\S+?): status (?P<detail>\S+)", OK),
    ("node_returning", r"Cluster node (?P<node>\S+) returning after partition", WARN),
    ("giving_up_resources", r"Giving up all HA resources", OK),
    ("resources_relinquished", r"All HA resources relinquished", OK),
    ("shutdown_complete", r"(?P<node>\S+) Heartbeat shutdown complete", OK),
    ("dead_node_gave_up", r"Dead node (?P<node>\S+) gave up resources", OK),
    ("remote_transition_complete", r"remote resource transition completed", OK),
    ("standby_done", r"Standby resource acquisition done(?: \[(?P<detail>\w+)\])?", OK),
    ("standby_no_reply", r"No reply to standby request", WARN),
    ("standby_ignored", r"standby message .* ignored", WARN),
    ("both_own_resources", r"Both machines own .*resources!", ALERT),
    ("no_one_owns_resources", r"No one owns .*resources!", ALERT),
    ("resource_failure", r"Resource STOP failure|Giving up resources due to failure|"
                         r"is active, and should not be!", ALERT),
    ("no_stonith", r"No STONITH device configured", WARN),
]]


def parse_heartbeat_log(text: Any) -> ResultList:
    """Takeover/shutdown/death events of a heartbeat log -> `ResultList` of `HbLogEvent`.
    Lines that are log lines but no known event are skipped (ERROR/CRIT ones are kept)."""
    return _guard(lambda: _heartbeat_log(text), ResultList)


def _heartbeat_log(raw: Any) -> ResultList:
    lines, problems = _lines(raw)
    events: list[HbLogEvent] = []
    seen_log_line = False
    for line in lines:
        s = line.strip()
        if not s:
            continue
        m = _SYSLOG_PREFIX.match(s) or _HALOG_PREFIX.match(s) or _HALOG30_PREFIX.match(s)
        ts = host = prog = pid = level = None
        rest = s
        if m:
            seen_log_line = True
            g = m.groupdict()
            ts, host, prog, rest = g["ts"], g.get("host"), g["prog"], g["rest"]
            pid_s = g.get("pid2") or g.get("pid")
            pid = int(pid_s) if pid_s else None
        if lv := _LEVEL.match(rest):
            level, rest = lv.group("level"), lv.group("msg")
        event = _log_event(rest, ts, host, prog, pid, level)
        if event is not None:
            events.append(event)
    if not seen_log_line and any(ln.strip() for ln in lines):
        problems.append("no log lines found")
    return ResultList(events, problems=problems, format="heartbeat-log")


def _log_event(msg, ts, host, prog, pid, level) -> HbLogEvent | None:
    for kind, rx, sev in _LOG_EVENTS:
        if m := rx.search(msg):
            g = m.groupdict()
            ev = HbLogEvent(ts, host, prog, pid, level, kind, msg, g.get("node"), g.get("detail"))
            if kind == "node_status" and ev.detail == "dead":
                sev = ALERT
            ev.severity, ev.reason = sev, (msg[:120] if sev else "")
            return ev
    if level and level.upper().startswith(("ERROR", "CRIT", "EMERG")):
        sev = WARN if level.upper() == "ERROR" else ALERT
        return HbLogEvent(ts, host, prog, pid, level, "error", msg, severity=sev, reason=msg[:120])
    return None

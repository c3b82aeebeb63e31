"""Pacemaker status parsers.

* `parse_crm_mon(xml)` -> `PacemakerStatus`: ``crm_mon --one-shot --output-as=xml`` (2.0.3+,
  ``<pacemaker-result>`` envelope) and the 1.1 ``crm_mon -1 --as-xml`` ``<crm_mon>`` layout.
  Clones, groups and bundles are flattened into `PcmkResource` entries that keep their parent
  ids.  Roles are normalised (Master -> Promoted, Slave -> Unpromoted), agents to the 2.1+
  spelling (``ocf::heartbeat:IPaddr2`` -> ``ocf:heartbeat:IPaddr2``).  Input that is not XML is
  handed to `parse_crm_mon_text`.
* `parse_crm_mon_text(text)`: fallback for ``crm_mon -1`` text (1.1 and 2.x/3.x layouts),
  ``pcs status``, ``pcs resource status`` and the status blocks of ``crm_simulate``.
* `parse_crm_resource_locate(text)`: ``crm_resource --locate`` (text or XML).
* `parse_result_status(xml)`: the ``<status code message>`` of any ``--output-as=xml`` command.

XML is parsed with ``xml.etree.ElementTree``; input with a DOCTYPE or ENTITY declaration is
refused (a parse problem), so entity expansion never happens.

Convention (as in every collectors module): never raises; the result carries
``problems: list[str]``; unparseable input gives an empty status plus a problem.  Unknown
roles are kept as printed and marked WARN.  Severity: failed/blocked resources, unclean nodes,
lost quorum, two Promoted instances of one clone -> ALERT; offline cluster nodes, standby,
maintenance, unmanaged, stopped (not disabled) resources, failed actions -> WARN.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Callable

from hatui.collectors.severity import Finding, ResultList, Severity, clean_text, worst

OK, WARN, ALERT = Severity.OK, Severity.WARN, Severity.ALERT

ROLES = {"Started", "Stopped", "Promoted", "Unpromoted"}
_ROLE_ALIASES = {"Master": "Promoted", "Slave": "Unpromoted",
                 "Masters": "Promoted", "Slaves": "Unpromoted"}


@dataclass
class PcmkNode:
    name: str
    online: bool | None = None
    standby: bool | None = None
    maintenance: bool | None = None
    id: str | None = None
    standby_onfail: bool | None = None
    pending: bool | None = None
    unclean: bool | None = None
    shutdown: bool | None = None
    is_dc: bool | None = None
    type: str | None = None  # member | remote | ping | unknown
    health: str | None = None  # red | yellow | green
    resources_running: int | None = None
    severity: Severity = Severity.OK
    reason: str = ""


@dataclass
class PcmkResource:
    id: str
    agent: str | None = None  # "ocf:heartbeat:IPaddr2"
    role: str | None = None  # Started | Stopped | Promoted | Unpromoted (others as printed)
    active: bool | None = None
    failed: bool | None = None
    nodes: list[str] = field(default_factory=list)
    parent: str | None = None  # outermost clone/group/bundle id
    parents: list[str] = field(default_factory=list)  # outermost first
    parent_kind: str | None = None  # clone | group | bundle (of the outermost parent)
    promotable: bool = False
    raw_role: str | None = None  # as printed ("Master")
    target_role: str | None = None
    disabled: bool = False  # target-role Stopped here or on a parent
    managed: bool | None = None
    blocked: bool | None = None
    orphaned: bool | None = None
    maintenance: bool | None = None
    severity: Severity = Severity.OK
    reason: str = ""


@dataclass
class PcmkFailure:
    op_key: str
    node: str | None = None
    exitstatus: str | None = None
    exitreason: str | None = None
    exitcode: int | None = None
    call: str | None = None
    status: str | None = None
    task: str | None = None
    interval: str | None = None
    last_rc_change: str | None = None

    @property
    def resource(self) -> str:
        """``dummy-2_monitor_0`` -> ``dummy-2``."""
        parts = self.op_key.rsplit("_", 2)
        return parts[0] if len(parts) == 3 else self.op_key


@dataclass
class PcmkBan:
    id: str
    resource: str | None = None
    node: str | None = None
    weight: str | None = None
    promoted_only: bool | None = None


@dataclass
class PacemakerStatus:
    layout: str = ""  # pacemaker-result | crm_mon | text
    version: str | None = None  # <crm_mon version> or the DC's version
    api_version: str | None = None
    stack: str | None = None
    dc: str | None = None
    with_quorum: bool | None = None
    maintenance_mode: bool | None = None
    stonith_enabled: bool | None = None
    nodes: list[PcmkNode] = field(default_factory=list)
    resources: list[PcmkResource] = field(default_factory=list)
    failures: list[PcmkFailure] = field(default_factory=list)
    bans: list[PcmkBan] = field(default_factory=list)
    status_code: int | None = None
    status_message: str | None = None
    disconnected: str | None = None  # <crm-mon-disconnected description>
    severity: Severity = Severity.OK
    reason: str = ""
    problems: list[str] = field(default_factory=list)

    def node(self, name: str) -> PcmkNode | None:
        return next((n for n in self.nodes if n.name == name), None)

    def resources_of(self, rid: str) -> list[PcmkResource]:
        """Entries whose id or any parent id is ``rid``."""
        return [r for r in self.resources if r.id == rid or rid in r.parents]

    def promoted_nodes(self, rid: str) -> list[str]:
        return [n for r in self.resources_of(rid) if r.role == "Promoted" for n in r.nodes]


# --- helpers -------------------------------------------------------------------------------------

def _b(v: str | None) -> bool | None:
    if v is None:
        return None
    v = v.strip().lower()
    return True if v in ("true", "yes", "1") else False if v in ("false", "no", "0") else None


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def _agent(a: str | None) -> str | None:
    return a.replace("::", ":") if a else a


def _role(raw: str | None) -> str | None:
    return _ROLE_ALIASES.get(raw, raw) if raw else None


_UNSAFE = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_START = re.compile(r"^\s*<(?:\?xml|pacemaker-result|crm_mon|crm-mon|nodes)\b", re.MULTILINE)


def _load_xml(text: str) -> tuple[ET.Element | None, list[str]]:
    if _UNSAFE.search(text):
        return None, ["XML with DOCTYPE/ENTITY declarations refused"]
    m = _XML_START.search(text)
    body = text[m.start():] if m else text  # skip stderr noise printed before the XML
    for end in ("</pacemaker-result>", "</crm_mon>"):  # ... and after it
        if (k := body.rfind(end)) >= 0:
            body = body[:k + len(end)]
            break
    try:
        return ET.fromstring(body.strip()), []
    except (ET.ParseError, ValueError, RecursionError) as exc:
        return None, [f"XML parse error: {exc}"]


# --- crm_mon XML ---------------------------------------------------------------------------------

def parse_crm_mon(xml: Any) -> PacemakerStatus:
    """``crm_mon --output-as=xml`` / ``crm_mon --as-xml`` (text falls back to the text parser)."""

    def parse() -> PacemakerStatus:
        text, problems = clean_text(xml)
        if not text.strip():
            return PacemakerStatus(problems=problems or ["empty input"])
        looks_xml = _XML_START.search(text) or text.lstrip().startswith("<")
        return _problems_first(problems, _parse_xml(text) if looks_xml else _parse_text(text))
    return _evaluated(parse)


def _evaluated(parse: Callable[[], PacemakerStatus]) -> PacemakerStatus:
    """`parse()` then `_evaluate` it; a parser bug becomes a WARN status, never an exception."""
    try:
        status = parse()
        _evaluate(status)
        return status
    except Exception as exc:
        problem = f"internal parser error: {type(exc).__name__}: {exc}"
        return PacemakerStatus(severity=WARN, reason=problem, problems=[problem])


def _problems_first(problems: list[str], status: PacemakerStatus) -> PacemakerStatus:
    """The input's own problems (from clean_text) go before the parser's."""
    status.problems[:0] = problems
    return status


def _parse_xml(text: str) -> PacemakerStatus:
    root, problems = _load_xml(text)
    st = PacemakerStatus(problems=problems)
    if root is None:
        return st
    if root.tag == "pacemaker-result":
        st.layout, st.api_version = "pacemaker-result", root.get("api-version")
        status = root.find("status")
        if status is not None:
            st.status_code, st.status_message = _int(status.get("code")), status.get("message")
            if st.status_code not in (None, 0):
                st.problems.append(f"crm_mon status {st.status_code}: {st.status_message}")
        body = root
    elif root.tag == "crm_mon":
        st.layout, st.version, body = "crm_mon", root.get("version"), root
    else:
        st.problems.append(f"not crm_mon XML (root <{root.tag}>)")
        return st
    disc = body.find("crm-mon-disconnected")
    if disc is not None:
        st.disconnected = disc.get("description") or disc.get("pacemakerd-state") or "disconnected"
        st.problems.append(f"crm_mon disconnected: {st.disconnected}")
    _xml_summary(body.find("summary"), st)
    for n in body.iterfind("nodes/node"):
        if n.get("name"):
            st.nodes.append(PcmkNode(
                name=n.get("name"), id=n.get("id"), online=_b(n.get("online")),
                standby=_b(n.get("standby")), standby_onfail=_b(n.get("standby_onfail")),
                maintenance=_b(n.get("maintenance")), pending=_b(n.get("pending")),
                unclean=_b(n.get("unclean")), shutdown=_b(n.get("shutdown")),
                is_dc=_b(n.get("is_dc")), type=n.get("type"), health=n.get("health"),
                resources_running=_int(n.get("resources_running"))))
    resources = body.find("resources")
    if resources is not None:
        _xml_resources(resources, [], False, False, st.resources)
    for f in body.iterfind("failures/failure"):
        st.failures.append(PcmkFailure(
            op_key=f.get("op_key") or f.get("id") or "?", node=f.get("node"),
            exitstatus=f.get("exitstatus"), exitreason=f.get("exitreason"),
            exitcode=_int(f.get("exitcode")), call=f.get("call"), status=f.get("status"),
            task=f.get("task"), interval=f.get("interval"),
            last_rc_change=f.get("last-rc-change")))
    for b in body.iterfind("bans/ban"):
        st.bans.append(PcmkBan(id=b.get("id") or "?", resource=b.get("resource"),
                               node=b.get("node"), weight=b.get("weight"),
                               promoted_only=_b(b.get("promoted-only") or b.get("master_only"))))
    return st


def _xml_summary(summary: ET.Element | None, st: PacemakerStatus) -> None:
    if summary is None:
        return
    if (stack := summary.find("stack")) is not None:
        st.stack = stack.get("type")
    if (dc := summary.find("current_dc")) is not None:
        if _b(dc.get("present")) is not False:
            st.dc = dc.get("name")
        st.with_quorum = _b(dc.get("with_quorum"))
        st.version = st.version or dc.get("version") or None
    if (opts := summary.find("cluster_options")) is not None:
        st.maintenance_mode = _b(opts.get("maintenance-mode"))
        st.stonith_enabled = _b(opts.get("stonith-enabled") or opts.get("fencing-enabled"))


def _xml_resources(elem: ET.Element, parents: list[tuple[str, str]], promotable: bool,
                   disabled: bool, out: list[PcmkResource]) -> None:
    for child in elem:
        tag = child.tag
        if tag == "resource":
            raw_role = child.get("role")
            target = child.get("target_role")
            out.append(PcmkResource(
                id=child.get("id") or "?", agent=_agent(child.get("resource_agent")),
                role=_role(raw_role), raw_role=raw_role, active=_b(child.get("active")),
                failed=_b(child.get("failed")),
                nodes=[n.get("name") for n in child.iterfind("node") if n.get("name")],
                parent=parents[0][1] if parents else None, parents=[p[1] for p in parents],
                parent_kind=parents[0][0] if parents else None, promotable=promotable,
                target_role=target,
                disabled=disabled or (target or "").lower() == "stopped",
                managed=_b(child.get("managed")), blocked=_b(child.get("blocked")),
                orphaned=_b(child.get("orphaned") or child.get("removed")),
                maintenance=_b(child.get("maintenance"))))
        elif tag in ("clone", "group", "bundle"):
            off = _b(child.get("disabled")) or (child.get("target_role") or "").lower() == "stopped"
            _xml_resources(child, parents + [(tag, child.get("id") or "?")],
                           promotable or bool(_b(child.get("multi_state"))), disabled or off, out)
        elif tag == "replica":  # bundle replica: its resources belong to the bundle
            _xml_resources(child, parents, promotable, disabled, out)


# --- crm_mon / pcs / crm_simulate text -----------------------------------------------------------

def parse_crm_mon_text(text: Any) -> PacemakerStatus:
    """``crm_mon -1`` text (1.1 / 2.x / 3.x), ``pcs status``, ``pcs resource status``."""

    def parse() -> PacemakerStatus:
        clean, problems = clean_text(text)
        return _problems_first(problems, _parse_text(clean))
    return _evaluated(parse)


_BULLET = re.compile(r"^(\s*)(?:\*\s+)?(.*?)\s*$")
_SECTION = re.compile(r"^[A-Z][\w /!-]*:$")
_IGNORED_SECTIONS = {"PCSD Status:", "Daemon Status:", "Node Attributes:", "Migration Summary:",
                     "Operations:", "Tickets:", "Negative Location Constraints:",
                     "Fencing History:", "Transition Summary:", "Revised Cluster Status:",
                     "Executing Cluster Transition:", "Cluster Summary:"}
_NODE_LIST = re.compile(r"^(Online|OFFLINE|GuestOnline|GuestOFFLINE|RemoteOnline|RemoteOFFLINE)"
                        r":\s*\[\s*(.*?)\s*\]$")
_NODE_ONE = re.compile(r"^(?:Node|GuestNode|RemoteNode)\s+([^\s@:]+)(?:@\S+)?(?:\s+\(\S+\))?:\s*(.*)$")
_DC = re.compile(r"^Current DC:\s*(\S+).*?(?:partition (with quorum|WITHOUT quorum))?$")
_CONTAINER = re.compile(r"^(Clone Set|Master/Slave Set|Resource Group|Container bundle set):\s*"
                        r"(\S+?)(?:\s+\[(\S+)\])?(?:\s+\(([^)]*)\))?:?$")
_PRIMITIVE = re.compile(r"^(\S+)(?:\s+\([^)]*\))?\s+\(([^()\s]+)\):\s*(.*)$")
_CLONE_SUMMARY = re.compile(r"^(Started|Stopped|Promoted|Unpromoted|Masters|Slaves|Master|Slave)"
                            r"(?:\s+\([^)]*\))?:\s*\[\s*(.*?)\s*\]$")
_FAILED_ACTION = re.compile(r"^(\S+) on (\S+) '([^']*)' \((\d+)\):\s*(.*)$")
_ROLE_WORDS = ROLES | set(_ROLE_ALIASES) | {"Starting", "Stopping", "Migrating", "Promoting",
                                           "Demoting", "Unknown"}


def _parse_text(text: str) -> PacemakerStatus:
    st = PacemakerStatus(layout="text")
    section = ""
    stack: list[tuple[int, str, str, str | None, bool]] = []  # indent, kind, id, child, promotable
    seen = False
    for line in text.split("\n"):
        m = _BULLET.match(line.expandtabs(8))
        indent, s = len(m.group(1)), m.group(2)
        if not s:
            continue
        if _SECTION.match(s) and not _NODE_LIST.match(s):
            section, stack = s, []
            continue
        if section in _IGNORED_SECTIONS - {"Cluster Summary:"}:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if section.startswith("Failed") and (fm := _FAILED_ACTION.match(s)):
            st.failures.append(PcmkFailure(op_key=fm.group(1), node=fm.group(2),
                                           exitstatus=fm.group(3), exitcode=_int(fm.group(4))))
            seen = True
        elif _text_summary(s, st) or _text_nodes(s, st):
            seen = True
        elif cm := _CONTAINER.match(s):
            kind = {"Resource Group": "group", "Container bundle set": "bundle"}.get(
                cm.group(1), "clone")
            promo = cm.group(1) == "Master/Slave Set" or "promotable" in (cm.group(4) or "")
            promo = promo or any(p[4] for p in stack)
            stack.append((indent, kind, cm.group(2), cm.group(3), promo))
            seen = True
        elif sm := _CLONE_SUMMARY.match(s):
            if stack:
                _, _, _, child, promo = stack[-1]
                role = _role(sm.group(1).rstrip("s") if sm.group(1) in ("Masters", "Slaves")
                             else sm.group(1))
                disabled = "(disabled)" in s
                for node in sm.group(2).split():
                    st.resources.append(_text_resource(
                        child or stack[-1][2], None, role, [] if role == "Stopped" else [node],
                        stack, raw_role=sm.group(1), disabled=disabled))
                seen = True
        elif pm := _PRIMITIVE.match(s):
            st.resources.append(_text_primitive(pm, stack))
            seen = True
    if not seen:
        first = next((ln.strip() for ln in text.split("\n") if ln.strip()), "")
        st.problems.append(f"no Pacemaker status found: {first[:80]!r}" if first else "empty input")
    return st


def _text_summary(s: str, st: PacemakerStatus) -> bool:
    if m := _DC.match(s):
        st.dc = None if m.group(1) == "NONE" else m.group(1)
        st.with_quorum = None if not m.group(2) else m.group(2) == "with quorum"
    elif m := re.match(r"^Stack:\s*(\S+)", s):
        st.stack = m.group(1)
    elif m := re.match(r"^Version:\s*(\S+)", s):
        st.version = m.group(1)
    elif "Resource management is DISABLED" in s:
        st.maintenance_mode = True
    else:
        return False
    return True


def _text_nodes(s: str, st: PacemakerStatus) -> bool:
    if m := _NODE_LIST.match(s):
        kind = m.group(1)
        online = "Online" in kind
        ntype = "remote" if kind.startswith(("Guest", "Remote")) else "member"
        for name in m.group(2).split():
            node = st.node(name) or PcmkNode(name=name)
            if node not in st.nodes:
                st.nodes.append(node)
            node.online, node.type = online, node.type or ntype
        return True
    if m := _NODE_ONE.match(s):
        name, state = m.group(1), m.group(2).lower()
        node = st.node(name) or PcmkNode(name=name)
        if node not in st.nodes:
            st.nodes.append(node)
        node.type = node.type or ("remote" if s.startswith(("Guest", "Remote")) else "member")
        node.online = "offline" not in state and "pending" not in state
        node.standby = "standby" in state
        node.maintenance = "maintenance" in state
        node.unclean = "unclean" in state
        node.pending = "pending" in state
        return True
    return False


def _text_resource(rid: str, agent: str | None, role: str | None, nodes: list[str],
                   stack: list, raw_role: str | None = None, **flags: Any) -> PcmkResource:
    return PcmkResource(
        id=rid, agent=_agent(agent), role=role, raw_role=raw_role or role,
        active=role not in (None, "Stopped"), nodes=nodes,
        parent=stack[0][2] if stack else None, parents=[p[2] for p in stack],
        parent_kind=stack[0][1] if stack else None, promotable=any(p[4] for p in stack),
        **flags)


def _text_primitive(m: re.Match, stack: list) -> PcmkResource:
    rid, agent, state = m.groups()
    notes = [n.strip().lower() for n in re.findall(r"\(([^)]*)\)", state)]
    words = re.sub(r"\([^)]*\)", " ", state).split()
    failed = bool(words) and words[0] == "FAILED"
    if failed:
        words = words[1:]
    raw_role = words.pop(0) if words and words[0] in _ROLE_WORDS else ("Started" if failed else None)
    return _text_resource(
        rid, agent, _role(raw_role), [] if raw_role == "Stopped" else words, stack,
        raw_role=raw_role, failed=failed, disabled="disabled" in notes,
        managed=False if "unmanaged" in notes else None,
        maintenance=True if "maintenance" in notes else None,
        blocked=True if any("blocked" in n for n in notes) else None)


# --- severity ------------------------------------------------------------------------------------

def _node_findings(n: PcmkNode) -> list[Finding]:
    f = []
    if n.unclean:
        f.append(Finding(ALERT, "unclean"))
    if n.online is False:
        # remote/guest nodes go offline with their (stopped) bundle; Pacemaker does not flag them
        f.append(Finding(WARN if n.type in (None, "member") else OK, "offline"))
    if n.standby or n.standby_onfail:
        f.append(Finding(WARN, "standby"))
    if n.maintenance:
        f.append(Finding(WARN, "maintenance"))
    if n.pending:
        f.append(Finding(WARN, "pending"))
    if n.shutdown:
        f.append(Finding(WARN, "shutting down"))
    if n.health in ("red", "yellow"):
        f.append(Finding(ALERT if n.health == "red" else WARN, f"health {n.health}"))
    return f


def _resource_findings(r: PcmkResource) -> list[Finding]:
    f = []
    if r.failed:
        f.append(Finding(ALERT, "failed"))
    if r.blocked:
        f.append(Finding(ALERT, "blocked"))
    if r.managed is False:
        f.append(Finding(WARN, "unmanaged"))
    if r.maintenance:
        f.append(Finding(WARN, "maintenance"))
    if r.orphaned:
        f.append(Finding(WARN, "orphaned"))
    if r.role and r.role not in ROLES:
        f.append(Finding(WARN, f"role {r.role}"))
    # spare clone instances are always Stopped; disabled resources are meant to be
    if r.role == "Stopped" and not r.disabled and r.parent_kind != "clone":
        f.append(Finding(WARN, "Stopped"))
    return f


def _evaluate(st: PacemakerStatus) -> None:
    found: list[Finding] = [Finding(WARN, p) for p in st.problems]
    for n in st.nodes:
        nf = worst(_node_findings(n))
        n.severity, n.reason = nf.severity, nf.reason
        if nf:
            found.append(Finding(nf.severity, f"node {n.name}: {nf.reason}"))
    promoted: dict[str, int] = {}
    for r in st.resources:
        rf = worst(_resource_findings(r))
        r.severity, r.reason = rf.severity, rf.reason
        if rf:
            found.append(Finding(rf.severity, f"{r.id}: {rf.reason}"))
        if r.role == "Promoted" and r.parent:
            promoted[r.parent] = promoted.get(r.parent, 0) + 1
    found += [Finding(ALERT, f"{p}: {c} Promoted instances") for p, c in promoted.items() if c > 1]
    found += [Finding(WARN, f"failed action {x.op_key} on {x.node} ({x.exitstatus})")
              for x in st.failures]
    if st.with_quorum is False:
        found.append(Finding(ALERT, "partition WITHOUT quorum"))
    if st.maintenance_mode:
        found.append(Finding(WARN, "cluster in maintenance mode"))
    if st.disconnected:
        found.append(Finding(ALERT, f"crm_mon disconnected: {st.disconnected}"))
    total = worst(found)
    st.severity, st.reason = total.severity, total.reason


# --- crm_resource --locate, command status -------------------------------------------------------

@dataclass
class ResourceLocation:
    resource: str | None
    node: str
    role: str | None = None  # Promoted when printed, else None (plain "running")


_LOCATE = re.compile(r"^resource (\S+) is running on: (\S+)(?:\s+(\w+))?\s*$")


def parse_crm_resource_locate(text: Any) -> ResultList:
    """``crm_resource --locate -r R`` (text or ``--output-as=xml``) -> list of locations;
    an empty list (no problem) when the output says the resource is NOT running."""
    try:
        clean, problems = clean_text(text)
        out: list[ResourceLocation] = []
        if "<" in clean:
            root, more = _load_xml(clean)
            problems += more
            nodes = root.find("nodes") if root is not None else None
            if nodes is None and root is not None and root.tag == "nodes":
                nodes = root
            if nodes is not None:
                for n in nodes.iterfind("node"):
                    state = n.get("state")
                    out.append(ResourceLocation(nodes.get("resource"), (n.text or "").strip(),
                                                _role(state.capitalize()) if state else None))
            elif root is not None:
                problems.append("no <nodes> element")
        else:
            for line in clean.split("\n"):
                if m := _LOCATE.match(line.strip()):
                    out.append(ResourceLocation(m.group(1), m.group(2), _role(m.group(3))))
            if not out and "NOT running" not in clean:
                problems.append("no location found")
        return ResultList(out, problems=problems, format="crm_resource-locate")
    except Exception as exc:
        return ResultList(problems=[f"internal parser error: {type(exc).__name__}: {exc}"])


@dataclass
class PcmkResult:
    code: int | None = None
    message: str | None = None
    request: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.code == 0


def parse_result_status(xml: Any) -> PcmkResult:
    """``<pacemaker-result request=..><status code message/></pacemaker-result>`` of any tool."""
    try:
        text, problems = clean_text(xml)
        root, more = _load_xml(text) if text.strip() else (None, ["empty input"])
        res = PcmkResult(problems=problems + more)
        if root is None:
            return res
        status = root.find("status") if root.tag != "status" else root
        res.request = root.get("request")
        if status is None:
            res.problems.append("no <status> element")
        else:
            res.code, res.message = _int(status.get("code")), status.get("message")
        return res
    except Exception as exc:
        return PcmkResult(problems=[f"internal parser error: {type(exc).__name__}: {exc}"])

"""DRBD state parsers: one entry point, `parse_drbd(text)`, for every status format DRBD prints.

Formats (auto-detected):

* ``proc``    - ``/proc/drbd`` of DRBD 8.0 to 8.4 (legacy ``st:``, blank protocol letter when
  StandAlone, skipped minors, resync/verify progress with ``K`` or ``M`` units, finish/speed).
* ``status``  - ``drbdadm status`` / ``drbdsetup status [--verbose --statistics]`` text (DRBD 9,
  and 8.4 with new utils), wrapped continuation lines joined back.
* ``json``    - ``drbdsetup status --json``.
* ``events2`` - ``drbdsetup events2`` (``exists`` dump and ``create/change/destroy`` stream,
  merged into the state they describe; ``--timestamps``, ``--statistics``, ``--diff`` and colour
  variants).

Model: `DrbdResource` (local side) with `DrbdVolume`s and `DrbdPeer`s (per connection, with their
`DrbdPeerDevice`s per volume).  State words are kept exactly as DRBD prints them.  /proc/drbd's
combined ``cs:`` is split into connection + replication (``SyncTarget`` -> ``Connected`` +
``SyncTarget``; ``Connected`` -> ``Connected`` + ``Established``; ``WFConnection`` ->
``WFConnection`` + None).

Parse-problem convention (same in every collectors module): parsers never raise.  They return a
result carrying ``problems: list[str]`` - here a `ResultList` (a ``list`` of `DrbdResource` with
``.problems`` and ``.format``).  Input that cannot be read at all gives an empty list plus a
problem; lines that cannot be read are skipped and named in ``problems``.  Unknown state words
are kept as printed and make their item WARN ("unknown disk state 'Foo'").

Severity: ALERT for split brain, StandAlone, two Primaries (unless ``allow_two_primaries``), a
Primary whose disk is not UpToDate, local Failed/Diskless disk (unless a diskless client), I/O
suspended, quorum lost; WARN for connecting/waiting, resync/verify/Ahead/Behind, peer disk not
UpToDate, out-of-sync > 0, local disk not UpToDate, unknown words; OK otherwise.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from hatui.collectors.severity import Finding, ResultList, Severity, clean_text, worst

ALERT, WARN = Severity.ALERT, Severity.WARN

# --- vocabularies (drbd-headers drbd_strings.c, 8.4 and 9) ---------------------------------------
ROLES = {"Primary", "Secondary", "Unknown"}
DISK_STATES = {"Diskless", "Attaching", "Detaching", "Failed", "Negotiating", "Inconsistent",
               "Outdated", "DUnknown", "Consistent", "UpToDate"}
CONN_WAITING = {"Connecting", "WFConnection", "WFReportParams", "Unconnected", "Timeout",
                "BrokenPipe", "NetworkFailure", "ProtocolError", "TearDown", "Disconnecting"}
CONN_STATES = CONN_WAITING | {"StandAlone", "Connected"}
REPL_SYNC = {"StartingSyncS", "StartingSyncT", "WFBitMapS", "WFBitMapT", "WFSyncUUID",
             "SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT"}
REPL_VERIFY = {"VerifyS", "VerifyT"}
REPL_STATES = REPL_SYNC | REPL_VERIFY | {"Off", "Established", "Ahead", "Behind"}
# Order used to pick the "representative" disk of several volumes: the worst one wins.
_DISK_RANK = ["Failed", "Diskless", "Inconsistent", "Outdated", "DUnknown", "Detaching",
              "Attaching", "Negotiating", "Consistent", "UpToDate"]


@dataclass
class DrbdVolume:
    """One local device (volume) of a resource."""

    volume: int | None = None
    minor: int | None = None
    disk: str | None = None
    client: bool | None = None  # DRBD 9 intentionally diskless client
    quorum: bool | None = None
    open: str | None = None
    blocked: str | None = None
    size_kib: int | None = None


@dataclass
class DrbdPeerDevice:
    """One volume as seen towards one peer."""

    volume: int | None = None
    replication: str | None = None
    disk: str | None = None  # the peer's disk state
    client: bool | None = None  # peer is a diskless client
    resync_suspended: str | None = None
    done: float | None = None  # resync/verify progress, percent
    out_of_sync_kib: int | None = None
    eta_s: float | None = None


@dataclass
class DrbdPeer:
    name: str | None = None  # None in /proc/drbd (8.x has a single, unnamed peer)
    connection: str | None = None
    role: str | None = None
    disk: str | None = None  # representative (worst) peer disk over the volumes
    replication: str | None = None
    done: float | None = None  # resync/verify progress, percent
    out_of_sync_kib: int | None = None  # summed over volumes
    severity: Severity = Severity.OK
    reason: str = ""
    eta_s: float | None = None
    speed_kib_s: int | None = None  # /proc/drbd only
    node_id: int | None = None
    client: bool | None = None  # the peer is a diskless client
    congested: bool | None = None
    volumes: list[DrbdPeerDevice] = field(default_factory=list)


@dataclass
class DrbdResource:
    name: str | None = None  # None in /proc/drbd
    minor: int | None = None  # first volume's minor
    role: str | None = None
    disk: str | None = None  # representative (worst) local disk over the volumes
    peers: list[DrbdPeer] = field(default_factory=list)
    severity: Severity = Severity.OK
    reason: str = ""
    volumes: list[DrbdVolume] = field(default_factory=list)
    node_id: int | None = None
    suspended: str | None = None  # "no", "user", "no-data,quorum"... as printed
    quorum: bool | None = None
    split_brain: bool = False  # seen a split-brain helper call (events2)
    io_flags: str | None = None  # /proc/drbd "r-----"
    protocol: str | None = None  # /proc/drbd "C" (None when blank)
    version: str | None = None  # /proc/drbd "version:" line
    timestamp: str | None = None  # events2 --timestamps: last event touching the resource
    source: str = ""  # proc | status | json | events2

    @property
    def peer(self) -> DrbdPeer | None:
        """The first peer (the only one in a two-node pair)."""
        return self.peers[0] if self.peers else None


# --- entry point ---------------------------------------------------------------------------------

def parse_drbd(text: Any, *, allow_two_primaries: bool = False) -> ResultList:
    """Parse any DRBD status output into a `ResultList` of `DrbdResource`. Never raises."""
    try:
        return _parse(text, allow_two_primaries)
    except Exception as exc:  # a parser bug must not take the console down
        return ResultList(problems=[f"internal parser error: {type(exc).__name__}: {exc}"])


def _parse(raw: Any, allow_two_primaries: bool) -> ResultList:
    text, problems = clean_text(raw)
    if not text.strip():
        return ResultList(problems=problems or ["empty input"])
    fmt = _detect(text)
    if fmt == "json":
        resources, more = _parse_json(text)
    elif fmt == "events2":
        resources, more = _parse_events2(text)
    elif fmt == "proc":
        resources, more = _parse_proc(text)
    elif fmt == "status":
        resources, more = _parse_status(text)
    else:
        first = next((ln.strip() for ln in text.split("\n") if ln.strip()), "")
        return ResultList(problems=problems + [f"unrecognised DRBD output: {first[:120]!r}"])
    for res in resources:
        res.source = fmt
        _summarise(res)
        _evaluate(res, allow_two_primaries)
    return ResultList(resources, problems=problems + more, format=fmt)


_EV_LINE = re.compile(r"^(?:(\S+)\s+)?(exists|create|change|destroy|call|response|rename)\s+"
                      r"(resource|device|connection|peer-device|path|helper|-)(?:\s|$)")
_PROC_MINOR = re.compile(r"^\s*(\d{1,9}):\s*cs:(\S+)")
_PROC_VERSION = re.compile(r"^version:\s*(\S+)\s*\(api:")
_STATUS_RES = re.compile(r"^[^\s:]+(?:\s+node-id:\d+)?\s+role:\S+")


def _detect(text: str) -> str:
    head = text.lstrip()
    if head[:1] in "[{":
        try:
            json.loads(head)
            return "json"
        except (ValueError, RecursionError):
            pass  # "[root@host ~]# drbdadm status" is not JSON
    lines = text.split("\n")
    if any(_EV_LINE.match(ln) for ln in lines):
        return "events2"
    if any(_PROC_MINOR.match(ln) or _PROC_VERSION.match(ln) for ln in lines):
        return "proc"
    if any(_STATUS_RES.match(ln) for ln in lines) or "No currently configured DRBD" in text:
        return "status"
    return ""


# --- small converters (fuzz-proof) ---------------------------------------------------------------

def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if math.isfinite(v) else None
    try:
        return int(str(v).replace(",", ""))
    except (TypeError, ValueError):
        return None


def _float(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None  # "eta:nan" means "unknown"


def _bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower() if v is not None else ""
    if s in ("yes", "true", "1", "on"):
        return True
    if s in ("no", "false", "0", "off"):
        return False
    return None


def _str(v: Any) -> str | None:
    if v is None or isinstance(v, (dict, list)):
        return None
    if isinstance(v, bool):
        return "yes" if v else "no"
    s = str(v).strip()
    return s or None


def _kv(tokens: list[str]) -> dict[str, str]:
    """key:value tokens -> dict; split on the FIRST colon (paths are ``local:ipv4:1.2.3.4:7789``).
    ``--diff`` values ``old->new`` keep the new value."""
    out: dict[str, str] = {}
    for tok in tokens:
        key, sep, value = tok.partition(":")
        if not sep or not key:
            continue
        if "->" in value:
            value = value.rsplit("->", 1)[1]
        out[key] = value
    return out


# --- /proc/drbd ----------------------------------------------------------------------------------

_PROC_ROLES = re.compile(r"\b(?:ro|st):([^\s/]*)/(\S*)")
_PROC_DISKS = re.compile(r"\bds:([^\s/]*)/(\S*)")
_PROC_FLAGS = re.compile(r"\s([rs][-a-zA-Z]{2,6})\s*$")
_PROC_PROGRESS = re.compile(r"(sync'ed|verified):\s*([\d.]+)%\s*\((\d+)/(\d+)\)([KM])")
_PROC_FINISH = re.compile(r"finish:\s*(\d{1,9}):(\d{1,9}):(\d{1,9})\s+speed:\s*([\d,]+)")
_PROC_HEADERS = ("version:", "GIT-hash:", "srcversion:", "Transports", "built-in")


def _split_cs(cs: str) -> tuple[str, str | None]:
    """8.x combined connection state -> (connection, replication)."""
    if cs == "Connected":
        return "Connected", "Established"
    if cs in REPL_STATES:
        return "Connected", cs
    return cs, None  # waiting states, StandAlone, Unconfigured, unknown words as printed


def _parse_proc(text: str) -> tuple[list[DrbdResource], list[str]]:
    resources: list[DrbdResource] = []
    problems: list[str] = []
    version = None
    cur: DrbdResource | None = None
    for n, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped:
            continue
        m = _PROC_VERSION.match(line)
        if m:
            version = m.group(1)
            continue
        if stripped.startswith(_PROC_HEADERS):
            continue
        m = _PROC_MINOR.match(line)
        if m:
            cur = _proc_minor(int(m.group(1)), m.group(2), line[m.end():])
            resources.append(cur)
            continue
        if cur is None or not _proc_detail(cur, stripped):
            problems.append(f"line {n}: not understood: {stripped[:80]!r}")
    for res in resources:
        res.version = version
    if not resources and version and version.startswith("9"):
        problems.append("DRBD 9 /proc/drbd carries no resource status (use drbdsetup status/events2)")
    return resources, problems


def _proc_minor(minor: int, cs: str, rest: str) -> DrbdResource:
    connection, replication = _split_cs(cs)
    res = DrbdResource(minor=minor)
    peer = DrbdPeer(connection=connection, replication=replication)
    res.peers.append(peer)
    vol = DrbdVolume(volume=0, minor=minor)
    res.volumes.append(vol)
    peer.volumes.append(DrbdPeerDevice(volume=0, replication=replication))
    if m := _PROC_ROLES.search(rest):
        res.role, peer.role = m.group(1) or None, m.group(2) or None
    if m := _PROC_DISKS.search(rest):
        vol.disk, peer.volumes[0].disk = m.group(1) or None, m.group(2) or None
        after = rest[m.end():]
        # "%c" protocol letter, a blank when there is no net config (StandAlone)
        if len(after) >= 2 and after[0] == " " and after[1] in "ABC" and after[2:3] in ("", " "):
            res.protocol = after[1]
        if f := _PROC_FLAGS.search(after):
            res.io_flags = f.group(1)
    return res


def _proc_detail(res: DrbdResource, stripped: str) -> bool:
    """One line below a minor line; False when it is not a /proc/drbd detail line."""
    peer, pd = res.peers[0], res.peers[0].volumes[0]
    tokens = stripped.split()
    if all(":" in t and not t.endswith(":") for t in tokens):  # counters line ns:.. nr:.. oos:..
        counters = _kv(tokens)
        if "oos" in counters:
            pd.out_of_sync_kib = _int(counters["oos"])
        return True
    if m := _PROC_PROGRESS.search(stripped):
        pd.done = _float(m.group(2))
        left = _int(m.group(3))
        if pd.out_of_sync_kib is None and left is not None:  # 8.0-8.2 have no oos counter
            pd.out_of_sync_kib = left * 1024 if m.group(5) == "M" else left
        return True
    if m := _PROC_FINISH.search(stripped):
        pd.eta_s = float(int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3)))
        peer.speed_kib_s = _int(m.group(4))
        return True
    # proc_details lines (resync:/act_log:/sector pos) carry nothing the console shows
    return stripped.startswith(("resync:", "act_log:")) or "sector pos:" in stripped


# --- drbdadm/drbdsetup status text ---------------------------------------------------------------

_PROMPT = re.compile(r"^(?:\[[^\]]*\]\s*[#$]|\$\s|\S+@\S+.*[#$]\s)")
_DEVICE_KEYS = {"volume", "minor", "disk", "client", "quorum", "open", "blocked", "size", "read",
                "written", "al-writes", "bm-writes", "upper-pending", "lower-pending",
                "al-suspended", "backing_dev"}


def _parse_status(text: str) -> tuple[list[DrbdResource], list[str]]:
    # 1. group lines into objects, joining wrapped continuation lines (deeper indent).
    objects: list[list[Any]] = []  # [kind, tokens, line_no]
    problems: list[str] = []
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.expandtabs(8)
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or _PROMPT.match(line):
            continue
        indent = len(line) - len(line.lstrip(" "))
        tokens = stripped.split()
        cur = objects[-1][0] if objects else None
        if indent < 2:
            if any(t.startswith("role:") for t in tokens):  # DRBD always prints the role
                objects.append(["resource", tokens, n])
            else:
                objects.append(["junk", tokens, n])
                problems.append(f"line {n}: not a resource line: {stripped[:80]!r}")
        elif cur is None:
            problems.append(f"line {n}: indented line outside a resource: {stripped[:80]!r}")
        elif cur == "junk":
            continue  # the lines of an object we could not read
        elif indent < 4:
            first = tokens[0].partition(":")[0]
            kind = "device" if ":" in tokens[0] and first in _DEVICE_KEYS else "connection"
            objects.append([kind, tokens, n])
        elif indent < 6 and cur in ("connection", "peer-device"):
            objects.append(["peer-device", tokens, n])
        else:
            objects[-1][1].extend(tokens)  # continuation of the current object
    # 2. build the model
    resources: list[DrbdResource] = []
    res: DrbdResource | None = None
    peer: DrbdPeer | None = None
    for kind, tokens, n in objects:
        if kind == "junk":
            res = peer = None
        elif kind == "resource":
            res, peer = _status_resource(tokens), None
            if res.name is None:
                problems.append(f"line {n}: resource line without a name")
            resources.append(res)
        elif res is None:
            continue
        elif kind == "device":
            kv = _kv(tokens)
            res.volumes.append(DrbdVolume(
                volume=_int(kv.get("volume", 0)), minor=_int(kv.get("minor")), disk=kv.get("disk"),
                client=_bool(kv.get("client")), quorum=_bool(kv.get("quorum")),
                open=kv.get("open"), blocked=kv.get("blocked"), size_kib=_int(kv.get("size"))))
        elif kind == "connection":
            peer = _status_connection(tokens)
            res.peers.append(peer)
        elif peer is not None:  # peer-device
            kv = _kv(tokens)
            default_repl = "Established" if peer.connection == "Connected" else "Off"
            peer.volumes.append(DrbdPeerDevice(
                volume=_int(kv.get("volume", 0)), replication=kv.get("replication", default_repl),
                disk=kv.get("peer-disk"), client=_bool(kv.get("peer-client")),
                resync_suspended=kv.get("resync-suspended"), done=_float(kv.get("done")),
                out_of_sync_kib=_int(kv.get("out-of-sync")), eta_s=_float(kv.get("eta"))))
    return resources, problems


def _status_resource(tokens: list[str]) -> DrbdResource:
    name = tokens[0] if ":" not in tokens[0] else None
    kv = _kv(tokens)
    return DrbdResource(name=name, role=kv.get("role"), node_id=_int(kv.get("node-id")),
                        suspended=kv.get("suspended"))


def _status_connection(tokens: list[str]) -> DrbdPeer:
    name = tokens[0] if ":" not in tokens[0] else None  # unnamed: "node-id:N connection:..."
    kv = _kv(tokens)
    # "connection:" is printed only when not Connected; "role:" only when Connected.
    return DrbdPeer(name=name, node_id=_int(kv.get("node-id")),
                    connection=kv.get("connection", "Connected"), role=kv.get("role"),
                    congested=_bool(kv.get("congested")))


# --- drbdsetup status --json ---------------------------------------------------------------------

def _parse_json(text: str) -> tuple[list[DrbdResource], list[str]]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return [], [f"invalid JSON: {exc}"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return [], ["JSON is not a list of resources"]
    resources, problems = [], []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            problems.append(f"JSON item {i} is not an object")
            continue
        resources.append(_json_resource(item))
    return resources, problems


def _dicts(v: Any) -> list[dict]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _json_resource(d: dict) -> DrbdResource:
    susp = d.get("suspended")
    if isinstance(susp, bool):  # 9.x JSON has booleans; name the reasons like the text output
        reasons = [k[len("suspended-"):] for k in ("suspended-user", "suspended-no-data",
                   "suspended-fencing", "suspended-quorum") if d.get(k) is True]
        susp = ",".join(reasons) or ("yes" if susp else "no")
    res = DrbdResource(name=_str(d.get("name")), role=_str(d.get("role")),
                       node_id=_int(d.get("node-id")), suspended=_str(susp))
    for dev in _dicts(d.get("devices")):
        res.volumes.append(DrbdVolume(
            volume=_int(dev.get("volume")), minor=_int(dev.get("minor")),
            disk=_str(dev.get("disk-state")), client=_bool(dev.get("client")),
            quorum=_bool(dev.get("quorum")), open=_str(dev.get("open")),
            size_kib=_int(dev.get("size"))))
    for c in _dicts(d.get("connections")):
        peer = DrbdPeer(name=_str(c.get("name")), node_id=_int(c.get("peer-node-id")),
                        connection=_str(c.get("connection-state")), role=_str(c.get("peer-role")),
                        congested=_bool(c.get("congested")))
        for pd in _dicts(c.get("peer_devices")):
            peer.volumes.append(DrbdPeerDevice(
                volume=_int(pd.get("volume")), replication=_str(pd.get("replication-state")),
                disk=_str(pd.get("peer-disk-state")), client=_bool(pd.get("peer-client")),
                resync_suspended=_str(pd.get("resync-suspended")),
                done=_float(pd.get("percent-resync-done")),
                out_of_sync_kib=_int(pd.get("out-of-sync")),
                eta_s=_float(pd.get("estimated-seconds-to-finish"))))
        res.peers.append(peer)
    return res


# --- drbdsetup events2 ---------------------------------------------------------------------------

class _Events2State:
    """The state an events2 stream describes, keyed like drbdsetup keys its objects."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, str]] = {}
        self.devices: dict[tuple[str, str], dict[str, str]] = {}
        self.connections: dict[tuple[str, str], dict[str, str]] = {}
        self.peer_devices: dict[tuple[str, str, str], dict[str, str]] = {}
        self.split_brain: set[str] = set()
        self.timestamps: dict[str, str] = {}

    def apply(self, ts: str | None, event: str, obj: str, kv: dict[str, str]) -> None:
        name = kv.get("name")
        if obj == "-" or name is None:
            return
        if ts:
            self.timestamps[name] = ts
        peer = kv.get("peer-node-id") or kv.get("conn-name") or ""
        vol = kv.get("volume", "0")
        table, key = {
            "resource": (self.resources, name),
            "device": (self.devices, (name, vol)),
            "connection": (self.connections, (name, peer)),
            "peer-device": (self.peer_devices, (name, peer, vol)),
        }.get(obj, (None, None))
        if event == "rename" and obj == "resource" and kv.get("new_name"):
            self._rename(name, kv["new_name"])
        elif event == "destroy" and table is not None:
            self._destroy(obj, key)
        elif event in ("exists", "create", "change") and table is not None:
            self.resources.setdefault(name, {})  # keep resources in order of first sight
            table.setdefault(key, {}).update(kv)
            if obj == "connection" and kv.get("connection") == "Connected":
                self.split_brain.discard(name)
        elif event == "call" and obj == "helper" and kv.get("helper") == "split-brain":
            # (not "initial-split-brain": that one runs before auto-recovery is tried)
            self.split_brain.add(name)

    def _destroy(self, obj: str, key: Any) -> None:
        def drop(table: dict, match) -> None:
            for k in [k for k in table if match(k)]:
                del table[k]
        if obj == "resource":
            for table in (self.devices, self.connections, self.peer_devices):
                drop(table, lambda k: k[0] == key)
            self.resources.pop(key, None)
        elif obj == "connection":
            self.connections.pop(key, None)
            drop(self.peer_devices, lambda k: k[:2] == key)
        elif obj == "device":
            self.devices.pop(key, None)
            drop(self.peer_devices, lambda k: (k[0], k[2]) == key)
        else:
            self.peer_devices.pop(key, None)

    def _rename(self, old: str, new: str) -> None:
        def move(table: dict) -> dict:
            return {((new,) + k[1:] if isinstance(k, tuple) and k[0] == old else
                     new if k == old else k): v for k, v in table.items()}
        self.resources = move(self.resources)
        self.devices, self.connections = move(self.devices), move(self.connections)
        self.peer_devices = move(self.peer_devices)
        if old in self.split_brain:
            self.split_brain.discard(old)
            self.split_brain.add(new)

    def build(self) -> list[DrbdResource]:
        out = []
        for name, r in self.resources.items():
            res = DrbdResource(name=name, role=r.get("role"), suspended=r.get("suspended"),
                               split_brain=name in self.split_brain,
                               timestamp=self.timestamps.get(name))
            for (rn, _), d in self.devices.items():
                if rn == name:
                    res.volumes.append(DrbdVolume(
                        volume=_int(d.get("volume")), minor=_int(d.get("minor")),
                        disk=d.get("disk"), client=_bool(d.get("client")),
                        quorum=_bool(d.get("quorum")), open=d.get("open"),
                        blocked=d.get("blocked"), size_kib=_int(d.get("size"))))
            for (rn, pkey), c in self.connections.items():
                if rn != name:
                    continue
                peer = DrbdPeer(name=c.get("conn-name"), node_id=_int(c.get("peer-node-id")),
                                connection=c.get("connection"), role=c.get("role"),
                                congested=_bool(c.get("congested")))
                for (prn, ppk, _), p in self.peer_devices.items():
                    if (prn, ppk) == (name, pkey):
                        peer.volumes.append(DrbdPeerDevice(
                            volume=_int(p.get("volume")), replication=p.get("replication"),
                            disk=p.get("peer-disk"), client=_bool(p.get("peer-client")),
                            resync_suspended=p.get("resync-suspended"),
                            done=_float(p.get("done")),
                            out_of_sync_kib=_int(p.get("out-of-sync")),
                            eta_s=_float(p.get("eta"))))
                res.peers.append(peer)
            out.append(res)
        return out


def _parse_events2(text: str) -> tuple[list[DrbdResource], list[str]]:
    state, problems = _Events2State(), []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        m = _EV_LINE.match(line.strip())
        if not m:
            problems.append(f"line {n}: not an events2 line: {line.strip()[:80]!r}")
            continue
        ts, event, obj = m.groups()
        rest = line.strip()[m.end():].split()
        state.apply(ts, event, obj, _kv(rest))
    # "change" of the done-percentage only comes while syncing: once replication leaves the
    # sync states the last "done:" must not linger.
    for pd in state.peer_devices.values():
        if pd.get("replication") not in REPL_SYNC | REPL_VERIFY:
            pd.pop("done", None)
            pd.pop("eta", None)
    return state.build(), problems


# --- summary and severity ------------------------------------------------------------------------

def _worst_disk(disks: list[str | None]) -> str | None:
    known = [d for d in disks if d]
    if not known:
        return None
    unknown = [d for d in known if d not in _DISK_RANK]
    if unknown:
        return unknown[0]
    return min(known, key=_DISK_RANK.index)


def _summarise(res: DrbdResource) -> None:
    """Fill the resource/peer summary fields from their volumes."""
    if res.volumes:
        res.disk = _worst_disk([v.disk for v in res.volumes])
        res.minor = next((v.minor for v in res.volumes if v.minor is not None), None)
        quorums = [v.quorum for v in res.volumes if v.quorum is not None]
        res.quorum = all(quorums) if quorums else None
    for peer in res.peers:
        vols = peer.volumes
        if not vols:
            continue
        peer.disk = _worst_disk([v.disk for v in vols])
        repls = [v.replication for v in vols if v.replication]
        busy = [r for r in repls if r not in ("Established", "Off")]
        peer.replication = (busy or repls or [peer.replication])[0]
        dones = [v.done for v in vols if v.done is not None]
        peer.done = min(dones) if dones else peer.done
        oos = [v.out_of_sync_kib for v in vols if v.out_of_sync_kib is not None]
        peer.out_of_sync_kib = sum(oos) if oos else None
        etas = [v.eta_s for v in vols if v.eta_s is not None]
        peer.eta_s = max(etas) if etas else peer.eta_s
        clients = [v.client for v in vols if v.client is not None]
        peer.client = all(clients) if clients else None


def _unknown(kind: str, word: str | None, known: set[str]) -> list[Finding]:
    if word and word not in known:
        return [Finding(WARN, f"unknown {kind} state {word[:40]!r}")]
    return []


def _local_findings(res: DrbdResource, allow_two_primaries: bool) -> list[Finding]:
    f: list[Finding] = _unknown("role", res.role, ROLES)
    vols = res.volumes or [DrbdVolume(disk=res.disk)]
    for v in vols:
        label = "disk" if len(vols) == 1 else f"volume {v.volume} disk"
        f += _unknown("disk", v.disk, DISK_STATES)
        if v.disk in ("Failed", "Diskless") and not v.client:
            f.append(Finding(ALERT, f"local {label} {v.disk}"))
        elif v.disk in DISK_STATES - {"UpToDate", "Diskless", "Failed"}:
            f.append(Finding(WARN, f"local {label} {v.disk}"))
        if res.role == "Primary" and v.disk and v.disk != "UpToDate" and not v.client:
            f.append(Finding(ALERT, f"Primary with {label} {v.disk}"))
        if v.blocked not in (None, "no"):
            f.append(Finding(WARN, f"I/O blocked ({v.blocked})"))
    if res.suspended not in (None, "no"):
        f.append(Finding(ALERT, f"I/O suspended ({res.suspended})"))
    if res.io_flags and res.io_flags.startswith("s"):
        f.append(Finding(ALERT, "I/O suspended"))
    if res.quorum is False:
        f.append(Finding(ALERT, "quorum lost"))
    if res.split_brain:
        f.append(Finding(ALERT, "split brain"))
    primaries = [p.name or "peer" for p in res.peers if p.role == "Primary"]
    if res.role == "Primary" and primaries and not allow_two_primaries:
        f.append(Finding(ALERT, f"two Primaries (also {', '.join(primaries)})"))
    return f


def _peer_findings(peer: DrbdPeer) -> list[Finding]:
    f: list[Finding] = _unknown("role", peer.role, ROLES)
    conn = peer.connection
    if conn == "StandAlone":
        f.append(Finding(ALERT, "StandAlone"))
    elif conn in CONN_WAITING:
        f.append(Finding(WARN, conn))
    elif conn == "Unconfigured":
        f.append(Finding(WARN, "unconfigured (down)"))
    else:
        f += _unknown("connection", conn, CONN_STATES)
    repl = peer.replication
    if repl in REPL_SYNC | REPL_VERIFY:
        done = f" {peer.done:g}%" if peer.done is not None else ""
        f.append(Finding(WARN, f"{repl}{done}"))
    elif repl in ("Ahead", "Behind"):
        f.append(Finding(WARN, repl))
    else:
        f += _unknown("replication", repl, REPL_STATES)
    vols = peer.volumes or [DrbdPeerDevice(disk=peer.disk, client=peer.client)]
    for v in vols:
        label = "peer disk" if len(vols) == 1 else f"peer volume {v.volume} disk"
        f += _unknown("disk", v.disk, DISK_STATES)
        if v.disk == "Diskless" and v.client:
            pass  # an intentionally diskless client
        elif v.disk in DISK_STATES - {"UpToDate"}:
            f.append(Finding(WARN, f"{label} {v.disk}"))
        if peer.role == "Primary" and v.disk not in (None, "UpToDate", "DUnknown"):
            sev = WARN if v.disk == "Diskless" else ALERT  # diskless Primary = DRBD 9 client
            if not v.client:
                f.append(Finding(sev, f"Primary with {label} {v.disk}"))
        if v.resync_suspended not in (None, "no"):
            f.append(Finding(WARN, f"resync suspended ({v.resync_suspended})"))
    if peer.out_of_sync_kib:
        f.append(Finding(WARN, f"{peer.out_of_sync_kib} KiB out of sync"))
    if peer.congested:
        f.append(Finding(WARN, "congested"))
    return f


def _evaluate(res: DrbdResource, allow_two_primaries: bool) -> None:
    findings = _local_findings(res, allow_two_primaries)
    for peer in res.peers:
        found = _peer_findings(peer)
        pf = worst(found)
        peer.severity, peer.reason = pf.severity, pf.reason
        who = peer.name or "peer"
        findings += [Finding(x.severity, f"{who}: {x.reason}") for x in found if x]
    total = worst(findings)
    res.severity, res.reason = total.severity, total.reason

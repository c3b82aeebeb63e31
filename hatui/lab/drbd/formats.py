"""DRBD 9 output formats of the stand-in, rendered from a state snapshot (pure functions).

The stand-in daemon keeps its true state as a *snapshot*: one dict per resource (see
`example_snapshot`). These functions print it the way drbd-utils 9 prints the kernel's state:

    status_text(snaps, verbose=, statistics=)   drbdadm status / drbdsetup status [-v] [-s]
    status_json(snaps)                          drbdsetup status --json
    events2_lines(snaps, statistics=)           drbdsetup events2 --now ("exists" lines + "exists -")
    events2_changes(old, new, statistics=)      the "create/change/destroy" lines between two snapshots

The layout follows drbd-utils' user/v9/drbdsetup.c and drbdsetup_events2.c (which fields appear
when, key order, the 80-column wrap of `wrap_printf` with continuation indents 4/6/6/8, the
trailing space after "connection-state" in JSON). Sizes are KiB like DRBD prints them.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping, Sequence

Snapshot = Mapping[str, Any]

# Replication states at or below "Established" do not print `replication:` (non-verbose).
QUIET_REPLICATION = ("Off", "Established")
SYNC_STATES = ("SyncSource", "SyncTarget", "PausedSyncS", "PausedSyncT", "StartingSyncS", "StartingSyncT",
               "WFBitMapS", "WFBitMapT", "WFSyncUUID")


def yes_no(v: Any) -> str:
    return "yes" if v else "no"


def example_snapshot() -> dict[str, Any]:
    """The shape of a snapshot (a Primary, connected and in sync); used by tests and as documentation."""
    return {
        "name": "r0", "node_id": 0, "role": "Primary", "suspended": "no", "force_io_failures": False,
        "write_ordering": "flush", "may_promote": False, "promotion_score": 10102,
        "devices": [{
            "volume": 0, "minor": 0, "disk": "UpToDate", "backing_dev": "/var/lib/hatui-drbd/r0.img",
            "client": False, "open": False, "quorum": True, "size": 65536, "read": 0, "written": 0,
            "al_writes": 0, "bm_writes": 0, "upper_pending": 0, "lower_pending": 0, "al_suspended": False,
            "blocked": "no"}],
        "connections": [{
            "peer_node_id": 1, "name": "slave", "connection": "Connected", "role": "Secondary",
            "congested": False, "ap_in_flight": 0, "rs_in_flight": 0, "tls": False,
            "paths": [{"local": ["ipv4", "10.251.1.11", 7789], "peer": ["ipv4", "10.251.1.12", 7789],
                       "established": True}],
            "peer_devices": [{
                "volume": 0, "replication": "Established", "peer_disk": "UpToDate", "peer_client": False,
                "resync_suspended": "no", "received": 0, "sent": 0, "out_of_sync": 0, "pending": 0,
                "unacked": 0, "sync": None}]}],
    }


# --------------------------------------------------------------------------------------------
# wrap_printf


class _Wrap:
    """drbd-utils' wrap_printf: tokens start with a blank; a line never exceeds `width` unless a
    single token does; wrapped and forced ("\\n") continuation lines start at the given indent."""

    def __init__(self, width: int | None):
        self.width = width or 0
        self.out: list[str] = []
        self.col = 0

    def __call__(self, indent: int, text: str) -> None:
        if text == "\n":
            if self.col:
                self.out.append("\n")
            self.col = 0
            return
        if self.col and self.width and self.col + len(text) > self.width:
            self.out.append("\n")
            self.col = 0
        if self.col == 0:
            text = " " * indent + text.lstrip(" ")
        self.out.append(text)
        self.col += len(text)

    def end(self) -> None:
        self.out.append("\n")
        self.col = 0

    def text(self) -> str:
        return "".join(self.out)


# --------------------------------------------------------------------------------------------
# drbdsetup status (text)


def _sync_done(pd: Mapping[str, Any]) -> float | None:
    sync = pd.get("sync")
    if not sync or not sync.get("rs_total"):
        return None
    total = sync["rs_total"]
    return 100.0 * (total - min(pd.get("out_of_sync", 0), total)) / total


def status_text(snaps: Sequence[Snapshot], *, verbose: bool = False, statistics: bool = False,
                width: int | None = 80, tty: bool = False) -> str:
    """`drbdsetup status` text; `drbdadm status` prints the same. Empty: the "No currently" comment."""
    if not snaps:
        return "# No currently configured DRBD found.\n"
    w = _Wrap(width)
    for res in sorted(snaps, key=lambda r: r["name"]):
        _resource_status(w, res, verbose, statistics)
        devices = res.get("devices", [])
        single = len(devices) == 1
        for dev in devices:
            _device_status(w, dev, single, verbose, statistics, tty)
        for conn in sorted(res.get("connections", []), key=lambda c: c.get("name") or ""):
            _connection_status(w, conn, devices, single, verbose, statistics, tty)
        w.end()
    return w.text()


def _resource_status(w: _Wrap, res: Snapshot, verbose: bool, statistics: bool) -> None:
    w(0, res["name"])
    if verbose:
        w(4, f" node-id:{res['node_id']}")
    w(4, f" role:{res['role']}")
    if verbose or res.get("suspended", "no") != "no":
        w(4, f" suspended:{res.get('suspended', 'no')}")
    if statistics and verbose:
        w(4, "\n")
        w(4, f" write-ordering:{res.get('write_ordering', 'flush')}")
    w.end()


def _device_status(w: _Wrap, dev: Mapping[str, Any], single: bool, verbose: bool, statistics: bool,
                   tty: bool) -> None:
    indent = 2
    if verbose or not (single and dev["volume"] == 0):
        w(indent, f"volume:{dev['volume']}")
        indent = 6
        if verbose:
            w(indent, f" minor:{dev['minor']}")
    w(indent, f" disk:{dev['disk']}")
    if dev["disk"] == "Diskless" and (verbose or not tty):
        w(indent, f" client:{yes_no(dev.get('client'))}")
    if verbose or not dev.get("quorum", True):
        w(indent, f" quorum:{yes_no(dev.get('quorum', True))}")
    indent = 6
    if statistics:
        w(indent, "\n")
        if verbose:
            w(indent, f" size:{dev.get('size', 0)}")
        w(indent, f" read:{dev.get('read', 0)}")
        w(indent, f" written:{dev.get('written', 0)}")
        if verbose:
            for key in ("al_writes", "bm_writes", "upper_pending", "lower_pending"):
                w(indent, f" {key.replace('_', '-')}:{dev.get(key, 0)}")
            w(indent, f" al-suspended:{yes_no(dev.get('al_suspended'))}")
    if verbose or dev.get("blocked", "no") != "no":
        w(indent, f" blocked:{dev.get('blocked', 'no')}")
    w.end()


def _connection_status(w: _Wrap, conn: Mapping[str, Any], devices: Sequence[Mapping[str, Any]], single: bool,
                       verbose: bool, statistics: bool, tty: bool) -> None:
    named = bool(conn.get("name"))
    if named:
        w(2, conn["name"])
    if verbose or not named:
        w(6 if named else 2, f" node-id:{conn['peer_node_id']}")
    connected = conn["connection"] == "Connected"
    if verbose or not connected:
        w(6, f" connection:{conn['connection']}")
    if verbose or connected:
        w(6, f" role:{conn.get('role', 'Unknown')}")
    if verbose or conn.get("congested"):
        w(6, f" congested:{yes_no(conn.get('congested'))}")
        w(6, f" ap-in-flight:{conn.get('ap_in_flight', 0)}")
        w(6, f" rs-in-flight:{conn.get('rs_in_flight', 0)}")
    w.end()
    if verbose or statistics or connected:
        for pd in conn.get("peer_devices", []):
            _peer_device_status(w, pd, single, verbose, statistics, tty)


def _peer_device_status(w: _Wrap, pd: Mapping[str, Any], single: bool, verbose: bool, statistics: bool,
                        tty: bool) -> None:
    indent = 4
    if verbose or not (single and pd["volume"] == 0):
        w(indent, f"volume:{pd['volume']}")
        indent = 8
    repl = pd["replication"]
    if verbose or repl not in QUIET_REPLICATION:
        w(indent, f" replication:{repl}")
        indent = 8
    if verbose or statistics or repl != "Off" or pd["peer_disk"] != "DUnknown":
        w(indent, f" peer-disk:{pd['peer_disk']}")
        if pd["peer_disk"] == "Diskless" and (verbose or not tty):
            w(indent, f" peer-client:{yes_no(pd.get('peer_client'))}")
        indent = 8
        done = _sync_done(pd)
        if done is not None:
            w(indent, f" done:{done:.2f}")
        if verbose or pd.get("resync_suspended", "no") != "no":
            w(indent, f" resync-suspended:{pd.get('resync_suspended', 'no')}")
        if statistics:
            w(indent, "\n")
            _peer_device_statistics(w, indent, pd, verbose)
    w.end()


def _peer_device_statistics(w: _Wrap, indent: int, pd: Mapping[str, Any], verbose: bool) -> None:
    w(indent, f" received:{pd.get('received', 0)}")
    w(indent, f" sent:{pd.get('sent', 0)}")
    if verbose or pd.get("out_of_sync"):
        w(indent, f" out-of-sync:{pd.get('out_of_sync', 0)}")
    if not verbose:
        return
    w(indent, f" pending:{pd.get('pending', 0)}")
    w(indent, f" unacked:{pd.get('unacked', 0)}")
    sync = pd.get("sync")
    if sync and sync.get("rs_total"):
        w(indent, f" dbdt1:{sync.get('dbdt1', 0.0):.2f}")
        w(indent, f" eta:{_eta(sync)}")


def _eta(sync: Mapping[str, Any]) -> str:
    eta = sync.get("eta")
    return "nan" if eta is None or not math.isfinite(eta) else f"{eta:.0f}"


# --------------------------------------------------------------------------------------------
# drbdsetup status --json


def status_json(snaps: Sequence[Snapshot]) -> str:
    out = ["[\n"]
    first = True
    for res in sorted(snaps, key=lambda r: r["name"]):
        if not first:
            out.append(",\n")
        first = False
        out.append(_resource_json(res))
    out.append("]\n\n")
    return "".join(out)


def _j(v: Any) -> str:
    return json.dumps(v)


def _resource_json(res: Snapshot) -> str:
    susp = res.get("suspended", "no")
    reasons = set(susp.split(",")) if susp != "no" else set()
    lines = [
        "{\n",
        f'  "name": {_j(res["name"])},\n',
        f'  "node-id": {res["node_id"]},\n',
        f'  "role": {_j(res["role"])},\n',
        f'  "suspended": {_j(bool(reasons))},\n',
        f'  "suspended-user": {_j("user" in reasons)},\n',
        f'  "suspended-no-data": {_j("no-data" in reasons)},\n',
        f'  "suspended-fencing": {_j("fencing" in reasons)},\n',
        f'  "suspended-quorum": {_j("quorum" in reasons)},\n',
        f'  "force-io-failures": {_j(bool(res.get("force_io_failures")))},\n',
        f'  "write-ordering": {_j(res.get("write_ordering", "flush"))},\n',
        '  "devices": [\n',
    ]
    lines.append(",\n".join(_device_json(d) for d in res.get("devices", [])))
    lines.append(' ],\n  "connections": [\n')
    devices = {d["volume"]: d for d in res.get("devices", [])}
    conns = sorted(res.get("connections", []), key=lambda c: c.get("name") or "")
    lines.append(",\n".join(_connection_json(c, devices) for c in conns))
    lines.append(" ]\n}\n")
    return "".join(lines)


def _device_json(d: Mapping[str, Any]) -> str:
    return "".join([
        "    {\n",
        f'      "volume": {d["volume"]},\n',
        f'      "minor": {d["minor"]},\n',
        f'      "disk-state": {_j(d["disk"])},\n',
        f'      "client": {_j(bool(d.get("client")))},\n',
        f'      "open": {_j(bool(d.get("open")))},\n',
        f'      "quorum": {_j(bool(d.get("quorum", True)))},\n',
        f'      "size": {d.get("size", 0)},\n',
        f'      "read": {d.get("read", 0)},\n',
        f'      "written": {d.get("written", 0)},\n',
        f'      "al-writes": {d.get("al_writes", 0)},\n',
        f'      "bm-writes": {d.get("bm_writes", 0)},\n',
        f'      "upper-pending": {d.get("upper_pending", 0)},\n',
        f'      "lower-pending": {d.get("lower_pending", 0)}\n',
        "    }",
    ])


def _host_json(h: Sequence[Any], indent: str) -> str:
    family, address, port = h
    return (f"{{\n{indent}  \"address\": {_j(address)},\n{indent}  \"port\": {port},\n"
            f"{indent}  \"family\": {_j(family)}\n{indent}}}")


def _connection_json(c: Mapping[str, Any], devices: Mapping[int, Mapping[str, Any]]) -> str:
    parts = [
        "    {\n",
        f'      "peer-node-id": {c["peer_node_id"]},\n',
        f'      "name": {_j(c.get("name") or "")},\n',
        f'      "connection-state": {_j(c["connection"])}, \n',
        f'      "congested": {_j(bool(c.get("congested")))},\n',
        f'      "peer-role": {_j(c.get("role", "Unknown"))},\n',
        f'      "tls": {_j(bool(c.get("tls")))},\n',
        f'      "ap-in-flight": {c.get("ap_in_flight", 0)},\n',
        f'      "rs-in-flight": {c.get("rs_in_flight", 0)},\n',
        '      "paths": [\n',
    ]
    paths = []
    for p in c.get("paths", []):
        paths.append("        {\n"
                     f'          "this_host": {_host_json(p["local"], "          ")},\n'
                     f'          "remote_host": {_host_json(p["peer"], "          ")},\n'
                     f'          "established": {_j(bool(p.get("established")))}\n'
                     "        }")
    parts.append(",\n".join(paths))
    parts.append(' ],\n      "peer_devices": [\n')
    parts.append(",\n".join(_peer_device_json(pd, devices.get(pd["volume"], {})) for pd in c.get("peer_devices", [])))
    parts.append(" ]\n    }")
    return "".join(parts)


def _peer_device_json(pd: Mapping[str, Any], dev: Mapping[str, Any]) -> str:
    size = dev.get("size", 0) or 0
    oos = pd.get("out_of_sync", 0)
    sync = pd.get("sync") if pd.get("sync") and pd["sync"].get("rs_total") else None
    in_sync = 0.0 if size == 0 else 100.0 * (1 - oos / size)
    lines = [
        "        {\n",
        f'          "volume": {pd["volume"]},\n',
        f'          "replication-state": {_j(pd["replication"])},\n',
        f'          "peer-disk-state": {_j(pd["peer_disk"])},\n',
        f'          "peer-client": {_j(bool(pd.get("peer_client")))},\n',
        f'          "resync-suspended": {_j(pd.get("resync_suspended", "no"))},\n',
        f'          "received": {pd.get("received", 0)},\n',
        f'          "sent": {pd.get("sent", 0)},\n',
        f'          "out-of-sync": {oos},\n',
        f'          "pending": {pd.get("pending", 0)},\n',
        f'          "unacked": {pd.get("unacked", 0)},\n',
        f'          "has-sync-details": {_j(sync is not None)},\n',
        '          "has-online-verify-details": false,\n',
        f'          "percent-in-sync": {in_sync:.2f}{"," if sync else ""}\n',
    ]
    if sync:
        total_sectors = sync["rs_total"] * 2
        done = _sync_done(pd) or 0.0
        eta = sync.get("eta")
        lines += [
            f'          "rs-total": {total_sectors},\n',
            f'          "rs-dt-start-ms": {int(sync.get("dt_start_ms", 0))},\n',
            '          "rs-paused-ms": 0,\n',
            f'          "rs-dt0-ms": {int(sync.get("dt0_ms", 0))},\n',
            f'          "rs-db0-sectors": {int(sync.get("db0_sectors", 0))},\n',
            f'          "rs-dt1-ms": {int(sync.get("dt1_ms", 0))},\n',
            f'          "rs-db1-sectors": {int(sync.get("db1_sectors", 0))},\n',
            '          "rs-failed": 0,\n',
            '          "rs-same-csum": 0,\n',
            f'          "want": {sync.get("want", 0.0):.2f},\n',
            f'          "db0/dt0 [MiB/s]": {sync.get("dbdt0", 0.0):.2f},\n',
            f'          "db1/dt1 [MiB/s]": {sync.get("dbdt1", 0.0):.2f},\n',
            f'          "estimated-seconds-to-finish": {987654321 if eta is None else round(eta)},\n',
            f'          "db/dt [MiB/s]": {sync.get("dbdt", 0.0):.2f},\n',
            f'          "percent-resync-done": {done:.2f}\n',
        ]
    lines.append("        }")
    return "".join(lines)


# --------------------------------------------------------------------------------------------
# drbdsetup events2


def _objects(res: Snapshot, statistics: bool) -> list[tuple[str, tuple[str, ...], list[tuple[str, str]], list[tuple[str, str]]]]:
    """(kind, identity key, identity fields, state fields) of every object of a resource, in the
    kernel's dump order: resource, devices, connections, peer devices, paths."""
    name = res["name"]
    objs = []
    fields = [("role", res["role"]), ("suspended", res.get("suspended", "no")),
              ("force-io-failures", yes_no(res.get("force_io_failures")))]
    if statistics:
        fields.append(("write-ordering", res.get("write_ordering", "flush")))
    fields += [("may_promote", yes_no(res.get("may_promote"))), ("promotion_score", str(res.get("promotion_score", 0)))]
    objs.append(("resource", (name,), [("name", name)], fields))
    for d in res.get("devices", []):
        ident = [("name", name), ("volume", str(d["volume"])), ("minor", str(d["minor"]))]
        f = [("backing_dev", d.get("backing_dev") or "none"), ("disk", d["disk"]), ("client", yes_no(d.get("client"))),
             ("open", yes_no(d.get("open"))), ("quorum", yes_no(d.get("quorum", True)))]
        if statistics:
            f += [("size", str(d.get("size", 0))), ("read", str(d.get("read", 0))), ("written", str(d.get("written", 0))),
                  ("al-writes", str(d.get("al_writes", 0))), ("bm-writes", str(d.get("bm_writes", 0))),
                  ("upper-pending", str(d.get("upper_pending", 0))), ("lower-pending", str(d.get("lower_pending", 0))),
                  ("al-suspended", yes_no(d.get("al_suspended"))), ("blocked", d.get("blocked", "no"))]
        objs.append(("device", (name, str(d["volume"])), ident, f))
    conns = sorted(res.get("connections", []), key=lambda c: c.get("name") or "")
    for c in conns:
        ident = [("name", name), ("peer-node-id", str(c["peer_node_id"])), ("conn-name", c.get("name") or "")]
        f = [("connection", c["connection"]), ("role", c.get("role", "Unknown"))]
        if statistics:
            f += [("congested", yes_no(c.get("congested"))), ("ap-in-flight", str(c.get("ap_in_flight", 0))),
                  ("rs-in-flight", str(c.get("rs_in_flight", 0)))]
        objs.append(("connection", (name, str(c["peer_node_id"])), ident, f))
    for c in conns:
        for pd in c.get("peer_devices", []):
            ident = [("name", name), ("peer-node-id", str(c["peer_node_id"])), ("conn-name", c.get("name") or ""),
                     ("volume", str(pd["volume"]))]
            f = [("replication", pd["replication"]), ("peer-disk", pd["peer_disk"]),
                 ("peer-client", yes_no(pd.get("peer_client"))), ("resync-suspended", pd.get("resync_suspended", "no"))]
            done = _sync_done(pd)
            if done is not None:
                f.append(("done", f"{done:.2f}"))
            if statistics:
                f += [("received", str(pd.get("received", 0))), ("sent", str(pd.get("sent", 0))),
                      ("out-of-sync", str(pd.get("out_of_sync", 0))), ("pending", str(pd.get("pending", 0))),
                      ("unacked", str(pd.get("unacked", 0)))]
                sync = pd.get("sync")
                if done is not None and sync:
                    f += [("dbdt1", f"{sync.get('dbdt1', 0.0):.2f}"), ("eta", _eta(sync))]
            objs.append(("peer-device", (name, str(c["peer_node_id"]), str(pd["volume"])), ident, f))
    for c in conns:
        for p in c.get("paths", []):
            local, peer = p["local"], p["peer"]
            lstr, pstr = f"{local[0]}:{local[1]}:{local[2]}", f"{peer[0]}:{peer[1]}:{peer[2]}"
            ident = [("name", name), ("peer-node-id", str(c["peer_node_id"])), ("conn-name", c.get("name") or ""),
                     ("local", lstr), ("peer", pstr)]
            objs.append(("path", (name, str(c["peer_node_id"]), lstr, pstr), ident,
                         [("established", yes_no(p.get("established")))]))
    return objs


def _line(event: str, kind: str, ident: Iterable[tuple[str, str]], fields: Iterable[tuple[str, str]]) -> str:
    return " ".join([event, kind] + [f"{k}:{v}" for k, v in ident] + [f"{k}:{v}" for k, v in fields])


# Fields that change all the time and never make an event of their own (DRBD sends statistics
# along with state changes, not as events).
_STAT_KEYS = {"size", "read", "written", "al-writes", "bm-writes", "upper-pending", "lower-pending", "received",
              "sent", "out-of-sync", "pending", "unacked", "dbdt1", "eta", "ap-in-flight", "rs-in-flight"}


def events2_lines(snaps: Sequence[Snapshot], *, statistics: bool = False, now: bool = True) -> list[str]:
    """The initial dump: "exists" lines of every object, then "exists -"."""
    lines = []
    for res in sorted(snaps, key=lambda r: r["name"]):
        for kind, _, ident, fields in _objects(res, statistics):
            lines.append(_line("exists", kind, ident, fields))
    lines.append("exists -")
    return lines


def events2_changes(old: Sequence[Snapshot], new: Sequence[Snapshot], *, statistics: bool = False) -> list[str]:
    """create/change/destroy lines that take a reader from `old` to `new` (change lines carry the
    identity and the fields that changed; peer-device changes carry `done:` and the statistics)."""
    before = {(kind, key): (ident, dict(fields)) for r in old for kind, key, ident, fields in _objects(r, statistics)}
    after = [(kind, key, ident, fields) for r in new for kind, key, ident, fields in _objects(r, statistics)]
    lines = []
    seen = set()
    for kind, key, ident, fields in after:
        seen.add((kind, key))
        prev = before.get((kind, key))
        if prev is None:
            lines.append(_line("create", kind, ident, fields))
            continue
        changed = [(k, v) for k, v in fields if k not in _STAT_KEYS and prev[1].get(k) != v]
        if not changed:
            continue
        if kind == "peer-device":
            keep = {k for k, _ in changed} | _STAT_KEYS | {"done"}
            changed = [(k, v) for k, v in fields if k in keep]
        elif kind == "device" and statistics:
            changed += [(k, v) for k, v in fields if k in _STAT_KEYS]
        lines.append(_line("change", kind, ident, changed))
    order = {"path": 0, "peer-device": 1, "connection": 2, "device": 3, "resource": 4}
    gone = [(kind, key, ident) for (kind, key), (ident, _) in before.items() if (kind, key) not in seen]
    for kind, key, ident in sorted(gone, key=lambda g: order[g[0]]):
        lines.append(_line("destroy", kind, ident, []))
    return lines


def helper_lines(res: Snapshot, helper: str, status: int | None = None) -> list[str]:
    """`call helper` (and `response helper` when `status` is given) for a resource's first peer device."""
    conn = (res.get("connections") or [{}])[0]
    ident = [("name", res["name"])]
    if conn:
        ident += [("peer-node-id", str(conn["peer_node_id"])), ("conn-name", conn.get("name") or "")]
    ident += [("volume", "0")]
    lines = [_line("call", "helper", ident, [("helper", helper)])]
    if status is not None:
        lines.append(_line("response", "helper", ident, [("helper", helper), ("status", str(status))]))
    return lines

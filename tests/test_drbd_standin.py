"""The DRBD stand-in without the lab: two replicators on loopback addresses in one event loop.

Covers the output formats (every one parses into the true state with hatui.collectors.drbd),
protocol C, resync with observable progress, split brain and DRBD's recovery, a crashed Primary
(activity log), invalidate, down/up, the command-line client (exit codes, events2 stream) and the
write service behind a moving "VIP" with the no-data-loss check.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hatui.collectors.drbd import parse_drbd
from hatui.collectors.drbd_log import parse_drbd_kernel_log, parse_drbdadm_errors
from hatui.collectors.severity import Severity
from hatui.load.writes import WriteStream, verify
from hatui.lab.drbd import commands, formats, wire
from hatui.lab.drbd.daemon import Daemon, DaemonConfig, ResourceConfig
from hatui.lab.drbd.meta import NONE, SOURCE, SPLIT_BRAIN, TARGET, UNRELATED, Bitmap, Side, decide
from hatui.lab.drbd.writesvc import RecordStore, WriteService, decode, encode

CLIENT = Path(__file__).resolve().parents[1] / "hatui" / "lab" / "drbd" / "client.py"
SIZE_KIB = 4096            # 1024 blocks
RATE_KIB = 2048            # a full resync takes 2 s


# --------------------------------------------------------------------------------------------
# helpers


def free_port() -> int:
    for _ in range(50):
        port = random.randint(20000, 60000)
        try:
            for addr in ("127.0.0.1", "127.0.0.2"):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((addr, port))
                s.close()
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def config(tmp: Path, node: str, nid: int, peer: str, port: int, **kw) -> DaemonConfig:
    local, remote = ("127.0.0.1", "127.0.0.2") if nid == 0 else ("127.0.0.2", "127.0.0.1")
    res = ResourceConfig(name="r0", minor=0, device="/dev/drbd0", volume=str(tmp / f"{node}-r0.img"),
                         size_kib=SIZE_KIB, port=port, node_id=nid, node=node, peer_node_id=1 - nid, peer=peer,
                         local_address=local, peer_address=remote, resync_rate_kib=RATE_KIB,
                         initial_uuid="0123456789ABCDEF", **kw)
    return DaemonConfig(node=node, socket=str(tmp / f"{node}.sock"), log=str(tmp / f"{node}.log"), resources=[res])


class Pair:
    def __init__(self, tmp: Path, **kw):
        self.tmp = tmp
        self.port = free_port()
        self.cfg = {"alpha": config(tmp, "alpha", 0, "beta", self.port, **kw),
                    "beta": config(tmp, "beta", 1, "alpha", self.port, **kw)}
        self.d: dict[str, Daemon] = {}

    async def start(self, name: str) -> Daemon:
        d = Daemon(self.cfg[name], cli=commands.run)
        await d.start()
        self.d[name] = d
        return d

    def r(self, name: str):
        return self.d[name].resources["r0"]

    def volume(self, name: str) -> bytes:
        return Path(self.cfg[name].resources[0].volume).read_bytes()

    async def stop(self) -> None:
        for d in self.d.values():
            if not d.stopped.is_set():
                await d.stop()


async def until(pred, timeout: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def cli(d: Daemon, prog: str, *argv: str) -> tuple[int, str, str]:
    out = commands.Out()
    fn = commands.drbdadm if prog == "drbdadm" else commands.drbdsetup
    rc = await fn(d, list(argv), out)
    return rc, "".join(out.out), "".join(out.err)


@pytest.fixture
async def pair(tmp_path):
    p = Pair(tmp_path)
    await p.start("alpha")
    await p.start("beta")
    await until(lambda: p.r("alpha").repl == "Established" and p.r("beta").repl == "Established",
                what="initial connect")
    yield p
    await p.stop()


OUTPUTS = [("drbdadm", ["status"]), ("drbdsetup", ["status", "--verbose", "--statistics"]),
           ("drbdsetup", ["status", "--statistics"]), ("drbdsetup", ["status", "--json"]),
           ("drbdsetup", ["events2", "--now"]), ("drbdsetup", ["events2", "--now", "--statistics"]),
           ("drbdsetup", ["status", "r0", "--verbose"])]


def check_against_truth(out: str, truth: dict, peer_name: str, *, plain: bool, where: str = "") -> None:
    """`out` (any DRBD output format), parsed by hatui's collector, shows the daemon's true state
    `truth` (Resource.internals()). `plain`: non-verbose status text (no peer device unless Connected)."""
    where = f"{where}\n{out}"
    parsed = parse_drbd(out)
    assert not parsed.problems, (parsed.problems, where)
    assert len(parsed) == 1, where
    r = parsed[0]
    assert (r.name, r.role, r.disk) == ("r0", truth["role"], truth["disk"]), where
    peer = r.peer
    assert peer is not None and peer.name == peer_name, where
    assert peer.connection == truth["conn"], where
    if truth["conn"] == "Connected":
        assert (peer.role, peer.disk, peer.replication) == (truth["peer_role"], truth["peer_disk"], truth["repl"]), where
        if truth["repl"] in ("SyncSource", "SyncTarget"):
            assert peer.done is not None and 0 <= peer.done <= 100, where
        else:
            assert peer.done is None, where
    elif not plain:
        assert peer.disk == "DUnknown" and peer.replication == "Off", where
    else:
        assert peer.volumes == [], where
    if truth["conn"] == "StandAlone" or (truth["role"] == "Primary" and truth["disk"] != "UpToDate"):
        assert r.severity == Severity.ALERT, where
    elif truth["conn"] == "Connected" and truth["repl"] == "Established" and truth["disk"] == "UpToDate" \
            and truth["peer_disk"] == "UpToDate":
        assert r.severity == Severity.OK, where
    else:
        assert r.severity == Severity.WARN, where


async def assert_outputs_true(d: Daemon) -> None:
    """Every output format, parsed by hatui's collector, gives the daemon's true state."""
    for prog, argv in OUTPUTS:
        res = d.resources["r0"]
        truth = res.internals()             # read in the same loop step as the output below
        rc, out, err = await cli(d, prog, *argv)
        assert rc == 0, err
        check_against_truth(out, truth, res.cfg.peer, plain=argv == ["status"], where=f"{prog} {' '.join(argv)}")


class EventsReader:
    """An in-process `drbdsetup events2` subscriber collecting the lines."""

    def __init__(self, d: Daemon, statistics: bool = False):
        from hatui.lab.drbd.daemon import Subscriber
        self.sub = Subscriber(None, statistics, False)
        self.sub.last = d.snapshots()
        self.lines = formats.events2_lines(self.sub.last, statistics=statistics)
        d.subscribers.add(self.sub)

    def drain(self) -> list[str]:
        while not self.sub.queue.empty():
            self.lines += self.sub.queue.get_nowait()
        return self.lines


# --------------------------------------------------------------------------------------------
# formats (pure): random states, every format parses back


_states = st.fixed_dictionaries({
    "role": st.sampled_from(["Primary", "Secondary"]),
    "disk": st.sampled_from(["UpToDate", "Inconsistent", "Outdated", "Consistent", "Diskless"]),
    "conn": st.sampled_from(["Connected", "Connecting", "StandAlone", "NetworkFailure", "Timeout"]),
    "repl": st.sampled_from(["Established", "SyncSource", "SyncTarget", "WFBitMapS"]),
    "peer_role": st.sampled_from(["Primary", "Secondary"]),
    "peer_disk": st.sampled_from(["UpToDate", "Inconsistent", "Outdated"]),
    "oos": st.integers(0, 4096), "total": st.integers(1, 8192),
    "name": st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True),
    "peer": st.from_regex(r"[a-z][a-z0-9-]{0,40}", fullmatch=True),
    "read": st.integers(0, 10**12),
})


def snapshot_of(s: dict) -> dict:
    snap = formats.example_snapshot()
    snap.update(name=s["name"], role=s["role"])
    snap["devices"][0].update(disk=s["disk"], read=s["read"])
    c = snap["connections"][0]
    c.update(name=s["peer"], connection=s["conn"])
    pd = c["peer_devices"][0]
    if s["conn"] == "Connected":
        c["role"] = s["peer_role"]
        pd.update(replication=s["repl"], peer_disk=s["peer_disk"])
        if s["repl"] in ("SyncSource", "SyncTarget"):
            total = max(s["total"], s["oos"])
            pd.update(out_of_sync=s["oos"], sync={"rs_total": total, "dbdt1": 2.0, "eta": None})
    else:
        c["role"] = "Unknown"
        pd.update(replication="Off", peer_disk="DUnknown", out_of_sync=s["oos"])
    return snap


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_states)
def test_every_format_parses_into_the_rendered_state(s):
    snap = snapshot_of(s)
    pd = snap["connections"][0]["peer_devices"][0]
    texts = {
        "plain": formats.status_text([snap]),
        "vs": formats.status_text([snap], verbose=True, statistics=True),
        "s": formats.status_text([snap], statistics=True),
        "v": formats.status_text([snap], verbose=True),
        "json": formats.status_json([snap]),
        "ev": "\n".join(formats.events2_lines([snap])),
        "evs": "\n".join(formats.events2_lines([snap], statistics=True)),
    }
    assert json.loads(texts["json"])[0]["name"] == s["name"]
    for kind, text in texts.items():
        parsed = parse_drbd(text)
        assert not parsed.problems and len(parsed) == 1, (kind, text)
        r = parsed[0]
        assert (r.name, r.role, r.disk) == (s["name"], s["role"], s["disk"]), (kind, text)
        assert r.peer.name == s["peer"] and r.peer.connection == s["conn"], (kind, text)
        if s["conn"] == "Connected":
            assert (r.peer.role, r.peer.disk, r.peer.replication) == (s["peer_role"], s["peer_disk"], s["repl"])
            if pd.get("sync"):
                expect = round(formats._sync_done(pd), 2)
                assert r.peer.done == pytest.approx(expect, abs=0.006), (kind, text)
        for line in text.splitlines():
            if kind in ("plain", "vs", "s", "v"):
                assert len(line) <= 80 or " " not in line.strip(), (kind, line)


@settings(max_examples=100, deadline=None)
@given(_states, _states)
def test_events2_changes_take_a_reader_from_one_state_to_the_next(a, b):
    b = {**b, "name": a["name"], "peer": a["peer"]}
    old, new = snapshot_of(a), snapshot_of(b)
    for stats in (False, True):
        stream = formats.events2_lines([old], statistics=stats) + formats.events2_changes([old], [new], statistics=stats)
        direct = parse_drbd("\n".join(formats.events2_lines([new], statistics=stats)))[0]
        merged = parse_drbd("\n".join(stream))[0]
        if direct.peer.replication == "WFBitMapS":   # events2 cannot say "no done: any more" (never happens:
            merged.peer.done = direct.peer.done      # WFBitMapS only comes before SyncSource)
        assert (merged.role, merged.disk, merged.peer.connection, merged.peer.role, merged.peer.disk,
                merged.peer.replication, merged.peer.done) == \
               (direct.role, direct.disk, direct.peer.connection, direct.peer.role, direct.peer.disk,
                direct.peer.replication, direct.peer.done)


def test_status_text_matches_drbd_layout():
    snap = formats.example_snapshot()
    assert formats.status_text([snap]) == ("r0 role:Primary\n  disk:UpToDate\n  slave role:Secondary\n"
                                           "    peer-disk:UpToDate\n\n")
    snap["connections"][0].update(connection="Connecting", role="Unknown")
    snap["connections"][0]["peer_devices"][0].update(replication="Off", peer_disk="DUnknown")
    assert formats.status_text([snap]) == "r0 role:Primary\n  disk:UpToDate\n  slave connection:Connecting\n\n"
    verbose = formats.status_text([snap], verbose=True, statistics=True).splitlines()
    assert verbose[0] == "r0 node-id:0 role:Primary suspended:no"
    assert verbose[1] == "    write-ordering:flush"
    assert formats.status_text([]) == "# No currently configured DRBD found.\n"
    j = formats.status_json([snap])
    assert '"connection-state": "Connecting", \n' in j and j.endswith("}\n]\n\n")


# --------------------------------------------------------------------------------------------
# the handshake decision (pure)


_sides = st.builds(
    Side, node_id=st.just(0), role=st.sampled_from(["Primary", "Secondary"]),
    disk=st.sampled_from(["UpToDate", "Outdated", "Inconsistent", "Consistent"]),
    current=st.sampled_from(["A", "B", "C", "D"]), bitmap_base=st.sampled_from([None, "A", "B", "C"]),
    history=st.lists(st.sampled_from(["A", "B", "C", "E"]), max_size=3), crashed_primary=st.booleans(),
    discard_my_data=st.booleans(), oos=st.integers(0, 3))

_MIRROR = {NONE: NONE, SOURCE: TARGET, TARGET: SOURCE, SPLIT_BRAIN: SPLIT_BRAIN, UNRELATED: UNRELATED}


@settings(max_examples=400, deadline=None)
@given(_sides, _sides)
def test_both_sides_of_a_handshake_reach_the_same_verdict(a, b):
    b.node_id = 1
    va, _ = decide(a, b)
    vb, _ = decide(b, a)
    assert vb == _MIRROR[va]


def test_decide_rules():
    base = dict(role="Secondary", disk="UpToDate", history=[], crashed_primary=False, discard_my_data=False)
    a = Side(node_id=0, current="N1", bitmap_base="U0", oos=3, **base)
    b = Side(node_id=1, current="U0", bitmap_base=None, **base)
    assert decide(a, b)[0] == SOURCE and decide(b, a)[0] == TARGET
    b2 = Side(node_id=1, current="N2", bitmap_base="U0", oos=1, **base)
    assert decide(a, b2) == (SPLIT_BRAIN, "bitmap-both")
    b2.discard_my_data = True
    assert decide(a, b2)[0] == SOURCE and decide(b2, a)[0] == TARGET
    c = Side(node_id=1, current="ZZ", bitmap_base=None, **base)
    assert decide(a, c)[0] == UNRELATED


def test_bitmap_persists_and_iterates(tmp_path):
    bm = Bitmap(100, tmp_path / "x.bm")
    for blk in (0, 7, 8, 63, 99):
        bm.set(blk)
    bm.clear(8)
    assert list(bm.iter_set()) == [0, 7, 63, 99] and list(bm.iter_set(8)) == [63, 99]
    bm.close()
    again = Bitmap(100, tmp_path / "x.bm")
    assert again.count == 4 and list(again.iter_set()) == [0, 7, 63, 99]
    again.set_all()
    assert again.count == 100 and list(again.iter_set(98)) == [98, 99]


# --------------------------------------------------------------------------------------------
# two replicators on loopback


async def test_connected_pair_prints_drbd9_and_parses_true(pair):
    for name in ("alpha", "beta"):
        await assert_outputs_true(pair.d[name])
    rc, out, _ = await cli(pair.d["alpha"], "drbdadm", "status", "r0")
    assert rc == 0 and out == "r0 role:Secondary\n  disk:UpToDate\n  beta role:Secondary\n    peer-disk:UpToDate\n\n"
    rc, out, _ = await cli(pair.d["alpha"], "drbdadm", "role", "r0")
    assert (rc, out) == (0, "Secondary\n")
    rc, out, _ = await cli(pair.d["alpha"], "drbdadm", "dstate", "r0")
    assert (rc, out) == (0, "UpToDate/UpToDate\n")
    rc, out, _ = await cli(pair.d["alpha"], "drbdadm", "cstate", "r0")
    assert (rc, out) == (0, "Connected\n")


async def test_second_primary_is_refused_like_drbd(pair):
    a, b = pair.d["alpha"], pair.d["beta"]
    assert (await cli(a, "drbdadm", "primary", "r0"))[0] == 0
    await until(lambda: pair.r("beta").peer_role == "Primary")
    rc, out, err = await cli(b, "drbdadm", "primary", "r0")
    assert rc == 11
    assert err == ("r0: State change failed: (-1) Multiple primaries not allowed by config\n"
                   "Command 'drbdsetup primary r0' terminated with exit code 11\n")
    errors = parse_drbdadm_errors(err)
    assert errors and not errors.problems
    await assert_outputs_true(a)
    await assert_outputs_true(b)
    assert (await cli(a, "drbdadm", "secondary", "r0"))[0] == 0
    assert (await cli(b, "drbdadm", "primary", "r0"))[0] == 0
    assert pair.r("beta").role == "Primary" and pair.r("beta").epoch > 0
    rc, _, err = await cli(a, "drbdadm", "primary", "r9")
    assert rc == 10 and err == "'r9' not defined in your config (for this host).\n"
    rc, _, err = await cli(a, "drbdsetup", "status", "r9")
    assert rc == 10 and err == "r9: No such resource\n"
    rc, _, err = await cli(a, "drbdadm", "connect", "r0")
    assert rc == 10 and "Failure: (125) Device has a net-config (use disconnect first)" in err


async def test_protocol_c_acknowledges_only_after_the_peer_stored_the_write(pair):
    a, b = pair.r("alpha"), pair.r("beta")
    await a.promote()
    held: list = []
    original = b._dispatch

    def holding(link, kind, x, y, payload):
        if kind == wire.WRITE:
            held.append((link, kind, x, y, payload))
        else:
            original(link, kind, x, y, payload)
    b._dispatch = holding
    data = b"protocol-C".ljust(512, b".")
    write = asyncio.get_running_loop().create_task(a.app_write(8192, data))
    await asyncio.sleep(0.3)
    assert not write.done(), "acknowledged before the peer stored it"
    assert pair.volume("beta")[8192:8192 + 512] != data
    b._dispatch = original
    for frame in held:
        original(*frame)
    await asyncio.wait_for(write, 2)
    assert pair.volume("beta")[8192:8192 + 512] == data
    assert a.bm.count == 0


async def test_a_silent_link_is_detected_and_pending_writes_resync(pair):
    a, b = pair.r("alpha"), pair.r("beta")
    await a.promote()
    # The link goes silent (like a cut cable): nothing is sent any more, in either direction.
    for r in (a, b):
        r.link.send = lambda *args, **kw: None
    data = b"while-cut".ljust(4096, b"!")
    t0 = asyncio.get_running_loop().time()
    await asyncio.wait_for(a.app_write(3 * 4096, data), 5)       # completes locally once the peer is gone
    assert asyncio.get_running_loop().time() - t0 >= a.cfg.ping_timeout_s * 0.8
    await until(lambda: a.repl == "Established" and b.repl == "Established", timeout=10, what="resync")
    assert a.meta.current == b.meta.current and a.bm.count == 0 and b.bm.count == 0
    assert pair.volume("alpha") == pair.volume("beta")


async def test_resync_after_a_disconnect_shows_progress_until_uptodate(pair):
    a, b = pair.d["alpha"], pair.d["beta"]
    ra, rb = pair.r("alpha"), pair.r("beta")
    await ra.promote()
    assert (await cli(b, "drbdadm", "disconnect", "r0"))[0] == 0
    await until(lambda: ra.conn == "Connecting")
    await assert_outputs_true(a)
    await assert_outputs_true(b)
    for blk in range(0, 1024, 2):                                    # 2 MiB out of sync: ~1 s at 2 MiB/s
        await ra.app_write(blk * 4096, bytes([blk % 251]) * 4096)
    assert ra.bm.count == 512 and ra.meta.bitmap_base == "0123456789ABCDEF"
    events = EventsReader(b)
    assert (await cli(b, "drbdadm", "connect", "r0"))[0] == 0
    seen: list[float] = []
    while rb.disk != "UpToDate" or rb.repl != "Established":
        rc, out, _ = await cli(b, "drbdadm", "status", "r0")
        peer = parse_drbd(out)[0].peer
        if peer.replication == "SyncTarget":
            seen.append(peer.done)
            await assert_outputs_true(b)
            await assert_outputs_true(a)
        await asyncio.sleep(0.1)
    assert len(seen) >= 4 and seen == sorted(seen) and seen[-1] > seen[0], seen
    assert pair.volume("alpha") == pair.volume("beta")
    await assert_outputs_true(a)
    await assert_outputs_true(b)
    lines = events.drain()
    dones = [float(tok.split(":")[1]) for line in lines if line.startswith("change peer-device")
             for tok in line.split() if tok.startswith("done:")]
    assert len(dones) >= 2 and dones == sorted(dones)
    assert parse_drbd("\n".join(lines))[0].disk == "UpToDate"
    log = parse_drbd_kernel_log(Path(pair.cfg["beta"].log).read_text())
    assert any(e.kind == "resync_started" for e in log) and any(e.kind == "resync_done" for e in log)


async def test_split_brain_is_detected_and_recovered_with_drbds_commands(pair):
    a, b = pair.d["alpha"], pair.d["beta"]
    ra, rb = pair.r("alpha"), pair.r("beta")
    await ra.promote()
    await ra.app_write(0, b"A" * 4096)
    for d in (a, b):
        assert (await cli(d, "drbdadm", "disconnect", "r0"))[0] == 0
    assert (await cli(b, "drbdadm", "primary", "r0"))[0] == 0        # both Primary, disconnected
    await ra.app_write(4096, b"a" * 4096)
    await rb.app_write(4096, b"b" * 4096)
    await rb.app_write(8 * 4096, b"B" * 4096)
    survivor_data = pair.volume("alpha")
    events = EventsReader(a)
    for d in (a, b):
        assert (await cli(d, "drbdadm", "connect", "r0"))[0] == 0
    await until(lambda: ra.split_brain_seen and rb.split_brain_seen and ra.conn == rb.conn == "StandAlone",
                what="split brain")
    for d in (a, b):
        await assert_outputs_true(d)
        rc, out, _ = await cli(d, "drbdadm", "status")
        assert parse_drbd(out)[0].severity == Severity.ALERT
    stream = "\n".join(events.drain())
    assert "call helper name:r0 peer-node-id:1 conn-name:beta volume:0 helper:split-brain" in stream
    assert parse_drbd(stream)[0].split_brain and parse_drbd(stream)[0].severity == Severity.ALERT
    log = parse_drbd_kernel_log(Path(pair.cfg["alpha"].log).read_text())
    assert any(e.kind == "split_brain" for e in log)
    # The documented recovery: beta is the victim.
    for argv in (["disconnect", "r0"], ["secondary", "r0"], ["connect", "--discard-my-data", "r0"]):
        rc, _, err = await cli(b, "drbdadm", *argv)
        assert rc == 0, (argv, err)
    assert (await cli(a, "drbdadm", "connect", "r0"))[0] == 0
    await until(lambda: rb.repl == "SyncTarget" or rb.disk == "UpToDate" and rb.repl == "Established")
    await until(lambda: rb.disk == "UpToDate" and rb.repl == "Established" and ra.repl == "Established",
                timeout=10, what="recovery resync")
    assert pair.volume("beta") == pair.volume("alpha") == survivor_data
    assert ra.meta.current == rb.meta.current
    for d in (a, b):
        await assert_outputs_true(d)
    log = Path(pair.cfg["beta"].log).read_text()
    assert "Split-Brain detected, manually solved. Sync from peer node" in log


async def test_a_crashed_primary_resyncs_its_activity_log_from_the_new_primary(pair):
    a, b = pair.d["alpha"], pair.d["beta"]
    ra, rb = pair.r("alpha"), pair.r("beta")
    await ra.promote()
    await ra.app_write(0, b"acked".ljust(512, b"."))
    # A last write reaches alpha's disk but never beta (held), then alpha crashes.
    rb._dispatch_orig = rb._dispatch
    rb._dispatch = lambda link, kind, *rest: None if kind == wire.WRITE else rb._dispatch_orig(link, kind, *rest)
    write = asyncio.get_running_loop().create_task(ra.app_write(512, b"never-acked".ljust(512, b".")))
    await asyncio.sleep(0.05)
    await a.kill()
    write.cancel()
    rb._dispatch = rb._dispatch_orig
    await until(lambda: rb.conn == "Connecting", what="beta notices")
    assert (await cli(b, "drbdadm", "primary", "r0"))[0] == 0
    await rb.app_write(1024, b"after-failover".ljust(512, b"."))
    assert rb.meta.bitmap_base == "0123456789ABCDEF"
    # alpha reboots: its activity log marks the hot extent out of sync, beta is the sync source.
    a2 = await pair.start("alpha")
    ra2 = a2.resources["r0"]
    await until(lambda: ra2.disk == "UpToDate" and ra2.repl == "Established" and rb.repl == "Established",
                timeout=10, what="resync after crash")
    vol = pair.volume("alpha")
    assert vol == pair.volume("beta")
    assert vol[0:5] == b"acked" and vol[512:523] != b"never-acked" and vol[1024:1038] == b"after-failover"
    await assert_outputs_true(a2)
    await assert_outputs_true(b)


async def test_invalidate_resyncs_everything_and_is_refused_on_a_primary(pair):
    a, b = pair.d["alpha"], pair.d["beta"]
    await pair.r("alpha").promote()
    rc, _, err = await cli(a, "drbdadm", "invalidate", "r0")
    assert rc == 17 and err.startswith("0: State change failed: (-2) Need access to UpToDate data")
    await pair.r("alpha").app_write(40960, b"x" * 4096)
    assert (await cli(b, "drbdadm", "invalidate", "r0"))[0] == 0
    assert pair.r("beta").repl == "SyncTarget" and pair.r("beta").disk == "Inconsistent"
    await assert_outputs_true(b)
    await until(lambda: pair.r("beta").disk == "UpToDate" and pair.r("alpha").repl == "Established",
                timeout=10, what="full resync")
    assert pair.volume("alpha") == pair.volume("beta")


async def test_down_and_up(pair):
    a = pair.d["alpha"]
    assert (await cli(a, "drbdadm", "down", "r0"))[0] == 0
    rc, out, _ = await cli(a, "drbdadm", "status")
    assert (rc, out) == (0, "# No currently configured DRBD found.\n")
    rc, _, err = await cli(a, "drbdadm", "role", "r0")
    assert rc == 10 and err == "r0: Unknown resource\n"
    rc, out, _ = await cli(a, "drbdsetup", "events2", "--now")
    assert out == "exists -\n"
    await until(lambda: pair.r("beta").conn == "Connecting")
    await assert_outputs_true(pair.d["beta"])
    assert (await cli(a, "drbdadm", "up", "r0"))[0] == 0
    await until(lambda: pair.r("alpha").repl == "Established" and pair.r("beta").repl == "Established")
    rc, _, err = await cli(a, "drbdadm", "up", "r0")
    assert rc == 10 and "(161) Minor or volume exists already" in err


async def test_the_command_line_client(pair):
    sock = pair.cfg["alpha"].socket

    async def run(*argv, env_socket=sock):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-S", "-E", str(CLIENT), "--socket", env_socket, *argv,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
        return proc.returncode, out.decode(), err.decode()

    rc, out, err = await run("drbdadm", "status")
    assert rc == 0 and parse_drbd(out)[0].peer.role == "Secondary"
    rc, out, err = await run("drbdadm", "primary", "r9")
    assert rc == 10 and "not defined in your config" in err
    rc, out, err = await run("drbdadm", "status", env_socket=str(pair.tmp / "nothing.sock"))
    assert rc == 20 and "Could not connect to 'drbd' generic netlink family" in err
    # events2 without --now streams until the reader goes away
    proc = await asyncio.create_subprocess_exec(sys.executable, "-S", str(CLIENT), "--socket", sock, "drbdsetup",
                                                "events2", stdout=asyncio.subprocess.PIPE)
    lines = []
    while not lines or lines[-1] != "exists -":
        lines.append((await asyncio.wait_for(proc.stdout.readline(), 5)).decode().rstrip("\n"))
    await pair.r("alpha").promote()
    line = (await asyncio.wait_for(proc.stdout.readline(), 5)).decode()
    assert line.startswith("change resource name:r0 role:Primary")
    proc.terminate()
    await proc.wait()


# --------------------------------------------------------------------------------------------
# the write service and the no-data-loss check


def test_record_encoding():
    slot = encode(7, b"hello")
    assert len(slot) == 512 and decode(slot) == (7, b"hello") and decode(slot, 8) is None
    assert decode(b"\0" * 512) is None
    with pytest.raises(ValueError):
        encode(1, b"x" * 489)


class Vip:
    """A TCP forwarder standing for the VIP: it moves between the two write services."""

    def __init__(self):
        self.target: tuple[str, int] | None = None
        self.server = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _conn(self, reader, writer):
        if self.target is None:
            writer.close()
            return
        try:
            ur, uw = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(r, w):
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()
        await asyncio.gather(pipe(reader, uw), pipe(ur, writer))


async def test_write_service_refuses_on_a_secondary_and_verify_finds_every_acked_write(pair):
    services = {}
    for name in ("alpha", "beta"):
        svc = WriteService(RecordStore(pair.cfg[name].socket, "r0"), name)
        services[name] = (svc, await svc.start("127.0.0.1", 0))
    vip = Vip()
    vport = await vip.start()
    vip.target = ("127.0.0.1", services["alpha"][1])
    stream = WriteStream("127.0.0.1", port=vport, rate=5, count=3, timeout_s=2)
    refused = await stream.start().wait()
    assert refused.acked == {} and refused.errors == {"http-5xx": 3}     # alpha is Secondary
    ra, rb = pair.r("alpha"), pair.r("beta")
    await ra.promote()
    stream = WriteStream("127.0.0.1", port=vport, rate=150, count=450, timeout_s=3).start()
    await until(lambda: len(stream.result().acked) >= 120, timeout=10, what="writes")
    await pair.d["alpha"].kill()                     # crash of the Primary in the middle of the stream
    vip.target = None                                # the VIP is gone until the peer takes over
    await until(lambda: rb.conn == "Connecting", what="beta notices")
    await rb.promote()
    vip.target = ("127.0.0.1", services["beta"][1])
    result = await stream.wait(20)
    assert result.attempted == 450 and len(result.acked) >= 200
    assert all(int(i) > 0 for i in result.acked)
    report = await verify("127.0.0.1", result.acked, port=vport)
    assert report.passed and report.lost_count == 0 and report.ok == len(result.acked), report.summary()
    assert report.served_by == {"beta": len(result.acked)}
    # The crashed node comes back, resyncs; after a failback it serves every write too.
    a2 = await pair.start("alpha")
    ra2 = a2.resources["r0"]
    await until(lambda: ra2.disk == "UpToDate" and ra2.repl == "Established", timeout=10, what="resync")
    await rb.demote()
    await ra2.promote()
    vip.target = ("127.0.0.1", services["alpha"][1])
    report = await verify("127.0.0.1", result.acked, port=vport)
    assert report.passed, report.summary()
    more = await WriteStream("127.0.0.1", port=vport, rate=50, count=10).start().wait()
    assert len(more.acked) == 10 and min(map(int, more.acked)) > max(map(int, result.acked))
    for svc, _ in services.values():
        svc.server.close()
    vip.server.close()


# --------------------------------------------------------------------------------------------
# Heartbeat's drbddisk and the files `lab up` installs (no root needed)


async def test_drbddisk_promotes_on_start_demotes_on_stop_and_retries(pair, tmp_path):
    from hatui.lab.drbd.node import drbddisk_script
    scripts = {}
    for name in ("alpha", "beta"):
        adm = tmp_path / f"drbdadm-{name}"
        adm.write_text(f"#!/bin/sh\nexec {sys.executable} -S {CLIENT} --socket {pair.cfg[name].socket} drbdadm \"$@\"\n")
        adm.chmod(0o755)
        disk = tmp_path / f"drbddisk-{name}"
        disk.write_text(drbddisk_script(str(adm)))
        disk.chmod(0o755)
        scripts[name] = disk

    async def drbddisk(name, *argv):
        proc = await asyncio.create_subprocess_exec(str(scripts[name]), *argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        return proc.returncode, out.decode(), err.decode()

    assert await drbddisk("alpha", "r0", "status") == (3, "stopped (Secondary)\n", "")
    assert (await drbddisk("alpha", "r0", "start"))[0] == 0
    assert pair.r("alpha").role == "Primary"
    assert await drbddisk("alpha", "r0", "status") == (0, "running (Primary)\n", "")
    assert (await drbddisk("alpha", "status"))[0] == 10
    # beta's start is refused while alpha is Primary, and retried each second: alpha stops meanwhile.
    start = asyncio.get_running_loop().create_task(drbddisk("beta", "r0", "start"))
    await asyncio.sleep(1.5)
    assert not start.done() and pair.r("beta").role == "Secondary"
    assert (await drbddisk("alpha", "r0", "stop"))[0] == 0
    rc, _, err = await start
    assert rc == 0 and "Multiple primaries not allowed by config" in err
    assert pair.r("beta").role == "Primary" and pair.r("alpha").role == "Secondary"


def test_prepare_node_writes_the_standins_files(tmp_path):
    from hatui.config import load_lab
    from hatui.lab.drbd.node import WRITES_CONF, prepare_node
    from hatui.lab.drbd.meta import Meta
    model = load_lab(Path(__file__).resolve().parents[1] / "lab.toml")
    pair = model.pairs["native"]
    for host in ("master", "slave"):
        prepare_node(model, pair, host, tmp_path / host)
    cfg = {h: DaemonConfig.load(tmp_path / h / "drbd" / "drbd.json") for h in ("master", "slave")}
    m, s = cfg["master"].resources[0], cfg["slave"].resources[0]
    assert (m.node_id, m.peer_node_id, m.peer, m.local_address, m.peer_address, m.port) == \
        (0, 1, "slave", "10.251.1.11", "10.251.1.12", 7789)
    assert (s.node_id, s.local_address, s.peer_address) == (1, "10.251.1.12", "10.251.1.11")
    assert m.size_kib == 64 * 1024 and m.resync_rate_kib == 8192 and m.protocol == "C"
    assert m.volume == str(tmp_path / "master" / "drbd" / "r0.img")
    assert cfg["master"].socket == str(tmp_path / "master" / "run" / "hatui-drbd" / "control.sock")
    assert cfg["master"].log == str(tmp_path / "master" / "log" / "hatui-drbd.log")
    img = tmp_path / "master" / "drbd" / "r0.img"
    assert img.stat().st_size == 64 << 20 and img.stat().st_blocks == 0          # sparse
    uuids = {Meta.load(tmp_path / h / "drbd" / "r0.md").current for h in ("master", "slave")}
    assert len(uuids) == 1                                                         # day 0: in sync
    for prog in ("drbdadm", "drbdsetup"):
        wrapper = (tmp_path / "master" / "drbd" / "sbin" / prog).read_text()
        assert f"exec /usr/bin/python3 -S -E /usr/local/sbin/hatui-drbd-client {prog} \"$@\"" in wrapper and os.access(tmp_path / "master" / "drbd" / "sbin" / prog, os.X_OK)
    drbddisk = tmp_path / "master" / "ha.d" / "resource.d" / "drbddisk"
    assert os.access(drbddisk, os.X_OK) and 'DRBDADM="/usr/local/sbin/drbdadm"' in drbddisk.read_text()
    conf = (tmp_path / "master" / "ha.d" / "hatui-web" / "conf.d" / WRITES_CONF).read_text()
    assert "location = /write" in conf and "proxy_pass http://127.0.0.1:8079;" in conf
    # A second prepare (a reboot) keeps the volume and its metadata.
    with open(img, "r+b") as fh:
        fh.write(b"data")
    md_before = (tmp_path / "master" / "drbd" / "r0.md").read_text()
    prepare_node(model, pair, "master", tmp_path / "master")
    assert img.read_bytes()[:4] == b"data" and (tmp_path / "master" / "drbd" / "r0.md").read_text() == md_before


def test_nginx_conf_includes_drop_ins():
    from hatui.lab import heartbeat as hb
    assert "include /etc/ha.d/hatui-web/conf.d/*.conf;" in hb.nginx_conf("master")


def test_available_here_unless_switched_off(monkeypatch):
    import hatui.lab.drbd as standin
    monkeypatch.delenv("HATUI_DRBD_STANDIN", raising=False)
    assert standin.available()
    monkeypatch.setenv("HATUI_DRBD_STANDIN", "0")
    assert not standin.available()

"""The DRBD stand-in in the real local lab (root; real Heartbeat, nginx, sshd in namespaces).

In file order, each test leaving the native pair stable (master Primary, both UpToDate):
outputs parse into the true state (also over SSH and through hatui's collector); a resync after
cut-link/heal-link with `done:` advancing; a split brain (cut-link + writes on both sides) that
the collector flags and DRBD's documented recovery repairs; no acknowledged write lost across a
graceful (stop-heartbeat) and a crash failover under a write stream.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import time

import pytest

from hatui.collectors.drbd import parse_drbd
from hatui.collectors.drbd_log import parse_drbd_kernel_log
from hatui.collectors.severity import Severity
from hatui.load.writes import WriteStream, verify
from hatui.lab import drbd, faults, hosts, pairs
from hatui.lab.drbd.node import control, daemon_state
from hatui.lab.state import lab_paths
from tests.test_drbd_standin import check_against_truth

pytestmark = pytest.mark.lab
RES = "r0"
VIP = "10.251.0.100"
ADDR = {"master": "10.251.0.11", "slave": "10.251.0.12"}
OUTPUTS = ["drbdadm status", "drbdsetup status --verbose --statistics", "drbdsetup status --json",
           "drbdsetup events2 --now --statistics", "drbdsetup events2 --now", "drbdadm status r0"]


@pytest.fixture
def drbd_lab(lab):
    """The lab, with the stand-in in use (in CI its absence is a failure, like a missing lab)."""
    if not drbd.available():
        if os.environ.get("CI") == "true":
            pytest.fail("the DRBD stand-in is not available in CI")
        pytest.skip("the DRBD stand-in is not available here")
    pair = lab.pairs["native"]
    assert "drbddisk::r0" in (lab_paths(lab).node_dir(pair.master) / "ha.d" / "haresources").read_text()
    wait_for(lambda: in_sync(lab), 30, "DRBD connected and UpToDate on both nodes")
    return lab


# --------------------------------------------------------------------------------------------
# helpers


def wait_for(pred, timeout: float, what: str, interval: float = 0.1):
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() < end, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(interval)


def truth(lab, host: str) -> dict | None:
    st = daemon_state(lab_paths(lab).node_dir(host))
    return st["internals"][RES] if st else None


def in_sync(lab) -> bool:
    t = {h: truth(lab, h) for h in ("master", "slave")}
    return all(v and v["conn"] == "Connected" and v["repl"] == "Established" and v["disk"] == "UpToDate"
               and v["peer_disk"] == "UpToDate" for v in t.values())


def sh(lab, host: str, command: str, check: bool = True):
    proc = hosts.exec_in(lab, host, command, timeout=20)
    if check:
        assert proc.returncode == 0, f"{host}: {command}: exit {proc.returncode}: {proc.stderr}"
    return proc


def assert_outputs_true(lab, host: str) -> None:
    """Every output format on `host` parses into the replicator's true state (read around the command)."""
    peer = "slave" if host == "master" else "master"
    keys = ("role", "disk", "conn", "repl", "peer_role", "peer_disk")
    for command in OUTPUTS:
        for _ in range(10):
            before = truth(lab, host)
            proc = sh(lab, host, command)
            after = truth(lab, host)
            if all(before[k] == after[k] for k in keys):
                break
        else:
            pytest.fail(f"{host}: state kept changing around `{command}`")
        check_against_truth(proc.stdout, after, peer, plain=command.startswith("drbdadm status"),
                            where=f"{host}: {command}")


def web(method: str, address: str, path: str, body: bytes = b"", timeout: float = 3.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(address, 80, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def answers(address: str, path: str) -> bool:
    try:
        return web("GET", address, path, timeout=1.0)[0] == 200
    except OSError:
        return False


def write_record(address: str, payload: bytes) -> int:
    status, body = web("POST", address, "/write", payload)
    assert status == 200, (address, status, body)
    return json.loads(body)["id"]


def wait_settled(lab, hold_s: float = 3.0, timeout_s: float = 90.0) -> None:
    """The pair stable (master serves the VIP alone, Heartbeat out of transition) for `hold_s` in a row."""
    pair = lab.pairs["native"]
    end = time.monotonic() + timeout_s
    since = None
    while True:
        ok, why = pairs.pair_stable(lab, pair)
        now = time.monotonic()
        since = (since or now) if ok else None
        if since is not None and now - since >= hold_s:
            return
        assert now < end, f"pair not settled after {timeout_s:g} s ({why})"
        time.sleep(0.2)


def standalone_both(lab) -> bool:
    t = {h: truth(lab, h) for h in ("master", "slave")}
    return all(v and v["conn"] == "StandAlone" for v in t.values())


# --------------------------------------------------------------------------------------------
# tests


def test_standin_serves_drbd9_output_everywhere_and_heartbeat_drives_it(drbd_lab):
    lab = drbd_lab
    pair = lab.pairs["native"]
    assert truth(lab, "master")["role"] == "Primary" and truth(lab, "slave")["role"] == "Secondary"
    for host in ("master", "slave"):
        assert_outputs_true(lab, host)
        which = sh(lab, host, "command -v drbdadm; command -v drbdsetup").stdout.split()
        assert which == ["/usr/local/sbin/drbdadm", "/usr/local/sbin/drbdsetup"]
    assert sh(lab, "master", "/etc/ha.d/resource.d/drbddisk r0 status").stdout == "running (Primary)\n"
    proc = sh(lab, "slave", "/etc/ha.d/resource.d/drbddisk r0 status", check=False)
    assert (proc.returncode, proc.stdout) == (3, "stopped (Secondary)\n")
    # The machine itself has no drbdadm: the commands exist inside the hosts only.
    assert not os.path.exists("/usr/local/sbin/drbdadm")
    # Over SSH (sshd runs inside the host's namespaces) and through hatui's collector.
    from hatui.collectors.cluster import collect_state
    from hatui.transport import SshPool

    async def over_ssh():
        async with SshPool([lab.hosts["master"], lab.hosts["slave"]]) as pool:
            result = await pool.run("master", "drbdadm status r0")
            state = await collect_state(lab, pool, pairs=[pair])
            return result, state
    result, state = asyncio.run(over_ssh())
    assert result.exit_status == 0
    check_against_truth(result.stdout, truth(lab, "master"), "slave", plain=True, where="ssh master")
    for host in ("master", "slave"):
        node = state.nodes[host]
        assert node.drbd_available and [r.name for r in node.drbd] == ["r0"]
        assert node.drbd[0].severity == Severity.OK and node.drbd[0].peer.connection == "Connected"
    # The write path: through the VIP to the Primary; the Secondary's service refuses.
    rid = write_record(VIP, b"hello from the lab test")
    assert web("GET", VIP, f"/read/{rid}") == (200, b"hello from the lab test")
    try:                                                 # the slave's nginx is stopped (not the active node);
        status, _ = web("POST", ADDR["slave"], "/write", b"x")   # were it running, its service says 503
        assert status == 503
    except OSError:
        pass
    reply, _ = control(lab_paths(lab).node_dir("slave"), {"op": "write", "res": RES, "offset": 0}, b"x")
    assert not reply["ok"] and "not Primary" in reply["error"]


def test_resync_after_cut_link_shows_progress_until_uptodate(drbd_lab):
    lab = drbd_lab
    nd = lab_paths(lab).node_dir("master")
    faults.inject(lab, "slave", "stop-heartbeat")        # so the slave does not take over during the cut
    try:
        faults.inject(lab, "slave", "cut-link", "replication")
        wait_for(lambda: truth(lab, "master")["conn"] == "Connecting", 10, "master to notice the cut")
        wait_for(lambda: truth(lab, "slave")["conn"] == "Connecting", 10, "slave to notice the cut")
        for host in ("master", "slave"):
            assert_outputs_true(lab, host)
        rid = write_record(VIP, b"written during the cut")
        chunk = os.urandom(1 << 20)
        for i in range(24):                              # 24 MiB out of sync: ~3 s at 8192 KiB/s
            reply, _ = control(nd, {"op": "write", "res": RES, "offset": (40 << 20) + i * len(chunk)}, chunk)
            assert reply["ok"], reply
        assert truth(lab, "master")["oos_blocks"] >= 6144
        faults.inject(lab, "slave", "heal-link", "replication")
        seen, checked = [], 0
        while True:
            t = truth(lab, "slave")
            if t["disk"] == "UpToDate" and t["repl"] == "Established" and seen:
                break
            assert len(seen) < 400, "resync did not finish"
            out = sh(lab, "slave", "drbdadm status r0").stdout
            peer = parse_drbd(out)[0].peer
            if peer.replication == "SyncTarget":
                seen.append(peer.done)
                if len(seen) == 3 and not checked:       # once, mid-sync, every format on both sides
                    assert_outputs_true(lab, "slave")
                    assert_outputs_true(lab, "master")
                    checked += 1
            time.sleep(0.05)
        assert checked and len(seen) >= 6 and seen == sorted(seen) and seen[-1] > seen[0] + 20, seen
        wait_for(lambda: in_sync(lab), 10, "both UpToDate")
        for host in ("master", "slave"):
            assert_outputs_true(lab, host)
        master_data = control(nd, {"op": "read", "res": RES, "offset": 40 << 20, "length": 1 << 20})[1]
        slave_data = control(lab_paths(lab).node_dir("slave"),
                             {"op": "read", "res": RES, "offset": 40 << 20, "length": 1 << 20})[1]
        assert master_data == slave_data == chunk
        log = parse_drbd_kernel_log((lab_paths(lab).node_dir("slave") / "log" / "hatui-drbd.log").read_text())
        assert any(e.kind == "resync_done" for e in log)
        assert web("GET", VIP, f"/read/{rid}") == (200, b"written during the cut")
    finally:
        faults.inject(lab, "slave", "heal-link", "replication")
        faults.inject(lab, "slave", "start-heartbeat")
    wait_settled(lab, 1.0)


def test_split_brain_is_flagged_and_drbds_recovery_works(drbd_lab):
    lab = drbd_lab
    pair = lab.pairs["native"]
    faults.inject(lab, "master", "cut-link", "replication")   # Heartbeat's link too: both take over
    try:
        wait_for(lambda: truth(lab, "slave")["role"] == "Primary", 20, "the slave to be promoted")
        wait_for(lambda: answers(ADDR["slave"], "/writes/info"), 20, "the slave's web service")
        survivor = write_record(ADDR["master"], b"survivor write")
        victim = write_record(ADDR["slave"], b"victim write")
        for host in ("master", "slave"):
            assert_outputs_true(lab, host)
    finally:
        faults.inject(lab, "master", "heal-link", "replication")
    wait_for(lambda: standalone_both(lab), 20, "split brain: both StandAlone")
    for host in ("master", "slave"):
        assert truth(lab, host)["split_brain_seen"]
        assert_outputs_true(lab, host)
        parsed = parse_drbd(sh(lab, host, "drbdadm status").stdout)[0]
        assert parsed.severity == Severity.ALERT and "StandAlone" in parsed.reason
        log = parse_drbd_kernel_log((lab_paths(lab).node_dir(host) / "log" / "hatui-drbd.log").read_text())
        assert any(e.kind == "split_brain" for e in log)
    # Heartbeat settles (both restart, the master takes the group back); DRBD stays StandAlone.
    wait_settled(lab)
    assert standalone_both(lab) and truth(lab, "master")["role"] == "Primary"
    # DRBD's documented recovery: the slave is the victim.
    for command in ("drbdadm disconnect r0", "drbdadm secondary r0", "drbdadm connect --discard-my-data r0"):
        sh(lab, "slave", command)
    sh(lab, "master", "drbdadm connect r0")
    wait_for(lambda: in_sync(lab), 30, "the victim resynced from the survivor")
    for host in ("master", "slave"):
        assert_outputs_true(lab, host)
    assert web("GET", VIP, f"/read/{survivor}") == (200, b"survivor write")
    assert web("GET", VIP, f"/read/{victim}")[1] != b"victim write"     # discarded with the victim's data
    assert "Split-Brain detected, manually solved. Sync from peer node" in \
        (lab_paths(lab).node_dir("slave") / "log" / "hatui-drbd.log").read_text()


async def _failover_under_writes(lab, fault: str, recovery: str, rate: float, seconds: float):
    stream = WriteStream(VIP, rate=rate, count=int(rate * seconds), timeout_s=2.0).start()
    await asyncio.sleep(seconds * 0.2)
    await asyncio.to_thread(faults.inject, lab, "master", fault)
    await asyncio.sleep(seconds * 0.35)
    await asyncio.to_thread(faults.inject, lab, "master", recovery)
    result = await stream.wait(seconds + 30)
    await asyncio.to_thread(wait_settled, lab, 1.0)
    await asyncio.to_thread(wait_for, lambda: in_sync(lab), 30, "DRBD in sync after failback")
    report = await verify(VIP, result.acked)
    return result, report


@pytest.mark.parametrize("fault,recovery", [("stop-heartbeat", "start-heartbeat"), ("crash", "restore")])
def test_no_acknowledged_write_is_lost_in_a_failover(drbd_lab, fault, recovery):
    lab = drbd_lab
    result, report = asyncio.run(_failover_under_writes(lab, fault, recovery, rate=100, seconds=10))
    served = {r.served_by for r in result.records if r.acked}
    assert len(result.acked) >= 500, result.to_json()
    assert served == {"master", "slave"}, (served, result.to_json())     # before, during and after the failover
    assert report.passed and report.lost_count == 0, report.summary()
    assert report.ok == len(result.acked)
    for host in ("master", "slave"):
        assert_outputs_true(lab, host)

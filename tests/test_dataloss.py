"""hatui.load.writes against a fake write service (no lab, no DRBD): the stream is open loop,
only acknowledged writes count, and verify tells lost, altered and unreadable writes apart."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from hatui.load.writes import NOTHING_CHECKED, LostWrites, WriteStream, run_writes, verify, verify_blocking


class FakeService:
    """POST /write stores the body under a new id; GET /read/ID returns it. Knobs for failure."""

    def __init__(self):
        self.records: dict[int, bytes] = {}
        self.next_id = 1
        self.refuse = False          # 503 for writes
        self.read_errors = 0         # this many 503s for reads before answering
        self.delay_s = 0.0
        self.started: list[float] = []
        self.server = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader, writer):
        line = (await reader.readline()).decode()
        method, path = line.split()[:2]
        length = 0
        while (h := await reader.readline()) not in (b"\r\n", b""):
            if h.lower().startswith(b"content-length:"):
                length = int(h.split(b":")[1])
        body = await reader.readexactly(length) if length else b""
        self.started.append(time.monotonic())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if method == "POST" and path == "/write":
            if self.refuse:
                status, out = 503, b"not Primary\n"
            else:
                rid = self.next_id
                self.next_id += 1
                self.records[rid] = body
                status, out = 200, json.dumps({"id": rid, "node": "fake"}).encode()
        elif path.startswith("/read/"):
            if self.read_errors > 0:
                self.read_errors -= 1
                status, out = 503, b"busy\n"
            elif int(path[6:]) in self.records:
                status, out = 200, self.records[int(path[6:])]
            else:
                status, out = 404, b"no such record\n"
        else:
            status, out = 404, b""
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(out)}\r\nX-Served-By: fake\r\n"
                     f"Connection: close\r\n\r\n".encode() + out)
        await writer.drain()
        writer.close()


@pytest.fixture
async def service():
    svc = FakeService()
    port = await svc.start()
    svc.port = port
    yield svc
    svc.server.close()


async def test_stream_is_open_loop_and_records_acknowledged_ids(service):
    service.delay_s = 0.2                       # slow replies must not slow the sending down
    t0 = time.monotonic()
    result = await run_writes("127.0.0.1", port=service.port, rate=50, count=25, timeout_s=2)
    assert result.attempted == 25 and len(result.acked) == 25 and result.errors == {}
    starts = sorted(service.started)
    assert starts[-1] - starts[0] < 0.8          # 25 writes at 50/s: ~0.5 s, not 25 x 0.2 s
    assert time.monotonic() - t0 < 2.0
    for rid, token in result.acked.items():
        assert service.records[int(rid)] == token.encode()
    assert len(set(result.acked.values())) == 25
    assert result.to_json()["acked"] == 25


async def test_refused_and_failed_writes_are_not_acknowledged(service):
    service.refuse = True
    result = await run_writes("127.0.0.1", port=service.port, rate=100, count=5)
    assert result.acked == {} and result.errors == {"http-5xx": 5}
    refused = await run_writes("127.0.0.1", port=1, rate=100, count=3, timeout_s=0.5)
    assert refused.acked == {} and sum(refused.errors.values()) == 3 and "connrefused" in refused.errors


async def test_stream_bounds_and_stop(service):
    stream = WriteStream("127.0.0.1", port=service.port, rate=20, count=1000, max_duration_s=0.5).start()
    result = await stream.wait()
    assert 8 <= result.attempted <= 11
    stream = WriteStream("127.0.0.1", port=service.port, rate=20, count=1000).start()
    await asyncio.sleep(0.3)
    result = await stream.wait(timeout_s=0.01)  # stops it
    assert result.attempted < 20


async def test_verify_tells_lost_altered_and_unreadable_apart(service):
    result = await run_writes("127.0.0.1", port=service.port, rate=200, count=20)
    acked = result.acked
    ids = sorted(acked, key=int)
    del service.records[int(ids[3])]                   # lost
    service.records[int(ids[5])] = b"something else"   # altered
    report = await verify("127.0.0.1", acked, port=service.port, retry_delay_s=0.01)
    assert isinstance(report, LostWrites)
    assert report.lost == [ids[3]] and report.mismatched == [ids[5]] and report.unreadable == []
    assert report.lost_count == 2 and report.ok == 18 and not report.passed
    assert report.served_by == {"fake": 20}
    assert "2 lost" in report.summary()
    # presence only (ids without tokens)
    report = await verify("127.0.0.1", ids, port=service.port, retry_delay_s=0.01)
    assert report.lost == [ids[3]] and report.ok == 19
    # transient errors are retried; persistent ones make the id unreadable (not lost)
    service.read_errors = 3
    report = await verify("127.0.0.1", {ids[0]: acked[ids[0]]}, port=service.port, retries=5, retry_delay_s=0.01)
    assert report.passed
    service.read_errors = 100
    report = await verify("127.0.0.1", {ids[0]: acked[ids[0]]}, port=service.port, retries=2, retry_delay_s=0.01)
    assert report.unreadable == [ids[0]] and report.lost_count == 0 and not report.complete and not report.passed
    assert json.loads(json.dumps(report.to_json()))["unreadable"] == 1


def test_verify_blocking_outside_a_loop():
    report = verify_blocking("127.0.0.1", {}, port=1)
    # issue 12: a check with nothing to read back proves nothing, so it fails (it used to pass)
    assert not report.passed and report.checked == 0 and "checked nothing" in report.failure


def test_dataloss_is_core_without_textual():
    code = "import sys, hatui.load.writes; sys.exit(1 if 'textual' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


class ForgetfulService(FakeService):
    """Acknowledges every write but silently drops every tenth: acknowledged writes get lost."""

    async def _handle(self, reader, writer):
        await super()._handle(reader, writer)
        for rid in [r for r in self.records if r % 10 == 0]:
            del self.records[rid]


async def hatui_load_with_writes(svc: FakeService, num_conns: int) -> tuple[int, dict, bytes]:
    """`hatui load --write-ratio 0.5 --json` against `svc`: exit code, its "writes" object, stderr."""
    port = await svc.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hatui", "load", f"http://127.0.0.1:{port}/index.html", "--rate", "50",
            "--num-conns", str(num_conns), "--write-ratio", "0.5", "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        svc.server.close()
    return proc.returncode, json.loads(out)["writes"], err


@pytest.mark.parametrize("service_class,expect_lost", [(FakeService, False), (ForgetfulService, True)])
async def test_hatui_load_write_ratio_reports_lost_acknowledged_writes(service_class, expect_lost):
    returncode, writes, err = await hatui_load_with_writes(service_class(), 40)
    assert writes["checked"] == 20, writes  # 40 connections x 0.5, all acknowledged
    if expect_lost:
        assert returncode == 1, err
        assert writes["lost"] == 2 and sorted(writes["lost_ids"]) == ["10", "20"], writes
    else:
        assert returncode == 0, err
        assert writes["lost"] == 0, writes


async def test_hatui_load_write_ratio_fails_when_no_write_was_acknowledged():
    svc = FakeService()
    svc.refuse = True  # every write answered 503: nothing acknowledged, nothing to read back
    returncode, writes, err = await hatui_load_with_writes(svc, 20)
    assert returncode == 1, err
    assert writes["checked"] == 0 and writes["passed"] is False and writes["failure"] == NOTHING_CHECKED

"""Measurement maths (records -> phases, outages, availability) and the open-loop stream on loopback."""

from __future__ import annotations

import asyncio
import socket

import pytest

from hatui.config import parse_lab
from hatui.drill.measure import Record, RunStreams, outages, per_second, phase_result, run_result
from hatui.drill.plan import PlannedRun
from tests.test_config import LAB_TEXT


def ok(t, by="master"):
    return Record(t, t + 0.001, "success", 200, by)


def fail(t, outcome="connrefused"):
    return Record(t, t + 0.001, outcome, None, None)


def test_outage_is_last_success_to_first_success():
    probe = [ok(0.00), ok(0.01), fail(0.02), fail(0.03), fail(0.04), ok(0.05, "slave"), ok(0.06, "slave")]
    (o,) = outages(probe, min_gap_s=0.025)
    assert (o.start_s, o.end_s, o.served_before, o.served_after) == (0.01, 0.05, "master", "slave")
    assert o.duration_ms == pytest.approx(40.0)


def test_single_late_probe_is_not_an_outage():
    assert outages([ok(0.0), fail(0.01), ok(0.02)], min_gap_s=0.025) == []
    assert outages([ok(0.0), ok(0.5)], min_gap_s=0.025) == []  # a gap without failures is not an outage


def test_phase_split_counts_each_connection_once():
    load = [ok(t / 10) for t in range(100)] + [fail(3.05), fail(3.15, "client-timo"), fail(7.2, "connreset")]
    probe = [ok(t / 100) for t in range(300)] + [fail(3.0 + i / 100) for i in range(1, 60)] + [ok(3.6, "slave")]
    fo = phase_result("failover", load, probe, 0.0, 6.0, 10)
    fb = phase_result("failback", load, probe, 6.0, 10.0, 10)
    assert fo.requests + fb.requests == len(load)
    assert (fo.requests, fo.success, fo.errors["connrefused"], fo.errors["client-timo"]) == (62, 60, 1, 1)
    assert fo.availability_pct == pytest.approx(60 / 62 * 100, abs=1e-3)
    assert fo.downtime_ms == pytest.approx(610, abs=1) and fo.resolution_ms == 10
    assert (fo.served_before, fo.served_after) == ("master", "slave")
    assert fb.downtime_ms is None and fb.errors["connreset"] == 1


def test_per_second_series():
    rows = per_second([ok(0.1), ok(0.9), fail(1.5), ok(1.7)])
    assert rows == [{"t": 0, "attempted": 2, "success": 2, "errors": {}},
                    {"t": 1, "attempted": 2, "success": 1, "errors": {"connrefused": 1}}]


class CountingServer:
    """An HTTP server on loopback that counts what it served and names itself."""

    def __init__(self, name="master"):
        self.name, self.served = name, 0

    async def handle(self, reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        self.served += 1
        body = f"served by {self.name}\n".encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()


async def test_streams_against_loopback_server_match_server_count():
    server = CountingServer()
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    streams = RunStreams("127.0.0.1", port, "/index.html", rate=100, connections=150, timeout_s=1, probe_interval_ms=20)
    await streams.wait(10)
    srv.close()
    load = streams.load.records
    assert len(load) == 150 and all(r.ok and r.served_by == "master" for r in load)
    assert server.served == 150 + len(streams.probe.records)
    lab = parse_lab(LAB_TEXT)
    planned = PlannedRun("native/native/rate100/rep1", "native", "native", 100, 1, 150, "stop-heartbeat", "master", 0.5, 1.0)
    result = run_result(planned, streams, [{"mark": "recovery-sent", "at_s": 1.0}], lab.pairs["native"], probe_interval_ms=20)
    assert result.phases["failover"].requests + result.phases["failback"].requests == 150
    assert result.phases["failover"].availability_pct == 100.0 and result.phases["failover"].downtime_ms is None
    assert result.valid, result.invalid_reasons
    assert result.served_counts == {"master": 150}


async def test_refused_port_is_classified():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    streams = RunStreams("127.0.0.1", port, "/", rate=50, connections=10, timeout_s=0.5, probe_interval_ms=50)
    await streams.wait(5)
    assert [r.outcome for r in streams.load.records] == ["connrefused"] * 10

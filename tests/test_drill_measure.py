"""A drill run's measurement on loopback: the load engine's load + probe streams split into phases."""

from __future__ import annotations

import asyncio

import pytest

from hatui.config import parse_lab
from hatui.drill.measure import PROBE_MARKER, RunStreams, probe_marks, probe_uri, run_result
from hatui.drill.plan import PlannedRun, RunKey
from hatui.drill.results import Mark
from hatui.load.testing import TestHttpServer
from tests.test_config import LAB_TEXT


def planned(rate: float, conns: int) -> PlannedRun:
    return PlannedRun(RunKey("native", "native", rate, 1), conns, "stop-heartbeat", "master", 0.5, 1.0)


def test_probe_uri_is_marked():
    assert probe_uri("/index.html") == f"/index.html?{PROBE_MARKER}"
    assert probe_uri("/a?b=1") == f"/a?b=1&{PROBE_MARKER}"


async def test_phases_split_every_connection_once_and_match_the_server():
    lab = parse_lab(LAB_TEXT)
    async with TestHttpServer(name="master") as server:
        streams = RunStreams("127.0.0.1", server.port, "/index.html", rate=100, connections=150, timeout_s=1,
                             probe_interval_ms=20)
        await streams.wait(10)
    marks = [Mark("recovery-sent", 1.0, 0.0)]
    result = run_result(planned(100, 150), streams, marks, lab.pairs["native"], probe_interval_ms=20)
    fo, fb = result.phases["failover"], result.phases["failback"]
    assert fo.requests + fb.requests == 150 and fo.requests == pytest.approx(100, abs=2)
    assert fo.success + fb.success == 150 and fo.availability_pct == 100.0
    assert fo.downtime_ms is None and fo.resolution_ms == pytest.approx(20)
    assert server.served == 150 + len(streams.probe.result.probe)  # load + probe, nothing else
    assert result.valid, result.invalid_reasons
    assert result.load_lateness_ms["p99"] < 50 and result.probe_lateness_ms["p99"] < 20  # judged, and kept
    assert result.served_counts == {"master": 150}
    assert sum(row["attempted"] for row in result.per_second) == 150


async def test_an_outage_is_measured_on_the_probe_in_its_phase():
    lab = parse_lab(LAB_TEXT)
    server = await TestHttpServer(name="master").start()
    streams = RunStreams("127.0.0.1", server.port, "/index.html", rate=50, connections=150, timeout_s=0.5,
                         probe_interval_ms=10)
    await asyncio.sleep(streams.t0 - asyncio.get_running_loop().time() + 0.8)
    await server.stop()  # the service goes away for ~0.6 s
    await asyncio.sleep(0.6)
    other = TestHttpServer(name="slave", port=server.port)
    await other.start()
    await streams.wait(10)
    await other.stop()
    marks = [Mark("fault-sent", 0.75, 0.0), Mark("recovery-sent", 2.0, 0.0)]
    result = run_result(planned(50, 150), streams, marks, lab.pairs["native"], probe_interval_ms=10)
    fo, fb = result.phases["failover"], result.phases["failback"]
    assert 450 <= fo.downtime_ms <= 900, fo
    assert (fo.served_before, fo.served_after) == ("master", "slave")
    assert fo.errors["connrefused"] >= 20 and fo.availability_pct < 100
    assert fb.downtime_ms is None and fb.availability_pct == 100.0
    found = {m.name for m in probe_marks(streams, marks, lab.pairs["native"])}
    assert "first-success-new" in found

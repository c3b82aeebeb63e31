"""The builtin load engine against loopback servers (only 127.0.0.1 is ever targeted)."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import textwrap
import time

import pytest

from hatui.load import (LoadRun, LoadSpec, Outcome, ProbeSpec, ServedBy, Tick, find_outages, run_load,
                        summarize)
from hatui.load.events import LoadFinished, LoadStarted, OutageEnded, OutageStarted, ServedByChanged
from hatui.load.testing import TestHttpServer, closed_port

BOUND = 30.0  # no test may hang: every await is bounded


async def bounded(coro, limit: float = BOUND):
    return await asyncio.wait_for(coro, limit)


async def test_success_count_matches_what_the_server_served():
    async with TestHttpServer(name="alpha") as srv:
        s = await bounded(LoadRun(LoadSpec(srv.url, 200, 60, timeout=2)).run())
    assert s.requests == 60
    assert s.replies == s.success == srv.served == srv.requests == 60
    assert s.errors == dict.fromkeys(s.errors, 0)
    assert s.availability_pct == 100.0
    assert s.status["2xx"] == 60
    assert s.served_by == {"alpha": 60}
    assert s.valid, s.invalid_reasons
    assert s.conn_time_ms is not None and s.conn_time_ms.n == 60
    assert 0 < s.conn_time_ms.min <= s.conn_time_ms.median <= s.conn_time_ms.p90 <= s.conn_time_ms.p99 <= s.conn_time_ms.max


async def test_records_have_ordered_times_and_schedule():
    async with TestHttpServer() as srv:
        run = LoadRun(LoadSpec(srv.url, 100, 20, timeout=2))
        await bounded(run.run())
    store = run.result.load
    assert len(store) == 20
    for r in store:
        assert r.outcome == Outcome.SUCCESS and r.status == 200 and r.served_by == "node1"
        assert r.scheduled == pytest.approx(r.index / 100)
        assert r.start >= r.scheduled - 1e-6
        assert r.start <= r.connected <= r.first_byte <= r.end
    assert store.nbytes() < 60 * len(store)


async def test_timeouts_are_client_timo():
    async with TestHttpServer(mode="silent") as srv:
        t = time.monotonic()
        s = await bounded(LoadRun(LoadSpec(srv.url, 50, 5, timeout=0.3)).run())
        took = time.monotonic() - t
        assert srv.requests == 5
    assert s.requests == 5 and s.success == 0 and s.replies == 0
    assert s.errors["client-timo"] == 5
    assert took < 0.08 + 0.3 + 1.0  # the run ends at the last deadline, not a timeout later
    assert s.outages is not None and len(s.outages) == 1 and s.outages[0].open


async def test_refused_port_is_connrefused():
    sock, port = closed_port()
    try:
        s = await bounded(LoadRun(LoadSpec(f"http://127.0.0.1:{port}/", 100, 10, timeout=1)).run())
    finally:
        sock.close()
    assert s.errors["connrefused"] == 10 and s.success == 0
    assert s.valid  # refusals are the server's doing, not the client's


async def test_resets_are_connreset():
    async with TestHttpServer(mode="reset") as srv:
        s = await bounded(LoadRun(LoadSpec(srv.url, 100, 10, timeout=1)).run())
        assert srv.resets == 10
    assert s.errors["connreset"] == 10 and s.success == 0


@pytest.mark.parametrize("mode", ["close", "garbage"])
async def test_no_reply_or_not_http_is_other(mode):
    async with TestHttpServer(mode=mode) as srv:
        s = await bounded(LoadRun(LoadSpec(srv.url, 100, 5, timeout=1)).run())
    assert s.errors["other"] == 5 and s.replies == 0


async def test_http_errors_are_replies_but_not_successes():
    async with TestHttpServer(mode="status", status=503) as srv:
        s = await bounded(LoadRun(LoadSpec(srv.url, 100, 8, timeout=1)).run())
    assert s.replies == 8 and s.success == 0
    assert s.status["5xx"] == 8 and s.errors["http-5xx"] == 8
    assert s.error_total == 8 and s.availability_pct == 0.0


@pytest.mark.parametrize("mode", ["chunked", "eof"])
async def test_chunked_and_close_delimited_replies_complete(mode):
    async with TestHttpServer(mode=mode, name="beta") as srv:
        s = await bounded(LoadRun(LoadSpec(srv.url, 100, 6, timeout=1)).run())
    assert s.success == 6, s.errors
    assert s.served_by == {"beta": 6}


async def test_served_by_header_wins_and_extraction_is_configurable():
    async with TestHttpServer(name="gamma", served_by_header=True) as srv:
        run = LoadRun(LoadSpec(srv.url, 100, 3, timeout=1, served_by=ServedBy(header="X-Served-By", pattern=None)))
        s = await bounded(run.run())
        assert s.served_by == {"gamma": 3}
        s2 = await bounded(LoadRun(LoadSpec(srv.url, 100, 3, timeout=1,
                                            served_by=ServedBy(header=None, pattern=r"<p>served by (\w+)</p>"))).run())
        assert s2.served_by == {"gamma": 3}
        s3 = await bounded(LoadRun(LoadSpec(srv.url, 100, 3, timeout=1, served_by=None)).run())
        assert s3.served_by == {} and s3.success == 3


async def test_host_header_and_uri_are_sent():
    seen = []

    async def handle(reader, writer):
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        s = await bounded(LoadRun(LoadSpec(f"http://127.0.0.1:{port}/a/b?c=1", 50, 1, timeout=1,
                                           host_header="vip.example")).run())
    finally:
        server.close()
    assert s.success == 1
    req = seen[0].decode()
    assert req.startswith("GET /a/b?c=1 HTTP/1.1\r\n")
    assert "\r\nHost: vip.example\r\n" in req and "\r\nConnection: close\r\n" in req


async def test_rate_accuracy_200_per_second_for_2_seconds():
    async with TestHttpServer() as srv:
        run = LoadRun(LoadSpec(srv.url, 200, 400, timeout=2))
        t = time.monotonic()
        s = await bounded(run.run())
        wall = time.monotonic() - t
    assert s.requests == 400 and s.success == 400
    # (n-1) / (last start - first start): 1 % is the validity rule; allow 2 % for a loaded 2-core box
    assert s.achieved_rate == pytest.approx(200, rel=0.02)
    assert 1.9 < wall < 3.0
    starts = sorted(run.result.load.start)
    lateness = sorted(a - b for a, b in zip(run.result.load.start, run.result.load.scheduled))
    assert lateness[len(lateness) // 2] < 0.020  # median launch lateness under 20 ms
    per_second = [b.attempted for b in s.per_second]
    assert sum(per_second) == 400 and per_second[0] >= 180 and per_second[1] >= 180
    assert starts[0] < 0.02


async def test_outage_from_stopped_and_restarted_server_matches_the_gap():
    srv = await TestHttpServer(name="master").start()
    run = LoadRun(LoadSpec(srv.url, 50, 125, timeout=1), probe=ProbeSpec(interval=0.01, timeout=0.3))
    events = []
    run.add_listener(events.append)
    task = asyncio.ensure_future(run.run())
    try:
        await asyncio.sleep(0.8)
        t_down = time.monotonic()
        await srv.stop()
        await asyncio.sleep(0.5)
        srv.name = "slave"
        await srv.start()
        gap = time.monotonic() - t_down
        s = await bounded(task)
    finally:
        await srv.stop()
    assert s.outage_stream == "probe" and s.resolution_s == 0.01
    assert len(s.outages) == 1, s.outages
    o = s.outages[0]
    # downtime = last success before -> first success after, exact to one probe interval (+ loop slack)
    assert o.duration == pytest.approx(gap, abs=0.01 + 0.05)
    assert o.served_by_before == "master" and o.served_by_after == "slave"
    # refused while nothing listens; a connection caught in the stop may be reset
    assert sum(o.errors_by_class.values()) == o.errors >= 40
    assert o.errors_by_class.get("connrefused", 0) >= o.errors - 3
    assert o.load_errors == s.error_total > 0
    assert s.downtime_s == pytest.approx(o.duration)
    assert s.served_by.keys() == {"master", "slave"}
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    started = [e for e in events if isinstance(e, OutageStarted)]
    ended = [e for e in events if isinstance(e, OutageEnded)]
    changed = [e for e in events if isinstance(e, ServedByChanged)]
    assert len(started) == 1 and len(ended) == 1 and ended[0].duration == pytest.approx(o.duration, abs=0.02)
    assert changed and changed[0].before == "master" and changed[0].after == "slave"
    # a window around the outage has it; a window after it has none
    t0, t1 = o.start - 0.1, o.end + 0.1
    w = summarize(run.result, window=(t0, t1))
    assert len(w.outages) == 1 and w.requests < s.requests and w.window == (t0, t1)
    after = summarize(run.result, window=(o.end + 0.05, None))
    assert after.outages == [] and after.availability_pct == 100.0


async def test_outages_from_load_records_without_probe():
    srv = await TestHttpServer().start()
    run = LoadRun(LoadSpec(srv.url, 100, 150, timeout=1))
    task = asyncio.ensure_future(run.run())
    try:
        await asyncio.sleep(0.5)
        await srv.stop()
        await asyncio.sleep(0.3)
        await srv.start()
        s = await bounded(task)
    finally:
        await srv.stop()
    assert s.outage_stream == "load" and s.resolution_s == pytest.approx(0.01)
    assert len(s.outages) == 1 and s.outages[0].duration == pytest.approx(0.3, abs=0.08)


async def test_ticks_counters_and_event_iterator():
    async with TestHttpServer() as srv:
        run = LoadRun(LoadSpec(srv.url, 100, 230, timeout=1))
        assert run.counters.state == "new"
        seen = []

        async def consume():
            async for ev in run.events():
                seen.append(ev)

        consumer = asyncio.ensure_future(consume())
        await asyncio.sleep(0)
        task = asyncio.ensure_future(run.run())
        await asyncio.sleep(1.2)
        mid = run.counters
        s = await bounded(task)
        await bounded(consumer, 5)
    assert mid.state == "running" and 100 <= mid.load.launched <= 170 and mid.num_conns == 230
    ticks = [e for e in seen if isinstance(e, Tick)]
    assert isinstance(seen[0], LoadStarted) and isinstance(seen[-1], LoadFinished) and seen[-1].summary is s
    assert len(ticks) == 2 and [t.second for t in ticks] == [0, 1]
    assert 90 <= ticks[0].load_last.launched <= 110 and ticks[1].counters.load.success >= 190
    assert run.counters.state == "done" and run.counters.load.success == 230


async def test_stop_is_clean_and_the_summary_covers_what_ran():
    async with TestHttpServer() as srv:
        run = LoadRun(LoadSpec(srv.url, 100, 1000, timeout=1))
        task = asyncio.ensure_future(run.run())
        await asyncio.sleep(0.5)
        run.stop()
        s = await bounded(task, 5)
        assert srv.served == s.success
    assert s.stopped and 30 <= s.requests <= 110 and s.success == s.requests and s.aborted == 0
    assert run.state == "done"


async def test_abort_cuts_in_flight_connections_which_are_not_counted():
    async with TestHttpServer(mode="silent") as srv:
        run = LoadRun(LoadSpec(srv.url, 100, 1000, timeout=10))
        task = asyncio.ensure_future(run.run())
        await asyncio.sleep(0.3)
        t = time.monotonic()
        run.stop(abort=True)
        s = await bounded(task, 5)
        assert time.monotonic() - t < 1.0
    assert s.stopped and s.requests == 0 and s.aborted >= 20


async def test_cancelling_the_task_closes_everything():
    async with TestHttpServer(mode="silent") as srv:
        run = LoadRun(LoadSpec(srv.url, 100, 1000, timeout=10))
        task = asyncio.ensure_future(run.run())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert run.state == "done" and run.summary is not None and run.summary.aborted > 0
    assert not run._conns


async def test_stop_before_run_gives_an_empty_run():
    async with TestHttpServer() as srv:
        run = LoadRun(LoadSpec(srv.url, 100, 100, timeout=1))
        run.stop()
        s = await bounded(run.run(), 5)
    assert s.requests <= 1 and s.stopped


async def test_in_flight_cap_counts_fd_unavail_and_invalidates():
    async with TestHttpServer(mode="silent") as srv:
        s = await bounded(LoadRun(LoadSpec(srv.url, 200, 40, timeout=0.5, max_inflight=10)).run())
    assert s.errors["fd-unavail"] == 30 and s.errors["client-timo"] == 10
    assert not s.valid and any("client-side resource errors" in r for r in s.invalid_reasons)


async def test_probe_only_run_with_duration():
    async with TestHttpServer() as srv:
        run = LoadRun(None, probe=ProbeSpec(interval=0.02, timeout=0.2, duration=0.5), url=srv.url)
        s = await bounded(run.run())
    assert s.requests == 0 and s.probe.requests == 26 and s.probe.success == 26
    assert s.outages == []


async def test_a_broken_listener_does_not_break_the_run():
    def bad(event):
        raise RuntimeError("listener bug")

    async with TestHttpServer() as srv:
        s = await bounded(LoadRun(LoadSpec(srv.url, 100, 5, timeout=1), listeners=[bad]).run())
    assert s.success == 5


async def test_loop_stays_responsive_at_high_rate():
    """A 1 ms heartbeat on the same loop keeps beating while 2000 conn/s run."""
    async with TestHttpServer() as srv:
        gaps = []

        async def heartbeat(stop):
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.001)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        stop = asyncio.Event()
        hb = asyncio.ensure_future(heartbeat(stop))
        s = await bounded(LoadRun(LoadSpec(srv.url, 2000, 2000, timeout=2)).run())
        stop.set()
        await hb
    assert s.requests == 2000
    gaps.sort()
    assert gaps[len(gaps) // 2] < 0.01 and gaps[-1] < 0.5


def test_run_load_uses_its_own_loop_and_works_on_plain_asyncio():
    # the server needs a loop of its own, in a thread, since run_load starts a fresh loop
    import threading

    ready = threading.Event()
    holder = {}

    def serve():
        loop = asyncio.new_event_loop()
        srv = TestHttpServer()
        loop.run_until_complete(srv.start())
        holder.update(loop=loop, srv=srv)
        ready.set()
        loop.run_forever()
        loop.run_until_complete(srv.stop())
        loop.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    assert ready.wait(5)
    try:
        for uv in (True, False):
            s = run_load(LoadSpec(holder["srv"].url, 100, 10, timeout=1), use_uvloop=uv)
            assert s.success == 10
    finally:
        holder["loop"].call_soon_threadsafe(holder["loop"].stop)
        th.join(5)


def test_fd_exhaustion_is_counted_not_a_crash(tmp_path):
    """With a 48-fd limit and 200 hung connections, socket() fails with EMFILE: fd-unavail, invalid."""
    script = textwrap.dedent("""
        import asyncio, json, resource
        from hatui.load import LoadRun, LoadSpec
        from hatui.load.testing import TestHttpServer
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
        async def main():
            async with TestHttpServer(mode="silent") as srv:
                s = await asyncio.wait_for(LoadRun(LoadSpec(srv.url, 400, 120, timeout=0.5,
                                                            max_inflight=100000)).run(), 20)
            print(json.dumps({"errors": s.errors, "valid": s.valid, "reasons": s.invalid_reasons,
                              "requests": s.requests}))
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["requests"] == 120
    assert data["errors"]["fd-unavail"] > 0 and not data["valid"]
    assert any("file descriptors" in r for r in data["reasons"])


def test_load_core_does_not_import_textual():
    code = ("import sys, hatui.load, hatui.load.testing, hatui.load.format, hatui.commands.load\n"
            "print(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


async def test_find_outages_matches_live_records():
    """find_outages on the probe store equals the summary's outages (same definition, one place)."""
    srv = await TestHttpServer().start()
    run = LoadRun(LoadSpec(srv.url, 20, 20, timeout=1), probe=ProbeSpec(interval=0.01, timeout=0.2))
    task = asyncio.ensure_future(run.run())
    try:
        await asyncio.sleep(0.3)
        await srv.stop()
        await asyncio.sleep(0.2)
        await srv.start()
        s = await bounded(task)
    finally:
        await srv.stop()
    again = find_outages(run.result.probe, load=run.result.load)
    assert [o.to_dict() for o in again] == [o.to_dict() for o in s.outages]
    assert not math.isnan(s.outages[0].duration)


async def test_sharded_run_over_two_sender_processes():
    """workers=2: the same schedule sent from two processes, records merged in schedule order."""
    from hatui.load import ShardedRun, make_run

    async with TestHttpServer(name="web") as srv:
        run = make_run(LoadSpec(srv.url, 200, 201, timeout=2), workers=2, probe=ProbeSpec(interval=0.02))
        assert isinstance(run, ShardedRun)
        events = []
        run.add_listener(events.append)
        s = await bounded(run.run())
        assert srv.served == s.success + s.probe.success
    assert s.requests == 201 and s.success == 201 and s.valid, s.invalid_reasons
    assert s.served_by == {"web": 201} and s.achieved_rate == pytest.approx(200, rel=0.05)
    assert s.cpu_user_s > 0 and "sent from 2 processes" in s.notes
    store = run.result.load
    assert [round(x, 6) for x in store.scheduled] == [round(k / 200, 6) for k in range(201)]
    assert all(store.start[k] >= store.scheduled[k] - 0.001 for k in range(201))
    assert events[0].kind == "started" and events[-1].kind == "finished"
    assert any(e.kind == "tick" and e.counters.load is not None and e.counters.load.launched > 0 for e in events)


async def test_sharded_run_stop_and_outage_on_the_probe():
    from hatui.load import ShardedRun

    srv = await TestHttpServer().start()
    run = ShardedRun(LoadSpec(srv.url, 100, 1000, timeout=1), workers=2, probe=ProbeSpec(interval=0.01, timeout=0.2))
    task = asyncio.ensure_future(run.run())
    try:
        await asyncio.sleep(1.4)  # senders start 0.6 s after run()
        await srv.stop()
        await asyncio.sleep(0.3)
        await srv.start()
        await asyncio.sleep(0.4)
        run.stop()
        s = await bounded(task)
    finally:
        await srv.stop()
    assert s.stopped and 60 <= s.requests <= 250
    assert len(s.outages) == 1 and s.outages[0].duration == pytest.approx(0.3, abs=0.08)
    assert s.outage_stream == "probe"

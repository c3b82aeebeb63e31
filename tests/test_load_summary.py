"""Summaries, outages, windows and validity on synthetic records (no network)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hatui.load import (LoadRecording, LoadSpec, Outcome, ProbeSpec, RecordStore, find_outages, stream_summary,
                        summarize)
from hatui.load.format import format_summary
from hatui.load.records import records_text
from hatui.load.summary import Stats, achieved_rate

URL = "http://127.0.0.1:9/index.html"


def make_store(stream: str, interval: float, rows, timeout: float = 1.0) -> RecordStore:
    """rows: (start, duration, outcome, status, served_by); scheduled = i * interval."""
    s = RecordStore(stream, interval, timeout)
    for i, (start, dur, outcome, status, served) in enumerate(rows):
        s.add(i * interval, start)
        s.end[i] = start + dur
        s.outcome[i] = int(outcome)
        if outcome in (Outcome.SUCCESS, Outcome.HTTP_ERROR, Outcome.BAD_REPLY, Outcome.RESET, Outcome.TIMEOUT):
            s.connected[i] = start + dur / 4
        if outcome in (Outcome.SUCCESS, Outcome.HTTP_ERROR):
            s.first_byte[i] = start + dur / 2
            s.status[i] = status
        if served:
            s.served_by[i] = s.name_id(served)
    return s


def result(load: RecordStore | None, probe: RecordStore | None = None, rate: float = 10.0, n: int | None = None):
    spec = LoadSpec(URL, rate, n if n is not None else (len(load) if load else 1), timeout=1.0)
    return LoadRecording(engine="builtin", spec=spec, probe_spec=ProbeSpec() if probe else None, load=load, probe=probe,
                     t0_monotonic=100.0, t0_wall=1e9, wall_duration=10.0, cpu_user_s=0.1, cpu_system_s=0.05)


def ok(t, served="master", d=0.001):
    return (t, d, Outcome.SUCCESS, 200, served)


def err(t, outcome=Outcome.REFUSED, d=0.0005):
    return (t, d, outcome, 0, None)


def test_counts_with_httperf_meanings():
    rows = [ok(0.0), ok(0.1), (0.2, 0.002, Outcome.HTTP_ERROR, 503, None), (0.3, 0.002, Outcome.HTTP_ERROR, 404, None),
            err(0.4), err(0.5, Outcome.TIMEOUT, 1.0), err(0.6, Outcome.RESET), err(0.7, Outcome.BAD_REPLY),
            err(0.8, Outcome.FD_UNAVAIL, 0.0), (0.9, 0.0, Outcome.ABORTED, 0, None)]
    s = summarize(result(make_store("load", 0.1, rows)))
    assert s.requests == 9 and s.aborted == 1
    assert s.replies == 4 and s.success == 2
    assert s.status == {"1xx": 0, "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 1}
    assert s.errors["http-5xx"] == 1 and s.errors["http-4xx"] == 1 and s.errors["connrefused"] == 1
    assert s.errors["client-timo"] == 1 and s.errors["connreset"] == 1 and s.errors["other"] == 1
    assert s.errors["fd-unavail"] == 1
    assert s.error_total == 7 == sum(s.errors.values())
    assert s.availability_pct == pytest.approx(2 / 9 * 100)
    assert not s.valid and "client-side resource errors" in s.invalid_reasons[0]
    assert s.conn_time_ms.n == 4  # over complete replies, as httperf's "Connection time"
    assert s.per_second[0].attempted == 9 and s.per_second[0].success == 2


def test_achieved_rate_is_robust_to_jitter_and_sees_falling_behind():
    steady = [i / 100 + 0.001 + (0.0005 if i % 2 else 0) for i in range(200)]
    assert achieved_rate(steady) == pytest.approx(100, rel=0.001)
    behind = [i / 90 for i in range(200)]
    assert achieved_rate(behind) == pytest.approx(90)
    assert achieved_rate([1.0]) is None


def test_rate_validity_rule():
    slow = make_store("load", 0.01, [ok(i / 95) for i in range(300)])  # 95/s for a 100/s target
    s = summarize(result(slow, rate=100))
    assert not s.valid and "under the target 100" in s.invalid_reasons[0]
    short = make_store("load", 0.01, [ok(0.0)] + [ok(i / 100 + 0.002) for i in range(1, 5)])
    assert summarize(result(short, rate=100)).valid  # 2 ms of jitter on 5 connections is not a failure


def test_outage_is_last_success_before_to_first_success_after():
    rows = [ok(i * 0.01, "master") for i in range(50)]  # up to 0.49 (+1 ms)
    rows += [err(0.50 + i * 0.01) for i in range(30)]  # 0.50 .. 0.79 refused
    rows += [ok(0.80 + i * 0.01, "slave") for i in range(20)]
    probe = make_store("probe", 0.01, rows)
    outs = find_outages(probe)
    assert len(outs) == 1
    o = outs[0]
    assert o.start == pytest.approx(0.491) and o.end == pytest.approx(0.801)
    assert o.duration == pytest.approx(0.31) and not o.open and o.resolution == 0.01
    assert o.errors == 30 and o.errors_by_class == {"connrefused": 30}
    assert o.served_by_before == "master" and o.served_by_after == "slave"
    assert o.first_failure == pytest.approx(0.50)


def test_straggler_success_does_not_split_or_end_an_outage_early():
    rows = [ok(i * 0.01) for i in range(10)]  # .. 0.091
    rows.append(ok(0.10, d=1.02))  # SYN retransmitted: succeeds at 1.12, after recovery
    rows += [err(0.11 + i * 0.01, Outcome.TIMEOUT, 0.5) for i in range(40)]  # 0.11 .. 0.50
    rows += [ok(0.51 + i * 0.01, "slave") for i in range(100)]
    outs = find_outages(make_store("probe", 0.01, rows))
    assert len(outs) == 1 and outs[0].end == pytest.approx(0.511) and outs[0].start == pytest.approx(0.091)


def test_open_outages_at_the_start_and_the_end():
    rows = [err(0.0), err(0.01), ok(0.02), ok(0.03), err(0.04, Outcome.TIMEOUT, 0.3), err(0.05, Outcome.TIMEOUT, 0.3)]
    outs = find_outages(make_store("probe", 0.01, rows))
    assert [o.open for o in outs] == [True, True]
    assert outs[0].start is None and outs[0].end == pytest.approx(0.021)
    assert outs[0].duration == pytest.approx(0.021)  # from the first failure: a lower bound
    assert outs[1].end is None and outs[1].duration == pytest.approx(0.35 - 0.031)


def test_windows_split_a_run_into_phases():
    rows = []
    t = 0.0
    for i in range(400):  # 40 s at 10/s: outage 10.0-10.6 (failover), 30.0-30.5 (failback)
        t = i * 0.1
        down = 10.0 <= t < 10.6 or 30.0 <= t < 30.5
        rows.append(err(t) if down else ok(t, "slave" if 10.6 <= t < 30.5 else "master"))
    load = make_store("load", 0.1, rows)
    probe = make_store("probe", 0.1, rows)
    r = result(load, probe, rate=10)
    whole = summarize(r)
    assert len(whole.outages) == 2
    fo = summarize(r, window=(0.0, 20.0))
    fb = summarize(r, window=(20.0, None))
    assert fo.requests + fb.requests == whole.requests
    assert fo.success + fb.success == whole.success
    assert len(fo.outages) == 1 and len(fb.outages) == 1
    assert fo.outages[0].served_by_after == "slave" and fb.outages[0].served_by_after == "master"
    assert fo.outages[0].duration == pytest.approx(0.7)  # 9.901 -> 10.601
    assert fo.downtime_s + fb.downtime_s == pytest.approx(whole.downtime_s)
    assert fo.probe.requests == 200 and fo.cpu_user_s is None  # CPU is per run, not per window
    assert [b.t for b in fo.per_second] == list(range(0, 20))
    assert fo.window == (0.0, 20.0)


def test_stats_percentiles_nearest_rank():
    st_ = Stats.of_seconds([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert st_.min == pytest.approx(1) and st_.max == pytest.approx(100) and st_.p90 == pytest.approx(90)
    assert st_.p99 == pytest.approx(99) and st_.median == pytest.approx(50.5) and st_.n == 100
    assert Stats.of_seconds([]) is None


def test_format_and_records_render():
    rows = [ok(0.0), err(0.1), ok(0.2, "slave")]
    r = result(make_store("load", 0.1, rows), make_store("probe", 0.1, rows))
    text = format_summary(summarize(r))
    assert "Total: connections 3 replies 2 success 2" in text
    assert "Errors: total 1 client-timo 0 socket-timo 0 connrefused 1 connreset 0" in text
    assert "Outages (probe stream, resolution 100 ms): 1" in text and "master -> slave" in text
    csv_text = records_text([r.load, r.probe])
    lines = csv_text.splitlines()
    assert lines[0] == "stream,index,scheduled,start,connected,first_byte,end,outcome,status,served_by"
    assert len(lines) == 7 and lines[2].startswith("load,1,") and ",refused," in lines[2]
    assert '"outcome": "success"' in records_text([r.load], "jsonl")


outcomes = st.sampled_from([Outcome.SUCCESS, Outcome.HTTP_ERROR, Outcome.TIMEOUT, Outcome.REFUSED, Outcome.RESET,
                            Outcome.BAD_REPLY, Outcome.OTHER, Outcome.ABORTED])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.05), st.floats(0, 2), outcomes, st.sampled_from([200, 302, 404, 503]),
                          st.sampled_from([None, "a", "b"])), max_size=80),
       st.floats(0, 8), st.floats(0, 8))
def test_summary_invariants(rows, w0, w1):
    rows = [(i * 0.1 + jitter, d, o, status, sb) for i, (jitter, d, o, status, sb) in enumerate(rows)]
    store = make_store("load", 0.1, rows)
    r = result(store, rate=10, n=max(1, len(rows)))
    window = (min(w0, w1), max(w0, w1))
    for s in (summarize(r), summarize(r, window=window)):
        assert s.requests == s.success + sum(s.errors.values())
        assert s.replies == sum(s.status.values())
        assert s.success <= s.replies <= s.requests
        assert sum(b.attempted for b in s.per_second) == s.requests
        assert sum(b.success for b in s.per_second) == s.success
        if s.requests:
            assert 0 <= s.availability_pct <= 100
        ps = stream_summary(store, s.window)
        assert ps.requests == s.requests and ps.success == s.success
        for o in s.outages:
            assert o.duration >= 0 and o.errors >= 1 and not math.isnan(o.duration)
            if o.start is not None and o.end is not None:
                assert o.end > o.start and not o.open
        # outages are disjoint and ordered
        spans = [(o.start if o.start is not None else -1, o.end if o.end is not None else 1e9) for o in s.outages]
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
        if s.window is None:  # a window keeps whole outages (selected by their first failure)
            assert sum(o.errors for o in s.outages) == s.requests - s.success

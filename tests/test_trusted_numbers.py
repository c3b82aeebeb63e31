"""Issue 12, "numbers you can trust": open-loop validity that a stall, a late start or a stalled
probe cannot fool, honest downtime aggregates, absolute phase windows, the data-loss gate, and
httperf's rate from its own report. Synthetic records, no network."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from hatui.drill.measure import phase_result
from hatui.drill.plan import RunKey
from hatui.drill.results import Mark, PhaseResult, RunResult, aggregate
from hatui.load import LoadRecording, LoadSpec, Outcome, ProbeSpec, RecordStore, parse_httperf, report_to_summary, summarize
from hatui.load.writes import NOTHING_CHECKED, LostWrites
from hatui.report import junit_xml, report_markdown, results_document, runs_csv

URL = "http://127.0.0.1:9/index.html"
FIXTURES = Path(__file__).parent / "fixtures"


def store(stream: str, rate: float, starts: list[float], ok=lambda t: True) -> RecordStore:
    """Connection k scheduled at k / rate, launched at starts[k]; a 1 ms success unless `ok(start)` is false."""
    s = RecordStore(stream, 1.0 / rate, 1.0)
    for k, t in enumerate(starts):
        i = s.add(k / rate, t)
        good = ok(t)
        s.end[i] = t + 0.001
        s.outcome[i] = int(Outcome.SUCCESS if good else Outcome.REFUSED)
        if good:
            s.status[i] = 200
    return s


def recording(load: RecordStore, rate: float, probe: RecordStore | None = None) -> LoadRecording:
    return LoadRecording(engine="builtin", spec=LoadSpec(URL, rate, len(load), timeout=1.0),
                         probe_spec=ProbeSpec() if probe is not None else None, load=load, probe=probe,
                         t0_monotonic=0.0, t0_wall=1e9, wall_duration=len(load) / rate, cpu_user_s=0.1,
                         cpu_system_s=0.0)


def on_time(rate: float, n: int) -> list[float]:
    return [k / rate + 0.0005 for k in range(n)]


# -- open-loop validity --------------------------------------------------------------------------


def test_a_5_s_stall_mid_run_is_invalid():
    starts = [max(k / 10, 8.0) if 30 <= k < 80 else k / 10 for k in range(100)]  # stalled 3.0 .. 8.0 s
    s = summarize(recording(store("load", 10, starts), 10))
    assert not s.valid
    assert any("load launch was 5.00 s late" in r for r in s.invalid_reasons), s.invalid_reasons


def test_a_30_s_late_start_is_invalid_and_its_rate_not_inflated():
    # the first launch is 30 s late, then the engine catches up at twice the rate
    starts = [max(k / 10, 30 + k / 20) for k in range(1000)]
    s = summarize(recording(store("load", 10, starts), 10))
    assert not s.valid and any("30.00 s late" in r for r in s.invalid_reasons), s.invalid_reasons
    assert s.achieved_rate <= 10 * 1.01  # not "14.3 conn/s for a target of 10"


def test_the_rate_is_measured_from_the_first_scheduled_launch():
    starts = [30 + k / 10 for k in range(300)]  # all on the rate, but the whole run 30 s late
    s = summarize(recording(store("load", 10, starts), 10))
    assert s.achieved_rate == pytest.approx(299 / 59.9)
    assert any("under the target 10" in r for r in s.invalid_reasons)


def test_small_launch_jitter_stays_valid():
    starts = [k / 100 + (0.003 if k % 7 == 0 else 0.0005) for k in range(500)]
    s = summarize(recording(store("load", 100, starts), 100))
    assert s.valid, s.invalid_reasons


def test_a_stalled_probe_stream_is_invalid():
    probe = store("probe", 100, [max(k / 100, 1.5) if 100 <= k < 150 else k / 100 for k in range(300)])
    s = summarize(recording(store("load", 10, on_time(10, 30)), 10, probe))
    assert not s.valid
    assert any(r.startswith("probe launches were late against the schedule") and "10 ms (its interval)" in r
               for r in s.invalid_reasons), s.invalid_reasons


def test_probe_client_side_errors_are_invalid():
    probe = store("probe", 100, on_time(100, 300))
    for i in (10, 11):
        probe.outcome[i] = int(Outcome.FD_UNAVAIL)
    s = summarize(recording(store("load", 10, on_time(10, 30)), 10, probe))
    assert not s.valid and any("probe stream (fd-unavail 2)" in r for r in s.invalid_reasons), s.invalid_reasons


def test_a_stall_during_the_outage_cannot_hide_it():
    """Coordinated omission: the service is down 4.0 .. 4.5 s and both streams stall exactly then,
    launching after it is back: every connection succeeds, yet the run must not be called valid."""
    def stalled(t):
        return 4.5 if 4.0 <= t < 4.5 else t

    def up(t):
        return not 4.0 <= t < 4.5

    load = store("load", 100, [stalled(k / 100) for k in range(1000)], up)
    probe = store("probe", 100, [stalled(k / 100) for k in range(1000)], up)
    s = summarize(recording(load, 100, probe))
    assert s.availability_pct == 100.0 and s.outages == []  # what the stall did to the figures
    assert not s.valid
    assert any(r.startswith("load launches were late") for r in s.invalid_reasons), s.invalid_reasons
    assert any(r.startswith("probe launches were late") for r in s.invalid_reasons), s.invalid_reasons


# -- httperf's rate from its own report ----------------------------------------------------------


def test_httperf_run_whose_last_connection_timed_out_is_not_called_under_target():
    text = (FIXTURES / "httperf-last-connection-timed-out.txt").read_text().split("\n", 1)[1]
    s = report_to_summary(parse_httperf(text), LoadSpec("http://127.0.0.1/index.html", 10, 10, timeout=5))
    assert s.errors["client-timo"] == 1 and s.requests == 10
    assert not any("under the target" in r for r in s.invalid_reasons), s.invalid_reasons
    assert s.valid and not s.achieved_rate_judged
    assert any("achieved rate is not known" in n for n in s.notes)
    assert any("lateness not measured" in n for n in s.notes)  # stated, not assumed fine


def test_httperf_rate_that_truly_missed_is_still_invalid():
    text = "Total: connections 1000 requests 1000 replies 1000 test-duration 199.9 s\n" \
           "Connection time [ms]: min 0.1 avg 0.5 max 3.0 median 0.4 stddev 0.1\n" \
           "Reply status: 1xx=0 2xx=1000 3xx=0 4xx=0 5xx=0\n" \
           "Errors: total 0 client-timo 0 socket-timo 0 connrefused 0 connreset 0\n"
    s = report_to_summary(parse_httperf(text), LoadSpec("http://h/", 10, 1000, timeout=5))  # 5 conn/s
    assert not s.valid and s.achieved_rate_judged and "under the target 10" in s.invalid_reasons[0]


# -- honest aggregates ---------------------------------------------------------------------------


def phase(name: str, downtime: float | None, lower_bound: bool = False, start: float = 0.0) -> PhaseResult:
    return PhaseResult(name, start, start + 30.0, 100, 100, 98, {"connrefused": 2}, 98.0, downtime, 10.0,
                       downtime_lower_bound=lower_bound)


def run(rep: int, downtime: float | None, lower_bound: bool = False, **kw) -> RunResult:
    return RunResult(RunKey("native", "native", 10.0, rep), 600, "stop-heartbeat", 1e9, "ok",
                     {"failover": phase("failover", downtime, lower_bound), "failback": phase("failback", None, start=30)},
                     None, [], [], **kw)


def test_downtime_mean_counts_runs_without_outage_as_zero():
    runs = [run(i + 1, d) for i, d in enumerate([None, None, 2000.0, 2000.0, 2000.0])]
    fo = next(a for a in aggregate(runs) if a.phase == "failover")
    assert fo.downtime_ms.n == 5 and fo.downtime_ms.mean == pytest.approx(1200.0)
    assert (fo.downtime_ms.min, fo.downtime_ms.max) == (0.0, 2000.0)
    md = report_markdown(runs, lab_name="t", plan_info={})
    assert "1200 ± 1095 (0–2000, n 5) ±10" in md


def test_open_outages_are_lower_bounds_everywhere():
    runs = [run(1, 1500.0, lower_bound=True), run(2, 1000.0)]
    md = report_markdown(runs, lab_name="t", plan_info={})
    assert "≥ 1250 ± 354" in md and "≥ 1500 (±10)" in md
    rows = list(csv.DictReader(io.StringIO(runs_csv(runs))))
    assert [r["downtime_lower_bound"] for r in rows if r["phase"] == "failover"] == ["1", "0"]
    doc = results_document(runs, lab_name="t", plan_info={})
    assert doc["runs"][0]["phases"]["failover"]["downtime_lower_bound"] is True
    assert doc["runs"][0]["phases"]["failover"]["resolution_ms"] == 10.0
    assert doc["aggregates"][0]["downtime_lower_bound"] is True


def test_failback_window_is_absolute_on_the_run_clock():
    load = store("load", 10, on_time(10, 600))  # 60 s of load
    probe = store("probe", 100, on_time(100, 6000))
    streams = SimpleNamespace(load=SimpleNamespace(result=recording(load, 10)),
                              probe=SimpleNamespace(result=SimpleNamespace(probe=probe)))
    fb = phase_result("failback", streams, (36.0, None))
    assert fb.start_s == 36.0 and fb.end_s > fb.start_s
    assert fb.end_s == pytest.approx(59.9, abs=0.01)  # the end of the last connection, not 23.9 s of duration
    assert fb.downtime_ms is None and fb.resolution_ms == pytest.approx(10.0)


def test_polled_marks_carry_and_keep_their_resolution():
    polled = Mark.at("vip-moved", 12.34567, 1e9)
    assert polled.resolution_s == 0.25 and polled.at_s == 12.3
    probed = Mark.at("first-success-new", 12.34567, 1e9, resolution_s=0.01)
    assert probed.at_s == 12.35 and Mark.from_dict(probed.to_dict()) == probed
    sent = Mark.at("fault-sent", 12.34567, 1e9)
    assert sent.resolution_s is None and sent.at_s == 12.3457


# -- the data-loss gate --------------------------------------------------------------------------


def test_zero_acknowledged_writes_fail_the_check():
    report = LostWrites(checked=0, ok=0)
    assert not report.passed and report.failure == NOTHING_CHECKED
    r = run(1, 500.0, writes_attempted=20, writes_acked=0, lost_writes=0)
    assert not r.passed and r.writes_problem == NOTHING_CHECKED
    assert f"FAILED: {NOTHING_CHECKED}" in report_markdown([r], lab_name="t", plan_info={})
    assert NOTHING_CHECKED in junit_xml([r])


def test_unreadable_writes_fail_the_check_with_the_same_words():
    report = LostWrites(checked=5, ok=4, unreadable=["3"])
    assert not report.passed and "could not be read back" in report.failure
    r = run(1, 500.0, writes_attempted=5, writes_acked=5, lost_writes=0, writes_failure=report.failure)
    assert not r.passed and r.writes_problem == report.failure
    assert RunResult.from_dict(r.to_dict()).writes_problem == report.failure


"""Measuring a drill run with the load engine (hatui.load): the load and the probe stream of one
run on one clock, and what their records mean for each phase.

The probe runs as its own probe-only run started at the same instant, on a URL carrying
PROBE_MARKER, so server logs can tell probe requests from the load.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from hatui.config import Pair
from hatui.drill.results import Mark, PhaseResult, RunResult
from hatui.httpcheck import with_marker
from hatui.load import LoadRun, LoadSpec, ProbeSpec, Tick, find_outages, summarize
from hatui.load.records import Outcome

PROBE_MARKER = "hatui-probe=1"
START_DELAY_S = 0.05  # both runs start together this long after being created


def probe_uri(uri: str) -> str:
    return with_marker(uri, PROBE_MARKER)


class RunStreams:
    """The load and the probe of one run, started together on one clock (`t0`, monotonic)."""

    def __init__(self, address: str, port: int, uri: str, *, rate: float, connections: int, timeout_s: float,
                 probe_interval_ms: float):
        self.t0 = time.monotonic() + START_DELAY_S
        self.wall0 = time.time() + START_DELAY_S
        self.rate = rate
        self.last_tick: Tick | None = None
        spec = LoadSpec(f"http://{address}:{port}{uri}", rate, connections, timeout=timeout_s)
        self.load = LoadRun(spec, start_at=self.t0, listeners=[self._on_event])
        # The probe keeps a short timeout so it sees the end of an outage at its resolution.
        probe = ProbeSpec(interval=probe_interval_ms / 1000.0, timeout=max(0.2, min(timeout_s, 0.5)))
        self.probe = LoadRun(None, probe=probe, url=f"http://{address}:{port}{probe_uri(uri)}", start_at=self.t0)
        loop = asyncio.get_running_loop()
        self.load_task = loop.create_task(self.load.run())
        self.probe_task = loop.create_task(self.probe.run())

    def _on_event(self, event) -> None:
        if isinstance(event, Tick):
            self.last_tick = event

    def snapshot(self) -> dict[str, Any]:
        """Totals so far and the last second's counts (the runner's LoadProgress)."""
        counters = self.load.counters
        load = counters.load
        tick = self.last_tick
        last = tick.load_last if tick is not None else None
        return {
            "elapsed_s": round(counters.elapsed, 3),
            "attempted": load.launched if load else 0,
            "replies": load.replies if load else 0,
            "success": load.success if load else 0,
            "errors": dict(load.errors) if load else {},
            "second": {"t": tick.second if tick else 0, "attempted": last.launched if last else 0,
                       "success": last.success if last else 0, "errors": dict(last.errors) if last else {}},
        }

    async def wait(self, timeout_s: float) -> None:
        """Wait for the load to finish (bounded), then stop the probe."""
        try:
            await asyncio.wait_for(asyncio.shield(self.load_task), timeout_s)
        except asyncio.TimeoutError:
            self.load.stop(abort=True)
        self.probe.stop()
        await asyncio.gather(self.load_task, self.probe_task, return_exceptions=True)

    def stop(self) -> None:
        self.load.stop()
        self.probe.stop()


def start_streams(address: str, port: int, uri: str, *, rate: float, connections: int, timeout_s: float,
                  probe_interval_ms: float) -> RunStreams:
    return RunStreams(address, port, uri, rate=rate, connections=connections, timeout_s=timeout_s,
                      probe_interval_ms=probe_interval_ms)


def phase_result(name: str, streams: RunStreams, window: tuple[float, float | None]) -> PhaseResult:
    """One phase: the load's connections started in `window`, and the probe's outages in it.
    `start_s` and `end_s` are times on the run's clock (s from the load start), not durations."""
    load = summarize(streams.load.result, window=window)
    probe_store = streams.probe.result.probe
    gaps = find_outages(probe_store, window, load=streams.load.result.load) if probe_store is not None else []
    worst = max(gaps, key=lambda o: o.duration, default=None)
    requests = load.requests
    start = window[0]
    # duration_s runs from the window's start to the end of its last connection
    end = window[1] if window[1] is not None else start + (load.duration_s or 0.0)
    return PhaseResult(
        phase=name, start_s=round(start, 4), end_s=round(max(end, start), 4),
        requests=requests, replies=load.replies, success=load.success,
        errors={k: v for k, v in load.errors.items()},
        availability_pct=round(load.success / requests * 100, 4) if requests else 0.0,
        downtime_ms=round(sum(o.duration for o in gaps) * 1000, 1) if gaps else None,
        resolution_ms=probe_store.interval * 1000 if probe_store is not None else 0.0,
        downtime_lower_bound=any(o.open for o in gaps),
        outage_start_s=round(worst.start, 4) if worst and worst.start is not None else None,
        outage_end_s=round(worst.end, 4) if worst and worst.end is not None else None,
        served_before=worst.served_by_before if worst else None,
        served_after=worst.served_by_after if worst else None,
    )


def whole_run(streams: RunStreams):
    """The summary of the whole run, load and probe together: both streams are judged (the
    probe's lateness and client errors too), on the shared clock."""
    probe = streams.probe.result
    if probe is None or probe.probe is None:
        return summarize(streams.load.result)
    return summarize(dataclasses.replace(streams.load.result, probe=probe.probe, probe_spec=probe.probe_spec))


def run_result(planned, streams: RunStreams, marks: list[Mark], pair: Pair, *, probe_interval_ms: float) -> RunResult:
    recovery = next((m.at_s for m in marks if m.name == "recovery-sent"), planned.recover_at_s)
    whole = whole_run(streams)
    phases = {
        "failover": phase_result("failover", streams, (0.0, recovery)),
        "failback": phase_result("failback", streams, (recovery, None)),
    }
    cpu = (whole.cpu_user_s or 0.0) + (whole.cpu_system_s or 0.0) if whole.cpu_user_s is not None else None
    return RunResult(
        key=planned.key, connections=planned.connections, fault=planned.fault,
        started_wall=round(streams.wall0, 3), status="ok", phases=phases,
        total=phase_result("total", streams, (0.0, None)), timeline=list(marks),
        per_second=[b.to_dict() for b in whole.per_second or []], valid=whole.valid,
        invalid_reasons=list(whole.invalid_reasons),
        achieved_rate=round(whole.achieved_rate, 3) if whole.achieved_rate else None,
        load_lateness_ms=_rounded(whole.lateness_ms),
        probe_lateness_ms=_rounded(whole.probe.lateness_ms if whole.probe is not None else None),
        engine_cpu_s=round(cpu, 3) if cpu is not None else None, served_counts=dict(whole.served_by))


def _rounded(lateness_ms: dict[str, float] | None) -> dict[str, float] | None:
    return {k: round(v, 2) for k, v in lateness_ms.items()} if lateness_ms else None


def probe_marks(streams: RunStreams, marks: list[Mark], pair: Pair) -> list[Mark]:
    """Timeline marks seen by the probe: first success on the new node, failback done."""
    at = {m.name: m.at_s for m in marks}
    store = streams.probe.result.probe if streams.probe.result else None
    if store is None:
        return []
    probe = sorted((r for r in store if r.outcome != Outcome.ABORTED), key=lambda r: r.start)
    ok = [r for r in probe if r.outcome == Outcome.SUCCESS]
    out = []
    fault, recovery = at.get("fault-sent"), at.get("recovery-sent")
    if fault is not None:
        first = next((r for r in ok if r.start > fault and r.served_by == pair.slave), None)
        if first:
            out.append(Mark.at("first-success-new", first.start, streams.wall0, f"{pair.slave} answers",
                               resolution_s=store.interval))
    if recovery is not None:
        # Failback is done at the first success of the master after the failback outage (or at
        # once, when there was none).
        failed = [r.start for r in probe if r.start > recovery and r.outcome != Outcome.SUCCESS]
        after = failed[0] if failed else recovery
        first = next((r for r in ok if r.start > after and r.served_by == pair.master), None)
        if first:
            out.append(Mark.at("failback-done", first.start, streams.wall0, f"{pair.master} answers again",
                               resolution_s=store.interval))
    return out


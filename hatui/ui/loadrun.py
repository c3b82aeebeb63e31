"""A plain load run from the console (no fault): `hatui.load`'s engine on the app's loop, its
events translated into the drill runner's events so the Drill console shows them the same way.
No Textual here."""

from __future__ import annotations

from typing import Any

from hatui.drill import events as ev
from hatui.drill.plan import RunKey
from hatui.drill.results import Mark
from hatui.load import events as load_events
from hatui.load.spec import LoadSpec, ProbeSpec


def load_url(lab, pair) -> str:
    return f"http://{pair.vip_address}{lab.load.uri}"


def make_specs(lab, pair, rate: float, conns: int, url: str | None = None) -> tuple[LoadSpec, ProbeSpec]:
    """Raises hatui.load.spec.LoadSpecError (a UsageError) when the run cannot be made."""
    spec = LoadSpec(url=url or load_url(lab, pair), rate=float(rate), num_conns=int(conns),
                    timeout=lab.load.timeout_s)
    probe = ProbeSpec(interval=lab.load.probe_interval_ms / 1000.0)
    return spec, probe


class LoadToDrillEvents:
    """Turns `hatui.load` events into drill events (DrillRunStarted, LoadProgress, OutageMeasured...)."""

    def __init__(self, pair, rate: float, conns: int):
        self.pair = pair
        self.rate = float(rate)
        self.conns = int(conns)
        self.key = RunKey(pair.stack, pair.name, self.rate, 1)
        self.run_id = self.key.run_id
        self.wall0 = 0.0  # the load's start on the wall clock, once it started

    def convert(self, event: Any) -> list[ev.Event]:
        if isinstance(event, load_events.LoadStarted):
            self.wall0 = event.t0_wall
            return [ev.DrillStarted(total_runs=1, plan=None),
                    ev.DrillRunStarted(key=self.key, index=1, total=1, connections=self.conns, fault="none"),
                    ev.PhaseChanged(run_id=self.run_id, phase="load")]
        if isinstance(event, load_events.Tick):
            load, last = event.counters.load, event.load_last
            if load is None:
                return []
            second = {"t": event.second, "attempted": last.launched if last else 0,
                      "success": last.success if last else 0, "errors": dict(last.errors) if last else {}}
            return [ev.LoadProgress(run_id=self.run_id, elapsed_s=event.counters.elapsed, attempted=load.launched,
                                    replies=load.replies, success=load.success, errors=dict(load.errors),
                                    second=second)]
        if isinstance(event, load_events.OutageStarted):
            at_s = event.t or 0.0
            mark = Mark("outage-start", at_s, self.wall0 + at_s, event.error_class)
            return [ev.TimelineMark(run_id=self.run_id, point=mark)]
        if isinstance(event, load_events.OutageEnded):
            duration = event.duration if event.duration is not None else 0.0
            return [ev.OutageMeasured(run_id=self.run_id, at_s=event.t, duration_ms=round(duration * 1000))]
        if isinstance(event, load_events.LoadFinished):
            return [ev.PhaseChanged(run_id=self.run_id, phase="done")]
        return []


def summary_line(summary: Any) -> str:
    avail = getattr(summary, "availability_pct", None)
    down = getattr(summary, "downtime_s", None)
    parts = [f"{getattr(summary, 'requests', 0)} requests"]
    parts.append(f"availability {avail:.2f} %" if avail is not None else "availability -")
    if down is not None:
        parts.append(f"downtime {down:.2f} s")
    if not getattr(summary, "valid", True):
        parts.append("INVALID: " + "; ".join(getattr(summary, "invalid_reasons", [])))
    return "load run finished: " + ", ".join(parts)

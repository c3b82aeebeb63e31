"""The drill console's state, folded from the runner's events (pure: no Textual)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hatui.drill import events as ev
from hatui.ui import format as fmt
from hatui.ui.model import error_breakdown

# Timeline marks drawn on the live chart: fault (F) and failback (B).
FAULT_MARK = "fault-sent"
FAILBACK_MARK = "recovery-sent"


@dataclass
class DrillView:
    running: bool = False
    plan: Any = None
    total_runs: int = 0
    run: ev.DrillRunStarted | None = None
    phase: str = "idle"
    elapsed_s: float = 0.0
    attempted: int = 0
    replies: int = 0
    success: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    success_s: list[float] = field(default_factory=list)
    errors_s: list[float] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    downtime: dict[str, tuple[float | None, float]] = field(default_factory=dict)  # phase -> (ms, resolution ms)
    results: list[Any] = field(default_factory=list)  # RunResult, this session
    ended: str = ""  # why the last drill ended ("finished", "stopped", "halted: ...")
    outages_ms: list[float] = field(default_factory=list)  # plain load runs: outages seen live
    events_seen: int = 0

    def start(self, plan: Any) -> None:
        self.running, self.plan = True, plan
        self.total_runs = len(getattr(plan, "runs", []) or [])
        self.ended = ""
        self._new_run(None)

    def _new_run(self, run: ev.DrillRunStarted | None) -> None:
        self.run = run
        self.phase = "preflight" if run else "starting"
        self.elapsed_s = 0.0
        self.attempted = self.replies = self.success = 0
        self.errors = {}
        self.seconds, self.success_s, self.errors_s = [], [], []
        self.marks, self.downtime = {}, {}
        self.outages_ms = []

    def apply(self, event: Any) -> set[str]:
        """Fold one event in; returns what changed: status / chart / results."""
        self.events_seen += 1
        if isinstance(event, ev.DrillStarted):
            self.running = True
            self.total_runs = event.total_runs
            self.plan = event.plan or self.plan
            return {"status"}
        if isinstance(event, ev.DrillRunStarted):
            self._new_run(event)
            self.total_runs = event.total or self.total_runs
            return {"status", "chart"}
        if isinstance(event, ev.PhaseChanged):
            self.phase = event.phase
            return {"status"}
        if isinstance(event, ev.LoadProgress):
            self.elapsed_s = event.elapsed_s
            self.attempted, self.replies, self.success = event.attempted, event.replies, event.success
            self.errors = dict(event.errors or {})
            second = event.second or {}
            if "t" in second:
                t = float(second["t"])
                errors = second.get("errors") or {}
                failed = sum(errors.values()) if isinstance(errors, dict) else int(errors or 0)
                if self.seconds and t <= self.seconds[-1]:
                    # the same second again (coalesced or repeated): replace it
                    idx = self.seconds.index(t) if t in self.seconds else len(self.seconds) - 1
                    self.success_s[idx], self.errors_s[idx] = float(second.get("success", 0)), float(failed)
                else:
                    self.seconds.append(t)
                    self.success_s.append(float(second.get("success", 0)))
                    self.errors_s.append(float(failed))
            return {"status", "chart"}
        if isinstance(event, ev.TimelineMark):
            self.marks.setdefault(event.mark, event.at_s)
            return {"chart", "status"}
        if isinstance(event, ev.OutageMeasured):
            self.marks.setdefault("outage-end", event.at_s)
            self.outages_ms.append(event.duration_ms)
            return {"chart", "status"}
        if isinstance(event, ev.DrillRunFinished):
            result = event.result
            self.results = [r for r in self.results if r.run_id != result.run_id] + [result]
            for phase, pr in getattr(result, "phases", {}).items():
                self.downtime[phase] = (pr.downtime_ms, pr.resolution_ms)
            return {"status", "results"}
        if isinstance(event, ev.DrillHalted):
            self.ended = f"halted: {event.reason} (cluster left: {event.cluster_left})"
            return {"status"}
        if isinstance(event, ev.DrillFinished):
            self.running = False
            self.phase = "done"
            if not self.ended:
                self.ended = "stopped" if event.stopped else f"finished (exit {event.exit_code})"
            return {"status"}
        return set()

    # --- text -----------------------------------------------------------------------------

    def planned_s(self) -> float | None:
        if self.run is None or not self.run.rate:
            return None
        return self.run.connections / self.run.rate

    def _planned_run(self):
        if self.run is None or self.plan is None:
            return None
        return next((r for r in getattr(self.plan, "runs", []) if r.run_id == self.run.run_id), None)

    @property
    def is_load_run(self) -> bool:
        return self.run is not None and self.run.fault == "none"

    def status_lines(self, start_key: str = "d", abort_key: str = "a") -> list[str]:
        if self.run is None:
            if self.running:
                return ["Drill  starting…", f"{abort_key} aborts"]
            last = f"  last drill: {self.ended}" if self.ended else ""
            return [f"Drill  idle: e edits the parameters, {start_key} starts (asks first){last}"]
        run = self.run
        planned = self._planned_run()
        target = f" on {planned.fault_target}" if planned is not None else ""
        if self.is_load_run:
            head = f"Load run  {run.pair} ({run.stack})  {run.rate:g} conn/s  {run.connections} conns  no fault"
        else:
            head = (f"Drill  {run.stack}  {run.rate:g} conn/s  {run.connections} conns  run {run.index} of "
                    f"{run.total or self.total_runs}  fault: {run.fault}{target}")
        phase = f"phase {self.phase.upper()}   {fmt.clock(self.elapsed_s)} / {fmt.clock(self.planned_s())}"
        if self.ended:
            phase += f"   drill {self.ended}"
        errors = self.attempted - self.success
        avail = fmt.percent(100.0 * self.success / self.attempted) if self.attempted else "-"
        counts = (f"requests {self.attempted}   replies {self.replies}   errors {errors}   "
                  f"availability {avail}   {error_breakdown(self.errors)}").rstrip()
        if self.is_load_run:
            total = sum(self.outages_ms)
            outages = (f"outages {len(self.outages_ms)}, downtime {total / 1000:.2f} s (probe stream)"
                       if self.outages_ms else "outages none so far")
            return [head, phase, counts, outages]
        down = []
        for phase_name in ("failover", "failback"):
            if phase_name in self.downtime:
                ms, resolution = self.downtime[phase_name]
                down.append(f"{phase_name} {fmt.millis(ms)} (±{resolution:g} ms)" if ms is not None
                            else f"{phase_name} none")
            else:
                down.append(f"{phase_name} -")
        return [head, phase, counts, "downtime  " + "   ".join(down)]

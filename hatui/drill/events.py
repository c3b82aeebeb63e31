"""What the drill runner tells its observers (the TUI renders these; headless mode prints them).

Every event has `kind`, a monotonic `t` (seconds on the runner's clock) and `wall` (time.time()).
Observers get them through a plain callback `on_event(event)`; they must not block.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Callable

from hatui.drill.plan import KeyedRun, RunKey
from hatui.drill.results import Mark


@dataclass
class Event:
    kind: str = field(init=False, default="event")
    t: float = field(default_factory=time.monotonic, kw_only=True)
    wall: float = field(default_factory=time.time, kw_only=True)


@dataclass
class DrillStarted(Event):
    total_runs: int
    plan: Any  # DrillPlan
    kind: str = field(init=False, default="drill-started")


@dataclass
class DrillRunStarted(Event, KeyedRun):
    key: RunKey
    index: int  # 1-based position in the plan
    total: int
    connections: int
    fault: str
    kind: str = field(init=False, default="run-started")


@dataclass
class RunSkipped(Event):
    run_id: str
    reason: str  # e.g. "already finished in the journal"
    kind: str = field(init=False, default="run-skipped")


@dataclass
class RunRetried(Event):
    """A run the journal holds as aborted, halted or failed is run again."""

    run_id: str
    last_state: str  # aborted | halted | failed
    kind: str = field(init=False, default="run-retried")


@dataclass
class PhaseChanged(Event):
    run_id: str
    phase: str  # preflight | load | failover | failback | settle | done
    kind: str = field(init=False, default="phase-changed")


@dataclass
class TimelineMark(Event):
    """A mark added to a run's timeline; `mark`, `at_s` and `detail` read through to it."""

    run_id: str
    point: Mark
    kind: str = field(init=False, default="timeline")
    mark = property(attrgetter("point.name"))
    at_s = property(attrgetter("point.at_s"))
    detail = property(attrgetter("point.detail"))


@dataclass
class OutageMeasured(Event):
    """A plain load run's outage as the engine saw it live, at its end (`at_s`, run seconds)."""

    run_id: str
    at_s: float
    duration_ms: float
    kind: str = field(init=False, default="outage-measured")


@dataclass
class LoadProgress(Event):
    """Once a second during a run: totals so far and the last second's counts."""

    run_id: str
    elapsed_s: float
    attempted: int
    replies: int
    success: int
    errors: dict[str, int]
    second: dict[str, Any]  # {"t": int, "attempted": n, "success": n, "errors": {...}}
    kind: str = field(init=False, default="load-progress")


@dataclass
class CommandSent(Event):
    host: str
    command: str
    exit_status: int | None
    duration_s: float
    error: str | None = None
    kind: str = field(init=False, default="command")


@dataclass
class DrillRunFinished(Event):
    run_id: str
    result: Any  # RunResult
    kind: str = field(init=False, default="run-finished")


@dataclass
class DrillHalted(Event):
    run_id: str | None
    reason: str
    cluster_left: str  # what state the cluster was left in
    kind: str = field(init=False, default="drill-halted")


@dataclass
class DrillFinished(Event):
    results: list[Any]  # RunResult
    exit_code: int
    stopped: bool = False
    kind: str = field(init=False, default="drill-finished")


EventListener = Callable[[Event], None]


"""Results of drill runs: per run and phase, and aggregates over repetitions.

Phases split one run on its timeline: **failover** covers the connections started from the
beginning of the load until the recovery command is sent; **failback** covers those started
from the recovery command until the load ends. Each connection belongs to exactly one phase.
Every time (`start_s`, `end_s`, outage and mark times) is seconds from the run's load start.

Downtime is known to within the probe interval (`resolution_ms`, kept with every downtime).
A phase with no outage has downtime 0 ms in the means (shown as "-" per run); an outage that
started before the phase's first probe or had not ended by the run's end is open: its downtime
is a lower bound (`downtime_lower_bound`, "≥" in report.md).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from hatui.drill.plan import KeyedRun, RunKey
from hatui.load.writes import NOTHING_CHECKED

PHASES = ("failover", "failback")

# Marks found by polling are known to within the poll interval (the runner samples the peer's
# view every 0.25 s): their times carry that resolution and are rounded to it.
POLLED_MARK_RESOLUTION_S = {"peer-dead": 0.25, "vip-moved": 0.25}


@dataclass(frozen=True, slots=True)
class Mark:
    """A point of a run's timeline: fault-sent, peer-dead, vip-moved, first-success-new,
    recovery-sent, failback-done. `at_s` is seconds from the run's load start, `wall` the same
    instant on the wall clock; `resolution_s` how well the instant is known (None: to 0.1 ms,
    a command's own send time)."""

    name: str
    at_s: float
    wall: float
    detail: str = ""
    resolution_s: float | None = None

    @classmethod
    def at(cls, name: str, at_s: float, wall0: float, detail: str = "",
           resolution_s: float | None = None) -> "Mark":
        """The mark `at_s` seconds after a load that started at `wall0`, rounded to its resolution
        (given, or that of a polled mark; else to 0.1 ms as journals keep it)."""
        if resolution_s is None:
            resolution_s = POLLED_MARK_RESOLUTION_S.get(name)
        digits = 4 if resolution_s is None else resolution_digits(resolution_s)
        return cls(name, round(at_s, digits), round(wall0 + at_s, digits), detail, resolution_s)

    def to_dict(self) -> dict[str, Any]:
        return {"mark": self.name, "at_s": self.at_s, "wall": self.wall, "detail": self.detail,
                "resolution_s": self.resolution_s}

    @classmethod
    def from_dict(cls, data: dict) -> "Mark":
        return cls(data["mark"], data["at_s"], data["wall"], data.get("detail", ""), data.get("resolution_s"))


def resolution_digits(resolution_s: float) -> int:
    """Decimals worth printing for a time known to within `resolution_s` (0.25 s -> 1, 10 ms -> 2)."""
    return max(0, min(4, -math.floor(math.log10(resolution_s)))) if resolution_s > 0 else 4


@dataclass
class PhaseResult:
    phase: str
    start_s: float  # s from the load start: the phase's first instant
    end_s: float  # s from the load start: the end of its last connection (>= start_s)
    requests: int  # connections attempted
    replies: int  # complete HTTP responses
    success: int  # replies with status < 400
    errors: dict[str, int]  # attempted - success, by class
    availability_pct: float  # success / requests x 100
    downtime_ms: float | None  # last success before the outage -> first success after (probe stream)
    resolution_ms: float  # the probe interval: downtime is exact to within this (0: no probe)
    downtime_lower_bound: bool = False  # an open outage (no success before it, or none after): at least this
    outage_start_s: float | None = None
    outage_end_s: float | None = None
    served_before: str | None = None
    served_after: str | None = None
    thresholds_broken: list[str] = field(default_factory=list)

    @property
    def error(self) -> int:
        return self.requests - self.success

    @property
    def downtime_or_zero(self) -> float | None:
        """Downtime for means: no outage seen by the probe is 0 ms; None when there was no probe."""
        if self.downtime_ms is not None:
            return self.downtime_ms
        return 0.0 if self.resolution_ms > 0 else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PhaseResult":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class RunResult(KeyedRun):
    key: RunKey
    connections: int
    fault: str
    started_wall: float
    status: str  # ok | failed | halted
    phases: dict[str, PhaseResult]
    total: PhaseResult | None
    timeline: list[Mark]
    per_second: list[dict[str, Any]]  # {"t", "attempted", "success", "errors": {...}}
    valid: bool = True
    invalid_reasons: list[str] = field(default_factory=list)
    achieved_rate: float | None = None
    # launch lateness against the open-loop schedule, ms (avg, p99, max): what validity was judged on
    load_lateness_ms: dict[str, float] | None = None
    probe_lateness_ms: dict[str, float] | None = None
    engine_cpu_s: float | None = None
    error: str | None = None
    served_counts: dict[str, int] = field(default_factory=dict)  # successes per serving node
    # The no-data-loss check (write_ratio > 0): writes acknowledged during the run, read back after it.
    writes_attempted: int | None = None
    writes_acked: int | None = None
    lost_writes: int | None = None
    writes_detail: str | None = None
    writes_failure: str | None = None  # why the no-data-loss check failed (LostWrites.failure); None: passed

    @property
    def writes_problem(self) -> str | None:
        """Why the no-data-loss check failed, if it ran and did (also for journals without `writes_failure`)."""
        if self.writes_failure:
            return self.writes_failure
        if self.writes_acked == 0:
            return NOTHING_CHECKED
        if self.lost_writes:
            return f"{self.lost_writes} acknowledged writes lost"
        return None

    @property
    def passed(self) -> bool:
        return (self.status == "ok" and not any(p.thresholds_broken for p in self.phases.values())
                and self.writes_problem is None)

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["key"]
        data["phases"] = {k: v.to_dict() for k, v in self.phases.items()}
        data["total"] = self.total.to_dict() if self.total else None
        data["timeline"] = [m.to_dict() for m in self.timeline]
        return {**self.key.to_dict(), **data}

    @classmethod
    def from_dict(cls, data: dict) -> "RunResult":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["key"] = RunKey.from_dict(data)
        known["timeline"] = [Mark.from_dict(m) for m in data["timeline"]]
        known["phases"] = {k: PhaseResult.from_dict(v) for k, v in (data.get("phases") or {}).items()}
        known["total"] = PhaseResult.from_dict(data["total"]) if data.get("total") else None
        return cls(**known)


@dataclass
class Stat:
    n: int
    mean: float | None
    stddev: float | None
    min: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float | None]) -> "Stat":
        present = [v for v in values if v is not None and not math.isnan(v)]
        if not present:
            return cls(0, None, None, None, None)
        return cls(len(present), statistics.fmean(present),
                   statistics.stdev(present) if len(present) > 1 else 0.0, min(present), max(present))


@dataclass
class Aggregate:
    stack: str
    rate: float
    phase: str
    runs: int
    valid_runs: int
    requests: Stat
    replies: Stat
    errors: Stat
    availability_pct: Stat
    downtime_ms: Stat  # no-outage runs count as 0 ms; n says how many runs
    downtime_lower_bound: bool = False  # some run's outage was open: the figures are lower bounds
    resolution_ms: float | None = None  # the coarsest probe interval of the runs averaged

    def to_dict(self) -> dict:
        return asdict(self)


def aggregate(results: list[RunResult], *, include_invalid: bool = False) -> list[Aggregate]:
    """Mean/stddev/min/max per stack, rate and phase over repetitions.

    Invalid runs (the load generator could not hold its schedule) are counted but, unless
    asked, not averaged: they are reported, never silently mixed in. Downtime counts a run with
    no outage as 0 ms, so `downtime_ms.n` is the number of runs averaged.
    """
    groups: dict[tuple[str, float, str], list[tuple[RunResult, PhaseResult]]] = {}
    for run in results:
        if run.status != "ok":
            continue
        for phase, pr in run.phases.items():
            groups.setdefault((run.stack, run.rate, phase), []).append((run, pr))
    out = []
    for (stack, rate, phase), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], PHASES.index(kv[0][2]) if kv[0][2] in PHASES else 9)):
        used = [pr for run, pr in items if run.valid or include_invalid]
        out.append(Aggregate(
            stack=stack, rate=rate, phase=phase, runs=len(items), valid_runs=sum(1 for run, _ in items if run.valid),
            requests=Stat.of([p.requests for p in used]), replies=Stat.of([p.replies for p in used]),
            errors=Stat.of([p.error for p in used]), availability_pct=Stat.of([p.availability_pct for p in used]),
            downtime_ms=Stat.of([p.downtime_or_zero for p in used]),
            downtime_lower_bound=any(p.downtime_lower_bound for p in used),
            resolution_ms=max((p.resolution_ms for p in used if p.resolution_ms), default=None),
        ))
    return out


def check_thresholds(run: RunResult, thresholds) -> None:
    """Mark each phase with the thresholds (lab.toml [thresholds]) it broke."""
    for phase, pr in run.phases.items():
        limit = getattr(thresholds, phase, None)
        if limit is None:
            continue
        broken = []
        if limit.max_downtime_ms is not None and pr.downtime_ms is not None and pr.downtime_ms > limit.max_downtime_ms:
            broken.append(f"downtime {pr.downtime_ms:.0f} ms > {limit.max_downtime_ms:g} ms")
        if limit.min_availability_pct is not None and pr.availability_pct < limit.min_availability_pct:
            broken.append(f"availability {pr.availability_pct:.2f} % < {limit.min_availability_pct:g} %")
        pr.thresholds_broken = broken

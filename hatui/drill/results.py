"""Results of drill runs: per run and phase, and aggregates over repetitions.

Phases split one run on its timeline: **failover** covers the connections started from the
beginning of the load until the recovery command is sent; **failback** covers those started
from the recovery command until the load ends. Each connection belongs to exactly one phase.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from hatui.drill.plan import KeyedRun, RunKey

PHASES = ("failover", "failback")


@dataclass(frozen=True, slots=True)
class Mark:
    """A point of a run's timeline: fault-sent, peer-dead, vip-moved, first-success-new,
    recovery-sent, failback-done. `at_s` is seconds from the run's load start, `wall` the same
    instant on the wall clock."""

    name: str
    at_s: float
    wall: float
    detail: str = ""

    @classmethod
    def at(cls, name: str, at_s: float, wall0: float, detail: str = "") -> "Mark":
        """The mark `at_s` seconds after a load that started at `wall0` (rounded as journals keep it)."""
        return cls(name, round(at_s, 4), round(wall0 + at_s, 4), detail)

    def to_dict(self) -> dict[str, Any]:
        return {"mark": self.name, "at_s": self.at_s, "wall": self.wall, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: dict) -> "Mark":
        return cls(data["mark"], data["at_s"], data["wall"], data.get("detail", ""))


@dataclass
class PhaseResult:
    phase: str
    start_s: float
    end_s: float
    requests: int  # connections attempted
    replies: int  # complete HTTP responses
    success: int  # replies with status < 400
    errors: dict[str, int]  # attempted - success, by class
    availability_pct: float  # success / requests x 100
    downtime_ms: float | None  # last success before the outage -> first success after (probe stream)
    resolution_ms: float  # the probe interval: downtime is exact to within this
    outage_start_s: float | None = None
    outage_end_s: float | None = None
    served_before: str | None = None
    served_after: str | None = None
    thresholds_broken: list[str] = field(default_factory=list)

    @property
    def error(self) -> int:
        return self.requests - self.success

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
    engine_cpu_s: float | None = None
    error: str | None = None
    served_counts: dict[str, int] = field(default_factory=dict)  # successes per serving node
    # The no-data-loss check (write_ratio > 0): writes acknowledged during the run, read back after it.
    writes_attempted: int | None = None
    writes_acked: int | None = None
    lost_writes: int | None = None
    writes_detail: str | None = None

    @property
    def passed(self) -> bool:
        return (self.status == "ok" and not any(p.thresholds_broken for p in self.phases.values())
                and not self.lost_writes)

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
    downtime_ms: Stat

    def to_dict(self) -> dict:
        return asdict(self)


def aggregate(results: list[RunResult], *, include_invalid: bool = False) -> list[Aggregate]:
    """Mean/stddev/min/max per stack, rate and phase over repetitions.

    Invalid runs (the load generator could not hold its rate) are counted but, unless asked,
    not averaged: they are reported, never silently mixed in.
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
            downtime_ms=Stat.of([p.downtime_ms for p in used]),
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

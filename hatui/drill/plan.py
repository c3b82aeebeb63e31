"""A drill plan: stacks x rates x repetitions from lab.toml, with overrides from the command line."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from operator import attrgetter
from pathlib import Path

from hatui.config import FAULTS, STACKS, Lab, Pair
from hatui.errors import UsageError
from hatui.journal import journal_plan
from hatui.load.spec import limit_problems, request_path_problem

# The failback phase needs room after the recovery: heartbeat takes 1-2 s to start moving the
# VIP back and about 1 s more to finish.
MIN_FAILBACK_WINDOW_S = 4.0
# A graceful `heartbeat stop` takes about 3 s to return; the fault must come before recovery by more.
MIN_FAULT_TO_RECOVERY_S = 4.0
# A plan's bounds (see `hatui export --help`): a typo such as --repeat 1000000000 is refused
# before the plan is built in memory.
MAX_PLAN_RUNS = 10_000
MAX_PLAN_HOURS = 168  # a week of load and settling


@dataclass(frozen=True, slots=True)
class RunKey:
    """Which run of a drill. `run_id` names it in journals on disk, so its format is fixed."""

    stack: str
    pair: str
    rate: float
    repetition: int

    @property
    def run_id(self) -> str:
        return f"{self.stack}/{self.pair}/rate{self.rate:g}/rep{self.repetition}"

    def to_dict(self) -> dict:
        """The flat fields journal entries and results.json start with."""
        return {"run_id": self.run_id, "stack": self.stack, "pair": self.pair, "rate": self.rate,
                "repetition": self.repetition}

    @classmethod
    def from_dict(cls, data: dict) -> "RunKey":
        return cls(data["stack"], data["pair"], data["rate"], data["repetition"])


class KeyedRun:
    """A run's identity read through its `key` (planned runs, results, run-started events)."""

    key: RunKey
    run_id = property(attrgetter("key.run_id"))
    stack = property(attrgetter("key.stack"))
    pair = property(attrgetter("key.pair"))
    rate = property(attrgetter("key.rate"))
    repetition = property(attrgetter("key.repetition"))


@dataclass
class PlannedRun(KeyedRun):
    key: RunKey
    connections: int
    fault: str
    fault_target: str
    fault_at_s: float
    recover_at_s: float

    @property
    def duration_s(self) -> float:
        return self.connections / self.rate


@dataclass
class DrillPlan:
    runs: list[PlannedRun]
    uri: str
    timeout_s: float
    probe_interval_ms: float
    engine: str
    settle_s: float
    recovery_timeout_s: float
    snapshot_vms: bool
    stacks: list[str] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    repetitions: int = 1
    connections: int = 0
    fault: str = "stop-heartbeat"
    write_ratio: float = 0.0  # writes per load connection, read back after the run (no-data-loss check)
    identity: dict = field(default_factory=dict)  # what else decides the numbers: lab, pairs, thresholds (see plan_identity)

    @property
    def planned_seconds(self) -> float:
        """Load time plus settling between runs (preflight and recovery waits come on top)."""
        return sum(r.duration_s + self.settle_s for r in self.runs)

    def info(self) -> dict:
        """The complete plan as the journal's first record and results.json record it: a resume
        compares it (plan_differences) so that runs of another plan are never mixed in."""
        return {"schema": PLAN_SCHEMA, "stacks": self.stacks, "rates": self.rates, "repetitions": self.repetitions,
                "connections": self.connections, "fault": self.fault, "uri": self.uri, "timeout_s": self.timeout_s,
                "probe_interval_ms": self.probe_interval_ms, "engine": self.engine, "runs": len(self.runs),
                "write_ratio": self.write_ratio, "settle_s": self.settle_s,
                "recovery_timeout_s": self.recovery_timeout_s, "snapshot_vms": self.snapshot_vms, **self.identity}


PLAN_SCHEMA = "hatui.plan/1"

# The only engine that keeps a record per connection, which a run needs to be split into phases.
DRILL_ENGINES = ("builtin",)


def refuse_drill_engine(lab: Lab) -> None:
    """Drills measure with the builtin engine only: refuse another instead of ignoring it."""
    if lab.load.engine not in DRILL_ENGINES:
        raise UsageError(f"[load] engine = {lab.load.engine!r} cannot run drills: it gives no per-connection "
                         "records, so a run cannot be split into failover and failback (use engine = \"builtin\")")


def plan_identity(lab: Lab, pairs: list[Pair]) -> dict:
    """The lab (name, digest of its file), the drilled pairs with their heartbeat timings, the fault
    timing and the thresholds: everything beside the run list that decides a run's numbers."""
    try:
        digest = hashlib.sha256(Path(lab.path).read_bytes()).hexdigest()
    except OSError:
        digest = None
    return {
        "lab": lab.name, "lab_file": str(lab.path), "lab_sha256": digest,
        "fault_target": lab.drill.fault_target, "fault_at": str(lab.drill.fault_at),
        "recover_at": str(lab.drill.recover_at),
        "pairs": {p.name: {"stack": p.stack, "master": p.master, "slave": p.slave, "vip": str(p.vip),
                           "heartbeat": asdict(p.heartbeat)} for p in pairs},
        "thresholds": asdict(lab.thresholds),
    }


# Fields that describe the record rather than the plan: never a reason to refuse a resume.
_NOT_COMPARED = {"lab_file", "runs"}  # where the file was read; runs follow from the rest


def plan_differences(journal: dict, now: dict, prefix: str = "") -> list[str]:
    """What differs between a journal's plan and this one, e.g. 'connections: journal 200, now 2000'."""
    out = []
    for key in sorted(set(journal) | set(now)):
        if not prefix and key in _NOT_COMPARED:
            continue
        old, new = journal.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            out += plan_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            out.append(f"{prefix}{key}: journal {_shown(old)}, now {_shown(new)}")
    return out


def check_journal(path: Path, plan: DrillPlan) -> None:
    """Refuse (UsageError, before anything is sent) to resume a journal of another plan, or one that
    cannot be read as a hatui journal: its runs would be mixed with this plan's."""
    recorded = journal_plan(path, PLAN_SCHEMA)
    if recorded is None:
        return
    differences = plan_differences(recorded, plan.info())
    if differences:
        raise UsageError(f"{path} holds the runs of another plan ({'; '.join(differences)}): "
                         "export into another directory, or run that plan again")


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(_shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def refuse_oversized_plan(stacks: int, rates: list[float], repeat: int, conns: int, settle_s: float) -> None:
    """Refuse a plan of more than MAX_PLAN_RUNS runs or MAX_PLAN_HOURS hours, from its sizes alone."""
    runs = stacks * len(rates) * repeat
    hours = stacks * repeat * sum(conns / rate + settle_s for rate in rates) / 3600
    if runs > MAX_PLAN_RUNS or hours > MAX_PLAN_HOURS:
        raise UsageError(f"the plan has {runs:,} runs ({stacks} stack(s) x {len(rates)} rate(s) x {repeat:,} "
                         f"repetitions) lasting about {hours:,.0f} h: a plan may have at most {MAX_PLAN_RUNS:,} runs "
                         f"and last at most {MAX_PLAN_HOURS} h")


def make_plan(lab: Lab, *, stacks: list[str] | None = None, rates: list[float] | None = None,
              repeat: int | None = None, conns: int | None = None, fault: str | None = None,
              pairs: list[str] | None = None, write_ratio: float | None = None) -> DrillPlan:
    """Build the plan; raises UsageError naming the first thing that cannot work."""
    stacks = stacks or lab.drill.stacks
    rates = rates or lab.load.rates
    repeat = repeat if repeat is not None else lab.load.repetitions
    conns = conns if conns is not None else lab.load.connections
    fault = fault or lab.drill.fault
    write_ratio = lab.drill.write_ratio if write_ratio is None else write_ratio
    refuse_drill_engine(lab)
    if not 0 <= write_ratio <= 1:
        raise UsageError(f"write ratio must be between 0 and 1, found {write_ratio:g}")
    for stack in stacks:
        if stack not in STACKS:
            raise UsageError(f"unknown stack {stack!r} (native or virtual)")
    if fault not in FAULTS:
        raise UsageError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
    if any(not 0 < r < math.inf for r in rates) or repeat <= 0 or conns <= 0:
        raise UsageError("rates, repetitions and connections must be positive (and rates finite)")
    refuse_oversized_plan(len(stacks), rates, repeat, conns, lab.drill.settle_s)
    # Each run must be one the load engine accepts: refused here, before preflight or a VM snapshot.
    for rate in rates:
        problems = limit_problems(conns, rate, lab.load.timeout_s)
        if problems:
            raise UsageError(f"load.connections, load.rates: {conns} connections at {rate:g} conn/s is beyond the "
                             f"load engine's limits: {'; '.join(problems)}")
    if request_path_problem(lab.load.uri):
        raise UsageError(f"load.uri: {request_path_problem(lab.load.uri)}")
    if fault == "stop-vm" and "native" in stacks:
        raise UsageError("the stop-vm fault only applies to the virtual stack (use --stack virtual)")
    chosen = []
    for stack in stacks:
        stack_pairs = [p for p in lab.pairs_of(stack) if pairs is None or p.name in pairs]
        if not stack_pairs:
            raise UsageError(f"no pair on the {stack} stack in {lab.path}")
        # The study drills one pair per stack (master.VM01 <-> slave.VM01 on the virtual stack).
        chosen.append(stack_pairs[0])
    runs = []
    for pair in chosen:
        for rate in rates:
            for rep in range(1, repeat + 1):
                duration = conns / rate
                fault_at = lab.drill.fault_at.seconds(duration)
                recover_at = lab.drill.recover_at.seconds(duration)
                if recover_at - fault_at < MIN_FAULT_TO_RECOVERY_S or duration - recover_at < MIN_FAILBACK_WINDOW_S:
                    raise UsageError(
                        f"a run of {conns} connections at {rate:g} conn/s lasts {duration:g} s: too short for "
                        f"fault at {fault_at:g} s and recovery at {recover_at:g} s (need {MIN_FAULT_TO_RECOVERY_S:g} s "
                        f"between them and {MIN_FAILBACK_WINDOW_S:g} s after); use more connections (--conns)")
                runs.append(PlannedRun(
                    RunKey(pair.stack, pair.name, rate, rep), connections=conns, fault=fault,
                    fault_target=lab.drill.fault_target, fault_at_s=fault_at, recover_at_s=recover_at))
    return DrillPlan(runs=runs, uri=lab.load.uri, timeout_s=lab.load.timeout_s,
                     probe_interval_ms=lab.load.probe_interval_ms, engine=lab.load.engine,
                     settle_s=lab.drill.settle_s, recovery_timeout_s=lab.drill.recovery_timeout_s,
                     snapshot_vms=lab.drill.snapshot_vms, stacks=list(stacks), rates=list(rates),
                     repetitions=repeat, connections=conns, fault=fault, write_ratio=write_ratio,
                     identity=plan_identity(lab, chosen))

"""The drill runner: preflight -> load + probe -> fault -> takeover -> recovery -> failback -> settle.

It emits events (hatui.drill.events) to one callback and writes every command and every
finished run to the journal. Neither the TUI nor the headless export contains drill logic.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from hatui.collectors.cluster import ClusterState, collect_state, parse_ipv4_addresses
from hatui.collectors.heartbeat import parse_nodestatus
from hatui.collectors.severity import Severity
from hatui.config import RECOVERY, Lab, Pair
from hatui.drill import measure
from hatui.drill.events import (CommandSent, DrillFinished, DrillHalted, DrillRunFinished, DrillRunStarted,
                                DrillStarted, Event, LoadProgress, PhaseChanged, RunRetried, RunSkipped, TimelineMark)
from hatui.drill.faults import FaultAction, FaultOutcome, LabFaults, execute_fault, plan_fault
from hatui.drill.plan import DrillPlan, PlannedRun, check_journal
from hatui.drill.results import Mark, RunResult, check_thresholds
from hatui.errors import EXIT_OK, EXIT_REFUSED, EXIT_THRESHOLD, HatuiError, RefusedError
from hatui.journal import Journal, finished_runs
from hatui.transport import SshPool, TransportError

WATCH_INTERVAL_S = 0.25  # how often the peer's view (peer dead? VIP here?) is sampled during a run
STEADY_POLL_S = 0.5


@dataclass
class DrillOutcome:
    results: list[RunResult]
    exit_code: int
    halted: str | None = None
    refused: str | None = None
    stopped: bool = False
    host_software: dict | None = None  # host -> heartbeat/DRBD/nginx versions (hatui.provenance), set by export
    vm_limits: str | None = None  # how the local lab limits its VMs (Core.vm_limits), set by export


@dataclass
class _Timeline:
    t0: float  # monotonic time of the load start
    wall0: float
    marks: list[Mark] = field(default_factory=list)

    def add(self, name: str, at: float | None = None, detail: str = "") -> Mark:
        at = time.monotonic() if at is None else at
        mark = Mark.at(name, at - self.t0, self.wall0, detail)
        self.marks.append(mark)
        return mark

    def has(self, name: str) -> bool:
        return any(m.name == name for m in self.marks)


def drill_exit_code(results: list[RunResult], planned_runs: int) -> int:
    """1 unless every planned run finished valid and within its thresholds (an aborted, halted,
    failed or invalid run, or a drill stopped before its end, fails the gate); else 0."""
    if len(results) < planned_runs or any(r.status != "ok" or not r.valid or not r.passed for r in results):
        return EXIT_THRESHOLD
    return EXIT_OK


def run_state(result: RunResult) -> str:
    """A run's lifecycle state in the journal: finished (valid or not), aborted, halted or failed."""
    return "finished" if result.status == "ok" else result.status


def steady_problems(state: ClusterState, pair: Pair) -> list[str]:
    """Why the pair is not in its steady state (empty list: steady). Also the preflight check."""
    problems = []
    for name in (pair.master, pair.slave):
        node = state.nodes[name]
        if not node.reachable:
            problems.append(f"{name} is unreachable: {node.error}")
            continue
        if node.heartbeat != "running":
            problems.append(f"heartbeat is {node.heartbeat} on {name}")
        if node.rscstatus == "transition":
            problems.append(f"heartbeat on {name} is in transition")
        for res in node.drbd:
            if pair.drbd and res.name in pair.drbd and res.severity > Severity.OK:
                problems.append(f"DRBD {res.name} on {name}: {res.reason or res.severity}")
        if pair.drbd and node.drbd_available:
            missing = set(pair.drbd) - {r.name for r in node.drbd}
            if missing:
                problems.append(f"DRBD {', '.join(sorted(missing))} not configured on {name}")
    ps = state.pairs[pair.name]
    if len(ps.vip_owners) > 1:
        problems.append(f"split brain: {' and '.join(ps.vip_owners)} both hold {ps.vip}")
    elif ps.vip_owner != pair.master:
        problems.append(f"{ps.vip} is held by {ps.vip_owner or 'nobody'}, not the master {pair.master}")
    if ps.service is not None and not ps.service.ok:
        problems.append(f"service on {ps.vip} failed: {ps.service.error}")
    elif ps.service is not None and ps.service.served_by and ps.service.served_by != pair.master:
        problems.append(f"{ps.vip} is answered by {ps.service.served_by}, not {pair.master}")
    return problems


class DrillRunner:
    def __init__(self, lab: Lab, plan: DrillPlan, *, pool: SshPool, on_event=None,
                 journal_path: Path | str, resume: bool = True, lab_faults: LabFaults | None = None):
        self.lab = lab
        self.plan = plan
        self.pool = pool
        self.lab_faults = lab_faults  # runs crash/restore (and the links) on a local lab
        self.on_event = on_event or (lambda event: None)
        self.journal_path = Path(journal_path)
        self.resume = resume
        self.journal: Journal | None = None
        self._stop = asyncio.Event()

    # -- plumbing -----------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        try:
            self.on_event(event)
        except Exception:  # an observer's bug must not break a drill half-way through a fault
            pass

    def _on_command(self, outcome, host: str, command: str) -> None:
        if isinstance(outcome, TransportError):
            entry = {"host": host, "command": command, "exit_status": None, "duration_s": 0.0, "error": outcome.reason}
        else:
            entry = {"host": host, "command": command, "exit_status": outcome.exit_status,
                     "duration_s": round(outcome.duration_s, 4), "error": None}
        if self.journal is not None and not _is_poll(command):
            self.journal.write("command", **entry)
        if not _is_poll(command):
            self.emit(CommandSent(**entry))

    async def _execute(self, fault: FaultAction) -> FaultOutcome:
        return await execute_fault(self.lab, fault, self.pool, lab_faults=self.lab_faults)

    async def _state(self, pair: Pair) -> ClusterState:
        return await collect_state(self.lab, self.pool, pairs=[pair])

    async def _wait_steady(self, pair: Pair, *, settle_s: float, timeout_s: float, stoppable: bool = True) -> list[str]:
        """Wait until the pair has been steady for `settle_s`; returns the last problems on timeout
        (or at a stop, when `stoppable`)."""
        deadline = time.monotonic() + timeout_s
        steady_since = None
        while True:
            problems = steady_problems(await self._state(pair), pair)
            now = time.monotonic()
            if not problems:
                steady_since = steady_since or now
                if now - steady_since >= settle_s:
                    return []
            else:
                steady_since = None
            if now >= deadline or (stoppable and self._stop.is_set()):
                return problems or ["not steady long enough"]
            await asyncio.sleep(STEADY_POLL_S)

    # -- the drill ----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    async def run(self, stop: asyncio.Event | None = None) -> DrillOutcome:
        if stop is not None:
            asyncio.get_running_loop().create_task(_forward(stop, self._stop))
        check_journal(self.journal_path, self.plan)
        done = finished_runs(self.journal_path) if self.resume else {}
        interrupted = interrupted_run(self.journal_path) if self.resume else None
        self.journal = Journal(self.journal_path)
        self.pool.listeners.append(self._on_command)
        results: list[RunResult] = []
        halted = refused = None
        try:
            self.journal.write("drill-started", plan=self.plan.info(), runs=len(self.plan.runs))
            self.emit(DrillStarted(total_runs=len(self.plan.runs), plan=self.plan))
            if interrupted is not None:
                await self._undo_interrupted(interrupted)
            for index, planned in enumerate(self.plan.runs, start=1):
                if self._stop.is_set():
                    break
                last = done.get(planned.run_id)
                if last is not None and last.get("status") == "ok":
                    results.append(RunResult.from_dict(last))
                    self.emit(RunSkipped(run_id=planned.run_id, reason="already finished in the journal"))
                    continue
                if last is not None:  # aborted, halted or failed: its numbers never count, so run it again
                    self.emit(RunRetried(run_id=planned.run_id, last_state=last.get("status", "unknown")))
                try:
                    result = await self._run_one(planned, index, first=not results)
                except RefusedError as exc:
                    refused = str(exc)
                    self.journal.write("drill-refused", run_id=planned.run_id, reason=refused)
                    break
                results.append(result)
                if result.status == "halted":
                    halted = result.error
                    break
        finally:
            self.pool.listeners.remove(self._on_command)
        code = EXIT_REFUSED if refused else drill_exit_code(results, len(self.plan.runs))
        self.journal.write("drill-finished", exit_code=code, halted=halted, refused=refused, stopped=self._stop.is_set())
        self.journal.close()
        self.emit(DrillFinished(results=results, exit_code=code, stopped=self._stop.is_set()))
        return DrillOutcome(results, code, halted=halted, refused=refused, stopped=self._stop.is_set())

    async def _run_one(self, planned: PlannedRun, index: int, *, first: bool) -> RunResult:
        pair = self.lab.pairs[planned.pair]
        self.emit(DrillRunStarted(key=planned.key, index=index, total=len(self.plan.runs),
                                  connections=planned.connections, fault=planned.fault))
        self.emit(PhaseChanged(run_id=planned.run_id, phase="preflight"))
        self.journal.write("run-started", run_id=planned.run_id, pair=planned.pair, fault=planned.fault,
                           fault_target=planned.fault_target)
        # Preflight: the first run refuses at once; later runs first wait for the cluster to settle.
        problems = await self._wait_steady(pair, settle_s=0 if first else self.plan.settle_s,
                                           timeout_s=0 if first else self.plan.recovery_timeout_s)
        if self._stop.is_set():  # stopped while waiting for the cluster to settle: nothing was sent
            return self._aborted(planned, None, steady_problems(await self._state(pair), pair), started_wall=time.time())
        if problems:
            if first:
                raise RefusedError(f"preflight refused {planned.run_id}: " + "; ".join(problems))
            return await self._halt(planned, pair, "the cluster did not return to its steady state before the run: "
                                    + "; ".join(problems), started_wall=time.time())
        # VM snapshots (lab.toml drill.snapshot_vms): taken before a virtual run, rolled back after it.
        vm_snap = await self._vm_snapshot(planned, pair, index) if planned.stack == "virtual" and self.plan.snapshot_vms else None
        vip = str(pair.vip_address)
        try:
            streams, timeline, writes, error = await self._load_with_fault(planned, pair, vip)
        except Exception:  # e.g. the load refused its spec: the VMs are left as they were before the run
            if vm_snap is not None:
                await self._vm_rollback(planned, pair, vm_snap)
            raise
        result = self._measure(planned, pair, streams, timeline)
        if error is not None:
            result.status, result.error = "failed", error
        return await self._finish(planned, pair, result, vm_snap=vm_snap, writes=writes, vip=vip)

    async def _load_with_fault(self, planned: PlannedRun, pair: Pair, vip: str):
        """The run's load, probe and writes, with the fault and the recovery sent on time.

        Returns the streams, the timeline, the write stream (or None) and why the fault or the
        recovery failed (None when both worked)."""
        fault = plan_fault(self.lab, pair.name, planned.fault, planned.fault_target)
        recovery = plan_fault(self.lab, pair.name, RECOVERY[planned.fault], planned.fault_target)
        peer = pair.peer(fault.host)
        streams = measure.start_streams(vip, 80, self.plan.uri, rate=planned.rate, connections=planned.connections,
                                        timeout_s=self.plan.timeout_s, probe_interval_ms=self.plan.probe_interval_ms)
        timeline = _Timeline(t0=streams.t0, wall0=streams.wall0)
        writes = self._start_writes(planned, vip)
        self.emit(PhaseChanged(run_id=planned.run_id, phase="failover"))
        progress = asyncio.create_task(self._report_progress(planned, streams))
        watcher = asyncio.create_task(self._watch(planned, timeline, fault.host, peer, vip))
        try:
            error = await self._fault_then_recovery(planned, timeline, fault, recovery)
            if self._stop.is_set():
                streams.stop()
            await streams.wait(planned.duration_s + self.plan.timeout_s + 30)
        finally:
            streams.stop()
            if writes is not None:
                writes.stop()
            watcher.cancel()
            progress.cancel()
            await asyncio.gather(watcher, progress, return_exceptions=True)
        return streams, timeline, writes, error

    async def _fault_then_recovery(self, planned: PlannedRun, timeline: _Timeline, fault, recovery) -> str | None:
        """Send the fault (unless stopped) and then the recovery at their planned times; returns
        why the last of them failed, None when both worked."""
        error = None
        await self._sleep_until(timeline.t0 + planned.fault_at_s)
        if self._stop.is_set():
            return None  # stopped before the fault: nothing to recover from
        self._mark(planned, timeline, "fault-sent", detail=f"{fault.command} on {fault.host}")
        outcome = await self._execute(fault)
        if not outcome.ok:
            error = f"fault {fault.action} on {fault.host} failed: {outcome.detail}"
        await self._sleep_until(timeline.t0 + planned.recover_at_s)  # returns at once on a stop
        self._mark(planned, timeline, "recovery-sent", detail=f"{recovery.command} on {recovery.host}")
        self.emit(PhaseChanged(run_id=planned.run_id, phase="failback"))
        outcome = await self._execute(recovery)
        if not outcome.ok:
            error = f"recovery {recovery.action} on {recovery.host} failed: {outcome.detail}"
        return error

    def _measure(self, planned: PlannedRun, pair: Pair, streams, timeline: _Timeline) -> RunResult:
        """The run's figures per phase, its full timeline (with the probe's marks) and thresholds."""
        result = measure.run_result(planned, streams, timeline.marks, pair, probe_interval_ms=self.plan.probe_interval_ms)
        for mark in measure.probe_marks(streams, timeline.marks, pair):
            if not timeline.has(mark.name):
                timeline.marks.append(mark)
                self.emit(TimelineMark(run_id=planned.run_id, point=mark))
        result.timeline = sorted(timeline.marks, key=lambda m: m.at_s)
        check_thresholds(result, self.lab.thresholds)
        return result

    async def _finish(self, planned: PlannedRun, pair: Pair, result: RunResult, *, vm_snap: str | None, writes,
                      vip: str) -> RunResult:
        """After the load: roll the VMs back, let the cluster settle (else halt), check the writes, journal the run."""
        if vm_snap is not None:  # VM snapshots: roll back (the VMs start again), then settle as usual
            rollback_error = await self._vm_rollback(planned, pair, vm_snap)
            if rollback_error:
                result.status, result.error = "failed", rollback_error
        self.emit(PhaseChanged(run_id=planned.run_id, phase="settle"))
        # After a stop the settle wait is not cut short: the cluster is left recovered, or we say how not.
        problems = await self._wait_steady(pair, settle_s=self.plan.settle_s, timeout_s=self.plan.recovery_timeout_s,
                                           stoppable=not self._stop.is_set())
        if self._stop.is_set():
            if problems:  # the stop came during the settle wait: wait for the recovery itself
                problems = await self._wait_steady(pair, settle_s=0, timeout_s=self.plan.recovery_timeout_s,
                                                   stoppable=False)
            return self._aborted(planned, result, problems)
        if problems:
            return await self._halt(planned, pair, f"the cluster did not recover within {self.plan.recovery_timeout_s:g} s: "
                                    + "; ".join(problems), result=result)
        if writes is not None:
            await self._verify_writes(result, writes, vip)
        self.journal.write("run-finished", state=run_state(result), result=result.to_dict())
        self.emit(DrillRunFinished(run_id=planned.run_id, result=result))
        self.emit(PhaseChanged(run_id=planned.run_id, phase="done"))
        return result

    def _aborted(self, planned: PlannedRun, result: RunResult | None, problems: list[str], *,
                 started_wall: float | None = None) -> RunResult:
        """Journal a run stopped by the operator (signal, TUI abort) as aborted, saying what was sent
        and the state the cluster was left in; its numbers never enter the tables."""
        if result is None:
            result = _empty_result(planned, "aborted", started_wall)
        marks = {m.name for m in result.timeline}
        fault_sent, recovery_sent = "fault-sent" in marks, "recovery-sent" in marks
        left = "steady" if not problems else "; ".join(problems)
        result.status = "aborted"
        result.error = (f"stopped by the operator: fault {'sent' if fault_sent else 'not sent'}, recovery "
                        f"{'sent' if recovery_sent else 'not sent'}; cluster left: {left}")
        self.journal.write("run-finished", state="aborted", fault_sent=fault_sent, recovery_sent=recovery_sent,
                           cluster_left=left, result=result.to_dict())
        self.emit(DrillRunFinished(run_id=planned.run_id, result=result))
        self.emit(PhaseChanged(run_id=planned.run_id, phase="done"))
        return result

    # -- the no-data-loss check (plan.write_ratio > 0; needs a write endpoint behind the VIP) ----

    def _start_writes(self, planned: PlannedRun, vip: str):
        if self.plan.write_ratio <= 0:
            return None
        from hatui.load.writes import WriteStream

        count = max(1, round(planned.connections * self.plan.write_ratio))
        return WriteStream(vip, rate=planned.rate * self.plan.write_ratio, count=count, timeout_s=2.0,
                           max_duration_s=planned.duration_s + 30).start()

    async def _verify_writes(self, result: RunResult, writes, vip: str) -> None:
        """Read every acknowledged write back from the current primary (after the cluster settled)."""
        from hatui.load.writes import verify

        done = await writes.wait(timeout_s=30)
        acked = done.acked
        report = await verify(vip, acked)
        result.writes_attempted, result.writes_acked = done.attempted, len(acked)
        result.lost_writes = report.lost_count
        result.writes_detail = report.summary()
        result.writes_failure = report.failure

    # -- VM snapshots around a virtual run (lab.toml drill.snapshot_vms; hatui.proxmox) -------

    async def _vm_snapshot(self, planned: PlannedRun, pair: Pair, index: int) -> str:
        from hatui import vms as lab_vms

        name = f"hatui-drill-{int(time.time())}-{index}"
        vms = [pair.master, pair.slave]
        try:
            await lab_vms.drill_snapshot(self.lab, vms, name)
        except HatuiError as exc:
            raise RefusedError(f"could not snapshot the VMs {', '.join(vms)} before {planned.run_id}: {exc}") from None
        self.journal.write("vm-snapshot", run_id=planned.run_id, snapshot=name, vms=vms)
        return name

    async def _vm_rollback(self, planned: PlannedRun, pair: Pair, name: str) -> str | None:
        from hatui import vms as lab_vms

        vms = [pair.master, pair.slave]
        try:
            await lab_vms.drill_rollback(self.lab, vms, name)
        except HatuiError as exc:
            self.journal.write("vm-rollback", run_id=planned.run_id, snapshot=name, vms=vms, error=str(exc))
            return f"rollback of {', '.join(vms)} to snapshot {name} failed: {exc}"
        self.journal.write("vm-rollback", run_id=planned.run_id, snapshot=name, vms=vms, error=None)
        return None

    async def _undo_interrupted(self, entry: dict) -> None:
        """A drill killed mid-run may have left its fault in place: undo it before resuming."""
        pair = self.lab.pairs.get(entry.get("pair", ""))
        fault = entry.get("fault")
        if pair is None or fault not in RECOVERY:
            return
        recovery = plan_fault(self.lab, pair.name, RECOVERY[fault], entry.get("fault_target", "master"))
        state = await self._state(pair)
        if not steady_problems(state, pair):
            return
        self.journal.write("resume-recovery", run_id=entry.get("run_id"), action=recovery.action, host=recovery.host)
        await self._execute(recovery)

    async def _halt(self, planned: PlannedRun, pair: Pair, reason: str, *, result: RunResult | None = None,
                    started_wall: float | None = None) -> RunResult:
        """Auto-halt: try to recover the cluster, mark the run, stop the drill, say what was left."""
        attempts = []
        for action, target in ((RECOVERY[planned.fault], planned.fault_target), ("start-heartbeat", "master"),
                               ("start-heartbeat", "slave")):
            try:
                outcome = await self._execute(plan_fault(self.lab, pair.name, action, target))
                attempts.append(f"{action} on {target}: {'ok' if outcome.ok else outcome.detail}")
            except Exception as exc:  # keep trying the other recoveries
                attempts.append(f"{action} on {target}: {exc}")
        problems = await self._wait_steady(pair, settle_s=0, timeout_s=min(15.0, self.plan.recovery_timeout_s))
        left = "steady again after recovery attempts" if not problems else "; ".join(problems)
        if result is None:
            result = _empty_result(planned, "halted", started_wall)
        result.status = "halted"
        result.error = f"{reason} (recovery tried: {'; '.join(attempts)}; cluster left: {left})"
        self.journal.write("run-finished", state="halted", result=result.to_dict())
        self.journal.write("drill-halted", run_id=planned.run_id, reason=reason, cluster_left=left)
        self.emit(DrillRunFinished(run_id=planned.run_id, result=result))
        self.emit(DrillHalted(run_id=planned.run_id, reason=reason, cluster_left=left))
        return result

    def _mark(self, planned: PlannedRun, timeline: _Timeline, name: str, at: float | None = None, detail: str = "") -> None:
        self.emit(TimelineMark(run_id=planned.run_id, point=timeline.add(name, at, detail)))

    async def _sleep_until(self, deadline: float) -> None:
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._stop.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass

    async def _report_progress(self, planned: PlannedRun, streams) -> None:
        while True:
            await asyncio.sleep(1.0)
            snap = streams.snapshot()
            self.emit(LoadProgress(run_id=planned.run_id, **snap))

    async def _watch(self, planned: PlannedRun, timeline: _Timeline, target: str, peer: str, vip: str) -> None:
        """Sample the peer's view: when does it see the target dead, when does it hold the VIP."""
        command = f"cl_status nodestatus {target} 2>&1; echo @@addresses; ip -o -4 addr show 2>&1"
        seen_dead = held = False
        while True:
            try:
                result = await self.pool.run(peer, command, timeout=2.0)
                at = time.monotonic()
                status, _, addresses = result.stdout.partition("@@addresses\n")
                if not seen_dead and timeline.has("fault-sent") and parse_nodestatus(status).value == "dead":
                    seen_dead = True
                    self._mark(planned, timeline, "peer-dead", at, f"{peer} sees {target} dead")
                holds = vip in parse_ipv4_addresses(addresses)
                if holds and not held and timeline.has("fault-sent"):
                    self._mark(planned, timeline, "vip-moved", at, f"{vip} up on {peer}")
                held = holds
            except TransportError:
                pass
            await asyncio.sleep(WATCH_INTERVAL_S)


def _empty_result(planned: PlannedRun, status: str, started_wall: float | None) -> RunResult:
    """A run that ended before its load: no phases, no numbers."""
    return RunResult(key=planned.key, connections=planned.connections, fault=planned.fault,
                     started_wall=started_wall or time.time(), status=status, phases={}, total=None,
                     timeline=[], per_second=[])


def interrupted_run(path: Path) -> dict | None:
    """The last `run-started` entry of the journal when no `run-finished` followed it."""
    from hatui.journal import read_journal

    last = None
    for entry in read_journal(path):
        if entry["kind"] == "run-started":
            last = entry
        elif entry["kind"] == "run-finished" and last is not None and \
                (entry.get("result") or {}).get("run_id") == last.get("run_id"):
            last = None
    return last


async def _forward(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


def _is_poll(command: str) -> bool:
    return command.startswith("\necho @@hostname") or command.startswith("echo @@hostname") or command.startswith("cl_status nodestatus")


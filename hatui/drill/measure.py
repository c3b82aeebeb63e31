"""Measuring a drill run: the open-loop load and the probe stream, and what their records mean.

A record is (start_s, end_s, outcome, status, served_by) with times in seconds from the run's
load start. Outcomes: success, http-4xx, http-5xx, client-timo, connrefused, connreset, other.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from hatui.config import Pair
from hatui.drill.results import ERROR_CLASSES, PhaseResult, RunResult
from hatui.httpcheck import http_get, with_marker

MAX_IN_FLIGHT = 20000  # bound on concurrent connections of one stream
# Probe requests carry this query so server logs can tell them from the load.
PROBE_MARKER = "hatui-probe=1"


def probe_uri(uri: str) -> str:
    return with_marker(uri, PROBE_MARKER)


@dataclass(slots=True)
class Record:
    start_s: float
    end_s: float
    outcome: str
    status: int | None
    served_by: str | None

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


def classify(check) -> str:
    if check.ok:
        return "success"
    if check.status is not None:
        return "http-5xx" if check.status >= 500 else "http-4xx"
    error = check.error or ""
    if error.startswith("timeout"):
        return "client-timo"
    if "refused" in error:
        return "connrefused"
    if "reset" in error:
        return "connreset"
    if "Too many open files" in error:
        return "fd-unavail"
    if "Cannot assign requested address" in error:
        return "addrunavail"
    return "other"


class Stream:
    """Open loop: request i starts at t0 + i * interval whatever happened to earlier ones."""

    def __init__(self, address: str, port: int, uri: str, *, interval_s: float, count: int | None,
                 timeout_s: float, t0: float):
        self.address, self.port, self.uri = address, port, uri
        self.interval_s, self.count, self.timeout_s, self.t0 = interval_s, count, timeout_s, t0
        self.records: list[Record] = []
        self.late_s = 0.0  # how far behind schedule the sender fell at worst
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self.task = asyncio.get_running_loop().create_task(self._send())

    async def _one(self) -> None:
        start = time.monotonic() - self.t0
        check = await http_get(self.address, self.uri, port=self.port, timeout=self.timeout_s)
        self.records.append(Record(start, time.monotonic() - self.t0, classify(check), check.status, check.served_by))

    async def _send(self) -> None:
        i = 0
        while (self.count is None or i < self.count) and not self._stopped.is_set():
            due = self.t0 + i * self.interval_s
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stopped.wait(), delay)
                    break
                except asyncio.TimeoutError:
                    pass
            else:
                self.late_s = max(self.late_s, -delay)
            if len(self._tasks) < MAX_IN_FLIGHT:
                task = asyncio.get_running_loop().create_task(self._one())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                self.records.append(Record(time.monotonic() - self.t0, time.monotonic() - self.t0, "fd-unavail", None, None))
            i += 1
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def stop(self) -> None:
        self._stopped.set()


class RunStreams:
    """The load and the probe of one run, started together on one clock."""

    def __init__(self, address: str, port: int, uri: str, *, rate: float, connections: int, timeout_s: float,
                 probe_interval_ms: float):
        self.t0 = time.monotonic() + 0.05
        self.wall0 = time.time() + 0.05
        self.rate = rate
        self.cpu0 = time.process_time()
        self.load = Stream(address, port, uri, interval_s=1.0 / rate, count=connections, timeout_s=timeout_s, t0=self.t0)
        # The probe keeps its own short timeout so it can see the end of an outage at its resolution.
        self.probe = Stream(address, port, probe_uri(uri), interval_s=probe_interval_ms / 1000.0, count=None,
                            timeout_s=max(0.2, min(timeout_s, 0.5)), t0=self.t0)
        self.cpu_s: float | None = None

    def snapshot(self) -> dict[str, Any]:
        records = list(self.load.records)
        elapsed = time.monotonic() - self.t0
        errors = {c: 0 for c in ERROR_CLASSES}
        for r in records:
            if not r.ok:
                errors[r.outcome] = errors.get(r.outcome, 0) + 1
        second = int(elapsed) - 1
        last = [r for r in records if int(r.start_s) == second]
        last_errors: dict[str, int] = {}
        for r in last:
            if not r.ok:
                last_errors[r.outcome] = last_errors.get(r.outcome, 0) + 1
        return {
            "elapsed_s": round(elapsed, 3),
            "attempted": len(records) + len(self.load._tasks),
            "replies": sum(1 for r in records if r.status is not None),
            "success": sum(1 for r in records if r.ok),
            "errors": {k: v for k, v in errors.items() if v},
            "second": {"t": second, "attempted": len(last), "success": sum(1 for r in last if r.ok), "errors": last_errors},
        }

    async def wait(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.load.task), timeout_s)
        except asyncio.TimeoutError:
            self.load.stop()
        self.probe.stop()
        await asyncio.gather(self.load.task, self.probe.task, return_exceptions=True)
        self.cpu_s = time.process_time() - self.cpu0

    def stop(self) -> None:
        self.load.stop()
        self.probe.stop()


def start_streams(address: str, port: int, uri: str, *, rate: float, connections: int, timeout_s: float,
                  probe_interval_ms: float) -> RunStreams:
    return RunStreams(address, port, uri, rate=rate, connections=connections, timeout_s=timeout_s,
                      probe_interval_ms=probe_interval_ms)


# -- from records to results ------------------------------------------------------------------


@dataclass
class Outage:
    start_s: float  # start of the last success before the outage
    end_s: float  # start of the first success after it
    served_before: str | None
    served_after: str | None

    @property
    def duration_ms(self) -> float:
        return (self.end_s - self.start_s) * 1000


def outages(probe: list[Record], min_gap_s: float) -> list[Outage]:
    """Gaps between consecutive successes (by start time) with failures in between."""
    ordered = sorted(probe, key=lambda r: r.start_s)
    found, last_ok, failed_since = [], None, False
    for r in ordered:
        if r.ok:
            if last_ok is not None and failed_since and r.start_s - last_ok.start_s > min_gap_s:
                found.append(Outage(last_ok.start_s, r.start_s, last_ok.served_by, r.served_by))
            last_ok, failed_since = r, False
        else:
            failed_since = True
    return found


def phase_result(name: str, load: list[Record], probe: list[Record], start_s: float, end_s: float,
                 probe_interval_ms: float) -> PhaseResult:
    mine = [r for r in load if start_s <= r.start_s < end_s]
    errors = {c: 0 for c in ERROR_CLASSES}
    for r in mine:
        if not r.ok:
            errors[r.outcome] = errors.get(r.outcome, 0) + 1
    success = sum(1 for r in mine if r.ok)
    # An outage belongs to the phase in which it started.
    gaps = [o for o in outages(probe, min_gap_s=2.5 * probe_interval_ms / 1000) if start_s <= o.start_s < end_s]
    worst = max(gaps, key=lambda o: o.duration_ms, default=None)
    return PhaseResult(
        phase=name, start_s=round(start_s, 4), end_s=round(end_s, 4), requests=len(mine),
        replies=sum(1 for r in mine if r.status is not None), success=success, errors=errors,
        availability_pct=round(success / len(mine) * 100, 4) if mine else 0.0,
        downtime_ms=round(sum(o.duration_ms for o in gaps), 1) if gaps else None, resolution_ms=probe_interval_ms,
        outage_start_s=round(worst.start_s, 4) if worst else None, outage_end_s=round(worst.end_s, 4) if worst else None,
        served_before=worst.served_before if worst else None, served_after=worst.served_after if worst else None,
    )


def per_second(load: list[Record]) -> list[dict]:
    rows: dict[int, dict] = {}
    for r in load:
        row = rows.setdefault(int(r.start_s), {"t": int(r.start_s), "attempted": 0, "success": 0, "errors": {}})
        row["attempted"] += 1
        if r.ok:
            row["success"] += 1
        else:
            row["errors"][r.outcome] = row["errors"].get(r.outcome, 0) + 1
    return [rows[k] for k in sorted(rows)]


def run_result(planned, streams: RunStreams, marks: list[dict], pair: Pair, *, probe_interval_ms: float) -> RunResult:
    load, probe = streams.load.records, streams.probe.records
    recovery = next((m["at_s"] for m in marks if m["mark"] == "recovery-sent"), planned.recover_at_s)
    end = max([r.start_s for r in load], default=planned.duration_s) + 1e-6
    phases = {
        "failover": phase_result("failover", load, probe, 0.0, recovery, probe_interval_ms),
        "failback": phase_result("failback", load, probe, recovery, end, probe_interval_ms),
    }
    total = phase_result("total", load, probe, 0.0, end, probe_interval_ms)
    duration = max([r.start_s for r in load], default=0.0)
    achieved = (len(load) - 1) / duration if duration > 0 and len(load) > 1 else None
    invalid = []
    if achieved is not None and achieved < planned.rate * 0.99:
        invalid.append(f"achieved {achieved:.2f} conn/s, more than 1 % under the target {planned.rate:g}")
    resource = sum(1 for r in load if r.outcome in ("fd-unavail", "addrunavail"))
    if resource:
        invalid.append(f"{resource} client-side resource errors (fd-unavail/addrunavail)")
    served: dict[str, int] = {}
    for r in load:
        if r.ok and r.served_by:
            served[r.served_by] = served.get(r.served_by, 0) + 1
    return RunResult(
        run_id=planned.run_id, stack=planned.stack, pair=planned.pair, rate=planned.rate,
        repetition=planned.repetition, connections=planned.connections, fault=planned.fault,
        started_wall=round(streams.wall0, 3), status="ok", phases=phases, total=total, timeline=list(marks),
        per_second=per_second(load), valid=not invalid, invalid_reasons=invalid,
        achieved_rate=round(achieved, 3) if achieved else None, engine_cpu_s=streams.cpu_s, served_counts=served)


def probe_marks(streams: RunStreams, marks: list[dict], pair: Pair) -> list[dict]:
    """Timeline marks seen by the probe: first success on the new node, failback done."""
    at = {m["mark"]: m["at_s"] for m in marks}
    probe = sorted(streams.probe.records, key=lambda r: r.start_s)
    out = []
    fault, recovery = at.get("fault-sent"), at.get("recovery-sent")
    if fault is not None:
        first = next((r for r in probe if r.start_s > fault and r.ok and r.served_by == pair.slave), None)
        if first:
            out.append(_mark("first-success-new", first.start_s, streams, f"{pair.slave} answers"))
    if recovery is not None:
        first = next((r for r in probe if r.start_s > recovery and r.ok and r.served_by == pair.master
                      and any(p.start_s < r.start_s and p.start_s > recovery and not p.ok for p in probe)), None)
        if first is None:  # no outage during failback: done once the master answers again
            first = next((r for r in probe if r.start_s > recovery and r.ok and r.served_by == pair.master), None)
        if first:
            out.append(_mark("failback-done", first.start_s, streams, f"{pair.master} answers again"))
    return out


def _mark(name: str, at_s: float, streams: RunStreams, detail: str) -> dict:
    return {"mark": name, "at_s": round(at_s, 4), "wall": round(streams.wall0 + at_s, 4), "detail": detail}

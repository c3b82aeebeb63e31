"""Summaries of load runs with httperf's meanings, outages, and availability in a time window.

Definitions:

- `requests` = connections attempted; `replies` = complete HTTP responses; `success` = replies
  with status < 400; errors = requests - success, by class (httperf's classes plus http-4xx and
  http-5xx for replies that are not successes).
- availability % = success / requests x 100.
- An **outage** is a gap between two consecutive successes (ordered by the time their reply
  completed) in which at least one request was started that failed. It runs from the end of the
  last success before it to the end of the first success after it; its resolution is the
  stream's launch interval (the probe interval, or 1/rate on the load stream). Outages come from
  the probe stream when there is one, else from the load records.
- A window `(t0, t1)` (seconds from the run start, either may be None) selects the connections
  *started* in `t0 <= start < t1`, and the outages whose first failed request started in it.
- **Lateness** of a launch = its start - its scheduled time (t0 + k / rate). The achieved rate is
  (launches - 1) / (last launch - first *scheduled* launch): a late start shows as a longer span.
- A run (or window) is **invalid** when (each reason is a sentence in `invalid_reasons`):
  - the achieved rate is more than 1 % under the target (and the launches fell more than 5 ms
    behind, so timer jitter alone never invalidates a short run);
  - the load's launch lateness has p99 > max(50 ms, 1/rate), or any launch is more than 1 s
    late: the engine fell behind and caught up in bursts, so the load was not open loop
    (a stall during an outage would otherwise hide the outage: coordinated omission);
  - the probe stream's lateness has p99 > its interval, or any probe is more than 1 s late:
    downtime is then not known to within the probe interval;
  - any client-side resource error (fd-unavail, addrunavail, ftab-full) on either stream.
  An engine that gives no per-launch times (httperf) has its lateness "not measured", said in
  the notes, never assumed fine.

Records that were aborted (stop(abort=True), hard time bound) are not attempts: they are
reported as `aborted` and left out of every other count.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from typing import Any

from hatui.load.records import (CLIENT_RESOURCE_CLASSES, ERROR_CLASSES, Outcome, RecordStore,
                                error_class)

RATE_TOLERANCE = 0.01  # achieved rate may be at most 1 % under the target...
RATE_SLACK_S = 0.005  # ...unless that is less than 5 ms over the whole run (timer jitter of short runs)
LATE_P99_FLOOR_S = 0.050  # load: p99 lateness may reach max(50 ms, 1/rate) (a loop tick, not a stall)
LATE_MAX_S = 1.0  # no launch of either stream may be later than this
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

_NOT_ATTEMPTS = (Outcome.PENDING, Outcome.ABORTED)


@dataclass
class Stats:
    """Distribution of a duration, in milliseconds."""

    n: int
    min: float
    avg: float
    max: float
    median: float
    stddev: float
    p90: float
    p99: float

    @classmethod
    def of_seconds(cls, values: list[float]) -> "Stats | None":
        if not values:
            return None
        v = sorted(x * 1000.0 for x in values)
        n = len(v)
        return cls(n=n, min=v[0], avg=math.fsum(v) / n, max=v[-1], median=statistics.median(v),
                   stddev=statistics.pstdev(v) if n > 1 else 0.0, p90=_pct(v, 90), p99=_pct(v, 99))


def _pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


@dataclass
class Outage:
    stream: str  # the stream it was measured on: "probe" or "load"
    start: float | None  # end of the last success before (s from run start); None: none before
    end: float | None  # end of the first success after; None: the run ended before any
    duration: float  # end - start; a lower bound when `open`
    open: bool  # start or end unknown: duration is from/to the failures themselves
    resolution: float  # s: the stream's launch interval
    first_failure: float  # start of the first failed request in it
    errors: int  # failed requests of `stream` started in it
    errors_by_class: dict[str, int]
    served_by_before: str | None
    served_by_after: str | None
    load_errors: int | None = None  # failed load connections started in it (when measured on the probe)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SecondBucket:
    """Connections started in second `t` (from the run start) and how they ended."""

    t: int
    attempted: int = 0
    replies: int = 0
    success: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"t": self.t, "attempted": self.attempted, "replies": self.replies, "success": self.success,
                "errors": dict(self.errors)}


@dataclass
class StreamSummary:
    """Counts of one stream (used for the probe stream)."""

    requests: int
    replies: int
    success: int
    errors: dict[str, int]
    aborted: int
    interval: float
    timeout: float
    lateness_ms: dict[str, float] | None = None  # launch - schedule: avg, p99, max

    @property
    def availability_pct(self) -> float | None:
        return 100.0 * self.success / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["availability_pct"] = self.availability_pct
        return d


@dataclass
class LoadSummary:
    engine: str  # builtin | httperf
    url: str
    host_header: str
    target_rate: float
    num_conns: int  # planned
    timeout: float
    window: tuple[float | None, float | None] | None = None
    # httperf's totals
    requests: int = 0  # connections attempted
    replies: int = 0  # complete HTTP responses
    success: int = 0  # replies with status < 400
    status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUS_CLASSES, 0))
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_CLASSES, 0))
    aborted: int = 0
    # times
    duration_s: float | None = None  # run start (or window start) to the last connection's end
    achieved_rate: float | None = None  # (launches - 1) / (last launch - first scheduled launch)
    achieved_rate_judged: bool = True  # False: an estimate (httperf's tail unknown), not judged
    conn_time_ms: Stats | None = None  # start -> end, of connections with a complete reply
    connect_ms: float | None = None  # avg start -> connected
    response_ms: float | None = None  # avg connected (request sent) -> first byte
    transfer_ms: float | None = None  # avg first byte -> end
    lateness_ms: dict[str, float] | None = None  # launch - schedule: avg, p99, max; None: not measured
    max_inflight: int | None = None
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    per_second: list[SecondBucket] | None = None
    served_by: dict[str, int] = field(default_factory=dict)  # successes per serving node
    # outages / downtime
    outages: list[Outage] | None = None  # None: not measured
    outage_stream: str | None = None
    resolution_s: float | None = None
    probe: StreamSummary | None = None
    # verdict
    valid: bool = True
    invalid_reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped: bool = False  # stopped before all planned connections were launched
    httperf: dict[str, Any] | None = None  # httperf backend: extra figures of its report

    @property
    def error_total(self) -> int:
        return self.requests - self.success

    @property
    def availability_pct(self) -> float | None:
        return 100.0 * self.success / self.requests if self.requests else None

    @property
    def downtime_s(self) -> float | None:
        if self.outages is None:
            return None
        return sum(o.duration for o in self.outages)

    @property
    def cpu_pct(self) -> float | None:
        if self.cpu_user_s is None or not self.duration_s:
            return None
        return 100.0 * (self.cpu_user_s + (self.cpu_system_s or 0.0)) / self.duration_s

    @property
    def client_resource_errors(self) -> int:
        return sum(self.errors.get(c, 0) for c in CLIENT_RESOURCE_CLASSES)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window"] = list(self.window) if self.window else None
        d.update(error_total=self.error_total, availability_pct=self.availability_pct,
                 downtime_s=self.downtime_s, cpu_pct=self.cpu_pct)
        if self.probe is not None:
            d["probe"] = self.probe.to_dict()
        return d


@dataclass
class LoadRecording:
    """Everything a builtin run recorded; `summarize(result, window)` turns it into figures."""

    engine: str
    spec: Any  # LoadSpec | None (probe-only)
    probe_spec: Any  # ProbeSpec | None
    load: RecordStore | None
    probe: RecordStore | None
    t0_monotonic: float  # run start on time.monotonic(): record times are relative to it
    t0_wall: float  # time.time() at the same instant
    wall_duration: float  # s from start until the run finished
    cpu_user_s: float | None
    cpu_system_s: float | None
    stopped: bool = False
    max_inflight: int = 0
    notes: list[str] = field(default_factory=list)
    summary: "LoadSummary | None" = None  # httperf backend: parsed report (records absent)
    url: str = ""
    host_header: str = ""


def _in_window(start: float, window) -> bool:
    if window is None:
        return True
    lo, hi = window
    return (lo is None or start >= lo) and (hi is None or start < hi)


def _indices(store: RecordStore, window) -> range | list[int]:
    if window is None:
        return range(len(store))
    lo, hi = window
    starts = store.start
    return [i for i in range(len(store)) if (lo is None or starts[i] >= lo) and (hi is None or starts[i] < hi)]


def stream_summary(store: RecordStore, window=None) -> StreamSummary:
    requests = replies = success = aborted = 0
    errors = dict.fromkeys(ERROR_CLASSES, 0)
    outcome, status = store.outcome, store.status
    late = []
    for i in _indices(store, window):
        o = outcome[i]
        if o in _NOT_ATTEMPTS:
            if o == Outcome.ABORTED:
                aborted += 1
            continue
        requests += 1
        late.append(store.start[i] - store.scheduled[i])
        if o == Outcome.SUCCESS:
            replies += 1
            success += 1
            continue
        if o == Outcome.HTTP_ERROR:
            replies += 1
        errors[error_class(o, status[i])] += 1  # type: ignore[index]
    return StreamSummary(requests, replies, success, errors, aborted, store.interval, store.timeout,
                         lateness_summary(late))


def lateness_summary(late: list[float]) -> dict[str, float] | None:
    """avg, p99 and max of launch lateness (s in, ms out); None when nothing was launched."""
    if not late:
        return None
    late = sorted(late)
    return {"avg": 1000 * math.fsum(late) / len(late), "p99": 1000 * _pct(late, 99), "max": 1000 * late[-1]}


def find_outages(store: RecordStore, window=None, *, load: RecordStore | None = None) -> list[Outage]:
    """Outages of one stream (see the module doc). `load`: also count load failures inside each."""
    n = len(store)
    outcome, start, end, served = store.outcome, store.start, store.end, store.served_by
    succ = sorted((end[i], served[i]) for i in range(n) if outcome[i] == Outcome.SUCCESS)
    ends = [e for e, _ in succ]
    gaps: dict[int, list] = {}
    for i in range(n):
        o = outcome[i]
        if o == Outcome.SUCCESS or o in _NOT_ATTEMPTS:
            continue
        s = start[i]
        g = bisect_right(ends, s)
        acc = gaps.get(g)
        e = end[i] if not math.isnan(end[i]) else s
        cls = error_class(o, store.status[i])
        if acc is None:
            gaps[g] = [s, e, 1, {cls: 1}]
        else:
            if s < acc[0]:
                acc[0] = s
            if e > acc[1]:
                acc[1] = e
            acc[2] += 1
            acc[3][cls] = acc[3].get(cls, 0) + 1
    out = []
    for g in sorted(gaps):
        first, last_end, count, by_class = gaps[g]
        if not _in_window(first, window):
            continue
        before = succ[g - 1] if g > 0 else None
        after = succ[g] if g < len(succ) else None
        t_start = before[0] if before else None
        t_end = after[0] if after else None
        lo = t_start if t_start is not None else first
        hi = t_end if t_end is not None else last_end
        out.append(Outage(
            stream=store.stream, start=t_start, end=t_end, duration=max(0.0, hi - lo),
            open=before is None or after is None, resolution=store.interval, first_failure=first,
            errors=count, errors_by_class=by_class,
            served_by_before=store.names[before[1]] if before else None,
            served_by_after=store.names[after[1]] if after else None,
        ))
    if load is not None and load is not store and out:
        lstart, lout = load.start, load.outcome
        fails = sorted(lstart[i] for i in range(len(load))
                       if lout[i] != Outcome.SUCCESS and lout[i] not in _NOT_ATTEMPTS)
        for o in out:
            lo = o.start if o.start is not None else o.first_failure
            hi = o.end if o.end is not None else math.inf
            o.load_errors = bisect_right(fails, hi) - bisect_right(fails, lo)
    return out


def summarize(result: LoadRecording, window: tuple[float | None, float | None] | None = None) -> LoadSummary:
    """Summary of a builtin run, or of the part of it in `window` (seconds from the run start)."""
    spec = result.spec
    if result.summary is not None and result.load is None:  # httperf: no records, only its report
        if window is not None:
            raise ValueError("httperf runs have no per-connection records: no window summaries")
        return result.summary
    s = LoadSummary(
        engine=result.engine,
        url=spec.target.url if spec else result.url,
        host_header=spec.target.host_header if spec else result.host_header,
        target_rate=spec.rate if spec else 0.0,
        num_conns=spec.num_conns if spec else 0,
        timeout=spec.timeout if spec else 0.0,
        window=tuple(window) if window else None,  # type: ignore[arg-type]
        stopped=result.stopped,
        notes=list(result.notes),
    )
    load = result.load
    if load is not None:
        s.per_second = []
        if len(load):
            _fill_load(s, load, window)
    if window is None:
        s.cpu_user_s, s.cpu_system_s = result.cpu_user_s, result.cpu_system_s
        s.max_inflight = result.max_inflight or None
        if load is None or not len(load):
            s.duration_s = result.wall_duration
    outage_store = result.probe if result.probe is not None and len(result.probe) else load
    if result.probe is not None:
        s.probe = stream_summary(result.probe, window)
    if outage_store is not None:
        s.outages = find_outages(outage_store, window, load=load)
        s.outage_stream = outage_store.stream
        s.resolution_s = outage_store.interval
    _judge(s)
    return s


def _fill_load(s: LoadSummary, load: RecordStore, window) -> None:
    idx = _indices(load, window)
    outcome, status = load.outcome, load.status
    sched, start, connected, first, end = load.scheduled, load.start, load.connected, load.first_byte, load.end
    conn_times, connect, response, transfer, late, starts = [], [], [], [], [], []
    first_scheduled = math.inf
    buckets: dict[int, SecondBucket] = {}
    served: dict[int, int] = {}
    last_end = -math.inf
    for i in idx:
        o = outcome[i]
        if o in _NOT_ATTEMPTS:
            if o == Outcome.ABORTED:
                s.aborted += 1
            continue
        st = start[i]
        starts.append(st)
        late.append(st - sched[i])
        first_scheduled = min(first_scheduled, sched[i])
        s.requests += 1
        b = buckets.get(int(st))
        if b is None:
            b = buckets[int(st)] = SecondBucket(int(st))
        b.attempted += 1
        e = end[i]
        if e > last_end:
            last_end = e
        c = connected[i]
        if c == c:  # not NaN
            connect.append(c - st)
        if o == Outcome.SUCCESS or o == Outcome.HTTP_ERROR:
            code = status[i]
            s.replies += 1
            b.replies += 1
            k = f"{code // 100}xx"
            if k in s.status:
                s.status[k] += 1
            conn_times.append(e - st)
            f = first[i]
            if f == f:
                if c == c:
                    response.append(f - c)
                transfer.append(e - f)
            if o == Outcome.SUCCESS:
                s.success += 1
                b.success += 1
                sb = load.served_by[i]
                if sb:
                    served[sb] = served.get(sb, 0) + 1
                continue
        cls = error_class(o, status[i])
        s.errors[cls] += 1  # type: ignore[index]
        b.errors[cls] = b.errors.get(cls, 0) + 1  # type: ignore[index]
    s.conn_time_ms = Stats.of_seconds(conn_times)
    s.connect_ms = 1000 * math.fsum(connect) / len(connect) if connect else None
    s.response_ms = 1000 * math.fsum(response) / len(response) if response else None
    s.transfer_ms = 1000 * math.fsum(transfer) / len(transfer) if transfer else None
    s.lateness_ms = lateness_summary(late)
    s.achieved_rate = achieved_rate(starts, first_scheduled if starts else None)
    if starts:
        lo = window[0] if window and window[0] is not None else 0.0
        s.duration_s = max(last_end, max(starts)) - lo
    if buckets:
        lo_t, hi_t = min(buckets), max(buckets)
        s.per_second = [buckets.get(t) or SecondBucket(t) for t in range(lo_t, hi_t + 1)]
    else:
        s.per_second = []
    s.served_by = {load.names[k]: v for k, v in sorted(served.items(), key=lambda kv: -kv[1])}  # type: ignore[misc]


def achieved_rate(starts: list[float], first_scheduled: float | None = None) -> float | None:
    """Launches per second: (n - 1) / (last launch - first scheduled launch).

    Launches are never early, so a loop that falls behind, or starts late, shows as a longer
    span (without `first_scheduled`, the first launch). Timer jitter of the last launch alone
    can lower it on a short run: the validity rule allows 5 ms of it.
    """
    if len(starts) < 2:
        return None
    first = min(starts) if first_scheduled is None else min(first_scheduled, min(starts))
    span = max(starts) - first
    return (len(starts) - 1) / span if span > 0 else None


def _slip(s: LoadSummary) -> float:
    """Seconds the launches fell behind the schedule over the run, at the achieved rate."""
    n = s.requests
    if n < 2 or not s.achieved_rate:
        return 0.0
    return (n - 1) / s.achieved_rate - (n - 1) / s.target_rate


def _judge(s: LoadSummary) -> None:
    """Validity (see the module doc): rate, lateness of both streams, client-side resource errors."""
    if s.num_conns and s.requests == 0:
        s.invalid_reasons.append("no connection was attempted")
    if (s.achieved_rate_judged and s.target_rate and s.achieved_rate is not None
            and s.achieved_rate < s.target_rate * (1 - RATE_TOLERANCE) and _slip(s) > RATE_SLACK_S):
        short = 100.0 * (1 - s.achieved_rate / s.target_rate)
        s.invalid_reasons.append(
            f"achieved rate {s.achieved_rate:.1f} conn/s is {short:.1f} % under the target {s.target_rate:g} conn/s "
            f"(the load generator could not hold its rate)")
    if s.requests and s.target_rate:
        if s.lateness_ms is None:
            s.notes.append("launch lateness not measured (this engine does not report launch times): "
                           "the open-loop schedule was not checked")
        else:
            _judge_lateness(s, "load", s.lateness_ms, max(LATE_P99_FLOOR_S, 1.0 / s.target_rate),
                            "max(50 ms, 1/rate)", "the engine fell behind its open-loop schedule and caught up "
                            "in bursts, so failures during the stall were not measured")
    res = s.client_resource_errors
    if res:
        parts = ", ".join(f"{c} {s.errors[c]}" for c in CLIENT_RESOURCE_CLASSES if s.errors.get(c))
        s.invalid_reasons.append(f"{res} client-side resource errors ({parts}): the client ran out of file "
                                 f"descriptors or local ports")
    if s.probe is not None:
        if s.probe.lateness_ms is not None:
            _judge_lateness(s, "probe", s.probe.lateness_ms, s.probe.interval, "its interval",
                            "downtime is not known to within the probe interval")
        pres = sum(s.probe.errors.get(c, 0) for c in CLIENT_RESOURCE_CLASSES)
        if pres:
            parts = ", ".join(f"{c} {s.probe.errors[c]}" for c in CLIENT_RESOURCE_CLASSES if s.probe.errors.get(c))
            s.invalid_reasons.append(f"{pres} client-side resource errors on the probe stream ({parts}): "
                                     f"its failures are the client's, not the service's")
    s.valid = not s.invalid_reasons


def _judge_lateness(s: LoadSummary, stream: str, late_ms: dict[str, float], bound_s: float, bound_name: str,
                    why: str) -> None:
    bound_ms = 1000.0 * bound_s
    if late_ms["p99"] > bound_ms:
        s.invalid_reasons.append(f"{stream} launches were late against the schedule: p99 lateness "
                                 f"{late_ms['p99']:.1f} ms is over {bound_ms:.0f} ms ({bound_name}); {why}")
    if late_ms["max"] > 1000.0 * LATE_MAX_S:
        s.invalid_reasons.append(f"a {stream} launch was {late_ms['max'] / 1000:.2f} s late (the bound is "
                                 f"{LATE_MAX_S:g} s): the {stream} stream stalled; {why}")

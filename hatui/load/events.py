"""Live view of a load run: counter snapshots and the events listeners receive.

Listeners are plain callables `fn(event)` called on the event loop (keep them cheap: post a
message, append to a list). `LoadRun.events()` gives the same events as an async iterator.
Times (`t`) are seconds from the run start on the monotonic clock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, ClassVar, Iterable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamCounters:
    """Cumulative counts of one stream (load or probe)."""

    launched: int = 0  # connections attempted so far
    completed: int = 0  # finished (reply or error)
    inflight: int = 0
    replies: int = 0
    success: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # by class, non-zero classes only
    aborted: int = 0

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def minus(self, other: "StreamCounters") -> "StreamCounters":
        """Counts between two snapshots (inflight is this snapshot's)."""
        errs = {k: v - other.errors.get(k, 0) for k, v in self.errors.items() if v - other.errors.get(k, 0)}
        return StreamCounters(self.launched - other.launched, self.completed - other.completed, self.inflight,
                              self.replies - other.replies, self.success - other.success, errs,
                              self.aborted - other.aborted)

    def to_dict(self) -> dict[str, Any]:
        return {"launched": self.launched, "completed": self.completed, "inflight": self.inflight,
                "replies": self.replies, "success": self.success, "errors": dict(self.errors),
                "aborted": self.aborted}


@dataclass(frozen=True, slots=True)
class Counters:
    """A snapshot of a run. `load` is None for a probe-only run or while httperf runs (it reports
    only at the end)."""

    state: str  # new | running | stopping | done
    elapsed: float
    load: StreamCounters | None
    probe: StreamCounters | None
    target_rate: float = 0.0
    num_conns: int = 0


class LoadEvent:
    kind: ClassVar[str] = "event"


@dataclass(frozen=True, slots=True)
class LoadStarted(LoadEvent):
    t0_monotonic: float
    t0_wall: float
    engine: str
    kind: ClassVar[str] = "started"


@dataclass(frozen=True, slots=True)
class Tick(LoadEvent):
    """Once a second: cumulative counters and the counts of the last second (by completion time)."""

    second: int  # the second that just ended: [second, second + 1)
    counters: Counters
    load_last: StreamCounters | None
    probe_last: StreamCounters | None
    kind: ClassVar[str] = "tick"


@dataclass(frozen=True, slots=True)
class OutageStarted(LoadEvent):
    """Live: the outage stream (probe if any, else load) saw a failure after a success.

    `t` is the end of the last success before it (None when there was none yet)."""

    stream: str
    t: float | None
    detected_at: float
    error_class: str
    served_by_before: str | None
    kind: ClassVar[str] = "outage-started"


@dataclass(frozen=True, slots=True)
class OutageEnded(LoadEvent):
    """Live: first success after an outage. The summary recomputes outages from the records."""

    stream: str
    t: float
    duration: float | None
    errors: int
    served_by_before: str | None
    served_by_after: str | None
    kind: ClassVar[str] = "outage-ended"


@dataclass(frozen=True, slots=True)
class ServedByChanged(LoadEvent):
    """Live: a success named a different node than the previous success (e.g. first reply from the slave)."""

    stream: str
    t: float
    before: str | None
    after: str
    kind: ClassVar[str] = "served-by-changed"


@dataclass(frozen=True, slots=True)
class LoadFinished(LoadEvent):
    summary: Any  # LoadSummary
    kind: ClassVar[str] = "finished"


Listener = Callable[[LoadEvent], None]

_QUEUE_MAX = 10_000


class EventHub:
    """Fan-out of events to callbacks and to async iterators (bounded queues; a slow reader
    loses the oldest events, never blocks the run)."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self._queues: list[asyncio.Queue] = []
        self.closed = False

    def add(self, fn: Listener) -> None:
        self.listeners.append(fn)

    def remove(self, fn: Listener) -> None:
        try:
            self.listeners.remove(fn)
        except ValueError:
            pass

    def emit(self, event: LoadEvent) -> None:
        for fn in list(self.listeners):
            try:
                fn(event)
            except Exception:  # a broken listener must not break the run
                log.exception("load event listener %r failed", fn)
        self._put_all(event)

    def close(self) -> None:
        self.closed = True
        self._put_all(None)  # None ends every iterator

    def _put_all(self, item: LoadEvent | None) -> None:
        """Into every reader's queue; a full one drops its oldest item rather than block the run."""
        for q in self._queues:
            if q.full():
                try:
                    q.get_nowait()
                except asyncio.QueueEmpty:
                    pass
            q.put_nowait(item)

    async def iterate(self) -> AsyncIterator[LoadEvent]:
        q: asyncio.Queue = asyncio.Queue(_QUEUE_MAX)
        if self.closed:
            return
        self._queues.append(q)
        try:
            while True:
                ev = await q.get()
                if ev is None:
                    return
                yield ev
        finally:
            try:
                self._queues.remove(q)
            except ValueError:
                pass


class EventSource:
    """The listener side of a run (LoadRun, ShardedRun, HttperfRun): needs `_hub` and `_state`."""

    _hub: EventHub
    _state: str
    _stop_requested: bool | None  # None, or the abort flag when stop() came before run()

    def _open_hub(self, listeners: Iterable[Listener]) -> None:
        """For __init__: a new run with its listeners, not started, no stop asked."""
        self._hub = EventHub()
        for fn in listeners:
            self._hub.add(fn)
        self._state = "new"
        self._stop_requested = None

    def _stop_now(self, abort: bool) -> bool:
        """The head of every `stop()`: False before `run()` (the stop is kept for run() to do)
        and after the end (nothing left to stop)."""
        if self._state == "new":
            self._stop_requested = abort
            return False
        return self._state != "done"

    @property
    def state(self) -> str:
        return self._state

    def add_listener(self, fn: Listener) -> None:
        self._hub.add(fn)

    def remove_listener(self, fn: Listener) -> None:
        self._hub.remove(fn)

    def events(self) -> AsyncIterator[LoadEvent]:
        """Async iterator of this run's events; ends after `LoadFinished`."""
        return self._hub.iterate()


class ProcessRun(EventSource):
    """What the runs whose load comes from other processes (HttperfRun, ShardedRun) share: the
    probe stream runs here, in `_probe_run` (a LoadRun, or None without a probe)."""

    spec: Any  # LoadSpec
    summary: Any  # LoadSummary | None
    _probe_run: Any
    _stopped: bool

    def _counters(self, elapsed: float, load: StreamCounters | None) -> Counters:
        probe = self._probe_run.counters.probe if self._probe_run is not None else None
        return Counters(state=self._state, elapsed=elapsed, load=load, probe=probe,
                        target_rate=self.spec.rate, num_conns=self.spec.num_conns)

    def _begin_stop(self, abort: bool) -> bool:
        """The head of `stop()`: True when the senders must be told to stop now."""
        if not self._stop_now(abort):
            return False
        self._state = "stopping"
        self._stopped = True
        return True

    async def _end_probe(self, probe_task: asyncio.Future | None) -> None:
        """Stop the probe stream and wait for it (being cancelled is a normal end for it)."""
        if probe_task is None:
            return
        self._probe_run.stop()
        try:
            await probe_task
        except asyncio.CancelledError:
            pass

    def _finish(self, summary: Any) -> Any:
        """The end of `run()`: keep the summary, hand it to the listeners, end the iterators."""
        self.summary = summary
        self._hub.emit(LoadFinished(summary))
        self._hub.close()
        return summary

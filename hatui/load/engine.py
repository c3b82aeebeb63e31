"""The builtin open-loop load engine.

Model (httperf's): one new TCP connection per request, `GET <uri> HTTP/1.1` with a Host header
and `Connection: close`, launched at fixed times `start + i / rate` whatever the responses do
(no coordinated omission). When the loop is late, due connections are launched at once and the
lateness is in each record (`start - scheduled`).

Hot path: non-blocking sockets registered in one private epoll set, whose fd is watched by the
event loop (`loop.add_reader`), so it runs on any asyncio loop (uvloop, the default loop,
Textual's) without a transport, future or timer per connection. Launches happen in a tick timer
that fires at the next scheduled launch (at most every millisecond, batching launches at high
rates); timeouts are checked in launch order, which is deadline order. Every callback does a
bounded amount of work, so the loop stays responsive.

Reply times come from the kernel where it can say (SO_TIMESTAMPNS on Linux: the time the data
reached the host), so they do not include the loop's latency (a busy TUI); other times are taken
when the engine handles the event. One socket keeps timestamping enabled for the whole run, or
the kernel would switch it on and off (a costly code patch) for every connection.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import math
import resource
import select
import selectors
import socket
import struct
import sys
import time

from hatui.load.events import (Counters, EventSource, Listener, LoadFinished, LoadStarted,
                               OutageEnded, OutageStarted, ServedByChanged, StreamCounters, Tick)
from hatui.load.records import ERROR_CLASSES, Outcome, RecordStore, error_class, outcome_of_errno
from hatui.load.spec import (MAX_DURATION_S, LoadSpec, LoadSpecError, ProbeSpec, ServedBy, build_request,
                             parse_url, resolve)
from hatui.load.summary import LoadRecording, LoadSummary, summarize

_monotonic = time.monotonic
_socket = socket.SocketType  # the C type: no Python-level __init__/close on the hot path
_STREAM = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0) | getattr(socket, "SOCK_CLOEXEC", 0)
_NEED_SETBLOCKING = not hasattr(socket, "SOCK_NONBLOCK")
_EINPROGRESS = errno.EINPROGRESS
_SOL_SOCKET, _SO_ERROR = socket.SOL_SOCKET, socket.SO_ERROR

_HAVE_EPOLL = hasattr(select, "epoll")
EV_IN = select.EPOLLIN if _HAVE_EPOLL else 1
EV_OUT = select.EPOLLOUT if _HAVE_EPOLL else 4
_EV_ERR = (select.EPOLLERR | select.EPOLLHUP) if _HAVE_EPOLL else 0

# SO_TIMESTAMPNS (Linux): each read returns the time its data reached the host (CLOCK_REALTIME).
_SO_TIMESTAMPNS = 35 if sys.platform.startswith("linux") else None
_ANC_SIZE = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
_TS = struct.Struct("ll")  # struct timespec
_unpack_ts = _TS.unpack_from

MIN_TICK_S = 0.001  # launches are batched at most every millisecond
_TIMER_SLACK_S = 0.0005
BUSY_RATE = 500.0  # conn/s from which ticks also read replies (else only the loop's reader does)
MAX_LAUNCH_PER_TICK = 64  # ~5 ms of work at most: the loop stays responsive when behind
MAX_EVENTS_PER_DRAIN = 256
MAX_EXPIRE_PER_TICK = 256
MAX_HEAD = 65536  # a reply head bigger than this is "other"
KEEP_BODY = 65536  # bytes of body kept to find "served by"
HARD_GRACE_S = 5.0

_CONNECTING, _SENDING, _READING = 0, 1, 2


class _SelectorPoller:
    """epoll's interface over `selectors` (platforms without epoll)."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()

    def fileno(self) -> int:
        return self._sel.fileno()

    def register(self, fd: int, ev: int) -> None:
        self._sel.register(fd, self._mask(ev))

    def modify(self, fd: int, ev: int) -> None:
        self._sel.modify(fd, self._mask(ev))

    def unregister(self, fd: int) -> None:
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    def poll(self, timeout: float, maxevents: int) -> list[tuple[int, int]]:
        out = []
        for key, mask in self._sel.select(0)[:maxevents]:
            out.append((key.fd, (EV_IN if mask & selectors.EVENT_READ else 0)
                        | (EV_OUT if mask & selectors.EVENT_WRITE else 0)))
        return out

    def close(self) -> None:
        self._sel.close()

    @staticmethod
    def _mask(ev: int) -> int:
        return (selectors.EVENT_READ if ev & EV_IN else 0) | (selectors.EVENT_WRITE if ev & EV_OUT else 0)


class _Stream:
    __slots__ = ("name", "store", "rate", "limit", "next", "timeout", "request", "queue", "inflight",
                 "counts", "http4", "http5", "launched", "offset", "step")

    def __init__(self, name: str, rate: float, limit: float, timeout: float, request: bytes,
                 offset: int = 0, step: int = 1):
        self.name = name
        self.store = RecordStore(name, 1.0 / rate, timeout)
        self.rate = rate
        # this stream launches connections offset, offset + step, ... of the schedule (a shard)
        self.offset = offset
        self.step = step
        self.limit = limit  # local launch numbers < limit (math.inf: until told)
        self.next = 0  # next local launch number
        self.timeout = timeout
        self.request = request
        self.queue: collections.deque[_Conn] = collections.deque()  # in launch (= deadline) order
        self.inflight = 0
        self.counts = [0] * (max(Outcome) + 1)
        self.http4 = 0
        self.http5 = 0
        self.launched = 0

    def snapshot(self) -> StreamCounters:
        c = self.counts
        errors = {}
        for o in (Outcome.TIMEOUT, Outcome.SOCKET_TIMEOUT, Outcome.REFUSED, Outcome.RESET, Outcome.FD_UNAVAIL,
                  Outcome.ADDR_UNAVAIL, Outcome.FTAB_FULL, Outcome.BAD_REPLY, Outcome.OTHER):
            if c[o]:
                k = error_class(o)
                errors[k] = errors.get(k, 0) + c[o]  # type: ignore[index]
        if self.http4:
            errors["http-4xx"] = self.http4
        if self.http5:
            errors["http-5xx"] = self.http5
        errors = {k: errors[k] for k in ERROR_CLASSES if k in errors}
        completed = sum(c) - c[Outcome.PENDING] - c[Outcome.ABORTED]
        return StreamCounters(launched=self.launched - c[Outcome.ABORTED], completed=completed,
                              inflight=self.inflight, replies=c[Outcome.SUCCESS] + c[Outcome.HTTP_ERROR],
                              success=c[Outcome.SUCCESS], errors=errors, aborted=c[Outcome.ABORTED])


class _Conn:
    __slots__ = ("sock", "fd", "st", "idx", "deadline", "state", "buf", "nrecv", "hlen", "clen", "chunked",
                 "status", "served", "tail", "pending", "done", "last")

    def __init__(self, sock, fd, st, idx, deadline, state):
        self.sock = sock
        self.fd = fd
        self.st = st
        self.idx = idx
        self.deadline = deadline
        self.state = state
        self.buf = None
        self.nrecv = 0
        self.hlen = -1
        self.clen = -1
        self.chunked = False
        self.status = 0
        self.served = None
        self.tail = b""
        self.pending = None
        self.done = False
        self.last = 0.0  # arrival time of the latest data


def _cpu_times() -> tuple[float, float]:
    """(user, system) CPU seconds of this process, at microsecond resolution."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def default_max_inflight() -> int:
    """Open connections allowed: the fd limit minus a reserve for the rest of the process."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        soft = 1024
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 1 << 20
    return max(16, soft - min(256, soft // 4))


class LoadRun(EventSource):
    """One builtin run: `summary = await LoadRun(spec, probe=ProbeSpec()).run()`.

    - `run()` runs on the current loop and returns the `LoadSummary` (also in `.summary`);
      `.result` keeps the records for `summarize(result, window)`.
    - `stop()` stops launching and lets in-flight connections finish (within their timeout);
      `stop(abort=True)` also cuts them (recorded as aborted, not counted). The summary covers
      what ran either way. Cancelling the task running `run()` aborts the same way.
    - `counters` is a snapshot at any time; `add_listener(fn)` / `events()` give live events
      (`LoadStarted`, `Tick` each second, `OutageStarted`/`OutageEnded`, `ServedByChanged`,
      `LoadFinished`).
    - `spec=None` runs the probe stream alone (`probe.duration` s, or until `stop()`).
    """

    engine = "builtin"

    def __init__(self, spec: LoadSpec | None, *, probe: ProbeSpec | None = None,
                 listeners: tuple[Listener, ...] | list[Listener] = (), address: tuple[int, tuple] | None = None,
                 url: str | None = None, host_header: str | None = None, shard: tuple[int, int] = (0, 1),
                 start_at: float | None = None):
        if spec is None and probe is None:
            raise LoadSpecError("nothing to run: no load and no probe stream")
        self.spec = spec
        self.probe_spec = probe
        if spec is not None:
            self.target = spec.target
        elif url is not None:
            self.target = parse_url(url, host_header)
        else:
            raise LoadSpecError("a probe-only run needs the URL")
        self._address = address
        offset, step = shard
        if not (isinstance(step, int) and step >= 1 and isinstance(offset, int) and 0 <= offset < step):
            raise LoadSpecError(f"bad shard {shard!r}: expected (offset, step) with 0 <= offset < step")
        self._shard = (offset, step)
        self._start_at = start_at  # time.monotonic() to start at (shared by the shards of one run)
        self._open_hub(listeners)
        self._streams: list[_Stream] = []
        self._load: _Stream | None = None
        self._probe: _Stream | None = None
        self._conns: dict[int, _Conn] = {}
        self._busy = False
        self._reader_on = False
        self._kts = False
        self._kts_keeper = None
        self._rt0 = 0.0
        self._nopen = 0
        self._max_seen = 0
        self._t0 = 0.0
        self._t0_wall = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick_handle = None
        self._sec_handle = None
        self._hard_handle = None
        self._done_fut: asyncio.Future | None = None
        self._stopped_early = False
        self._notes: list[str] = []
        self.result: LoadRecording | None = None
        self.summary: LoadSummary | None = None
        # live outage tracking on the "watch" stream (probe if any, else load)
        self._watch: _Stream | None = None
        self._down = False
        self._down_errors = 0
        self._last_ok_t: float | None = None
        self._last_ok_sb = 0
        self._sec_index = 0
        self._prev: Counters | None = None

    # -- public ------------------------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        elapsed = (_monotonic() - self._t0) if self._state in ("running", "stopping") else (
            self.result.wall_duration if self.result else 0.0)
        return Counters(state=self._state, elapsed=elapsed,
                        load=self._load.snapshot() if self._load else None,
                        probe=self._probe.snapshot() if self._probe else None,
                        target_rate=self.spec.rate if self.spec else 0.0,
                        num_conns=self.spec.num_conns if self.spec else 0)

    @property
    def t0_monotonic(self) -> float:
        return self._t0

    def stop(self, abort: bool = False) -> None:
        if not self._stop_now(bool(abort)):
            return
        for st in self._streams:
            if st.next < st.limit:
                if st is self._load:
                    self._stopped_early = True
                st.limit = st.next
        self._state = "stopping"
        if abort:
            self._abort_all()
        self._reschedule(0.0)

    async def run(self) -> LoadSummary:
        if self._state != "new":
            raise RuntimeError("a LoadRun runs once")
        loop = self._loop = asyncio.get_running_loop()
        await self._resolve(loop)
        if self._start_at is not None:  # before any resource is taken: a cancel here leaves nothing
            wait = self._start_at - _monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, 60.0))
        self._make_streams()
        self._open_poller()
        cpu0 = self._start(loop)
        cancelled = False
        try:
            await self._done_fut
        except asyncio.CancelledError:
            cancelled = True
            self._stopped_early = self._stopped_early or any(st.next < st.limit for st in self._streams
                                                             if st is self._load)
            self._notes.append("the run was cancelled; in-flight connections were aborted")
        finally:
            self._teardown()
            self._record_result(cpu0)
        if cancelled:
            raise asyncio.CancelledError
        return self.summary

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._address is None:
            if self.target.is_ip:
                self._address = resolve(self.target)  # numeric: no lookup
            else:
                self._address = await loop.run_in_executor(None, resolve, self.target)
        self._family, self._addr = self._address

    def _make_streams(self) -> None:
        """The load stream (this shard's part of it) and the probe stream, as the specs ask."""
        spec, probe = self.spec, self.probe_spec
        request = build_request(self.target)
        if spec is not None and spec.num_conns > 0:
            offset, step = self._shard
            count = max(0, -(-(spec.num_conns - offset) // step))
            self._load = _Stream("load", spec.rate, count, spec.timeout, request, offset, step)
            self._streams.append(self._load)
        if probe is not None:
            limit = math.inf
            if self._load is None and probe.duration is not None:
                limit = int(probe.duration / probe.interval + 1e-9) + 1
            self._probe = _Stream("probe", 1.0 / probe.interval, limit, probe.timeout, request)
            self._streams.append(self._probe)
        if not self._streams:
            raise LoadSpecError("nothing to run: zero connections and no probe stream")
        self._watch = self._probe or self._load
        self._busy = sum(st.rate for st in self._streams) >= BUSY_RATE
        self._max_open = (spec.max_inflight if spec and spec.max_inflight else default_max_inflight())
        sb = spec.served_by if spec is not None else ServedBy()
        self._sb_header, self._sb_rx = sb.compiled() if sb is not None else (None, None)

    def _open_poller(self) -> None:
        """The poller, and kernel receive timestamps when the platform has them."""
        self._epoll = _HAVE_EPOLL
        self._poller = select.epoll() if _HAVE_EPOLL else _SelectorPoller()
        self._kts = _SO_TIMESTAMPNS is not None and _ANC_SIZE > 0
        self._kts_keeper = None
        if self._kts:
            try:
                self._kts_keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._kts_keeper.setsockopt(_SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            except OSError:
                self._kts = False
                if self._kts_keeper is not None:
                    self._kts_keeper.close()
                    self._kts_keeper = None

    def _start(self, loop: asyncio.AbstractEventLoop) -> tuple[float, float]:
        """Start the clock and the timers; returns the process's CPU times at the start."""
        self._reader_on = False
        self._set_reader(True)
        self._done_fut = loop.create_future()
        cpu0 = _cpu_times()
        self._t0 = _monotonic() if self._start_at is None else self._start_at
        self._t0_wall = time.time() - (_monotonic() - self._t0)
        self._rt0 = self._t0_wall
        self._state = "running"
        self._prev = self.counters
        self._hub.emit(LoadStarted(self._t0, self._t0_wall, self.engine))
        self._tick_handle = loop.call_soon(self._tick)
        self._sec_handle = loop.call_later(1.0, self._second)
        self._hard_handle = loop.call_later(self._hard_bound(), self._hard_stop)
        if self._stop_requested is not None:
            self.stop(self._stop_requested)
        return cpu0

    def _record_result(self, cpu0: tuple[float, float]) -> None:
        """Keep what the run recorded, summarize it, tell the listeners and end their iterators."""
        cpu1 = _cpu_times()
        wall = _monotonic() - self._t0
        self._state = "done"
        self.result = LoadRecording(
            engine=self.engine, spec=self.spec, probe_spec=self.probe_spec,
            load=self._load.store if self._load else None, probe=self._probe.store if self._probe else None,
            t0_monotonic=self._t0, t0_wall=self._t0_wall, wall_duration=wall,
            cpu_user_s=cpu1[0] - cpu0[0], cpu_system_s=cpu1[1] - cpu0[1],
            stopped=self._stopped_early, max_inflight=self._max_seen, notes=self._notes,
            url=self.target.url, host_header=self.target.host_header)
        try:
            self.summary = summarize(self.result)
            self._hub.emit(LoadFinished(self.summary))
        finally:
            self._hub.close()

    # -- scheduling --------------------------------------------------------------------------

    def _hard_bound(self) -> float:
        if self.spec is not None and self.spec.num_conns > 0:
            base = self.spec.planned_duration + self.spec.timeout
        elif self.probe_spec is not None and self.probe_spec.duration is not None:
            base = self.probe_spec.duration
        else:
            base = MAX_DURATION_S
        probe_t = self.probe_spec.timeout if self.probe_spec else 0.0
        return base + probe_t + HARD_GRACE_S + 0.05 * base

    def _hard_stop(self) -> None:
        self._hard_handle = None
        if self._state in ("running", "stopping"):
            self._notes.append("the run hit its hard time bound; in-flight connections were aborted")
            self.stop(abort=True)

    def _reschedule(self, delay: float) -> None:
        if self._loop is None or self._state not in ("running", "stopping"):
            return
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self._tick_handle = self._loop.call_later(delay, self._tick) if delay > 0 else self._loop.call_soon(self._tick)

    def _set_reader(self, on: bool) -> None:
        if on == self._reader_on:
            return
        if on:
            self._loop.add_reader(self._poller.fileno(), self._drain)
        else:
            self._loop.remove_reader(self._poller.fileno())
        self._reader_on = on

    def _tick(self) -> None:
        self._tick_handle = None
        if self._state not in ("running", "stopping"):
            return
        t0 = self._t0
        now = _monotonic()
        # realtime of the run start, for kernel timestamps (re-read: follows clock steps)
        self._rt0 = time.time() - (now - t0)
        more = False
        if self._busy:  # at high rates, read what arrived before launching more (bounded)
            for _ in range(4):
                more = self._drain()
                if not more:
                    break
            if self._state not in ("running", "stopping"):
                return
            now = _monotonic()
        nxt = math.inf
        budget = MAX_EXPIRE_PER_TICK
        for st in self._streams:
            q = st.queue
            while q:
                c = q[0]
                if c.done:
                    q.popleft()
                elif c.deadline <= now:
                    if not budget:
                        more = True  # many timed out at once: the rest in the next tick
                        break
                    budget -= 1
                    q.popleft()
                    self._finish(c, Outcome.TIMEOUT, 0, now - t0)
                else:
                    if c.deadline < nxt:
                        nxt = c.deadline
                    break
        nxt_launch = math.inf
        for st in self._streams:
            if st.next < st.limit:
                t = self._launch_due(st, now)
                if t < nxt_launch:
                    nxt_launch = t
        if self._check_finished():
            return
        if more:
            nxt_launch = now
        if nxt_launch < nxt:
            nxt = nxt_launch
        if nxt == math.inf:
            return  # waiting for completions, or for stop() (probe-only without duration)
        loop = self._loop
        t = _monotonic()
        if nxt <= t:
            self._tick_handle = loop.call_soon(self._tick)
            return
        # Loops with a cached millisecond clock (uvloop/libuv) time a timer from the start of the
        # current iteration, so it fires early by that staleness: add it, plus half a millisecond
        # of rounding, so the tick is not early (an early tick would cost a second wakeup).
        stale = t - loop.time()
        delay = nxt - t + (stale if 0 < stale < 0.1 else 0.0) + _TIMER_SLACK_S
        if delay < MIN_TICK_S:
            delay = MIN_TICK_S
        self._tick_handle = loop.call_later(delay, self._tick)

    def _launch_due(self, st: _Stream, now: float) -> float:
        """Launch every connection of `st` due by `now`; return the time of the next launch."""
        rate, off, step = st.rate, st.offset, st.step
        j = st.next
        x = (now - self._t0) * rate - off  # connection k is due at k / rate
        due = int(x // step) + 1 if x >= 0 else 0
        if due > st.limit:
            due = st.limit
        budget = MAX_LAUNCH_PER_TICK
        launch = self._launch
        while j < due and budget:
            launch(st, off + j * step)
            j += 1
            budget -= 1
        st.next = j
        if j >= st.limit:
            return math.inf
        if not budget:
            return now  # more are due: come back at once
        return self._t0 + (off + j * step) / rate

    def _check_finished(self) -> bool:
        load, probe = self._load, self._probe
        if probe is not None and load is not None and probe.limit == math.inf:
            if load.next >= load.limit and load.inflight == 0:
                probe.limit = probe.next  # the load is over: the probe stops launching
        for st in self._streams:
            if st.next < st.limit or st.inflight:
                return False
        if self._done_fut is not None and not self._done_fut.done():
            self._done_fut.set_result(None)
        return True

    def _second(self) -> None:
        self._sec_handle = None
        if self._state not in ("running", "stopping"):
            return
        snap = self.counters
        prev = self._prev
        self._hub.emit(Tick(
            second=self._sec_index, counters=snap,
            load_last=snap.load.minus(prev.load) if snap.load and prev and prev.load else snap.load,
            probe_last=snap.probe.minus(prev.probe) if snap.probe and prev and prev.probe else snap.probe))
        self._prev = snap
        self._sec_index += 1
        self._sec_handle = self._loop.call_later(
            max(0.0, self._t0 + self._sec_index + 1 - _monotonic()), self._second)

    # -- connections -------------------------------------------------------------------------

    def _launch(self, st: _Stream, k: int) -> None:
        t = _monotonic()
        t0 = self._t0
        store = st.store
        i = store.add(k / st.rate, t - t0)
        st.launched += 1
        if self._nopen >= self._max_open:
            self._fail_now(st, i, Outcome.FD_UNAVAIL, t - t0)
            return
        try:
            sock = _socket(self._family, _STREAM)
        except OSError as exc:
            self._fail_now(st, i, outcome_of_errno(exc.errno), _monotonic() - t0)
            return
        if _NEED_SETBLOCKING:
            sock.setblocking(False)
        if self._kts:
            try:
                sock.setsockopt(_SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            except OSError:
                self._kts = False
        fd = sock.fileno()
        try:
            err = sock.connect_ex(self._addr)
        except OSError as exc:
            err = exc.errno
        if err != _EINPROGRESS and err != 0:
            sock.close()
            self._fail_now(st, i, outcome_of_errno(err), _monotonic() - t0)
            return
        req = st.request
        t_conn = _monotonic()
        try:
            n = sock.send(req)  # locally (loopback, veth) the handshake is done by now
        except BlockingIOError:
            c = _Conn(sock, fd, st, i, t + st.timeout, _CONNECTING)
            ev = EV_OUT
        except OSError as exc:
            sock.close()
            self._fail_now(st, i, outcome_of_errno(exc.errno), _monotonic() - t0)
            return
        else:
            store.connected[i] = t_conn - t0  # the send went through: connected before it
            if n < len(req):
                c = _Conn(sock, fd, st, i, t + st.timeout, _SENDING)
                c.pending = req[n:]
                ev = EV_OUT
            else:
                c = _Conn(sock, fd, st, i, t + st.timeout, _READING)
                ev = EV_IN
        self._poller.register(fd, ev)
        self._conns[fd] = c
        st.queue.append(c)
        st.inflight += 1
        self._nopen += 1
        if self._nopen > self._max_seen:
            self._max_seen = self._nopen

    def _drain(self) -> bool:
        """Handle ready sockets (at most MAX_EVENTS_PER_DRAIN); True if more may be ready."""
        try:
            events = self._poller.poll(0, MAX_EVENTS_PER_DRAIN)
        except InterruptedError:
            return True
        except (OSError, ValueError):  # poller closed under us (teardown)
            return False
        if not events:
            return False
        rel = _monotonic() - self._t0
        conns = self._conns
        for fd, ev in events:
            c = conns.get(fd)
            if c is None:
                continue
            if c.state == _READING:
                self._on_readable(c, rel)
            else:
                self._on_writable(c, ev, rel)
        load = self._load
        if load is None or load.next >= load.limit or self._state == "stopping":
            self._check_finished()
        return len(events) >= MAX_EVENTS_PER_DRAIN

    def _on_writable(self, c: _Conn, ev: int, rel: float) -> None:
        sock = c.sock
        if c.state == _CONNECTING:
            if ev & _EV_ERR or not self._epoll:
                err = sock.getsockopt(_SOL_SOCKET, _SO_ERROR)
                if err:
                    self._finish(c, outcome_of_errno(err), 0, rel)
                    return
            c.st.store.connected[c.idx] = rel
            data = c.st.request
        else:
            data = c.pending
        try:
            n = sock.send(data)
        except BlockingIOError:  # writable but not connected yet, or buffer full: wait
            return
        except OSError as exc:
            self._finish(c, outcome_of_errno(exc.errno), 0, rel)
            return
        if n < len(data):
            c.pending = data[n:]
            c.state = _SENDING
            return
        c.pending = None
        c.state = _READING
        self._poller.modify(c.fd, EV_IN)

    def _on_readable(self, c: _Conn, rel: float) -> None:
        sock = c.sock
        kts = self._kts
        while True:
            try:
                if kts:
                    data, anc, _flags, _addr = sock.recvmsg(65536, _ANC_SIZE)
                else:
                    data = sock.recv(65536)
                    anc = None
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as exc:
                self._finish(c, outcome_of_errno(exc.errno), 0, rel)
                return
            if not data:
                self._on_eof(c, rel)
                return
            t = rel
            if anc:
                b = anc[0][2]
                if len(b) >= _TS.size:
                    sec, ns = _unpack_ts(b)
                    t = sec + ns * 1e-9 - self._rt0
                    if t > rel or t < c.st.store.start[c.idx]:
                        t = rel  # clock stepped: fall back to the time we read it
            c.last = t
            if c.buf is None:
                c.st.store.first_byte[c.idx] = t
                c.buf = data
            elif c.hlen < 0 or len(c.buf) - c.hlen < KEEP_BODY:
                c.buf += data
            c.nrecv += len(data)
            if c.hlen < 0:
                if not self._parse_head(c, rel):
                    return
                if c.hlen < 0:
                    continue
            if c.clen >= 0:
                if c.nrecv - c.hlen >= c.clen:
                    self._complete(c)
                    return
            elif c.chunked:
                c.tail = (c.tail + data)[-7:]
                if c.tail == b"\r\n0\r\n\r\n" or (c.nrecv - c.hlen == 5 and c.tail == b"0\r\n\r\n"):
                    self._complete(c)
                    return

    def _parse_head(self, c: _Conn, rel: float) -> bool:
        """Parse the status line and headers once they are complete; False if the reply is bad."""
        buf = c.buf
        p = buf.find(b"\r\n\r\n")
        if p < 0:
            if len(buf) > MAX_HEAD or (len(buf) >= 5 and not buf.startswith(b"HTTP/")):
                self._finish(c, Outcome.BAD_REPLY, 0, rel)
                return False
            return True
        if not buf.startswith(b"HTTP/1.") or buf[8:9] != b" ":
            self._finish(c, Outcome.BAD_REPLY, 0, rel)
            return False
        try:
            status = int(buf[9:12])
        except ValueError:
            status = 0
        if not 100 <= status <= 999:
            self._finish(c, Outcome.BAD_REPLY, 0, rel)
            return False
        head = buf[:p + 2].lower()
        j = head.find(b"\r\ncontent-length:")
        if j >= 0:
            k = head.find(b"\r\n", j + 17)
            try:
                c.clen = int(head[j + 17:k])
            except ValueError:
                self._finish(c, Outcome.BAD_REPLY, 0, rel)
                return False
        else:
            j = head.find(b"\r\ntransfer-encoding:")
            if j >= 0 and b"chunked" in head[j:head.find(b"\r\n", j + 2)]:
                c.chunked = True
        if status < 200 or status == 204 or status == 304:
            c.clen = 0
        hdr = self._sb_header
        if hdr is not None:
            j = head.find(hdr)
            if j >= 0:
                k = head.find(b"\r\n", j + 2)
                name = buf[j + len(hdr):k].strip()
                if name:
                    c.served = name
        c.status = status
        c.hlen = p + 4
        return True

    def _on_eof(self, c: _Conn, rel: float) -> None:
        if c.hlen < 0 or c.clen >= 0:  # no head, or fewer body bytes than Content-Length
            self._finish(c, Outcome.BAD_REPLY, 0, rel)
        elif c.chunked and not c.tail.endswith(b"0\r\n\r\n"):
            self._finish(c, Outcome.BAD_REPLY, 0, rel)
        else:
            self._complete(c)  # body delimited by the close

    def _complete(self, c: _Conn) -> None:
        """A complete reply: its end is the arrival of its last data."""
        status = c.status
        name = c.served
        if name is None and self._sb_rx is not None:
            m = self._sb_rx.search(c.buf, c.hlen)
            if m:
                name = m.group(1)
        if name:
            st = c.st
            st.store.served_by[c.idx] = st.store.name_id(name.decode("ascii", "replace"))
        self._finish(c, Outcome.SUCCESS if status < 400 else Outcome.HTTP_ERROR, status, c.last)

    def _finish(self, c: _Conn, outcome: int, status: int, rel: float) -> None:
        if c.done:
            return
        c.done = True
        st = c.st
        store = st.store
        i = c.idx
        store.end[i] = rel
        store.outcome[i] = outcome
        if status:
            store.status[i] = status
        sock = c.sock
        if sock is not None:
            c.sock = None
            del self._conns[c.fd]
            if not self._epoll:
                self._poller.unregister(c.fd)
            sock.close()
            self._nopen -= 1
        c.buf = None
        st.inflight -= 1
        self._count(st, i, outcome, status, rel)

    def _fail_now(self, st: _Stream, i: int, outcome: int, rel: float) -> None:
        store = st.store
        store.end[i] = rel
        store.outcome[i] = outcome
        self._count(st, i, outcome, 0, rel)

    def _count(self, st: _Stream, i: int, outcome: int, status: int, rel: float) -> None:
        st.counts[outcome] += 1
        if outcome == Outcome.HTTP_ERROR:
            if status < 500:
                st.http4 += 1
            else:
                st.http5 += 1
        if st is not self._watch or outcome == Outcome.ABORTED:
            return
        if outcome == Outcome.SUCCESS:
            sb = st.store.served_by[i]
            names = st.store.names
            if self._down:
                self._down = False
                self._hub.emit(OutageEnded(st.name, rel, None if self._last_ok_t is None else rel - self._last_ok_t,
                                           self._down_errors, names[self._last_ok_sb], names[sb]))
            if sb and sb != self._last_ok_sb:
                if self._last_ok_sb:
                    self._hub.emit(ServedByChanged(st.name, rel, names[self._last_ok_sb], names[sb]))  # type: ignore[arg-type]
                self._last_ok_sb = sb
            if self._last_ok_t is None or rel > self._last_ok_t:
                self._last_ok_t = rel
        else:
            if not self._down:
                self._down = True
                self._down_errors = 0
                self._hub.emit(OutageStarted(st.name, self._last_ok_t, rel,
                                             error_class(outcome, status) or "other",
                                             st.store.names[self._last_ok_sb]))
            self._down_errors += 1

    def _abort_all(self) -> None:
        rel = _monotonic() - self._t0
        for c in list(self._conns.values()):
            self._finish(c, Outcome.ABORTED, 0, rel)
        for st in self._streams:
            st.queue.clear()

    def _teardown(self) -> None:
        for h in (self._tick_handle, self._sec_handle, self._hard_handle):
            if h is not None:
                h.cancel()
        self._tick_handle = self._sec_handle = self._hard_handle = None
        for st in self._streams:
            if st.next < st.limit and st is self._load:
                self._stopped_early = True
            st.limit = st.next
        if self._state in ("running", "stopping"):
            self._rt0 = time.time() - (_monotonic() - self._t0)
            while self._drain():  # replies already here count (bounded: the set only shrinks)
                pass
        self._abort_all()
        if self._loop is not None and self._reader_on:
            try:
                self._set_reader(False)
            except (ValueError, OSError, RuntimeError):
                pass
        self._poller.close()
        if self._kts_keeper is not None:
            self._kts_keeper.close()
            self._kts_keeper = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_load(spec: LoadSpec | None, *, probe: ProbeSpec | None = None, listeners=(),
             use_uvloop: bool = True) -> LoadSummary:
    """Run one builtin load run to completion on a fresh loop (uvloop when installed)."""
    factory = new_event_loop if use_uvloop else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(LoadRun(spec, probe=probe, listeners=listeners).run())

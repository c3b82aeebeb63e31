"""The httperf backend: run the real httperf with the same parameters and read its report.

httperf takes the server as host and port apart (`--server --port --uri`), sends HTTP/1.1
without `Connection: close` and closes after the reply (`--num-calls 1`). Its `--timeout` is a
*progress* timeout for each phase (connect, send, wait for the reply, receive), not a bound on
the whole connection, and without it httperf waits forever: the backend always passes one.
It busy-polls a core whatever the rate, keeps at most FD_SETSIZE (1024) connections open, and
reports only at the end: no records, no per-second series. Run the probe stream beside it
(`probe=ProbeSpec()`) to measure outages.

`parse_httperf(text)` is a pure parser: it returns an `HttperfReport` or raises
`HttperfParseError` with a clear message, never anything else.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from hatui.errors import HatuiError
from hatui.load.events import Counters, Listener, LoadStarted, ProcessRun, Tick
from hatui.load.records import ERROR_CLASSES
from hatui.load.spec import LoadSpec, LoadSpecError, ProbeSpec, resolve
from hatui.load.summary import (RATE_TOLERANCE, STATUS_CLASSES, LoadRecording, LoadSummary, Stats, _judge, find_outages,
                                stream_summary)

HTTPERF = "httperf"
HTTPERF_ERROR_NAMES = ("total", "client-timo", "socket-timo", "connrefused", "connreset", "fd-unavail",
                       "addrunavail", "ftab-full", "other")


class HttperfParseError(HatuiError, ValueError):
    """httperf's output could not be read as a report."""


@dataclass
class HttperfReport:
    connections: int
    requests: int
    replies: int
    test_duration: float
    conn_rate: float | None = None
    conn_period_ms: float | None = None
    max_concurrent: int | None = None
    conn_time_ms: dict[str, float] = field(default_factory=dict)  # min avg max median stddev
    connect_ms: float | None = None
    reply_rate: dict[str, float] = field(default_factory=dict)  # min avg max stddev samples
    response_ms: float | None = None
    transfer_ms: float | None = None
    status: dict[str, int] | None = None  # 1xx..5xx; None when the line is absent
    cpu_user_s: float | None = None
    cpu_system_s: float | None = None
    cpu_total_pct: float | None = None
    errors: dict[str, int] | None = None  # httperf's names; None when no Errors line
    command: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NUM = r"(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|-?nan|-?inf)"
_RE_TOTAL = re.compile(r"^Total:\s+connections\s+(\d+)\s+requests\s+(\d+)\s+replies\s+(\d+)\s+test-duration\s+"
                       + _NUM + r"\s*s\s*$")
_RE_RATE = re.compile(r"^Connection rate:\s+" + _NUM + r"\s+conn/s\s+\(" + _NUM
                      + r"\s+ms/conn,\s+<=(\d+)\s+concurrent connections\)\s*$")
_RE_CPU = re.compile(r"^CPU time \[s\]:\s+user\s+" + _NUM + r"\s+system\s+" + _NUM
                     + r"(?:\s+\(user\s+" + _NUM + r"%\s+system\s+" + _NUM + r"%\s+total\s+" + _NUM + r"%\))?\s*$")
_RE_STATUS = re.compile(r"^Reply status:((?:\s+[1-5]xx=\d+)+)\s*$")
_RE_SAMPLES = re.compile(r"\((\d+) samples\)\s*$")


def _num(s: str) -> float:
    try:
        x = float(s)
    except ValueError:
        raise HttperfParseError(f"not a number: {s!r}") from None
    return x


def _pairs(rest: str, line: str) -> dict[str, float]:
    """`min 0.1 avg 12.7 max 1023.0` -> dict. Raises on a name without a number."""
    toks = rest.split()
    if not toks or len(toks) % 2:
        raise HttperfParseError(f"garbled line: {line.strip()!r}")
    out: dict[str, float] = {}
    for name, value in zip(toks[::2], toks[1::2]):
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name) or not re.fullmatch(_NUM, value):
            raise HttperfParseError(f"garbled line: {line.strip()!r}")
        out[name] = float(value)
    return out


def _count(x: float, what: str) -> int:
    if not math.isfinite(x) or x < 0 or x != int(x):
        raise HttperfParseError(f"{what} is not a count: {x!r}")
    return int(x)


def parse_httperf(text: str) -> HttperfReport:
    """Parse httperf's end-of-run report (full, or any subset of its lines as long as the
    `Total:` line is there). Raises HttperfParseError on anything it cannot read."""
    if not isinstance(text, str):
        raise HttperfParseError("httperf output is not text")
    if not text.strip():
        raise HttperfParseError("httperf printed nothing")
    lines = text.splitlines()
    totals = [ln for ln in lines if ln.startswith("Total:")]
    if not totals:
        first = next((ln.strip() for ln in lines if ln.strip()), "")
        raise HttperfParseError(f"no 'Total:' line in httperf output (first line: {first[:120]!r})")
    if len(totals) > 1:
        raise HttperfParseError("more than one httperf report in the output")
    rep = _read_totals(totals[0].strip())
    for raw in lines:
        _read_line(rep, raw.strip())
    _check_consistent(rep)
    return rep


def _read_totals(line: str) -> HttperfReport:
    m = _RE_TOTAL.match(line)
    if not m:
        raise HttperfParseError(f"garbled 'Total:' line: {line[:200]!r}")
    duration = _num(m.group(4))
    if not math.isfinite(duration) or duration < 0:
        raise HttperfParseError(f"bad test-duration {m.group(4)!r}")
    return HttperfReport(connections=int(m.group(1)), requests=int(m.group(2)), replies=int(m.group(3)),
                         test_duration=duration)


def _read_line(rep: HttperfReport, line: str) -> None:
    """One line of the report into `rep` (lines it does not know are left alone)."""
    if line.startswith("httperf ") and "--" in line:
        rep.command = line
    elif line.startswith("httperf:") or line.startswith("httperf."):
        rep.warnings.append(line)
    elif line.startswith("Connection rate:"):
        mm = _RE_RATE.match(line)
        if not mm:
            raise HttperfParseError(f"garbled line: {line!r}")
        rep.conn_rate, rep.conn_period_ms = _num(mm.group(1)), _num(mm.group(2))
        rep.max_concurrent = int(mm.group(3))
    elif line.startswith("Connection time [ms]:"):
        d = _pairs(line.split(":", 1)[1], line)
        if set(d) == {"connect"}:
            rep.connect_ms = d["connect"]
        elif set(d) <= {"min", "avg", "max", "median", "stddev"}:
            rep.conn_time_ms.update(d)
        else:
            raise HttperfParseError(f"unknown fields in line: {line!r}")
    elif line.startswith("Reply rate [replies/s]:"):
        rest = line.split(":", 1)[1]
        ms = _RE_SAMPLES.search(rest)
        if ms:
            rest = rest[:ms.start()]
        d = _pairs(rest, line)
        if ms:
            d["samples"] = float(ms.group(1))
        rep.reply_rate = d
    elif line.startswith("Reply time [ms]:"):
        d = _pairs(line.split(":", 1)[1], line)
        rep.response_ms, rep.transfer_ms = d.get("response"), d.get("transfer")
    elif line.startswith("Reply status:"):
        mm = _RE_STATUS.match(line)
        if not mm:
            raise HttperfParseError(f"garbled line: {line!r}")
        status = dict.fromkeys(STATUS_CLASSES, 0)
        for tok in mm.group(1).split():
            k, v = tok.split("=")
            status[k] = int(v)
        rep.status = status
    elif line.startswith("CPU time [s]:"):
        mm = _RE_CPU.match(line)
        if not mm:
            raise HttperfParseError(f"garbled line: {line!r}")
        rep.cpu_user_s, rep.cpu_system_s = _num(mm.group(1)), _num(mm.group(2))
        if mm.group(5) is not None:
            rep.cpu_total_pct = _num(mm.group(5))
    elif line.startswith("Errors:"):
        d = _pairs(line.split(":", 1)[1], line)
        unknown = set(d) - set(HTTPERF_ERROR_NAMES)
        if unknown:
            raise HttperfParseError(f"unknown error classes {sorted(unknown)} in line: {line!r}")
        rep.errors = rep.errors or {}
        for k, v in d.items():
            rep.errors[k] = _count(v, k)


def _check_consistent(rep: HttperfReport) -> None:
    """A report that contradicts itself is garbled, not a result."""
    if rep.replies > rep.requests or rep.requests > rep.connections:
        raise HttperfParseError(f"inconsistent totals: connections {rep.connections} requests {rep.requests} "
                                f"replies {rep.replies}")
    if rep.status is not None and sum(rep.status.values()) != rep.replies:
        raise HttperfParseError(f"reply status counts add up to {sum(rep.status.values())}, not to the "
                                f"{rep.replies} replies")
    if rep.errors is not None:
        classes = sum(v for k, v in rep.errors.items() if k != "total")
        if "total" in rep.errors and classes > rep.errors["total"]:
            raise HttperfParseError(f"error classes add up to {classes}, more than the total {rep.errors['total']}")


def report_to_summary(rep: HttperfReport, spec: LoadSpec, *, judge: bool = True, stopped: bool = False) -> LoadSummary:
    """An httperf report in the builtin summary's terms (records and per-second series absent)."""
    t = spec.target
    s = LoadSummary(engine="httperf", url=t.url, host_header=t.host_header, target_rate=spec.rate,
                    num_conns=spec.num_conns, timeout=spec.timeout)
    s.requests = rep.connections
    s.replies = rep.replies
    if rep.status is not None:
        s.status = dict(rep.status)
        s.success = rep.status["1xx"] + rep.status["2xx"] + rep.status["3xx"]
    else:
        s.status = dict.fromkeys(STATUS_CLASSES, 0)
        s.success = rep.replies
        s.notes.append("httperf's report has no 'Reply status' line: every reply is taken as a success")
    s.errors = dict.fromkeys(ERROR_CLASSES, 0)
    if rep.errors is not None:
        for k, v in rep.errors.items():
            if k != "total":
                s.errors[k] = v
        known = sum(v for k, v in rep.errors.items() if k != "total")
        if "total" in rep.errors and rep.errors["total"] > known:  # condensed line: the rest is unknown
            s.errors["other"] += rep.errors["total"] - known
            s.notes.append(f"{rep.errors['total'] - known} of httperf's errors were not broken down by class; "
                           f"counted as other")
    else:
        s.notes.append("httperf's report has no 'Errors' lines")
    if rep.status is not None:
        s.errors["http-4xx"] = rep.status["4xx"]
        s.errors["http-5xx"] = rep.status["5xx"]
    missing = s.requests - s.success - sum(s.errors.values())
    if missing > 0 and rep.errors is not None:
        # connections that neither succeeded nor failed with a counted error: cut by a stop
        if stopped:
            s.requests -= missing
            s.aborted = missing
            s.notes.append(f"{missing} connections were cut by the stop: not counted (aborted)")
        else:
            s.errors["other"] += missing
            s.notes.append(f"{missing} connections neither succeeded nor show in httperf's error counts; "
                           f"counted as other")
    s.duration_s = rep.test_duration
    _httperf_rate(s, rep, spec)
    ct = rep.conn_time_ms
    if ct and rep.replies:
        s.conn_time_ms = Stats(n=rep.replies, min=ct.get("min", math.nan), avg=ct.get("avg", math.nan),
                               max=ct.get("max", math.nan), median=ct.get("median", math.nan),
                               stddev=ct.get("stddev", math.nan), p90=math.nan, p99=math.nan)
    s.connect_ms, s.response_ms, s.transfer_ms = rep.connect_ms, rep.response_ms, rep.transfer_ms
    s.cpu_user_s, s.cpu_system_s = rep.cpu_user_s, rep.cpu_system_s
    s.max_inflight = rep.max_concurrent
    s.per_second = None
    s.httperf = {"requests_sent": rep.requests, "conn_rate": rep.conn_rate, "reply_rate": rep.reply_rate or None,
                 "errors": rep.errors, "cpu_total_pct": rep.cpu_total_pct, "command": rep.command,
                 "warnings": rep.warnings}
    if judge:
        _judge(s)
    return s


def _httperf_rate(s: LoadSummary, rep: HttperfReport, spec: LoadSpec) -> None:
    """The achieved rate from httperf's own figures: (connections - 1) / test-duration.

    test-duration runs from the first launch to the end of the last connection, so this is a
    lower bound of the launch rate. When it misses the target, the tail is taken off if httperf
    tells how long connections lasted (every connection got a reply or was refused: its
    "Connection time max"); if the rate still misses, the run is invalid. When the tail is not
    known (timeouts, resets), the rate is an estimate and is not judged (a note says so).
    """
    n, duration = rep.connections, rep.test_duration
    if n < 2 or duration <= 0:
        s.achieved_rate = rep.conn_rate
        s.achieved_rate_judged = False
        return
    s.achieved_rate = (n - 1) / duration
    if s.achieved_rate >= spec.rate * (1 - RATE_TOLERANCE):
        return
    refused = (rep.errors or {}).get("connrefused", 0)
    tail_known = rep.replies + refused == n and "max" in rep.conn_time_ms
    if tail_known and duration > rep.conn_time_ms["max"] / 1000.0:
        s.achieved_rate = (n - 1) / (duration - rep.conn_time_ms["max"] / 1000.0)  # at most this
        return
    s.achieved_rate_judged = False
    s.notes.append(f"httperf's achieved rate is not known: its test-duration ({duration:g} s) includes the last "
                   f"connections' time (timeouts or resets), so {s.achieved_rate:.2f} conn/s is only a lower bound; "
                   f"the rate was not judged")


def httperf_args(spec: LoadSpec, *, server: str | None = None, hog: bool = False,
                 httperf: str = HTTPERF) -> list[str]:
    """httperf's command line for `spec` (server: the address to connect to, default the URL's host)."""
    t = spec.target
    args = [httperf, "--server", server or t.host, "--port", str(t.port), "--uri", t.uri,
            "--server-name", t.host_header, "--rate", f"{spec.rate:g}", "--num-conns", str(spec.num_conns),
            "--num-calls", "1", "--timeout", f"{spec.timeout:g}"]
    if hog:
        args.append("--hog")
    return args


class HttperfRun(ProcessRun):
    """Same interface as `LoadRun`, running the real httperf (plus the builtin probe stream)."""

    engine = "httperf"

    def __init__(self, spec: LoadSpec, *, probe: ProbeSpec | None = None, listeners: tuple[Listener, ...] | list = (),
                 httperf: str = HTTPERF, hog: bool = False, address: tuple[int, tuple] | None = None):
        if spec is None or spec.num_conns <= 0:
            raise LoadSpecError("the httperf engine needs a rate and a number of connections")
        self.spec = spec
        self.probe_spec = probe
        self.target = spec.target
        self.httperf = httperf
        self.hog = hog
        self._address = address
        self._open_hub(listeners)
        self._proc: asyncio.subprocess.Process | None = None
        self._probe_run = None
        self._stopped = False
        self._t0 = 0.0
        self.raw_output = ""
        self.raw_stderr = ""
        self.result: LoadRecording | None = None
        self.summary: LoadSummary | None = None

    @property
    def counters(self) -> Counters:
        elapsed = time.monotonic() - self._t0 if self._t0 and self._state != "done" else (
            self.result.wall_duration if self.result else 0.0)
        return self._counters(elapsed, load=None)

    def stop(self, abort: bool = False) -> None:
        if not self._begin_stop(abort):
            return
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:  # SIGINT: httperf stops and prints its report; SIGKILL: nothing
                os.kill(proc.pid, signal.SIGKILL if abort else signal.SIGINT)
            except ProcessLookupError:
                pass

    async def run(self) -> LoadSummary:
        if self._state != "new":
            raise RuntimeError("an HttperfRun runs once")
        loop = asyncio.get_running_loop()
        exe = shutil.which(self.httperf)
        if exe is None:
            raise LoadSpecError(f"httperf not found ({self.httperf!r}); install it (apt-get install httperf)")
        if self._address is None:
            self._address = await loop.run_in_executor(None, resolve, self.target)
        server = self._address[1][0]
        args = httperf_args(self.spec, server=server, hog=self.hog, httperf=exe)
        probe_task = await self._start_probe()
        cpu0 = os.times()
        self._t0 = time.monotonic()
        t0_wall = time.time()
        self._state = "running"
        self._hub.emit(LoadStarted(self._t0, t0_wall, self.engine))
        ticker = asyncio.ensure_future(self._ticks())
        out = err = b""
        notes: list[str] = []
        try:
            out, err = await self._run_httperf(args, notes)
        except asyncio.CancelledError:
            if self._proc is not None and self._proc.returncode is None:
                self._proc.kill()
                await self._proc.wait()
            raise
        finally:
            ticker.cancel()
            await self._end_probe(probe_task)
            wall = time.monotonic() - self._t0
            self._state = "done"
        self.raw_output = out.decode("utf-8", "replace")
        self.raw_stderr = err.decode("utf-8", "replace")
        summary = self._summarize(cpu0, notes)
        pr = self._probe_run
        self.result = LoadRecording(engine="httperf", spec=self.spec, url=self.target.url,
                                    host_header=self.target.host_header, probe_spec=self.probe_spec, load=None,
                                    probe=pr.result.probe if pr is not None and pr.result else None,
                                    t0_monotonic=self._t0, t0_wall=t0_wall, wall_duration=wall,
                                    cpu_user_s=summary.cpu_user_s, cpu_system_s=summary.cpu_system_s,
                                    stopped=self._stopped, max_inflight=summary.max_inflight or 0, notes=notes,
                                    summary=summary)
        return self._finish(summary)

    async def _start_probe(self) -> asyncio.Future | None:
        """The probe stream runs in this process (httperf has none); it starts first."""
        if self.probe_spec is None:
            return None
        from hatui.load.engine import LoadRun

        self._probe_run = LoadRun(None, probe=self.probe_spec, url=self.target.url,
                                  host_header=self.spec.host_header, address=self._address)
        probe_task = asyncio.ensure_future(self._probe_run.run())
        await asyncio.sleep(0)
        return probe_task

    async def _run_httperf(self, args: list[str], notes: list[str]) -> tuple[bytes, bytes]:
        """httperf's stdout and stderr; past its time bound it is interrupted, then killed."""
        self._proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        if self._stop_requested is not None:
            self.stop(self._stop_requested)
        bound = self.spec.planned_duration + self.spec.timeout + 10.0 + 0.1 * self.spec.planned_duration
        comm = asyncio.ensure_future(self._proc.communicate())
        done, _ = await asyncio.wait({comm}, timeout=bound)
        if not done:
            notes.append("httperf overran its time bound and was interrupted")
            self.stop()
            done, _ = await asyncio.wait({comm}, timeout=5.0)
            if not done:
                self.stop(abort=True)
        return await comm

    def _summarize(self, cpu0: os.times_result, notes: list[str]) -> LoadSummary:
        """httperf's report as a summary (invalid when it could not be read), with the probe's outages."""
        try:
            rep = parse_httperf(self.raw_output)
            summary = report_to_summary(rep, self.spec, judge=False, stopped=self._stopped)
            parsed = True
        except HttperfParseError as exc:
            parsed = False
            summary = self._unreadable_summary(exc, cpu0)
        summary.stopped = self._stopped
        summary.notes.extend(notes)
        pr = self._probe_run
        if pr is not None and pr.result is not None and pr.result.probe is not None:
            store = pr.result.probe
            summary.probe = stream_summary(store)
            summary.outages = find_outages(store)
            summary.outage_stream = "probe"
            summary.resolution_s = store.interval
            offset = self._t0 - pr.result.t0_monotonic
            summary.notes.append(f"outage times are on the probe's clock; httperf started {offset * 1000:.1f} ms "
                                 f"after the probe")
        if parsed:
            _judge(summary)
        return summary

    def _unreadable_summary(self, exc: HttperfParseError, cpu0: os.times_result) -> LoadSummary:
        rc = self._proc.returncode if self._proc else None
        summary = LoadSummary(engine="httperf", url=self.target.url, host_header=self.target.host_header,
                              target_rate=self.spec.rate, num_conns=self.spec.num_conns, timeout=self.spec.timeout)
        stderr_line = next((ln for ln in self.raw_stderr.splitlines()
                            if ln.strip() and "FD_SETSIZE" not in ln), "")
        summary.invalid_reasons.append(f"httperf output could not be read: {exc}"
                                       + (f" (exit {rc}; stderr: {stderr_line.strip()[:200]})" if rc else ""))
        summary.valid = False
        cpu1 = os.times()  # children's CPU, as the report could not give it
        summary.cpu_user_s = cpu1.children_user - cpu0.children_user
        summary.cpu_system_s = cpu1.children_system - cpu0.children_system
        return summary

    async def _ticks(self) -> None:
        k = 0
        prev = None
        while True:
            await asyncio.sleep(max(0.0, self._t0 + k + 1 - time.monotonic()))
            snap = self.counters
            probe_last = snap.probe.minus(prev.probe) if snap.probe and prev and prev.probe else snap.probe
            self._hub.emit(Tick(second=k, counters=snap, load_last=None, probe_last=probe_last))
            prev = snap
            k += 1

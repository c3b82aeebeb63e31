"""The multi-process sender: one schedule split over N sender processes.

The builtin engine is bound by one core (mostly the kernel's TCP work for each connection). With
`workers=N`, connection k of the schedule goes to process k mod N, every process launching its
share at the same times `t0 + k / rate` on the shared monotonic clock, so the run is the same
open-loop schedule, only sent from N processes. The parent runs the probe stream (if any), sums
the live counters, and merges the records (in schedule order) into one `RecordStore`: summaries,
windows and outages work unchanged. CPU time is the parent's plus every sender's.

Sender protocol (`python -m hatui.load.workers`): one JSON line with the run on stdin, then
`stop` / `abort` lines; JSON lines on stdout: `counters` twice a second, one final `result`
with the record columns (base64 of the arrays). A sender whose stdin closes aborts its run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from array import array

from hatui.load.engine import LoadRun, _cpu_times, new_event_loop
from hatui.load.events import (Counters, Listener, LoadEvent, LoadStarted, OutageEnded, OutageStarted, ProcessRun,
                               ServedByChanged, StreamCounters, Tick)
from hatui.load.records import RecordStore
from hatui.load.spec import LoadSpec, LoadSpecError, ProbeSpec, ServedBy, resolve
from hatui.load.summary import LoadRecording, LoadSummary, summarize

STARTUP_S = 0.6  # senders start Python and import the engine before t0
MAX_WORKERS = 64
_COLUMNS = (("scheduled", "d"), ("start", "d"), ("connected", "d"), ("first_byte", "d"), ("end", "d"),
            ("outcome", "b"), ("status", "H"), ("served_by", "H"))


class ShardedRun(ProcessRun):
    """`LoadRun`'s interface over N sender processes (see the module doc)."""

    engine = "builtin"

    def __init__(self, spec: LoadSpec, *, workers: int, probe: ProbeSpec | None = None,
                 listeners: tuple[Listener, ...] | list = (), address: tuple[int, tuple] | None = None,
                 python: str = sys.executable):
        if not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise LoadSpecError(f"workers must be 1..{MAX_WORKERS}, got {workers!r}")
        if spec is None or spec.num_conns <= 0:
            raise LoadSpecError("a multi-process run needs a rate and a number of connections")
        self.spec = spec
        self.probe_spec = probe
        self.workers = workers
        self.target = spec.target
        self.python = python
        self._address = address
        self._open_hub(listeners)
        self._procs: list[asyncio.subprocess.Process] = []
        self._wcounters: list[StreamCounters | None] = [None] * workers
        self._wresults: list[dict | None] = [None] * workers
        self._werrors: list[str] = []
        self._probe_run: LoadRun | None = None
        self._stopped = False
        self._t0 = 0.0
        self.result: LoadRecording | None = None
        self.summary: LoadSummary | None = None

    # -- interface -------------------------------------------------------------------------

    @property
    def t0_monotonic(self) -> float:
        return self._t0

    @property
    def counters(self) -> Counters:
        load = _sum_counters([c for c in self._wcounters if c is not None])
        if self._state in ("running", "stopping"):
            elapsed = max(0.0, time.monotonic() - self._t0)
        else:
            elapsed = self.result.wall_duration if self.result else 0.0
        return self._counters(elapsed, load)

    def stop(self, abort: bool = False) -> None:
        if not self._begin_stop(abort):
            return
        line = b"abort\n" if abort else b"stop\n"
        for p in self._procs:
            if p.returncode is None and p.stdin is not None:
                try:
                    p.stdin.write(line)
                except (BrokenPipeError, ConnectionResetError, RuntimeError):
                    pass
        if self._probe_run is not None and abort:
            self._probe_run.stop(abort=True)

    # -- run -------------------------------------------------------------------------------

    async def run(self) -> LoadSummary:
        if self._state != "new":
            raise RuntimeError("a ShardedRun runs once")
        loop = asyncio.get_running_loop()
        if self._address is None:
            self._address = await loop.run_in_executor(None, resolve, self.target)
        self._t0 = t0 = time.monotonic() + STARTUP_S
        t0_wall = time.time() + STARTUP_S
        config = self._sender_config(t0)
        cpu0 = _cpu_times()
        self._state = "running"
        readers: list[asyncio.Task] = []
        probe_task = None
        ticker = None
        try:
            for w in range(self.workers):
                readers.append(await self._spawn(w, config))
            probe_task = self._start_probe(t0)
            self._hub.emit(LoadStarted(t0, t0_wall, self.engine))
            if self._stop_requested is not None:
                self.stop(self._stop_requested)
            ticker = asyncio.ensure_future(self._ticks())
            await self._wait_senders(readers)
        except asyncio.CancelledError:
            self._kill_senders()
            raise
        finally:
            if ticker is not None:
                ticker.cancel()
            for r in readers:
                r.cancel()
            await self._end_probe(probe_task)
            wall = time.monotonic() - t0
            self._state = "done"
        return self._record_result(t0, t0_wall, wall, cpu0)

    def _sender_config(self, t0: float) -> dict:
        """What every sender process is told (plus its shard number)."""
        spec = self.spec
        sb = spec.served_by
        return {"url": spec.url, "rate": spec.rate, "num_conns": spec.num_conns, "timeout": spec.timeout,
                "host_header": spec.host_header, "max_inflight": spec.max_inflight,
                "served_by": None if sb is None else {"header": sb.header, "pattern": _text(sb.pattern)},
                "family": int(self._address[0]), "sockaddr": list(self._address[1]), "start_at": t0,
                "workers": self.workers}

    async def _spawn(self, w: int, config: dict) -> asyncio.Task:
        """Start sender `w`; returns the task reading its reports."""
        proc = await asyncio.create_subprocess_exec(
            self.python, "-m", "hatui.load.workers", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=1 << 30,
            env=_child_env())
        self._procs.append(proc)
        proc.stdin.write(json.dumps(dict(config, shard=w)).encode() + b"\n")
        return asyncio.ensure_future(self._read(w, proc))

    def _start_probe(self, t0: float) -> asyncio.Future | None:
        """The probe stream runs in this process, on the senders' clock."""
        if self.probe_spec is None:
            return None
        spec = self.spec
        self._probe_run = LoadRun(None, probe=self.probe_spec, url=spec.url, host_header=spec.host_header,
                                  address=self._address, start_at=t0)
        self._probe_run.add_listener(self._forward)
        return asyncio.ensure_future(self._probe_run.run())

    async def _wait_senders(self, readers: list[asyncio.Task]) -> None:
        """Until every sender has reported; past the run's time bound they are aborted, then killed."""
        spec = self.spec
        bound = STARTUP_S + spec.planned_duration + spec.timeout + 10.0 + 0.1 * spec.planned_duration
        done, pending = await asyncio.wait(readers, timeout=bound)
        if pending:
            self._werrors.append("a sender overran the run's time bound and was aborted")
            self.stop(abort=True)
            await asyncio.wait(readers, timeout=5.0)
            self._kill_senders()
        for p in self._procs:
            await p.wait()

    def _kill_senders(self) -> None:
        for p in self._procs:
            if p.returncode is None:
                p.kill()

    def _record_result(self, t0: float, t0_wall: float, wall: float, cpu0: tuple[float, float]) -> LoadSummary:
        """The senders' records merged into one recording, summarized, told to the listeners."""
        cpu1 = _cpu_times()
        load, cpu_u, cpu_s, max_inflight, notes, stopped = self._merge()
        notes = [f"sent from {self.workers} processes"] + notes
        self.result = LoadRecording(
            engine=self.engine, spec=self.spec, probe_spec=self.probe_spec, load=load,
            probe=self._probe_run.result.probe if self._probe_run is not None and self._probe_run.result else None,
            t0_monotonic=t0, t0_wall=t0_wall, wall_duration=wall,
            cpu_user_s=cpu1[0] - cpu0[0] + cpu_u, cpu_system_s=cpu1[1] - cpu0[1] + cpu_s,
            stopped=stopped or self._stopped, max_inflight=max_inflight, notes=notes,
            url=self.target.url, host_header=self.target.host_header)
        summary = summarize(self.result)
        if self._werrors:
            summary.invalid_reasons.extend(self._werrors)
            summary.valid = False
        return self._finish(summary)

    def _forward(self, ev: LoadEvent) -> None:
        if isinstance(ev, (OutageStarted, OutageEnded, ServedByChanged)):
            self._hub.emit(ev)

    async def _read(self, w: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("type") == "counters":
                self._wcounters[w] = StreamCounters(**msg["load"])
            elif msg.get("type") == "result":
                self._wresults[w] = msg
                self._wcounters[w] = StreamCounters(**msg["load"])
        await proc.wait()
        if self._wresults[w] is None:
            err = (await proc.stderr.read()).decode("utf-8", "replace").strip().splitlines() if proc.stderr else []
            self._werrors.append(f"sender process {w} failed (exit {proc.returncode})"
                                 + (f": {err[-1][:300]}" if err else ""))

    async def _ticks(self) -> None:
        k = 0
        prev: Counters | None = None
        await asyncio.sleep(max(0.0, self._t0 - time.monotonic()))
        while True:
            await asyncio.sleep(max(0.0, self._t0 + k + 1 - time.monotonic()))
            snap = self.counters
            self._hub.emit(Tick(
                second=k, counters=snap,
                load_last=snap.load.minus(prev.load) if snap.load and prev and prev.load else snap.load,
                probe_last=snap.probe.minus(prev.probe) if snap.probe and prev and prev.probe else snap.probe))
            prev = snap
            k += 1

    def _merge(self):
        """One RecordStore in schedule order from the senders' shards."""
        spec = self.spec
        store = RecordStore("load", 1.0 / spec.rate, spec.timeout)
        parts = []
        cpu_u = cpu_s = 0.0
        max_inflight = 0
        notes: list[str] = []
        stopped = False
        for w, res in enumerate(self._wresults):
            if res is None:
                continue
            cols = {name: _decode(res["columns"][name], code) for name, code in _COLUMNS}
            remap = [0] + [store.name_id(n) for n in res["names"][1:]]
            cols["served_by"] = array("H", (remap[i] for i in cols["served_by"]))
            parts.append((w, cols))
            cpu_u += res["cpu"][0]
            cpu_s += res["cpu"][1]
            max_inflight += res["max_inflight"]
            stopped = stopped or res["stopped"]
            notes.extend(n for n in res["notes"] if n not in notes)
        # connection k is the (k // N)-th of sender k % N: interleave by local number, then sender
        n = self.workers
        lengths = {w: len(c["start"]) for w, c in parts}
        total = sum(lengths.values())
        contiguous = len(parts) == n and all(lengths[w] == len(range(w, total, n)) for w in lengths)
        for name, code in _COLUMNS:
            out = getattr(store, name)
            if contiguous:  # connections 0 .. total-1 all launched: plain strided copies
                merged = array(code, bytes(array(code).itemsize * total))
                for w, c in parts:
                    merged[w::n] = c[name]
                out.extend(merged)
                continue
            length = max(lengths.values(), default=0)
            for j in range(length):
                for _w, c in parts:
                    col = c[name]
                    if j < len(col):
                        out.append(col[j])
        return store, cpu_u, cpu_s, max_inflight, notes, stopped


def _sum_counters(items: list[StreamCounters]) -> StreamCounters | None:
    if not items:
        return None
    errors: dict[str, int] = {}
    for c in items:
        for k, v in c.errors.items():
            errors[k] = errors.get(k, 0) + v
    return StreamCounters(launched=sum(c.launched for c in items), completed=sum(c.completed for c in items),
                          inflight=sum(c.inflight for c in items), replies=sum(c.replies for c in items),
                          success=sum(c.success for c in items), errors=errors,
                          aborted=sum(c.aborted for c in items))


def _text(p):
    return p.decode("latin-1") if isinstance(p, bytes) else p


def _decode(b64: str, code: str) -> array:
    a = array(code)
    a.frombytes(base64.b64decode(b64))
    return a


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# -- the sender process -------------------------------------------------------------------------


def _sender(cfg: dict, pending: bytes) -> int:
    sb = cfg["served_by"]
    spec = LoadSpec(url=cfg["url"], rate=cfg["rate"], num_conns=cfg["num_conns"], timeout=cfg["timeout"],
                    host_header=cfg["host_header"], max_inflight=cfg["max_inflight"], force=True,
                    served_by=None if sb is None else ServedBy(header=sb["header"], pattern=sb["pattern"]))
    address = (cfg["family"], tuple(cfg["sockaddr"]))
    run = LoadRun(spec, address=address, shard=(cfg["shard"], cfg["workers"]), start_at=cfg["start_at"])
    out = sys.stdout.buffer

    def send(obj) -> None:
        out.write(json.dumps(obj).encode() + b"\n")
        out.flush()

    def control(data: bytes) -> None:
        if b"abort" in data:
            run.stop(abort=True)
        elif b"stop" in data:
            run.stop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        control(pending)

        def on_stdin() -> None:
            try:
                data = os.read(0, 4096)
            except BlockingIOError:
                return
            if not data:  # the parent is gone
                loop.remove_reader(0)
                run.stop(abort=True)
                return
            control(data)

        os.set_blocking(0, False)
        loop.add_reader(0, on_stdin)

        async def report() -> None:
            while True:
                await asyncio.sleep(0.5)
                c = run.counters
                if c.load is not None:
                    send({"type": "counters", "load": c.load.to_dict()})

        reporter = asyncio.ensure_future(report())
        try:
            await run.run()
        finally:
            reporter.cancel()
            loop.remove_reader(0)
        r = run.result
        st = r.load or RecordStore("load", 1.0 / spec.rate, spec.timeout)
        send({"type": "result", "load": run.counters.load.to_dict() if run.counters.load else StreamCounters().to_dict(),
              "columns": {name: base64.b64encode(getattr(st, name).tobytes()).decode() for name, _ in _COLUMNS},
              "names": st.names, "cpu": [r.cpu_user_s, r.cpu_system_s], "max_inflight": r.max_inflight,
              "notes": r.notes, "stopped": r.stopped})

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())
    return 0


def worker_main() -> int:
    import gc

    gc.freeze()  # our own process: keep the imported world out of the collector's full passes
    buf = b""
    while b"\n" not in buf:
        chunk = os.read(0, 65536)
        if not chunk:
            return 2
        buf += chunk
    line, _, pending = buf.partition(b"\n")
    return _sender(json.loads(line), pending)


if __name__ == "__main__":
    raise SystemExit(worker_main())

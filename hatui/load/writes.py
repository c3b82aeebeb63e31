"""The no-data-loss check: a stream of writes during a drill or a load run, then every acknowledged write read back.

    stream = WriteStream("10.251.0.100", rate=20, count=400)   # inside a running event loop
    stream.start()
    ... the drill: fault, takeover, recovery, failback ...
    result = await stream.wait()             # WriteResult: attempted, acked {id: token}, errors
    report = await verify("10.251.0.100", result.acked)
    report.lost_count == 0                   # LostWrites: ok, lost, mismatched, unreadable

The writes go to `POST http://ADDRESS/write` (the lab's write service behind nginx: it answers
`{"id": N}` only once the record is on the Primary's volume and, with DRBD protocol C, on the
peer's). Like the load, the stream is open loop: write i is sent at `t0 + i / rate` whatever
happened to earlier ones, bounded by `count` and `max_duration_s`. Each write carries a unique
token; `verify` reads every acknowledged id back with `GET /read/ID` from whoever holds the
address now (the current Primary) and compares the bytes. A write that was not acknowledged
(refused, reset, timed out) is never counted as lost: only acknowledged ones are promises.

Core module: asyncio and the standard library only (no Textual).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

WRITE_PATH = "/write"
READ_PATH = "/read/"
MAX_IN_FLIGHT = 2000
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")
_SERVED_BY = re.compile(rb"^x-served-by:\s*(\S+)", re.I | re.M)


@dataclass(slots=True)
class WriteRecord:
    start_s: float
    end_s: float
    outcome: str            # acked | http-4xx | http-5xx | client-timo | connrefused | connreset | other
    status: int | None
    id: str | None
    token: str
    served_by: str | None

    @property
    def acked(self) -> bool:
        return self.outcome == "acked"


@dataclass
class WriteResult:
    attempted: int
    records: list[WriteRecord]
    duration_s: float
    late_s: float = 0.0     # how far behind schedule the sender fell at worst

    @property
    def acked(self) -> dict[str, str]:
        """Acknowledged writes: id -> the token that was written (what `verify` takes)."""
        return {r.id: r.token for r in self.records if r.acked and r.id is not None}

    @property
    def errors(self) -> dict[str, int]:
        return dict(Counter(r.outcome for r in self.records if not r.acked))

    def to_json(self) -> dict[str, Any]:
        return {"attempted": self.attempted, "acked": len(self.acked), "errors": self.errors,
                "duration_s": round(self.duration_s, 3), "late_s": round(self.late_s, 3)}


NOTHING_CHECKED = "no write was acknowledged, so the no-data-loss check checked nothing"


@dataclass
class LostWrites:
    """The verdict of `verify`: `lost_count` acknowledged writes are gone or altered."""

    checked: int
    ok: int
    lost: list[str] = field(default_factory=list)         # acknowledged, now 404
    mismatched: list[str] = field(default_factory=list)   # acknowledged, now other bytes
    unreadable: list[str] = field(default_factory=list)   # could not be read back (errors after retries)
    served_by: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def lost_count(self) -> int:
        return len(self.lost) + len(self.mismatched)

    @property
    def complete(self) -> bool:
        """Every acknowledged write was read back (found or definitely not found)."""
        return not self.unreadable

    @property
    def failure(self) -> str | None:
        """Why the no-data-loss check failed (the same words in drills and `hatui load`); None: passed.

        A check that read nothing back proves nothing: zero acknowledged writes, or writes that
        could not be read back, fail it."""
        if self.checked == 0:
            return NOTHING_CHECKED
        reasons = []
        if self.lost_count:
            reasons.append(f"{self.lost_count} acknowledged writes lost")
        if self.unreadable:
            reasons.append(f"{len(self.unreadable)} acknowledged writes could not be read back, so their loss "
                           f"is not ruled out")
        return "; ".join(reasons) or None

    @property
    def passed(self) -> bool:
        return self.failure is None

    def summary(self) -> str:
        text = f"{self.checked} acknowledged writes checked: {self.ok} intact, {self.lost_count} lost"
        if self.mismatched:
            text += f" ({len(self.mismatched)} with other contents)"
        if self.unreadable:
            text += f", {len(self.unreadable)} could not be read back"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "failure": self.failure,
                "checked": self.checked, "ok": self.ok, "lost": self.lost_count, "lost_ids": self.lost[:100],
                "mismatched_ids": self.mismatched[:100], "unreadable": len(self.unreadable),
                "unreadable_ids": self.unreadable[:100], "served_by": self.served_by,
                "seconds": round(self.seconds, 3)}


# --------------------------------------------------------------------------------------------
# One HTTP exchange (fresh connection, Connection: close)


@dataclass(slots=True)
class _Reply:
    status: int | None
    body: bytes
    served_by: str | None
    error: str | None


async def _http(address: str, port: int, method: str, path: str, body: bytes, timeout: float) -> _Reply:
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port)
            head = (f"{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n"
                    f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n")
            writer.write(head.encode() + body)
            await writer.drain()
            raw = await reader.read(-1)
    except TimeoutError:
        return _Reply(None, b"", None, "client-timo")
    except ConnectionRefusedError:
        return _Reply(None, b"", None, "connrefused")
    except ConnectionResetError:
        return _Reply(None, b"", None, "connreset")
    except OSError as exc:
        return _Reply(None, b"", None, f"other: {exc.strerror or exc}")
    finally:
        if writer is not None:
            writer.close()
    m = _STATUS.match(raw)
    if not m:
        return _Reply(None, b"", None, "other: not an HTTP response")
    head, _, payload = raw.partition(b"\r\n\r\n")
    by = _SERVED_BY.search(head)
    return _Reply(int(m.group(1)), payload, by.group(1).decode("ascii", "replace") if by else None, None)


def _outcome(reply: _Reply) -> str:
    if reply.status is None:
        return reply.error.split(":", 1)[0] if reply.error else "other"
    if reply.status >= 500:
        return "http-5xx"
    if reply.status >= 400:
        return "http-4xx"
    return "acked"


# --------------------------------------------------------------------------------------------
# The write stream


class WriteStream:
    """Open-loop writes: write i starts at t0 + i / rate, at most `count`, for at most `max_duration_s`."""

    def __init__(self, address: str, *, rate: float, count: int, port: int = 80, timeout_s: float = 2.0,
                 max_duration_s: float | None = None, path: str = WRITE_PATH, run_id: str | None = None,
                 t0: float | None = None):
        if rate <= 0 or count < 0:
            raise ValueError("rate must be > 0 and count >= 0")
        self.address, self.port, self.path = address, port, path
        self.rate, self.count, self.timeout_s = rate, count, timeout_s
        self.max_duration_s = max_duration_s if max_duration_s is not None else count / rate + timeout_s + 5.0
        self.run_id = run_id or secrets.token_hex(4)
        self.t0 = t0
        self.records: list[WriteRecord] = []
        self.attempted = 0
        self.late_s = 0.0
        self.task: asyncio.Task | None = None
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._ended: float | None = None

    def start(self) -> "WriteStream":
        if self.task is None:
            loop = asyncio.get_running_loop()
            if self.t0 is None:
                self.t0 = time.monotonic()
            self.task = loop.create_task(self._send())
        return self

    def stop(self) -> None:
        self._stopped.set()

    def token(self, i: int) -> str:
        return f"hatui-write {self.run_id} {i} {secrets.token_hex(6)}"

    async def _one(self, i: int) -> None:
        assert self.t0 is not None
        token = self.token(i)
        start = time.monotonic() - self.t0
        reply = await _http(self.address, self.port, "POST", self.path, token.encode(), self.timeout_s)
        outcome = _outcome(reply)
        rid = None
        if outcome == "acked":
            try:
                rid = str(json.loads(reply.body)["id"])
            except (ValueError, KeyError, TypeError):
                outcome = "other"
        self.records.append(WriteRecord(start, time.monotonic() - self.t0, outcome, reply.status, rid, token,
                                        reply.served_by))

    async def _send(self) -> None:
        assert self.t0 is not None
        deadline = self.t0 + self.max_duration_s
        i = 0
        while i < self.count and not self._stopped.is_set():
            due = self.t0 + i / self.rate
            if due >= deadline:
                break
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stopped.wait(), delay)
                    break
                except asyncio.TimeoutError:
                    pass
            else:
                self.late_s = max(self.late_s, -delay)
            self.attempted += 1
            if len(self._tasks) < MAX_IN_FLIGHT:
                task = asyncio.get_running_loop().create_task(self._one(i))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                now = time.monotonic() - self.t0
                self.records.append(WriteRecord(now, now, "fd-unavail", None, None, self.token(i), None))
            i += 1
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._ended = time.monotonic()

    def result(self) -> WriteResult:
        """What the stream has done so far (complete once `wait` returned)."""
        end = self._ended or time.monotonic()
        return WriteResult(self.attempted, list(self.records), end - (self.t0 or end), self.late_s)

    async def wait(self, timeout_s: float | None = None) -> WriteResult:
        """Wait for the stream to end (stopping it after `timeout_s`), then its result."""
        if self.task is None:
            self.start()
        assert self.task is not None
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout_s)
        except asyncio.TimeoutError:
            self.stop()
            await self.task
        return self.result()


async def run_writes(address: str, *, rate: float, count: int, port: int = 80, timeout_s: float = 2.0,
                     max_duration_s: float | None = None) -> WriteResult:
    """A whole write stream, start to end."""
    return await WriteStream(address, rate=rate, count=count, port=port, timeout_s=timeout_s,
                             max_duration_s=max_duration_s).start().wait()


# --------------------------------------------------------------------------------------------
# Reading every acknowledged write back


async def verify(address: str, acked: Mapping[str, str] | Iterable[str], *, port: int = 80,
                 timeout_s: float = 2.0, retries: int = 5, retry_delay_s: float = 0.5,
                 concurrency: int = 8) -> LostWrites:
    """Read every acknowledged write back from `address` (the VIP: the current Primary).

    `acked` maps id -> token (contents compared) or is just the ids (presence checked).
    404 = lost; other bytes = mismatched; errors (503 while a Primary is being promoted,
    timeouts) are retried `retries` times, then the id counts as unreadable."""
    t0 = time.monotonic()
    expected: dict[str, str | None] = (dict(acked) if isinstance(acked, Mapping)
                                       else {str(i): None for i in acked})
    report = LostWrites(checked=len(expected), ok=0)
    served: Counter[str] = Counter()
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(rid: str, token: str | None) -> None:
        async with sem:
            for attempt in range(retries + 1):
                reply = await _http(address, port, "GET", f"{READ_PATH}{rid}", b"", timeout_s)
                if reply.served_by:
                    served[reply.served_by] += 1
                if reply.status == 200:
                    if token is None or reply.body == token.encode():
                        report.ok += 1
                    else:
                        report.mismatched.append(rid)
                    return
                if reply.status == 404:
                    report.lost.append(rid)
                    return
                if attempt < retries:
                    await asyncio.sleep(retry_delay_s)
            report.unreadable.append(rid)

    await asyncio.gather(*(one(rid, tok) for rid, tok in expected.items()))
    key = lambda s: (len(s), s)  # noqa: E731 - numeric ids in numeric order
    report.lost.sort(key=key)
    report.mismatched.sort(key=key)
    report.unreadable.sort(key=key)
    report.served_by = dict(served)
    report.seconds = time.monotonic() - t0
    return report


def verify_blocking(address: str, acked: Mapping[str, str] | Iterable[str], **kw: Any) -> LostWrites:
    """`verify` for code without an event loop."""
    return asyncio.run(verify(address, acked, **kw))

"""Per-connection records of a load or probe stream, stored column-wise.

One record per connection attempt. Times are seconds on the monotonic clock relative to the
run's start (`LoadRecording.t0_monotonic`); a time that never happened (no connect, no byte) is
NaN in the columns and `None` in a `Record` view. Columns are `array`s, about 45 bytes per
record, so a run of a million connections stays near 45 MB.
"""

from __future__ import annotations

import csv
import enum
import errno
import io
import json
import math
from array import array
from typing import IO, Iterator, NamedTuple

NAN = float("nan")


class Outcome(enum.IntEnum):
    PENDING = 0  # launched, not finished yet
    SUCCESS = 1  # complete reply, status < 400
    HTTP_ERROR = 2  # complete reply, status >= 400
    TIMEOUT = 3  # our per-request timeout expired (httperf: client-timo)
    REFUSED = 4  # ECONNREFUSED (connrefused)
    RESET = 5  # ECONNRESET / EPIPE (connreset)
    FD_UNAVAIL = 6  # out of file descriptors (EMFILE, or the engine's in-flight cap)
    ADDR_UNAVAIL = 7  # out of local ports (EADDRNOTAVAIL)
    FTAB_FULL = 8  # system file table full (ENFILE)
    SOCKET_TIMEOUT = 9  # ETIMEDOUT from the kernel (socket-timo)
    BAD_REPLY = 10  # closed before a complete reply, or not HTTP (counted as "other")
    OTHER = 11  # any other error (EHOSTUNREACH, ENETUNREACH, ...)
    ABORTED = 12  # cut short by stop(abort=True) or the run's hard time bound; not counted


# Error classes, httperf's names plus the HTTP statuses that are replies but not successes.
ERROR_CLASSES = ("client-timo", "socket-timo", "connrefused", "connreset", "fd-unavail",
                 "addrunavail", "ftab-full", "other", "http-4xx", "http-5xx")
# Client-side resource errors: any of these makes a run invalid.
CLIENT_RESOURCE_CLASSES = ("fd-unavail", "addrunavail", "ftab-full")

_OUTCOME_CLASS = {
    Outcome.TIMEOUT: "client-timo",
    Outcome.SOCKET_TIMEOUT: "socket-timo",
    Outcome.REFUSED: "connrefused",
    Outcome.RESET: "connreset",
    Outcome.FD_UNAVAIL: "fd-unavail",
    Outcome.ADDR_UNAVAIL: "addrunavail",
    Outcome.FTAB_FULL: "ftab-full",
    Outcome.BAD_REPLY: "other",
    Outcome.OTHER: "other",
}

OUTCOME_NAMES = {o: o.name.lower().replace("_", "-") for o in Outcome}


def error_class(outcome: int, status: int = 0) -> str | None:
    """The error class of a finished record, None for a success (or pending/aborted)."""
    if outcome == Outcome.HTTP_ERROR:
        return "http-4xx" if status < 500 else "http-5xx"
    return _OUTCOME_CLASS.get(outcome)  # type: ignore[call-overload]


_ERRNO_OUTCOME = {
    errno.ECONNREFUSED: Outcome.REFUSED,
    errno.ECONNRESET: Outcome.RESET,
    errno.EPIPE: Outcome.RESET,
    errno.ECONNABORTED: Outcome.RESET,
    errno.ETIMEDOUT: Outcome.SOCKET_TIMEOUT,
    errno.EMFILE: Outcome.FD_UNAVAIL,
    errno.ENFILE: Outcome.FTAB_FULL,
    errno.EADDRNOTAVAIL: Outcome.ADDR_UNAVAIL,
    errno.EADDRINUSE: Outcome.ADDR_UNAVAIL,
}


def outcome_of_errno(code: int | None) -> Outcome:
    return _ERRNO_OUTCOME.get(code or 0, Outcome.OTHER)


class Record(NamedTuple):
    """One connection, as read back from a `RecordStore` (times in s from the run start)."""

    index: int
    scheduled: float
    start: float
    connected: float | None
    first_byte: float | None
    end: float | None
    outcome: Outcome
    status: int | None
    served_by: str | None

    @property
    def success(self) -> bool:
        return self.outcome == Outcome.SUCCESS

    @property
    def error_class(self) -> str | None:
        return error_class(self.outcome, self.status or 0)


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else x


class RecordStore:
    """Column store of one stream's records, in launch order (index = launch number)."""

    __slots__ = ("stream", "interval", "timeout", "scheduled", "start", "connected", "first_byte", "end",
                 "outcome", "status", "served_by", "names", "_name_ids")

    def __init__(self, stream: str, interval: float, timeout: float):
        self.stream = stream  # "load" or "probe"
        self.interval = interval  # s between scheduled launches: the stream's time resolution
        self.timeout = timeout
        self.scheduled = array("d")
        self.start = array("d")
        self.connected = array("d")
        self.first_byte = array("d")
        self.end = array("d")
        self.outcome = array("b")
        self.status = array("H")
        self.served_by = array("H")  # index into `names`; 0 = unknown
        self.names: list[str | None] = [None]
        self._name_ids: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.start)

    def add(self, scheduled: float, start: float) -> int:
        """Append a launched (pending) record; returns its index."""
        self.scheduled.append(scheduled)
        self.start.append(start)
        self.connected.append(NAN)
        self.first_byte.append(NAN)
        self.end.append(NAN)
        self.outcome.append(0)
        self.status.append(0)
        self.served_by.append(0)
        return len(self.start) - 1

    def name_id(self, name: str) -> int:
        i = self._name_ids.get(name)
        if i is None:
            if len(self.names) >= 65535:  # pathological pages; keep the column 16-bit
                return 0
            i = self._name_ids[name] = len(self.names)
            self.names.append(name)
        return i

    def __getitem__(self, i: int) -> Record:
        if i < 0:
            i += len(self)
        status = self.status[i]
        return Record(i, self.scheduled[i], self.start[i], _opt(self.connected[i]), _opt(self.first_byte[i]),
                      _opt(self.end[i]), Outcome(self.outcome[i]), status or None, self.names[self.served_by[i]])

    def __iter__(self) -> Iterator[Record]:
        for i in range(len(self)):
            yield self[i]

    def nbytes(self) -> int:
        return sum(a.itemsize * len(a) for a in (self.scheduled, self.start, self.connected, self.first_byte,
                                                  self.end, self.outcome, self.status, self.served_by))


CSV_FIELDS = ("stream", "index", "scheduled", "start", "connected", "first_byte", "end", "outcome",
              "status", "served_by")


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.6f}"


def write_records(stores: list[RecordStore], out: IO[str], fmt: str = "csv") -> int:
    """Write records as CSV (header + one row each) or JSON lines; returns the number written."""
    n = 0
    if fmt == "jsonl":
        for store in stores:
            for r in store:
                out.write(json.dumps({"stream": store.stream, "index": r.index, "scheduled": r.scheduled,
                                      "start": r.start, "connected": r.connected, "first_byte": r.first_byte,
                                      "end": r.end, "outcome": OUTCOME_NAMES[r.outcome], "status": r.status,
                                      "served_by": r.served_by}) + "\n")
                n += 1
        return n
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for store in stores:
        for r in store:
            writer.writerow((store.stream, r.index, _fmt(r.scheduled), _fmt(r.start), _fmt(r.connected),
                             _fmt(r.first_byte), _fmt(r.end), OUTCOME_NAMES[r.outcome], r.status or "",
                             r.served_by or ""))
            n += 1
    return n


def records_text(stores: list[RecordStore], fmt: str = "csv") -> str:
    buf = io.StringIO()
    write_records(stores, buf, fmt)
    return buf.getvalue()

"""The journal: an append-only record of what hatui did and measured, one JSON object a line.

Each line is flushed and fsync'd before `write` returns, so a drill killed with SIGKILL loses
no finished run. Reading tolerates a torn last line (the one being written when it died).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from hatui.errors import UsageError

VERSION = 1


class Journal:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._file = open(self.path, "a", encoding="utf-8")

    def _repair_tail(self) -> None:
        """A torn last line (killed mid-write) would glue onto the next entry: end it first."""
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
                    f.flush()
                    os.fsync(f.fileno())

    def write(self, kind: str, **data: Any) -> dict:
        entry = {"v": VERSION, "kind": kind, "wall": round(time.time(), 3), **data}
        self._file.write(json.dumps(entry, default=_default, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        return entry

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


UNREADABLE = object()  # what `read_lines` gives for a line that is not JSON


def read_lines(path: Path | str) -> Iterator[Any]:
    """Each non-empty line's JSON value, or UNREADABLE for a torn or foreign line; nothing when
    the file does not exist."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                value = UNREADABLE
            yield value


def read_journal(path: Path | str) -> Iterator[dict]:
    """Every well-formed entry; torn or foreign lines are skipped."""
    for entry in read_lines(path):
        if isinstance(entry, dict) and "kind" in entry:
            yield entry


def journal_plan(path: Path | str, plan_schema: str, advice: str = "export into another directory") -> dict | None:
    """The plan in the journal's first record (None: no journal yet). A journal hatui cannot resume
    (a directory, another program's file, a journal of an older hatui without its plan) raises
    UsageError with one line ending in `advice`: resuming it would mix runs of unknown plans."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a journal: {advice}")
    try:
        first = next(iter(read_lines(path)), None)
    except OSError as exc:
        raise UsageError(f"cannot read the journal {path}: {exc.strerror}") from None
    if first is None:
        return None
    if not isinstance(first, dict) or "kind" not in first:
        raise UsageError(f"{path} is not a hatui journal: {advice}")
    plan = first.get("plan")
    if first.get("kind") != "drill-started" or not isinstance(plan, dict) or plan.get("schema") != plan_schema:
        raise UsageError(f"{path} was written by an older hatui and does not record its plan: {advice}")
    return plan


def finished_runs(path: Path | str) -> dict[str, dict]:
    """run_id -> the last `run-finished` entry's result, in journal order (any state: `status` is
    ok for a finished run, else aborted, halted or failed)."""
    runs: dict[str, dict] = {}
    for entry in read_journal(path):
        if entry["kind"] == "run-finished" and isinstance(entry.get("result"), dict):
            run_id = entry["result"].get("run_id")
            if run_id:
                runs[run_id] = entry["result"]
    return runs

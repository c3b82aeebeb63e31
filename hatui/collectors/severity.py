"""Severity of a cluster-state item (ok / warn / alert), the reason that goes with it, and the
result container shared by the parsers.

* `Severity` is an `IntEnum`, so severities compare and `max()` works; `str()` gives the label.
* `Finding` = a severity plus a human reason.  `worst(...)` combines findings (or bare
  severities, or iterables of them) into one `Finding`: the highest severity, with the reasons
  of every finding at that level joined by ``"; "``.
* `ResultList` is a ``list`` that also carries ``problems`` (parse problems, see the collectors'
  convention) and the detected ``format``; parsers that return "a list of things" return one.
* `clean_text()` turns whatever a collector got (str, bytes, None...) into plain text: decoded,
  ANSI colours removed (also the ``^[[1;31m`` caret form of ``cat -v``), CR/LF normalised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    OK = 0
    WARN = 1
    ALERT = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    def __str__(self) -> str:
        return self.label

    @classmethod
    def parse(cls, text: str) -> Severity:
        """'ok' / 'warn' / 'alert' (any case) -> Severity; anything else -> WARN."""
        try:
            return cls[str(text).strip().upper()]
        except KeyError:
            return cls.WARN


@dataclass(frozen=True)
class Finding:
    severity: Severity = Severity.OK
    reason: str = ""

    def __bool__(self) -> bool:  # a finding "counts" when it is not ok
        return self.severity > Severity.OK


OK = Finding()


def _flatten(items: Iterable[Any]) -> Iterable[Finding]:
    for item in items:
        if item is None:
            continue
        if isinstance(item, Finding):
            yield item
        elif isinstance(item, Severity):
            yield Finding(item, "")
        elif isinstance(item, (list, tuple, set, frozenset)) or hasattr(item, "__next__"):
            yield from _flatten(item)
        else:
            # Anything with .severity/.reason (a parsed resource, a node...) takes part as well.
            sev = getattr(item, "severity", None)
            if isinstance(sev, Severity):
                yield Finding(sev, str(getattr(item, "reason", "") or ""))


def worst(*items: Any) -> Finding:
    """Combine findings into one: highest severity, reasons at that level joined (deduplicated)."""
    found = list(_flatten(items))
    if not found:
        return OK
    top = max(f.severity for f in found)
    reasons: list[str] = []
    for f in found:
        if f.severity == top and f.reason and f.reason not in reasons:
            reasons.append(f.reason)
    return Finding(top, "; ".join(reasons))


class ResultList(list):
    """A list of parsed items plus ``problems`` (parse problems) and the detected ``format``.

    ``severity``/``reason`` summarise the items; parse problems count as WARN, so a caller that
    only looks at the severity still notices output it could not read.
    """

    def __init__(self, items: Iterable[Any] = (), *, problems: Iterable[str] = (), format: str = ""):
        super().__init__(items)
        self.problems: list[str] = list(problems)
        self.format: str = format

    @property
    def finding(self) -> Finding:
        extra = [Finding(Severity.WARN, p) for p in self.problems]
        return worst(list(self), extra)

    @property
    def severity(self) -> Severity:
        return self.finding.severity

    @property
    def reason(self) -> str:
        return self.finding.reason

    def __repr__(self) -> str:
        return f"ResultList({list.__repr__(self)}, problems={self.problems!r}, format={self.format!r})"


# ESC [ ... letter, and the same with ESC shown as the two characters "^[" (cat -v, copy/paste).
_ANSI = re.compile(r"(?:\x1b|\^\[)\[[0-9;?]*[A-Za-z]")
# Control characters other than TAB/LF would only confuse the line-oriented parsers.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(raw: Any) -> tuple[str, list[str]]:
    """Return (text, problems).  Never raises; non-text input gives "" plus a problem."""
    problems: list[str] = []
    if raw is None:
        return "", ["no input"]
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        return "", [f"input is {type(raw).__name__}, not text"]
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    text = _ANSI.sub("", text)
    if _CONTROL.search(text):
        problems.append("input contains control characters (binary?)")
        text = _CONTROL.sub("", text)
    return text, problems

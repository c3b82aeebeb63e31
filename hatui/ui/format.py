"""Pure text formatting for the panes: severities, durations, progress bars (no Textual)."""

from __future__ import annotations

import math

from hatui.collectors.severity import Severity

# Severity is readable without colour: a word or symbol always goes with the colour.
MARK = {Severity.OK: "OK", Severity.WARN: "!", Severity.ALERT: "!!"}


def mark(severity: Severity | int | None) -> str:
    if severity is None:
        return "?"
    return MARK.get(Severity(int(severity)), "?")


def duration(seconds: float | None) -> str:
    """Compact uptime: 3m12s, 4h05m, 2d3h."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(max(seconds, 0))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


def clock(seconds: float | None) -> str:
    """mm:ss (or h:mm:ss) for elapsed times and ETAs."""
    s = _whole_seconds(seconds)
    if s is None:
        return "-"
    return _hms(s) if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def eta(seconds: float | None) -> str:
    """DRBD-style h:mm:ss."""
    s = _whole_seconds(seconds)
    return "" if s is None else _hms(s)


def _whole_seconds(seconds: float | None) -> int | None:
    """Rounded, or None for a time that cannot be shown (unknown, infinite, negative)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return int(round(seconds))


def _hms(s: int) -> str:
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def bar(percent: float | None, width: int = 12) -> str:
    """[=====>      ] for a resync in progress."""
    if percent is None or not math.isfinite(percent):
        return ""
    p = min(max(percent, 0.0), 100.0)
    inner = width - 2
    filled = int(inner * p / 100)
    if filled >= inner:
        return "[" + "=" * inner + "]"
    return "[" + "=" * filled + ">" + " " * (inner - filled - 1) + "]"


def progress(done: float | None, eta_s: float | None, width: int = 12) -> str:
    if done is None:
        return ""
    text = f"{bar(done, width)} {done:.1f} %"
    left = eta(eta_s)
    return f"{text}  eta {left}" if left else text


def kib(value: int | None) -> str:
    if not value:
        return "-" if value is None else "0"
    for unit, size in (("GiB", 1 << 20), ("MiB", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} KiB"


def percent(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f} %"


def millis(value: float | None) -> str:
    """Downtime in seconds with two decimals (the sketches' `0.62 s`)."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value / 1000:.2f} s"


def one_line(text: str, limit: int = 160) -> str:
    """A shell command or error on one line: newlines become ` ; `, long text is cut."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    flat = " ; ".join(lines)
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat


def short_vip(vip: str, reference: str | None) -> str:
    """`10.251.0.110` -> `.110` when it shares the first three octets with `reference`."""
    if reference and vip.rsplit(".", 1)[0] == reference.rsplit(".", 1)[0] and vip != reference:
        return "." + vip.rsplit(".", 1)[1]
    return vip


def numbers(text: str) -> list[float]:
    """`10, 20 30` -> [10.0, 20.0, 30.0]; raises ValueError naming the bad item."""
    out = []
    for item in text.replace(",", " ").split():
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"not a number: {item!r}") from None
        out.append(value)
    return out


def words(text: str) -> list[str]:
    return [w for w in text.replace(",", " ").split() if w]

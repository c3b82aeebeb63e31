"""Text renderings of load runs: an httperf-like report and a one-line live progress."""

from __future__ import annotations

import math

from hatui.load.events import Counters
from hatui.load.records import CLIENT_RESOURCE_CLASSES, ERROR_CLASSES
from hatui.load.summary import LoadSummary

_FIRST_ERRORS = ("client-timo", "socket-timo", "connrefused", "connreset")
_SECOND_ERRORS = ("fd-unavail", "addrunavail", "ftab-full", "other", "http-4xx", "http-5xx")


def _f(x: float | None, fmt: str = ".1f", none: str = "-") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return none
    return format(x, fmt)


def _t(x: float | None) -> str:
    return "?" if x is None else f"{x:.3f} s"


def format_summary(s: LoadSummary) -> str:
    """An httperf-like report of a summary (plus what httperf cannot say: outages, validity)."""
    out = []
    host = f" (Host: {s.host_header})" if s.host_header else ""
    win = ""
    if s.window:
        lo, hi = s.window
        win = f", window {_f(lo, '.3f', 'start')} .. {_f(hi, '.3f', 'end')} s"
    out.append(f"hatui load [{s.engine}]: {s.url}{host}, rate {s.target_rate:g} conn/s, {s.num_conns} connections, "
               f"timeout {s.timeout:g} s{win}")
    out.append(f"Total: connections {s.requests} replies {s.replies} success {s.success} "
               f"test-duration {_f(s.duration_s, '.3f')} s" + (f" (aborted {s.aborted})" if s.aborted else ""))
    out.append("")
    if s.achieved_rate is not None:
        diff = 100.0 * (s.achieved_rate / s.target_rate - 1) if s.target_rate else 0.0
        line = f"Connection rate: {s.achieved_rate:.1f} conn/s (target {s.target_rate:g}, {diff:+.2f} %)"
        if not s.achieved_rate_judged:
            line += " (an estimate, not judged)"
        if s.max_inflight:
            line += f", <={s.max_inflight} concurrent connections"
        out.append(line)
    if s.lateness_ms:
        lt = s.lateness_ms
        out.append(f"Launch lateness [ms]: avg {lt['avg']:.2f} p99 {lt['p99']:.2f} max {lt['max']:.2f}")
    elif s.requests:
        out.append("Launch lateness: not measured")
    ct = s.conn_time_ms
    if ct is not None:
        line = (f"Connection time [ms]: min {_f(ct.min)} avg {_f(ct.avg)} max {_f(ct.max)} median {_f(ct.median)} "
                f"stddev {_f(ct.stddev)}")
        if not math.isnan(ct.p90):
            line += f" p90 {_f(ct.p90)} p99 {_f(ct.p99)}"
        out.append(line)
    if s.connect_ms is not None:
        out.append(f"Connection time [ms]: connect {_f(s.connect_ms, '.2f')}")
    if s.response_ms is not None or s.transfer_ms is not None:
        out.append(f"Reply time [ms]: response {_f(s.response_ms, '.2f')} transfer {_f(s.transfer_ms, '.2f')}")
    out.append("Reply status: " + " ".join(f"{k}={v}" for k, v in s.status.items()))
    if s.served_by:
        out.append("Served by: " + " ".join(f"{k}={v}" for k, v in s.served_by.items()))
    out.append("")
    if s.cpu_user_s is not None:
        pct = s.cpu_pct
        out.append(f"CPU time [s]: user {s.cpu_user_s:.2f} system {(s.cpu_system_s or 0):.2f}"
                   + (f" (total {pct:.1f} % of a core)" if pct is not None else ""))
    out.append("")
    e = s.errors
    out.append(f"Errors: total {s.error_total} " + " ".join(f"{k} {e.get(k, 0)}" for k in _FIRST_ERRORS))
    out.append("Errors: " + " ".join(f"{k} {e.get(k, 0)}" for k in _SECOND_ERRORS))
    av = s.availability_pct
    out.append(f"Availability: {_f(av, '.2f')} % ({s.success} of {s.requests} connections succeeded)")
    if s.probe is not None:
        p = s.probe
        perr = sum(p.errors.values())
        out.append(f"Probe: every {p.interval * 1000:g} ms, {p.requests} probes, {p.success} ok, {perr} errors"
                   + (" (" + " ".join(f"{k} {v}" for k, v in p.errors.items() if v) + ")" if perr else ""))
        if p.lateness_ms:
            pl = p.lateness_ms
            out.append(f"Probe lateness [ms]: avg {pl['avg']:.2f} p99 {pl['p99']:.2f} max {pl['max']:.2f}")
    out += _outage_lines(s)
    out.append("")
    out += _verdict_lines(s)
    return "\n".join(out) + "\n"


def _outage_lines(s: LoadSummary) -> list[str]:
    """The outages, each with its span, errors and who served before and after."""
    if s.outages is None:
        return ["Outages: not measured (no records: run the probe stream with --probe-interval)"]
    res = f"resolution {s.resolution_s * 1000:g} ms" if s.resolution_s else ""
    total = s.downtime_s or 0.0
    out = [f"Outages ({s.outage_stream} stream, {res}): "
           + ("none" if not s.outages else f"{len(s.outages)}, downtime {total * 1000:.0f} ms")]
    for n, o in enumerate(s.outages[:50], 1):
        errs = " ".join(f"{k} {v}" for k, v in sorted(o.errors_by_class.items()))
        extra = f", load errors {o.load_errors}" if o.load_errors is not None else ""
        who = ""
        if o.served_by_before or o.served_by_after:
            who = f", served by {o.served_by_before or '?'} -> {o.served_by_after or '?'}"
        bound = " (at least: the run started or ended inside it)" if o.open else ""
        out.append(f"  #{n} {_t(o.start)} -> {_t(o.end)}: {o.duration * 1000:.0f} ms{bound} "
                   f"({o.errors} errors: {errs}{extra}){who}")
    if len(s.outages) > 50:
        out.append(f"  ... {len(s.outages) - 50} more (see --json)")
    return out


def _verdict_lines(s: LoadSummary) -> list[str]:
    """Valid or not (and why), and the notes."""
    out: list[str] = []
    if s.valid:
        out.append("Result: VALID")
    else:
        out.append("Result: INVALID")
        for r in s.invalid_reasons:
            out.append(f"  - {r}")
    if s.stopped:
        out.append("Note: stopped before all planned connections were launched; figures cover what ran")
    for n in s.notes:
        out.append(f"Note: {n}")
    return out


def format_progress(c: Counters) -> str:
    """One line of live progress."""
    parts = [f"{c.elapsed:6.1f}s"]
    if c.load is not None:
        ld = c.load
        err = ld.error_total
        rate = (ld.launched - 1) / c.elapsed if c.elapsed > 0 and ld.launched > 1 else 0.0
        parts.append(f"conns {ld.launched}/{c.num_conns} ok {ld.success} err {err} in-flight {ld.inflight} "
                     f"rate {rate:.0f}/s")
        res = sum(ld.errors.get(k, 0) for k in CLIENT_RESOURCE_CLASSES)
        if res:
            parts.append(f"CLIENT-ERRORS {res}")
    elif c.num_conns:
        parts.append(f"httperf running ({c.num_conns} conns at {c.target_rate:g}/s)")
    if c.probe is not None:
        parts.append(f"probe ok {c.probe.success} err {c.probe.error_total}")
    if c.state == "stopping":
        parts.append("stopping")
    return "  ".join(parts)


assert set(_FIRST_ERRORS + _SECOND_ERRORS) == set(ERROR_CLASSES)

"""Drill reports: report.md (the study's Table 5 layout plus downtime), results.json, runs.csv,
per-second.csv, charts.txt (plotext, plain text) and junit.xml. Pure functions of the results and of
what the journal holds: `rebuild` writes them again from an export's journal alone, byte for byte.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from hatui import __version__
from hatui.drill.plan import PLAN_SCHEMA
from hatui.drill.results import PHASES, Aggregate, RunResult, aggregate
from hatui.errors import UsageError
from hatui.journal import finished_runs, journal_plan, read_journal
from hatui.load.records import ERROR_CLASSES

RESULTS_SCHEMA = "hatui.results/1"
REPORT_FILES = ("report.md", "results.json", "runs.csv", "per-second.csv", "charts.txt", "junit.xml")
# The journal entry an export writes just before its reports: what they hold beside the plan and the runs.
REPORTS_ENTRY = "reports-written"


def local_time(wall: float | None = None) -> str:
    """`wall` (default: now) as local time with its offset, the form of results.json `written_at`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall))


def write_all(directory: Path, results: list[RunResult], *, lab_name: str, plan_info: dict,
              halted: str | None = None, environment: dict | None = None, refused: str | None = None,
              written_at: str | None = None) -> list[Path]:
    """Every report file. `written_at` (local_time; default now) is the one time the reports show
    that is not in the results; `refused` why the export was refused (preflight, exit 3)."""
    directory.mkdir(parents=True, exist_ok=True)
    written_at = written_at or local_time()
    hostname = (environment or {}).get("hostname")
    files = {
        "report.md": report_markdown(results, lab_name=lab_name, plan_info=plan_info, halted=halted,
                                     environment=environment, refused=refused, written_at=written_at),
        "results.json": json.dumps(results_document(results, lab_name=lab_name, plan_info=plan_info, halted=halted,
                                                    environment=environment, refused=refused,
                                                    written_at=written_at), indent=2),
        "runs.csv": runs_csv(results),
        "per-second.csv": per_second_csv(results),
        "charts.txt": charts_text(results),
        "junit.xml": junit_xml(results, plan_info=plan_info, refused=refused, written_at=written_at,
                               hostname=hostname),
    }
    written = []
    for name, text in files.items():
        path = directory / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # a reader never sees half a report
        written.append(path)
    return written


def plan_order(plan_info: dict):
    """Sort key putting runs in the plan's order: stack, then rate, then repetition."""
    stacks, rates = list(plan_info.get("stacks") or []), list(plan_info.get("rates") or [])

    def key(result: RunResult) -> tuple:
        return (stacks.index(result.stack) if result.stack in stacks else len(stacks),
                rates.index(result.rate) if result.rate in rates else len(rates), result.repetition)
    return key


def journal_results(journal: Path, plan_info: dict) -> list[RunResult]:
    """Every run in the journal, as its last `run-finished` entry left it, in the plan's order."""
    return sorted((RunResult.from_dict(r) for r in finished_runs(journal).values()), key=plan_order(plan_info))


def rebuild(directory: Path) -> list[Path]:
    """Write every report file again from DIR/journal.jsonl alone, as the export that wrote the journal
    did: the plan from its first entry, the runs from their `run-finished` entries, halted and refused
    from the last `drill-finished`, the time and environment from the last `reports-written` (a journal
    without one, e.g. of an export killed mid-drill, gets its last entry's time and no environment).
    A directory without a hatui journal raises UsageError."""
    journal = Path(directory) / "journal.jsonl"
    plan_info = journal_plan(journal, PLAN_SCHEMA, advice="there are no reports to rebuild")
    if plan_info is None:
        raise UsageError(f"{journal} is missing or empty: give the directory of a hatui export")
    finished, written, last = {}, None, None
    for entry in read_journal(journal):
        last = entry
        if entry["kind"] == "drill-finished":
            finished = entry
        elif entry["kind"] == REPORTS_ENTRY:
            written = entry
    written = written or {"written_at": local_time(last.get("wall")), "environment": None}
    return write_all(Path(directory), journal_results(journal, plan_info), lab_name=plan_info.get("lab", "?"),
                     plan_info=plan_info, halted=finished.get("halted"), refused=finished.get("refused"),
                     environment=written.get("environment"), written_at=written.get("written_at"))


def results_document(results: list[RunResult], *, lab_name: str, plan_info: dict, halted: str | None = None,
                     environment: dict | None = None, refused: str | None = None,
                     written_at: str | None = None) -> dict:
    """`plan` is the complete plan (DrillPlan.info), `environment` where the numbers came from
    (hatui.provenance.environment)."""
    return {
        "schema": RESULTS_SCHEMA,
        "hatui": __version__,
        "lab": lab_name,
        "written_at": written_at or local_time(),
        "plan": plan_info,
        "environment": environment,
        "halted": halted,
        "refused": refused,
        "runs": [r.to_dict() for r in results],
        "aggregates": [a.to_dict() for a in aggregate(results)],
    }


# -- report.md --------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def _mean_sd(stat, digits: int = 0, unit: str = "") -> str:
    if stat.mean is None:
        return "-"
    if stat.n > 1:
        return f"{stat.mean:.{digits}f} ± {stat.stddev:.{digits}f}{unit}"
    return f"{stat.mean:.{digits}f}{unit}"


def report_markdown(results: list[RunResult], *, lab_name: str, plan_info: dict, halted: str | None = None,
                    environment: dict | None = None, refused: str | None = None, written_at: str | None = None) -> str:
    aggs = aggregate(results)
    written = (written_at or local_time())[:19].replace("T", " ")
    out = [f"# hatui drill report — {lab_name}", ""]
    out.append(f"Written {written} by hatui {__version__}. "
               f"Plan: stacks {', '.join(plan_info.get('stacks', []))}; rates {', '.join(f'{r:g}' for r in plan_info.get('rates', []))} conn/s; "
               f"{plan_info.get('repetitions', '?')} repetition(s); {plan_info.get('connections', '?')} connections per run; "
               f"fault `{plan_info.get('fault', '?')}`.")
    if environment and environment.get("vm_limits"):  # what "virtual" meant for the local lab's VMs
        out.append(f"VM CPU and memory limits on the local lab: {environment['vm_limits']}.")
    out.append("")
    if refused:
        out += [f"**The export was refused** (exit 3), so no run of it was measured: {refused}", ""]
    if halted:
        out += [f"**The drill was halted:** {halted}", ""]
    failed = [r for r in results if r.status != "ok"]
    passed = sum(1 for r in results if r.passed)
    out.append(f"Runs: {len(results) - len(failed)} finished, {passed} within thresholds, {len(failed)} aborted, "
               f"failed or halted, {sum(1 for r in results if not r.valid)} invalid.")
    out.append("")
    out += _comparison(aggs)
    for stack in sorted({a.stack for a in aggs}):
        out += _table5(stack, [a for a in aggs if a.stack == stack])
    out += _not_in_tables(results)
    out += _runs_table(results)
    out += _writes(results)
    out += _validity(results)
    out += METHODS.splitlines()
    return "\n".join(out) + "\n"


def _comparison(aggs: list[Aggregate]) -> list[str]:
    """Native vs virtual side by side (the study's comparison), when a drill covered both stacks."""
    by = {(a.stack, a.rate, a.phase): a for a in aggs}
    keys = sorted({(a.rate, a.phase) for a in aggs if (("native", a.rate, a.phase) in by and ("virtual", a.rate, a.phase) in by)},
                  key=lambda k: (k[0], PHASES.index(k[1]) if k[1] in PHASES else 9))
    if not keys:
        return []
    out = ["## Native vs virtual", "",
           "Means of the valid repetitions of each stack at the same rate and phase (a run with no outage counts "
           "as 0 ms of downtime); Δ = virtual − native; ≥: some outage was open, a lower bound.", "",
           "| rate (conn/s) | phase | availability % native | availability % virtual | Δ points | downtime ms native | downtime ms virtual | Δ ms |",
           "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for rate, phase in keys:
        n, v = by[("native", rate, phase)], by[("virtual", rate, phase)]
        na, va, nd, vd = n.availability_pct.mean, v.availability_pct.mean, n.downtime_ms.mean, v.downtime_ms.mean
        da = _fmt(va - na, 2) if na is not None and va is not None else "-"
        dd = _fmt(vd - nd, 0) if nd is not None and vd is not None else "-"
        out.append(f"| {rate:g} | {phase} | {_fmt(na, 2)} | {_fmt(va, 2)} | {da} | {_at_least(n)}{_fmt(nd)} | "
                   f"{_at_least(v)}{_fmt(vd)} | {dd} |")
    out.append("")
    return out


def _at_least(agg: Aggregate) -> str:
    return "≥ " if agg.downtime_lower_bound else ""


def _table5(stack: str, aggs: list[Aggregate]) -> list[str]:
    out = [f"## {stack} stack", "",
           "Means over the valid repetitions (± standard deviation). The layout of the study's Table 5: "
           "request / reply / error per rate for failover and failback, with availability and the downtime itself. "
           "Downtime counts a run with no outage as 0 ms (n = runs averaged) and is known to within the probe "
           "interval; ≥ marks a lower bound (an outage that was still open at the edge of the run).", ""]
    out.append("| rate (conn/s) | phase | runs | request | reply | error | availability % | downtime ms (min–max, n) |")
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|")
    for a in aggs:
        down = a.downtime_ms
        span = f" ({down.min:.0f}–{down.max:.0f}, n {down.n})" if down.n > 1 else f" (n {down.n})"
        res = f" ±{a.resolution_ms:g}" if a.resolution_ms and down.n else ""
        runs = f"{a.valid_runs}/{a.runs}" if a.valid_runs != a.runs else str(a.runs)
        out.append(f"| {a.rate:g} | {a.phase} | {runs} | {_mean_sd(a.requests)} | {_mean_sd(a.replies)} | "
                   f"{_mean_sd(a.errors)} | {_mean_sd(a.availability_pct, 2)} | "
                   f"{_at_least(a)}{_mean_sd(down, 0)}{span}{res} |")
    out.append("")
    return out


def _not_in_tables(results: list[RunResult]) -> list[str]:
    """Every run that did not finish (aborted, halted, failed): never averaged, so listed here."""
    ended = [r for r in results if r.status != "ok"]
    if not ended:
        return []
    out = ["## Runs not in the tables", "",
           "These runs did not finish, so none of their numbers is in the tables above; a resumed export runs "
           "them again.", "", "| run | state | what happened |", "|---|---|---|"]
    out += [f"| {r.run_id} | {r.status} | {(r.error or '').replace('|', '/')} |" for r in ended]
    return out + [""]


def _runs_table(results: list[RunResult]) -> list[str]:
    if not results:
        return []
    out = ["## Every run", "",
           "| run | status | phase | request | reply | success | errors by class | availability % | downtime ms | served before → after | thresholds |",
           "|---|---|---|---:|---:|---:|---|---:|---:|---|---|"]
    for r in results:
        if not r.phases:
            out.append(f"| {r.run_id} | {r.status} | - | | | | | | | | {r.error or ''} |")
            continue
        for phase in PHASES:
            p = r.phases.get(phase)
            if p is None:
                continue
            errs = ", ".join(f"{k} {v}" for k, v in p.errors.items() if v) or "none"
            served = f"{p.served_before or '-'} → {p.served_after or '-'}"
            broken = "; ".join(p.thresholds_broken) or "ok"
            down = f"{'≥ ' if p.downtime_lower_bound else ''}{_fmt(p.downtime_ms)} (±{p.resolution_ms:g})"
            out.append(f"| {r.run_id} | {r.status}{'' if r.valid else ' (invalid)'} | {phase} | {p.requests} | {p.replies} | "
                       f"{p.success} | {errs} | {p.availability_pct:.2f} | {down} | {served} | {broken} |")
    out.append("")
    return out


def _writes(results: list[RunResult]) -> list[str]:
    checked = [r for r in results if r.writes_acked is not None]
    if not checked:
        return []
    out = ["## No data loss", "",
           "Writes sent to the service during each run (POST /write, acknowledged only once replicated), "
           "read back from the current primary after the cluster settled.", "",
           "A check that read nothing back fails: no acknowledged write, or writes that could not be read back.", "",
           "| run | writes sent | acknowledged | lost acknowledged writes | check | detail |",
           "|---|---:|---:|---:|---|---|"]
    for r in checked:
        verdict = f"FAILED: {r.writes_problem}" if r.writes_problem else "passed"
        out.append(f"| {r.run_id} | {r.writes_attempted} | {r.writes_acked} | **{r.lost_writes}** | {verdict} | "
                   f"{r.writes_detail or ''} |")
    return out + [""]


def _validity(results: list[RunResult]) -> list[str]:
    notes = [f"- {r.run_id}: {'; '.join(r.invalid_reasons)}" for r in results if not r.valid]
    notes += [f"- {r.run_id}: {r.status}: {r.error}" for r in results if r.status != "ok" and r.error]
    if not results:
        return ["## Validity", "", "No run was measured.", ""]
    if not notes:
        return ["## Validity", "", "Every run held its target rate and open-loop schedule (load and probe) and had "
                "no client-side resource errors.", ""]
    return ["## Validity", "", "Invalid runs are listed in the tables above but left out of the means.", ""] + notes + [""]


METHODS = """## Methods: what every number means

- **request**: connections attempted (one new TCP connection per request, httperf's model), open loop:
  the sending schedule never waits for replies.
- **reply**: complete HTTP responses received. **success**: replies with status < 400.
- **error** = request − success, by class: `client-timo` (no complete reply within the timeout),
  `connrefused`, `connreset`, `http-5xx`/`http-4xx`, `fd-unavail`/`addrunavail` (client-side resource
  errors), `other`.
- **availability %** = success / request × 100 (the study's figure, with request as denominator).
- **phases**: one run is split on its timeline at the moment the recovery command is sent. *Failover*
  covers the connections started from the beginning of the load until then (it contains the fault and the
  takeover); *failback* covers those started from the recovery until the load ends (it contains the return
  of the service to the master). Each connection belongs to exactly one phase.
- **downtime** (per phase) = time from the last success before the outage to the first success after it,
  measured on the probe stream (a light request every probe interval, independent of the load rate); it is
  known to within the probe interval, given as ± (`resolution_ms` in results.json). "-" means no outage was
  seen in that phase; the means count such a run as 0 ms, and n says how many runs were averaged. An outage
  that began before the phase's first probe success or had not ended by the run's end is open: its downtime
  is a lower bound, marked ≥ (`downtime_lower_bound` in results.json and runs.csv).
- **phase windows** `start_s`/`end_s` are times in seconds from the start of the load (end ≥ start).
- **timeline** marks (results.json): fault-sent, peer-dead, vip-moved, first-success-new, recovery-sent,
  failback-done, on one monotonic clock with wall-clock anchors, in seconds from the start of the load. Marks
  found by polling (peer-dead, vip-moved: every 0.25 s) or by the probe carry their `resolution_s` and are
  rounded to it.
- A run is **invalid** when the load generator could not keep its open-loop schedule: the achieved rate
  ((launches − 1) / (last launch − first scheduled launch)) more than 1 % under the target; load launch
  lateness (actual − scheduled launch) with p99 over max(50 ms, 1/rate) or any launch over 1 s late; probe
  lateness with p99 over the probe interval or any probe over 1 s late; or client-side resource errors
  (fd-unavail, addrunavail, ftab-full) on either stream. Such runs are reported, never averaged silently.
- **thresholds** come from lab.toml `[thresholds]`; a run and phase that breaks one fails its JUnit case and
  makes `hatui --export` exit 1.
"""


# -- CSV --------------------------------------------------------------------------------------


RUNS_CSV_COLUMNS = ["run_id", "stack", "pair", "rate", "repetition", "connections", "fault", "status", "valid",
                    "phase", "start_s", "end_s", "requests", "replies", "success", "errors",
                    *[f"errors_{c.replace('-', '_')}" for c in ERROR_CLASSES], "availability_pct", "downtime_ms",
                    "resolution_ms", "downtime_lower_bound", "served_before", "served_after", "thresholds_broken"]


def runs_csv(results: list[RunResult]) -> str:
    """A row per run and phase; the columns are results.json's field names (`errors` = requests -
    success, as in its aggregates; `errors_CLASS` = a phase's `errors.CLASS`, `-` written `_`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RUNS_CSV_COLUMNS)
    for r in results:
        for phase in PHASES:
            p = r.phases.get(phase)
            if p is None:
                continue
            writer.writerow([r.run_id, r.stack, r.pair, f"{r.rate:g}", r.repetition, r.connections, r.fault, r.status,
                             int(r.valid), phase, f"{p.start_s:.3f}", f"{p.end_s:.3f}", p.requests, p.replies, p.success,
                             p.error, *[p.errors.get(c, 0) for c in ERROR_CLASSES], f"{p.availability_pct:.3f}",
                             "" if p.downtime_ms is None else f"{p.downtime_ms:.1f}", f"{p.resolution_ms:g}",
                             int(p.downtime_lower_bound), p.served_before or "", p.served_after or "", "; ".join(p.thresholds_broken)])
    return buf.getvalue()


def per_second_csv(results: list[RunResult]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run_id", "second", "attempted", "success", *ERROR_CLASSES])
    for r in results:
        for row in r.per_second:
            errors = row.get("errors", {})
            writer.writerow([r.run_id, row.get("t"), row.get("attempted", 0), row.get("success", 0),
                             *[errors.get(c, 0) for c in ERROR_CLASSES]])
    return buf.getvalue()


# -- charts.txt -------------------------------------------------------------------------------


def charts_text(results: list[RunResult], width: int = 100, height: int = 24) -> str:
    import plotext as plt  # plain-text charts; no terminal needed

    parts = []
    aggs = aggregate(results)
    if aggs:
        plt.clear_figure()
        plt.plotsize(width, height)
        plt.theme("clear")
        for stack in sorted({a.stack for a in aggs}):
            for phase in PHASES:
                series = [a for a in aggs if a.stack == stack and a.phase == phase and a.availability_pct.mean is not None]
                if series:
                    plt.plot([a.rate for a in series], [a.availability_pct.mean for a in series],
                             label=f"{stack} {phase}", marker="braille")
        plt.title("Availability % vs rate (conn/s), per stack and phase (the study's Figure 4)")
        plt.xlabel("rate (conn/s)")
        parts.append(plt.build())
    for r in results:
        if not r.per_second:
            continue
        plt.clear_figure()
        plt.plotsize(width, height)
        plt.theme("clear")
        xs = [row["t"] for row in r.per_second]
        plt.plot(xs, [row.get("success", 0) for row in r.per_second], label="success/s", marker="braille")
        plt.plot(xs, [sum(row.get("errors", {}).values()) for row in r.per_second], label="errors/s", marker="braille")
        marks = {m.name: m.at_s for m in r.timeline}
        for mark, label in (("fault-sent", "F"), ("recovery-sent", "B")):
            if mark in marks:
                plt.vline(marks[mark])
                plt.text(label, marks[mark], 0)
        plt.title(f"{r.run_id}: per second (F = fault sent, B = recovery sent)")
        plt.xlabel("seconds from load start")
        parts.append(plt.build())
        break  # one run's per-second chart; per-second.csv has them all
    if not parts:
        return "no finished runs to chart\n"
    return _ANSI.sub("", "\n\n".join(parts)) + "\n"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# -- junit.xml --------------------------------------------------------------------------------


def junit_xml(results: list[RunResult], *, plan_info: dict | None = None, refused: str | None = None,
              written_at: str | None = None, hostname: str | None = None) -> str:
    """The JUnit XML CI tools read (the Ant/Jenkins junit-10.xsd shape): <testsuites> holding one
    <testsuite> with the plan as <properties>, one <testcase> per run and phase (`time`: the phase's
    seconds of load), and one error case for an export refused by preflight. `timestamp` is the first
    run's start (else `written_at`), in UTC."""
    suite = ET.Element("testsuite", name="hatui-drill")
    properties = ET.SubElement(suite, "properties")
    for name, value in _properties(plan_info or {}):
        ET.SubElement(properties, "property", name=name, value=value)
    counts = {"tests": 0, "failures": 0, "errors": 0}
    seconds = 0.0
    for r in results:
        phases = [(p, r.phases.get(p)) for p in PHASES] if r.phases else [("run", None)]
        for phase, pr in phases:
            counts["tests"] += 1
            took = 0.0 if pr is None else pr.end_s - pr.start_s
            seconds += took
            case = ET.SubElement(suite, "testcase", classname=f"hatui.{r.stack}.rate{r.rate:g}",
                                 name=f"{r.run_id} {phase}", time=f"{took:.3f}")
            # A run whose numbers cannot be trusted is an error, not a broken threshold.
            if r.status != "ok":
                counts["errors"] += 1
                ET.SubElement(case, "error", type=r.status, message=f"run {r.status}: {r.error or ''}").text = r.error or r.status
            elif not r.valid:
                counts["errors"] += 1
                reasons = "; ".join(r.invalid_reasons) or "invalid"
                ET.SubElement(case, "error", type="invalid", message=f"run invalid: {reasons}").text = reasons
            elif pr is not None and pr.thresholds_broken:
                counts["failures"] += 1
                ET.SubElement(case, "failure", type="threshold",
                              message="; ".join(pr.thresholds_broken)).text = "\n".join(pr.thresholds_broken)
            elif phase == "failback" and r.writes_problem:  # the no-data-loss check shows once per run
                counts["failures"] += 1
                ET.SubElement(case, "failure", type="lost-writes", message=r.writes_problem).text = r.writes_detail
            if pr is not None:
                ET.SubElement(case, "system-out").text = (
                    f"request {pr.requests} reply {pr.replies} success {pr.success} error {pr.error} "
                    f"availability {pr.availability_pct:.3f} % downtime {_fmt(pr.downtime_ms)} ms (±{pr.resolution_ms:g})")
    if refused:
        counts["tests"] += 1
        counts["errors"] += 1
        case = ET.SubElement(suite, "testcase", classname="hatui.export", name="preflight", time="0.000")
        ET.SubElement(case, "error", type="refused", message=refused).text = refused
    started = min((r.started_wall for r in results if r.started_wall), default=None)
    totals = {name: str(n) for name, n in counts.items()}
    suite.attrib.update(totals, skipped="0", time=f"{seconds:.3f}", timestamp=_utc(started, written_at),
                        hostname=hostname or "unknown")
    suites = ET.Element("testsuites", name="hatui", **totals, time=f"{seconds:.3f}")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _properties(plan_info: dict, prefix: str = "") -> list[tuple[str, str]]:
    """The plan as JUnit properties: nested fields as dotted names, values as JSON (strings as they are)."""
    out = []
    for key, value in plan_info.items():
        if isinstance(value, dict):
            out += _properties(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value if isinstance(value, str) else json.dumps(value)))
    return out


def _utc(wall: float | None, written_at: str | None) -> str:
    """JUnit's timestamp (ISO 8601, no zone): `wall`, else `written_at` (local_time form), in UTC."""
    if wall is not None:
        moment = datetime.fromtimestamp(wall, timezone.utc)
    else:
        moment = datetime.strptime(written_at or local_time(), "%Y-%m-%dT%H:%M:%S%z").astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")

"""`hatui export DIR` (or `hatui --export DIR`): run the drill plan with no screen, write the
reports, exit 0/1/2/3. Both spellings share the options and `run`."""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys
import time
from pathlib import Path

from hatui.commands import add_lab_option, add_mode_option, examples
from hatui.config import load_lab
from hatui.core import Core
from hatui.drill.events import (DrillHalted, DrillRunFinished, DrillRunStarted, Event, RunRetried, RunSkipped,
                                TimelineMark)
from hatui.drill.plan import MAX_PLAN_HOURS, MAX_PLAN_RUNS, check_journal, make_plan
from hatui.errors import EXIT_REFUSED, UsageError
from hatui.journal import Journal
from hatui.provenance import environment
from hatui.report import REPORTS_ENTRY, journal_results, local_time, write_all

MODE = "the headless drill (hatui --export DIR)"

DESCRIPTION = """\
Run the drill plan (stacks x rates x repetitions, from lab.toml unless overridden) with no
screen and write the reports to DIR: report.md, results.json, runs.csv, per-second.csv,
charts.txt, junit.xml and journal.jsonl. Progress goes to stderr, a line per run.
`hatui report DIR` writes the reports again from the journal alone.
Rerunning into the same DIR resumes the same plan: finished runs are skipped, aborted, halted
and failed ones run again; a DIR whose journal holds another plan is refused.
`hatui --export DIR [options]` is the same command."""

EPILOG = examples(
    "hatui export results/study --stack both",
    "hatui export out --stack native --rates 10,20 --repeat 1 --conns 400 --quiet",
    more=f"A plan may have at most {MAX_PLAN_RUNS:,} runs and last at most {MAX_PLAN_HOURS} h.\n"
         "Exit codes: 0 every run valid and within thresholds, 1 a run broke one (or was invalid, aborted,\n"
         "halted or failed, or the drill stopped early),\n"
         "2 usage or config error, 3 refused by a safety check (preflight).")


def _add_drill_options(add) -> None:
    """The drill's options; `add` is the add_argument of the subcommand or of the top-level group."""
    add("--stack", choices=["native", "virtual", "both"], help="which stack(s) to drill (default: lab.toml)")
    add("--rates", metavar="R,R", help="comma-separated rates in conn/s (default: lab.toml)")
    add("--repeat", type=int, metavar="N", help="repetitions per rate")
    add("--conns", type=int, metavar="N", help="connections per run")
    add("--fault", metavar="KIND", help="stop-heartbeat, standby, crash, cut-link or stop-vm")
    add("--write-ratio", type=float, metavar="R",
        help="also send R writes per connection and check afterwards that no acknowledged write "
             "was lost (needs POST /write behind the VIP, as in the local lab)")
    add("--quiet", action="store_true", help="no progress lines on stderr")


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="run the drills with no screen and write the reports",
                                   description=DESCRIPTION, epilog=EPILOG)
    add_lab_option(parser)
    parser.add_argument("export", metavar="DIR", help="directory for the reports (created if missing)")
    _add_drill_options(parser.add_argument)
    parser.set_defaults(func=run)


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("headless drill (hatui --export DIR ..., the same as hatui export DIR ...)")

    def add(*flags, **kwargs):
        add_mode_option(group, MODE, *flags, **kwargs)

    add("--export", metavar="DIR", help="run the drill plan with no screen and write the reports to DIR")
    _add_drill_options(add)


def claims(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "export", None))


def _rates(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--rates: expected numbers like 10,20,30, found {text!r}") from None
    if not rates or any(not 0 < r < math.inf for r in rates):  # float() takes nan and inf too
        raise UsageError(f"--rates: expected positive rates, found {text!r}")
    return rates


def run(args: argparse.Namespace) -> int:
    lab = load_lab(args.lab)
    stacks = None if not args.stack else (["native", "virtual"] if args.stack == "both" else [args.stack])
    for name, value in (("--repeat", args.repeat), ("--conns", args.conns)):
        if value is not None and value <= 0:
            raise UsageError(f"{name}: expected a positive number, found {value}")
    plan = make_plan(lab, stacks=stacks, rates=_rates(args.rates), repeat=args.repeat, conns=args.conns, fault=args.fault,
                     write_ratio=args.write_ratio)
    out = Path(args.export)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the report directory {out}: {exc.strerror}") from None
    journal = out / "journal.jsonl"
    check_journal(journal, plan)  # another plan's journal is refused before anything is sent
    progress = Progress(plan, quiet=args.quiet)
    outcome = asyncio.run(_drive(lab, plan, out, progress))
    # Reports cover every run in the journal (of this same plan), also those of earlier, interrupted
    # exports: the last entry of each run, whatever its state; only finished, valid runs are averaged.
    # What they show beside the plan and the runs is journaled first, so `hatui report DIR` rewrites
    # them byte for byte.
    written_at, env = local_time(), environment(outcome.host_software, outcome.vm_limits)
    with Journal(journal) as record:
        record.write(REPORTS_ENTRY, written_at=written_at, environment=env)
    write_all(out, journal_results(journal, plan.info()), lab_name=lab.name, plan_info=plan.info(),
              halted=outcome.halted, refused=outcome.refused, environment=env, written_at=written_at)
    if outcome.refused:
        print(f"hatui: {outcome.refused}", file=sys.stderr)
        return EXIT_REFUSED
    if not args.quiet:
        passed = sum(1 for r in outcome.results if r.passed)
        print(f"hatui: {len(outcome.results)} run(s), {passed} within thresholds; report: {out / 'report.md'}",
              file=sys.stderr)
    if outcome.halted:
        print(f"hatui: drill halted: {outcome.halted}", file=sys.stderr)
    print(out / "report.md")
    return outcome.exit_code  # the runner's drill_exit_code: the same runs the reports show


async def _drive(lab, plan, out: Path, progress: "Progress"):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if not stop.is_set():
            print("hatui: stopping: the current run is journaled as aborted once the cluster has recovered",
                  file=sys.stderr, flush=True)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: recover the cluster, keep results
        loop.add_signal_handler(sig, on_signal)
    async with Core(lab) as core:
        outcome = await core.run_drill(plan, progress, stop=stop, journal=out / "journal.jsonl")
        outcome.host_software = await core.software_versions()  # provenance, once per export
        outcome.vm_limits = core.vm_limits() if "virtual" in plan.stacks else None
        return outcome


class Progress:
    """One line per run on stderr with its result and the ETA of the rest."""

    def __init__(self, plan, quiet: bool):
        self.plan, self.quiet = plan, quiet
        self.started = time.monotonic()
        self.done = 0
        self.remaining_s = plan.planned_seconds

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, DrillRunStarted):
            print(f"[{event.index}/{event.total}] {event.run_id}: {event.connections} connections at {event.rate:g} conn/s, "
                  f"fault {event.fault}", file=sys.stderr, flush=True)
        elif isinstance(event, RunRetried):
            print(f"  re-running {event.run_id}: {event.last_state} last time", file=sys.stderr, flush=True)
        elif isinstance(event, RunSkipped):
            print(f"  {event.run_id}: skipped ({event.reason})", file=sys.stderr, flush=True)
        elif isinstance(event, TimelineMark) and event.mark in ("fault-sent", "recovery-sent"):
            print(f"  {event.at_s:7.2f} s  {event.mark}: {event.detail}", file=sys.stderr, flush=True)
        elif isinstance(event, DrillRunFinished):
            self.done += 1
            r = event.result
            parts = []
            for name, p in r.phases.items():
                bound = "≥ " if p.downtime_lower_bound else ""  # the outage was still open at a window edge
                down = f"{bound}{p.downtime_ms:.0f} ms" if p.downtime_ms is not None else "none"
                parts.append(f"{name} {p.success}/{p.requests} ok ({p.availability_pct:.2f} %), downtime {down}")
            planned = next((x for x in self.plan.runs if x.run_id == r.run_id), None)
            if planned:
                self.remaining_s -= planned.duration_s + self.plan.settle_s
            eta = time.strftime("%H:%M:%S", time.localtime(time.time() + max(0.0, self.remaining_s)))
            if r.writes_acked is not None:
                parts.append(f"writes {r.writes_acked} acknowledged, {r.lost_writes} lost")
            verdict = (r.status.upper() if r.status != "ok" else "INVALID" if not r.valid
                       else "PASS" if r.passed else "FAIL")
            print(f"  {verdict}  {'; '.join(parts) or r.error}  (ETA {eta})", file=sys.stderr, flush=True)
            if not r.valid:
                print(f"  invalid: {'; '.join(r.invalid_reasons)}", file=sys.stderr, flush=True)
        elif isinstance(event, DrillHalted):
            print(f"  HALTED: {event.reason}; cluster left: {event.cluster_left}", file=sys.stderr, flush=True)

"""`hatui --export DIR`: run the drill plan with no screen, write the reports, exit 0/1/2/3."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

from hatui.config import load_lab
from hatui.drill.events import DrillHalted, Event, RunFinished, RunSkipped, RunStarted, TimelineMark
from hatui.drill.plan import make_plan
from hatui.drill.runner import DrillRunner, plan_info
from hatui.errors import EXIT_REFUSED, UsageError
from hatui.journal import finished_runs
from hatui.lab import faults as lab_faults
from hatui.drill.results import RunResult
from hatui.report import write_all
from hatui.transport import SshPool


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("headless drill (hatui --export DIR ...)")
    group.add_argument("--export", metavar="DIR", help="run the drill plan with no screen and write the reports to DIR")
    group.add_argument("--stack", choices=["native", "virtual", "both"], help="which stack(s) to drill (default: lab.toml)")
    group.add_argument("--rates", metavar="R,R", help="comma-separated rates in conn/s (default: lab.toml)")
    group.add_argument("--repeat", type=int, metavar="N", help="repetitions per rate")
    group.add_argument("--conns", type=int, metavar="N", help="connections per run")
    group.add_argument("--fault", metavar="KIND", help="stop-heartbeat, standby, crash, cut-link or stop-vm")
    group.add_argument("--write-ratio", type=float, metavar="R",
                       help="also send R writes per connection and check afterwards that no acknowledged write "
                            "was lost (needs POST /write behind the VIP, as in the local lab)")
    group.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def claims(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "export", None))


def _rates(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--rates: expected numbers like 10,20,30, found {text!r}") from None
    if not rates or any(r <= 0 for r in rates):
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
        raise UsageError(f"--export: cannot create {out}: {exc.strerror}") from None
    progress = Progress(plan, quiet=args.quiet)
    outcome = asyncio.run(_drive(lab, plan, out, progress))
    # Reports cover every finished run in the journal, also those of earlier, interrupted exports.
    done = [RunResult.from_dict(r) for r in finished_runs(out / "journal.jsonl").values()]
    order = {r.run_id: i for i, r in enumerate(plan.runs)}
    done.sort(key=lambda r: order.get(r.run_id, len(order)))
    write_all(out, done, lab_name=lab.name, plan_info=plan_info(plan), halted=outcome.halted)
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
    return outcome.exit_code


async def _drive(lab, plan, out: Path, progress: "Progress"):
    async with SshPool([h for h in lab.hosts.values() if h.role == "server"]) as pool:
        runner = DrillRunner(lab, plan, pool=pool, on_event=progress, journal_path=out / "journal.jsonl",
                             lab_faults=lab_faults)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: recover the cluster, keep results
            loop.add_signal_handler(sig, runner.stop)
        return await runner.run()


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
        if isinstance(event, RunStarted):
            print(f"[{event.index}/{event.total}] {event.run_id}: {event.connections} connections at {event.rate:g} conn/s, "
                  f"fault {event.fault}", file=sys.stderr, flush=True)
        elif isinstance(event, RunSkipped):
            print(f"  {event.run_id}: skipped ({event.reason})", file=sys.stderr, flush=True)
        elif isinstance(event, TimelineMark) and event.mark in ("fault-sent", "recovery-sent"):
            print(f"  {event.at_s:7.2f} s  {event.mark}: {event.detail}", file=sys.stderr, flush=True)
        elif isinstance(event, RunFinished):
            self.done += 1
            r = event.result
            parts = []
            for name, p in r.phases.items():
                down = f"{p.downtime_ms:.0f} ms" if p.downtime_ms is not None else "none"
                parts.append(f"{name} {p.success}/{p.requests} ok ({p.availability_pct:.2f} %), downtime {down}")
            planned = next((x for x in self.plan.runs if x.run_id == r.run_id), None)
            if planned:
                self.remaining_s -= planned.duration_s + self.plan.settle_s
            eta = time.strftime("%H:%M:%S", time.localtime(time.time() + max(0.0, self.remaining_s)))
            if r.writes_acked is not None:
                parts.append(f"writes {r.writes_acked} acknowledged, {r.lost_writes} lost")
            verdict = "PASS" if r.passed else r.status.upper() if r.status != "ok" else "FAIL"
            print(f"  {verdict}  {'; '.join(parts) or r.error}  (ETA {eta})", file=sys.stderr, flush=True)
        elif isinstance(event, DrillHalted):
            print(f"  HALTED: {event.reason}; cluster left: {event.cluster_left}", file=sys.stderr, flush=True)

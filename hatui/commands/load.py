"""`hatui load URL --rate R --num-conns N`: an open-loop load run, httperf-style, with outages."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import resource
import signal
import sys
from pathlib import Path

from hatui.commands import examples
from hatui.core import Core
from hatui.errors import UsageError
from hatui.load import (ENGINES, MAX_CONNECTIONS, MAX_DURATION_S, LoadSpec, ProbeSpec, ServedBy,
                        new_event_loop, resolve, write_records)
from hatui.load.format import format_progress, format_summary
from hatui.load.spec import (DEFAULT_PROBE_TIMEOUT_S, DEFAULT_TIMEOUT_S, LoadLimitError, header_name_problem,
                             host_header_problem)
from hatui.load.workers import MAX_WORKERS

EXIT_INVALID = 1  # the run finished but is invalid (the client could not hold the rate, or ran out of fds/ports)
EXIT_INTERRUPTED = 130

EPILOG = examples("hatui load http://10.251.0.100/index.html --rate 20 --num-conns 2000 --probe-interval 10",
                  "hatui load http://10.251.0.100/ --rate 500 --num-conns 30000 --workers 2 --json",
                  more=f"""\
Model: one new TCP connection per request (GET, Host header, Connection: close) launched at
start + i/rate whatever the replies do. request = connections attempted, reply = complete HTTP
responses, success = replies with status < 400; availability = success / requests.
Outages (last success before -> first success after) come from the probe stream when it runs
(--probe-interval), else from the load's own records (resolution 1/rate).
Limits: more than {MAX_CONNECTIONS:,} connections or more than {MAX_DURATION_S / 3600:g} hour are refused
without --force. Ctrl-C stops launching and waits for in-flight connections (up to the timeout);
a second Ctrl-C cuts them. The report covers what ran.
Exit codes: 0 valid run, 1 invalid run (rate not held within 1 %, or client fd/port errors),
2 bad input, 3 refused (limits), 130 interrupted (report still printed).""")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "load", help="open-loop HTTP load run (httperf's model) with outage detection",
        description="Load a URL at a fixed connection rate for a fixed number of connections and report\n"
                    "httperf's figures, availability, outages and whether the run is valid.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="http://host[:port]/path (only http://)")
    p.add_argument("--rate", type=float, required=True, metavar="R", help="connections per second (> 0)")
    p.add_argument("--num-conns", type=int, required=True, metavar="N", help="number of connections (> 0)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"per-connection timeout, connect to complete reply (default {DEFAULT_TIMEOUT_S:g} s)")
    p.add_argument("--probe-interval", type=float, default=None, metavar="MS",
                   help="also run the probe stream, one request every MS ms (e.g. 10); 0 or absent: off")
    p.add_argument("--probe-timeout", type=float, default=DEFAULT_PROBE_TIMEOUT_S, metavar="S",
                   help=f"probe request timeout (default {DEFAULT_PROBE_TIMEOUT_S:g} s)")
    p.add_argument("--engine", choices=ENGINES, default="builtin",
                   help="builtin (default) or httperf (the real httperf; no per-connection records)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="builtin engine: send from N processes (for rates one core cannot hold; default 1)")
    p.add_argument("--host", metavar="HEADER", help="Host header (default: from the URL)")
    p.add_argument("--served-by-header", metavar="NAME", default="X-Served-By",
                   help="reply header naming the serving node (default X-Served-By; '' to skip)")
    p.add_argument("--served-by-pattern", metavar="REGEX", default=None,
                   help="regex with one group finding the node in the body (default: 'served by (NAME)')")
    p.add_argument("--write-ratio", type=float, default=0.0, metavar="R",
                   help="also send R writes per connection (POST /write) and read every acknowledged one back "
                        "at the end: the no-data-loss check (needs the local lab's write path or an equivalent)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--records", metavar="FILE",
                   help="write one record per connection (CSV; JSON lines if FILE ends in .jsonl)")
    p.add_argument("--httperf", metavar="PATH", default="httperf", help="httperf binary (engine httperf)")
    p.add_argument("--hog", action="store_true", help="pass --hog to httperf")
    p.add_argument("--force", action="store_true",
                   help=f"allow more than {MAX_CONNECTIONS:,} connections or runs over {MAX_DURATION_S:g} s")
    p.set_defaults(func=run)


def _finite(name: str, value: float, *, allow_zero: bool = False) -> float:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value:g}")
    return value


def build_specs(args) -> tuple[LoadSpec, ProbeSpec | None]:
    _finite("--rate", args.rate)
    if args.num_conns <= 0:
        raise UsageError(f"--num-conns must be > 0, got {args.num_conns}")
    _finite("--timeout", args.timeout)
    if not 1 <= args.workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be 1..{MAX_WORKERS}, got {args.workers}")
    if args.workers > 1 and args.engine != "builtin":
        raise UsageError("--workers is for the builtin engine")
    probe = None
    if args.probe_interval is not None:
        _finite("--probe-interval", args.probe_interval, allow_zero=True)
        if args.probe_interval > 0:
            _finite("--probe-timeout", args.probe_timeout)
            probe = ProbeSpec(interval=args.probe_interval / 1000.0, timeout=args.probe_timeout)
    # Header values are sent as ASCII: refused here, naming the option, not by the encoder mid-run.
    for option, value, problem in (("--host", args.host, host_header_problem),
                                   ("--served-by-header", args.served_by_header, header_name_problem)):
        if value and problem(value):
            raise UsageError(f"{option}: {problem(value)}")
    if args.served_by_pattern is None and args.served_by_header == "X-Served-By":
        served = ServedBy()
    else:
        kwargs = {"header": args.served_by_header or None}
        if args.served_by_pattern is not None:
            kwargs["pattern"] = args.served_by_pattern or None
        served = ServedBy(**kwargs)
    try:
        spec = LoadSpec(url=args.url, rate=args.rate, num_conns=args.num_conns, timeout=args.timeout,
                        host_header=args.host, served_by=served, force=args.force)
    except LoadLimitError as exc:  # only this command has --force
        raise LoadLimitError(f"{exc} (use --force to run it anyway)") from None
    return spec, probe


def _raise_fd_limit() -> None:
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError):
        pass


def run(args) -> int:
    spec, probe = build_specs(args)
    address = resolve(spec.target)
    if args.records and args.engine == "httperf" and probe is None:
        raise UsageError("httperf gives no per-connection records: use --probe-interval (probe records) "
                         "or --engine builtin")
    records_out = None
    if args.records:
        try:
            records_out = Path(args.records).open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise UsageError(f"cannot write records to {args.records}: {exc.strerror}") from None
    if not 0 <= args.write_ratio <= 1:
        raise UsageError(f"--write-ratio: expected a ratio between 0 and 1, found {args.write_ratio:g}")
    _raise_fd_limit()
    gc.freeze()  # this process only runs the load: keep imported objects out of full GC passes
    try:
        summary, load_run, interrupted, lost = _run_loop(args, spec, probe, address)
        if records_out is not None:
            stores = [s for s in (load_run.result.load, load_run.result.probe) if s is not None]
            fmt = "jsonl" if args.records.endswith((".jsonl", ".ndjson")) else "csv"
            write_records(stores, records_out, fmt)
    finally:
        if records_out is not None:
            records_out.close()
    if args.json:
        data = summary.to_dict()
        if lost is not None:
            data["writes"] = lost.to_json()
        if args.engine == "httperf":
            data["httperf_output"] = getattr(load_run, "raw_output", None)
        print(json.dumps(data, indent=2, default=str))
    else:
        sys.stdout.write(format_summary(summary))
        if args.engine == "httperf" and not summary.valid and getattr(load_run, "raw_output", ""):
            sys.stdout.write("\nhttperf output:\n" + load_run.raw_output)
        if lost is not None:
            sys.stdout.write(f"Writes: {lost.summary()}\n")
            if lost.failure:
                sys.stdout.write(f"No-data-loss check FAILED: {lost.failure}\n")
    sys.stdout.flush()
    if interrupted:
        return EXIT_INTERRUPTED
    return 0 if summary.valid and (lost is None or lost.passed) else EXIT_INVALID


def _run_loop(args, spec, probe, address):
    live = sys.stderr.isatty()
    state = {"interrupts": 0}

    async def main():
        kwargs = {"address": address}
        if args.engine == "httperf":
            kwargs.update(httperf=args.httperf, hog=args.hog)
        load_run = Core(None).make_load(spec, probe, engine=args.engine, workers=args.workers, **kwargs)
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            state["interrupts"] += 1
            if state["interrupts"] == 1:
                print(f"\nhatui load: stopping (in-flight connections get up to {spec.timeout:g} s; "
                      f"Ctrl-C again to cut them)", file=sys.stderr, flush=True)
                load_run.stop()
            else:
                load_run.stop(abort=True)

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        progress = None
        if live:
            async def show() -> None:
                while True:
                    await asyncio.sleep(0.5)
                    sys.stderr.write("\r\x1b[K" + format_progress(load_run.counters))
                    sys.stderr.flush()
            progress = asyncio.ensure_future(show())
        writes = None
        if args.write_ratio > 0:
            from hatui.load.writes import WriteStream

            t = spec.target
            writes = WriteStream(t.host, port=t.port, rate=spec.rate * args.write_ratio,
                                 count=max(1, round(spec.num_conns * args.write_ratio)), timeout_s=2.0,
                                 max_duration_s=spec.num_conns / spec.rate + 30).start()
        try:
            summary = await load_run.run()
        finally:
            if progress is not None:
                progress.cancel()
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
            for sig in installed:
                loop.remove_signal_handler(sig)
        lost = None
        if writes is not None:  # read back every acknowledged write from the service
            from hatui.load.writes import verify

            done = await writes.wait(timeout_s=30)
            lost = await verify(spec.target.host, done.acked, port=spec.target.port)
        return summary, load_run, lost

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        summary, load_run, lost = runner.run(main())
    return summary, load_run, state["interrupts"] > 0, lost

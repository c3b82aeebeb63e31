"""Load engine: open-loop HTTP load with per-connection records, a probe stream, outages.

Core code: no Textual here. Entry points:

- `LoadRun(spec, probe=ProbeSpec())` - the builtin engine (`await run.run()` -> `LoadSummary`);
- `HttperfRun(spec, probe=...)` - the real httperf, same interface, report parsed;
- `ShardedRun(spec, workers=N)` - the builtin engine over N sender processes (high rates);
- `summarize(run.result, window=(t0, t1))` - figures for a part of a run (drill phases);
- `parse_httperf(text)` - httperf's report -> `HttperfReport`.
"""

from hatui.load.engine import LoadRun, default_max_inflight, new_event_loop, run_load
from hatui.load.events import (Counters, LoadEvent, LoadFinished, LoadStarted, OutageEnded, OutageStarted,
                               ServedByChanged, StreamCounters, Tick)
from hatui.load.httperf import (HttperfParseError, HttperfReport, HttperfRun, httperf_args, parse_httperf,
                                report_to_summary)
from hatui.load.records import (CLIENT_RESOURCE_CLASSES, ERROR_CLASSES, Outcome, Record, RecordStore,
                                error_class, write_records)
from hatui.load.spec import (MAX_CONNECTIONS, MAX_DURATION_S, LoadLimitError, LoadSpec, LoadSpecError, ProbeSpec,
                             ServedBy, Target, parse_url, resolve)
from hatui.load.summary import (LoadRecording, LoadSummary, Outage, SecondBucket, Stats, StreamSummary, find_outages,
                                stream_summary, summarize)
from hatui.load.workers import ShardedRun

ENGINES = ("builtin", "httperf")


def make_run(spec: LoadSpec, *, engine: str = "builtin", probe: ProbeSpec | None = None, listeners=(),
             workers: int = 1, **kwargs):
    """A `LoadRun`, a `ShardedRun` (builtin, `workers` > 1 sender processes) or an `HttperfRun`
    for `spec`: all have the same interface."""
    if engine == "builtin":
        if workers > 1:
            return ShardedRun(spec, workers=workers, probe=probe, listeners=listeners, **kwargs)
        return LoadRun(spec, probe=probe, listeners=listeners, **kwargs)
    if engine == "httperf":
        return HttperfRun(spec, probe=probe, listeners=listeners, **kwargs)
    raise LoadSpecError(f"unknown load engine {engine!r} (expected one of {', '.join(ENGINES)})")


__all__ = [
    "CLIENT_RESOURCE_CLASSES", "Counters", "ENGINES", "ERROR_CLASSES", "HttperfParseError", "HttperfReport",
    "HttperfRun", "LoadEvent", "LoadFinished", "LoadLimitError", "LoadRecording", "LoadRun", "LoadSpec",
    "LoadSpecError", "LoadStarted", "LoadSummary", "MAX_CONNECTIONS", "MAX_DURATION_S", "Outage", "OutageEnded",
    "OutageStarted", "Outcome", "ProbeSpec", "Record", "RecordStore", "SecondBucket", "ServedBy",
    "ServedByChanged", "ShardedRun", "Stats", "StreamCounters", "StreamSummary", "Target", "Tick",
    "default_max_inflight", "error_class", "find_outages", "httperf_args", "make_run", "new_event_loop",
    "parse_httperf", "parse_url", "report_to_summary", "resolve", "run_load", "stream_summary", "summarize",
    "write_records",
]

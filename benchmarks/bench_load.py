#!/usr/bin/env python3
"""Load engine benchmark: builtin engine vs the real httperf, against nginx on loopback.

Starts its own nginx (temp config, 127.0.0.1, a free port, one worker), stops it by PID at the
end, and prints:

1. the highest rate each engine sustains with zero errors and >= 99 % of the target achieved
   (rates stepped up, 2 s runs, the two engines alternating at each step, one retry per rate);
   for the builtin engine (one process, and "builtin-2p": sending from two processes) also the
   highest rate at which it kept to its schedule throughout (launch lateness p99 <= 20 ms);
2. the achieved-rate error at 10, 50, 1000 and 5000 conn/s;
3. CPU seconds per 1,000 connections (and % of a core) at 50 conn/s (builtin: median of 3 runs).

Not a test: figures depend on the machine and on what else runs (the load average is printed).
Finishes in about 3-4 minutes. Usage: python benchmarks/bench_load.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hatui.load import HttperfRun, LoadSpec, ShardedRun, new_event_loop, run_load  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HTTPERF = shutil.which("httperf") or "/usr/bin/httperf"
TOP_RATES = [2000, 4000, 6000, 8000, 9000, 10000, 11000, 12000, 13000, 14000, 16000, 18000]
ERROR_RATES = [(10, 50), (50, 150), (1000, 3000), (5000, 15000)]  # (rate, connections)
BUDGET_S = 280.0


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hatui-bench-nginx-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.dir.chmod(0o755)  # the worker runs as an unprivileged user and must read the page
        (self.dir / "www").mkdir(mode=0o755)
        (self.dir / "www" / "index.html").write_text("<html><body><p>served by bench</p></body></html>\n")
        (self.dir / "www" / "index.html").chmod(0o644)
        (self.dir / "nginx.conf").write_text(f"""\
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 16384; multi_accept on; }}
http {{
  access_log off;
  default_type text/html;
  client_body_temp_path {self.dir}/tmp;
  proxy_temp_path {self.dir}/tmp;
  fastcgi_temp_path {self.dir}/tmp;
  uwsgi_temp_path {self.dir}/tmp;
  scgi_temp_path {self.dir}/tmp;
  server {{
    listen 127.0.0.1:{self.port} backlog=4096;
    root {self.dir}/www;
  }}
}}
""")
        self.proc = subprocess.Popen([NGINX, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as c:
                    c.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                    status = c.recv(64).split(b" ")[1:2]
                if status != [b"200"]:
                    raise RuntimeError(f"nginx answers {status}, not 200 (see {self.dir}/error.log)")
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()}")
                time.sleep(0.05)
        raise RuntimeError("nginx did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGQUIT)  # graceful; the master takes its worker along
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/index.html"


def one_run(engine: str, url: str, rate: float, n: int, timeout: float = 5.0):
    gc.collect()
    spec = LoadSpec(url, rate, n, timeout=timeout)
    if engine == "builtin":
        s = run_load(spec)
    elif engine == "builtin-2p":  # the builtin engine sending from 2 processes
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            s = runner.run(ShardedRun(spec, workers=2).run())
    else:
        s = asyncio.run(HttperfRun(spec, httperf=HTTPERF).run())
    time.sleep(0.3)
    return s


MAX_P99_LATENESS_MS = 20.0


def passes(s) -> bool:
    """The brief's criterion: zero errors and >= 99 % of the target achieved."""
    errors = s.requests - s.success
    return errors == 0 and s.achieved_rate is not None and s.achieved_rate >= 0.99 * s.target_rate and s.valid


def keeps_schedule(s) -> bool | None:
    """Stricter, builtin only: also no backlog caught up later (launch lateness p99 <= 20 ms).
    httperf does not report lateness; when it falls behind it shows fd-unavail (FD_SETSIZE)."""
    if s.lateness_ms is None:
        return None
    return passes(s) and s.lateness_ms["p99"] <= MAX_P99_LATENESS_MS


def short(s) -> str:
    err = {k: v for k, v in s.errors.items() if v}
    late = f" late-p99 {s.lateness_ms['p99']:6.1f}ms" if s.lateness_ms else " " * 18
    return (f"achieved {s.achieved_rate or 0:8.1f}  ok {s.success:6d}/{s.requests:<6d} "
            f"cpu {(s.cpu_user_s or 0) + (s.cpu_system_s or 0):5.2f}s max-conc {s.max_inflight or 0:5d}{late}"
            + (f"  errors {err}" if err else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--step-seconds", type=float, default=2.0, help="length of each top-rate step (s)")
    args = ap.parse_args()
    engines = ["builtin", "builtin-2p"] + (["httperf"] if shutil.which(HTTPERF) else [])
    t_start = time.monotonic()
    figures: dict = {"cpus": os.cpu_count(), "loadavg_before": loadavg(), "engines": engines}
    print(f"hatui load benchmark: {os.cpu_count()} CPUs, load average {figures['loadavg_before']}")
    if "httperf" not in engines:
        print("httperf not found: builtin engine only")
    nginx = Nginx()
    nginx.start()
    print(f"nginx (1 worker) on {nginx.url}, pid {nginx.proc.pid}")
    try:
        # 1. top rate
        print(f"\n1. top rate: zero errors and >= 99 % of target ({args.step_seconds:g} s steps)")
        rates = TOP_RATES[:6] if args.quick else TOP_RATES
        best = {e: 0 for e in engines}
        best_strict = {e: 0 for e in engines}
        failures = {e: 0 for e in engines}
        steps = {e: [] for e in engines}
        for rate in rates:
            active = [e for e in engines if failures[e] < 2]
            if not active or time.monotonic() - t_start > BUDGET_S * 0.55:
                break
            for e in active:
                s = one_run(e, nginx.url, rate, int(rate * args.step_seconds))
                ok = passes(s)
                if not ok and failures[e] == 0:  # one retry: a neighbour's burst is not the engine's limit
                    print(f"   {e:8s} {rate:6d}/s  FAIL  {short(s)}  (retrying)")
                    s = one_run(e, nginx.url, rate, int(rate * args.step_seconds))
                    ok = passes(s)
                strict = keeps_schedule(s)
                steps[e].append({"rate": rate, "pass": ok, "keeps_schedule": strict, "achieved": s.achieved_rate,
                                 "errors": s.error_total, "lateness_ms": s.lateness_ms,
                                 "cpu_s": (s.cpu_user_s or 0) + (s.cpu_system_s or 0)})
                mark = "pass" if ok else "FAIL"
                if strict is False and ok:
                    mark = "pass*"  # achieved, but with a backlog (launch lateness p99 > 20 ms)
                print(f"   {e:8s} {rate:6d}/s  {mark:5s} {short(s)}")
                if strict:
                    best_strict[e] = max(best_strict[e], rate)
                if ok:
                    best[e] = max(best[e], rate)
                    failures[e] = 0
                else:
                    failures[e] += 1
        figures["top_rate"] = best
        figures["top_rate_keeping_schedule"] = {e: best_strict[e] for e in engines if e.startswith("builtin")}
        figures["top_rate_steps"] = steps
        print("   top rate: " + ", ".join(f"{e} {best[e]} conn/s" for e in engines)
              + f"\n   keeping to the schedule (launch lateness p99 <= {MAX_P99_LATENESS_MS:g} ms): "
              + ", ".join(f"{e} {best_strict[e]} conn/s" for e in engines if e.startswith("builtin"))
              + "  (pass* = achieved, but behind schedule for a while)")

        # 2. rate error
        print("\n2. achieved-rate error")
        figures["rate_error"] = {}
        for rate, n in (ERROR_RATES[:2] if args.quick else ERROR_RATES):
            for e in [e for e in engines if e != "builtin-2p"]:
                s = one_run(e, nginx.url, rate, n)
                err = 100.0 * (s.achieved_rate / rate - 1) if s.achieved_rate else None
                figures["rate_error"].setdefault(str(rate), {})[e] = {
                    "achieved": s.achieved_rate, "error_pct": err, "connections": n, "errors": s.error_total,
                    "lateness_ms": s.lateness_ms}
                late = (f" lateness avg {s.lateness_ms['avg']:.2f} max {s.lateness_ms['max']:.1f} ms"
                        if s.lateness_ms else "")
                print(f"   {e:8s} {rate:5d}/s x {n:5d}: achieved {s.achieved_rate or 0:9.2f}  "
                      f"error {err if err is not None else float('nan'):+6.2f} %{late}")

        # 3. CPU at 50 conn/s
        n_cpu = 250 if args.quick else 500
        print(f"\n3. CPU at 50 conn/s ({n_cpu} connections)")
        figures["cpu_50"] = {}
        for e in [e for e in engines if e != "builtin-2p"]:
            s = one_run(e, nginx.url, 50, n_cpu)
            if e == "builtin":  # the engine's CPU is noisy at this scale: take the median of three
                runs = sorted([s, one_run(e, nginx.url, 50, n_cpu), one_run(e, nginx.url, 50, n_cpu)],
                              key=lambda r: (r.cpu_user_s or 0) + (r.cpu_system_s or 0))
                s = runs[1]
            cpu = (s.cpu_user_s or 0) + (s.cpu_system_s or 0)
            pct = 100.0 * cpu / s.duration_s if s.duration_s else None
            figures["cpu_50"][e] = {"cpu_s": cpu, "per_1000_s": cpu / n_cpu * 1000, "pct_of_core": pct}
            print(f"   {e:8s} cpu {cpu:6.2f} s = {cpu / n_cpu * 1000:6.3f} s per 1000 connections "
                  f"= {pct:5.1f} % of a core")
    finally:
        nginx.stop()
    figures["loadavg_after"] = loadavg()
    figures["seconds"] = round(time.monotonic() - t_start, 1)
    print(f"\nload average after: {figures['loadavg_after']}; benchmark took {figures['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""TUI budgets, measured on the real thing: the app runs in a child process on a pseudo-terminal
(80x24 by default) over the fake core, and this process reads what it draws.

    python benchmarks/bench_tui.py [--size 80x24] [--rate 2000] [--presses 20] [--idle-s 10]

Figures (targets from DESIGN.md):
- first frame: process start (python launch, imports included) to the first drawn frame, and
  to the first frame with cluster data                                           (< 0.5 s)
- idle CPU: the app's CPU time over --idle-s seconds with a 1 s refresh          (< 3 % of a core)
- key-press latency: key written to the terminal -> the new pane drawn, while a fake stream of
  --rate load-progress events/s flows into the drill console                     (< 100 ms)
- memory: the app's resident set size at the end                                 (< 150 MB)
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import re
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78M]|\x1b\][^\x07]*\x07")
TARGETS = {"first_frame_s": 0.5, "idle_cpu_pct": 3.0, "key_ms": 100.0, "rss_mb": 150.0}


# --- the child: the app on the fake core, optionally flooded with load-progress events ---------

def child(rate: int) -> None:
    started = time.perf_counter()
    from hatui.drill import events as ev
    from hatui.drill.plan import RunKey
    from hatui.ui.app import HatuiApp
    from hatui.ui.fake import FakeCore

    imported = time.perf_counter()
    report = os.environ.get("HATUI_BENCH_REPORT")

    class BenchApp(HatuiApp):
        def on_mount(self) -> None:
            super().on_mount()
            if report:
                self.call_after_refresh(self.report_first_frame)
            if rate:
                self.run_worker(self.flood(), group="bench-flood")

        def report_first_frame(self) -> None:
            now = time.perf_counter()
            Path(report).write_text(f"{imported - started:.4f} {now - self.run_called:.4f}\n")

        async def flood(self) -> None:
            """`rate` LoadProgress events a second, in 10 ms batches, into the drill console."""
            view = self.panes["drill"].view
            view.start(None)
            self.panes["drill"].on_drill_event(ev.DrillRunStarted(key=RunKey("native", "native", 50.0, 1), index=1,
                                                                  total=1, connections=10**9, fault="none"))
            start = time.monotonic()
            sent = 0
            while True:
                await asyncio.sleep(0.01)
                elapsed = time.monotonic() - start
                due = int(elapsed * rate)
                for _ in range(due - sent):
                    sent += 1
                    self.panes["drill"].on_drill_event(ev.LoadProgress(
                        run_id="bench", elapsed_s=elapsed, attempted=sent, replies=sent, success=sent,
                        errors={}, second={"t": int(elapsed), "attempted": 50, "success": 50, "errors": {}}))

    app = BenchApp(FakeCore(with_vms=True), refresh_s=1.0, load_journal=False)
    app.run_called = time.perf_counter()
    app.run()


# --- the parent: a pty, a reader thread, /proc figures -------------------------------------------

class Terminal:
    def __init__(self, columns: int, rows: int, rate: int):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor", PYTHONPATH=str(ROOT))
        env.pop("NO_COLOR", None)
        self.report = Path(f"/tmp/hatui-bench-{os.getpid()}-{time.monotonic_ns()}.txt")
        env["HATUI_BENCH_REPORT"] = str(self.report)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, __file__, "--child", "--rate", str(rate)],
                                     stdin=slave, stdout=slave, stderr=slave, env=env, cwd=str(ROOT),
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.chunks: list[tuple[float, bytes]] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.chunks.append((time.perf_counter(), data))

    def text_since(self, t: float) -> str:
        with self.lock:
            data = b"".join(d for at, d in self.chunks if at >= t)
        return ANSI.sub(b"", data).decode("utf-8", "replace")

    def wait_for(self, needle: str, since: float, timeout: float = 10.0) -> float | None:
        """When `needle` was first drawn after `since` (perf_counter), or None."""
        deadline = time.perf_counter() + timeout
        checked = 0
        while time.perf_counter() < deadline:
            with self.lock:
                chunks = [(at, d) for at, d in self.chunks if at >= since]
            data = b""
            for at, d in chunks:
                data += d
                if needle in ANSI.sub(b"", data).decode("utf-8", "replace"):
                    return at
            if len(chunks) == checked:
                time.sleep(0.002)
            checked = len(chunks)
        return None

    def press(self, key: bytes) -> float:
        t = time.perf_counter()
        os.write(self.master, key)
        return t

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        try:
            os.write(self.master, b"\x11")  # ctrl+q
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def verdict(name: str, value: float) -> str:
    return "ok" if value < TARGETS[name] else "OVER BUDGET"


def measure(columns: int, rows: int, rate: int, presses: int, idle_s: float) -> dict:
    out: dict = {}
    # 1. first frame and idle CPU (no event stream)
    term = Terminal(columns, rows, 0)
    first = term.wait_for("1 Nodes", term.started)
    data = term.wait_for("OK  master", term.started)
    out["first_frame_s"] = (first - term.started) if first else float("nan")
    out["first_data_frame_s"] = (data - term.started) if data else float("nan")
    for _ in range(200):
        if term.report.exists() and term.report.read_text().endswith("\n"):
            break
        time.sleep(0.01)
    try:
        imports, run_to_frame = (float(x) for x in term.report.read_text().split())
        term.report.unlink()
    except (OSError, ValueError):
        imports = run_to_frame = float("nan")
    out["imports_s"], out["run_to_frame_s"] = imports, run_to_frame
    time.sleep(2.0)
    cpu0, t0 = term.cpu_s(), time.perf_counter()
    time.sleep(idle_s)
    out["idle_cpu_pct"] = 100.0 * (term.cpu_s() - cpu0) / (time.perf_counter() - t0)
    wide = columns >= 160 and rows >= 48
    out["idle_key_ms"] = key_latencies(term, max(5, presses // 2), wide)
    out["idle_rss_mb"] = term.rss_mb()
    term.close()

    # 2. key presses while the drill console takes `rate` events a second
    term = Terminal(columns, rows, rate)
    term.wait_for("OK  master", term.started)
    time.sleep(2.0)
    cpu0, t0 = term.cpu_s(), time.perf_counter()
    out["key_ms"] = key_latencies(term, presses, wide)
    out["stream_cpu_pct"] = 100.0 * (term.cpu_s() - cpu0) / (time.perf_counter() - t0)
    out["rss_mb"] = term.rss_mb()
    term.close()
    return out


def key_latencies(term: Terminal, presses: int, wide: bool = False) -> list[float]:
    """Alternate two panes; each press is timed until the new pane's text is drawn. 80x24:
    Nodes (1) / DRBD (2). Wide (both always shown): the bottom slot, Charts (6) / Log (7)."""
    latencies = []
    keys = [(b"6", "availability % vs rate"), (b"7", "no command sent yet")] if wide else \
        [(b"2", "replication"), (b"1", "holds VIP")]
    for i in range(presses):
        key, needle = keys[i % 2]
        t = term.press(key)
        drawn = term.wait_for(needle, t, timeout=5.0)
        latencies.append((drawn - t) * 1000 if drawn else float("inf"))
        time.sleep(0.15)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="80x24")
    parser.add_argument("--rate", type=int, default=2000, help="load-progress events per second")
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--idle-s", type=float, default=10.0)
    args = parser.parse_args()
    if args.child:
        child(args.rate)
        return 0
    columns, rows = (int(x) for x in args.size.lower().split("x"))
    r = measure(columns, rows, args.rate, args.presses, args.idle_s)
    keys, idle_keys = r["key_ms"], r["idle_key_ms"]
    p95 = sorted(keys)[max(0, int(len(keys) * 0.95) - 1)]
    print(f"hatui TUI benchmark  {columns}x{rows}  fake core  python {sys.version.split()[0]}  "
          f"{os.cpu_count()} CPU(s)")
    print(f"  first frame            {r['run_to_frame_s']:.3f} s from App.run()   target < {TARGETS['first_frame_s']} s"
          f"   {verdict('first_frame_s', r['run_to_frame_s'])}")
    print(f"    from process start   {r['first_frame_s']:.3f} s (cluster data drawn at {r['first_data_frame_s']:.3f} s;"
          f" Python imports alone {r['imports_s']:.3f} s)")
    print(f"  idle CPU, 1 s refresh  {r['idle_cpu_pct']:.2f} % of a core over {args.idle_s:g} s"
          f"   target < {TARGETS['idle_cpu_pct']} %   {verdict('idle_cpu_pct', r['idle_cpu_pct'])}")
    print(f"  key -> screen, idle    median {statistics.median(idle_keys):.1f} ms  max {max(idle_keys):.1f} ms")
    print(f"  key -> screen, {args.rate} ev/s  median {statistics.median(keys):.1f} ms  p95 {p95:.1f} ms  "
          f"max {max(keys):.1f} ms   target < {TARGETS['key_ms']:g} ms   {verdict('key_ms', statistics.median(keys))}")
    print(f"  CPU during the stream  {r['stream_cpu_pct']:.1f} % of a core")
    print(f"  memory (RSS)           {r['rss_mb']:.1f} MB with the stream, {r['idle_rss_mb']:.1f} MB idle"
          f"   target < {TARGETS['rss_mb']:g} MB   {verdict('rss_mb', r['rss_mb'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

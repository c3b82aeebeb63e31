#!/usr/bin/env python3
"""`hatui lab up` and `hatui lab down` timed end to end, as an operator runs them (root).

Runs the CLI as a subprocess from a down lab: `up` (namespaces, bridges, sshd, Heartbeat with
its cold start, nginx, the DRBD stand-in, the Proxmox emulator) then `down`, --rounds times, and
prints each figure with the median and the range. The bare interpreter start-up (`python -c
pass`) and the CLI's own start-up (`hatui --version`) are timed in the same run as the baseline
a command cannot beat. Leaves the lab down. Not a test: figures depend on the machine.

Usage: .venv/bin/python benchmarks/bench_lab.py [--lab lab.toml] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"bench_lab: {' '.join(argv[2:])} failed (exit {done.returncode}): {done.stderr.strip()[-400:]}")
    return seconds


def line(name: str, values: list[float]) -> str:
    return (f"{name:<22} median {statistics.median(values):6.2f} s   range {min(values):.2f}-{max(values):.2f} s"
            f"   (n={len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", default="lab.toml")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_lab: the local lab needs root")
    hatui = [sys.executable, "-m", "hatui"]
    timed(hatui + ["lab", "down", "--lab", args.lab])  # start from a down lab
    python = [timed([sys.executable, "-c", "pass"]) for _ in range(args.rounds)]
    cli = [timed(hatui + ["--version"]) for _ in range(args.rounds)]
    up, down = [], []
    for _ in range(args.rounds):
        up.append(timed(hatui + ["lab", "up", "--lab", args.lab]))
        down.append(timed(hatui + ["lab", "down", "--lab", args.lab]))
    print(f"bench_lab: {os.uname().nodename}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(line("python -c pass", python))
    print(line("hatui --version", cli))
    print(line("hatui lab up", up))
    print(line("hatui lab down", down))
    return 0


if __name__ == "__main__":
    sys.exit(main())

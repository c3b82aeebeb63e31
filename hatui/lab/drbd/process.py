"""Running a stand-in process (the replicator, the write service) in the background inside a lab
host: join the host's cgroups, fork once ready, send its own output to a log file.

    add_options(parser)    --daemon, --pidfile, --stdout-log, --join-cgroup
    start(args)            do what they say; returns `ready(error)` with --daemon
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable


def tell_started(ready: Callable[[str | None], None] | None, error: BaseException | None = None) -> None:
    """A service's word to `ready` (None without --daemon): up, or the error it did not start for."""
    if ready:
        ready(None if error is None else f"{type(error).__name__}: {error}\n")


def daemonize(pidfile: str | None) -> Callable[[str | None], None]:
    """Fork into the background. Returns `ready(error)`: the parent exits 0 once the child calls
    ready(None), or prints the error and exits 1."""
    rfd, wfd = os.pipe()
    if os.fork():
        os.close(wfd)
        msg = b""
        while chunk := os.read(rfd, 4096):
            msg += chunk
        text = msg.decode(errors="replace")
        if text.startswith("ok"):
            os._exit(0)
        sys.stderr.write(text or "daemon exited before it was ready\n")
        os._exit(1)
    os.close(rfd)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    if pidfile:
        Path(pidfile).write_text(f"{os.getpid()}\n")

    def ready(error: str | None) -> None:
        nonlocal wfd
        if wfd < 0:
            return
        os.write(wfd, b"ok\n" if error is None else error.encode())
        os.close(wfd)
        wfd = -1
    return ready


def join_cgroups(dirs: list[str] | None) -> None:
    """Move this process into the given cgroups (the lab host's limits); best effort."""
    for d in dirs or []:
        try:
            Path(d, "cgroup.procs").write_text(f"{os.getpid()}\n")
        except OSError as exc:
            print(f"could not join cgroup {d}: {exc}", file=sys.stderr)


def redirect_output(log: str | None) -> None:
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def add_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--daemon", action="store_true", help="fork into the background once ready")
    ap.add_argument("--pidfile")
    ap.add_argument("--stdout-log", help="where the process's own output goes (with --daemon)")
    ap.add_argument("--join-cgroup", action="append", help="join this cgroup directory first (repeatable)")


def start(args: argparse.Namespace) -> Callable[[str | None], None] | None:
    """Join the cgroups, then fork into the background (--daemon: returns its `ready`) or just
    write the pidfile."""
    join_cgroups(args.join_cgroup)
    if args.daemon:
        ready = daemonize(args.pidfile)
        redirect_output(args.stdout_log)
        return ready
    if args.pidfile:
        Path(args.pidfile).write_text(f"{os.getpid()}\n")
    return None

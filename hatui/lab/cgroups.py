"""CPU and memory limits of the lab's VM hosts (cgroup v1: the cpu and memory controllers), and
finding the processes of a host's PID namespace to put into them."""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

from hatui.lab.state import proc_stat

log = logging.getLogger(__name__)


def _v1_mounts() -> dict[str, Path]:
    """Controller -> mount point of the cgroup v1 hierarchies."""
    found: dict[str, Path] = {}
    try:
        with open("/proc/self/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 4 and parts[2] == "cgroup":
                    for opt in parts[3].split(","):
                        if opt in ("cpu", "memory"):
                            found.setdefault(opt, Path(parts[1]))
    except OSError:
        pass
    return found


class Cgroups:
    """One cgroup per VM host under ``hatui-<lab name>/`` in the cpu and memory hierarchies (v1).

    cpu: cfs_quota_us = cores x cfs_period_us (100 ms); cpu.rt_runtime_us gets a share too, since
    Heartbeat runs SCHED_RR and the kernel (RT group scheduling) refuses RT tasks in a group with
    no RT budget. memory: memory.limit_in_bytes = the VM's memory.
    """

    RT_GROUP_US = 400_000  # of the root's 950000 per 1 s
    RT_VM_US = 80_000      # per VM host (Heartbeat's realtime work is tiny)

    def __init__(self, lab_name: str) -> None:
        self.group = f"hatui-{lab_name}"
        self.mounts = _v1_mounts()
        missing = [c for c in ("cpu", "memory") if c not in self.mounts]
        if missing:
            unified = Path("/sys/fs/cgroup/cgroup.controllers").exists()
            self.unavailable: str | None = (
                f"no cgroup v1 {' and '.join(missing)} controller mounted"
                + (" (this host uses cgroup v2 only; hatui applies the limits with cgroup v1)" if unified else ""))
        elif os.geteuid() != 0:
            self.unavailable = "not root"
        else:
            self.unavailable = None

    def path(self, controller: str, host: str | None = None) -> Path:
        p = self.mounts[controller] / self.group
        return p / host if host else p

    def apply(self, host: str, cores: int, memory_mb: int) -> str:
        """Create/update the host's groups; returns what was applied. Raises OSError when it cannot."""
        if self.unavailable:
            raise OSError(errno.ENOTSUP, self.unavailable)
        cpu_group, cpu = self.path("cpu"), self.path("cpu", host)
        mem = self.path("memory", host)
        for d in (cpu_group, cpu, self.path("memory"), mem):
            d.mkdir(exist_ok=True)
        period = int((cpu / "cpu.cfs_period_us").read_text())
        quota = max(1000, cores * period)
        _write(cpu / "cpu.cfs_quota_us", quota)
        rt = cpu / "cpu.rt_runtime_us"
        if rt.exists():
            if int((cpu_group / "cpu.rt_runtime_us").read_text()) < self.RT_GROUP_US:
                _write(cpu_group / "cpu.rt_runtime_us", self.RT_GROUP_US)
            if int(rt.read_text()) < self.RT_VM_US:
                _write(rt, self.RT_VM_US)
        _write(mem / "memory.limit_in_bytes", memory_mb * 1048576)
        return f"cgroup v1 {self.group}/{host}: cpu quota {quota}/{period} us ({cores} core{'s' if cores != 1 else ''}), memory {memory_mb} MiB"

    def attach(self, host: str, pids: list[int]) -> int:
        """Move processes into the host's groups (those already there are skipped); returns how many moved."""
        moved = 0
        for controller in ("cpu", "memory"):
            procs = self.path(controller, host) / "cgroup.procs"
            try:
                present = {int(x) for x in procs.read_text().split()}
            except OSError:
                continue
            for pid in pids:
                if pid in present:
                    continue
                try:
                    _write(procs, pid)
                    moved += 1
                except OSError as exc:
                    if exc.errno not in (errno.ESRCH, errno.ENOENT):
                        log.warning("cannot move PID %s into %s: %s", pid, procs.parent, exc.strerror)
        return moved

    def members(self, host: str, controller: str = "cpu") -> list[int]:
        try:
            return [int(x) for x in (self.path(controller, host) / "cgroup.procs").read_text().split()]
        except (OSError, KeyError):
            return []

    def remove(self, host: str) -> list[str]:
        problems = []
        for controller in ("cpu", "memory"):
            if controller not in self.mounts:
                continue
            d = self.path(controller, host)
            if d.exists() and not _rmdir_cgroup(d):
                problems.append(f"cgroup {d} still has processes; left alone")
        return problems

    def remove_all(self) -> list[str]:
        problems = []
        for controller in ("cpu", "memory"):
            if controller not in self.mounts:
                continue
            group = self.path(controller)
            if not group.exists():
                continue
            for child in [c for c in group.iterdir() if c.is_dir()]:
                if not _rmdir_cgroup(child):
                    problems.append(f"cgroup {child} still has processes; left alone")
            _rmdir_cgroup(group)
        return problems


def _write(path: Path, value: int | str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _rmdir_cgroup(d: Path, timeout_s: float = 2.0) -> bool:
    """rmdir a cgroup, waiting briefly for its dying processes to leave."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            d.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                return False
            time.sleep(0.01)


def pidns_processes(pidns: set[str]) -> dict[str, list[int]]:
    """Live processes per PID namespace ("pid:[...]"), one scan of /proc."""
    out: dict[str, list[int]] = {ns: [] for ns in pidns}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ns = os.readlink(f"/proc/{entry}/ns/pid")
        except OSError:
            continue
        if ns in out:
            stat = proc_stat(int(entry))
            if stat and stat[0] not in ("Z", "X"):
                out[ns].append(int(entry))
    return out

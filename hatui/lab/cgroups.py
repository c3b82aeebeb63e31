"""CPU and memory limits of the lab's VM hosts, with cgroup v1 (the cpu and memory controllers'
own hierarchies) or cgroup v2 (the unified hierarchy: cpu.max, memory.max), and finding the
processes of a host's PID namespace to put into them."""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

from hatui.lab.state import proc_stat

log = logging.getLogger(__name__)

CONTROLLERS = ("cpu", "memory")
CPU_PERIOD_US = 100_000  # cgroup v2's default period, used for cpu.max


def _v1_mounts(mounts_file: Path) -> dict[str, Path]:
    """Controller -> mount point of the cgroup v1 hierarchies."""
    found: dict[str, Path] = {}
    try:
        with open(mounts_file) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 4 and parts[2] == "cgroup":
                    for opt in parts[3].split(","):
                        if opt in CONTROLLERS:
                            found.setdefault(opt, Path(parts[1]))
    except OSError:
        pass
    return found


def _v2_controllers(root: Path) -> set[str]:
    try:
        return set((root / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


class Cgroups:
    """One cgroup per VM host under ``hatui-<lab name>/``: v1 when the cpu and memory controllers
    are mounted as v1 hierarchies, else v2 when the unified hierarchy offers both.

    v1: cfs_quota_us = cores x cfs_period_us; cpu.rt_runtime_us gets a share too, since Heartbeat
    runs SCHED_RR and the kernel (RT group scheduling) refuses RT tasks in a group with no RT
    budget; memory.limit_in_bytes = the VM's memory. v2: cpu.max = "cores x 100000 100000",
    memory.max = the VM's memory (v2 has no RT budget: kernels built with RT group scheduling keep
    RT tasks out of non-root v2 groups, and then the limits cannot be applied; `apply` says so).
    `mounts_file` and `unified_root` are parameters so tests can give a tree shaped like either.
    """

    RT_GROUP_US = 400_000  # of the root's 950000 per 1 s
    RT_VM_US = 80_000      # per VM host (Heartbeat's realtime work is tiny)

    def __init__(self, lab_name: str, *, mounts_file: Path = Path("/proc/self/mounts"),
                 unified_root: Path = Path("/sys/fs/cgroup"), check_root: bool = True) -> None:
        self.group = f"hatui-{lab_name}"
        self.mounts = _v1_mounts(mounts_file)
        self.unified_root = unified_root
        self.version: int | None = None
        self.unavailable: str | None = None
        if all(c in self.mounts for c in CONTROLLERS):
            self.version = 1
        elif set(CONTROLLERS) <= _v2_controllers(unified_root):
            self.version = 2
        else:
            self.unavailable = ("neither cgroup v1 cpu and memory hierarchies nor a cgroup v2 hierarchy "
                                f"offering cpu and memory at {unified_root}")
        if self.version and check_root and os.geteuid() != 0:
            self.unavailable = "not root"

    def describe(self) -> str:
        """How limits are applied here, for logs and results: "cgroup v1", "cgroup v2" or why not."""
        return self.unavailable and f"not applied: {self.unavailable}" or f"cgroup v{self.version}"

    def _hierarchies(self) -> list[str]:
        """The hierarchies a host's group lives in: one per controller in v1, the unified one in v2."""
        return list(CONTROLLERS) if self.version == 1 else ["unified"] if self.version == 2 else []

    def path(self, controller: str, host: str | None = None) -> Path:
        p = (self.mounts[controller] if self.version == 1 else self.unified_root) / self.group
        return p / host if host else p

    def apply(self, host: str, cores: int, memory_mb: int) -> str:
        """Create/update the host's groups; returns what was applied. Raises OSError when it cannot."""
        if self.unavailable:
            raise OSError(errno.ENOTSUP, self.unavailable)
        return self._apply_v1(host, cores, memory_mb) if self.version == 1 else self._apply_v2(host, cores, memory_mb)

    def _apply_v1(self, host: str, cores: int, memory_mb: int) -> str:
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
        return f"cgroup v1 {self.group}/{host}: cpu quota {quota}/{period} us ({_cores(cores)}), memory {memory_mb} MiB"

    def _apply_v2(self, host: str, cores: int, memory_mb: int) -> str:
        group, leaf = self.path("unified"), self.path("unified", host)
        group.mkdir(exist_ok=True)
        # A v2 controller reaches a group only when every parent enables it for its children.
        for parent in (self.unified_root, group):
            _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
        leaf.mkdir(exist_ok=True)
        quota = max(1000, cores * CPU_PERIOD_US)
        _write(leaf / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        _write(leaf / "memory.max", memory_mb * 1048576)
        return f"cgroup v2 {self.group}/{host}: cpu.max {quota} {CPU_PERIOD_US} ({_cores(cores)}), memory {memory_mb} MiB"

    def attach(self, host: str, pids: list[int]) -> int:
        """Move processes into the host's groups (those already there are skipped); returns how many moved."""
        moved = 0
        for hierarchy in self._hierarchies():
            procs = self.path(hierarchy, host) / "cgroup.procs"
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
        """The PIDs in the host's group (of `controller`'s hierarchy in v1; v2 has one)."""
        try:
            return [int(x) for x in (self.path(controller, host) / "cgroup.procs").read_text().split()]
        except (OSError, KeyError):
            return []

    def remove(self, host: str) -> list[str]:
        problems = []
        for hierarchy in self._hierarchies():
            d = self.path(hierarchy, host)
            if d.exists() and not _rmdir_cgroup(d):
                problems.append(f"cgroup {d} still has processes; left alone")
        return problems

    def remove_all(self) -> list[str]:
        problems = []
        for hierarchy in self._hierarchies():
            group = self.path(hierarchy)
            if not group.exists():
                continue
            for child in [c for c in group.iterdir() if c.is_dir()]:
                if not _rmdir_cgroup(child):
                    problems.append(f"cgroup {child} still has processes; left alone")
            _rmdir_cgroup(group)
        return problems


def _cores(cores: int) -> str:
    return f"{cores} core{'s' if cores != 1 else ''}"


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

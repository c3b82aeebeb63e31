"""Where the local lab keeps its state, and the state file of what `lab up` created.

Layout of the state directory (`lab.state_dir`, e.g. /run/hatui/local-lab):

    lab-state.json      what exists and who made it: network namespaces (with their inodes), the root
                        namespace leg and route, and per host the recorded PIDs (with start times)
    .lock               serialises up/down/boot/poweroff between processes
    ns/                 a private bind mount holding the pinned namespaces NAME.mnt, NAME.uts, NAME.pid
    nodes/NAME/         per host: run/ (-> /run), log/ (-> /var/log), ssh/ (-> /etc/ssh),
                        ha.d/ (-> /etc/ha.d), varlib/ (-> /var/lib/heartbeat), boot.log
    client/             the client key and known_hosts (paths come from lab.toml's [ssh])
    bin/node            `bin/node NAME CMD...` runs a command inside a host (shell helper for humans)

Everything here is removed by `lab down`, the Proxmox emulator's pve/ included (its own
teardown, hatui.lab.vms, stops the emulator by PID first).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from hatui.config import Lab
from hatui.errors import HatuiError

STATE_VERSION = 1
STATE_FILE = "lab-state.json"


class LabError(HatuiError):
    """Something in the lab machinery failed (exit code 2, message for the user)."""


@dataclass(frozen=True)
class LabPaths:
    state_dir: Path

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def lock_file(self) -> Path:
        return self.state_dir / ".lock"

    @property
    def ns_dir(self) -> Path:
        return self.state_dir / "ns"

    @property
    def nodes_dir(self) -> Path:
        return self.state_dir / "nodes"

    @property
    def bin_dir(self) -> Path:
        return self.state_dir / "bin"

    def node_dir(self, host: str) -> Path:
        return self.nodes_dir / host

    def pin(self, host: str, kind: str) -> Path:
        """The file a host's namespace of `kind` (mnt, uts, pid) is pinned to."""
        return self.ns_dir / f"{host}.{kind}"


def lab_paths(lab: Lab) -> LabPaths:
    return LabPaths(lab.state_dir)


# --------------------------------------------------------------------------------------------
# The state file


def empty_state() -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "phase": "building",
        "lab_file": None,
        "created_at": time.time(),
        "route": None,           # "10.251.0.0/16" while our unreachable route exists
        "run_netns_mounted": None,  # whether /run/netns was a mount point before we started
        "ns_mount": False,       # ns/ is bind-mounted onto itself (private)
        "host_leg": None,        # {"name": "hatui-host", "address": "10.251.0.1/24", "peer": "p-host"}
        "netns": {},             # name -> inode of the namespace we created
        "bridges": {},           # network name -> {"netns": ..., "name": ...}
        "hosts": {},             # host name -> record (see hatui.lab.node)
        "pairs": {},             # pair name -> {"members": [...], "drbd": bool, "left_out": [...]}
    }


def load_state(paths: LabPaths) -> dict[str, Any] | None:
    try:
        text = paths.state_file.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LabError(f"cannot read the lab state {paths.state_file}: {exc.strerror}") from None
    try:
        state = json.loads(text)
    except ValueError:
        raise LabError(f"the lab state {paths.state_file} is damaged (not JSON); "
                       f"remove what it describes by hand, then delete it") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise LabError(f"the lab state {paths.state_file} has an unknown format")
    return state


def save_state(paths: LabPaths, state: dict[str, Any]) -> None:
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    tmp = paths.state_file.with_name(paths.state_file.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(state, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
    os.replace(tmp, paths.state_file)


def update_state(paths: LabPaths, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Load (or start) the state, apply `change`, save it atomically; returns the new state."""
    state = load_state(paths) or empty_state()
    change(state)
    save_state(paths, state)
    return state


# --------------------------------------------------------------------------------------------
# Locking: one lab command at a time (flock), reentrant within a process.

_lock_guard = threading.RLock()
_lock_depth: dict[Path, tuple[int, int]] = {}  # lock path -> (fd, depth)


@contextmanager
def lab_lock(paths: LabPaths, timeout_s: float = 60.0) -> Iterator[None]:
    deadline = time.monotonic() + timeout_s
    with _lock_guard:
        key = paths.lock_file
        held = _lock_depth.get(key)
        if held is not None:
            _lock_depth[key] = (held[0], held[1] + 1)
            try:
                yield
            finally:
                fd, depth = _lock_depth[key]
                _lock_depth[key] = (fd, depth - 1)
            return
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise LabError(f"another hatui lab command holds {key} (waited {timeout_s:g} s)") from None
                    time.sleep(0.05)
            _lock_depth[key] = (fd, 1)
            try:
                yield
            finally:
                del _lock_depth[key]
        finally:
            os.close(fd)


# --------------------------------------------------------------------------------------------
# Processes, identified by PID and start time (so a recycled PID is never mistaken for ours)


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, parent PID, start time in clock ticks) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def proc_start(pid: int) -> int | None:
    stat = proc_stat(pid)
    return stat[2] if stat else None


def is_ours(record: dict[str, Any] | None) -> bool:
    """True if the recorded process {"pid", "start"} still exists (and is not a zombie)."""
    if not record:
        return False
    stat = proc_stat(int(record["pid"]))
    return stat is not None and stat[2] == record.get("start") and stat[0] not in ("Z", "X")


def kill_recorded(record: dict[str, Any] | None, sig: int) -> bool:
    """Send `sig` to a recorded process, only if it is still the one we recorded."""
    if not is_ours(record):
        return False
    try:
        os.kill(int(record["pid"]), sig)  # type: ignore[index]
        return True
    except ProcessLookupError:
        return False

"""The seam between the emulated Proxmox API and whatever really runs a VM.

The emulator owns the API-visible state (config, locks, snapshots, tasks). A *backend* is told
when a VM must really start, stop, be snapshotted or rolled back; the default backend does
nothing but remember the run state, a lab backend turns a started VM into a namespace host.

Select a backend with ``--backend module:Class`` (repeat ``--backend-opt KEY=VALUE`` to pass
options). The class is instantiated as ``Class(state_dir=Path, **options)`` (option values are
strings). Every hook runs inside a task's worker thread, never under the emulator's state lock,
so it may take seconds; raise an exception to fail the task: its message (first line) becomes
the task's ``exitstatus`` and the last ``TASK ERROR:`` log line.

Required hooks (the `VmBackend` protocol): ``start``, ``stop``, ``snapshot``, ``rollback``,
``delete_snapshot``, ``status``. Optional hooks, called when the class defines them:
``shutdown(vm, timeout)`` (else ``stop``), ``suspend(vm)``, ``resume(vm)``, ``destroy(vm)``,
``migrate(vm, target_node)`` (called after the config moved; else nothing happens),
``close()`` (at emulator exit).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Disk:
    key: str  # "scsi0"
    storage: str  # "local-lvm"
    volume: str  # "local-lvm:vm-101-disk-0"
    size_gb: int


@dataclass(frozen=True)
class Nic:
    key: str  # "net0"
    model: str  # "virtio"
    mac: str  # "BC:24:11:5E:7A:03"
    bridge: str  # "vmbr0" ("" when not attached)
    tag: int | None = None


@dataclass(frozen=True)
class VmInfo:
    """A read-only view of one VM handed to backend hooks."""

    vmid: int
    node: str
    name: str
    cores: int
    sockets: int
    memory_mb: int
    disks: tuple[Disk, ...]
    nics: tuple[Nic, ...]
    config: dict[str, Any] = field(default_factory=dict)  # a copy of the VM's config


@runtime_checkable
class VmBackend(Protocol):
    def start(self, vm: VmInfo) -> None: ...

    def stop(self, vm: VmInfo) -> None: ...

    def snapshot(self, vm: VmInfo, name: str) -> None: ...

    def rollback(self, vm: VmInfo, name: str) -> None: ...

    def delete_snapshot(self, vm: VmInfo, name: str) -> None: ...

    def status(self, vm: VmInfo) -> str | None:
        """``"running"`` / ``"stopped"``, or None when the backend has no opinion.

        Called whenever the API reports a VM's state; a backend that says ``stopped`` for a VM the
        emulator believes running makes the emulator record it as stopped (the VM "crashed").
        Must be cheap.
        """
        ...


class MemoryBackend:
    """Default backend: nothing runs; only the state the API shows exists."""

    def __init__(self, state_dir: Path | None = None, **_options: str) -> None:
        self._lock = threading.Lock()
        self._running: set[int] = set()
        self._snapshots: dict[int, set[str]] = {}

    def start(self, vm: VmInfo) -> None:
        with self._lock:
            self._running.add(vm.vmid)

    def stop(self, vm: VmInfo) -> None:
        with self._lock:
            self._running.discard(vm.vmid)

    def snapshot(self, vm: VmInfo, name: str) -> None:
        with self._lock:
            self._snapshots.setdefault(vm.vmid, set()).add(name)

    def rollback(self, vm: VmInfo, name: str) -> None:
        return None

    def delete_snapshot(self, vm: VmInfo, name: str) -> None:
        with self._lock:
            self._snapshots.get(vm.vmid, set()).discard(name)

    def status(self, vm: VmInfo) -> str | None:
        return None  # no opinion: the emulator's own record is the truth


def load_backend(spec: str | None, state_dir: Path, options: dict[str, str]) -> Any:
    """Instantiate ``module:Class`` (None -> MemoryBackend) and check it has the required hooks."""
    if not spec:
        return MemoryBackend(state_dir=state_dir, **options)
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"--backend must look like module:Class, got {spec!r}")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"--backend {spec}: module {module_name!r} has no attribute {class_name!r}")
    backend = cls(state_dir=state_dir, **options)
    missing = [h for h in ("start", "stop", "snapshot", "rollback", "delete_snapshot", "status") if not callable(getattr(backend, h, None))]
    if missing:
        raise ValueError(f"--backend {spec}: missing hook(s): {', '.join(missing)}")
    return backend


class FaultInjectingBackend(MemoryBackend):
    """MemoryBackend plus fault injection and a call log, driven by files in the state dir.

    ``<state-dir>/backend-faults`` (re-read at every hook call), one rule per line::

        fail HOOK VMID MESSAGE...   # that hook fails for that VM with MESSAGE (task error)
        crash VMID                  # status() reports the VM stopped (it "died")

    Every hook call is appended to ``<state-dir>/backend-calls.log`` as ``HOOK VMID NODE [ARG]``.
    Select it with ``--backend hatui.lab.pve.backend:FaultInjectingBackend``.
    """

    def __init__(self, state_dir: Path | None = None, **options: str) -> None:
        super().__init__(state_dir, **options)
        if state_dir is None:
            raise ValueError("FaultInjectingBackend needs state_dir")
        self._faults = Path(state_dir) / "backend-faults"
        self._calls = Path(state_dir) / "backend-calls.log"

    def _rules(self) -> list[list[str]]:
        try:
            text = self._faults.read_text()
        except FileNotFoundError:
            return []
        return [line.split(None, 3) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]

    def _hook(self, hook: str, vm: VmInfo, arg: str = "") -> None:
        with self._lock:
            with open(self._calls, "a") as fh:
                fh.write(f"{hook} {vm.vmid} {vm.node}{' ' + arg if arg else ''}\n")
        for rule in self._rules():
            if len(rule) >= 3 and rule[0] == "fail" and rule[1] == hook and rule[2] == str(vm.vmid):
                raise RuntimeError(rule[3] if len(rule) > 3 else f"{hook} failed")

    def start(self, vm: VmInfo) -> None:
        self._hook("start", vm)
        super().start(vm)

    def stop(self, vm: VmInfo) -> None:
        self._hook("stop", vm)
        super().stop(vm)

    def snapshot(self, vm: VmInfo, name: str) -> None:
        self._hook("snapshot", vm, name)
        super().snapshot(vm, name)

    def rollback(self, vm: VmInfo, name: str) -> None:
        self._hook("rollback", vm, name)

    def delete_snapshot(self, vm: VmInfo, name: str) -> None:
        self._hook("delete_snapshot", vm, name)
        super().delete_snapshot(vm, name)

    def status(self, vm: VmInfo) -> str | None:
        for rule in self._rules():
            if len(rule) >= 2 and rule[0] == "crash" and rule[1] == str(vm.vmid):
                return "stopped"
        return None

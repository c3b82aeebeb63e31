"""The emulated cluster: nodes, VMs, tasks, locks, snapshots, HA — and their persistence.

All state lives in one `Cluster` guarded by one re-entrant lock (`Cluster.lock`). API handlers
run with the lock held. A task's synchronous *prepare* part (checks that PVE makes inside the
worker but that must be deterministic here, and setting the config lock) also runs with it held;
the rest runs in a worker thread that takes the lock only for short state changes and never
holds it across sleeps or backend hooks.

State is persisted to ``state.json`` (atomic rename) after each change.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generator, Iterable

from hatui.lab.pve import schema as S
from hatui.lab.pve.backend import Disk, Nic, VmInfo

log = logging.getLogger("hatui.lab.pve")

PVE_VERSION = "8.4.1"
PVE_RELEASE = "8.4"
PVE_REPOID = "2a5fa54a8503f96d"
KERNEL = "6.8.12-9-pve"
QEMU_VERSION = "9.2.0"
MAC_PREFIX = "BC:24:11"
OFFLINE_FILE = "offline-nodes"
STATE_FILE = "state.json"
MAX_TASKS_KEPT = 500

# Base task durations in seconds (multiplied by --time-scale).
TASK_SECONDS = {
    "qmcreate": 0.6, "qmstart": 0.5, "qmstop": 0.25, "qmshutdown": 0.6, "qmreboot": 0.8,
    "qmreset": 0.2, "qmpause": 0.1, "qmresume": 0.1, "qmsuspend": 0.5, "qmsnapshot": 0.7,
    "qmrollback": 0.7, "qmdelsnapshot": 0.5, "qmdestroy": 0.4, "qmconfig": 0.2, "qmigrate": 1.0,
    "hastart": 0.1, "hastop": 0.1, "hamigrate": 0.1,
}  # fmt: skip

STORAGES: dict[str, dict[str, Any]] = {
    "local": {"type": "dir", "content": "backup,iso,vztmpl", "shared": 0, "maxdisk": 100861726720},
    "local-lvm": {"type": "lvmthin", "content": "images,rootdir", "shared": 0, "maxdisk": 3791650816000},
    "shared": {"type": "nfs", "content": "images", "shared": 1, "maxdisk": 8796093022208},
}

DRIVE_RE = re.compile(r"(scsi|virtio|sata|ide)(\d+)|efidisk0")
NET_RE = re.compile(r"net(\d+)")


class ApiError(Exception):
    """An error answered synchronously. 400 carries `errors`; 401/595 have an empty body."""

    def __init__(self, status: int, message: str, *, errors: dict[str, str] | None = None, empty_body: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.empty_body = empty_body


def die(message: str) -> ApiError:
    """PVE's ``die "...\\n"`` in a handler: HTTP 500 with the message."""
    return ApiError(500, message)


def param_error(errors: dict[str, str]) -> ApiError:
    return ApiError(400, "Parameter verification failed.", errors=errors)


class TaskError(Exception):
    """Ends a task with ``TASK ERROR: <message>``."""


def conf_missing(node: str, vmid: int) -> str:
    return f"Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"


def locked(lock: str) -> str:
    return f"VM is locked ({lock})"


# --------------------------------------------------------------------------------------------


@dataclass
class Vm:
    vmid: int
    node: str
    config: dict[str, Any]
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "stopped"  # running | stopped
    qmpstatus: str = "stopped"
    started_at: float = 0.0
    pid: int = 0
    vmstate_saved: bool = False  # hibernated (suspend todisk)

    def to_json(self) -> dict[str, Any]:
        return {
            "vmid": self.vmid, "node": self.node, "config": self.config, "snapshots": self.snapshots,
            "status": self.status, "qmpstatus": self.qmpstatus, "started_at": self.started_at, "pid": self.pid,
            "vmstate_saved": self.vmstate_saved,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Vm":
        return cls(**d)


@dataclass
class Task:
    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str  # user@realm[!token]
    status: str = "running"
    exitstatus: str | None = None
    endtime: int | None = None
    lines: list[str] = field(default_factory=list)
    warnings: int = 0
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def status_dict(self) -> dict[str, Any]:
        user, _, token = self.user.partition("!")
        d: dict[str, Any] = {
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.type, "id": self.id, "user": user, "status": self.status,
        }  # fmt: skip
        if token:
            d["tokenid"] = token
        if self.status == "stopped":
            d["exitstatus"] = self.exitstatus
        return d

    def list_item(self) -> dict[str, Any]:
        d = self.status_dict()
        d.pop("exitstatus", None)
        if self.status == "stopped":
            d["status"] = self.exitstatus
            d["endtime"] = self.endtime
        else:
            d["status"] = "RUNNING"
        return d

    def to_json(self) -> dict[str, Any]:
        return {
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.type, "id": self.id, "user": self.user,
            "status": self.status, "exitstatus": self.exitstatus, "endtime": self.endtime, "lines": self.lines,
            "warnings": self.warnings,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Task":
        task = cls(**d)
        if task.status == "running":  # the emulator died under it
            task.status, task.exitstatus, task.endtime = "stopped", "unexpected status", int(time.time())
        return task


class TaskCtx:
    """What a task body sees: logging, scaled cancellable sleeps, the cluster."""

    def __init__(self, cluster: "Cluster", task: Task) -> None:
        self.cluster = cluster
        self.task = task

    def log(self, line: str) -> None:
        with self.cluster.lock:
            self.task.lines.append(line)

    def warn(self, line: str) -> None:
        with self.cluster.lock:
            self.task.lines.append(f"WARN: {line}")
            self.task.warnings += 1

    def sleep(self, seconds: float | None = None) -> None:
        if seconds is None:
            seconds = TASK_SECONDS.get(self.task.type, 0.3)
        if self.task.cancel.wait(max(0.0, seconds * self.cluster.time_scale)):
            raise TaskError("received interrupt")


TaskBody = Callable[[TaskCtx], Generator[None, None, None]]


# --------------------------------------------------------------------------------------------


class Cluster:
    def __init__(
        self,
        state_dir: Path,
        nodes: list[str],
        backend: Any,
        *,
        cluster_name: str = "lab",
        time_scale: float = 1.0,
        bridges: Iterable[str] = ("vmbr0", "vmbr1"),
        qdevice: bool = False,
        ha_interval: float = 2.0,
        node_ips: dict[str, str] | None = None,
    ) -> None:
        if not nodes:
            raise ValueError("at least one node is needed")
        self.state_dir = state_dir
        self.nodes = list(nodes)
        self.local_node = self.nodes[0]
        self.backend = backend
        self.cluster_name = cluster_name
        self.time_scale = time_scale
        self.bridges = set(bridges)
        self.qdevice = qdevice
        self.ha_interval = ha_interval
        self.node_ips = node_ips or {n: f"192.0.2.{11 + i}" for i, n in enumerate(self.nodes)}
        self.lock = threading.RLock()
        self.vms: dict[int, Vm] = {}
        self.tasks: dict[str, Task] = {}
        self.ha_resources: dict[str, dict[str, Any]] = {}
        self.ha_groups: dict[str, dict[str, Any]] = {}
        self.ha_state: dict[str, dict[str, Any]] = {}  # sid -> {"crm_state", "node", "target"}
        self.boot_time = time.time() - 86400
        self.fingerprint = ""  # the server certificate's, shown in GET /nodes
        self.flocks: dict[int, threading.Lock] = {}
        self.fenced: dict[int, VmInfo] = {}  # VMs recovered by HA whose old instance awaits stop()
        self._pid = random.randint(0x1000, 0x3FFFFF)
        self._offline_cache: tuple[tuple[int, int, int], frozenset[str]] = ((-1, -1, -1), frozenset())
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.load()

    # ---- persistence --------------------------------------------------------------------

    def load(self) -> None:
        path = self.state_dir / STATE_FILE
        if not path.exists():
            return
        data = json.loads(path.read_text())
        self.vms = {int(k): Vm.from_json(v) for k, v in data.get("vms", {}).items()}
        self.tasks = {t["upid"]: Task.from_json(t) for t in data.get("tasks", [])}
        self.ha_resources = data.get("ha_resources", {})
        self.ha_groups = data.get("ha_groups", {})
        self.ha_state = data.get("ha_state", {})
        for vm in self.vms.values():
            if vm.node not in self.nodes:
                log.warning("VM %s lives on unknown node %s; moved to %s", vm.vmid, vm.node, self.local_node)
                vm.node = self.local_node

    def save(self) -> None:
        with self.lock:
            tasks = sorted(self.tasks.values(), key=lambda t: (t.starttime, t.pid))[-MAX_TASKS_KEPT:]
            self.tasks = {t.upid: t for t in tasks}
            data = {
                "version": 1,
                "vms": {str(k): v.to_json() for k, v in sorted(self.vms.items())},
                "tasks": [t.to_json() for t in tasks],
                "ha_resources": self.ha_resources,
                "ha_groups": self.ha_groups,
                "ha_state": self.ha_state,
            }
            tmp = self.state_dir / (STATE_FILE + ".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, self.state_dir / STATE_FILE)

    # ---- nodes, quorum ------------------------------------------------------------------

    def offline_nodes(self) -> frozenset[str]:
        """Nodes listed in ``<state-dir>/offline-nodes`` (re-read when the file changes)."""
        path = self.state_dir / OFFLINE_FILE
        try:
            st = path.stat()
        except FileNotFoundError:
            return frozenset()
        mtime = (st.st_mtime_ns, st.st_ino, st.st_size)
        if mtime != self._offline_cache[0]:
            names = frozenset(w for w in re.split(r"[\s,]+", path.read_text()) if w and not w.startswith("#"))
            self._offline_cache = (mtime, names)
        return self._offline_cache[1]

    def is_online(self, node: str) -> bool:
        return node in self.nodes and node not in self.offline_nodes()

    def quorate(self) -> bool:
        votes = sum(1 for n in self.nodes if self.is_online(n)) + (1 if self.qdevice else 0)
        expected = len(self.nodes) + (1 if self.qdevice else 0)
        return votes * 2 > expected

    def check_node(self, node: str) -> None:
        """Routing for ``/nodes/{node}/...``: unknown -> 500 lookup failure, offline -> 595."""
        if node not in self.nodes:
            raise die(f"hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known")
        if not self.is_online(node):
            raise ApiError(595, "No route to host", empty_body=True)

    def check_quorum(self) -> None:
        if not self.quorate():
            raise die("cluster not ready - no quorum?")

    # ---- helpers ------------------------------------------------------------------------

    def vm_on(self, node: str, vmid: int, missing: str | None = None) -> Vm:
        vm = self.vms.get(vmid)
        if vm is None or vm.node != node:
            raise die(missing or conf_missing(node, vmid))
        return vm

    def vm_info(self, vm: Vm) -> VmInfo:
        cfg = vm.config
        disks, nics = [], []
        for key, value in cfg.items():
            if DRIVE_RE.fullmatch(key):
                d = _parse_loose(value, "file")
                if d.get("media") == "cdrom" or d.get("file", "none") == "none":
                    continue
                disks.append(Disk(key, d["file"].split(":", 1)[0], d["file"], _size_gb(d.get("size", "0"))))
            elif NET_RE.fullmatch(key):
                n = _parse_net(value)
                tag = n.get("tag")
                nics.append(Nic(key, n.get("model", ""), n.get("macaddr", ""), n.get("bridge", ""), int(tag) if tag else None))
        return VmInfo(
            vmid=vm.vmid,
            node=vm.node,
            name=str(cfg.get("name", f"VM {vm.vmid}")),
            cores=int(cfg.get("cores", 1)),
            sockets=int(cfg.get("sockets", 1)),
            memory_mb=_memory_mb(cfg),
            disks=tuple(sorted(disks, key=lambda d: _keysort(d.key))),
            nics=tuple(sorted(nics, key=lambda n: _keysort(n.key))),
            config=copy.deepcopy(cfg),
        )

    def next_pid(self) -> int:
        self._pid += random.randint(1, 40)
        return self._pid

    def reconcile(self, vm: Vm) -> None:
        """Ask the backend whether a VM we think running still runs (cheap hook)."""
        if vm.status != "running":
            return
        try:
            state = self.backend.status(self.vm_info(vm))
        except Exception as exc:  # a broken backend must not break the API
            log.warning("backend status(%s) failed: %s", vm.vmid, exc)
            return
        if state == "stopped":
            log.info("backend reports VM %s stopped", vm.vmid)
            vm.status, vm.qmpstatus, vm.pid, vm.started_at = "stopped", "stopped", 0, 0.0
            self.save()

    def ha_managed(self, vmid: int) -> dict[str, Any] | None:
        res = self.ha_resources.get(f"vm:{vmid}")
        if res is None or res.get("state") == "ignored":
            return None
        return res

    # ---- tasks --------------------------------------------------------------------------

    def start_task(self, node: str, ttype: str, tid: str, user: str, body: TaskBody) -> str:
        """Create a task and run `body`: up to its first ``yield`` now (caller holds the lock),
        the rest in a worker thread. Returns the UPID."""
        now = time.time()
        pid = self.next_pid()
        pstart = int((now - self.boot_time) * 100)
        starttime = int(now)
        upid = f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{ttype}:{tid}:{user}:"
        task = Task(upid, node, pid, pstart, starttime, ttype, tid, user)
        self.tasks[upid] = task
        ctx = TaskCtx(self, task)
        gen = body(ctx)
        try:
            next(gen)
        except StopIteration:
            self._finish(task, None)
            return upid
        except Exception as exc:
            self._finish(task, exc)
            return upid
        thread = threading.Thread(target=self._run_task, args=(task, gen), name=f"task-{ttype}-{tid}", daemon=True)
        thread.start()
        return upid

    def _run_task(self, task: Task, gen: Generator[None, None, None]) -> None:
        error: BaseException | None = None
        try:
            for _ in gen:
                pass
        except BaseException as exc:
            error = exc
        with self.lock:
            self._finish(task, error)

    def _finish(self, task: Task, error: BaseException | None) -> None:
        with self.lock:
            if error is None:
                task.exitstatus = f"WARNINGS: {task.warnings}" if task.warnings else "OK"
                task.lines.append(f"TASK {task.exitstatus}")
            else:
                if not isinstance(error, (TaskError, ApiError)):
                    log.exception("task %s crashed", task.upid, exc_info=error)
                msg = " ".join(str(error).strip().splitlines()) or error.__class__.__name__
                task.exitstatus = msg
                task.lines.append(f"TASK ERROR: {msg}")
            task.status = "stopped"
            task.endtime = int(time.time())
            self.save()

    def task_on(self, node: str, upid: str) -> Task:
        if not re.fullmatch(
            r"UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):",
            upid,
        ):
            raise param_error({"upid": "unable to parse worker upid"})
        task = self.tasks.get(upid)
        if task is None or task.node != node:
            raise param_error({"upid": "no such task"})
        return task

    # ---- backend calls from workers -----------------------------------------------------

    def call_backend(self, hook: str, vm: Vm, *args: Any, optional: bool = False) -> bool:
        """Call a backend hook without the lock; errors become task errors. False = hook absent."""
        fn = getattr(self.backend, hook, None)
        if fn is None:
            if optional:
                return False
            raise TaskError(f"backend has no '{hook}' hook")
        with self.lock:
            info = self.vm_info(vm)
        try:
            fn(info, *args)
        except TaskError:
            raise
        except Exception as exc:
            raise TaskError(str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__) from exc
        return True

    # ---- VM state transitions used by several operations ---------------------------------

    def set_running(self, vm: Vm) -> None:
        vm.status, vm.qmpstatus = "running", "running"
        vm.started_at = time.time()
        vm.pid = self.next_pid()

    def set_stopped(self, vm: Vm) -> None:
        vm.status, vm.qmpstatus, vm.started_at, vm.pid = "stopped", "stopped", 0.0, 0

    def do_start(self, ctx: TaskCtx, vm: Vm) -> None:
        """Really start (worker side, lock not held)."""
        with self.lock:
            for nic in self.vm_info(vm).nics:
                if nic.bridge and nic.bridge not in self.bridges:
                    raise TaskError(f"bridge '{nic.bridge}' does not exist")
        ctx.sleep()
        self.call_backend("start", vm)
        with self.lock:
            self.set_running(vm)
            if vm.config.get("lock") == "suspended":
                vm.config.pop("lock", None)
                vm.config.pop("vmstate", None)
            vm.vmstate_saved = False
            self.save()

    def do_stop(self, ctx: TaskCtx, vm: Vm, *, graceful: bool = False, timeout: int | None = None) -> None:
        ctx.sleep()
        if graceful and getattr(self.backend, "shutdown", None) is not None:
            self.call_backend("shutdown", vm, timeout)
        else:
            self.call_backend("stop", vm)
        with self.lock:
            self.set_stopped(vm)
            self.save()

    # ---- views --------------------------------------------------------------------------

    def vm_stats(self, vm: Vm) -> dict[str, Any]:
        info = self.vm_info(vm)
        maxmem = info.memory_mb * 1048576
        boot = _boot_disk(vm.config)
        maxdisk = _size_gb(_parse_loose(vm.config[boot], "file").get("size", "0")) * 1073741824 if boot else 0
        running = vm.status == "running"
        uptime = int(time.time() - vm.started_at) if running else 0
        seed = (vm.vmid * 7919) % 97
        d: dict[str, Any] = {
            "vmid": vm.vmid,
            "name": info.name,
            "status": vm.status,
            "uptime": uptime,
            "cpus": info.cores * info.sockets,
            "cpu": round(0.005 + seed / 4000, 4) if running else 0,
            "maxmem": maxmem,
            "mem": int(maxmem * (0.3 + seed / 1000)) if running else 0,
            "maxdisk": maxdisk,
            "disk": 0,
            "netin": uptime * (1800 + seed) if running else 0,
            "netout": uptime * (260 + seed) if running else 0,
            "diskread": uptime * 4096 if running else 0,
            "diskwrite": uptime * 1024 if running else 0,
        }
        if running:
            d["pid"] = vm.pid
        for key in ("lock", "tags"):
            if key in vm.config:
                d[key] = vm.config[key]
        if vm.config.get("template"):
            d["template"] = 1
        return d

    def ha_view(self, vmid: int) -> dict[str, Any]:
        res = self.ha_managed(vmid)
        if res is None:
            return {"managed": 0}
        st = self.ha_state.get(f"vm:{vmid}")
        d: dict[str, Any] = {"managed": 1, "state": st["crm_state"] if st else None}
        if "group" in res:
            d["group"] = res["group"]
        return d

    # ---- HA CRM loop --------------------------------------------------------------------

    def start_background(self) -> None:
        t = threading.Thread(target=self._crm_loop, name="ha-crm", daemon=True)
        t.start()
        self._threads.append(t)

    def stop_background(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)

    def _crm_loop(self) -> None:
        while not self._stop.wait(max(0.05, self.ha_interval)):
            try:
                with self.lock:
                    self.crm_tick()
            except Exception:
                log.exception("HA CRM tick failed")

    def crm_tick(self) -> None:
        """One pass of the (much simplified) HA cluster resource manager."""
        if not self.quorate():
            return
        changed = False
        for sid, res in sorted(self.ha_resources.items()):
            vmid = int(sid.split(":")[1])
            vm = self.vms.get(vmid)
            request = res.get("state", "started")
            st = self.ha_state.setdefault(sid, {"crm_state": "started" if request in ("started", "enabled") else "stopped"})
            if vm is None or request == "ignored":
                continue
            self.reconcile(vm)
            busy = any(t.status == "running" and t.id == str(vmid) and not t.type.startswith("ha") for t in self.tasks.values())
            if busy:
                continue
            if not self.is_online(vm.node):
                if request in ("started", "enabled"):
                    if st["crm_state"] != "fence":
                        st["crm_state"] = "fence"
                    else:
                        target = next((n for n in self.nodes if self.is_online(n)), None)
                        if target is not None:
                            self._ha_recover(vm, target)
                            st["crm_state"] = "recovery"
                    changed = True
                continue
            target = st.pop("target", None)
            if target and target != vm.node and self.is_online(target):
                st["crm_state"] = "migrate"
                self.start_task(vm.node, "qmigrate", str(vmid), "root@pam", self._migrate_body(vm, target, online=True, ha=True))
                changed = True
                continue
            if request in ("started", "enabled"):
                if vm.status != "running" and not vm.config.get("lock"):
                    st["crm_state"] = "started"
                    self.start_task(vm.node, "qmstart", str(vmid), "root@pam", self._ha_start_body(vm))
                    changed = True
                elif vm.status == "running" and st["crm_state"] != "started":
                    st["crm_state"] = "started"
                    changed = True
            elif request in ("stopped", "disabled"):
                if vm.status == "running" and not vm.config.get("lock"):
                    st["crm_state"] = "request_stop"
                    self.start_task(vm.node, "qmshutdown", str(vmid), "root@pam", self._ha_stop_body(vm))
                    changed = True
                elif vm.status != "running" and st["crm_state"] != "stopped":
                    st["crm_state"] = "stopped"
                    changed = True
        for sid in list(self.ha_state):
            if sid not in self.ha_resources:
                del self.ha_state[sid]
                changed = True
        if changed:
            self.save()

    def _ha_recover(self, vm: Vm, target: str) -> None:
        """Fenced node: the VM is dead there; move its config to `target` (stopped)."""
        old = vm.node
        if vm.status == "running":
            # the instance on the fenced node is dead; the backend hears of it (stop) right before
            # the recovery start, in the same worker, so the two never race
            self.fenced[vm.vmid] = self.vm_info(vm)
        self.set_stopped(vm)
        vm.node = target
        vm.config.pop("lock", None)
        log.info("HA recovery: VM %s moved from %s to %s", vm.vmid, old, target)

    def _ha_start_body(self, vm: Vm) -> TaskBody:
        def body(ctx: TaskCtx) -> Generator[None, None, None]:
            ctx.log("task started by HA resource agent")
            yield
            with self.lock:
                fenced = self.fenced.pop(vm.vmid, None)
            if fenced is not None:
                _quiet_call(getattr(self.backend, "stop", None), fenced)
            if vm.status == "running":
                return
            self.do_start(ctx, vm)
            with self.lock:
                st = self.ha_state.get(f"vm:{vm.vmid}")
                if st:
                    st["crm_state"] = "started"

        return body

    def _ha_stop_body(self, vm: Vm) -> TaskBody:
        def body(ctx: TaskCtx) -> Generator[None, None, None]:
            ctx.log("task started by HA resource agent")
            yield
            if vm.status != "running":
                return
            self.do_stop(ctx, vm, graceful=True)
            with self.lock:
                st = self.ha_state.get(f"vm:{vm.vmid}")
                if st:
                    st["crm_state"] = "stopped"

        return body

    def _migrate_body(self, vm: Vm, target: str, *, online: bool, ha: bool = False, local_disks: bool = False) -> TaskBody:
        vmid = vm.vmid

        def body(ctx: TaskCtx) -> Generator[None, None, None]:
            if ha:
                ctx.log("task started by HA resource agent")
            if vm.config.get("lock"):
                raise TaskError(locked(vm.config["lock"]))
            running = vm.status == "running"
            ctx.log(f"{_stamp()} starting migration of VM {vmid} to node '{target}' ({self.node_ips.get(target, target)})")
            if running and not local_disks:
                for disk in self.vm_info(vm).disks:
                    if not STORAGES.get(disk.storage, {}).get("shared"):
                        raise TaskError(
                            f"can't migrate local disk '{disk.volume}': can't live migrate attached local disks without with-local-disks option"
                        )
            vm.config["lock"] = "migrate"
            self.save()
            yield
            try:
                if not self.is_online(target):
                    ctx.log(f"{_stamp()} ERROR: migration aborted (duration 00:00:03): Can't connect to destination address using public key")
                    raise TaskError("migration aborted")
                if running:
                    ctx.log(f"{_stamp()} starting online/live migration on unix:/run/qemu-server/{vmid}.migrate")
                ctx.sleep()
                with self.lock:
                    vm.node = target
                self.call_backend("migrate", vm, target, optional=True)
                ctx.log(f"{_stamp()} migration finished successfully (duration 00:00:01)")
            finally:
                with self.lock:
                    vm.config.pop("lock", None)
                    st = self.ha_state.get(f"vm:{vmid}")
                    if st and st.get("crm_state") == "migrate":
                        st["crm_state"] = "started" if vm.status == "running" else "stopped"
                    self.save()

        return body


# --------------------------------------------------------------------------------------------
# small parsing helpers (config values are already validated)


def _parse_loose(value: Any, default_key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in str(value).split(","):
        if not part:
            continue
        if "=" in part:
            k, v = part.split("=", 1)
            out["file" if k == "volume" else k] = v
        elif default_key not in out:
            out[default_key] = part
    return out


def _parse_net(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in str(value).split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            if k in S.NET_MODELS:
                out["model"], out["macaddr"] = k, v
            else:
                out[k] = v
        elif part:
            out["model"] = part
    return out


def _size_gb(size: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", str(size))
    if not m:
        return 0
    num = float(m.group(1))
    factor = {"K": 1 / 1048576, "M": 1 / 1024, "G": 1, "T": 1024, "": 1 / 1073741824}[m.group(2)]
    return int(num * factor)


def _memory_mb(cfg: dict[str, Any]) -> int:
    mem = cfg.get("memory", "512")
    d = _parse_loose(mem, "current")
    try:
        return int(d.get("current", 512))
    except ValueError:
        return 512


def _keysort(key: str) -> tuple[str, int]:
    m = re.fullmatch(r"([a-z]+)(\d+)", key)
    return (m.group(1), int(m.group(2))) if m else (key, 0)


def _boot_disk(cfg: dict[str, Any]) -> str | None:
    boot = str(cfg.get("boot", ""))
    order = boot[6:] if boot.startswith("order=") else ""
    for dev in order.split(";"):
        if dev in cfg and DRIVE_RE.fullmatch(dev) and _parse_loose(cfg[dev], "file").get("media") != "cdrom":
            return dev
    for key in sorted((k for k in cfg if DRIVE_RE.fullmatch(k)), key=_keysort):
        if _parse_loose(cfg[key], "file").get("media") != "cdrom":
            return key
    return None


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _quiet_call(fn: Callable[..., Any] | None, *args: Any) -> None:
    if fn is None:
        return
    try:
        fn(*args)
    except Exception as exc:
        log.warning("backend call failed: %s", exc)


def config_digest(config: dict[str, Any], snapshots: dict[str, dict[str, Any]] | None = None) -> str:
    text = "".join(f"{k}: {config[k]}\n" for k in sorted(config))
    for name in sorted(snapshots or {}):
        text += f"\n[{name}]\n" + "".join(f"{k}: {v}\n" for k, v in sorted(snapshots[name].items()))  # type: ignore[index]
    return hashlib.sha1(text.encode()).hexdigest()


def random_mac() -> str:
    return MAC_PREFIX + "".join(f":{random.randint(0, 255):02X}" for _ in range(3))


def new_uuid() -> str:
    return str(uuid.uuid4())

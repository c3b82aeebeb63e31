"""The API endpoints: path templates, parameter schemas and handlers (proxmox-api.md §4).

Handlers run with `Cluster.lock` held and return the ``data`` value, a `Result` (data + total),
or `WaitTask` (POST config with ``background_delay``: the server waits without the lock).
"""

from __future__ import annotations

import copy
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator

from hatui.lab.pve import schema as S
from hatui.lab.pve.cluster import (
    PVE_RELEASE,
    PVE_REPOID,
    PVE_VERSION,
    KERNEL,
    QEMU_VERSION,
    STORAGES,
    Cluster,
    TaskCtx,
    TaskError,
    Vm,
    _keysort,
    _parse_loose,
    _parse_net,
    config_digest,
    conf_missing,
    die,
    locked,
    new_uuid,
    param_error,
    random_mac,
)
from hatui.lab.pve.schema import P

ROOT_ONLY = "Only root may use this option."


@dataclass
class Caller:
    userid: str  # user@realm or user@realm!token (as it appears in UPIDs)
    no_access: frozenset[int] = frozenset()  # VMIDs it has no privilege on (hidden, 403)

    @property
    def is_root(self) -> bool:
        return self.userid == "root@pam"


@dataclass
class Result:
    data: Any
    total: int | None = None


@dataclass
class WaitTask:
    upid: str
    delay: int
    vmid: int


Handler = Callable[[Cluster, Caller, dict[str, Any]], Any]


@dataclass
class Route:
    method: str
    template: str
    regex: re.Pattern[str]
    names: list[str]
    schema: dict[str, P]
    handler: Handler
    noauth: bool = False
    allowtoken: bool = True


ROUTES: list[Route] = []

PATH_PARAMS: dict[str, P] = {
    "node": S.NODE,
    "vmid": S.VMID,
    "snapname": S.SNAPNAME,
    "upid": P(optional=False),
    "sid": P(format="pve-ha-resource-or-vm-id", optional=False),
    "group": P(format="pve-configid", optional=False),
}


def route(method: str, template: str, params: dict[str, P] | None = None, *, noauth: bool = False, allowtoken: bool = True) -> Callable[[Handler], Handler]:
    names = re.findall(r"\{(\w+)\}", template)
    regex = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")
    schema = {n: PATH_PARAMS[n] for n in names}
    schema.update(params or {})

    def deco(fn: Handler) -> Handler:
        ROUTES.append(Route(method, template, regex, names, schema, fn, noauth, allowtoken))
        return fn

    return deco


def find_route(method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """(route, path params, path exists for some other method)."""
    exists = False
    for r in ROUTES:
        m = r.regex.match(path)
        if m:
            if r.method == method:
                return r, m.groupdict(), True
            exists = True
    return None, {}, exists


def vm_privilege(method: str, template: str) -> str:
    """The privilege PVE checks on /vms/{vmid} for a VM route (the one a 403 names)."""
    if method == "GET":
        return "VM.Audit"
    if "/status/" in template:
        return "VM.PowerMgmt"
    if template.endswith("/rollback"):
        return "VM.Snapshot.Rollback"
    if "/snapshot" in template:
        return "VM.Snapshot"
    if template.endswith("/migrate"):
        return "VM.Migrate"
    if template.endswith("/config"):
        return "VM.Config.Options"
    return "VM.Allocate"


def root_only(caller: Caller, p: dict[str, Any], names: tuple[str, ...]) -> None:
    errors = {n: ROOT_ONLY for n in names if n in p and not caller.is_root}
    if errors:
        raise param_error(errors)


def _refuse_locked(vm: Vm, error: Callable[[str], Exception], skiplock: bool = False) -> None:
    """A VM under a config lock (snapshot, migrate...) takes no change, unless the caller skips the lock."""
    if vm.config.get("lock") and not skiplock:
        raise error(locked(vm.config["lock"]))


# ============================================================================================
# access


@route("GET", "/access/ticket", noauth=True)
def ticket_index(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return None


@route("GET", "/access/domains", noauth=True)
def domains(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return [
        {"realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication"},
        {"realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server"},
    ]


# POST /access/ticket is answered by the server (it needs the auth module); registered for routing.
TICKET_SCHEMA = {
    "username": P(optional=False, max_length=64),
    "password": P(optional=False),
    "realm": P(format="pve-realm", max_length=32),
    "otp": P(),
    "tfa-challenge": P(),
    "path": P(max_length=64, requires="privs"),
    "privs": P(format="pve-priv-list", max_length=64, requires="path"),
    "new-format": P(type="boolean"),
}


@route("POST", "/access/ticket", TICKET_SCHEMA, noauth=True, allowtoken=False)
def ticket_create(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:  # pragma: no cover - server handles it
    raise die("internal: ticket handled by server")


# ============================================================================================
# version, cluster, nodes


@route("GET", "/")
def root_index(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return [{"subdir": s} for s in ("version", "cluster", "nodes", "storage", "access", "pools")]


@route("GET", "/version")
def version(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return {"version": PVE_VERSION, "release": PVE_RELEASE, "repoid": PVE_REPOID}


@route("GET", "/cluster")
def cluster_index(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return [{"name": n} for n in ("log", "options", "resources", "replication", "tasks", "backup", "ha", "acme", "status", "nextid", "firewall", "ceph", "jobs", "sdn", "metrics", "notifications", "config", "mapping")]


@route("GET", "/cluster/status")
def cluster_status(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    out: list[dict[str, Any]] = [
        {"type": "cluster", "id": "cluster", "name": c.cluster_name, "nodes": len(c.nodes), "quorate": int(c.quorate()), "version": 3 + len(c.nodes)}
    ]
    for i, n in enumerate(c.nodes):
        out.append(
            {"type": "node", "id": f"node/{n}", "name": n, "nodeid": i + 1, "ip": c.node_ips[n], "local": int(n == c.local_node), "online": int(c.is_online(n)), "level": ""}
        )
    return out


def _node_stats(c: Cluster, n: str) -> dict[str, Any]:
    idx = c.nodes.index(n)
    running = [vm for vm in c.vms.values() if vm.node == n and vm.status == "running"]
    used = 2147483648 + sum(c.vm_info(vm).memory_mb * 1048576 for vm in running)
    return {
        "uptime": int(time.time() - c.boot_time) + idx * 37,
        "cpu": round(0.02 + 0.01 * len(running), 4),
        "maxcpu": 8,
        "mem": used,
        "maxmem": 34359738368,
        "disk": 5368709120 + idx * 1048576,
        "maxdisk": 100861726720,
    }


@route("GET", "/nodes")
def nodes_list(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    out = []
    for n in c.nodes:
        item: dict[str, Any] = {"node": n, "id": f"node/{n}", "type": "node", "level": "", "ssl_fingerprint": c.fingerprint}
        if c.is_online(n):
            item.update(status="online", **_node_stats(c, n))
        else:
            item["status"] = "offline"
        out.append(item)
    return out


@route("GET", "/cluster/resources", {"type": P(enum=("vm", "storage", "node", "sdn"))})
def cluster_resources(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    want = p.get("type")
    out: list[dict[str, Any]] = []
    if want in (None, "vm"):
        for vmid in sorted(set(c.vms) - caller.no_access):
            vm = c.vms[vmid]
            online = c.is_online(vm.node)
            if online:
                c.reconcile(vm)
            st = c.vm_stats(vm)
            item: dict[str, Any] = {
                "id": f"qemu/{vmid}", "vmid": vmid, "node": vm.node, "type": "qemu", "name": st["name"],
                "status": (vm.qmpstatus if vm.status == "running" else "stopped") if online else "unknown",
                "template": int(bool(vm.config.get("template"))),
            }  # fmt: skip
            if online:
                for k in ("uptime", "cpu", "mem", "disk", "netin", "netout", "diskread", "diskwrite"):
                    item[k] = st[k]
            item["maxcpu"], item["maxmem"], item["maxdisk"] = st["cpus"], st["maxmem"], st["maxdisk"]
            ha = c.ha_managed(vmid)
            if ha is not None and f"vm:{vmid}" in c.ha_state:
                item["hastate"] = c.ha_state[f"vm:{vmid}"]["crm_state"]
            for k in ("lock", "tags"):
                if k in vm.config:
                    item[k] = vm.config[k]
            out.append(item)
    if want in (None, "node"):
        for n in c.nodes:
            item = {"id": f"node/{n}", "node": n, "type": "node", "level": "", "cgroup-mode": 2}
            if c.is_online(n):
                item.update(status="online", **_node_stats(c, n))
                if c.ha_resources:
                    item["hastate"] = "online"
            else:
                item.update(status="offline")
                if c.ha_resources:
                    item["hastate"] = "unknown"
            out.append(item)
    if want in (None, "storage"):
        for n in c.nodes:
            for sid, st in STORAGES.items():
                item = {"id": f"storage/{n}/{sid}", "storage": sid, "node": n, "type": "storage", "plugintype": st["type"], "shared": st["shared"], "content": st["content"]}
                if c.is_online(n):
                    item.update(status="available", maxdisk=st["maxdisk"], disk=st["maxdisk"] // 20)
                else:
                    item["status"] = "unknown"
                out.append(item)
    return out


@route("GET", "/cluster/nextid", {"vmid": P(type="integer", format="pve-vmid", minimum=100, maximum=999999999)})
def nextid(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    if "vmid" in p:
        vmid = int(p["vmid"])
        if vmid in c.vms:
            raise param_error({"vmid": f"VM {vmid} already exists"})
        return str(vmid)
    vmid = 100
    while vmid in c.vms:
        vmid += 1
    if vmid > 999999:
        raise die("unable to get any free VMID in range [100, 1000000]")
    return str(vmid)


@route("GET", "/cluster/tasks")
def cluster_tasks(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    tasks = sorted(c.tasks.values(), key=lambda t: (t.starttime, t.pid), reverse=True)[:50]
    return [t.list_item() for t in tasks]


@route("GET", "/nodes/{node}")
def node_index(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return [{"name": n} for n in ("qemu", "lxc", "status", "tasks", "storage", "network", "version", "time", "syslog")]


@route("GET", "/nodes/{node}/status")
def node_status(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    n = p["node"]
    st = _node_stats(c, n)
    return {
        "uptime": st["uptime"],
        "idle": 0,
        "loadavg": ["0.21", "0.18", "0.12"],
        "kversion": f"Linux {KERNEL} #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9 (2025-03-16T19:18Z)",
        "current-kernel": {"sysname": "Linux", "release": KERNEL, "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9 (2025-03-16T19:18Z)", "machine": "x86_64"},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "cpuinfo": {"model": "QEMU Virtual CPU (hatui emulator)", "cpus": st["maxcpu"], "sockets": 1, "cores": st["maxcpu"], "hvm": "1", "mhz": "2400.000", "user_hz": 100, "flags": "fpu vme de pse tsc msr pae"},
        "cpu": st["cpu"],
        "wait": 0.0004,
        "memory": {"total": st["maxmem"], "used": st["mem"], "free": st["maxmem"] - st["mem"], "available": st["maxmem"] - st["mem"]},
        "ksm": {"shared": 0},
        "swap": {"total": 8589930496, "used": 0, "free": 8589930496},
        "pveversion": f"pve-manager/{PVE_VERSION}/{PVE_REPOID}",
        "rootfs": {"total": st["maxdisk"], "avail": st["maxdisk"] - st["disk"], "used": st["disk"], "free": st["maxdisk"] - st["disk"]},
    }


# ============================================================================================
# qemu: list, create, destroy


@route("GET", "/nodes/{node}/qemu", {"full": P(type="boolean")})
def qemu_list(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    out = []
    for vmid in sorted(set(c.vms) - caller.no_access):
        vm = c.vms[vmid]
        if vm.node != p["node"]:
            continue
        c.reconcile(vm)
        st = c.vm_stats(vm)
        for k in ("diskread", "diskwrite"):
            st.pop(k)
        if S.to_bool(p.get("full")) and vm.status == "running":
            st.update(qmpstatus=vm.qmpstatus, **{"running-qemu": QEMU_VERSION, "running-machine": "pc-i440fx-9.2+pve1"})
        out.append(st)
    return out


def _drive_value(volume: str, opts: dict[str, str]) -> str:
    return ",".join([volume] + [f"{k}={opts[k]}" for k in sorted(opts)])


def _net_value(parsed: dict[str, str], old: str | None = None) -> str:
    mac = parsed.get("macaddr")
    if not mac and old:
        prev = _parse_net(old)
        if prev.get("model") == parsed.get("model"):
            mac = prev.get("macaddr")
    mac = (mac or random_mac()).upper()
    rest = {k: v for k, v in parsed.items() if k not in ("model", "macaddr")}
    parts = [f"{parsed['model']}={mac}"]
    if "bridge" in rest:
        parts.append(f"bridge={rest.pop('bridge')}")
    parts += [f"{k}={rest[k]}" for k in sorted(rest)]
    return ",".join(parts)


@dataclass
class NewDisk:
    key: str
    storage: str
    size: str  # GiB as given
    opts: dict[str, str]


def _typed(key: str, value: str) -> Any:
    if key in S.INT_KEYS or key in S.BOOL_KEYS:
        return int(value)
    if key in S.NUM_KEYS:
        f = float(value)
        return int(f) if f.is_integer() else f
    if key == "memory":
        d = _parse_loose(value, "current")
        return d["current"] if list(d) == ["current"] else value
    if key == "tags":
        return ";".join(sorted({t.lower() for t in re.split(r"[;, ]+", value.strip()) if t}))
    return value


def _prepare_values(c: Cluster, vmid: int, values: dict[str, str], old: dict[str, Any]) -> tuple[dict[str, Any], list[NewDisk]]:
    """Turn validated config parameters into stored values; new-volume syntax -> NewDisk."""
    out: dict[str, Any] = {}
    new: list[NewDisk] = []
    for key, value in values.items():
        if key == "cdrom":
            key = "ide2"
            value = value if "media=" in value else value + ",media=cdrom"
        if re.fullmatch(r"(scsi|virtio|sata|ide)\d+|efidisk0", key):
            fmt = S.PROPSTRINGS["efidisk" if key == "efidisk0" else "drive"]
            d = S.parse_property_string(fmt, value, key)
            file = d.pop("file")
            m = re.fullmatch(r"([^:]+):(\d+(?:\.\d+)?)", file)
            if d.get("media") != "cdrom" and m:
                storage = m.group(1)
                if storage not in STORAGES:
                    raise die(f"storage '{storage}' does not exist")
                if "images" not in STORAGES[storage]["content"].split(","):
                    raise param_error({"storage": f"storage '{storage}' does not support vm images"})
                new.append(NewDisk(key, storage, m.group(2), d))
                continue
            if ":" in file and file != "none":
                storage = file.split(":", 1)[0]
                if storage not in STORAGES:
                    raise die(f"storage '{storage}' does not exist")
            out[key] = _drive_value(file, d)
        elif re.fullmatch(r"net\d+", key):
            out[key] = _net_value(S.parse_property_string(S.PROPSTRINGS["net"], value, key), old.get(key))
        else:
            out[key] = _typed(key, value)
    return out, new


def _allocate(c: Cluster, vm: Vm, disk: NewDisk, ctx: TaskCtx | None) -> str:
    used = set()
    for cfg in [vm.config, *vm.snapshots.values()]:
        for v in cfg.values():
            for m in re.finditer(rf"vm-{vm.vmid}-disk-(\d+)", str(v)):
                used.add(int(m.group(1)))
    n = 0
    while n in used:
        n += 1
    size = f"{disk.size}G"
    st = STORAGES[disk.storage]
    if st["type"] in ("dir", "nfs"):
        volume = f"{disk.storage}:{vm.vmid}/vm-{vm.vmid}-disk-{n}.qcow2"
        if ctx:
            path = f"/mnt/pve/{disk.storage}/images/{vm.vmid}/vm-{vm.vmid}-disk-{n}.qcow2"
            ctx.log(f"Formatting '{path}', fmt=qcow2 cluster_size=65536 extended_l2=off preallocation=metadata compression_type=zlib size={int(float(disk.size) * 1073741824)} lazy_refcounts=off refcount_bits=16")
    else:
        volume = f"{disk.storage}:vm-{vm.vmid}-disk-{n}"
        if ctx:
            ctx.log(f'  Logical volume "vm-{vm.vmid}-disk-{n}" created.')
    opts = dict(disk.opts)
    opts["size"] = size
    value = _drive_value(volume, opts)
    if ctx:
        ctx.log(f"{disk.key}: successfully created disk '{value}'")
    vm.config[disk.key] = value
    return value


CREATE_EXTRA = ("start", "pool", "storage", "archive", "force", "unique", "bwlimit", "live-restore")


@route("POST", "/nodes/{node}/qemu", {k: v for k, v in S.CREATE_SCHEMA.items() if k not in ("node", "vmid")} | {"vmid": S.VMID})
def qemu_create(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid = p.pop("node"), int(p.pop("vmid"))
    extra = {k: p.pop(k) for k in CREATE_EXTRA if k in p}
    if "archive" in extra:
        raise die("restore from a backup archive is not supported by the hatui emulator")
    c.check_quorum()
    if vmid in c.vms:
        raise die(f"unable to create VM {vmid} - VM {vmid} already exists on node '{c.vms[vmid].node}'")
    values, new_disks = _prepare_values(c, vmid, p, {})
    start = S.to_bool(extra.get("start"))
    vm = Vm(vmid, node, {"lock": "create"})
    c.vms[vmid] = vm
    c.save()

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        yield
        try:
            ctx.sleep()
            with c.lock:
                for disk in new_disks:
                    _allocate(c, vm, disk, ctx)
                vm.config.update(values)
                cfg = vm.config
                if "boot" not in cfg:
                    disks = sorted((k for k in cfg if re.fullmatch(r"(ide|sata|scsi|virtio)\d+", k) and "media=cdrom" not in str(cfg[k])), key=lambda k: (("ide", "sata", "scsi", "virtio").index(_keysort(k)[0]), _keysort(k)[1]))
                    cdroms = sorted((k for k in cfg if re.fullmatch(r"(ide|sata|scsi)\d+", k) and "media=cdrom" in str(cfg[k])), key=_keysort)
                    nets = sorted((k for k in cfg if re.fullmatch(r"net\d+", k)), key=_keysort)
                    order = disks[:1] + cdroms[:1] + nets[:1]
                    if order:
                        cfg["boot"] = "order=" + ";".join(order)
                cfg.setdefault("smbios1", f"uuid={new_uuid()}")
                cfg.setdefault("vmgenid", new_uuid())
                cfg["meta"] = f"creation-qemu={QEMU_VERSION},ctime={int(time.time())}"
                cfg.pop("lock", None)
                c.save()
        except BaseException:
            with c.lock:
                if c.vms.get(vmid) is vm:
                    del c.vms[vmid]
                    c.save()
            raise
        if start:
            ctx.log("Execute autostart")
            try:
                _start_worker(c, ctx, vm, node, skiplock=False)
            except TaskError as exc:
                ctx.warn(f"start failed: {exc}")

    return c.start_task(node, "qmcreate", str(vmid), caller.userid, body)


@route("GET", "/nodes/{node}/qemu/{vmid}")
def qemu_index(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    c.vm_on(p["node"], int(p["vmid"]))
    return [{"subdir": s} for s in ("config", "pending", "status", "snapshot", "migrate", "agent", "rrd", "rrddata", "firewall", "vncproxy", "termproxy", "monitor", "sendkey", "feature", "clone", "move_disk", "resize", "unlink", "cloudinit")]


@route(
    "DELETE",
    "/nodes/{node}/qemu/{vmid}",
    {"purge": P(type="boolean"), "destroy-unreferenced-disks": P(type="boolean"), "skiplock": P(type="boolean")},
)
def qemu_destroy(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid = p["node"], int(p["vmid"])
    root_only(caller, p, ("skiplock",))
    vm = c.vm_on(node, vmid)
    if vm.config.get("protection"):
        raise die(f"can't remove VM {vmid} - protection mode enabled")
    purge = S.to_bool(p.get("purge"))
    if f"vm:{vmid}" in c.ha_resources and not purge:
        raise die(f"unable to remove VM {vmid} - used in HA resources and purge parameter not set.")
    if vm.status == "running":
        raise die(f"VM {vmid} is running - destroy failed")
    skiplock = S.to_bool(p.get("skiplock"))

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        _refuse_locked(vm, TaskError, skiplock=skiplock)
        yield
        ctx.sleep()
        c.call_backend("destroy", vm, optional=True)
        with c.lock:
            for disk in c.vm_info(vm).disks:
                if STORAGES.get(disk.storage, {}).get("type") == "lvmthin":
                    ctx.log(f'  Logical volume "{disk.volume.split(":", 1)[1]}" successfully removed.')
            if c.vms.get(vmid) is vm:
                del c.vms[vmid]
            if purge and f"vm:{vmid}" in c.ha_resources:
                ctx.log(f"purging VM {vmid} from related configurations..")
                del c.ha_resources[f"vm:{vmid}"]
                c.ha_state.pop(f"vm:{vmid}", None)
            c.save()

    return c.start_task(node, "qmdestroy", str(vmid), caller.userid, body)


# ============================================================================================
# config


@route("GET", "/nodes/{node}/qemu/{vmid}/config", {"current": P(type="boolean"), "snapshot": P(format="pve-configid", max_length=40)})
def config_get(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    if "snapshot" in p and "current" in p:
        msg = "cannot use 'snapshot' parameter with 'current'"
        raise param_error({"snapshot": msg, "current": msg})
    vm = c.vm_on(p["node"], int(p["vmid"]))
    if "snapshot" in p:
        snap = vm.snapshots.get(p["snapshot"])
        if snap is None:
            raise die(f"snapshot '{p['snapshot']}' does not exist")
        return copy.deepcopy(snap)
    cfg = copy.deepcopy(vm.config)
    if "cipassword" in cfg:
        cfg["cipassword"] = "**********"
    cfg["digest"] = config_digest(vm.config, vm.snapshots)
    return cfg


@route("GET", "/nodes/{node}/qemu/{vmid}/pending")
def config_pending(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    vm = c.vm_on(p["node"], int(p["vmid"]))
    return [{"key": k, "value": v} for k, v in sorted(vm.config.items())]


def _config_update(c: Cluster, caller: Caller, p: dict[str, Any]) -> tuple[Vm, dict[str, Any], list[NewDisk], list[str]]:
    node, vmid = p.pop("node"), int(p.pop("vmid"))
    root_only(caller, p, ("skiplock",))
    skiplock = S.to_bool(p.pop("skiplock", None))
    digest = p.pop("digest", None)
    p.pop("background_delay", None)
    force = S.to_bool(p.pop("force", None))
    delete = [k for k in re.split(r"[,;\s]+", p.pop("delete", "")) if k]
    revert = [k for k in re.split(r"[,;\s]+", p.pop("revert", "")) if k]
    vm = c.vm_on(node, vmid)
    if not p and not delete and not revert:
        raise die("no options specified")
    if digest is not None and digest != config_digest(vm.config, vm.snapshots):
        raise die("checksum mismatch (file change by other user?)")
    _refuse_locked(vm, die, skiplock=skiplock)
    errors = {k: "unable to delete required option" for k in delete if k in ("vmid", "node")}
    both = {k: "it is not possible to set and delete the same option" for k in delete if k in p}
    if errors or both:
        raise param_error(errors | both)
    values, new_disks = _prepare_values(c, vmid, p, vm.config)
    changes = [f"-{k} {v}" for k, v in p.items()] + [f"-delete {k}" for k in delete]
    for key in delete:
        old = vm.config.pop(key, None)
        if old is not None and re.fullmatch(r"(scsi|virtio|sata|ide)\d+|efidisk0", key) and "media=cdrom" not in str(old) and not force:
            n = 0
            while f"unused{n}" in vm.config:
                n += 1
            vm.config[f"unused{n}"] = str(old).split(",", 1)[0]
    vm.config.update(values)
    for disk in new_disks:
        _allocate(c, vm, disk, None)
    c.save()
    return vm, values, new_disks, changes


@route("PUT", "/nodes/{node}/qemu/{vmid}/config", {k: v for k, v in S.CONFIG_PUT_SCHEMA.items() if k not in ("node", "vmid")})
def config_put(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    _config_update(c, caller, p)
    return None


@route("POST", "/nodes/{node}/qemu/{vmid}/config", {k: v for k, v in S.CONFIG_POST_SCHEMA.items() if k not in ("node", "vmid")})
def config_post(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    delay = int(p.get("background_delay", 0) or 0)
    node, vmid = p["node"], int(p["vmid"])
    vm, _values, _new, changes = _config_update(c, caller, p)

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        ctx.log(f"update VM {vmid}: " + " ".join(changes))
        yield
        ctx.sleep()

    upid = c.start_task(node, "qmconfig", str(vmid), caller.userid, body)
    if delay:
        return WaitTask(upid, delay, vmid)
    return upid


# ============================================================================================
# status


@route("GET", "/nodes/{node}/qemu/{vmid}/status")
def status_index(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    c.vm_on(p["node"], int(p["vmid"]))
    return [{"subdir": s} for s in ("current", "start", "stop", "reset", "shutdown", "suspend", "reboot")]


@route("GET", "/nodes/{node}/qemu/{vmid}/status/current")
def status_current(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    vm = c.vm_on(p["node"], int(p["vmid"]))
    c.reconcile(vm)
    d = c.vm_stats(vm)
    d["qmpstatus"] = vm.qmpstatus if vm.status == "running" else "stopped"
    if vm.status == "running":
        maxmem = d["maxmem"]
        d["balloon"] = maxmem
        d["ballooninfo"] = {"actual": maxmem, "max_mem": maxmem, "total_mem": maxmem - 70000000, "free_mem": maxmem - d["mem"]}
        d["freemem"] = maxmem - d["mem"]
        d["running-qemu"] = QEMU_VERSION
        d["running-machine"] = "pc-i440fx-9.2+pve1"
    agent = vm.config.get("agent")
    if agent is not None and S.to_bool(_parse_loose(agent, "enabled").get("enabled")):
        d["agent"] = 1
    d["ha"] = c.ha_view(vm.vmid)
    d["clipboard"] = None
    return d


def _flock(c: Cluster, vmid: int) -> threading.Lock:
    with c.lock:
        return c.flocks.setdefault(vmid, threading.Lock())


class _Flock:
    """PVE's per-VM config flock (10 s timeout), taken by power-action workers."""

    def __init__(self, c: Cluster, vmid: int) -> None:
        self.lock = _flock(c, vmid)
        self.vmid = vmid

    def __enter__(self) -> None:
        if not self.lock.acquire(timeout=10):
            raise TaskError(f"can't lock file '/var/lock/qemu-server/lock-{self.vmid}.conf' - got timeout")

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()


def _current(c: Cluster, node: str, vmid: int, missing: str) -> Vm:
    vm = c.vms.get(vmid)
    if vm is None or vm.node != node:
        raise TaskError(missing)
    return vm


def _start_worker(c: Cluster, ctx: TaskCtx, vm: Vm, node: str, *, skiplock: bool) -> None:
    with _Flock(c, vm.vmid):
        with c.lock:
            vm = _current(c, node, vm.vmid, conf_missing(node, vm.vmid))
            lock = vm.config.get("lock")
            if lock and lock != "suspended" and not skiplock:
                raise TaskError(locked(lock))
            if vm.config.get("template"):
                raise TaskError("you can't start a vm if it's a template")
            c.reconcile(vm)
            if vm.status == "running":
                raise TaskError(f"VM {vm.vmid} already running")
        c.do_start(ctx, vm)


def _ha_request(c: Cluster, caller: Caller, node: str, vmid: int, ttype: str, state: str, line: str) -> str:
    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        ctx.log(line)
        res = c.ha_resources.get(f"vm:{vmid}")
        if res is not None:
            res["state"] = state
            c.save()
        yield
        ctx.sleep()

    return c.start_task(node, ttype, str(vmid), caller.userid, body)


POWER_ROOT = {
    "start": ("skiplock", "force-cpu", "stateuri", "migratedfrom", "migration_type", "migration_network", "targetstorage", "with-conntrack-state", "nets-host-mtu"),
    "stop": ("skiplock", "keepActive", "migratedfrom"),
    "shutdown": ("skiplock", "keepActive"),
    "reset": ("skiplock",),
    "suspend": ("skiplock",),
    "resume": ("skiplock", "nocheck"),
}


@route(
    "POST",
    "/nodes/{node}/qemu/{vmid}/status/start",
    {
        "timeout": P(type="integer", minimum=0), "skiplock": P(type="boolean"), "machine": P(format="machine"),
        "force-cpu": P(), "stateuri": P(max_length=128), "migratedfrom": P(format="pve-node"),
        "migration_type": P(enum=("secure", "insecure")), "migration_network": P(format="CIDR"),
        "targetstorage": P(format="storage-pair-list"), "with-conntrack-state": P(type="boolean"),
        "nets-host-mtu": P(pattern=r"net\d+=\d+(,net\d+=\d+)*"),
    },
)  # fmt: skip
def vm_start(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid = p["node"], int(p["vmid"])
    root_only(caller, p, POWER_ROOT["start"])
    c.check_quorum()
    skiplock = S.to_bool(p.get("skiplock"))
    vm = c.vms.get(vmid)
    if vm is not None and vm.node == node and c.ha_managed(vmid):
        return _ha_request(c, caller, node, vmid, "hastart", "started", f"Requesting HA start for VM {vmid}")

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        target = _current(c, node, vmid, conf_missing(node, vmid))
        yield
        _start_worker(c, ctx, target, node, skiplock=skiplock)

    return c.start_task(node, "qmstart", str(vmid), caller.userid, body)


def _no_conf(node: str, vmid: int) -> str:
    return f"unable to find configuration file for VM {vmid} on node '{node}'"


@route(
    "POST",
    "/nodes/{node}/qemu/{vmid}/status/stop",
    {"timeout": P(type="integer", minimum=0), "skiplock": P(type="boolean"), "keepActive": P(type="boolean"), "overrule-shutdown": P(type="boolean"), "migratedfrom": P(format="pve-node")},
)
def vm_stop(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid = p["node"], int(p["vmid"])
    root_only(caller, p, POWER_ROOT["stop"])
    skiplock = S.to_bool(p.get("skiplock"))
    vm = c.vms.get(vmid)
    if vm is not None and vm.node == node and c.ha_managed(vmid):
        if S.to_bool(p.get("overrule-shutdown")):
            raise param_error({"overrule-shutdown": "Not applicable for HA resources."})
        return _ha_request(c, caller, node, vmid, "hastop", "stopped", f"Requesting HA stop for VM {vmid}")
    overrule = S.to_bool(p.get("overrule-shutdown"))

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        _current(c, node, vmid, _no_conf(node, vmid))
        if overrule:
            for t in c.tasks.values():
                if t.status == "running" and t.type == "qmshutdown" and t.id == str(vmid):
                    ctx.log(f"overruling active shutdown task {t.upid}")
                    t.cancel.set()
        yield
        with _Flock(c, vmid):
            vm = _vm_to_stop(c, node, vmid, skiplock)
            if vm is not None:
                c.do_stop(ctx, vm)

    return c.start_task(node, "qmstop", str(vmid), caller.userid, body)


@route(
    "POST",
    "/nodes/{node}/qemu/{vmid}/status/shutdown",
    {"timeout": P(type="integer", minimum=0), "forceStop": P(type="boolean"), "skiplock": P(type="boolean"), "keepActive": P(type="boolean")},
)
def vm_shutdown(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid = p["node"], int(p["vmid"])
    root_only(caller, p, POWER_ROOT["shutdown"])
    skiplock = S.to_bool(p.get("skiplock"))
    force = S.to_bool(p.get("forceStop"))
    timeout = int(p["timeout"]) if "timeout" in p else None
    vm = c.vms.get(vmid)
    if vm is not None and vm.node == node:
        if c.ha_managed(vmid):
            return _ha_request(c, caller, node, vmid, "hastop", "stopped", f"Requesting HA stop for VM {vmid}")
        if vm.status == "running" and vm.qmpstatus in ("paused", "prelaunch", "suspended") and not force:
            raise die("VM is paused - cannot shutdown")

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        _current(c, node, vmid, _no_conf(node, vmid))
        yield
        with _Flock(c, vmid):
            vm = _vm_to_stop(c, node, vmid, skiplock)
            if vm is not None:
                c.do_stop(ctx, vm, graceful=True, timeout=timeout)

    return c.start_task(node, "qmshutdown", str(vmid), caller.userid, body)


def _vm_to_stop(c: Cluster, node: str, vmid: int, skiplock: bool) -> Vm | None:
    """The VM a stop or shutdown task acts on, None when it is not running (nothing to do)."""
    with c.lock:
        vm = _current(c, node, vmid, _no_conf(node, vmid))
        c.reconcile(vm)
        if vm.status != "running":
            return None
        _refuse_locked(vm, TaskError, skiplock=skiplock)
        return vm


def _running_vm(c: Cluster, node: str, vmid: int) -> Vm:
    vm = c.vms.get(vmid)
    if vm is None or vm.node != node:
        raise die(_no_conf(node, vmid))
    c.reconcile(vm)
    return vm


@route("POST", "/nodes/{node}/qemu/{vmid}/status/reboot", {"timeout": P(type="integer", minimum=0)})
def vm_reboot(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid = p["node"], int(p["vmid"])
    vm = _running_vm(c, node, vmid)
    if vm.status == "running" and vm.qmpstatus in ("paused", "prelaunch", "suspended"):
        raise die("VM is paused - cannot shutdown")
    if vm.status != "running":
        raise die(f"VM {vmid} not running")

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        yield
        with _Flock(c, vmid):
            with c.lock:
                _refuse_locked(vm, TaskError)
            c.do_stop(ctx, vm, graceful=True)
            c.do_start(ctx, vm)

    return c.start_task(node, "qmreboot", str(vmid), caller.userid, body)


@route("POST", "/nodes/{node}/qemu/{vmid}/status/reset", {"skiplock": P(type="boolean")})
def vm_reset(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid = p["node"], int(p["vmid"])
    root_only(caller, p, POWER_ROOT["reset"])
    vm = _running_vm(c, node, vmid)
    if vm.status != "running":
        raise die(f"VM {vmid} not running")
    skiplock = S.to_bool(p.get("skiplock"))

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        _refuse_locked(vm, TaskError, skiplock=skiplock)
        yield
        ctx.sleep()
        c.call_backend("stop", vm)
        c.call_backend("start", vm)
        with c.lock:
            c.set_running(vm)
            c.save()

    return c.start_task(node, "qmreset", str(vmid), caller.userid, body)


@route(
    "POST",
    "/nodes/{node}/qemu/{vmid}/status/suspend",
    {"todisk": P(type="boolean"), "statestorage": P(format="pve-storage-id", requires="todisk"), "skiplock": P(type="boolean")},
)
def vm_suspend(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid = p["node"], int(p["vmid"])
    root_only(caller, p, POWER_ROOT["suspend"])
    vm = _running_vm(c, node, vmid)
    todisk = S.to_bool(p.get("todisk"))
    if vm.status != "running":
        raise die(f"VM {vmid} not running")
    if todisk and c.ha_managed(vmid):
        raise die("Cannot suspend HA managed VM to disk")
    skiplock = S.to_bool(p.get("skiplock"))
    storage = p.get("statestorage", "local-lvm")

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        _refuse_locked(vm, TaskError, skiplock=skiplock)
        if todisk:
            vm.config["lock"] = "suspending"
            c.save()
        yield
        ctx.sleep()
        if not todisk:
            c.call_backend("suspend", vm, optional=True)
            with c.lock:
                vm.qmpstatus = "paused"
                c.save()
            return
        ctx.log(f"suspending to disk using storage '{storage}'")
        try:
            if not c.call_backend("suspend", vm, optional=True):
                c.call_backend("stop", vm)
        except TaskError:
            with c.lock:
                vm.config.pop("lock", None)
                c.save()
            raise
        with c.lock:
            c.set_stopped(vm)
            vm.config["lock"] = "suspended"
            vm.config["vmstate"] = f"{storage}:vm-{vmid}-state-suspend-{time.strftime('%Y-%m-%d')}"
            vm.vmstate_saved = True
            c.save()

    return c.start_task(node, "qmsuspend" if todisk else "qmpause", str(vmid), caller.userid, body)


@route("POST", "/nodes/{node}/qemu/{vmid}/status/resume", {"skiplock": P(type="boolean"), "nocheck": P(type="boolean")})
def vm_resume(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid = p["node"], int(p["vmid"])
    root_only(caller, p, POWER_ROOT["resume"])
    vm = _running_vm(c, node, vmid)
    if vm.status != "running" and vm.config.get("lock") != "suspended":
        raise die(f"VM {vmid} not running")
    skiplock = S.to_bool(p.get("skiplock"))

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        lock = vm.config.get("lock")
        if lock and lock != "suspended" and not skiplock:
            raise TaskError(locked(lock))
        yield
        if vm.config.get("lock") == "suspended":
            c.do_start(ctx, vm)
            return
        ctx.sleep()
        if vm.qmpstatus == "running":
            return
        c.call_backend("resume", vm, optional=True)
        with c.lock:
            vm.qmpstatus = "running"
            c.save()

    return c.start_task(node, "qmresume", str(vmid), caller.userid, body)


# ============================================================================================
# snapshots


@route("GET", "/nodes/{node}/qemu/{vmid}/snapshot")
def snapshot_list(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    vm = c.vm_on(p["node"], int(p["vmid"]))
    c.reconcile(vm)
    out = []
    for name, snap in sorted(vm.snapshots.items(), key=lambda kv: (kv[1].get("snaptime", 0), kv[0])):
        item: dict[str, Any] = {"name": name, "snaptime": snap.get("snaptime", 0), "vmstate": int(bool(snap.get("vmstate"))), "description": snap.get("description", "")}
        if snap.get("parent"):
            item["parent"] = snap["parent"]
        if snap.get("snapstate"):
            item["snapstate"] = snap["snapstate"]
        out.append(item)
    current: dict[str, Any] = {"name": "current", "digest": config_digest(vm.config, vm.snapshots), "running": int(vm.status == "running"), "description": "You are here!"}
    if vm.config.get("parent"):
        current["parent"] = vm.config["parent"]
    out.append(current)
    return out


def _snap_disks(c: Cluster, vm: Vm) -> list[tuple[str, str]]:
    return [(d.key, d.volume) for d in c.vm_info(vm).disks]


def _snapshot_target(c: Cluster, p: dict[str, Any]) -> tuple[str, int, str, Vm]:
    """node, vmid, snapshot name and the VM of a snapshot route."""
    node, vmid = p["node"], int(p["vmid"])
    return node, vmid, p["snapname"], c.vm_on(node, vmid)


def _lvmthin_name(volume: str) -> str | None:
    """The logical volume behind `volume` when its storage is lvmthin (PVE logs those), else None."""
    storage, _, name = volume.partition(":")
    return name if STORAGES.get(storage, {}).get("type") == "lvmthin" else None


def _snapshot_of(vm: Vm, name: str, error: Callable[[str], Exception]) -> dict[str, Any]:
    snap = vm.snapshots.get(name)
    if snap is None:
        raise error(f"snapshot '{name}' does not exist")
    return snap


def _unlock_after_failure(c: Cluster, vm: Vm, lock: str) -> None:
    """A failed task drops its own lock only, not one set since by someone else."""
    with c.lock:
        if vm.config.get("lock") == lock:
            vm.config.pop("lock")
        c.save()


@route("POST", "/nodes/{node}/qemu/{vmid}/snapshot", {"snapname": S.SNAPNAME, "description": P(), "vmstate": P(type="boolean")})
def snapshot_create(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid, name, vm = _snapshot_target(c, p)
    if name == "current":
        raise die("unable to use snapshot name 'current' (reserved name)")
    if name.lower() == "pending":
        raise die("unable to use snapshot name 'pending' (reserved name)")
    want_ram = S.to_bool(p.get("vmstate"))
    description = p.get("description", "")

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        _refuse_locked(vm, TaskError)
        if name in vm.snapshots:
            raise TaskError(f"snapshot name '{name}' already used")
        if vm.config.get("template"):
            raise TaskError("you can't take a snapshot if it's a template")
        c.reconcile(vm)
        ram = want_ram and vm.status == "running"
        snap = {k: copy.deepcopy(v) for k, v in vm.config.items() if k not in ("lock", "parent")}
        if vm.config.get("parent"):
            snap["parent"] = vm.config["parent"]
        snap["snaptime"] = int(time.time())
        snap["snapstate"] = "prepare"
        if description:
            snap["description"] = description
        if ram:
            snap["vmstate"] = f"local-lvm:vm-{vmid}-state-{name}"
            snap["runningmachine"] = "pc-i440fx-9.2+pve1"
            snap["runningcpu"] = "kvm64,enforce,+kvm_pv_eoi,+kvm_pv_unhalt,+lahf_lm,+sep"
        vm.config["lock"] = "snapshot"
        vm.snapshots[name] = snap
        c.save()
        yield
        try:
            if ram:
                ctx.log("saving VM state and RAM using storage 'local-lvm'")
                ctx.log("completed saving the VM state in 1s, saved 180.12 MiB")
            for key, volume in _snap_disks(c, vm):
                ctx.log(f"snapshotting 'drive-{key}' ({volume})")
                if lv := _lvmthin_name(volume):
                    ctx.log(f'  Logical volume "snap_{lv}_{name}" created.')
            ctx.sleep()
            c.call_backend("snapshot", vm, name)
        except BaseException:
            with c.lock:  # re-entrant: drop the snapshot and the lock in one step
                vm.snapshots.pop(name, None)
                _unlock_after_failure(c, vm, "snapshot")
            raise
        with c.lock:
            vm.snapshots[name].pop("snapstate", None)
            vm.config.pop("lock", None)
            vm.config["parent"] = name
            c.save()

    return c.start_task(node, "qmsnapshot", str(vmid), caller.userid, body)


@route("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def snapshot_index(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    c.vm_on(p["node"], int(p["vmid"]))
    return [{"cmd": "rollback"}, {"cmd": "config"}]


@route("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config")
def snapshot_config_get(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    vm = c.vm_on(p["node"], int(p["vmid"]))
    return copy.deepcopy(_snapshot_of(vm, p["snapname"], die))


@route("PUT", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config", {"description": P()})
def snapshot_config_put(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    vm = c.vm_on(p["node"], int(p["vmid"]))
    _refuse_locked(vm, die)
    snap = _snapshot_of(vm, p["snapname"], die)
    if "description" in p:
        snap["description"] = p["description"]
        c.save()
    return None


@route("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}", {"force": P(type="boolean")})
def snapshot_delete(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid, name, vm = _snapshot_target(c, p)
    force = S.to_bool(p.get("force"))

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        snap = _snapshot_of(vm, name, TaskError)
        _refuse_locked(vm, TaskError)
        vm.config["lock"] = "snapshot-delete"
        snap["snapstate"] = "delete"
        c.save()
        yield
        try:
            for key, volume in _snap_disks(c, vm):
                if lv := _lvmthin_name(volume):
                    ctx.log(f'  Logical volume "snap_{lv}_{name}" successfully removed.')
            ctx.sleep()
            try:
                c.call_backend("delete_snapshot", vm, name)
            except TaskError as exc:
                if not force:
                    raise
                ctx.warn(f"{exc} (ignored, force)")
        except BaseException:
            _unlock_after_failure(c, vm, "snapshot-delete")
            raise
        with c.lock:
            parent = snap.get("parent")
            for other in vm.snapshots.values():
                if other.get("parent") == name:
                    if parent:
                        other["parent"] = parent
                    else:
                        other.pop("parent", None)
            if vm.config.get("parent") == name:
                if parent:
                    vm.config["parent"] = parent
                else:
                    vm.config.pop("parent", None)
            vm.snapshots.pop(name, None)
            vm.config.pop("lock", None)
            c.save()

    return c.start_task(node, "qmdelsnapshot", str(vmid), caller.userid, body)


SNAP_ONLY_KEYS = ("snaptime", "vmstate", "runningmachine", "runningcpu", "snapstate", "description", "parent")


@route("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback", {"start": P(type="boolean")})
def snapshot_rollback(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid, name, vm = _snapshot_target(c, p)
    start = S.to_bool(p.get("start"))

    def body(ctx: TaskCtx) -> Generator[None, None, None]:
        snap = _snapshot_of(vm, name, TaskError)
        if vm.config.get("template"):
            raise TaskError("you can't rollback if vm is a template")
        if snap.get("snapstate"):
            raise TaskError(f"unable to rollback to incomplete snapshot (snapstate = {snap['snapstate']})")
        _refuse_locked(vm, TaskError)
        vm.config["lock"] = "rollback"
        c.save()
        yield
        try:
            with c.lock:
                c.reconcile(vm)
                running = vm.status == "running"
            if running:
                c.call_backend("stop", vm)
                with c.lock:
                    c.set_stopped(vm)
            for key, volume in _snap_disks(c, vm):
                if lv := _lvmthin_name(volume):
                    ctx.log(f'  Logical volume "{lv}" successfully removed.')
                    ctx.log(f'  Logical volume "{lv}" created.')
            ctx.sleep()
            c.call_backend("rollback", vm, name)
        except BaseException:
            _unlock_after_failure(c, vm, "rollback")
            raise
        with c.lock:
            keep = {k: v for k, v in vm.config.items() if k == "description" or k.startswith("unused")}
            new = {k: copy.deepcopy(v) for k, v in snap.items() if k not in SNAP_ONLY_KEYS}
            new.update(keep)
            new["parent"] = name
            vm.config = new
            c.save()
        if snap.get("vmstate"):
            ctx.log("Resuming suspended VM")
            c.call_backend("start", vm)
            with c.lock:
                c.set_running(vm)
                c.save()
        elif start:
            _start_worker(c, ctx, vm, node, skiplock=False)

    return c.start_task(node, "qmrollback", str(vmid), caller.userid, body)


# ============================================================================================
# migrate


@route(
    "POST",
    "/nodes/{node}/qemu/{vmid}/migrate",
    {
        "target": P(format="pve-node", optional=False), "online": P(type="boolean"), "with-local-disks": P(type="boolean"),
        "targetstorage": P(format="storage-pair-list"), "force": P(type="boolean"), "migration_type": P(enum=("secure", "insecure")),
        "migration_network": P(format="CIDR"), "bwlimit": P(type="integer", minimum=0), "with-conntrack-state": P(type="boolean"),
    },
)  # fmt: skip
def vm_migrate(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    node, vmid, target = p["node"], int(p["vmid"]), p["target"]
    root_only(caller, p, ("force", "migration_type", "migration_network"))
    if target == node:
        raise param_error({"target": "target is local node."})
    if target not in c.nodes:
        raise die(f"no such cluster node '{target}'")
    vm = c.vm_on(node, vmid)
    _refuse_locked(vm, die)
    c.reconcile(vm)
    online = S.to_bool(p.get("online"))
    if c.ha_managed(vmid):
        def body(ctx: TaskCtx) -> Generator[None, None, None]:
            ctx.log(f"Requesting HA migration for VM {vmid} to node {target}")
            c.ha_state.setdefault(f"vm:{vmid}", {"crm_state": "started"})["target"] = target
            c.save()
            yield
            ctx.sleep()

        return c.start_task(node, "hamigrate", str(vmid), caller.userid, body)
    if vm.status == "running" and not online:
        raise die("can't migrate running VM without --online")
    return c.start_task(node, "qmigrate", str(vmid), caller.userid, c._migrate_body(vm, target, online=online, local_disks=S.to_bool(p.get("with-local-disks"))))


@route("GET", "/nodes/{node}/qemu/{vmid}/migrate", {"target": P(format="pve-node")})
def vm_migrate_check(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    vm = c.vm_on(p["node"], int(p["vmid"]))
    info = c.vm_info(vm)
    local = [{"volid": d.volume, "size": d.size_gb * 1073741824, "drivename": d.key} for d in info.disks if not STORAGES.get(d.storage, {}).get("shared")]
    others = [n for n in c.nodes if n != vm.node]
    return {"running": int(vm.status == "running"), "allowed_nodes": [n for n in others if c.is_online(n)], "not_allowed_nodes": {n: {"unavailable_storages": []} for n in others if not c.is_online(n)}, "local_disks": local, "local_resources": [], "mapped-resources": []}


# ============================================================================================
# tasks


@route(
    "GET",
    "/nodes/{node}/tasks",
    {
        "start": P(type="integer", minimum=0), "limit": P(type="integer", minimum=0), "userfilter": P(), "typefilter": P(),
        "vmid": P(type="integer", format="pve-vmid", minimum=100, maximum=999999999), "errors": P(type="boolean"),
        "source": P(enum=("archive", "active", "all")), "since": P(type="integer"), "until": P(type="integer"),
        "statusfilter": P(format="pve-task-status-type-list"),
    },
)  # fmt: skip
def tasks_list(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    source = p.get("source", "archive")
    tasks = [t for t in c.tasks.values() if t.node == p["node"]]
    if source == "archive":
        tasks = [t for t in tasks if t.status == "stopped"]
    elif source == "active":
        tasks = [t for t in tasks if t.status == "running"]
    if "userfilter" in p:
        tasks = [t for t in tasks if p["userfilter"] in t.user]
    if "typefilter" in p:
        tasks = [t for t in tasks if t.type == p["typefilter"]]
    if "vmid" in p:
        tasks = [t for t in tasks if t.id == str(int(p["vmid"]))]
    if S.to_bool(p.get("errors")):
        tasks = [t for t in tasks if t.status == "stopped" and not _task_ok(t.exitstatus)]
    if "since" in p:
        tasks = [t for t in tasks if t.starttime >= int(p["since"])]
    if "until" in p:
        tasks = [t for t in tasks if t.starttime <= int(p["until"])]
    if "statusfilter" in p:
        wanted = {s.strip().lower() for s in re.split(r"[,;\s]+", p["statusfilter"]) if s}
        tasks = [t for t in tasks if _task_class(t) in wanted]
    tasks.sort(key=lambda t: (t.starttime, t.pid), reverse=True)
    total = len(tasks)
    start = int(p.get("start", 0))
    limit = int(p.get("limit", 50))
    page = tasks[start : start + limit] if limit else tasks[start:]
    return Result([t.list_item() for t in page], total=total)


def _task_ok(exitstatus: str | None) -> bool:
    return exitstatus == "OK" or bool(exitstatus and exitstatus.startswith("WARNINGS: "))


def _task_class(t: Any) -> str:
    if t.status == "running":
        return "unknown"
    if t.exitstatus == "OK":
        return "ok"
    if t.exitstatus and t.exitstatus.startswith("WARNINGS: "):
        return "warning"
    if t.exitstatus == "unexpected status":
        return "unknown"
    return "error"


@route("GET", "/nodes/{node}/tasks/{upid}")
def task_index(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    c.task_on(p["node"], p["upid"])
    return [{"name": "log"}, {"name": "status"}]


@route("DELETE", "/nodes/{node}/tasks/{upid}")
def task_stop(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    task = c.task_on(p["node"], p["upid"])
    if task.status == "running":
        task.cancel.set()
    return None


@route("GET", "/nodes/{node}/tasks/{upid}/status")
def task_status(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return c.task_on(p["node"], p["upid"]).status_dict()


@route("GET", "/nodes/{node}/tasks/{upid}/log", {"start": P(type="integer", minimum=0), "limit": P(type="integer", minimum=0), "download": P(type="boolean")})
def task_log(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    task = c.task_on(p["node"], p["upid"])
    if S.to_bool(p.get("download")):
        if "start" in p or "limit" in p:
            raise param_error({"download": "Parameter 'download' can't be used with other parameters"})
        return "\n".join(task.lines) + "\n"
    lines = task.lines or ["no content"]
    start = int(p.get("start", 0))
    limit = int(p.get("limit", 50))
    chosen = lines[start : start + limit] if limit else lines[start:]
    return Result([{"n": start + i + 1, "t": t} for i, t in enumerate(chosen)], total=len(lines))


# ============================================================================================
# HA


def _sid(c: Cluster, raw: str) -> str:
    if re.fullmatch(r"\d+", raw):
        vmid = int(raw)
        if vmid not in c.vms:
            raise die(f"unable to detect SID from VMID - VM/CT {vmid} does not exist")
        return f"vm:{vmid}"
    return raw


HA_PARAMS = {
    "comment": P(max_length=4096),
    "group": P(format="pve-configid"),
    "max_relocate": P(type="integer", minimum=0),
    "max_restart": P(type="integer", minimum=0),
    "state": P(enum=("started", "stopped", "enabled", "disabled", "ignored")),
}


@route("GET", "/cluster/ha")
def ha_index(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return [{"id": "status"}, {"id": "resources"}, {"id": "groups"}]


@route("GET", "/cluster/ha/resources", {"type": P(enum=("ct", "vm"))})
def ha_resources(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    out = []
    for sid in sorted(c.ha_resources):
        res = c.ha_resources[sid]
        if p.get("type") and res["type"] != p["type"]:
            continue
        out.append(dict(res, digest=config_digest(c.ha_resources)))
    return out


@route("POST", "/cluster/ha/resources", {"sid": P(format="pve-ha-resource-or-vm-id", optional=False), "type": P(enum=("ct", "vm")), **HA_PARAMS})
def ha_resource_create(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    c.check_quorum()
    sid = _sid(c, p.pop("sid"))
    rtype, _, ident = sid.partition(":")
    if p.get("type") and p["type"] != rtype:
        raise die("types does not match")
    p.pop("type", None)
    vmid = int(ident)
    if sid in c.ha_resources:
        raise die(f"resource ID '{sid}' already defined")
    if rtype == "ct" or vmid not in c.vms:
        if vmid in c.vms:
            raise die(f"resource '{sid}' - guest with ID {vmid} is not a CT")
        raise die(f"resource '{sid}' does not exist in cluster")
    if "group" in p and p["group"] not in c.ha_groups:
        raise die(f"HA group '{p['group']}' does not exist")
    res: dict[str, Any] = {"sid": sid, "type": rtype}
    for k, v in p.items():
        res[k] = int(v) if k.startswith("max_") else v
    c.ha_resources[sid] = res
    c.save()
    return None


@route("GET", "/cluster/ha/resources/{sid}")
def ha_resource_get(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    sid = _sid(c, p["sid"])
    res = c.ha_resources.get(sid)
    if res is None:
        raise die(f"no such resource '{sid}'")
    return dict(res, digest=config_digest(c.ha_resources))


@route("PUT", "/cluster/ha/resources/{sid}", {**HA_PARAMS, "delete": P(format="pve-configid-list", max_length=4096), "digest": P(max_length=64)})
def ha_resource_put(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    sid = _sid(c, p.pop("sid"))
    res = c.ha_resources.get(sid)
    if res is None:
        raise die(f"no such resource '{sid}'")
    digest = p.pop("digest", None)
    if digest is not None and digest != config_digest(c.ha_resources):
        raise die("detected modified configuration - file changed by other user? Try again.")
    if "group" in p and p["group"] not in c.ha_groups:
        raise die(f"HA group '{p['group']}' does not exist")
    st = c.ha_state.get(sid)
    if st and st.get("crm_state") == "error" and p.get("state") not in (None, "disabled"):
        raise die(f"service '{sid}' in error state, must be disabled and fixed first")
    for k in [k for k in re.split(r"[,;\s]+", p.pop("delete", "")) if k]:
        res.pop(k, None)
    for k, v in p.items():
        res[k] = int(v) if k.startswith("max_") else v
    c.save()
    return None


@route("DELETE", "/cluster/ha/resources/{sid}")
def ha_resource_delete(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    sid = _sid(c, p["sid"])
    if sid not in c.ha_resources:
        raise die(f"cannot delete service '{sid}', not HA managed!")
    del c.ha_resources[sid]
    c.ha_state.pop(sid, None)
    c.save()
    return None


def _ha_move(c: Cluster, p: dict[str, Any]) -> Any:
    sid = _sid(c, p["sid"])
    if sid not in c.ha_resources:
        raise die(f"resource '{sid}' is not HA managed")
    if p["node"] not in c.nodes:
        raise die(f"no such cluster node '{p['node']}'")
    c.ha_state.setdefault(sid, {"crm_state": "started"})["target"] = p["node"]
    c.save()
    return None


@route("POST", "/cluster/ha/resources/{sid}/migrate", {"node": P(format="pve-node", optional=False)})
def ha_resource_migrate(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return _ha_move(c, p)


@route("POST", "/cluster/ha/resources/{sid}/relocate", {"node": P(format="pve-node", optional=False)})
def ha_resource_relocate(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return _ha_move(c, p)


@route("GET", "/cluster/ha/groups")
def ha_groups(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return [dict(g, digest=config_digest(c.ha_groups)) for _, g in sorted(c.ha_groups.items())]


@route(
    "POST",
    "/cluster/ha/groups",
    {"group": P(format="pve-configid", optional=False), "nodes": P(format="pve-ha-node-list", optional=False), "restricted": P(type="boolean"), "nofailback": P(type="boolean"), "comment": P(max_length=4096), "type": P(enum=("group",))},
)
def ha_group_create(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    name = p["group"]
    if name in c.ha_groups:
        raise die(f"ha group ID '{name}' already defined")
    g: dict[str, Any] = {"group": name, "type": "group", "nodes": p["nodes"]}
    for k in ("restricted", "nofailback"):
        if k in p:
            g[k] = int(p[k])
    if "comment" in p:
        g["comment"] = p["comment"]
    c.ha_groups[name] = g
    c.save()
    return None


@route("DELETE", "/cluster/ha/groups/{group}")
def ha_group_delete(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    if p["group"] not in c.ha_groups:
        raise die(f"no such ha group '{p['group']}'")
    del c.ha_groups[p["group"]]
    c.save()
    return None


@route("GET", "/cluster/ha/status")
def ha_status_index(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    return [{"name": "current"}, {"name": "manager_status"}]


def _ctime(ts: float) -> str:
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(ts))


@route("GET", "/cluster/ha/status/current")
def ha_status(c: Cluster, caller: Caller, p: dict[str, Any]) -> Any:
    now = time.time()
    quorate = c.quorate()
    out: list[dict[str, Any]] = [
        {"id": "quorum", "type": "quorum", "node": c.local_node, "status": "OK" if quorate else f"No quorum on node '{c.local_node}'!", "quorate": int(quorate)}
    ]
    if not c.ha_resources and not c.ha_state:
        return out
    master = next((n for n in c.nodes if c.is_online(n)), c.local_node)
    out.append({"id": "master", "type": "master", "node": master, "status": f"{master} ({'active' if quorate else 'old timestamp - dead?'}, {_ctime(now)})", "timestamp": int(now)})
    for n in sorted(c.nodes):
        if c.is_online(n):
            has = any(c.vms.get(int(s.split(':')[1])) and c.vms[int(s.split(':')[1])].node == n for s in c.ha_resources)
            state, ts = ("active" if has else "idle"), now
        else:
            state, ts = "old timestamp - dead?", now - 120
        out.append({"id": f"lrm:{n}", "type": "lrm", "node": n, "status": f"{n} ({state}, {_ctime(ts)})", "timestamp": int(ts)})
    for sid in sorted(c.ha_resources):
        res = c.ha_resources[sid]
        vm = c.vms.get(int(sid.split(":")[1]))
        request = res.get("state", "started")
        st = c.ha_state.get(sid)
        node = vm.node if vm else ""
        if request == "ignored":
            verbose = "ignored"
        elif st is None:
            verbose = "queued"
        else:
            crm = st["crm_state"]
            if request == "disabled" and crm == "stopped":
                verbose = "disabled"
            elif crm == "started" and vm is not None and vm.status != "running":
                verbose = "starting"
            elif crm == "request_stop":
                verbose = "stopping"
            else:
                verbose = crm
        item: dict[str, Any] = {"id": f"service:{sid}", "type": "service", "sid": sid, "node": node, "state": verbose, "request_state": "started" if request == "enabled" else request,
                                "status": f"{sid} ({node}, {verbose})", "max_restart": res.get("max_restart", 1), "max_relocate": res.get("max_relocate", 1)}  # fmt: skip
        if st is not None:
            item["crm_state"] = st["crm_state"]
        for k in ("group", "comment"):
            if k in res:
                item[k] = res[k]
        out.append(item)
    return out


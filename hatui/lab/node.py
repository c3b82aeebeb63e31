"""Lab hosts: boot, power off and run commands inside a namespace host.

A host is a network namespace `hatui-NAME` (its NICs are veths whose other ends are ports of the
networks' bridges) plus persistent mount, UTS and PID namespaces pinned to files under
`STATE/ns/` (`unshare --mount=FILE --uts=FILE --pid=FILE`). PID 1 of the host is a small bash
loop (`hatui-init-NAME`) that reaps orphans. Inside the mount namespace the host's own
directories are bind-mounted over /etc/ha.d, /etc/ssh, /var/lib/heartbeat, /var/log and /run,
so daemons keep their pid files, logs and state per host, and `uname -n` is the host name.

"Power off" is the recipe's node-poweroff: NICs down and addresses flushed (nothing leaves in
between), then SIGKILL of the host's PID 1, which takes its whole PID namespace with it.
"Boot" creates what is missing (namespace, veths), resets /run (a reboot wipes it), puts the
addresses back, starts a new PID 1 and sshd.

These functions are generic: they take a HostSpec (name, NICs with the bridge each one plugs
into, bind mounts) so the Proxmox emulator can boot its VMs on its own bridges the same way.
The caller holds the lab lock (`hatui.lab.hosts.boot_lab_host` does).
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hatui.lab import netns as nx
from hatui.lab.state import LabError, LabPaths, is_ours, kill_recorded, load_state, proc_stat, update_state

PIN_KINDS = ("mnt", "uts", "pid")
INIT_PREFIX = "hatui-init-"

_libc = ctypes.CDLL(None, use_errno=True)
_MS_BIND = 4096
_MS_PRIVATE = 1 << 18
_MNT_DETACH = 2

# `unshare` processes this Python process started (so we can reap them when their host dies).
_children: dict[int, subprocess.Popen] = {}


@dataclass
class NicSpec:
    name: str                       # eth0 (inside the host)
    address: str                    # "10.251.0.11/24"
    bridge: str                     # bridge it plugs into, e.g. "br-public"
    bridge_netns: str = nx.BRIDGE_NETNS
    port: str = ""                  # bridge-side veth name (default: v-HOST-NIC)
    network: str = ""               # lab network name, informative
    mac: str = ""                   # MAC address of the NIC (default: random), e.g. a VM's configured one


@dataclass
class HostSpec:
    name: str
    nics: list[NicSpec]
    # target inside the host -> source directory outside; /run-like targets are mounted last.
    binds: dict[str, str] = field(default_factory=dict)
    sshd: bool = True
    ssh_port: int = 22

    def __post_init__(self) -> None:
        for nic in self.nics:
            if not nic.port:
                nic.port = nx.port_name(self.name, nic.name)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "HostSpec":
        spec = record["spec"]
        return cls(name=spec["name"], nics=[NicSpec(**n) for n in spec["nics"]], binds=dict(spec["binds"]),
                   sshd=spec["sshd"], ssh_port=spec["ssh_port"])

    @property
    def netns(self) -> str:
        return nx.host_netns(self.name)


@dataclass
class BootResult:
    host: str
    seconds: float
    created_network: bool
    init_pid: int


# --------------------------------------------------------------------------------------------
# Mount helpers (libc, no process per call)


def _mount(source: str, target: str, flags: int) -> None:
    if _libc.mount(source.encode(), target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise LabError(f"mount {source} on {target}: {os.strerror(err)}")


def _umount(target: Path | str) -> bool:
    return _libc.umount2(str(target).encode(), _MNT_DETACH) == 0


def ensure_ns_dir(paths: LabPaths) -> None:
    """STATE/ns as a private bind mount (namespace files can only be pinned there safely)."""
    paths.ns_dir.mkdir(parents=True, exist_ok=True)
    if not nx.is_mountpoint(paths.ns_dir):
        update_state(paths, lambda s: s.__setitem__("ns_mount", True))
        _mount(str(paths.ns_dir), str(paths.ns_dir), _MS_BIND)
        _mount("none", str(paths.ns_dir), _MS_PRIVATE)


def release_ns_dir(paths: LabPaths) -> None:
    if paths.ns_dir.exists():
        for entry in paths.ns_dir.iterdir():
            _umount(entry)
        while nx.is_mountpoint(paths.ns_dir) and _umount(paths.ns_dir):
            pass


def _unpin(paths: LabPaths, host: str) -> None:
    for kind in PIN_KINDS:
        pin = paths.pin(host, kind)
        while nx.is_mountpoint(pin) and _umount(pin):
            pass


# --------------------------------------------------------------------------------------------
# Running commands inside a host


def node_command(paths: LabPaths, host: str) -> list[str]:
    """The argv prefix that runs a command inside `host` (append the command to it)."""
    return ["nsenter", f"--net={nx.netns_path(nx.host_netns(host))}", f"--mount={paths.pin(host, 'mnt')}",
            f"--uts={paths.pin(host, 'uts')}", f"--pid={paths.pin(host, 'pid')}", "--"]


def node_exec(paths: LabPaths, host: str, argv: Sequence[str] | str, *, timeout: float = 30.0,
              check: bool = False, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command inside `host` and wait for it. A string is run with `sh -c`.

    Output goes through an anonymous temporary file, not a pipe, so a daemon the command starts
    can keep its inherited stdout without making us wait for EOF. cwd inside the host is `/`.
    """
    if isinstance(argv, str):
        argv = ["/bin/sh", "-c", argv]
    full = node_command(paths, host) + list(argv)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            proc = subprocess.run(full, stdout=out, stderr=err, timeout=timeout, env=nx.CLEAN_ENV,
                                  input=input, stdin=None if input is not None else subprocess.DEVNULL, text=True)
        except subprocess.TimeoutExpired:
            raise LabError(f"{host}: {' '.join(argv)}: timed out after {timeout:g} s") from None
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(full, proc.returncode, out.read(), err.read())
    if check and result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise LabError(f"{host}: {' '.join(argv)}: exit {result.returncode}" + (f": {lines[-1]}" if lines else ""))
    return result


# --------------------------------------------------------------------------------------------
# Processes of a host


def pidns_members(pidns: str) -> list[int]:
    """Live (non-zombie) processes whose PID namespace is `pidns` ("pid:[4026532...]")."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != pidns:
                continue
        except OSError:
            continue
        stat = proc_stat(int(entry))
        if stat and stat[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def host_running(record: dict[str, Any] | None) -> bool:
    return bool(record) and is_ours(record.get("init"))


def _find_init(parent: int, name: str) -> int | None:
    marker = (INIT_PREFIX + name).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = proc_stat(int(entry))
        if not stat or stat[1] != parent:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if fh.read().split(b"\0", 1)[0] == marker:
                    return int(entry)
        except OSError:
            continue
    return None


def _listening(init_pid: int, port: int) -> bool:
    try:
        with open(f"/proc/{init_pid}/net/tcp") as fh:
            next(fh)
            return any(line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A" for line in fh)
    except (OSError, StopIteration):
        return False


def _reap(pid: int | None) -> None:
    proc = _children.pop(pid, None) if pid else None
    if proc is not None and proc.poll() is None:
        _children[pid] = proc  # still running; try again later


# --------------------------------------------------------------------------------------------
# Boot / power off


def _init_script(paths: LabPaths, spec: HostSpec) -> str:
    state_dir = str(paths.state_dir)

    def hides_state(target: str) -> bool:
        return state_dir == target or state_dir.startswith(target.rstrip("/") + "/")

    binds = sorted(spec.binds.items(), key=lambda kv: hides_state(kv[0]))
    q = shlex.quote
    lines = [
        "set -e",
        f"hostname {q(spec.name)}",
        "mount -t sysfs -o nosuid,nodev,noexec sysfs /sys",
        # Drop this mount namespace's copies of other hosts' pins and netns mounts.
        f"for m in {q(str(paths.ns_dir))} /run/netns; do if mountpoint -q \"$m\"; then umount -l \"$m\"; fi; done",
    ]
    lines += [f"mount --bind {q(src)} {q(dst)}" for dst, src in binds]
    lines.append(f"exec -a {q(INIT_PREFIX + spec.name)} /bin/bash -c "
                 + q('trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done'))
    return "\n".join(lines)


def _reset_run_dir(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    os.chmod(run_dir, 0o755)
    for sub, mode in (("sshd", 0o755), ("lock", 0o1777), ("user", 0o755)):
        (run_dir / sub).mkdir()
        os.chmod(run_dir / sub, mode)


def _build_network(paths: LabPaths, spec: HostSpec, record: dict[str, Any] | None) -> bool:
    """Create the host's namespace and veths if missing; put the addresses back and links up."""
    created = False
    ns = spec.netns
    state = load_state(paths) or {}
    recorded_ino = state.get("netns", {}).get(ns)
    current_ino = nx.netns_inode(ns)
    if current_ino is not None and current_ino != recorded_ino:
        raise LabError(f"network namespace {ns} exists but is not this lab's (not in {paths.state_file}); "
                       f"remove it or rename the host")
    if current_ino is None:
        ino = nx.netns_add(ns)
        update_state(paths, lambda s: s["netns"].__setitem__(ns, ino))
        created = True
    present = nx.links(ns)
    bridge_cmds: dict[str, list[str]] = {}
    node_cmds: list[str] = []
    for nic in spec.nics:
        if nic.name not in present:
            if nx.link_exists(nic.port, nic.bridge_netns):
                nx.ip("link", "del", nic.port, netns=nic.bridge_netns, check=False)
            nx.ip("link", "add", nic.port, "type", "veth", "peer", "name", nic.name,
                  *(("address", nic.mac) if nic.mac else ()), "netns", ns,
                  netns=nic.bridge_netns, what=f"{spec.name}: create {nic.name}")
            bridge_cmds.setdefault(nic.bridge_netns, []).append(f"link set {nic.port} master {nic.bridge} up")
        node_cmds.append(f"addr flush dev {nic.name}")
        node_cmds += nx.address_commands(nic.name, ipaddress.IPv4Interface(nic.address))
        node_cmds.append(f"link set {nic.name} up")
    for bns, cmds in bridge_cmds.items():
        nx.ip_batch(cmds, netns=bns, what=f"{spec.name}: plug NICs into bridges")
    nx.ip_batch(node_cmds, netns=ns, what=f"{spec.name}: addresses")
    return created


def boot_host(paths: LabPaths, spec: HostSpec, *, wait_ssh: bool = True, timeout_s: float = 10.0) -> BootResult:
    """Boot a host: network (created if missing), fresh /run, new PID 1 with the host's mounts, sshd."""
    t0 = time.monotonic()
    reap_exited()
    state = load_state(paths) or {}
    record = state.get("hosts", {}).get(spec.name)
    if host_running(record):
        raise LabError(f"host {spec.name} is already running (PID {record['init']['pid']})")
    ensure_ns_dir(paths)
    node_dir = paths.node_dir(spec.name)
    node_dir.mkdir(parents=True, exist_ok=True)
    if record:  # leftovers of a previous life
        _unpin(paths, spec.name)

    def remember(s: dict[str, Any]) -> None:
        old = s["hosts"].get(spec.name, {})
        s["hosts"][spec.name] = {**old, "spec": asdict(spec), "running": False, "netns": spec.netns}

    update_state(paths, remember)
    created = _build_network(paths, spec, record)

    for src in spec.binds.values():
        Path(src).mkdir(parents=True, exist_ok=True)
    run_src = spec.binds.get("/run")
    if run_src:
        _reset_run_dir(Path(run_src))
    for kind in PIN_KINDS:
        paths.pin(spec.name, kind).touch()

    argv = ["nsenter", f"--net={nx.netns_path(spec.netns)}", "--",
            "unshare", f"--mount={paths.pin(spec.name, 'mnt')}", f"--uts={paths.pin(spec.name, 'uts')}",
            f"--pid={paths.pin(spec.name, 'pid')}", "--fork", "--kill-child", "--mount-proc",
            "--propagation", "private", "--", "/bin/bash", "-c", _init_script(paths, spec)]
    log_path = node_dir / "boot.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=nx.CLEAN_ENV, close_fds=True)
    _children[proc.pid] = proc
    deadline = time.monotonic() + timeout_s
    init_pid = None
    while init_pid is None:
        init_pid = _find_init(proc.pid, spec.name)
        if init_pid is not None:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _children.pop(proc.pid, None)
            _unpin(paths, spec.name)
            detail = log_path.read_text().strip().splitlines()
            raise LabError(f"{spec.name}: the host did not boot" + (f": {detail[-1]}" if detail else ""))
        time.sleep(0.003)
    pidns = os.readlink(f"/proc/{init_pid}/ns/pid")
    unshare_start = proc_stat(proc.pid)
    init_start = proc_stat(init_pid)

    def booted(s: dict[str, Any]) -> None:
        s["hosts"][spec.name].update(
            running=True, booted_at=time.time(), pidns=pidns,
            init={"pid": init_pid, "start": init_start[2] if init_start else None},
            unshare={"pid": proc.pid, "start": unshare_start[2] if unshare_start else None})

    update_state(paths, booted)

    if spec.sshd:
        node_exec(paths, spec.name, ["/usr/sbin/sshd", "-E", "/var/log/sshd.log"], check=True, timeout=10)
        while wait_ssh and not _listening(init_pid, spec.ssh_port):
            if time.monotonic() > deadline:
                raise LabError(f"{spec.name}: sshd is not listening on port {spec.ssh_port} "
                               f"(see {node_dir}/log/sshd.log)")
            time.sleep(0.005)
    return BootResult(spec.name, time.monotonic() - t0, created, init_pid)


def poweroff_hosts(paths: LabPaths, names: Sequence[str], *, remove_network: bool = False,
                   cut_links: bool = True, timeout_s: float = 5.0) -> float:
    """Power off several hosts at once: links down, PID 1 killed, wait until their processes are gone.
    (`cut_links=False` skips the first step when the namespaces are deleted right after anyway.)"""
    t0 = time.monotonic()
    state = load_state(paths) or {}
    records = {n: state.get("hosts", {}).get(n) for n in names}
    # 1. Cut the wires first (no half-dead host answers in between).
    for name, record in records.items():
        if not record or not cut_links:
            continue
        ns = record.get("netns") or nx.host_netns(name)
        if nx.netns_inode(ns) is not None and nx.netns_inode(ns) == state.get("netns", {}).get(ns):
            cmds = []
            for nic in record.get("spec", {}).get("nics", []):
                cmds += [f"link set {nic['name']} down", f"addr flush dev {nic['name']}"]
            try:
                nx.ip_batch(cmds, netns=ns)
            except LabError:
                pass  # a NIC may be missing on a half-built host
    # 2. SIGKILL PID 1 of each host (its whole PID namespace dies) and the unshare holding it.
    waiting = []
    for name, record in records.items():
        if not record:
            continue
        kill_recorded(record.get("init"), signal.SIGKILL)
        waiting.append(record.get("pidns"))
        kill_recorded(record.get("unshare"), signal.SIGKILL)
    # 3. Wait for live members (zombies do not count: pitfall 9).
    deadline = time.monotonic() + timeout_s
    pending = [p for p in waiting if p]
    while pending:
        pending = [p for p in pending if pidns_members(p)]
        if not pending:
            break
        if time.monotonic() > deadline:
            raise LabError(f"processes of {', '.join(names)} still alive after {timeout_s:g} s")
        time.sleep(0.005)
    # 4. Release the pins and reap our own unshare children (they exit right after their PID 1).
    for name, record in records.items():
        _unpin(paths, name)
        pid = record["unshare"]["pid"] if record and record.get("unshare") else None
        if pid in _children:
            try:
                _children.pop(pid).wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
        if remove_network and record:
            ns = record.get("netns") or nx.host_netns(name)
            if nx.netns_inode(ns) is not None and nx.netns_inode(ns) == state.get("netns", {}).get(ns):
                nx.netns_delete(ns)

    def off(s: dict[str, Any]) -> None:
        for name in names:
            if name not in s["hosts"]:
                continue
            if remove_network:
                s["netns"].pop(s["hosts"][name].get("netns"), None)
                del s["hosts"][name]
            else:
                s["hosts"][name].update(running=False, init=None, unshare=None, pidns=None)

    update_state(paths, off)
    return time.monotonic() - t0


def poweroff_host(paths: LabPaths, name: str, *, remove_network: bool = False) -> float:
    """Power a host off (crash semantics); returns the seconds it took."""
    return poweroff_hosts(paths, [name], remove_network=remove_network)


def reap_exited() -> None:
    """Collect `unshare` children of this process whose host has gone."""
    for pid in list(_children):
        _reap(pid)

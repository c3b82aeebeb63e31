"""`lab up` / `lab down` / `lab status`: the local lab built in network namespaces.

    up(lab)       -> UpReport     build everything, wait until each native pair is stable
    down(lab)     -> DownReport   remove everything recorded (works on a half-built lab)
    status(lab)   -> dict         hosts, who holds each VIP, where the state lives
    boot_lab_host(lab, name)      boot one host of lab.toml (the Proxmox emulator boots VMs this way)
    poweroff_lab_host(lab, name)  power it off (crash semantics; remove_network=True for VM stop)
    exec_in(lab, host, argv)      run a command inside a host
    wait_stable(lab, pair)        VIP served by the master and Heartbeat out of `transition`

Only what the state file records is ever removed or killed; see hatui.lab.state for the layout.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hatui.config import Host, Lab, Pair
from hatui.errors import RefusedError, UsageError
from hatui.lab import heartbeat as hb
from hatui.lab import keys
from hatui.lab import netns as nx
from hatui.lab import pve_lab
from hatui.lab.node import (BootResult, HostSpec, NicSpec, boot_host, host_running, node_command, node_exec,
                            poweroff_hosts, release_ns_dir)
from hatui.lab.state import LabError, LabPaths, lab_lock, load_state, save_state, update_state

Out = Callable[[str], None]

# (what must exist, Debian package, what it is for)
REQUIREMENTS = [
    ("/usr/libexec/heartbeat/heartbeat", "heartbeat", "Heartbeat daemon"),
    ("/etc/init.d/heartbeat", "heartbeat", "Heartbeat init script"),
    ("cl_status", "heartbeat", "cl_status"),
    ("/usr/share/heartbeat/ResourceManager", "heartbeat", "Heartbeat v1 ResourceManager"),
    ("/etc/ha.d/resource.d/IPaddr2", "heartbeat", "IPaddr2 haresources wrapper"),
    ("/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "resource-agents", "IPaddr2 resource agent"),
    ("/usr/libexec/heartbeat/send_arp", "resource-agents", "send_arp (gratuitous ARP)"),
    ("/usr/sbin/sshd", "openssh-server", "sshd"),
    ("ssh-keygen", "openssh-client", "ssh-keygen"),
    ("/usr/sbin/nginx", "nginx-light", "nginx"),
    ("ip", "iproute2", "ip"),
    ("unshare", "util-linux", "unshare"),
    ("nsenter", "util-linux", "nsenter"),
    ("mountpoint", "util-linux", "mountpoint"),
    ("sysctl", "procps", "sysctl"),
    ("cp", "coreutils", "cp"),
]

UP_STABLE_TIMEOUT_S = 45.0


# --------------------------------------------------------------------------------------------
# Reports


@dataclass
class Step:
    name: str
    detail: str
    seconds: float


@dataclass
class UpReport:
    state_dir: Path
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    already_up: bool = False
    repaired: bool = False
    seconds: float = 0.0


@dataclass
class DownReport:
    state_dir: Path
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    nothing_to_do: bool = False
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# Preflight


def lab_paths(lab: Lab) -> LabPaths:
    return LabPaths(lab.state_dir)


def require_root(what: str = "hatui lab") -> None:
    if os.geteuid() != 0:
        raise UsageError(f"{what} needs root (network namespaces, bridges, mounts); run it with sudo")


def missing_requirements() -> list[str]:
    """What is missing, as 'thing (package)' strings."""
    missing = []
    for thing, package, label in REQUIREMENTS:
        found = os.path.exists(thing) if thing.startswith("/") else shutil.which(thing, path=nx.CLEAN_ENV["PATH"])
        if not found:
            missing.append(f"{label} ({package})")
    return missing


def missing_packages() -> list[str]:
    """Debian packages the lab needs that are not (fully) installed."""
    out: list[str] = []
    for thing, package, _ in REQUIREMENTS:
        found = os.path.exists(thing) if thing.startswith("/") else shutil.which(thing, path=nx.CLEAN_ENV["PATH"])
        if not found and package not in out:
            out.append(package)
    return out


def kernel_problems() -> list[str]:
    problems = []
    for kind in ("net", "mnt", "uts", "pid"):
        if not os.path.exists(f"/proc/self/ns/{kind}"):
            problems.append(f"no {kind} namespaces (/proc/self/ns/{kind} missing)")
    return problems


def check_lab(lab: Lab) -> None:
    """What `lab up` needs from lab.toml beyond config.py's own checks."""
    problems = []
    if not lab.local:
        problems.append("lab.local is false: `hatui lab up` only builds a local lab")
    if lab.address_range is None:
        problems.append("lab.address_range is missing")
    if not any(n.host_address for n in lab.networks.values()):
        problems.append("no network has a host_address (the root namespace's leg into the lab)")
    if "net" in lab.hosts:
        problems.append("a host may not be called 'net' (its namespace would be hatui-net, the bridges')")
    for pair in lab.pairs.values():
        for member in (pair.master, pair.slave):
            if pair.vip_interface not in lab.hosts[member].nics:
                problems.append(f"pairs.{pair.name}: {member} has no NIC {pair.vip_interface} (vip_interface)")
        try:
            hb.replication_nic(lab, pair, lab.hosts[pair.master])
        except LabError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError(f"{lab.path}: cannot build this lab:\n  " + "\n  ".join(problems))
    if lab.proxmox is not None:
        pve_lab.check(lab)


def host_leg_network(lab: Lab):
    return next(n for n in lab.networks.values() if n.host_address)


def hosts_for_up(lab: Lab) -> list[Host]:
    """Native servers and clients; VMs come later with the Proxmox emulator."""
    return [h for h in lab.hosts.values() if h.stack == "native" or h.role == "client"]


def native_pairs(lab: Lab) -> list[Pair]:
    return [p for p in lab.pairs.values() if lab.hosts[p.master].stack == "native" and lab.hosts[p.slave].stack == "native"]


def pair_of(lab: Lab, host: str) -> Pair | None:
    return next((p for p in lab.pairs.values() if host in (p.master, p.slave)), None)


def _clashes(lab: Lab, state: Mapping[str, Any] | None) -> list[str]:
    """Things with our names (or in our address range) that this lab's state does not record."""
    ours = (state or {}).get("netns", {})
    clashes = []
    for name in [nx.BRIDGE_NETNS] + [nx.host_netns(h) for h in lab.hosts]:
        ino = nx.netns_inode(name)
        if ino is not None and ours.get(name) != ino:
            clashes.append(f"network namespace {name} exists and is not this lab's")
    if nx.link_exists(nx.HOST_LEG) and not (state or {}).get("host_leg"):
        clashes.append(f"interface {nx.HOST_LEG} exists in the root namespace and is not this lab's")
    for kh in {h.ssh.known_hosts for h in lab.hosts.values() if h.ssh.known_hosts} | ({lab.ssh.known_hosts} - {None}):
        if kh.exists() and not kh.read_text(errors="replace").startswith(keys.KNOWN_HOSTS_HEADER):
            clashes.append(f"{kh} exists and was not written by hatui (point ssh.known_hosts elsewhere)")
    if lab.address_range is not None and not (state or {}).get("route"):
        for route in nx.overlapping_routes(lab.address_range):
            clashes.append(f"the root namespace already routes into {lab.address_range}: {route}")
        for addr in nx.addresses_in(lab.address_range):
            clashes.append(f"the root namespace already has a lab address: {addr}")
    return clashes


# --------------------------------------------------------------------------------------------
# Host specs and files


def default_bridges(lab: Lab) -> dict[str, tuple[str, str]]:
    return {net: (nx.BRIDGE_NETNS, nx.bridge_name(net)) for net in lab.networks}


def host_spec(lab: Lab, host: Host, bridges: Mapping[str, tuple[str, str]] | None = None,
              macs: Mapping[str, str] | None = None) -> HostSpec:
    """A lab.toml host as a HostSpec; `bridges` maps a network to (netns, bridge) to override,
    `macs` a NIC name to its MAC address (a VM's configured MACs; default random)."""
    paths = lab_paths(lab)
    where = {**default_bridges(lab), **(bridges or {})}
    nics = []
    for nic in host.nics.values():
        bns, br = where[nic.network]
        prefix = lab.networks[nic.network].cidr.prefixlen
        nics.append(NicSpec(name=nic.name, address=f"{nic.address}/{prefix}", bridge=br, bridge_netns=bns,
                            network=nic.network, mac=(macs or {}).get(nic.name, "")))
    nd = paths.node_dir(host.name)
    # Its own /root too: a separate machine's root has its own home (and no slow shell rc files).
    binds = {"/etc/ssh": str(nd / "ssh"), "/var/log": str(nd / "log"), "/root": str(nd / "root"),
             "/run": str(nd / "run")}
    if pair_of(lab, host.name) is not None:
        binds["/etc/ha.d"] = str(nd / "ha.d")
        binds["/var/lib/heartbeat"] = str(nd / "varlib")
    return HostSpec(name=host.name, nics=nics, binds=binds, sshd=True, ssh_port=host.ssh.port)


def _secrets_file(paths: LabPaths) -> Path:
    return paths.state_dir / "pair-secrets.json"


def _pair_secret(paths: LabPaths, pair: Pair) -> str:
    """The pair's Heartbeat authkeys secret (same on both nodes), kept apart from the readable state."""
    f = _secrets_file(paths)
    known = json.loads(f.read_text()) if f.exists() else {}
    if pair.name not in known:
        known[pair.name] = secrets.token_hex(20)
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(known, fh)
    return known[pair.name]


def prepare_host_files(lab: Lab, host: Host, client_public_keys: Sequence[str]) -> list[str]:
    """Write a host's /etc/ssh and, for a pair member, /etc/ha.d and /var/lib/heartbeat.
    Returns the resources left out of its haresources (drbddisk without the stand-in)."""
    paths = lab_paths(lab)
    nd = paths.node_dir(host.name)
    keys.host_public_key(paths, host.name)
    hb.write_ssh_dir(nd / "ssh", host, list(client_public_keys))
    (nd / "log").mkdir(parents=True, exist_ok=True)
    (nd / "root").mkdir(mode=0o700, parents=True, exist_ok=True)
    pair = pair_of(lab, host.name)
    if pair is None:
        return []
    standin = hb.drbd_standin()
    hb.write_heartbeat_dirs(nd, lab, pair, host.name, _pair_secret(paths, pair), standin is not None)
    if standin is not None and hasattr(standin, "prepare_node"):
        standin.prepare_node(lab, pair, host.name, nd)
    _, left_out = hb.resource_group(pair, standin is not None)
    update_state(paths, lambda s: s["pairs"].setdefault(pair.name, {}).update(
        members=[pair.master, pair.slave], drbd=standin is not None, left_out=left_out))
    return left_out


def _client_public_keys(lab: Lab) -> list[str]:
    return [k for k in (_pubkey(p) for p in _client_key_files(lab)) if k]


def _client_key_files(lab: Lab) -> list[Path]:
    files = {h.ssh.key_file for h in lab.hosts.values() if h.ssh.key_file} | ({lab.ssh.key_file} - {None})
    return sorted(files)  # type: ignore[arg-type]


def _pubkey(path: Path) -> str | None:
    pub = path.with_name(path.name + ".pub")
    return pub.read_text().strip() if pub.exists() else None


def _write_node_helper(paths: LabPaths) -> None:
    paths.bin_dir.mkdir(parents=True, exist_ok=True)
    helper = paths.bin_dir / "node"
    ns = paths.ns_dir
    helper.write_text(f"""#!/bin/sh
# Run a command inside a lab host: node NAME [CMD...]   (generated by hatui lab up)
[ $# -ge 1 ] || {{ echo "usage: $0 HOST [CMD...]" >&2; exit 2; }}
n=$1; shift
[ $# -ge 1 ] || set -- /bin/bash
exec nsenter --net=/run/netns/{nx.NETNS_PREFIX}$n --mount={ns}/$n.mnt --uts={ns}/$n.uts --pid={ns}/$n.pid -- "$@"
""")
    helper.chmod(0o755)


# --------------------------------------------------------------------------------------------
# Commands inside hosts


def exec_in(lab: Lab, host: str, argv: Sequence[str] | str, *, timeout: float = 30.0,
            check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a command inside a lab host (a string goes through `sh -c`)."""
    return node_exec(lab_paths(lab), host, argv, timeout=timeout, check=check)


def host_command(lab: Lab, host: str) -> list[str]:
    """argv prefix to run something inside `host` yourself (e.g. with asyncio subprocesses)."""
    return node_command(lab_paths(lab), host)


def pair_command(lab: Lab, pair: Pair, key: str) -> str:
    return pair.commands.get(key) or hb_default(key)


def hb_default(key: str) -> str:
    from hatui.config import DEFAULT_COMMANDS
    return DEFAULT_COMMANDS[key]


def start_heartbeat(lab: Lab, host: str) -> subprocess.CompletedProcess[str]:
    pair = pair_of(lab, host)
    cmd = pair_command(lab, pair, "start-heartbeat") if pair else hb_default("start-heartbeat")
    return exec_in(lab, host, cmd, timeout=30, check=True)


def stop_heartbeat(lab: Lab, host: str) -> subprocess.CompletedProcess[str]:
    pair = pair_of(lab, host)
    cmd = pair_command(lab, pair, "stop-heartbeat") if pair else hb_default("stop-heartbeat")
    return exec_in(lab, host, cmd, timeout=60, check=True)


def rscstatus(lab: Lab, host: str) -> str | None:
    """`cl_status rscstatus` on a host: local/all/none/transition, or None (heartbeat stopped / host off)."""
    try:
        proc = exec_in(lab, host, ["cl_status", "rscstatus"], timeout=10)
    except LabError:
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def heartbeat_running(lab: Lab, host: str) -> bool:
    try:
        return exec_in(lab, host, ["cl_status", "hbstatus"], timeout=10).returncode == 0
    except LabError:
        return False


def vip_holders(lab: Lab, pair: Pair) -> list[str]:
    """Members of a pair whose VIP interface holds the VIP right now."""
    state = load_state(lab_paths(lab)) or {}
    holders = []
    for member in (pair.master, pair.slave):
        ns = nx.host_netns(member)
        if member not in state.get("hosts", {}) or not nx.netns_exists(ns):
            continue
        addrs = nx.addresses(ns, pair.vip_interface).get(pair.vip_interface, [])
        if any(a.ip == pair.vip.ip for a in addrs):
            holders.append(member)
    return holders


def http_served_by(address: str, port: int = 80, path: str = "/index.html", timeout: float = 1.0) -> str | None:
    """Who answers http://address/path (X-Served-By header), or None if nobody does."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        if resp.status != 200:
            return None
        served = resp.getheader("X-Served-By")
        if served:
            return served
        return body.split("served by ", 1)[1].strip() if "served by " in body else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def pair_stable(lab: Lab, pair: Pair) -> tuple[bool, str]:
    """(stable, why not): the master serves the VIP alone and Heartbeat is out of `transition`."""
    served = http_served_by(str(pair.vip.ip), timeout=0.5)
    if served != pair.master:
        return False, f"VIP served by {served or 'nobody'}"
    holders = vip_holders(lab, pair)
    if holders != [pair.master]:
        return False, f"VIP held by {', '.join(holders) or 'nobody'}"
    for member in (pair.master, pair.slave):
        rs = rscstatus(lab, member)
        if rs is None or rs == "transition":
            return False, f"{member}: cl_status rscstatus {rs or 'not answering'}"
    return True, "stable"


def wait_stable(lab: Lab, pair: Pair, timeout_s: float = UP_STABLE_TIMEOUT_S) -> float:
    t0 = time.monotonic()
    why = ""
    while time.monotonic() - t0 < timeout_s:
        ok, why = pair_stable(lab, pair)
        if ok:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise LabError(f"pair {pair.name} not stable after {timeout_s:g} s ({why})")


# --------------------------------------------------------------------------------------------
# Boot / power off one host of lab.toml (used by faults and the Proxmox emulator)


def boot_lab_host(lab: Lab, name: str, *, start_hb: bool = True,
                  bridges: Mapping[str, tuple[str, str]] | None = None,
                  macs: Mapping[str, str] | None = None) -> BootResult:
    """Boot a host of lab.toml (a VM the first time, or after a crash), with sshd, and Heartbeat
    when it is a pair member (as a rebooting server would). `bridges` maps a lab network to
    (netns, bridge) when the host should plug into other bridges (e.g. a Proxmox node's)."""
    require_root()
    if name not in lab.hosts:
        raise UsageError(f"no host named {name!r} in {lab.path} (hosts: {', '.join(lab.hosts)})")
    paths = lab_paths(lab)
    with lab_lock(paths):
        state = load_state(paths)
        if not state or state.get("phase") not in ("up", "building"):
            raise RefusedError(f"the lab is not up (no state in {paths.state_dir}); run `hatui lab up`")
        host = lab.hosts[name]
        if bridges is None and name in state.get("hosts", {}):
            # A reboot: the same bridges as last time (e.g. a VM on its Proxmox node's bridges).
            bridges = {n["network"]: (n["bridge_netns"], n["bridge"])
                       for n in state["hosts"][name].get("spec", {}).get("nics", []) if n.get("network")}
        if macs is None and name in state.get("hosts", {}):  # and the same MACs
            macs = {n["name"]: n.get("mac", "") for n in state["hosts"][name].get("spec", {}).get("nics", [])}
        prepare_host_files(lab, host, _client_public_keys(lab))
        result = boot_host(paths, host_spec(lab, host, bridges, macs))
        pair = pair_of(lab, name)
        standin = hb.drbd_standin() if pair else None
        if standin is not None and hasattr(standin, "start_node"):
            standin.start_node(lab, pair, name)
        if start_hb and pair is not None:
            start_heartbeat(lab, name)
        return result


def add_bridge(lab: Lab, netns: str, bridge: str, *, uplink: str | None = None) -> tuple[str, str]:
    """Create a bridge in namespace `netns` (created and recorded if missing; the name must start
    with hatui-), optionally plugged into the bridge of lab network `uplink` (e.g. a Proxmox node's
    vmbr0 into "public"). Returns (netns, bridge), ready for boot_lab_host(bridges={net: ...}).
    Everything is removed by `lab down`."""
    require_root()
    if not netns.startswith(nx.NETNS_PREFIX):
        raise UsageError(f"lab namespaces are named {nx.NETNS_PREFIX}...; got {netns!r}")
    if len(bridge) > nx.IFNAMSIZ:
        raise UsageError(f"bridge name {bridge!r} is longer than {nx.IFNAMSIZ} characters")
    paths = lab_paths(lab)
    with lab_lock(paths):
        state = load_state(paths)
        if not state or state.get("phase") not in ("up", "building"):
            raise RefusedError(f"the lab is not up (no state in {paths.state_dir}); run `hatui lab up`")
        ino = nx.netns_inode(netns)
        if ino is None:
            ino = nx.netns_add(netns)
            update_state(paths, lambda s: s["netns"].__setitem__(netns, ino))
        elif state.get("netns", {}).get(netns) != ino:
            raise LabError(f"network namespace {netns} exists and is not this lab's")
        if not nx.link_exists(bridge, netns):
            nx.ip_batch(nx.bridge_commands(bridge), netns=netns, what=f"create bridge {bridge} in {netns}")
        if uplink is not None:
            up_bns, up_br = (state.get("bridges", {}).get(uplink) or {}).get("netns"), \
                (state.get("bridges", {}).get(uplink) or {}).get("name")
            if not up_br:
                raise UsageError(f"no lab network named {uplink!r} (networks: {', '.join(lab.networks)})")
            port = nx.ifname(netns[len(nx.NETNS_PREFIX):], bridge, prefix="u-")
            if not nx.link_exists(port, up_bns):
                nx.ip("link", "add", port, "type", "veth", "peer", "name", f"up-{bridge}"[:nx.IFNAMSIZ],
                      "netns", netns, netns=up_bns, what=f"uplink {netns}/{bridge} -> {uplink}")
                nx.ip_batch([f"link set {port} master {up_br} up"], netns=up_bns)
                nx.ip_batch([f"link set {f'up-{bridge}'[:nx.IFNAMSIZ]} master {bridge} up"], netns=netns)
        return netns, bridge


def poweroff_lab_host(lab: Lab, name: str, *, remove_network: bool = False) -> float:
    """Power a host off: NICs down, its whole PID namespace killed. Returns seconds taken."""
    require_root()
    paths = lab_paths(lab)
    with lab_lock(paths):
        state = load_state(paths) or {}
        record = state.get("hosts", {}).get(name)
        if record is None:
            raise RefusedError(f"host {name} is not part of the running lab")
        return poweroff_hosts(paths, [name], remove_network=remove_network)


# --------------------------------------------------------------------------------------------
# up


def _health(lab: Lab, paths: LabPaths, state: Mapping[str, Any]) -> list[str]:
    """What is missing from a recorded lab (empty = complete)."""
    missing = []
    if state.get("phase") != "up":
        missing.append(f"`lab up` did not finish (phase {state.get('phase')})")
    for ns, ino in state.get("netns", {}).items():
        if nx.netns_inode(ns) != ino:
            missing.append(f"namespace {ns}")
    if state.get("host_leg") and not nx.link_exists(state["host_leg"]["name"]):
        missing.append(f"interface {state['host_leg']['name']}")
    if state.get("route") and not nx.unreachable_route_exists(ipaddress.IPv4Network(state["route"])):
        missing.append(f"route unreachable {state['route']}")
    for host in hosts_for_up(lab):
        if host.name not in state.get("hosts", {}):
            missing.append(f"host {host.name}")
    return missing


def up(lab: Lab, out: Out = print) -> UpReport:
    """Build the lab (or say it is up already). Raises HatuiError with nothing left behind on failure."""
    t0 = time.monotonic()
    require_root("hatui lab up")
    check_lab(lab)
    missing = missing_requirements()
    if missing:
        raise UsageError("missing software (install it, hatui does not): " + "; ".join(missing)
                         + f"\n  apt-get install {' '.join(missing_packages())}")
    problems = kernel_problems()
    if problems:
        raise UsageError("this kernel cannot run the lab: " + "; ".join(problems))
    paths = lab_paths(lab)
    report = UpReport(paths.state_dir)
    try:
        return _up_locked(lab, paths, report, out, t0)
    finally:
        if not paths.state_file.exists():
            _remove_empty_state_dir(paths)


def _remove_empty_state_dir(paths: LabPaths) -> None:
    """After a refused `up`: no lock file or empty directory left behind."""
    paths.lock_file.unlink(missing_ok=True)
    for d in (paths.state_dir, paths.state_dir.parent):
        try:
            d.rmdir()
        except OSError:
            break


def _up_locked(lab: Lab, paths: LabPaths, report: UpReport, out: Out, t0: float) -> UpReport:
    with lab_lock(paths):
        state = load_state(paths)
        if state is not None:
            missing_parts = _health(lab, paths, state)
            if not missing_parts:
                report.already_up = True
                off = [n for n, r in state.get("hosts", {}).items() if not host_running(r)]
                report.notes.append(f"the lab is already up (state {paths.state_dir}); nothing changed")
                restarted = pve_lab.ensure(lab)  # a dead Proxmox emulator is started again
                if restarted:
                    report.notes.append(restarted)
                if off:
                    report.notes.append(f"powered off: {', '.join(off)} (bring back with `hatui lab fault HOST restore`)")
                report.seconds = time.monotonic() - t0
                return report
            out(f"half-built lab found in {paths.state_dir} (missing: {', '.join(missing_parts)}); "
                f"tearing it down and building again")
            _teardown(lab, paths, state, final=False)
            report.repaired = True
        clashes = _clashes(lab, None)
        if clashes:
            raise UsageError("name clash, nothing was built:\n  " + "\n  ".join(clashes))
        try:
            _build(lab, paths, report, out)
        except BaseException as exc:
            state = load_state(paths)
            logs = _log_tails(lab, paths) if isinstance(exc, LabError) and "not stable" in str(exc) else ""
            if state is not None:
                _teardown(lab, paths, state)
            if isinstance(exc, LabError):
                raise LabError(f"lab up failed: {exc}{logs}\n  (everything built so far was removed)") from None
            raise
    report.seconds = time.monotonic() - t0
    return report


def _log_tails(lab: Lab, paths: LabPaths, lines: int = 8) -> str:
    out = []
    for pair in native_pairs(lab):
        for member in (pair.master, pair.slave):
            log = paths.node_dir(member) / "log" / "ha-log"
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"\n  --- {member}: /var/log/ha-log (last {len(tail)} lines)\n    " + "\n    ".join(tail))
    return "".join(out)


def _build(lab: Lab, paths: LabPaths, report: UpReport, out: Out) -> None:
    def step(name: str, detail: str, t: float) -> None:
        s = Step(name, detail, time.monotonic() - t)
        report.steps.append(s)
        out(f"  {s.name:<10} {s.detail}  ({s.seconds:.2f} s)")

    assert lab.address_range is not None
    out(f"hatui lab up: lab '{lab.name}' from {lab.path}, state in {paths.state_dir}")
    # 0. The state file first: from here on everything we make is recorded.
    t = time.monotonic()
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.state_dir, 0o755)
    state = load_state(paths)
    if state is None:
        from hatui.lab.state import empty_state
        state = empty_state()
    state.update(phase="building", lab_file=str(Path(lab.path).resolve()),
                 run_netns_mounted=nx.is_mountpoint(nx.NETNS_DIR), run_netns_existed=nx.NETNS_DIR.exists())
    save_state(paths, state)
    # 1. Route: lab addresses are dropped locally while the lab exists.
    update_state(paths, lambda s: s.__setitem__("route", str(lab.address_range)))
    try:
        nx.add_unreachable_route(lab.address_range)
    except LabError:
        update_state(paths, lambda s: s.__setitem__("route", None))  # not ours after all
        raise
    step("route", f"unreachable {lab.address_range} in the root namespace", t)

    # 2. Bridges in hatui-net, and the root namespace's leg on the public network.
    t = time.monotonic()
    ino = nx.netns_add(nx.BRIDGE_NETNS)
    update_state(paths, lambda s: s["netns"].__setitem__(nx.BRIDGE_NETNS, ino))
    bridges = default_bridges(lab)
    cmds = []
    for _, br in bridges.values():
        cmds += nx.bridge_commands(br)
    try:
        nx.ip_batch(cmds, netns=nx.BRIDGE_NETNS, what="create the bridges")
    except LabError as exc:
        if "Unknown device type" in str(exc) or "not supported" in str(exc):
            raise LabError("this kernel has no Linux bridge support (CONFIG_BRIDGE)") from None
        raise
    update_state(paths, lambda s: s.__setitem__("bridges", {n: {"netns": b[0], "name": b[1]} for n, b in bridges.items()}))
    leg_net = host_leg_network(lab)
    leg_addr = ipaddress.IPv4Interface(f"{leg_net.host_address}/{leg_net.cidr.prefixlen}")
    update_state(paths, lambda s: s.__setitem__("host_leg", {"name": nx.HOST_LEG, "peer": nx.HOST_LEG_PEER,
                                                             "address": str(leg_addr), "network": leg_net.name}))
    try:
        nx.ip("link", "add", nx.HOST_LEG, "type", "veth", "peer", "name", nx.HOST_LEG_PEER, "netns", nx.BRIDGE_NETNS,
              what=f"create {nx.HOST_LEG}")
    except LabError as exc:
        update_state(paths, lambda s: s.__setitem__("host_leg", None))  # not ours after all
        if "Unknown device type" in str(exc) or "not supported" in str(exc):
            raise LabError("this kernel has no veth support (CONFIG_VETH)") from None
        raise
    try:
        Path(f"/proc/sys/net/ipv6/conf/{nx.HOST_LEG}/disable_ipv6").write_text("1")
    except OSError:
        pass
    nx.ip_batch(nx.address_commands(nx.HOST_LEG, leg_addr) + [f"link set {nx.HOST_LEG} up"], what=f"set up {nx.HOST_LEG}")
    nx.ip("link", "set", nx.HOST_LEG_PEER, "master", bridges[leg_net.name][1], "up", netns=nx.BRIDGE_NETNS)
    step("network", f"{nx.BRIDGE_NETNS}: " + ", ".join(f"{b[1]} ({n})" for n, b in bridges.items())
         + f"; {nx.HOST_LEG} {leg_addr} on {leg_net.name}", t)

    # 3. Keys and known_hosts (host keys for every host of lab.toml, VMs included). Only files we
    #    create are recorded (and removed by `down`); a known_hosts we did not write is refused.
    t = time.monotonic()
    made: list[str] = []
    for f in _client_key_files(lab):
        if not f.exists():
            made += [str(f), str(f) + ".pub"]
    kh_written = sorted({h.ssh.known_hosts for h in lab.hosts.values() if h.ssh.known_hosts}
                        | ({lab.ssh.known_hosts} - {None}))  # type: ignore[type-var]
    for kh in kh_written:
        if not kh.exists():
            made.append(str(kh))
    update_state(paths, lambda s: s.__setitem__("files", sorted(set(s.get("files", [])) | set(made))))
    for f in _client_key_files(lab):
        keys.keygen(f, f"hatui@{lab.name}")
    public = {h: keys.host_public_key(paths, h) for h in lab.hosts}
    keys.write_known_hosts(lab, public)
    _write_node_helper(paths)
    step("keys", f"client key {', '.join(str(f) for f in _client_key_files(lab))}; {len(public)} host keys; "
         f"known_hosts {', '.join(str(k) for k in kh_written)}", t)

    # 4. Hosts: files, namespaces, PID 1, sshd.
    t = time.monotonic()
    client_keys = _client_public_keys(lab)
    left_out: dict[str, list[str]] = {}
    built = hosts_for_up(lab)
    for host in built:
        lo = prepare_host_files(lab, host, client_keys)
        pair = pair_of(lab, host.name)
        if lo and pair:
            left_out[pair.name] = lo
    for host in built:
        boot_host(paths, host_spec(lab, host))
    step("hosts", " ".join(f"{h.name}({nx.host_netns(h.name)}, {h.address})" for h in built) + ": namespaces, sshd", t)
    for pair_name, lo in left_out.items():
        note = f"DRBD stand-in not available: {' '.join(lo)} left out of the resource group (pair {pair_name})"
        report.notes.append(note)
        out(f"  note       {note}")

    # 5. Heartbeat on every native pair member, all at once (cold start settles in ~10 s).
    t = time.monotonic()
    pairs = native_pairs(lab)
    members = [m for p in pairs for m in (p.master, p.slave)]
    for pair in pairs:
        standin = hb.drbd_standin()
        if standin is not None and hasattr(standin, "start_node"):
            for m in (pair.master, pair.slave):
                standin.start_node(lab, pair, m)
    errors: list[BaseException] = []

    def start(member: str) -> None:
        try:
            start_heartbeat(lab, member)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(m,)) for m in members]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    step("heartbeat", f"started on {', '.join(members) or 'no native pair'}", t)

    # 6. Wait until every native pair is stable.
    for pair in pairs:
        t = time.monotonic()
        wait_stable(lab, pair)
        rs = {m: rscstatus(lab, m) for m in (pair.master, pair.slave)}
        step("stable", f"pair {pair.name}: VIP {pair.vip.ip} served by {pair.master} "
             f"(rscstatus {', '.join(f'{m} {r}' for m, r in rs.items())})", t)
    # 7. Proxmox VE (lab.toml [proxmox]): the nodes' bridges and the API emulator (hatui.lab.pve_lab).
    pve_lab.up(lab, step)
    update_state(paths, lambda s: s.__setitem__("phase", "up"))


# --------------------------------------------------------------------------------------------
# down


def down(lab: Lab, out: Out = print) -> DownReport:
    """Remove everything the state records. Harmless when there is no lab."""
    t0 = time.monotonic()
    require_root("hatui lab down")
    paths = lab_paths(lab)
    report = DownReport(paths.state_dir)
    if not paths.state_file.exists():
        report.nothing_to_do = True
        report.seconds = time.monotonic() - t0
        return report
    with lab_lock(paths):
        state = load_state(paths)
        if state is None:
            report.nothing_to_do = True
        else:
            report.removed, report.problems = _teardown(lab, paths, state)
    report.seconds = time.monotonic() - t0
    return report


def _teardown(lab: Lab, paths: LabPaths, state: dict[str, Any], *, final: bool = True) -> tuple[list[str], list[str]]:
    # 0. The Proxmox emulator (by its recorded PID), the VM hosts' cgroups and {state_dir}/pve.
    removed, problems = pve_lab.teardown(lab, paths, state)
    hosts = list(state.get("hosts", {}))
    # 1. Processes: every host's PID 1 (its whole PID namespace) and its unshare, by recorded PID.
    if hosts:
        try:
            poweroff_hosts(paths, hosts, cut_links=False)
            removed.append(f"hosts {' '.join(hosts)}")
        except LabError as exc:
            problems.append(str(exc))
    # 2. Pinned namespaces and the private ns/ mount.
    release_ns_dir(paths)
    # 3. Network namespaces (with their veths and bridges), hosts first.
    state = load_state(paths) or state
    netns = sorted(state.get("netns", {}).items(), key=lambda kv: kv[0] == nx.BRIDGE_NETNS)
    for ns, ino in netns:
        if nx.netns_inode(ns) == ino:
            nx.netns_delete(ns)
            removed.append(f"netns {ns}")
        elif nx.netns_inode(ns) is not None:
            problems.append(f"netns {ns} is not the one this lab made; left alone")
    leg = state.get("host_leg")
    if leg and nx.link_exists(leg["name"]):
        nx.ip("link", "del", leg["name"], check=False)
    if leg:
        removed.append(f"interface {leg['name']}")
    # 4. The unreachable route.
    if state.get("route"):
        nx.del_unreachable_route(ipaddress.IPv4Network(state["route"]))
        removed.append(f"route unreachable {state['route']}")
    # 5. /run/netns, if `ip netns add` mounted it for us and nothing else lives there.
    if state.get("run_netns_mounted") is False and nx.is_mountpoint(nx.NETNS_DIR) and not nx.netns_list():
        subprocess.run(["umount", str(nx.NETNS_DIR)], capture_output=True)
        if state.get("run_netns_existed") is False:
            try:
                nx.NETNS_DIR.rmdir()
            except OSError:
                pass
    # 6. Files: ours only.
    for f in state.get("files", []):
        Path(f).unlink(missing_ok=True)
    kh = {h.ssh.known_hosts for h in lab.hosts.values() if h.ssh.known_hosts} | ({lab.ssh.known_hosts} - {None})
    for path in kh:
        try:
            if path.read_text().startswith(keys.KNOWN_HOSTS_HEADER):
                path.unlink()
        except OSError:
            pass
    for sub in (paths.ns_dir, paths.nodes_dir, paths.bin_dir):
        if sub.exists() and not nx.is_mountpoint(sub):
            shutil.rmtree(sub, ignore_errors=True)
    for f in state.get("files", []):
        _rmdir_up_to(Path(f).parent, paths.state_dir)
    _secrets_file(paths).unlink(missing_ok=True)
    paths.state_file.unlink(missing_ok=True)
    if final:
        _remove_empty_state_dir(paths)
    return removed, problems


def _rmdir_up_to(d: Path, stop: Path) -> None:
    while d != stop and stop in d.parents:
        try:
            d.rmdir()
        except OSError:
            return
        d = d.parent


# --------------------------------------------------------------------------------------------
# status


def status(lab: Lab, *, live: bool = True) -> dict[str, Any]:
    """A snapshot of the lab: which hosts run, who holds each VIP, where the state lives."""
    paths = lab_paths(lab)
    state = load_state(paths) if paths.state_dir.exists() else None
    live = live and os.geteuid() == 0
    result: dict[str, Any] = {
        "lab": lab.name, "file": str(lab.path), "state_dir": str(paths.state_dir),
        "phase": state.get("phase") if state else "down",
        "ssh": {"key_file": str(lab.ssh.key_file) if lab.ssh.key_file else None,
                "known_hosts": str(lab.ssh.known_hosts) if lab.ssh.known_hosts else None},
        "node_helper": str(paths.bin_dir / "node") if state else None,
        "route": f"unreachable {state['route']}" if state and state.get("route") else None,
        "host_leg": state.get("host_leg") if state else None,
        "live": live, "hosts": {}, "pairs": {}, "proxmox": pve_lab.status(lab, state),
    }
    if not state:
        return result
    for name, record in sorted(state.get("hosts", {}).items()):
        running = host_running(record)
        entry: dict[str, Any] = {
            "running": running, "netns": record.get("netns"),
            "init_pid": record["init"]["pid"] if running else None,
            "dir": str(paths.node_dir(name)),
            "nics": {n["name"]: {"address": n["address"], "network": n.get("network"), "bridge": n["bridge"]}
                     for n in record.get("spec", {}).get("nics", [])},
        }
        if live and running and name in lab.hosts and pair_of(lab, name):
            entry["heartbeat"] = "running" if heartbeat_running(lab, name) else "stopped"
        if live and nx.netns_exists(record.get("netns", "")):
            present = nx.links(record["netns"])
            for nic, info in entry["nics"].items():
                link = present.get(nic, {})
                info["state"] = link.get("operstate", "absent")
        result["hosts"][name] = entry
    for pair in lab.pairs.values():
        if pair.master not in state.get("hosts", {}) and pair.slave not in state.get("hosts", {}):
            continue
        p: dict[str, Any] = {"vip": str(pair.vip), "master": pair.master, "slave": pair.slave,
                             "left_out": state.get("pairs", {}).get(pair.name, {}).get("left_out", [])}
        if live:
            p["holders"] = vip_holders(lab, pair)
            p["served_by"] = http_served_by(str(pair.vip.ip), timeout=0.5) if state.get("host_leg") else None
            p["rscstatus"] = {m: rscstatus(lab, m) for m in (pair.master, pair.slave)
                              if host_running(state["hosts"].get(m))}
        result["pairs"][pair.name] = p
    return result

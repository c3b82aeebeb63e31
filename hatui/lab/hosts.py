"""The hosts of lab.toml in the running lab: their files, booting and powering them off, the
bridges they plug into, and commands (Heartbeat's among them) run inside them.

    boot_lab_host(lab, name)      boot one host of lab.toml (the Proxmox emulator boots VMs this way)
    poweroff_lab_host(lab, name)  power it off (crash semantics; remove_network=True for VM stop)
    add_bridge(lab, netns, br)    a bridge for hosts to plug into (e.g. a Proxmox node's vmbr0)
    exec_in(lab, host, argv)      run a command inside a host
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

from hatui.config import DEFAULT_COMMANDS, Host, Lab, Pair
from hatui.errors import RefusedError, UsageError
from hatui.lab import drbd
from hatui.lab import heartbeat as hb
from hatui.lab import keys
from hatui.lab import netns as nx
from hatui.lab.drbd import node as drbd_node
from hatui.lab.node import BootResult, HostSpec, NicSpec, boot_host, node_command, node_exec, poweroff_hosts
from hatui.lab.preflight import require_root
from hatui.lab.state import LabError, LabPaths, lab_lock, lab_paths, load_state, update_state


def hosts_for_up(lab: Lab) -> list[Host]:
    """Native servers and clients; VMs come later with the Proxmox emulator."""
    return [h for h in lab.hosts.values() if h.stack == "native" or h.role == "client"]


def native_pairs(lab: Lab) -> list[Pair]:
    return [p for p in lab.pairs.values() if lab.hosts[p.master].stack == "native" and lab.hosts[p.slave].stack == "native"]


def pair_of(lab: Lab, host: str) -> Pair | None:
    return next((p for p in lab.pairs.values() if host in (p.master, p.slave)), None)


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


def pair_secrets_file(paths: LabPaths) -> Path:
    return paths.state_dir / "pair-secrets.json"


def _pair_secret(paths: LabPaths, pair: Pair) -> str:
    """The pair's Heartbeat authkeys secret (same on both nodes), kept apart from the readable state."""
    f = pair_secrets_file(paths)
    known = json.loads(f.read_text()) if f.exists() else {}
    if pair.name not in known:
        known[pair.name] = secrets.token_hex(20)
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(known, fh)
    return known[pair.name]


def prepare_host_files(lab: Lab, host: Host, authorized_keys: Sequence[str]) -> list[str]:
    """Write a host's /etc/ssh and, for a pair member, /etc/ha.d and /var/lib/heartbeat.
    Returns the resources left out of its haresources (drbddisk without the stand-in)."""
    paths = lab_paths(lab)
    nd = paths.node_dir(host.name)
    keys.host_public_key(paths, host.name)
    hb.write_ssh_dir(nd / "ssh", host, list(authorized_keys))
    (nd / "log").mkdir(parents=True, exist_ok=True)
    (nd / "root").mkdir(mode=0o700, parents=True, exist_ok=True)
    pair = pair_of(lab, host.name)
    if pair is None:
        return []
    standin = drbd.available()
    hb.write_heartbeat_dirs(nd, lab, pair, host.name, _pair_secret(paths, pair), standin)
    if standin:
        drbd_node.prepare_node(lab, pair, host.name, nd)
    _, left_out = hb.resource_group(pair, standin)
    update_state(paths, lambda s: s["pairs"].setdefault(pair.name, {}).update(
        members=[pair.master, pair.slave], drbd=standin, left_out=left_out))
    return left_out


def client_public_keys(lab: Lab) -> list[str]:
    return [k for k in (_pubkey(p) for p in client_key_files(lab)) if k]


def client_key_files(lab: Lab) -> list[Path]:
    files = {h.ssh.key_file for h in lab.hosts.values() if h.ssh.key_file} | ({lab.ssh.key_file} - {None})
    return sorted(files)  # type: ignore[arg-type]


def _pubkey(path: Path) -> str | None:
    pub = path.with_name(path.name + ".pub")
    return pub.read_text().strip() if pub.exists() else None


# --------------------------------------------------------------------------------------------
# Commands inside hosts


def exec_in(lab: Lab, host: str, argv: Sequence[str] | str, *, timeout: float = 30.0,
            check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a command inside a lab host (a string goes through `sh -c`)."""
    return node_exec(lab_paths(lab), host, argv, timeout=timeout, check=check)


def host_command(lab: Lab, host: str) -> list[str]:
    """argv prefix to run something inside `host` yourself (e.g. with asyncio subprocesses)."""
    return node_command(lab_paths(lab), host)


def _heartbeat_command(lab: Lab, host: str, key: str) -> str:
    """The pair's command (lab.toml) or Heartbeat's default."""
    pair = pair_of(lab, host)
    return (pair.commands.get(key) if pair else None) or DEFAULT_COMMANDS[key]


def start_heartbeat(lab: Lab, host: str) -> subprocess.CompletedProcess[str]:
    return exec_in(lab, host, _heartbeat_command(lab, host, "start-heartbeat"), timeout=30, check=True)


def stop_heartbeat(lab: Lab, host: str) -> subprocess.CompletedProcess[str]:
    return exec_in(lab, host, _heartbeat_command(lab, host, "stop-heartbeat"), timeout=60, check=True)


# --------------------------------------------------------------------------------------------
# Boot / power off one host of lab.toml (used by faults and the Proxmox emulator)


def _up_state(paths: LabPaths) -> dict[str, Any]:
    """The state of a lab that is up or being built (the caller holds the lab lock)."""
    state = load_state(paths)
    if not state or state.get("phase") not in ("up", "building"):
        raise RefusedError(f"the lab is not up (no state in {paths.state_dir}); run `hatui lab up`")
    return state


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
        state = _up_state(paths)
        host = lab.hosts[name]
        if bridges is None and name in state.get("hosts", {}):
            # A reboot: the same bridges as last time (e.g. a VM on its Proxmox node's bridges).
            bridges = {n["network"]: (n["bridge_netns"], n["bridge"])
                       for n in state["hosts"][name].get("spec", {}).get("nics", []) if n.get("network")}
        if macs is None and name in state.get("hosts", {}):  # and the same MACs
            macs = {n["name"]: n.get("mac", "") for n in state["hosts"][name].get("spec", {}).get("nics", [])}
        prepare_host_files(lab, host, client_public_keys(lab))
        result = boot_host(paths, host_spec(lab, host, bridges, macs))
        pair = pair_of(lab, name)
        if pair is not None and drbd.available():
            drbd_node.start_node(lab, pair, name)
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
        state = _up_state(paths)
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



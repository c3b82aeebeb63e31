"""Before `lab up` builds anything: root, the software the lab runs, the kernel's namespaces, what
lab.toml asks for, and nothing on this machine already using the lab's names or addresses."""

from __future__ import annotations

import os
import shutil
from typing import Any, Mapping

from hatui.config import Lab
from hatui.errors import UsageError
from hatui.lab import keys
from hatui.lab import netns as nx

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
    """What `lab up` needs from lab.toml beyond config.py's own checks (Proxmox: hatui.lab.vms.check)."""
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
    if problems:
        raise UsageError(f"{lab.path}: cannot build this lab:\n  " + "\n  ".join(problems))


def name_clashes(lab: Lab, state: Mapping[str, Any] | None) -> list[str]:
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


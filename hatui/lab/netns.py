"""Network namespaces, bridges, veths, addresses and routes (thin wrappers over iproute2).

Every lab namespace is named `hatui-...`. Bridges live in the `hatui-net` namespace; each host NIC
is one end of a veth pair whose other end is a port of the network's bridge. The root namespace
only gets the `hatui-host` leg on the public bridge and an `unreachable` route for the lab's whole
address range. No lab namespace has a default route, and ip_forward is never touched.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Sequence

from hatui.lab.state import LabError

NETNS_PREFIX = "hatui-"
BRIDGE_NETNS = "hatui-net"
HOST_LEG = "hatui-host"
HOST_LEG_PEER = "p-host"
NETNS_DIR = Path("/run/netns")
IFNAMSIZ = 15

CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
}


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 10.0, input: str | None = None,
        what: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; on failure raise LabError naming `what` and stderr."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input,
                              env=CLEAN_ENV, stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise LabError(f"{what or argv[0]}: {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{what or ' '.join(argv)}: timed out after {timeout:g} s") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"{what or ' '.join(argv)}: failed (exit {proc.returncode})"
                       + (f": {detail[-1]}" if detail else ""))
    return proc


def ip(*args: str, netns: str | None = None, check: bool = True, what: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["ip"] + (["-n", netns] if netns else []) + list(args)
    return run(argv, check=check, what=what)


def ip_batch(commands: list[str], netns: str | None = None, what: str = "ip -batch") -> None:
    """Run many `ip` commands in one process (each line like `link set eth0 up`)."""
    if not commands:
        return
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    run(argv, input="\n".join(commands) + "\n", what=what)


def ip_json(*args: str, netns: str | None = None) -> Any:
    proc = ip("-j", *args, netns=netns, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return []
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------------------------
# Names


def ifname(*parts: str, prefix: str = "") -> str:
    """An interface name (<= 15 chars) from parts, with a stable hash when it would be too long."""
    name = prefix + "-".join(parts)
    if len(name) <= IFNAMSIZ:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:5]
    return name[: IFNAMSIZ - 6] + "-" + digest


def host_netns(host: str) -> str:
    return NETNS_PREFIX + host


def bridge_name(network: str) -> str:
    return ifname(network, prefix="br-")


def port_name(host: str, nic: str) -> str:
    """The bridge-side end of a host NIC's veth (inside the bridge namespace)."""
    return ifname(host, nic, prefix="v-")


# --------------------------------------------------------------------------------------------
# Namespaces


def netns_list() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def netns_exists(name: str) -> bool:
    return netns_path(name).exists()


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(netns_path(name)).st_ino
    except FileNotFoundError:
        return None


def netns_add(name: str) -> int:
    """Create a namespace, bring its loopback up and switch off IPv6 in it; returns its inode."""
    ip("netns", "add", name, what=f"create network namespace {name}")
    ino = netns_inode(name)
    assert ino is not None
    ip("link", "set", "lo", "up", netns=name)
    # IPv4 only: no IPv6 link-local chatter on the lab's bridges.
    run(["nsenter", f"--net={netns_path(name)}", "--", "sysctl", "-q", "-w",
         "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"], check=False)
    return ino


def netns_delete(name: str) -> None:
    ip("netns", "delete", name, check=False)


def is_mountpoint(path: Path | str) -> bool:
    path = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as fh:
            return any(line.split()[4] == path for line in fh)
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# Links and addresses


def link_exists(name: str, netns: str | None = None) -> bool:
    if netns is None:
        return os.path.exists(f"/sys/class/net/{name}")
    return ip("link", "show", "dev", name, netns=netns, check=False).returncode == 0


def links(netns: str | None = None) -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in ip_json("link", "show", netns=netns)}


def addresses(netns: str | None = None, dev: str | None = None) -> dict[str, list[ipaddress.IPv4Interface]]:
    """IPv4 addresses per interface."""
    args = ["-4", "addr", "show"] + (["dev", dev] if dev else [])
    out: dict[str, list[ipaddress.IPv4Interface]] = {}
    for link in ip_json(*args, netns=netns):
        out[link["ifname"]] = [ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}")
                               for a in link.get("addr_info", []) if a.get("family") == "inet"]
    return out


def bridge_commands(bridge: str) -> list[str]:
    return [f"link add {bridge} type bridge stp_state 0 forward_delay 0",
            f"link set {bridge} up"]


def address_commands(dev: str, address: ipaddress.IPv4Interface) -> list[str]:
    return [f"addr add {address.with_prefixlen} brd + dev {dev}"]


# --------------------------------------------------------------------------------------------
# Routes in the root namespace


def unreachable_route_exists(network: ipaddress.IPv4Network) -> bool:
    return any(r.get("dst") == str(network) for r in ip_json("route", "show", "type", "unreachable"))


def add_unreachable_route(network: ipaddress.IPv4Network) -> None:
    ip("route", "add", "unreachable", str(network), what=f"add the route 'unreachable {network}'")


def del_unreachable_route(network: ipaddress.IPv4Network) -> None:
    ip("route", "del", "unreachable", str(network), check=False)


def overlapping_routes(network: ipaddress.IPv4Network) -> list[str]:
    """Root-namespace routes (any table type, not the default route) that overlap `network`."""
    found = []
    for table in ("main", "local"):
        for route in ip_json("route", "show", "table", table):
            dst = route.get("dst", "")
            if dst in ("default", "") or ":" in dst:
                continue
            try:
                net = ipaddress.IPv4Network(dst if "/" in dst else dst + "/32", strict=False)
            except ValueError:
                continue
            if net.overlaps(network):
                kind = route.get("type", "unicast")
                found.append(f"{kind} {dst}" + (f" dev {route['dev']}" if route.get("dev") else ""))
    return found


def addresses_in(network: ipaddress.IPv4Network, netns: str | None = None) -> list[str]:
    """Interfaces of a namespace holding an address inside `network` ("dev address")."""
    out = []
    for dev, addrs in addresses(netns).items():
        out += [f"{dev} {a.ip}" for a in addrs if a.ip in network]
    return out

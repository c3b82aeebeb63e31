"""The lab description (`lab.toml`): a typed model and a loader that reports every problem at once.

Every problem names the file, the key path (e.g. `pairs.native.vip`), the line where it can be
found, what was expected and what was found. Unknown keys are problems too, with a did-you-mean.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from hatui.errors import HatuiError
from hatui.load.spec import MAX_CONNECTIONS, MAX_DURATION_S, limit_problems, request_path_problem
from hatui.toml_reader import (REQUIRED, Problem, Reader, check_name, describe, interface_name, one_of, port_number,
                               positive)

STACKS = ("native", "virtual")
# The fault vocabulary, once: each fault a drill injects and the action that undoes it (the
# drill's recovery). Every action hatui runs on a pair is one of these.
RECOVERY = {
    "stop-heartbeat": "start-heartbeat",
    "standby": "takeover",
    "crash": "restore",
    "cut-link": "heal-link",
    "stop-vm": "start-vm",
}
FAULTS = tuple(RECOVERY)
RECOVERIES = tuple(RECOVERY.values())
ACTIONS = FAULTS + RECOVERIES
ENGINES = ("builtin", "httperf")
HEARTBEAT_MEDIA = ("ucast", "bcast")
# USER@REALM!TOKEN, with Proxmox's own rule for realm and token names (2 characters or more).
PROXMOX_TOKEN_ID = re.compile(r"([^\s:/!@]+@[A-Za-z][A-Za-z0-9.\-_]+)!([A-Za-z][A-Za-z0-9.\-_]+)")

# Default commands a drill sends to real Heartbeat v1 nodes (Debian paths); overridable per pair.
DEFAULT_COMMANDS = {
    "stop-heartbeat": "/etc/init.d/heartbeat stop",
    "start-heartbeat": "/etc/init.d/heartbeat start",
    "standby": "/usr/share/heartbeat/hb_standby all",
    "takeover": "/usr/share/heartbeat/hb_takeover all",
    "heartbeat-status": "cl_status hbstatus",
    "resource-status": "cl_status rscstatus",
}


# --------------------------------------------------------------------------------------------
# Model


@dataclass
class Network:
    name: str
    cidr: ipaddress.IPv4Network
    host_address: ipaddress.IPv4Address | None = None


@dataclass
class Nic:
    name: str
    network: str
    address: ipaddress.IPv4Address


@dataclass
class SshSettings:
    user: str = "root"
    port: int = 22
    key_file: Path | None = None
    known_hosts: Path | None = None
    connect_timeout_s: float = 5.0
    command_timeout_s: float = 10.0


@dataclass(frozen=True)
class VmSpec:
    """One VM as the lab wants it (the study: 1 core, 512 MB, 50 GB + 10 GB, two NICs): a lab.toml
    host's `vm` table, and what `hatui vms create` asks Proxmox for."""

    name: str
    vmid: int
    node: str
    cores: int = 1
    memory_mb: int = 512
    disks_gb: list[int] = field(default_factory=lambda: [50, 10])
    nics: list[str] = field(default_factory=lambda: ["vmbr0", "vmbr1"])  # bridge per NIC (hatui.vms.lab_vm_spec derives a lab host's)
    storage: str = "local-lvm"
    disk_bus: str = "scsi"  # scsi | virtio | sata
    nic_model: str = "virtio"
    ostype: str = "l26"


@dataclass
class Host:
    name: str
    stack: str  # native | virtual
    role: str  # server | client
    nics: dict[str, Nic]
    ssh: SshSettings
    address: ipaddress.IPv4Address  # where hatui reaches it over SSH
    vm: VmSpec | None = None

    def nic_on(self, network: str) -> Nic | None:
        return next((nic for nic in self.nics.values() if nic.network == network), None)


@dataclass
class HeartbeatSettings:
    keepalive_ms: int = 100
    warntime_ms: int = 300
    deadtime_ms: int = 500
    initdead_ms: int = 2000
    udpport: int = 694
    media: str = "ucast"


@dataclass
class DrbdConfig:
    name: str
    minor: int
    device: str
    port: int
    size_mb: int = 64
    protocol: str = "C"
    resync_rate_kib: int = 8192
    allow_two_primaries: bool = False


@dataclass
class Pair:
    name: str
    stack: str
    master: str
    slave: str
    vip: ipaddress.IPv4Interface
    vip_interface: str
    resources: list[str]
    auto_failback: bool
    heartbeat: HeartbeatSettings
    drbd: list[str]
    commands: dict[str, str]

    @property
    def vip_address(self) -> ipaddress.IPv4Address:
        return self.vip.ip

    def peer(self, host: str) -> str:
        """The other node of the pair."""
        if host not in (self.master, self.slave):
            raise ValueError(f"{host!r} is not a node of pair {self.name}")
        return self.slave if host == self.master else self.master


@dataclass
class ProxmoxConfig:
    endpoint: str
    nodes: list[str]
    token_id: str
    token_secret_env: str | None = None
    token_secret_file: Path | None = None
    verify_tls: bool = True
    ca_file: Path | None = None
    fingerprint: str | None = None
    timeout_s: float = 10.0

    def token_secret(self) -> str:
        """Read the secret at use time (it is never stored in lab.toml)."""
        if self.token_secret_env:
            value = os.environ.get(self.token_secret_env)
            if not value:
                raise HatuiError(f"proxmox.token_secret_env: environment variable {self.token_secret_env} is not set")
            return value.strip()
        if self.token_secret_file:
            try:
                return self.token_secret_file.read_text().strip()
            except OSError as exc:
                raise HatuiError(f"proxmox.token_secret_file: cannot read {self.token_secret_file}: {exc.strerror}") from None
        raise HatuiError("proxmox: no token secret configured (token_secret_env or token_secret_file)")


@dataclass
class LoadConfig:
    connections: int = 2000
    rates: list[float] = field(default_factory=lambda: [10, 20, 30, 40, 50])
    repetitions: int = 5
    uri: str = "/index.html"
    timeout_s: float = 1.0
    probe_interval_ms: float = 10.0
    engine: str = "builtin"


@dataclass
class Timepoint:
    """A moment in a run: seconds from its start, or a fraction of its planned duration."""

    value: float
    relative: bool

    def seconds(self, duration_s: float) -> float:
        return self.value * duration_s if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}s"


@dataclass
class DrillConfig:
    stacks: list[str] = field(default_factory=lambda: ["native"])
    fault: str = "stop-heartbeat"
    fault_target: str = "master"
    fault_at: Timepoint = field(default_factory=lambda: Timepoint(0.25, True))
    recover_at: Timepoint = field(default_factory=lambda: Timepoint(0.6, True))
    settle_s: float = 5.0
    recovery_timeout_s: float = 60.0
    snapshot_vms: bool = False
    write_ratio: float = 0.0  # writes per load connection (no-data-loss check); 0 = none


@dataclass
class PhaseThreshold:
    max_downtime_ms: float | None = None
    min_availability_pct: float | None = None


@dataclass
class Thresholds:
    failover: PhaseThreshold = field(default_factory=PhaseThreshold)
    failback: PhaseThreshold = field(default_factory=PhaseThreshold)


@dataclass
class UiConfig:
    theme: str = "hatui-dark"
    refresh_s: float = 1.0
    keys: dict[str, str] = field(default_factory=dict)


@dataclass
class Lab:
    path: Path
    name: str
    local: bool
    state_dir: Path
    address_range: ipaddress.IPv4Network | None
    networks: dict[str, Network]
    ssh: SshSettings
    hosts: dict[str, Host]
    pairs: dict[str, Pair]
    drbd: dict[str, DrbdConfig]
    proxmox: ProxmoxConfig | None
    load: LoadConfig
    drill: DrillConfig
    thresholds: Thresholds
    ui: UiConfig

    def pairs_of(self, stack: str) -> list[Pair]:
        return [p for p in self.pairs.values() if p.stack == stack]

    def replication_nic(self, pair: Pair, host: str) -> str | None:
        """`host`'s NIC of the pair's replication link (see `replication_nic`)."""
        return replication_nic(pair, self.hosts[host], self.hosts[pair.peer(host)])

    @property
    def servers(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.role == "server"]

    @property
    def vms(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.vm is not None]


def replication_nic(pair: Pair, me: Host, peer: Host) -> str | None:
    """`me`'s NIC on a network it shares with `peer` other than the VIP's: the link Heartbeat and
    DRBD replicate over. None when the two share no such network."""
    vip_net = me.nics[pair.vip_interface].network if pair.vip_interface in me.nics else None
    return next((nic.name for nic in me.nics.values()
                 if nic.network != vip_net and peer.nic_on(nic.network) is not None), None)


# --------------------------------------------------------------------------------------------
# Errors


class ConfigError(HatuiError):
    """One or more problems in a lab file; str() gives one line per problem."""

    def __init__(self, file: Path | str, problems: list[Problem]):
        self.file = str(file)
        self.problems = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
        super().__init__(self.format())

    def lines(self) -> list[str]:
        out = []
        for p in self.problems:
            where = f"{self.file}:{p.line}" if p.line else self.file
            out.append(f"{where}: {p.path}: {p.message}" if p.path else f"{where}: {p.message}")
        return out

    def format(self) -> str:
        return "\n".join(self.lines())


# --------------------------------------------------------------------------------------------
# Loading


def load_lab(path: str | Path) -> Lab:
    """Load and check a lab file; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, [Problem("", "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError(path, [Problem("", "is a directory, expected a lab.toml file")]) from None
    except OSError as exc:
        raise ConfigError(path, [Problem("", f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [Problem("", f"not UTF-8 text (bad byte at offset {exc.start}); expected a TOML file")]) from None
    return parse_lab(text, path)


def parse_lab(text: str, path: str | Path = "lab.toml") -> Lab:
    path = Path(path)
    if "\x00" in text:
        raise ConfigError(path, [Problem("", "contains NUL bytes: expected a TOML text file")])
    if not text.strip():
        raise ConfigError(path, [Problem("", "the file is empty: expected a lab description (see lab.toml in hatui's repository)")])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"line (\d+)", message)
        line = int(match.group(1)) if match else None
        raise ConfigError(path, [Problem("", f"TOML syntax error: {message}", line)]) from None
    reader = Reader(text)
    lab = _build(reader, data, path)
    if reader.problems:
        raise ConfigError(path, reader.problems)
    assert lab is not None
    return lab


_TOP_KEYS = ["lab", "networks", "ssh", "hosts", "drbd", "pairs", "proxmox", "load", "drill", "thresholds", "ui"]


def _build(r: Reader, data: dict, path: Path) -> Lab | None:
    r.unknown_keys(data, "", _TOP_KEYS)

    lab_t = r.table(data, "lab", ["name", "local", "state_dir", "address_range"], required=True) or {}
    name = r.value(lab_t, "lab", "name", "str", "lab")
    local = r.value(lab_t, "lab", "local", "bool", False)
    state_dir = Path(r.value(lab_t, "lab", "state_dir", "str", "/run/hatui/lab") or "/run/hatui/lab")
    if not state_dir.is_absolute():
        r.problem("lab.state_dir", f"expected an absolute path, found \"{state_dir}\"")
    address_range = None
    if "address_range" in lab_t:
        address_range = _network(r, "lab.address_range", lab_t["address_range"])
    elif local:
        r.problem("lab.address_range", "missing: a local lab needs the whole range its addresses live in (e.g. \"10.251.0.0/16\")")
    if local and address_range is not None and not address_range.is_private:
        r.problem("lab.address_range", f"a local lab must use a private range, found {address_range}")

    def expand(p: str) -> Path:
        return Path(os.path.expanduser(p.replace("{state_dir}", str(state_dir))))

    networks = _networks(r, data, address_range, local)
    ssh = _ssh(r, r.table(data, "ssh", _SSH_KEYS) or {}, "ssh", SshSettings(), expand)
    hosts = _hosts(r, data, networks, ssh, expand, address_range, local)
    drbd = _drbd(r, data)
    pairs = _pairs(r, data, hosts, networks, drbd)
    proxmox = _proxmox(r, data, expand, hosts)
    load = _load(r, data)
    drill = _drill(r, data, pairs)
    thresholds = _thresholds(r, data)
    ui = _ui(r, data)
    if r.problems:
        return None
    return Lab(path=path, name=name, local=local, state_dir=state_dir, address_range=address_range,
               networks=networks, ssh=ssh, hosts=hosts, pairs=pairs, drbd=drbd, proxmox=proxmox,
               load=load, drill=drill, thresholds=thresholds, ui=ui)


def _address(r: Reader, path: str, value: Any) -> ipaddress.IPv4Address | None:
    if not isinstance(value, str):
        r.problem(path, f"expected an IPv4 address string like \"10.0.0.11\", found {describe(value)}")
        return None
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        r.problem(path, f"expected an IPv4 address like \"10.0.0.11\", found \"{value}\"")
        return None


def _network(r: Reader, path: str, value: Any) -> ipaddress.IPv4Network | None:
    if not isinstance(value, str):
        r.problem(path, f"expected a network string like \"10.0.0.0/24\", found {describe(value)}")
        return None
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        r.problem(path, f"expected a network like \"10.0.0.0/24\" (host bits zero), found \"{value}\" ({exc})")
        return None


def _named_tables(r: Reader, table: dict, section: str) -> Iterator[tuple[str, str, dict]]:
    """(name, key path, table) of each `[section.NAME]`; a bad name is a problem, a non-table one is
    a problem and skipped."""
    for name, t in table.items():
        path = f"{section}.{name}"
        check_name(r, path, name)
        if not isinstance(t, dict):
            r.problem(path, f"expected a table, found {describe(t)}")
            continue
        yield name, path, t


def _networks(r: Reader, data: dict, address_range, local: bool) -> dict[str, Network]:
    table = r.table(data, "networks", None, required=True) or {}
    out: dict[str, Network] = {}
    for name, path, sub in _named_tables(r, table, "networks"):
        r.unknown_keys(sub, path, ["cidr", "host_address"])
        if "cidr" not in sub:
            r.problem(f"{path}.cidr", "missing: expected a network like \"10.0.0.0/24\"")
            continue
        cidr = _network(r, f"{path}.cidr", sub["cidr"])
        if cidr is None:
            continue
        if address_range is not None and not cidr.subnet_of(address_range):
            r.problem(f"{path}.cidr", f"{cidr} is outside lab.address_range {address_range}")
        if local and not cidr.is_private:
            r.problem(f"{path}.cidr", f"a local lab must use private addresses, found {cidr}")
        host_address = None
        if "host_address" in sub:
            host_address = _address(r, f"{path}.host_address", sub["host_address"])
            if host_address is not None and not _usable(host_address, cidr):
                r.problem(f"{path}.host_address", f"{host_address} is not a usable address of {cidr}")
        for other in out.values():
            if cidr.overlaps(other.cidr):
                r.problem(f"{path}.cidr", f"{cidr} overlaps networks.{other.name} ({other.cidr})")
        out[name] = Network(name, cidr, host_address)
    if not out and "networks" in data:
        r.problem("networks", "no networks defined: expected at least one [networks.NAME] table")
    return out


def _usable(address: ipaddress.IPv4Address, cidr: ipaddress.IPv4Network) -> bool:
    if address not in cidr:
        return False
    return cidr.prefixlen >= 31 or address not in (cidr.network_address, cidr.broadcast_address)


_SSH_KEYS = ["user", "port", "key_file", "known_hosts", "connect_timeout_s", "command_timeout_s"]


def _ssh(r: Reader, t: dict, path: str, base: SshSettings, expand) -> SshSettings:
    key_file = r.value(t, path, "key_file", "str", None)
    known_hosts = r.value(t, path, "known_hosts", "str", None)
    return SshSettings(
        user=r.value(t, path, "user", "str", base.user),
        port=r.value(t, path, "port", "int", base.port, port_number),
        key_file=expand(key_file) if key_file else base.key_file,
        known_hosts=expand(known_hosts) if known_hosts else base.known_hosts,
        connect_timeout_s=r.value(t, path, "connect_timeout_s", "number", base.connect_timeout_s, positive),
        command_timeout_s=r.value(t, path, "command_timeout_s", "number", base.command_timeout_s, positive),
    )


def _hosts(r: Reader, data, networks, ssh, expand, address_range, local) -> dict[str, Host]:
    table = r.table(data, "hosts", None, required=True) or {}
    hosts: dict[str, Host] = {}
    seen_addresses: dict[ipaddress.IPv4Address, str] = {}
    seen_vmids: dict[int, str] = {}
    for name, path, t in _named_tables(r, table, "hosts"):
        r.unknown_keys(t, path, ["stack", "role", "nics", "ssh", "ssh_address", "vm"])
        role = r.value(t, path, "role", "str", "server", one_of(("server", "client")))
        stack = r.value(t, path, "stack", "str", "native" if role == "client" else REQUIRED, one_of(STACKS))
        nics: dict[str, Nic] = {}
        nic_table = t.get("nics")
        if not isinstance(nic_table, dict) or not nic_table:
            r.problem(f"{path}.nics", "missing: expected NICs like nics.eth0 = { network = \"public\", address = \"10.0.0.11\" }"
                      if nic_table is None else f"expected a table of NICs, found {describe(nic_table)}")
            nic_table = {}
        for nic_name, nt in nic_table.items():
            npath = f"{path}.nics.{nic_name}"
            if interface_name(nic_name):  # NIC names go into shell commands on the hosts
                r.problem(npath, interface_name(nic_name))
            if not isinstance(nt, dict):
                r.problem(npath, f"expected {{ network = \"...\", address = \"...\" }}, found {describe(nt)}")
                continue
            r.unknown_keys(nt, npath, ["network", "address"])
            net_name = r.value(nt, npath, "network", "str")
            if net_name is not None and net_name not in networks:
                near = difflib.get_close_matches(net_name, list(networks), n=1)
                hint = f"; did you mean '{near[0]}'?" if near else f"; defined: {', '.join(networks) or 'none'}"
                r.problem(f"{npath}.network", f"no network named \"{net_name}\"{hint}")
                net_name = None
            if "address" not in nt:
                r.problem(f"{npath}.address", "missing: expected an IPv4 address")
                continue
            addr = _address(r, f"{npath}.address", nt["address"])
            if addr is None:
                continue
            if net_name is not None and not _usable(addr, networks[net_name].cidr):
                r.problem(f"{npath}.address", f"{addr} is not a usable address of networks.{net_name} ({networks[net_name].cidr})")
            if addr in seen_addresses:
                r.problem(f"{npath}.address", f"{addr} is already used by {seen_addresses[addr]}")
            for net in networks.values():
                if net.host_address == addr:
                    r.problem(f"{npath}.address", f"{addr} is networks.{net.name}.host_address")
            seen_addresses[addr] = npath
            if net_name is not None:
                nics[nic_name] = Nic(nic_name, net_name, addr)
        host_ssh = _ssh(r, r.table(t, "ssh", _SSH_KEYS, label=f"{path}.ssh") or {}, f"{path}.ssh", ssh, expand)
        address = None
        if "ssh_address" in t:
            address = _address(r, f"{path}.ssh_address", t["ssh_address"])
        elif nics:
            address = next(iter(nics.values())).address
        vm = None
        if "vm" in t:
            vm = _vm(r, t["vm"], f"{path}.vm", name)
            if vm is not None:
                if vm.vmid in seen_vmids:
                    r.problem(f"{path}.vm.vmid", f"vmid {vm.vmid} is already used by {seen_vmids[vm.vmid]}")
                seen_vmids[vm.vmid] = path
        if stack == "virtual" and role == "server" and "vm" not in t:
            r.problem(f"{path}.vm", "missing: a virtual host needs vm = { vmid = ..., node = \"pve1\", ... }")
        if stack == "native" and "vm" in t:
            r.problem(f"{path}.vm", "a native host has no vm table (set stack = \"virtual\")")
        if address is not None and stack is not None and role is not None:
            hosts[name] = Host(name, stack, role, nics, host_ssh, address, vm)
    if not table and "hosts" in data:
        r.problem("hosts", "no hosts defined")
    return hosts


def _vm(r: Reader, t: Any, path: str, name: str) -> VmSpec | None:
    if not isinstance(t, dict):
        r.problem(path, f"expected a table, found {describe(t)}")
        return None
    r.unknown_keys(t, path, ["vmid", "node", "cores", "memory_mb", "disks_gb"])
    vmid = r.value(t, path, "vmid", "int", check=lambda v: None if 100 <= v <= 999999999 else f"expected a VM id 100..999999999, found {v}")
    node = r.value(t, path, "node", "str")
    cores = r.value(t, path, "cores", "int", 1, positive)
    memory = r.value(t, path, "memory_mb", "int", 512, lambda v: None if v >= 16 else f"expected at least 16 MB, found {v}")
    disks = r.value(t, path, "disks_gb", "list[int]", [50, 10],
                    lambda v: None if v and all(d > 0 for d in v) else "expected at least one positive disk size")
    if vmid is None or node is None:
        return None
    return VmSpec(name, vmid, node, cores, memory, disks)


def _drbd(r: Reader, data: dict) -> dict[str, DrbdConfig]:
    table = r.table(data, "drbd", None) or {}
    out: dict[str, DrbdConfig] = {}
    minors: dict[int, str] = {}
    for name, path, t in _named_tables(r, table, "drbd"):
        r.unknown_keys(t, path, ["minor", "device", "port", "size_mb", "protocol", "resync_rate_kib", "allow_two_primaries"])
        minor = r.value(t, path, "minor", "int", 0, lambda v: None if v >= 0 else f"expected a minor >= 0, found {v}")
        if minor is not None and minor in minors:
            r.problem(f"{path}.minor", f"minor {minor} is already used by {minors[minor]}")
        minors[minor] = path
        out[name] = DrbdConfig(
            name=name, minor=minor,
            device=r.value(t, path, "device", "str", f"/dev/drbd{minor}"),
            port=r.value(t, path, "port", "int", 7789, port_number),
            size_mb=r.value(t, path, "size_mb", "int", 64, positive),
            protocol=r.value(t, path, "protocol", "str", "C", one_of(("A", "B", "C"))),
            resync_rate_kib=r.value(t, path, "resync_rate_kib", "int", 8192, positive),
            allow_two_primaries=r.value(t, path, "allow_two_primaries", "bool", False),
        )
    return out


_PAIR_KEYS = ["master", "slave", "vip", "vip_interface", "resources", "auto_failback", "drbd", "heartbeat", "commands"]


def _pairs(r: Reader, data, hosts, networks, drbd) -> dict[str, Pair]:
    table = r.table(data, "pairs", None) or {}
    out: dict[str, Pair] = {}
    vips: dict[ipaddress.IPv4Address, str] = {}
    for name, path, t in _named_tables(r, table, "pairs"):
        r.unknown_keys(t, path, _PAIR_KEYS)
        members = _pair_members(r, t, path, hosts)
        stacks = {h.stack for h in members.values()}
        if len(stacks) > 1:
            r.problem(path, "master and slave must be on the same stack (both native or both virtual)")
        stack = stacks.pop() if len(stacks) == 1 else "native"
        vip_interface = r.value(t, path, "vip_interface", "str", "eth0", interface_name)
        vip = _pair_vip(r, t, path, hosts, networks, members, vip_interface, vips)
        resources = r.value(t, path, "resources", "list[str]", [],
                            lambda v: None if all(x.strip() and " " not in x for x in v) else "resources must be non-empty and contain no spaces")
        pair_drbd = r.value(t, path, "drbd", "list[str]", [])
        for res in pair_drbd or []:
            if res not in drbd:
                r.problem(f"{path}.drbd", f"no DRBD resource named \"{res}\" (define [drbd.{res}])")
        hb = _heartbeat_settings(r, t, path)
        commands = _pair_commands(r, t, path)
        if len(members) == 2 and vip is not None:
            pair = Pair(name=name, stack=stack, master=members["master"].name, slave=members["slave"].name,
                        vip=vip, vip_interface=vip_interface, resources=resources or [],
                        auto_failback=r.value(t, path, "auto_failback", "bool", True),
                        heartbeat=hb, drbd=pair_drbd or [], commands=commands)
            _check_replication_link(r, path, pair, members)
            out[name] = pair
    return out


def _pair_members(r: Reader, t: dict, path: str, hosts) -> dict[str, Host]:
    """{"master": Host, "slave": Host}, with a problem for each role that names no server."""
    members = {}
    for role in ("master", "slave"):
        host = r.value(t, path, role, "str")
        if host is None:
            continue
        if host not in hosts:
            near = difflib.get_close_matches(host, list(hosts), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; hosts: {', '.join(hosts) or 'none'}"
            r.problem(f"{path}.{role}", f"no host named \"{host}\"{hint}")
        elif hosts[host].role != "server":
            r.problem(f"{path}.{role}", f"host \"{host}\" is a {hosts[host].role}, not a server")
        else:
            members[role] = hosts[host]
    if len(members) == 2 and members["master"].name == members["slave"].name:
        r.problem(f"{path}.slave", "master and slave must be different hosts")
    return members


def _pair_vip(r: Reader, t: dict, path: str, hosts, networks, members, vip_interface: str,
              vips: dict) -> ipaddress.IPv4Interface | None:
    """The pair's VIP, checked against every address of the lab and the members' VIP networks."""
    raw_vip = r.value(t, path, "vip", "str")
    if raw_vip is None:
        return None
    try:
        vip = ipaddress.IPv4Interface(raw_vip)
        if "/" not in raw_vip:
            raise ValueError("no prefix")
    except ValueError:
        r.problem(f"{path}.vip", f"expected an address with prefix like \"10.0.0.100/24\", found \"{raw_vip}\"")
        return None
    if vip.ip in vips:
        r.problem(f"{path}.vip", f"{vip.ip} is already the VIP of {vips[vip.ip]}")
    vips[vip.ip] = path
    for hname, host in hosts.items():
        for nic in host.nics.values():
            if nic.address == vip.ip:
                r.problem(f"{path}.vip", f"{vip.ip} is the address of hosts.{hname}.nics.{nic.name}")
    for role, host in members.items():
        nic = host.nics.get(vip_interface)
        if nic is None:
            r.problem(f"{path}.vip_interface", f"{role} \"{host.name}\" has no NIC {vip_interface}")
            continue
        net = networks[nic.network]
        if not _usable(vip.ip, net.cidr):
            r.problem(f"{path}.vip", f"{vip.ip} is not inside {host.name}'s {vip_interface} network "
                      f"networks.{net.name} ({net.cidr})")
        elif vip.network.prefixlen != net.cidr.prefixlen:
            r.problem(f"{path}.vip", f"prefix /{vip.network.prefixlen} does not match networks.{net.name} ({net.cidr})")
        if net.host_address == vip.ip:
            r.problem(f"{path}.vip", f"{vip.ip} is networks.{net.name}.host_address")
    return vip


def _heartbeat_settings(r: Reader, t: dict, path: str) -> HeartbeatSettings:
    hb_t = t.get("heartbeat", {})
    hb = HeartbeatSettings()
    if not isinstance(hb_t, dict):
        r.problem(f"{path}.heartbeat", f"expected a table, found {describe(hb_t)}")
        return hb
    hpath = f"{path}.heartbeat"
    r.unknown_keys(hb_t, hpath, ["keepalive_ms", "warntime_ms", "deadtime_ms", "initdead_ms", "udpport", "media"])
    hb = HeartbeatSettings(
        keepalive_ms=r.value(hb_t, hpath, "keepalive_ms", "int", hb.keepalive_ms, positive),
        warntime_ms=r.value(hb_t, hpath, "warntime_ms", "int", hb.warntime_ms, positive),
        deadtime_ms=r.value(hb_t, hpath, "deadtime_ms", "int", hb.deadtime_ms, positive),
        initdead_ms=r.value(hb_t, hpath, "initdead_ms", "int", hb.initdead_ms, positive),
        udpport=r.value(hb_t, hpath, "udpport", "int", hb.udpport, port_number),
        media=r.value(hb_t, hpath, "media", "str", hb.media, one_of(HEARTBEAT_MEDIA)),
    )
    if hb.deadtime_ms <= hb.keepalive_ms:
        r.problem(f"{hpath}.deadtime_ms", f"deadtime ({hb.deadtime_ms} ms) must be greater than keepalive ({hb.keepalive_ms} ms)")
    if not hb.keepalive_ms < hb.warntime_ms < hb.deadtime_ms:
        r.problem(f"{hpath}.warntime_ms", f"warntime ({hb.warntime_ms} ms) must lie between keepalive "
                  f"({hb.keepalive_ms} ms) and deadtime ({hb.deadtime_ms} ms)")
    if hb.initdead_ms < hb.deadtime_ms:
        r.problem(f"{hpath}.initdead_ms", f"initdead ({hb.initdead_ms} ms) must be at least deadtime ({hb.deadtime_ms} ms)")
    return hb


def _pair_commands(r: Reader, t: dict, path: str) -> dict[str, str]:
    """The default fault commands, overridden by the pair's `commands` table."""
    commands = dict(DEFAULT_COMMANDS)
    if "commands" in t:
        cmds = r.value(t, path, "commands", "table[str]", {})
        for key in cmds or {}:
            if key not in DEFAULT_COMMANDS:
                near = difflib.get_close_matches(key, list(DEFAULT_COMMANDS), n=1)
                hint = f"; did you mean '{near[0]}'?" if near else f"; known: {', '.join(DEFAULT_COMMANDS)}"
                r.problem(f"{path}.commands.{key}", f"unknown command{hint}")
        commands.update(cmds or {})
    return commands


def _check_replication_link(r: Reader, path: str, pair: Pair, members: dict[str, Host]) -> None:
    """Heartbeat and DRBD need a link between the nodes besides the VIP's network."""
    master, slave = members["master"], members["slave"]
    if pair.vip_interface in master.nics and replication_nic(pair, master, slave) is None:
        vip_net = master.nics[pair.vip_interface].network
        r.problem(path, f"{master.name} and {slave.name} share no network besides the VIP's ({vip_net}); "
                  "Heartbeat needs a replication link")


def _proxmox(r: Reader, data, expand, hosts) -> ProxmoxConfig | None:
    allowed = ["endpoint", "nodes", "token_id", "token_secret_env", "token_secret_file", "verify_tls", "ca_file",
               "fingerprint", "timeout_s"]
    t = r.table(data, "proxmox", allowed)
    vm_hosts = [h for h in hosts.values() if h.vm is not None]
    if t is None:
        if vm_hosts:
            r.problem(f"hosts.{vm_hosts[0].name}.vm", "VMs are described but there is no [proxmox] section")
        return None
    path = "proxmox"
    endpoint = r.value(t, path, "endpoint", "str", check=lambda v: None if re.match(r"^https://[^/\s]+(:\d+)?/?$", v)
                       else f"expected an https:// URL like \"https://pve1.example:8006\", found \"{v}\"")
    nodes = r.value(t, path, "nodes", "list[str]", check=lambda v: None if v else "expected at least one node name")
    token_id = r.value(t, path, "token_id", "str", check=lambda v: None if PROXMOX_TOKEN_ID.fullmatch(v)
                       else f"expected USER@REALM!TOKENID like \"root@pam!hatui\" (a token name is a letter then at "
                            f"least one letter, digit, ., - or _), found \"{v}\"")
    secret_env = r.value(t, path, "token_secret_env", "str", None)
    secret_file = r.value(t, path, "token_secret_file", "str", None)
    if not secret_env and not secret_file:
        r.problem("proxmox.token_secret_env", "missing: name the token secret's environment variable (token_secret_env) "
                  "or file (token_secret_file); the secret itself never goes into lab.toml")
    if secret_env and secret_file:
        r.problem("proxmox.token_secret_file", "give token_secret_env or token_secret_file, not both")
    fingerprint = r.value(t, path, "fingerprint", "str", None,
                          lambda v: None if re.match(r"^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$", v)
                          else "expected a SHA-256 fingerprint: 32 hex bytes separated by colons")
    ca_file = r.value(t, path, "ca_file", "str", None)
    verify = r.value(t, path, "verify_tls", "bool", True)
    for host in vm_hosts:
        if nodes and host.vm and host.vm.node not in nodes:
            r.problem(f"hosts.{host.name}.vm.node", f"\"{host.vm.node}\" is not one of proxmox.nodes ({', '.join(nodes)})")
    if endpoint is None or nodes is None or token_id is None:
        return None
    return ProxmoxConfig(endpoint=endpoint.rstrip("/"), nodes=nodes, token_id=token_id, token_secret_env=secret_env,
                         token_secret_file=expand(secret_file) if secret_file else None, verify_tls=verify,
                         ca_file=expand(ca_file) if ca_file else None,
                         fingerprint=fingerprint.upper() if fingerprint else None,
                         timeout_s=r.value(t, path, "timeout_s", "number", 10.0, positive))


def _load(r: Reader, data) -> LoadConfig:
    t = r.table(data, "load", ["connections", "rates", "repetitions", "uri", "timeout_s", "probe_interval_ms", "engine"]) or {}
    d = LoadConfig()
    p = "load"
    load = LoadConfig(
        connections=r.value(t, p, "connections", "int", d.connections,
                            lambda v: None if 0 < v <= MAX_CONNECTIONS else f"expected 1..{MAX_CONNECTIONS:,} "
                            f"(the load engine's limit), found {v}"),
        rates=r.value(t, p, "rates", "list[number]", d.rates,
                      lambda v: None if v and all(positive(x) is None for x in v) else "expected a non-empty list of positive rates (conn/s)"),
        repetitions=r.value(t, p, "repetitions", "int", d.repetitions, positive),
        uri=r.value(t, p, "uri", "str", d.uri, request_path_problem),
        timeout_s=r.value(t, p, "timeout_s", "number", d.timeout_s,
                          lambda v: positive(v) or (f"expected at most {MAX_DURATION_S:g} s (the load engine's limit), "
                                                    f"found {v:g}" if v > MAX_DURATION_S else None)),
        probe_interval_ms=r.value(t, p, "probe_interval_ms", "number", d.probe_interval_ms,
                                  lambda v: None if 1 <= v <= 10000 else f"expected 1..10000 ms, found {v:g}"),
        engine=r.value(t, p, "engine", "str", d.engine, one_of(ENGINES)),
    )
    for rate in load.rates:  # else the drill stops at this run, after preflight
        for problem in limit_problems(load.connections, rate, load.timeout_s):
            r.problem("load.rates", f"{load.connections} connections at {rate:g} conn/s: {problem}")
    return load


def parse_timepoint(value: Any) -> Timepoint | str:
    """`"25%"` -> fraction of the run, a number -> seconds; returns an error message on bad input."""
    if isinstance(value, bool):
        return f"expected seconds or a percentage like \"25%\", found {describe(value)}"
    if isinstance(value, (int, float)):
        return Timepoint(float(value), False) if value >= 0 else f"expected seconds >= 0, found {value:g}"
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", value)
        if match and 0 <= float(match.group(1)) <= 100:
            return Timepoint(float(match.group(1)) / 100, True)
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*s?\s*", value)
        if match:
            return Timepoint(float(match.group(1)), False)
    return f"expected seconds (e.g. 10) or a percentage of the run (e.g. \"25%\"), found {describe(value)}"


def _drill(r: Reader, data, pairs) -> DrillConfig:
    t = r.table(data, "drill", ["stacks", "fault", "fault_target", "fault_at", "recover_at", "settle_s",
                                "recovery_timeout_s", "snapshot_vms", "write_ratio"]) or {}
    d = DrillConfig()
    p = "drill"
    stacks = r.value(t, p, "stacks", "list[str]", d.stacks,
                     lambda v: None if v and all(s in STACKS for s in v) else f"expected a list of {', '.join(STACKS)}")
    for stack in stacks or []:
        if pairs and not any(pair.stack == stack for pair in pairs.values()):
            r.problem("drill.stacks", f"no pair on the {stack} stack (see [pairs])")
    points = {}
    for key, default in (("fault_at", d.fault_at), ("recover_at", d.recover_at)):
        if key in t:
            point = parse_timepoint(t[key])
            if isinstance(point, str):
                r.problem(f"drill.{key}", point)
                point = default
        else:
            point = default
        points[key] = point
    fa, ra = points["fault_at"], points["recover_at"]
    if fa.relative == ra.relative and ra.value <= fa.value:
        r.problem("drill.recover_at", f"recover_at ({ra}) must come after fault_at ({fa})")
    return DrillConfig(
        stacks=stacks or d.stacks,
        fault=r.value(t, p, "fault", "str", d.fault, one_of(FAULTS)),
        fault_target=r.value(t, p, "fault_target", "str", d.fault_target, one_of(("master", "slave"))),
        fault_at=fa, recover_at=ra,
        settle_s=r.value(t, p, "settle_s", "number", d.settle_s, lambda v: None if 0 <= v < math.inf else "expected seconds >= 0"),
        recovery_timeout_s=r.value(t, p, "recovery_timeout_s", "number", d.recovery_timeout_s, positive),
        snapshot_vms=r.value(t, p, "snapshot_vms", "bool", d.snapshot_vms),
        write_ratio=r.value(t, p, "write_ratio", "number", d.write_ratio,
                            lambda v: None if 0 <= v <= 1 else f"expected a ratio 0..1, found {v:g}"),
    )


def _thresholds(r: Reader, data) -> Thresholds:
    t = r.table(data, "thresholds", ["failover", "failback"]) or {}
    phases = {}
    for phase in ("failover", "failback"):
        path = f"thresholds.{phase}"
        sub = r.table(t, phase, ["max_downtime_ms", "min_availability_pct"], label=path) or {}
        phases[phase] = PhaseThreshold(
            max_downtime_ms=r.value(sub, path, "max_downtime_ms", "number", None, positive),
            min_availability_pct=r.value(sub, path, "min_availability_pct", "number", None,
                                         lambda v: None if 0 <= v <= 100 else f"expected a percentage 0..100, found {v:g}"),
        )
    return Thresholds(**phases)


def _ui(r: Reader, data) -> UiConfig:
    t = r.table(data, "ui", ["theme", "refresh_s", "keys"]) or {}
    d = UiConfig()
    return UiConfig(
        theme=r.value(t, "ui", "theme", "str", d.theme),
        refresh_s=r.value(t, "ui", "refresh_s", "number", d.refresh_s,
                          lambda v: None if 0.1 <= v <= 3600 else f"expected 0.1..3600 seconds, found {v:g}"),
        keys=r.value(t, "ui", "keys", "table[str]", {}),
    )

"""Canned cluster readings for the fake core: a fixed lab (the study's shape), `drbdadm status`
and `cl_status` outputs, Heartbeat files and logs, turned into `ClusterState`s by the real
collectors, so severities come from the real judges. No network, no clock.
"""

from __future__ import annotations

from typing import Any

from hatui.collectors.cluster import (ClusterState, NodeState, PairState, check_ha_config, judge_node, judge_pair,
                                      node_from_text)
from hatui.collectors.severity import worst
from hatui.config import Lab, parse_lab
from hatui.httpcheck import HttpCheck
from hatui.lab import heartbeat as lab_files

FAKE_LAB_TOML = """
[lab]
name = "local-lab"
local = true
state_dir = "/nonexistent/hatui-fake"
address_range = "10.251.0.0/16"

[networks.public]
cidr = "10.251.0.0/24"
host_address = "10.251.0.1"
[networks.replication]
cidr = "10.251.1.0/24"
[networks.vm-replication]
cidr = "10.251.2.0/24"

[hosts.master]
stack = "native"
nics.eth0 = { network = "public", address = "10.251.0.11" }
nics.eth1 = { network = "replication", address = "10.251.1.11" }
[hosts.slave]
stack = "native"
nics.eth0 = { network = "public", address = "10.251.0.12" }
nics.eth1 = { network = "replication", address = "10.251.1.12" }
[hosts.client]
role = "client"
nics.eth0 = { network = "public", address = "10.251.0.20" }
[hosts.vm01a]
stack = "virtual"
vm = { vmid = 101, node = "pve1" }
nics.eth0 = { network = "public", address = "10.251.0.31" }
nics.eth1 = { network = "vm-replication", address = "10.251.2.31" }
[hosts.vm01b]
stack = "virtual"
vm = { vmid = 102, node = "pve2" }
nics.eth0 = { network = "public", address = "10.251.0.32" }
nics.eth1 = { network = "vm-replication", address = "10.251.2.32" }
[hosts.vm02a]
stack = "virtual"
vm = { vmid = 103, node = "pve1" }
nics.eth0 = { network = "public", address = "10.251.0.33" }
nics.eth1 = { network = "vm-replication", address = "10.251.2.33" }
[hosts.vm02b]
stack = "virtual"
vm = { vmid = 104, node = "pve2" }
nics.eth0 = { network = "public", address = "10.251.0.34" }
nics.eth1 = { network = "vm-replication", address = "10.251.2.34" }

[drbd.r0]
minor = 0
device = "/dev/drbd0"
port = 7789

[pairs.native]
master = "master"
slave = "slave"
vip = "10.251.0.100/24"
vip_interface = "eth0"
resources = ["drbddisk::r0", "Filesystem::/dev/drbd0::/srv::ext4", "IPaddr2::10.251.0.100/24/eth0", "hatui-web"]
auto_failback = true
drbd = ["r0"]
[pairs.vm01]
master = "vm01a"
slave = "vm01b"
vip = "10.251.0.110/24"
vip_interface = "eth0"
resources = ["drbddisk::r0", "IPaddr2::10.251.0.110/24/eth0", "hatui-web"]
auto_failback = true
drbd = ["r0"]
[pairs.vm02]
master = "vm02a"
slave = "vm02b"
vip = "10.251.0.120/24"
vip_interface = "eth0"
resources = ["drbddisk::r0", "IPaddr2::10.251.0.120/24/eth0", "hatui-web"]
auto_failback = false
drbd = ["r0"]

[proxmox]
endpoint = "https://127.0.0.1:8006"
nodes = ["pve1", "pve2"]
token_id = "root@pam!hatui"
token_secret_env = "HATUI_FAKE_TOKEN"

[load]
connections = 2000
rates = [10, 20, 30, 40, 50]
repetitions = 5

[drill]
stacks = ["native"]
fault = "stop-heartbeat"

[ui]
theme = "hatui-dark"
refresh_s = 1.0
"""

TAKEN_AT = 1_750_000_000.0  # fixed wall clock of every fake reading


def fake_lab(**ui: Any) -> Lab:
    lab = parse_lab(FAKE_LAB_TOML, "/nonexistent/hatui-fake/lab.toml")
    for key, value in ui.items():
        setattr(lab.ui, key, value)
    return lab


def _drbd_status(role: str, disk: str, peer: str, peer_role: str, peer_disk: str,
                 replication: str | None = None, done: float | None = None, connection: str | None = None,
                 resource: str = "r0") -> str:
    lines = [f"{resource} role:{role}", f"  disk:{disk}"]
    if connection:
        lines.append(f"  {peer} connection:{connection}")
        return "\n".join(lines)
    lines.append(f"  {peer} role:{peer_role}")
    peer_line = f"    peer-disk:{peer_disk}"
    if replication:
        peer_line = f"    replication:{replication} peer-disk:{peer_disk}"
        if done is not None:
            peer_line += f" done:{done:.2f}"
    lines.append(peer_line)
    return "\n".join(lines)


def _pair_of(lab: Lab, host: str):
    return next(p for p in lab.pairs.values() if host in (p.master, p.slave))


def heartbeat_files(host: str) -> tuple[str, str]:
    """ha.cf and haresources of `host` as `hatui lab up` writes them for the fake lab."""
    lab = fake_lab()
    pair = _pair_of(lab, host)
    return lab_files.ha_cf(lab, pair, host), lab_files.haresources(pair, drbd_available=True)


def heartbeat_log(host: str, *, took_over: bool = False) -> str:
    """The tail of a node's ha-log, in Heartbeat 3.0.6's formats (see the lab fixture): the pair
    starting, or (`took_over`) this node taking the resources of its dead peer."""
    peer = _pair_of(fake_lab(), host).peer(host)

    def line(time: str, text: str, level: str = "info") -> str:
        return f"Dec 02 {time} {host} heartbeat: [3447]: {level}: {text}"
    if took_over:
        return "\n".join([
            line("16:49:54", f"node {peer}: is dead", "WARN"),
            line("16:49:54", f"Resources being acquired from {peer}."),
            line("16:49:54", f"Link {peer}:eth1 dead."),
            f"2026/12/02_16:49:54  mach_down(default)[3879]:    info: mach_down takeover complete for node {peer}.",
            line("16:49:54", "Local Resource acquisition completed."),
        ])
    return "\n".join([
        line("16:49:40", f"Link {peer}:eth1 up."),
        line("16:49:40", f"Status update for node {peer}: status active"),
        f"2026/12/02_16:49:42  ResourceManager(default)[3486]:    info: Running /etc/ha.d/resource.d/hatui-web  start",
        line("16:49:42", "Initial resource acquisition complete (auto_failback)"),
        line("16:49:42", "remote resource transition completed."),
    ])


def poll_output(hostname: str, *, addresses: list[str], heartbeat: str = "running", rsc: str = "all",
                uptime_s: float = 192.0, load1: float = 0.12, drbd: str | None = None,
                ha_log: str | None = None) -> str:
    """The poll script's output as a node would print it (see hatui.collectors.cluster)."""
    ha_cf, haresources = heartbeat_files(hostname)
    ha_log = heartbeat_log(hostname) if ha_log is None else ha_log
    hb = {"running": "Heartbeat is running on this machine.",
          "stopped": "Heartbeat is stopped on this machine."}[heartbeat]
    addr = "\n".join(f"{i + 2}: eth{i}    inet {a}/24 brd 10.251.0.255 scope global eth{i}"
                     for i, a in enumerate(addresses))
    parts = [
        "@@hostname", hostname,
        "@@hbstatus", hb, f"@@rc {0 if heartbeat == 'running' else 3}",
        "@@rscstatus", rsc if heartbeat == "running" else "", "@@rc 0",
        "@@addr", "1: lo    inet 127.0.0.1/8 scope host lo\n" + addr,
        "@@uptime", f"{uptime_s:.2f} 100.00\n{load1:.2f} 0.10 0.05 1/80 1234",
        "@@drbd", drbd if drbd is not None else "", "@@rc 0" if drbd is not None else "@@rc 127",
        "@@crm_mon", "@@rc 127",
        "@@ha_cf", ha_cf, "@@rc 0",
        "@@haresources", haresources, "@@rc 0",
        "@@ha_log", ha_log, "@@rc 0",
    ]
    return "\n".join(parts) + "\n"


def build_state(lab: Lab, outputs: dict[str, str | None], *, errors: dict[str, str] | None = None,
                service: dict[str, HttpCheck] | None = None, taken_at: float = TAKEN_AT) -> ClusterState:
    """A `ClusterState` from per-host poll outputs (None = unreachable, reason in `errors`)."""
    errors = errors or {}
    nodes: dict[str, NodeState] = {}
    for pair in lab.pairs.values():
        for role, name in (("master", pair.master), ("slave", pair.slave)):
            node = NodeState(host=name, address=str(lab.hosts[name].address), pair=pair.name, role=role)
            text = outputs.get(name)
            if text is None:
                node.reachable, node.error = False, errors.get(name, "timeout after 2 s")
            else:
                node_from_text(node, text, 0.004)
                check_ha_config(node, lab)
            node.checked_at = taken_at
            judge_node(node)
            nodes[name] = node
    pairs: dict[str, PairState] = {}
    for pair in lab.pairs.values():
        vip = str(pair.vip_address)
        state = PairState(name=pair.name, stack=pair.stack, vip=vip, master=pair.master, slave=pair.slave,
                          resources=list(pair.resources), auto_failback=pair.auto_failback,
                          vip_owners=[n for n in (pair.master, pair.slave) if nodes[n].holds(vip)],
                          service=(service or {}).get(pair.name))
        judge_pair(state)
        pairs[pair.name] = state
    verdict = worst(list(pairs.values()), list(nodes.values()))
    return ClusterState(lab=lab.name, taken_at=taken_at, duration_s=0.05, nodes=nodes, pairs=pairs,
                        severity=verdict.severity, reason=verdict.reason)


def healthy_outputs() -> dict[str, str | None]:
    """Every pair in its steady state: the masters hold the VIPs, DRBD Connected/UpToDate."""
    up = _drbd_status
    return {
        "master": poll_output("master", addresses=["10.251.0.11", "10.251.1.11", "10.251.0.100"],
                              drbd=up("Primary", "UpToDate", "slave", "Secondary", "UpToDate")),
        "slave": poll_output("slave", addresses=["10.251.0.12", "10.251.1.12"], rsc="none", load1=0.08,
                             drbd=up("Secondary", "UpToDate", "master", "Primary", "UpToDate")),
        "vm01a": poll_output("vm01a", addresses=["10.251.0.31", "10.251.2.31", "10.251.0.110"], uptime_s=125,
                             load1=0.20, drbd=up("Primary", "UpToDate", "vm01b", "Secondary", "UpToDate")),
        "vm01b": poll_output("vm01b", addresses=["10.251.0.32", "10.251.2.32"], rsc="none", uptime_s=125,
                             load1=0.05, drbd=up("Secondary", "UpToDate", "vm01a", "Primary", "UpToDate")),
        "vm02a": poll_output("vm02a", addresses=["10.251.0.33", "10.251.2.33", "10.251.0.120"], uptime_s=3700,
                             load1=0.31, drbd=up("Primary", "UpToDate", "vm02b", "Secondary", "UpToDate")),
        "vm02b": poll_output("vm02b", addresses=["10.251.0.34", "10.251.2.34"], rsc="none", uptime_s=3700,
                             load1=0.02, drbd=up("Secondary", "UpToDate", "vm02a", "Primary", "UpToDate")),
    }


def demo_outputs() -> dict[str, str | None]:
    """The snapshot scene: native healthy; vm01 resyncing at 47.3 %; vm02 in a DRBD split brain
    with vm02b not answering; plus a bracketed resource name (`[r0]` must not be eaten as markup)."""
    out = healthy_outputs()
    up = _drbd_status
    out["vm01a"] = poll_output("vm01a", addresses=["10.251.0.31", "10.251.2.31", "10.251.0.110"], uptime_s=125,
                               load1=0.20, drbd=up("Primary", "UpToDate", "vm01b", "Secondary", "Inconsistent",
                                                   replication="SyncSource", done=47.3))
    out["vm01b"] = poll_output("vm01b", addresses=["10.251.0.32", "10.251.2.32"], rsc="none", uptime_s=125,
                               load1=0.05, drbd=up("Secondary", "Inconsistent", "vm01a", "Primary", "UpToDate",
                                                   replication="SyncTarget", done=47.3))
    out["vm02a"] = poll_output("vm02a", addresses=["10.251.0.33", "10.251.2.33", "10.251.0.120"], uptime_s=3700,
                               load1=0.31, drbd=up("Primary", "UpToDate", "vm02b", "", "", connection="StandAlone"))
    out["vm02b"] = None
    return out


def demo_state(lab: Lab) -> ClusterState:
    state = build_state(lab, demo_outputs(), errors={"vm02b": "timeout after 2 s"})
    # drbdadm status cannot say "split brain" (only events2 can); the lab's stand-in reports it.
    from hatui.collectors.drbd import _evaluate  # noqa: PLC0415 - fake data only

    vm02a = state.nodes["vm02a"]
    for res in vm02a.drbd:
        res.split_brain = True
        _evaluate(res, False)
    judge_node(vm02a)
    verdict = worst(list(state.pairs.values()), list(state.nodes.values()))
    state.severity, state.reason = verdict.severity, verdict.reason
    # An ETA and out-of-sync figure for the resync (status text has no eta)
    for host in ("vm01a", "vm01b"):
        for res in state.nodes[host].drbd:
            for peer in res.peers:
                peer.eta_s, peer.out_of_sync_kib = 72.0, 31_250
    return state


def failover_state(lab: Lab, pair: str = "native") -> ClusterState:
    """`pair`'s slave holds the VIP, heartbeat stopped on its master."""
    out = healthy_outputs()
    p = lab.pairs[pair]
    master_addr = [str(n.address) for n in lab.hosts[p.master].nics.values()]
    slave_addr = [str(n.address) for n in lab.hosts[p.slave].nics.values()]
    out[p.master] = poll_output(p.master, addresses=master_addr, heartbeat="stopped",
                                drbd=_drbd_status("Secondary", "UpToDate", p.slave, "Primary", "UpToDate"))
    out[p.slave] = poll_output(p.slave, addresses=slave_addr + [str(p.vip_address)],
                               drbd=_drbd_status("Primary", "UpToDate", p.master, "Secondary", "UpToDate"),
                               ha_log=heartbeat_log(p.slave, took_over=True))
    return build_state(lab, out, taken_at=TAKEN_AT + 5)

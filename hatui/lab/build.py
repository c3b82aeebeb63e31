"""`lab up` / `lab down` / `lab status`: the local lab built in network namespaces.

    up(lab)       -> UpReport     build everything, wait until each native pair is stable
    down(lab)     -> DownReport   remove everything recorded (works on a half-built lab)
    status(lab)   -> dict         hosts, who holds each VIP, where the state lives

Only what the state file records is ever removed or killed; see hatui.lab.state for the layout.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from hatui.config import Host, Lab, Network
from hatui.errors import UsageError
from hatui.lab import drbd
from hatui.lab import keys
from hatui.lab import netns as nx
from hatui.lab import vms
from hatui.lab.drbd import node as drbd_node
from hatui.lab.hosts import (client_key_files, client_public_keys, default_bridges, host_spec, hosts_for_up,
                             native_pairs, pair_of, pair_secrets_file, prepare_host_files, start_heartbeat)
from hatui.lab.node import boot_host, host_running, poweroff_hosts, release_ns_dir
from hatui.lab.pairs import heartbeat_running, http_served_by, rscstatus, vip_holders, wait_stable
from hatui.lab.preflight import (check_lab, kernel_problems, missing_packages, missing_requirements, name_clashes,
                                 require_root)
from hatui.lab.state import LabError, LabPaths, empty_state, lab_lock, lab_paths, load_state, save_state, update_state

Out = Callable[[str], None]


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
    if lab.proxmox is not None:
        vms.check(lab)
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
                restarted = vms.ensure(lab)  # a dead Proxmox emulator is started again
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
        clashes = name_clashes(lab, None)
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
    t = time.monotonic()
    _start_state(lab, paths)  # from here on everything we make is recorded
    _add_route(lab, paths)
    step("route", f"unreachable {lab.address_range} in the root namespace", t)
    t = time.monotonic()
    bridges = _add_bridges(lab, paths)
    leg_net, leg_addr = _add_host_leg(lab, paths, bridges)
    step("network", f"{nx.BRIDGE_NETNS}: " + ", ".join(f"{b[1]} ({n})" for n, b in bridges.items())
         + f"; {nx.HOST_LEG} {leg_addr} on {leg_net.name}", t)
    t = time.monotonic()
    step("keys", _make_keys(lab, paths), t)
    t = time.monotonic()
    built, left_out = _boot_hosts(lab, paths)
    step("hosts", " ".join(f"{h.name}({nx.host_netns(h.name)}, {h.address})" for h in built) + ": namespaces, sshd", t)
    for pair_name, lo in left_out.items():
        note = f"DRBD stand-in not available: {' '.join(lo)} left out of the resource group (pair {pair_name})"
        report.notes.append(note)
        out(f"  note       {note}")
    t = time.monotonic()
    members = _start_pairs(lab)
    step("heartbeat", f"started on {', '.join(members) or 'no native pair'}", t)
    for pair in native_pairs(lab):
        t = time.monotonic()
        wait_stable(lab, pair)
        rs = {m: rscstatus(lab, m) for m in (pair.master, pair.slave)}
        step("stable", f"pair {pair.name}: VIP {pair.vip.ip} served by {pair.master} "
             f"(rscstatus {', '.join(f'{m} {r}' for m, r in rs.items())})", t)
    vms.up(lab, step)  # lab.toml [proxmox]: the nodes' bridges and the API emulator
    update_state(paths, lambda s: s.__setitem__("phase", "up"))


def _start_state(lab: Lab, paths: LabPaths) -> None:
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.state_dir, 0o755)
    state = load_state(paths)
    if state is None:
        state = empty_state()
    state.update(phase="building", lab_file=str(Path(lab.path).resolve()),
                 run_netns_mounted=nx.is_mountpoint(nx.NETNS_DIR), run_netns_existed=nx.NETNS_DIR.exists())
    save_state(paths, state)


def _add_route(lab: Lab, paths: LabPaths) -> None:
    """Lab addresses are dropped locally while the lab exists."""
    assert lab.address_range is not None
    update_state(paths, lambda s: s.__setitem__("route", str(lab.address_range)))
    try:
        nx.add_unreachable_route(lab.address_range)
    except LabError:
        update_state(paths, lambda s: s.__setitem__("route", None))  # not ours after all
        raise


def _add_bridges(lab: Lab, paths: LabPaths) -> dict[str, tuple[str, str]]:
    """One bridge per lab network, in hatui-net."""
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
    return bridges


def host_leg_network(lab: Lab) -> Network:
    return next(n for n in lab.networks.values() if n.host_address)


def _add_host_leg(lab: Lab, paths: LabPaths,
                  bridges: Mapping[str, tuple[str, str]]) -> tuple[Network, ipaddress.IPv4Interface]:
    """The root namespace's leg on the network with a host_address."""
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
    return leg_net, leg_addr


def _make_keys(lab: Lab, paths: LabPaths) -> str:
    """Keys and known_hosts (host keys for every host of lab.toml, VMs included). Only files we
    create are recorded (and removed by `down`); a known_hosts we did not write is refused."""
    made: list[str] = []
    for f in client_key_files(lab):
        if not f.exists():
            made += [str(f), str(f) + ".pub"]
    kh_written = sorted({h.ssh.known_hosts for h in lab.hosts.values() if h.ssh.known_hosts}
                        | ({lab.ssh.known_hosts} - {None}))  # type: ignore[type-var]
    for kh in kh_written:
        if not kh.exists():
            made.append(str(kh))
    update_state(paths, lambda s: s.__setitem__("files", sorted(set(s.get("files", [])) | set(made))))
    for f in client_key_files(lab):
        keys.keygen(f, f"hatui@{lab.name}")
    public = {h: keys.host_public_key(paths, h) for h in lab.hosts}
    keys.write_known_hosts(lab, public)
    write_node_helper(paths)
    return (f"client key {', '.join(str(f) for f in client_key_files(lab))}; {len(public)} host keys; "
            f"known_hosts {', '.join(str(k) for k in kh_written)}")


def write_node_helper(paths: LabPaths) -> None:
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


def _boot_hosts(lab: Lab, paths: LabPaths) -> tuple[list[Host], dict[str, list[str]]]:
    """Files, namespaces, PID 1 and sshd of the native hosts; returns them and, per pair, the
    resources left out of its resource group."""
    authorized = client_public_keys(lab)
    left_out: dict[str, list[str]] = {}
    built = hosts_for_up(lab)
    for host in built:
        lo = prepare_host_files(lab, host, authorized)
        pair = pair_of(lab, host.name)
        if lo and pair:
            left_out[pair.name] = lo
    for host in built:
        boot_host(paths, host_spec(lab, host))
    return built, left_out


def _start_pairs(lab: Lab) -> list[str]:
    """The DRBD stand-in, then Heartbeat on every native pair member, all at once (a cold start
    settles in ~10 s). Returns the members."""
    pairs = native_pairs(lab)
    members = [m for p in pairs for m in (p.master, p.slave)]
    for pair in pairs:
        if drbd.available():
            for m in (pair.master, pair.slave):
                drbd_node.start_node(lab, pair, m)
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
    return members


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
    removed, problems = vms.teardown(lab, paths, state)
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
    pair_secrets_file(paths).unlink(missing_ok=True)
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
        "live": live, "hosts": {}, "pairs": {}, "proxmox": vms.status(lab, state),
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

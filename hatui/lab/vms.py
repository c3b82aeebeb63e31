"""Proxmox VE in the local lab: the emulator `hatui lab up` starts, its nodes' bridges, and the
backend that turns a started VM into a real lab host.

`hatui lab up` (when lab.toml has [proxmox]) calls `up(lab, step)`:

- one network namespace per Proxmox node (``hatui-pve1``, ``hatui-pve2``) holding that node's
  bridges ``vmbr0``, ``vmbr1``, ... each uplinked into the lab network the VMs' NICs use
  (`hatui.vms.lab_bridges`: vmbr0 -> public, vmbr1 -> vm-replication);
- the emulator ``python -m hatui.lab.pve`` with state dir ``{state_dir}/pve``, listening on the
  endpoint's loopback address and port, the nodes and token id of lab.toml, and this module's
  `LabVmBackend`. Its PID (with its start time) is recorded in lab-state.json under ``pve``.

`hatui lab down` calls `teardown(...)` first: the emulator is killed by its recorded PID, the VM
hosts are powered off, their cgroups and ``{state_dir}/pve`` removed (the rest of `down` removes
the namespaces, the node bridges with them).

`LabVmBackend` (``--backend hatui.lab.vms:LabVmBackend --backend-opt lab=/path/lab.toml``):

    start(vm)            boot the lab host whose vm.vmid matches (sshd, DRBD stand-in, Heartbeat,
                         nginx via Heartbeat) on its Proxmox node's bridges, with the VM's MACs,
                         inside a cgroup with the VM's cores as CPU quota and its memory as memory
                         limit (cgroup v1)
    stop(vm)             power the host off (crash semantics) and remove its network
    shutdown(vm, t)      stop Heartbeat first (services leave gracefully), then power off
    snapshot(vm, name)   save the VM's config and the host's state: ha.d, varlib (Heartbeat) and
                         drbd (the stand-in's volume, metadata and bitmap) of its node directory
    rollback(vm, name)   restore them (a running VM is stopped first; the emulator does that too)
    delete_snapshot      remove the saved state
    status(vm)           "running" only while the host's PID 1 lives and its namespace exists

A VM with no lab host (no host in lab.toml with that vm.vmid) cannot start: the task fails and
says so. Snapshots of such a VM hold only its config.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import hatui
from hatui.config import Host, Lab, load_lab
from hatui.errors import UsageError
from hatui.lab import hosts
from hatui.lab import netns as nx
from hatui.lab.cgroups import Cgroups, pidns_processes
from hatui.lab.node import host_running, poweroff_hosts
from hatui.lab.pve import READY_FILE
from hatui.lab.state import (LabError, LabPaths, is_ours, kill_recorded, lab_lock, lab_paths, load_state, proc_stat,
                             update_state)
from hatui.vms import lab_bridges, nic_order

log = logging.getLogger(__name__)

PVE_SUBDIR = "pve"                    # {state_dir}/pve: the emulator's state dir
BACKEND_SPEC = "hatui.lab.vms:LabVmBackend"
STATE_KEY = "pve"                     # lab-state.json: {"emulator": {pid, start}, "dir", "url", "nodes", "bridges"}
SNAPSHOT_SUBDIR = "lab-snapshots"     # {state_dir}/pve/lab-snapshots/VMID/NAME/
HOST_STATE_DIRS = ("ha.d", "varlib", "drbd")
READY_TIMEOUT_S = 30.0
SWEEP_INTERVAL_S = 1.0

# Emulators this process started (so a killed one is reaped, not left a zombie).
_children: dict[int, subprocess.Popen] = {}


# --------------------------------------------------------------------------------------------
# Names and checks


def pve_dir(lab: Lab) -> Path:
    return Path(lab.state_dir) / PVE_SUBDIR


def node_netns(node: str) -> str:
    return nx.NETNS_PREFIX + node


def bridge_networks(lab: Lab) -> dict[str, str]:
    """Proxmox bridge -> lab network (vmbr0 -> public, ...)."""
    return {bridge: network for network, bridge in lab_bridges(lab).items()}


def listen_address(lab: Lab) -> tuple[str, int]:
    """The emulator's listen address from proxmox.endpoint; the local lab only listens on loopback."""
    assert lab.proxmox is not None
    parts = urlsplit(lab.proxmox.endpoint)
    host = parts.hostname or ""
    port = parts.port or 8006
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"{lab.path}: proxmox.endpoint {lab.proxmox.endpoint} is not a loopback address; the local "
                         f"lab's Proxmox emulator listens on loopback only (e.g. https://127.0.0.1:8006)")
    return host, port


def check(lab: Lab) -> None:
    """What the Proxmox part of `lab up` needs from lab.toml (raises UsageError)."""
    assert lab.proxmox is not None
    problems = []
    listen_address(lab)
    for node in lab.proxmox.nodes:
        if node in lab.hosts:
            problems.append(f"a host may not be called {node!r}: the Proxmox node's bridges live in namespace "
                            f"{node_netns(node)}")
        if node_netns(node) == nx.BRIDGE_NETNS or len(node) > nx.IFNAMSIZ:
            problems.append(f"proxmox.nodes: {node!r} cannot name a lab namespace")
    if problems:
        raise UsageError(f"{lab.path}: cannot run Proxmox in this lab:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------------------------
# lab up / down


def ensure_bridges(lab: Lab, nodes: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Each node's bridges (idempotent): {node: {bridge: network}}."""
    assert lab.proxmox is not None
    made: dict[str, dict[str, str]] = {}
    for node in nodes or lab.proxmox.nodes:
        for bridge, network in bridge_networks(lab).items():
            hosts.add_bridge(lab, node_netns(node), bridge, uplink=network)
            made.setdefault(node, {})[bridge] = network
    return made


def up(lab: Lab, step: Callable[[str, str, float], None]) -> None:
    """`lab up`'s Proxmox part (caller holds the lab lock): node bridges, then the emulator."""
    if lab.proxmox is None:
        return
    check(lab)
    t = time.monotonic()
    made = ensure_bridges(lab)
    step("pve-net", "; ".join(f"{node_netns(n)}: " + ", ".join(f"{b} -> {net}" for b, net in br.items())
                              for n, br in made.items()), t)
    t = time.monotonic()
    info = start_emulator(lab)
    step("proxmox", f"emulator PID {info['pid']} on {info['url']} (nodes {', '.join(info['nodes'])}; "
                    f"state {pve_dir(lab)}); VMs: `hatui vms create && hatui vms start --all`", t)


def emulator_record(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    rec = (state or {}).get(STATE_KEY) or {}
    return rec.get("emulator")


def emulator_running(lab: Lab) -> bool:
    return is_ours(emulator_record(load_state(lab_paths(lab))))


def ensure(lab: Lab) -> str | None:
    """On an already-up lab: restart the emulator if it died (VMs and their state are kept)."""
    if lab.proxmox is None:
        return None
    paths = lab_paths(lab)
    with lab_lock(paths):
        if is_ours(emulator_record(load_state(paths))):
            return None
        check(lab)
        ensure_bridges(lab)
        info = start_emulator(lab)
    return f"the Proxmox emulator was not running; started it again (PID {info['pid']}, {info['url']})"


def _command(lab: Lab) -> list[str]:
    px = lab.proxmox
    assert px is not None
    host, port = listen_address(lab)
    return [sys.executable, "-m", "hatui.lab.pve", "--state-dir", str(pve_dir(lab)), "--listen", f"{host}:{port}",
            "--nodes", ",".join(px.nodes), "--token-id", px.token_id, "--bridges", ",".join(bridge_networks(lab)),
            "--backend", BACKEND_SPEC, "--backend-opt", f"lab={Path(lab.path).resolve()}"]


def start_emulator(lab: Lab, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
    """Start the emulator, record its PID at once, wait until it listens; returns its emulator.json."""
    paths = lab_paths(lab)
    d = pve_dir(lab)
    d.mkdir(parents=True, exist_ok=True)
    ready = d / READY_FILE
    ready.unlink(missing_ok=True)

    # The same hatui the caller runs, whether installed or not.
    env = {**nx.CLEAN_ENV, "PYTHONPATH": str(Path(hatui.__file__).resolve().parents[1])}
    with open(d / "stdout.log", "ab") as out:
        proc = subprocess.Popen(_command(lab), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd="/", close_fds=True)
    _children[proc.pid] = proc
    stat = proc_stat(proc.pid)
    record = {"pid": proc.pid, "start": stat[2] if stat else None}
    update_state(paths, lambda s: s.__setitem__(STATE_KEY, {"emulator": record, "dir": str(d),
                                                            "nodes": list(lab.proxmox.nodes),
                                                            "bridges": bridge_networks(lab)}))
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            _children.pop(proc.pid, None)
            raise LabError(f"the Proxmox emulator exited with {proc.returncode}: {_tail(d / 'stdout.log')}")
        if ready.exists():
            try:
                info = json.loads(ready.read_text())
            except ValueError:
                info = {}
            if info.get("pid") == proc.pid:
                update_state(paths, lambda s: s[STATE_KEY].update(url=info.get("url"), fingerprint=info.get("fingerprint")))
                return info
        if time.monotonic() > deadline:
            raise LabError(f"the Proxmox emulator did not listen within {timeout_s:g} s: {_tail(d / 'stdout.log')}")
        time.sleep(0.02)


def _tail(path: Path, lines: int = 4) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(no output)"
    except OSError:
        return "(no output)"


def stop_emulator(record: Mapping[str, Any] | None, timeout_s: float = 3.0) -> bool:
    """Kill the recorded emulator (SIGKILL: `down` removes its state anyway). True if it was running."""
    if not kill_recorded(dict(record) if record else None, signal.SIGKILL):
        _reap(record)
        return False
    deadline = time.monotonic() + timeout_s
    while is_ours(dict(record)) and time.monotonic() < deadline:  # type: ignore[arg-type]
        _reap(record)
        time.sleep(0.005)
    _reap(record)
    return True


def _reap(record: Mapping[str, Any] | None) -> None:
    proc = _children.get(int(record["pid"])) if record else None
    if proc is not None and proc.poll() is not None:
        _children.pop(proc.pid, None)


def teardown(lab: Lab, paths: LabPaths, state: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """`lab down`'s Proxmox part, before the rest: emulator, VM hosts, cgroups, {state_dir}/pve."""
    removed: list[str] = []
    problems: list[str] = []
    rec = state.get(STATE_KEY) or {}
    emu = rec.get("emulator")
    if emu and stop_emulator(emu):
        removed.append(f"Proxmox emulator (PID {emu['pid']})")
    vm_hosts = [n for n in state.get("hosts", {}) if n in lab.hosts and lab.hosts[n].vm is not None]
    if vm_hosts:
        try:
            poweroff_hosts(paths, vm_hosts, cut_links=False)
        except LabError as exc:
            problems.append(str(exc))
    problems += Cgroups(lab.name).remove_all()
    d = Path(rec.get("dir") or paths.state_dir / PVE_SUBDIR)
    if d.exists() and (d == paths.state_dir / PVE_SUBDIR):
        shutil.rmtree(d, ignore_errors=True)
        removed.append(f"Proxmox state {d}")
    return removed, problems


def status(lab: Lab, state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """For `lab status`: the emulator's PID, URL and whether it runs."""
    rec = (state or {}).get(STATE_KEY)
    if not rec:
        return None
    emu = rec.get("emulator") or {}
    return {"pid": emu.get("pid"), "running": is_ours(emu), "url": rec.get("url"), "dir": rec.get("dir"),
            "nodes": rec.get("nodes"), "bridges": rec.get("bridges"), "limits": rec.get("limits", {})}


# --------------------------------------------------------------------------------------------
# The backend


class LabVmBackend:
    """Emulator backend: a started VM is a lab host (see the module docstring)."""

    def __init__(self, state_dir: Path | None = None, lab: str | None = None, limits: str = "on",
                 **options: str) -> None:
        if options:
            raise ValueError(f"LabVmBackend: unknown option(s) {', '.join(sorted(options))} (known: lab, limits)")
        if not lab:
            raise ValueError("LabVmBackend needs --backend-opt lab=/path/to/lab.toml")
        self.lab = load_lab(lab)
        if not self.lab.local:
            raise ValueError(f"LabVmBackend: {lab} does not describe a local lab (lab.local = false)")

        self.paths = lab_paths(self.lab)
        self.state_dir = Path(state_dir) if state_dir else self.paths.state_dir / PVE_SUBDIR
        self.snapshots_dir = self.state_dir / SNAPSHOT_SUBDIR
        self.bridges = bridge_networks(self.lab)
        self.cgroups: Cgroups | None = Cgroups(self.lab.name) if limits not in ("off", "0", "no", "false") else None
        if self.cgroups is None:
            log.warning("VM CPU/memory limits switched off (--backend-opt limits=off)")
        elif self.cgroups.unavailable:
            log.warning("VM CPU/memory limits will NOT be applied: %s", self.cgroups.unavailable)
        else:
            log.info("VM CPU/memory limits via %s (%s)", self.cgroups.describe(), self.cgroups.path("cpu"))
        self._limited: set[str] = set()  # hosts with a cgroup (their processes are swept into it)
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="pve-lab-cgroups", daemon=True)
        self._sweeper.start()

    # -- mapping ----------------------------------------------------------------------------

    def host_for(self, vm: Any) -> Host | None:
        return next((h for h in self.lab.vms if h.vm.vmid == int(vm.vmid)), None)

    def _host(self, vm: Any) -> Host:
        host = self.host_for(vm)
        if host is None:
            known = ", ".join(f"{h.name}={h.vm.vmid}" for h in self.lab.vms) or "none"
            raise RuntimeError(f"VM {vm.vmid} ({vm.name}) has no lab host: no host in {self.lab.path} has "
                               f"vm.vmid = {vm.vmid} (VM hosts: {known})")
        return host

    def nic_plan(self, vm: Any, host: Host) -> dict[str, tuple[str, str]]:
        """Lab network -> (netns, bridge) for the host's NICs, from the VM's NICs (net0 -> eth0, ...).
        Raises RuntimeError when the VM's NICs do not fit the lab host."""
        if vm.node not in (self.lab.proxmox.nodes if self.lab.proxmox else []):
            raise RuntimeError(f"VM {vm.vmid} is on node {vm.node}, which is not a node of {self.lab.path}")
        nics = sorted(host.nics.values(), key=lambda n: nic_order(n.name))
        vm_nics = list(vm.nics)
        plan: dict[str, tuple[str, str]] = {}
        for i, nic in enumerate(nics):
            if i >= len(vm_nics):
                raise RuntimeError(f"VM {vm.vmid} ({vm.name}) has {len(vm_nics)} NIC(s) but lab host {host.name} needs "
                                   f"{len(nics)}: no net{i} for {nic.name} on network {nic.network}")
            bridge = vm_nics[i].bridge
            network = self.bridges.get(bridge)
            if network != nic.network:
                want = next((b for b, n in self.bridges.items() if n == nic.network), "?")
                raise RuntimeError(f"VM {vm.vmid} ({vm.name}) {vm_nics[i].key} is on bridge {bridge or '(none)'}, but "
                                   f"lab host {host.name}'s {nic.name} is on network {nic.network} (bridge {want})")
            plan[nic.network] = (node_netns(vm.node), bridge)
        return plan

    def nic_macs(self, vm: Any, host: Host) -> dict[str, str]:
        """Host NIC -> the MAC of the VM's NIC (net0 -> eth0, ...): a VM keeps its MACs across boots, so
        its neighbours' ARP caches stay right (a random MAC per boot left the host unreachable for ~1 min)."""
        nics = sorted(host.nics.values(), key=lambda n: nic_order(n.name))
        return {nic.name: vm_nic.mac.lower() for nic, vm_nic in zip(nics, vm.nics) if vm_nic.mac}

    # -- hooks ------------------------------------------------------------------------------

    def start(self, vm: Any) -> None:
        host = self._host(vm)
        plan = self.nic_plan(vm, host)
        for network, (netns, bridge) in plan.items():
            hosts.add_bridge(self.lab, netns, bridge, uplink=network)
        record = self._record(host.name)
        if host_running(record) and nx.netns_exists(record.get("netns", "")):
            log.info("VM %s: lab host %s already runs; adopted", vm.vmid, host.name)
            self._limit(vm, host)
            return
        if record is not None:  # crashed (or booted elsewhere): a clean power-off first
            hosts.poweroff_lab_host(self.lab, host.name, remove_network=True)
        t0 = time.monotonic()
        try:
            hosts.boot_lab_host(self.lab, host.name, start_hb=False, bridges=plan, macs=self.nic_macs(vm, host))
            self._limit(vm, host)  # before Heartbeat: its daemons start inside the limits
            if hosts.pair_of(self.lab, host.name) is not None:
                hosts.start_heartbeat(self.lab, host.name)
        except BaseException:
            # A VM whose start failed is not running: leave no half-booted host behind.
            try:
                if self._record(host.name) is not None:
                    hosts.poweroff_lab_host(self.lab, host.name, remove_network=True)
                self._unlimit(host.name)
            except Exception as exc:  # pragma: no cover - the original error matters more
                log.warning("VM %s: cleaning up after a failed start: %s", vm.vmid, exc)
            raise
        self._sweep_once()
        log.info("VM %s: lab host %s booted on %s in %.2f s", vm.vmid, host.name, vm.node, time.monotonic() - t0)

    def stop(self, vm: Any) -> None:
        host = self.host_for(vm)
        if host is None:
            return
        if self._record(host.name) is not None:
            hosts.poweroff_lab_host(self.lab, host.name, remove_network=True)
            log.info("VM %s: lab host %s powered off", vm.vmid, host.name)
        self._unlimit(host.name)

    def shutdown(self, vm: Any, timeout: int | None = None) -> None:
        host = self.host_for(vm)
        if host is None:
            return
        if host_running(self._record(host.name)) and hosts.pair_of(self.lab, host.name) is not None:
            try:
                hosts.stop_heartbeat(self.lab, host.name)
            except LabError as exc:
                log.warning("VM %s: graceful heartbeat stop failed (%s); powering off", vm.vmid, exc)
        self.stop(vm)

    def status(self, vm: Any) -> str | None:
        host = self.host_for(vm)
        if host is None:
            return None
        try:
            record = self._record(host.name)
        except LabError:
            return None
        if host_running(record) and nx.netns_exists(record.get("netns", "")):
            return "running"
        return "stopped"

    def snapshot(self, vm: Any, name: str) -> None:
        host = self.host_for(vm)
        d = self._snapdir(vm, name)
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        (d / "vm-config.json").write_text(json.dumps(vm.config, indent=1, sort_keys=True) + "\n")
        saved = []
        if host is not None:
            nd = self.paths.node_dir(host.name)
            for sub in HOST_STATE_DIRS:
                if (nd / sub).exists():
                    _copy_tree(nd / sub, d / "host" / sub)
                    saved.append(sub)
        meta = {"vmid": vm.vmid, "name": name, "host": host.name if host else None, "saved": saved,
                "running": self.status(vm) == "running", "taken_at": time.time()}
        (d / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        log.info("VM %s: snapshot %s saved %s", vm.vmid, name, ", ".join(saved) or "the config only")

    def rollback(self, vm: Any, name: str) -> None:
        d = self._snapdir(vm, name)
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            raise RuntimeError(f"no saved state for snapshot '{name}' of VM {vm.vmid} ({d}/meta.json missing)") from None
        host = self.host_for(vm)
        if host is None:
            return
        if host_running(self._record(host.name)):  # Proxmox stops a running VM before a rollback
            hosts.poweroff_lab_host(self.lab, host.name, remove_network=True)
            self._unlimit(host.name)
        nd = self.paths.node_dir(host.name)
        for sub in HOST_STATE_DIRS:
            shutil.rmtree(nd / sub, ignore_errors=True)
            if sub in meta.get("saved", []):
                _copy_tree(d / "host" / sub, nd / sub)
        log.info("VM %s: rolled back to %s (%s restored)", vm.vmid, name, ", ".join(meta.get("saved", [])) or "nothing")

    def delete_snapshot(self, vm: Any, name: str) -> None:
        shutil.rmtree(self._snapdir(vm, name), ignore_errors=True)

    def destroy(self, vm: Any) -> None:
        self.stop(vm)
        shutil.rmtree(self.snapshots_dir / str(vm.vmid), ignore_errors=True)

    def close(self) -> None:
        self._stop.set()

    # -- helpers ----------------------------------------------------------------------------

    def _record(self, name: str) -> dict[str, Any] | None:
        return ((load_state(self.paths) or {}).get("hosts") or {}).get(name)

    def _snapdir(self, vm: Any, name: str) -> Path:
        return self.snapshots_dir / str(vm.vmid) / name

    def _limit(self, vm: Any, host: Host) -> None:
        """Put the host into its cgroups with the VM's cores and memory, or say clearly why not."""
        if self.cgroups is None:
            return
        cores = int(vm.cores) * int(getattr(vm, "sockets", 1) or 1)
        try:
            applied = self.cgroups.apply(host.name, cores, int(vm.memory_mb))
        except OSError as exc:
            applied = f"NOT applied ({exc.strerror or exc}): {host.name} runs without CPU/memory limits"
            log.warning("VM %s: CPU/memory limits %s", vm.vmid, applied)
        else:
            with self._guard:
                self._limited.add(host.name)
            self._sweep_once()
            log.info("VM %s: limits applied: %s", vm.vmid, applied)
        self._note_limits(host.name, applied)

    def _unlimit(self, name: str) -> None:
        with self._guard:
            self._limited.discard(name)
        if self.cgroups is not None and not self.cgroups.unavailable:
            for problem in self.cgroups.remove(name):
                log.warning(problem)
        self._note_limits(name, None)

    def _note_limits(self, name: str, text: str | None) -> None:
        def change(s: dict[str, Any]) -> None:
            rec = s.setdefault(STATE_KEY, {})
            limits = rec.setdefault("limits", {})
            if text is None:
                limits.pop(name, None)
            else:
                limits[name] = text
        try:
            with lab_lock(self.paths):
                if self.paths.state_file.exists():
                    update_state(self.paths, change)
        except LabError as exc:
            log.warning("cannot record the limits of %s: %s", name, exc)

    def _sweep_once(self) -> None:
        """Move every process of each limited host's PID namespace into its cgroups (processes
        entered from outside, e.g. with nsenter, start in the caller's cgroup)."""
        if self.cgroups is None:
            return
        with self._guard:
            names = set(self._limited)
        if not names:
            return
        try:
            records = (load_state(self.paths) or {}).get("hosts") or {}
        except LabError:
            return
        # The current PID namespace of each host (a host restored by `lab fault` has a new one).
        limited = {n: records[n]["pidns"] for n in names if (records.get(n) or {}).get("pidns")}
        members = pidns_processes(set(limited.values()))
        for name, pidns in limited.items():
            pids = members.get(pidns, [])
            if pids:
                self.cgroups.attach(name, pids)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(SWEEP_INTERVAL_S):
            try:
                self._sweep_once()
            except Exception as exc:  # pragma: no cover - keep sweeping
                log.warning("cgroup sweep failed: %s", exc)


def _copy_tree(src: Path, dst: Path) -> None:
    """cp -a (sparse files stay sparse, sockets/fifos are recreated)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["cp", "-a", "--sparse=always", str(src), str(dst)], capture_output=True, text=True,
                          timeout=120, env=nx.CLEAN_ENV)
    if proc.returncode != 0:
        raise RuntimeError(f"copying {src} failed: {(proc.stderr or proc.stdout).strip()[-200:]}")

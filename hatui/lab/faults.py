"""Fault primitives on the local lab, for drills and `hatui lab fault HOST ACTION`.

Each returns a FaultResult with when it started (wall clock), how long it took and what it did:

    stop_heartbeat(lab, host)        /etc/init.d/heartbeat stop inside the host (graceful failover)
    start_heartbeat(lab, host)       /etc/init.d/heartbeat start (failback with auto_failback on)
    crash(lab, host)                 NICs down + the host's whole PID namespace SIGKILLed
    restore(lab, host)               boot it again: NICs up, new PID 1, sshd, Heartbeat
    cut_link(lab, host, network)     unplug the host's NIC on `network` (bridge port down)
    heal_link(lab, host, network)    plug it back in

`inject(lab, host, action, network=None)` dispatches by the CLI's action names (ACTIONS).
The commands for stop/start come from the pair's `commands` in lab.toml.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from hatui.config import RECOVERY, Lab
from hatui.errors import RefusedError, UsageError
from hatui.lab import hosts
from hatui.lab import netns as nx
from hatui.lab.node import host_running
from hatui.lab.preflight import require_root
from hatui.lab.state import lab_lock, lab_paths, load_state

# The faults the local lab performs itself (hatui.config's vocabulary), each with its recovery.
ACTIONS = tuple(action for fault in ("stop-heartbeat", "crash", "cut-link") for action in (fault, RECOVERY[fault]))
NEEDS_NETWORK = ("cut-link", "heal-link")


@dataclass
class FaultResult:
    host: str
    action: str
    started_at: float   # time.time() when the action began
    seconds: float      # how long the action took
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action} {self.host}: {self.detail} ({self.seconds:.2f} s)"


def _record(lab: Lab, host: str) -> dict[str, Any]:
    if host not in lab.hosts:
        raise UsageError(f"no host named {host!r} in {lab.path} (hosts: {', '.join(lab.hosts)})")
    state = load_state(lab_paths(lab))
    if not state or state.get("phase") != "up":
        raise RefusedError("the lab is not up; run `hatui lab up`")
    record = state.get("hosts", {}).get(host)
    if record is None:
        raise RefusedError(f"host {host} is not running in the lab (VMs are started by the Proxmox emulator)")
    return record


def _running(lab: Lab, host: str) -> dict[str, Any]:
    record = _record(lab, host)
    if not host_running(record):
        raise RefusedError(f"host {host} is powered off (use `restore` first)")
    return record


def _timed(host: str, action: str, fn: Callable[[], str]) -> FaultResult:
    started, t0 = time.time(), time.monotonic()
    detail = fn()
    return FaultResult(host, action, started, time.monotonic() - t0, detail)


def stop_heartbeat(lab: Lab, host: str) -> FaultResult:
    return _heartbeat_action(lab, host, "stop-heartbeat", hosts.stop_heartbeat, "heartbeat stopped")


def start_heartbeat(lab: Lab, host: str) -> FaultResult:
    return _heartbeat_action(lab, host, "start-heartbeat", hosts.start_heartbeat, "heartbeat started")


def _heartbeat_action(lab: Lab, host: str, action: str, change: Callable[[Lab, str], None], detail: str) -> FaultResult:
    """Only a running host of a pair has a Heartbeat to stop or start."""
    _running(lab, host)
    if hosts.pair_of(lab, host) is None:
        raise UsageError(f"{host} runs no Heartbeat (it is in no pair)")

    def act() -> str:
        change(lab, host)
        return detail
    return _timed(host, action, act)


def crash(lab: Lab, host: str) -> FaultResult:
    _running(lab, host)
    def act() -> str:
        hosts.poweroff_lab_host(lab, host)
        return "powered off (NICs down, its whole PID namespace killed)"
    return _timed(host, "crash", act)


def restore(lab: Lab, host: str, *, start_hb: bool = True) -> FaultResult:
    record = _record(lab, host)
    if host_running(record):
        raise RefusedError(f"host {host} is running; nothing to restore")

    def act() -> str:
        hosts.boot_lab_host(lab, host, start_hb=start_hb)
        hb = ", heartbeat" if start_hb and hosts.pair_of(lab, host) else ""
        return f"booted (NICs up, new PID namespace, sshd{hb})"
    return _timed(host, "restore", act)


def _port(lab: Lab, host: str, network: str | None) -> tuple[str, str]:
    record = _record(lab, host)
    nics = record.get("spec", {}).get("nics", [])
    if network is None:
        raise UsageError("cut-link/heal-link need a network name (e.g. replication)")
    for nic in nics:
        if nic.get("network") == network or nic["name"] == network:
            return nic["bridge_netns"], nic["port"]
    names = ", ".join(f"{n.get('network')} ({n['name']})" for n in nics)
    raise UsageError(f"{host} has no NIC on network {network!r} (it has: {names})")


def _set_link(lab: Lab, host: str, network: str | None, updown: str, action: str) -> FaultResult:
    bns, port = _port(lab, host, network)

    def act() -> str:
        with lab_lock(lab_paths(lab)):
            nx.ip("link", "set", port, updown, netns=bns, what=f"{action} {host} {network}")
        return f"{'unplugged' if updown == 'down' else 'plugged in'} {host}'s NIC on {network} ({bns}/{port} {updown})"
    return _timed(host, action, act)


def cut_link(lab: Lab, host: str, network: str) -> FaultResult:
    return _set_link(lab, host, network, "down", "cut-link")


def heal_link(lab: Lab, host: str, network: str) -> FaultResult:
    return _set_link(lab, host, network, "up", "heal-link")


def inject(lab: Lab, host: str, action: str, network: str | None = None) -> FaultResult:
    require_root(f"hatui lab fault {action}")
    if action not in ACTIONS:
        raise UsageError(f"unknown fault {action!r}; known: {', '.join(ACTIONS)}")
    if action in NEEDS_NETWORK:
        if network is None:
            raise UsageError(f"{action} needs a network: hatui lab fault {host} {action} NETWORK")
        return cut_link(lab, host, network) if action == "cut-link" else heal_link(lab, host, network)
    if network is not None:
        raise UsageError(f"{action} takes no network argument")
    return {"stop-heartbeat": stop_heartbeat, "start-heartbeat": start_heartbeat,
            "crash": crash, "restore": restore}[action](lab, host)

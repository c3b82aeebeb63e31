"""Faults and recoveries: what exactly runs, on which host, and how.

A `FaultAction` is planned first (so the TUI's confirmation can say exactly what will run where)
and executed second. Heartbeat faults go over SSH with the pair's commands (lab.toml, Heartbeat
defaults); `crash`/`restore` need the local lab (a crashed host has no SSH); `cut-link`/`heal-link`
use the local lab there and `ip link` over SSH on real hosts. What runs on the local lab is the
caller's `LabFaults` (hatui.lab.faults, the same as `hatui lab fault HOST ACTION`), so the drill
knows nothing of how the lab is built.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from hatui.config import ACTIONS, Lab
from hatui.errors import HatuiError, UsageError
from hatui.transport import SshPool

class ReadOnlyError(HatuiError):
    def __init__(self, what: str):
        super().__init__(f"read-only mode: refused to {what}")


@dataclass
class FaultAction:
    action: str
    pair: str
    host: str
    address: str
    via: str  # ssh | lab | proxmox
    command: str  # exactly what runs (shell command, lab primitive or API call)
    description: str  # one line for humans
    expect: str  # what should happen next

    @property
    def confirmation(self) -> str:
        where = {"ssh": "over SSH as root", "lab": "by the local lab (this machine)", "proxmox": "through the Proxmox API"}[self.via]
        return f"{self.description}?\nRuns: {self.command}   {where}\n{self.expect}"


class LabFaults(Protocol):
    """Runs a `via="lab"` fault on the local lab; its result's `detail` says what was done."""

    def inject(self, lab: Lab, host: str, action: str, network: str | None = None) -> object: ...


@dataclass
class FaultOutcome:
    action: FaultAction
    ok: bool
    started_at: float  # time.monotonic()
    duration_s: float
    detail: str


def plan_fault(lab: Lab, pair_name: str, action: str, target: str = "master") -> FaultAction:
    """Plan `action` on the pair's master or slave (`target` may also be a host name)."""
    if pair_name not in lab.pairs:
        raise UsageError(f"no pair named {pair_name!r} (pairs: {', '.join(lab.pairs)})")
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
    pair = lab.pairs[pair_name]
    host = {"master": pair.master, "slave": pair.slave}.get(target, target)
    if host not in (pair.master, pair.slave):
        raise UsageError(f"{target!r} is not a node of pair {pair_name}")
    peer = pair.peer(host)
    address = str(lab.hosts[host].address)
    vip = str(pair.vip_address)
    nic = lab.replication_nic(pair, host)
    network = lab.hosts[host].nics[nic].network
    cmds = pair.commands
    table = {
        "stop-heartbeat": ("ssh", cmds["stop-heartbeat"], f"Stop heartbeat on {host} ({address})",
                           f"{peer} should take over {vip} within about {pair.heartbeat.deadtime_ms / 1000 + 1:g} s."),
        "start-heartbeat": ("ssh", cmds["start-heartbeat"], f"Start heartbeat on {host} ({address})",
                            f"{host} rejoins; with auto_failback {'on it takes ' + vip + ' back' if pair.auto_failback else 'off the VIP stays put'}."),
        "standby": ("ssh", cmds["standby"], f"Put {host} ({address}) in standby (hb_standby)",
                    f"{peer} should take over {vip}."),
        "takeover": ("ssh", cmds["takeover"], f"Take the resources back on {host} ({address}) (hb_takeover)",
                     f"{host} should hold {vip} again."),
        "crash": ("lab", f"hatui lab fault {host} crash", f"Crash {host} ({address}): links down, every process killed",
                  f"{peer} should take over {vip} after deadtime ({pair.heartbeat.deadtime_ms} ms)."),
        "restore": ("lab", f"hatui lab fault {host} restore", f"Boot {host} ({address}) again after a crash",
                    f"{host} boots, starts heartbeat and rejoins."),
        "cut-link": ("lab" if lab.local else "ssh",
                     f"hatui lab fault {host} cut-link {network}" if lab.local else f"ip link set {nic} down",
                     f"Cut {host}'s replication link {nic}", "Both nodes may claim the VIP (split brain)."),
        "heal-link": ("lab" if lab.local else "ssh",
                      f"hatui lab fault {host} heal-link {network}" if lab.local else f"ip link set {nic} up",
                      f"Heal {host}'s replication link {nic}", "Heartbeat reconciles the pair (about 15 s after a split brain)."),
        "stop-vm": ("proxmox", f"POST /nodes/{{node}}/qemu/{{vmid}}/status/stop ({host})", f"Power off VM {host}",
                    f"{peer} should take over {vip} after deadtime."),
        "start-vm": ("proxmox", f"POST /nodes/{{node}}/qemu/{{vmid}}/status/start ({host})", f"Start VM {host}",
                     f"{host} boots and rejoins."),
    }
    via, command, description, expect = table[action]
    if via == "lab" and not lab.local:
        raise UsageError(f"{action} needs the local lab; {lab.path} describes real hosts")
    if via == "proxmox":
        vm = lab.hosts[host].vm
        if vm is None or lab.proxmox is None:
            raise UsageError(f"{action}: {host} is not a Proxmox VM")
        command = command.replace("{node}", vm.node).replace("{vmid}", str(vm.vmid))
    return FaultAction(action, pair_name, host, address, via, command, description, expect)


async def execute_fault(lab: Lab, fault: FaultAction, pool: SshPool, *, lab_faults: LabFaults | None = None,
                        timeout: float = 30.0) -> FaultOutcome:
    """Run a planned fault (`lab_faults` runs those `via="lab"`). Never raises for a failed command:
    the outcome says what happened."""
    started = time.monotonic()
    if fault.via == "ssh":
        try:
            result = await pool.run(fault.host, fault.command, timeout=timeout)
            ok, detail = result.ok, (result.stdout + result.stderr).strip()[-300:] or f"exit {result.exit_status}"
        except HatuiError as exc:
            ok, detail = False, str(exc)
    elif fault.via == "lab":
        network = fault.command.split()[-1] if fault.action in ("cut-link", "heal-link") else None
        if lab_faults is None:
            ok, detail = False, f"{fault.action} needs the local lab, and none was given to run it"
        else:
            try:
                done = await asyncio.to_thread(lab_faults.inject, lab, fault.host, fault.action, network)
                ok, detail = True, getattr(done, "detail", "") or "done"
            except HatuiError as exc:
                ok, detail = False, str(exc)
        pool.reset_backoff(fault.host)
    else:
        from hatui import vms  # noqa: PLC0415 - only when VMs are in play

        try:
            await vms.vm_power(lab, fault.host, "stop" if fault.action == "stop-vm" else "start")
            ok, detail = True, "done"
        except HatuiError as exc:
            ok, detail = False, str(exc)
        pool.reset_backoff(fault.host)
    return FaultOutcome(fault, ok, started, time.monotonic() - started, detail)

"""The lab's VMs through Proxmox: VM specs and connection settings from lab.toml, power for the
drill's stop-vm fault, snapshots around drill runs, and the planned VM actions (what runs where,
for the confirmation) that the TUI and `hatui vms` carry out. The API itself is hatui.proxmox.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hatui.config import VmSpec
from hatui.proxmox import (ProgressFn, ProxmoxConfigError, ProxmoxNotFoundError, ProxmoxParameterError, PveClient,
                           PveSettings, TaskResult, check_snapname, settings_from_config)


def nic_order(name: str) -> tuple[str, int]:
    m = re.fullmatch(r"(\D*)(\d+)", name)
    return (m.group(1), int(m.group(2))) if m else (name, -1)


def lab_bridges(lab: Any) -> dict[str, str]:
    """Lab network -> Proxmox bridge the VMs' NICs on it plug into.

    Networks get ``vmbr0``, ``vmbr1``, ... in the order the VM hosts' NICs (eth0, eth1, ...) first
    use them: in the study's lab ``public`` -> vmbr0 and ``vm-replication`` -> vmbr1. Every Proxmox
    node has the same bridges (as on a real cluster, where a VM may run on either node).
    """
    out: dict[str, str] = {}
    for host in lab.vms:
        for nic in sorted(host.nics.values(), key=lambda n: nic_order(n.name)):
            if nic.network not in out:
                out[nic.network] = f"vmbr{len(out)}"
    return out


def lab_vm_spec(lab: Any, host: Any) -> VmSpec:
    """The `VmSpec` of a lab.toml host with a ``vm`` table (name = host name, one NIC per host NIC)."""
    if host.vm is None:
        raise ProxmoxConfigError(f"{host.name} is not a VM in {lab.path} (no vm table)")
    bridges = lab_bridges(lab)
    nics = [bridges[n.network] for n in sorted(host.nics.values(), key=lambda n: nic_order(n.name))]
    return dataclasses.replace(host.vm, nics=nics)


def lab_vm_specs(lab: Any) -> list[VmSpec]:
    return [lab_vm_spec(lab, h) for h in lab.vms]


def lab_vm_host(lab: Any, target: str | int) -> Any:
    """The lab.toml host of a VM given by host name or VMID."""
    text = str(target)
    if text in lab.hosts and lab.hosts[text].vm is not None:
        return lab.hosts[text]
    if text.isdigit():
        for h in lab.vms:
            if h.vm.vmid == int(text):
                return h
    if text in lab.hosts:
        raise ProxmoxNotFoundError(f"{text} is not a Proxmox VM in {lab.path} (it has no vm table)")
    known = ", ".join(f"{h.name} ({h.vm.vmid})" for h in lab.vms) or "none"
    raise ProxmoxNotFoundError(f"no VM {text} in {lab.path} (VMs: {known})")


def lab_settings(lab: Any, *, timeout: float | None = None) -> PveSettings:
    """`PveSettings` from lab.toml's [proxmox]; a clear error when it is missing or the lab is down."""
    px = getattr(lab, "proxmox", None)
    if px is None:
        raise ProxmoxConfigError(f"Proxmox is not configured: {lab.path} has no [proxmox] section")
    try:
        settings = settings_from_config(px)
    except ProxmoxConfigError as exc:
        secret = getattr(px, "token_secret_file", None)
        if getattr(lab, "local", False) and secret is not None and Path(lab.state_dir) in Path(secret).parents:
            raise ProxmoxConfigError(f"{exc} (is the lab up? `hatui lab up` starts the Proxmox emulator)") from None
        raise
    if timeout is not None:
        settings = PveSettings(settings.endpoint, settings.token_id, settings.token_secret, settings.verify_tls,
                               settings.ca_file, settings.fingerprint, timeout)
    return settings


def lab_client(lab: Any, **kw: Any) -> PveClient:
    return PveClient(lab_settings(lab), **kw)


async def vm_power(lab: Any, host_name: str, action: str, *, timeout: float = 120.0) -> TaskResult | None:
    """Start, stop or shut down the VM of lab host `host_name` through the API; wait for the task.

    Idempotent like the drill needs it: starting a running VM returns None (nothing to do); stopping
    a stopped VM is a no-op task in Proxmox itself. Raises `ProxmoxError` (a HatuiError) on failure.
    """
    if action not in ("start", "stop", "shutdown"):
        raise ProxmoxParameterError(f"vm_power: unknown action {action!r} (start, stop or shutdown)")
    host = lab_vm_host(lab, host_name)
    client = lab_client(lab)
    vmid, kw = host.vm.vmid, {"expect_name": host.name, "timeout": timeout}

    def go() -> TaskResult | None:
        if action == "start":
            if client.status(vmid, expect_name=host.name).get("status") == "running":
                return None
            result = client.start(vmid, **kw)
        elif action == "stop":
            result = client.stop(vmid, **kw)
        else:
            result = client.shutdown(vmid, **kw)
        return result if isinstance(result, TaskResult) else None

    return await asyncio.to_thread(go)


VM_ACTIONS = ("start", "stop", "shutdown", "snapshot", "rollback", "delete-snapshot")


@dataclass(frozen=True)
class VmActionPlan:
    """What a VM action will do, before it is sent (for a confirmation)."""

    vm: str
    vmid: int
    node: str  # where lab.toml places it (the API locates the VM wherever it runs)
    action: str  # one of VM_ACTIONS
    snapname: str | None
    method: str
    path: str
    description: str
    expect: str

    @property
    def command(self) -> str:
        return f"{self.method} /api2/json/{self.path}"

    @property
    def confirmation(self) -> str:
        return f"{self.description}?\nRuns: {self.command}   through the Proxmox API\n{self.expect}"


def default_snapname() -> str:
    return time.strftime("hatui-%Y%m%d-%H%M%S")


def plan_vm_action(lab: Any, vm: str | int, action: str, snapname: str | None = None) -> VmActionPlan:
    """Plan `action` on a lab VM (name or VMID); sends nothing. Snapshot names default to a timestamp."""
    if action not in VM_ACTIONS:
        raise ProxmoxParameterError(f"unknown VM action {action!r} (known: {', '.join(VM_ACTIONS)})")
    if getattr(lab, "proxmox", None) is None:
        raise ProxmoxConfigError(f"Proxmox is not configured: {lab.path} has no [proxmox] section")
    host = lab_vm_host(lab, vm)
    vmid, node = host.vm.vmid, host.vm.node
    base = f"nodes/{node}/qemu/{vmid}"
    if action in ("snapshot", "rollback", "delete-snapshot"):
        if snapname is None and action == "snapshot":
            snapname = default_snapname()
        if not snapname:
            raise ProxmoxParameterError(f"{action} needs a snapshot name")
        check_snapname(snapname)
    pair = next((p for p in lab.pairs.values() if host.name in (p.master, p.slave)), None)
    peer = None if pair is None else pair.peer(host.name)
    vip = None if pair is None else str(pair.vip.ip)
    who = f"VM {host.name} ({vmid})"
    if action == "start":
        method, path, expect = "POST", f"{base}/status/start", f"{host.name} boots and rejoins" + (f" pair {pair.name}." if pair else ".")
    elif action in ("stop", "shutdown"):
        method, path = "POST", f"{base}/status/{action}"
        expect = (f"{peer} should take over {vip}." if pair else f"{host.name} goes down.")
        if action == "stop":
            expect = "Hard power-off. " + expect
    elif action == "snapshot":
        method, path, expect = "POST", f"{base}/snapshot", f"Saves {host.name}'s config and disks as '{snapname}'."
    elif action == "rollback":
        method, path = "POST", f"{base}/snapshot/{snapname}/rollback"
        expect = f"A running {host.name} is stopped first; its state returns to '{snapname}'" + \
                 (f"; {peer} takes over {vip} meanwhile." if pair else ".")
    else:
        method, path, expect = "DELETE", f"{base}/snapshot/{snapname}", f"Snapshot '{snapname}' of {host.name} is removed."
    description = {"start": f"Start {who}", "stop": f"Power off {who}", "shutdown": f"Shut down {who}",
                   "snapshot": f"Snapshot {who} as '{snapname}'", "rollback": f"Roll back {who} to '{snapname}'",
                   "delete-snapshot": f"Delete snapshot '{snapname}' of {who}"}[action]
    return VmActionPlan(host.name, vmid, node, action, snapname, method, path, description, expect)


def run_vm_action(client: PveClient, plan: VmActionPlan, *, start_after_rollback: bool = False,
                  timeout: float = 300, progress: ProgressFn | None = None) -> TaskResult | None:
    """Execute a planned VM action and wait for its task (None: nothing to do, e.g. start a running VM).
    A VMID whose VM is not named like the lab host is refused (`VmIdentityError`), nothing sent."""
    vmid = plan.vmid
    kw: dict[str, Any] = {"expect_name": plan.vm, "timeout": timeout, "progress": progress}
    if plan.action == "start":
        if client.status(vmid, expect_name=plan.vm).get("status") == "running":
            return None
        result = client.start(vmid, **kw)
    elif plan.action == "stop":
        result = client.stop(vmid, **kw)
    elif plan.action == "shutdown":
        result = client.shutdown(vmid, **kw)
    elif plan.action == "snapshot":
        result = client.snapshot(vmid, str(plan.snapname), **kw)
    elif plan.action == "rollback":
        result = client.rollback(vmid, str(plan.snapname), start=start_after_rollback, **kw)
    else:
        result = client.delete_snapshot(vmid, str(plan.snapname), **kw)
    return result if isinstance(result, TaskResult) else None


def check_lab_vms(client: PveClient, hosts: Sequence[Any]) -> None:
    """Every lab host's VMID holds a VM of the host's name (else `VmIdentityError`), before any is touched."""
    for h in hosts:
        client.locate(h.vm.vmid, expect_name=h.name)


async def drill_snapshot(lab: Any, hosts: Sequence[str], name: str, *, timeout: float = 300) -> None:
    """Snapshot the VMs of a pair before a drill run (all at once; raises on the first failure)."""
    client = lab_client(lab)
    vms = [lab_vm_host(lab, h) for h in hosts]
    await asyncio.to_thread(check_lab_vms, client, vms)
    await asyncio.gather(*(asyncio.to_thread(client.snapshot, h.vm.vmid, name, expect_name=h.name, timeout=timeout)
                           for h in vms))


async def drill_rollback(lab: Any, hosts: Sequence[str], name: str, *, timeout: float = 300) -> None:
    """Roll the VMs back to `name`, start them again, delete the snapshot (raises on failure)."""
    client = lab_client(lab)
    vms = [lab_vm_host(lab, h) for h in hosts]
    await asyncio.to_thread(check_lab_vms, client, vms)
    await asyncio.gather(*(asyncio.to_thread(client.rollback, h.vm.vmid, name, start=True, expect_name=h.name,
                                             timeout=timeout) for h in vms))
    await asyncio.gather(*(asyncio.to_thread(client.delete_snapshot, h.vm.vmid, name, expect_name=h.name,
                                             timeout=timeout) for h in vms))


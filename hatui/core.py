"""The core facade: what the TUI and headless mode drive. No Textual here.

One `Core` per open lab: one SSH pool, the command log, and the entry points for polling,
faults, load runs and drills. With `read_only=True` every mutating entry point raises
`ReadOnlyError` before anything is sent.
"""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path
from typing import Callable

from hatui.collectors.cluster import ClusterState, collect_state
from hatui.config import Lab
from hatui.drill.events import CommandSent, Event
from hatui.drill.faults import FaultAction, FaultOutcome, ReadOnlyError, execute_fault, plan_fault
from hatui.lab import faults as lab_faults
from hatui.transport import CommandResult, SshPool, TransportError

COMMAND_LOG_SIZE = 1000


class Core:
    def __init__(self, lab: Lab, *, read_only: bool = False, results_dir: Path | None = None):
        self.lab = lab
        self.read_only = read_only
        self.results_dir = results_dir or Path("results")
        self.pool = SshPool([h for h in lab.hosts.values() if h.role == "server"])
        self.lab_faults = lab_faults  # what runs crash/restore and the links on a local lab
        self.commands: collections.deque[CommandSent] = collections.deque(maxlen=COMMAND_LOG_SIZE)
        self.command_listeners: list[Callable[[CommandSent], None]] = []
        self.pool.listeners.append(self._on_command)
        self._pve_client = None  # hatui.proxmox.PveClient, made on first use

    # -- observation --------------------------------------------------------------------------

    async def poll(self, pairs: list[str] | None = None, timeout: float | None = None) -> ClusterState:
        """One reading; `timeout` bounds each host's answer (a hung host then reads as unreachable)."""
        chosen = None if pairs is None else [self.lab.pairs[p] for p in pairs]
        return await collect_state(self.lab, self.pool, pairs=chosen, timeout=timeout)

    def _on_command(self, outcome: CommandResult | TransportError, host: str, command: str) -> None:
        if isinstance(outcome, TransportError):
            event = CommandSent(host=host, command=command, exit_status=None, duration_s=0.0, error=outcome.reason)
        else:
            event = CommandSent(host=host, command=command, exit_status=outcome.exit_status,
                                duration_s=outcome.duration_s)
        self.commands.append(event)
        for listener in self.command_listeners:
            listener(event)

    # -- actions ------------------------------------------------------------------------------

    def plan_fault(self, pair: str, action: str, target: str = "master") -> FaultAction:
        """What `action` would run and where (for the confirmation); sends nothing."""
        return plan_fault(self.lab, pair, action, target)

    async def execute(self, fault: FaultAction) -> FaultOutcome:
        if self.read_only:
            raise ReadOnlyError(fault.description.lower())
        return await execute_fault(self.lab, fault, self.pool, lab_faults=self.lab_faults)

    # -- Proxmox VMs (hatui.proxmox; blocking calls run in threads) ---------------------------

    async def list_vms(self) -> list:
        """The VMs as the Proxmox API reports them (`hatui.proxmox.VmState`, with snapshots).
        Raises ProxmoxConfigError ("Proxmox is not configured ...") when lab.toml has no [proxmox]."""
        return await self._pve(lambda client: client.list_vms())

    def plan_vm_action(self, vm_name: str, action: str, snapname: str | None = None):
        """What a VM action (start, stop, shutdown, snapshot, rollback, delete-snapshot) would send,
        for the confirmation (`.confirmation`, `.command`); sends nothing. Snapshot names default to a
        timestamp."""
        from hatui.proxmox import plan_vm_action

        return plan_vm_action(self.lab, vm_name, action, snapname)

    async def vm_action(self, plan_or_vm, action: str | None = None, snapname: str | None = None, *,
                        start_after_rollback: bool = False):
        """Run a planned VM action (or plan and run `action` on a VM) and wait for its Proxmox task.
        Refused in read-only mode. Returns the TaskResult (None: nothing to do); ProxmoxError on failure."""
        from hatui.proxmox import VmActionPlan, run_vm_action

        if self.read_only:
            what = plan_or_vm.description if isinstance(plan_or_vm, VmActionPlan) else f"{action} VM {plan_or_vm}"
            raise ReadOnlyError(what[0].lower() + what[1:])
        plan = plan_or_vm if isinstance(plan_or_vm, VmActionPlan) else self.plan_vm_action(plan_or_vm, action or "", snapname)
        return await self._pve(lambda client: run_vm_action(client, plan, start_after_rollback=start_after_rollback))

    async def _pve(self, call):
        """Run `call(client)` in a thread; the client is made once and dropped after an error (the lab's
        emulator gets a new token at each `lab up`)."""
        from hatui.proxmox import ProxmoxError, lab_client

        if self._pve_client is None:
            self._pve_client = lab_client(self.lab)
        client = self._pve_client
        try:
            return await asyncio.to_thread(call, client)
        except ProxmoxError:
            self._pve_client = None
            raise

    async def run_drill(self, plan, on_event: Callable[[Event], None], stop: asyncio.Event | None = None,
                        journal: Path | None = None):
        """Run a drill plan (see hatui.drill.runner); events go to `on_event`."""
        if self.read_only:
            raise ReadOnlyError("run a drill")
        from hatui.drill.runner import DrillRunner

        runner = DrillRunner(self.lab, plan, pool=self.pool, on_event=on_event,
                             journal_path=journal or self.results_dir / "journal.jsonl", lab_faults=self.lab_faults)
        return await runner.run(stop=stop)

    async def close(self) -> None:
        await self.pool.close()

    @staticmethod
    def now() -> float:
        return time.monotonic()

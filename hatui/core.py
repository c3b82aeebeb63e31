"""The one door into the core: what every front end drives (the TUI, `export`, `status`,
`load`, `vms`). No Textual here.

One `Core` per open lab: one SSH pool, the command log, the Proxmox client, and the entry
points for polling, faults, load runs and drills. With `read_only=True` every mutating entry
point raises `ReadOnlyError` before anything is sent. `hatui.session_protocol.CoreProtocol`
describes it for the UI. `lab` may be None for the front ends that work without a lab file
(`hatui load URL`, `hatui vms` with connection flags).
"""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path
from typing import Any, Callable

from hatui.collectors.cluster import ClusterState, collect_state
from hatui.config import Lab
from hatui.drill.events import CommandSent, Event
from hatui.drill.faults import FaultAction, FaultOutcome, ReadOnlyError, execute_fault, plan_fault
from hatui.lab import faults as lab_faults
from hatui.transport import CommandResult, SshPool, TransportError

COMMAND_LOG_SIZE = 1000


class Core:
    def __init__(self, lab: Lab | None, *, read_only: bool = False, results_dir: Path | None = None,
                 pve_settings=None):
        self.lab = lab
        self.read_only = read_only
        self.results_dir = results_dir or Path("results")
        self.pve_settings = pve_settings  # hatui.proxmox.PveSettings overriding lab.toml's [proxmox]
        self.pool = SshPool(lab.servers if lab is not None else [])
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

    def can_list_vms(self) -> bool:
        """Whether `list_vms` can answer: lab.toml has a [proxmox] section."""
        return self.lab.proxmox is not None

    async def list_vms(self) -> list:
        """The VMs as the Proxmox API reports them (`hatui.proxmox.VmState`, with snapshots).
        Raises ProxmoxConfigError ("Proxmox is not configured ...") when lab.toml has no [proxmox]."""
        return await self._pve(lambda client: client.list_vms())

    def plan_vm_action(self, vm_name: str, action: str, snapname: str | None = None):
        """What a VM action (start, stop, shutdown, snapshot, rollback, delete-snapshot) would send,
        for the confirmation (`.confirmation`, `.command`); sends nothing. Snapshot names default to a
        timestamp."""
        from hatui.vms import plan_vm_action

        return plan_vm_action(self.lab, vm_name, action, snapname)

    async def vm_action(self, plan_or_vm, action: str | None = None, snapname: str | None = None, *,
                        start_after_rollback: bool = False):
        """Run a planned VM action (or plan and run `action` on a VM) and wait for its Proxmox task.
        Refused in read-only mode. Returns the TaskResult (None: nothing to do); ProxmoxError on failure."""
        from hatui.vms import VmActionPlan, run_vm_action

        if self.read_only:
            what = plan_or_vm.description if isinstance(plan_or_vm, VmActionPlan) else f"{action} VM {plan_or_vm}"
            raise ReadOnlyError(what[0].lower() + what[1:])
        plan = plan_or_vm if isinstance(plan_or_vm, VmActionPlan) else self.plan_vm_action(plan_or_vm, action or "", snapname)
        return await self._pve(lambda client: run_vm_action(client, plan, start_after_rollback=start_after_rollback))

    async def _pve(self, call):
        """Run `call(client)` in a thread; the client is made once and dropped after an error (the lab's
        emulator gets a new token at each `lab up`)."""
        from hatui.proxmox import ProxmoxError

        if self._pve_client is None:
            self._pve_client = self.proxmox_client()
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

    async def run_load(self, spec, probe=None, on_event: Callable[[Any], None] | None = None,
                       stop: asyncio.Event | None = None):
        """A plain load run (no fault) of `spec` (hatui.load.spec.LoadSpec, ProbeSpec); see `run_plain_load`."""
        if self.read_only:
            raise ReadOnlyError("run a load run")
        return await run_plain_load(spec, probe, on_event, stop)

    def make_load(self, spec, probe=None, *, engine: str = "builtin", workers: int = 1, listeners=(),
                  **engine_options):
        """A load run of `spec` (and `probe`) on `engine`, not started: the caller runs, watches and
        stops it (`hatui load`). Refused in read-only mode."""
        if self.read_only:
            raise ReadOnlyError("run a load run")
        from hatui.load import make_run

        return make_run(spec, engine=engine, probe=probe, listeners=listeners, workers=workers, **engine_options)

    def proxmox_client(self):
        """A blocking Proxmox client (hatui.proxmox.PveClient) for this thread, from `pve_settings`
        or lab.toml's [proxmox]; use one per thread."""
        from hatui.proxmox import PveClient
        from hatui.vms import lab_client

        return PveClient(self.pve_settings) if self.pve_settings is not None else lab_client(self.lab)

    def vm_limits(self) -> str | None:
        """How the local lab's VM hosts get their CPU and memory limits on this machine ("cgroup v1",
        "cgroup v2" or "not applied: why"); None where there are no local VMs."""
        if self.lab is None or not self.lab.local or not self.lab.vms:
            return None
        from hatui.lab.cgroups import Cgroups

        return Cgroups(self.lab.name).describe()

    async def software_versions(self, timeout: float = 5.0) -> dict[str, dict | None]:
        """Each server's heartbeat, DRBD and nginx versions (hatui.provenance); a host that does not
        answer gives None: provenance never fails a drill."""
        from hatui.provenance import HOST_COMMAND, parse_host_software

        async def one(host: str) -> dict | None:
            try:
                result = await self.pool.run(host, HOST_COMMAND, timeout=timeout)
            except (TransportError, OSError):
                return None
            return parse_host_software(result.stdout)

        names = [h.name for h in self.lab.servers] if self.lab is not None else []
        return dict(zip(names, await asyncio.gather(*(one(n) for n in names))))

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> "Core":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @staticmethod
    def now() -> float:
        return time.monotonic()


async def run_plain_load(spec, probe=None, on_event: Callable[[Any], None] | None = None,
                   stop: asyncio.Event | None = None):
    """One `hatui.load.engine.LoadRun` on this loop: its events (hatui.load.events) go to `on_event`;
    setting `stop` stops launching and lets in-flight connections finish. Returns the LoadSummary."""
    from hatui.load.engine import LoadRun

    run = LoadRun(spec, probe=probe, listeners=[on_event] if on_event else [])
    if stop is None:
        return await run.run()

    async def stop_when_set() -> None:
        await stop.wait()
        run.stop()

    stopper = asyncio.ensure_future(stop_when_set())
    try:
        return await run.run()
    finally:
        stopper.cancel()

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
from hatui.transport import CommandResult, SshPool, TransportError

COMMAND_LOG_SIZE = 1000


class Core:
    def __init__(self, lab: Lab, *, read_only: bool = False, results_dir: Path | None = None):
        self.lab = lab
        self.read_only = read_only
        self.results_dir = results_dir or Path("results")
        self.pool = SshPool([h for h in lab.hosts.values() if h.role == "server"])
        self.commands: collections.deque[CommandSent] = collections.deque(maxlen=COMMAND_LOG_SIZE)
        self.command_listeners: list[Callable[[CommandSent], None]] = []
        self.pool.listeners.append(self._on_command)

    # -- observation --------------------------------------------------------------------------

    async def poll(self, pairs: list[str] | None = None) -> ClusterState:
        chosen = None if pairs is None else [self.lab.pairs[p] for p in pairs]
        return await collect_state(self.lab, self.pool, pairs=chosen)

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
        return await execute_fault(self.lab, fault, self.pool)

    async def run_drill(self, plan, on_event: Callable[[Event], None], stop: asyncio.Event | None = None,
                        journal: Path | None = None):
        """Run a drill plan (see hatui.drill.runner); events go to `on_event`."""
        if self.read_only:
            raise ReadOnlyError("run a drill")
        from hatui.drill.runner import DrillRunner

        runner = DrillRunner(self.lab, plan, pool=self.pool, on_event=on_event,
                             journal_path=journal or self.results_dir / "journal.jsonl")
        return await runner.run(stop=stop)

    async def close(self) -> None:
        await self.pool.close()

    @staticmethod
    def now() -> float:
        return time.monotonic()

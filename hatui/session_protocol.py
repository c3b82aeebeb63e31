"""What the terminal UI uses of the core, and nothing more. No Textual here.

`hatui.core.Core` and the UI's fake core (`hatui.ui.fake.FakeCore`) both satisfy `CoreProtocol`;
`HatuiApp(core)` takes anything that does. tests/test_layering.py checks both, signatures included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableSequence, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hatui.collectors.cluster import ClusterState
    from hatui.config import Lab
    from hatui.drill.events import CommandSent, Event
    from hatui.drill.faults import FaultAction, FaultOutcome


@runtime_checkable
class CoreProtocol(Protocol):
    lab: Lab
    read_only: bool  # the UI sets it in read-only mode: the core then refuses too
    results_dir: Path  # journal.jsonl lives here
    commands: Sequence[CommandSent]  # the command log so far
    command_listeners: MutableSequence[Callable[[CommandSent], None]]  # told of each command sent

    async def poll(self, pairs: list[str] | None = None, timeout: float | None = None) -> ClusterState:
        """One reading of the cluster."""

    def plan_fault(self, pair: str, action: str, target: str = "master") -> FaultAction:
        """What a fault or recovery would run and where; sends nothing."""

    async def execute(self, fault: FaultAction) -> FaultOutcome:
        """Run a planned fault; ReadOnlyError in read-only mode."""

    def can_list_vms(self) -> bool:
        """Whether `list_vms` can answer."""

    async def list_vms(self) -> list:
        """The VMs as Proxmox reports them."""

    async def run_drill(self, plan: Any, on_event: Callable[[Event], None], stop: asyncio.Event | None = None,
                        journal: Path | None = None) -> Any:
        """Run a drill plan; its events go to `on_event`; ReadOnlyError in read-only mode."""

    async def run_load(self, spec: Any, probe: Any = None, on_event: Callable[[Any], None] | None = None,
                       stop: asyncio.Event | None = None) -> Any:
        """A plain load run; hatui.load events go to `on_event`; ReadOnlyError in read-only mode."""

    async def close(self) -> None:
        """Let go of connections."""

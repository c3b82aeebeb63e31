"""The TUI on the real local lab: the Nodes pane shows the master holding the VIP; a failover
injected through the keys (with confirmation) shows the slave taking over; failback returns it."""

from __future__ import annotations

import asyncio
import time

import pytest

from hatui.core import Core

pytestmark = pytest.mark.lab


async def wait_until(pilot, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await pilot.pause(0.2)


async def test_failover_and_failback_from_the_keyboard(lab):
    from hatui.ui.app import HatuiApp
    from hatui.ui.modals import ConfirmScreen

    from hatui.lab.pairs import wait_stable

    await asyncio.to_thread(wait_stable, lab, lab.pairs["native"])
    core = Core(lab)
    app = HatuiApp(core, refresh_s=1.0, load_journal=False)
    vip = str(lab.pairs["native"].vip_address)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()

            def holds(host):
                cells = app.query_one("#nodes-table").shown_cells(host)
                return cells is not None and vip in [str(c) for c in cells]

            await wait_until(pilot, lambda: holds("master") and not holds("slave"), 40, "master holds the VIP")
            await pilot.press("f")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation")
            assert "heartbeat stop" in str(app.screen.text) and "master" in str(app.screen.text)
            await pilot.press("y")
            await wait_until(pilot, lambda: holds("slave") and not holds("master"), 30, "the slave takes over")
            await pilot.press("b")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the failback confirmation")
            await pilot.press("y")
            await wait_until(pilot, lambda: holds("master") and not holds("slave"), 40, "failback to the master")
    finally:
        await core.close()
    await asyncio.to_thread(wait_stable, lab, lab.pairs["native"])

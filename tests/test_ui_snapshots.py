"""SVG snapshots of every pane at 80x24 (one pane at a time) and 160x48 (side by side), plus the
modals, read-only and the high-contrast theme. Driven by the fake core: fixed data, no clock.

Regenerate after a deliberate change (and look at the SVGs / the report first):
    pytest tests/test_ui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from hatui.collectors.cluster import POLL_SCRIPT
from hatui.ui.app import HatuiApp
from hatui.ui.commandline import PANES
from hatui.ui.fake import FakeCore, demo_drill_events, demo_results

NARROW, WIDE = (80, 24), (160, 48)


def make_app(*, read_only: bool = False, theme: str | None = None, drill: bool = False) -> HatuiApp:
    core = FakeCore(with_vms=True, read_only=False)
    for host, status, seconds in [("master", 0, 0.041), ("slave", 0, 0.038), ("vm01a", 0, 0.052),
                                  ("vm01b", 0, 0.049), ("vm02a", 0, 0.047)]:
        core.log_command(host, POLL_SCRIPT, status, seconds)
    core.log_command("vm02b", POLL_SCRIPT, None, 2.0, error="timeout after 2 s")
    core.log_command("master", "drbdadm status [r0]", 1, 0.012)
    if drill:
        core.drill_script, core.drill_hold = demo_drill_events(core.lab), True
    app = HatuiApp(core, read_only=read_only, theme=theme, load_journal=False)
    return app


async def ready(pilot) -> None:
    app = pilot.app
    for _ in range(300):
        await pilot.pause()
        if app._polls_done >= 1 and app.panes["vms"].vms:
            break
    app.panes["charts"].add_results(demo_results(app.lab), "results/journal.jsonl")
    await pilot.pause()


def before(*keys: str, drill: bool = False):
    async def run_before(pilot) -> None:
        await ready(pilot)
        if drill:  # a drill half way through its second run (the runner's events, canned)
            from hatui.drill.plan import make_plan

            pilot.app.panes["drill"].chart_delay_s = 0.01
            pilot.app.panes["drill"].start_drill(make_plan(pilot.app.lab))
            await pilot.pause(0.05)
        if keys:
            await pilot.press(*keys)
        await pilot.pause(0.1)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("pane", PANES)
def test_pane_80x24(snap_compare, pane):
    number = str(PANES.index(pane) + 1)
    app = make_app(drill=pane == "drill")
    assert snap_compare(app, terminal_size=NARROW, run_before=before(number, drill=pane == "drill"))


@pytest.mark.parametrize("pane", ["nodes", "drill", "charts", "log"])
def test_pane_160x48(snap_compare, pane):
    """Wide: Nodes, DRBD, Heartbeat and VMs are always on screen; the bottom row shows the Drill
    console, Charts or Log (whichever was chosen last), so four shots show every pane."""
    number = str(PANES.index(pane) + 1)
    app = make_app(drill=pane == "drill")
    assert snap_compare(app, terminal_size=WIDE, run_before=before(number, drill=pane == "drill"))


def test_confirmation_80x24(snap_compare):
    assert snap_compare(make_app(), terminal_size=NARROW, run_before=before("f"))


def test_help_80x24(snap_compare):
    assert snap_compare(make_app(), terminal_size=NARROW, run_before=before("question_mark"))


def test_read_only_80x24(snap_compare):
    assert snap_compare(make_app(read_only=True), terminal_size=NARROW, run_before=before())


def test_contrast_theme_drbd_problems_80x24(snap_compare):
    assert snap_compare(make_app(theme="hatui-contrast"), terminal_size=NARROW, run_before=before("2", "P"))

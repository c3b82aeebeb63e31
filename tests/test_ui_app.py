"""Pilot tests of the TUI on the fake core: navigation, confirmations, read-only, filter, themes,
live updates, the command line, the palette, the drill console."""

from __future__ import annotations

import asyncio
import json

from hatui.ui.actions import ACTIONS
from hatui.ui.app import HatuiApp
from hatui.ui.commandline import PANES
from hatui.ui.fake import FakeCore, demo_drill_events, demo_results
from hatui.ui.fake_cluster import build_state, failover_state, fake_lab, healthy_outputs
from hatui.ui.modals import ConfirmScreen, HelpScreen
from hatui.ui.palette import palette_commands
from hatui.ui.widgets import KeyFooter, LiveTable

SIZE = (100, 30)


def make_app(core: FakeCore | None = None, **kwargs) -> HatuiApp:
    return HatuiApp(core or FakeCore(), **kwargs)


async def settle(pilot, app: HatuiApp, polls: int = 1) -> None:
    """Wait until `polls` readings have been shown."""
    for _ in range(200):
        await pilot.pause()
        if app._polls_done >= polls:
            break
        await asyncio.sleep(0.01)
    await pilot.pause()


async def type_line(pilot, text: str) -> None:
    """Put `text` into the focused input (as typed) and press enter."""
    await pilot.pause()
    pilot.app.focused.value = text
    await pilot.press("enter")
    await pilot.pause()


def table(app: HatuiApp, selector: str) -> LiveTable:
    return app.query_one(selector, LiveTable)


def cells(app: HatuiApp, selector: str, key: str) -> list[str]:
    return [c.plain for c in table(app, selector).shown_cells(key)]


# --- navigation ----------------------------------------------------------------------------------

async def test_number_keys_tab_and_arrows_switch_panes():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.active == "nodes"
        for number, name in enumerate(PANES, 1):
            await pilot.press(str(number))
            assert app.active == name
            assert [p for p in PANES if app.panes[p].display] == [name]
        await pilot.press("1", "tab")
        assert app.active == "drbd"
        await pilot.press("shift+tab", "shift+tab")
        assert app.active == "log"
        await pilot.press("1")
        await pilot.pause()
        await pilot.press("right")
        assert app.active == "drbd"
        await pilot.press("left")
        assert app.active == "nodes"


async def test_number_keys_never_type_into_the_drill_form_until_e():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("5")
        before = app.panes["drill"].values()
        await pilot.press("6", "5")
        assert app.active == "drill" and app.panes["drill"].values() == before
        await pilot.press("e")
        await pilot.pause()
        assert app.focused.id == "drill-stacks"
        await pilot.press("tab")
        assert app.focused.id == "drill-rates"
        app.focused.value = ""
        await pilot.press("2", "0", "enter")
        await pilot.pause()
        assert app.panes["drill"].values()["rates"] == "20"
        assert app.focused.id == "drill-results"
        await pilot.press("1")
        assert app.active == "nodes"


async def test_wide_terminal_shows_panes_side_by_side():
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, app)
        assert app.wide
        shown = [name for name in PANES if app.panes[name].display]
        assert shown == ["nodes", "drbd", "heartbeat", "vms", "drill"]
        await pilot.press("7")
        shown = [name for name in PANES if app.panes[name].display]
        assert shown == ["nodes", "drbd", "heartbeat", "vms", "log"]
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not app.wide
        assert [name for name in PANES if app.panes[name].display] == ["log"]


# --- what the panes show -------------------------------------------------------------------------

async def test_nodes_pane_shows_vip_holder_unreachable_host_and_severity_marks():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert cells(app, "#nodes-table", "master")[:7] == ["OK", "master", "native", "master", "ok", "running",
                                                            "10.251.0.100"]
        assert cells(app, "#nodes-table", "vm02b")[0] == "!!"
        assert cells(app, "#nodes-table", "vm02b")[5] == "unreachable"
        assert cells(app, "#nodes-table", "vm01a")[0] == "!"
        notes = app.query_one("#nodes-notes").content
        assert "vm02b: unreachable: timeout after 2 s" in str(notes)
        title = str(app.query_one("#title").content)
        assert "native: master holds 10.251.0.100" in title
        assert str(app.query_one("#mode").content) == "RW"


async def test_drbd_pane_resync_progress_split_brain_and_problems_filter():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("2")
        await pilot.pause()
        keys = table(app, "#drbd-table").row_keys
        assert "master/r0" in keys and "vm01b/r0/vm01a/0" in keys
        assert cells(app, "#drbd-table", "vm01b/r0/vm01a/0")[5:] == ["SyncTarget", "47.3%"]
        notes = str(app.query_one("#drbd-notes").content)
        assert "47.3 %" in notes and "eta 0:01:12" in notes and "[=" in notes
        assert "!! vm02a r0: split brain" in notes
        await pilot.press("P")
        await pilot.pause()
        keys = table(app, "#drbd-table").row_keys
        assert "master/r0" not in keys and "vm02a/r0" in keys and "vm01b/r0" in keys
        assert "DRBD: problems only" in str(app.query_one("#tabs").content)
        await pilot.press("P")
        await pilot.pause()
        assert "master/r0" in table(app, "#drbd-table").row_keys


async def test_heartbeat_pane_group_order_and_last_takeover():
    core = FakeCore(state=build_state(fake_lab(), healthy_outputs()))
    app = make_app(core, refresh_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("3")
        rows = table(app, "#hb-resources").row_keys
        assert rows[:4] == ["native/1", "native/2", "native/3", "native/4"]
        assert cells(app, "#hb-resources", "native/1")[2] == "drbddisk::r0"
        assert cells(app, "#hb-pairs", "native")[4:] == ["master", "auto", "-"]
        core.state = failover_state(core.lab)
        await settle(pilot, app, app._polls_done + 2)
        row = cells(app, "#hb-pairs", "native")
        assert row[4] == "slave"
        assert row[6].endswith("master→slave")
        details = str(app.query_one("#hb-details").content)
        assert "master and slave: ha.cf and haresources match lab.toml" in details
        assert "slave 16:49:54 mach_down takeover complete for node master." in details
        table(app, "#hb-pairs").focus()
        await pilot.press("down")  # the details follow the cursor
        await pilot.pause()
        details = str(app.query_one("#hb-details").content)
        assert "vm01a and vm01b: ha.cf and haresources match lab.toml" in details and "slave" not in details


async def test_vms_pane_with_and_without_a_vm_listing():
    app = make_app(FakeCore())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("4")
        assert "not available" in str(app.query_one("#vms-status").content)
        assert table(app, "#vms-table").row_keys == ["vm01a", "vm01b", "vm02a", "vm02b"]

    lab = fake_lab()
    lab.proxmox = None
    app = make_app(FakeCore(lab))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("4")
        assert "not configured" in str(app.query_one("#vms-status").content)

    app = make_app(FakeCore(with_vms=True))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("4")
        for _ in range(50):
            await pilot.pause()
            if app.panes["vms"].vms:
                break
        assert cells(app, "#vms-table", "vm01a")[5] == "running"
        assert "Proxmox API" in str(app.query_one("#vms-status").content)


async def test_log_pane_lists_commands_and_escapes_markup():
    core = FakeCore()
    core.log_command("master", "drbdadm status [r0] [bold]x[/bold]", 0, 0.12)
    app = make_app(core)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        core.log_command("slave", "cl_status hbstatus", None, 2.0, error="timeout after 2 s")
        await pilot.pause()
        await pilot.press("7")
        rows = table(app, "#log-table").row_keys
        assert len(rows) == 2
        assert cells(app, "#log-table", rows[0]) == ["master", "0", "0.12s", "drbdadm status [r0] [bold]x[/bold]"]
        assert cells(app, "#log-table", rows[1])[1] == "ERR"
        assert cells(app, "#log-table", rows[1])[3] == "(timeout after 2 s) cl_status hbstatus"


# --- live updates ----------------------------------------------------------------------------------

async def test_host_that_stops_answering_is_shown_within_one_poll_interval():
    lab = fake_lab()
    core = FakeCore(lab, state=build_state(lab, healthy_outputs()))
    app = make_app(core, refresh_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert cells(app, "#nodes-table", "master")[5] == "running"
        outputs = healthy_outputs()
        outputs["master"] = None
        core.state = build_state(lab, outputs, errors={"master": "timeout after 2 s"})
        await pilot.pause(0.2 * 1.5 + 0.1)
        await pilot.pause()
        assert cells(app, "#nodes-table", "master")[5] == "unreachable"
        assert cells(app, "#nodes-table", "master")[0] == "!!"


async def test_polls_never_overlap_and_tables_update_in_place():
    lab = fake_lab()
    core = FakeCore(lab, state=build_state(lab, healthy_outputs()), poll_delay_s=0.05)
    in_flight = []
    original = core.poll

    async def counting_poll(*args, **kwargs):
        in_flight.append(1)
        assert len(in_flight) == 1, "two polls at once"
        try:
            return await original(*args, **kwargs)
        finally:
            in_flight.pop()

    core.poll = counting_poll
    app = make_app(core, refresh_s=0.01)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        nodes = table(app, "#nodes-table")
        nodes.move_cursor(row=3)
        rebuilds = []
        original_clear = nodes.clear
        nodes.clear = lambda *a, **k: rebuilds.append(1) or original_clear(*a, **k)
        outputs = healthy_outputs()
        from hatui.ui.fake_cluster import poll_output
        outputs["vm01b"] = poll_output("vm01b", addresses=["10.251.0.32", "10.251.2.32"], rsc="none", uptime_s=126,
                                       load1=0.75)
        core.state = build_state(lab, outputs)
        await settle(pilot, app, app._polls_done + 3)
        assert cells(app, "#nodes-table", "vm01b")[7] == "0.75"
        assert nodes.cursor_row == 3
        assert rebuilds == []
        assert core.polls >= 3


# --- confirmations ---------------------------------------------------------------------------------

async def test_fault_confirmation_shows_the_plan_verbatim_and_defaults_to_no():
    core = FakeCore()
    app = make_app(core)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        planned = core.plan_fault("native", "stop-heartbeat", "master")
        assert str(app.screen.query_one("#text").content) == planned.confirmation
        assert app.screen.focused.id == "no"
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("f")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert core.sent == []


async def test_yes_executes_exactly_the_planned_action_then_failback_undoes_it():
    core = FakeCore()
    app = make_app(core)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f")
        await pilot.pause()
        await pilot.press("tab")  # focus Yes
        assert app.screen.focused.id == "yes"
        await pilot.press("enter")
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "fault"])
        await pilot.pause()
        assert core.sent == [("execute", core.plan_fault("native", "stop-heartbeat", "master"))]
        await pilot.press("b")
        await pilot.pause()
        assert "Start heartbeat on master" in str(app.screen.query_one("#text").content)
        await pilot.press("y")
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "fault"])
        await pilot.pause()
        assert core.sent[1] == ("execute", core.plan_fault("native", "start-heartbeat", "master"))
        assert [e.command for e in core.commands] == ["/etc/init.d/heartbeat stop", "/etc/init.d/heartbeat start"]


async def test_fault_targets_the_pair_under_the_cursor():
    core = FakeCore()
    app = make_app(core)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        nodes = table(app, "#nodes-table")
        nodes.move_cursor(row=nodes.row_keys.index("vm01b"))
        await pilot.press("f")
        await pilot.pause()
        assert str(app.screen.query_one("#text").content) == core.plan_fault("vm01", "stop-heartbeat",
                                                                            "master").confirmation
        await pilot.press("y")
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "fault"])
        assert core.sent[0][1].pair == "vm01"


async def test_command_line_fault_and_vm_stop_ask_first():
    core = FakeCore(with_vms=True)
    app = make_app(core)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("colon")
        await type_line(pilot, "fault vm02 crash slave")
        assert isinstance(app.screen, ConfirmScreen)
        assert str(app.screen.query_one("#text").content) == core.plan_fault("vm02", "crash", "slave").confirmation
        await pilot.press("n")
        await pilot.press("4", "x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "Power off VM vm01a" in str(app.screen.query_one("#text").content)
        await pilot.press("y")
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "fault"])
        assert [(kind, f.action, f.host) for kind, f in core.sent] == [("execute", "stop-vm", "vm01a")]


# --- read-only -----------------------------------------------------------------------------------

MUTATING_KEYS = ["f", "b", "d", "l", "4", "x", "o", "a"]
MUTATING_COMMANDS = ["fault native stop-heartbeat master", "fault vm01 stop-vm master", "failback native",
                     "drill", "drill rates=50 repeat=1", "load", "f native crash master"]


async def test_read_only_sends_nothing_whatever_is_pressed_or_typed():
    core = FakeCore(with_vms=True)
    app = make_app(core, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert str(app.query_one("#mode").content) == "READ-ONLY"
        assert core.read_only is True  # the core refuses as well
        for key in MUTATING_KEYS:
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
        for text in MUTATING_COMMANDS:
            assert app.run_command(text) is False
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
        # the same through the `:` line
        await pilot.press("colon")
        await type_line(pilot, "fault native stop-heartbeat master")
        assert not isinstance(app.screen, ConfirmScreen)
        # the palette offers nothing that changes the cluster
        titles = [title for title, _, _ in palette_commands(app)]
        assert not [t for t in titles if t.startswith(("Fault", "Failback", "Drill", "Load"))]
        # and the mutating bindings are neither shown nor runnable
        shown = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled and b.binding.show}
        assert not shown & {"failover", "failback", "drill", "load", "vm_power('stop')", "vm_power('start')"}
        for action in ("failover", "failback", "drill", "load"):
            assert await app.run_action(action) is False
        assert await app.run_action("vm_power('stop')", app.panes["vms"]) is False
        # even a direct call is refused
        app.faults.request("native", "stop-heartbeat", "master")
        app.action_drill()
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        # and the palette, searched for faults, has nothing to run
        await pilot.press("ctrl+p")
        await pilot.pause()
        app.screen.query_one("Input").value = "fault"
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
    assert core.sent == []


async def test_read_only_with_the_real_core_sends_only_readings(monkeypatch):
    """The real Core over a recording pool: only the poll script is ever sent."""
    from hatui.collectors import cluster
    from hatui.core import Core
    from hatui.httpcheck import HttpCheck
    from hatui.transport import CommandResult
    from hatui.ui.fake_cluster import healthy_outputs

    async def fake_http_get(address, uri="/", **kwargs):
        return HttpCheck(True, 200, "master", None, 1.0)

    monkeypatch.setattr(cluster, "http_get", fake_http_get)
    lab = fake_lab()
    core = Core(lab, read_only=True)
    sent: list[tuple[str, str]] = []
    outputs = healthy_outputs()

    async def run(host, command, *, timeout=None, **kwargs):
        sent.append((host, command))
        result = CommandResult(host, command, 0, outputs[host] or "", "", 0.001, 0.0)
        core.pool._tell(result, host, command)
        return result

    monkeypatch.setattr(core.pool, "run", run)
    app = HatuiApp(core)
    assert app.read_only
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        for key in MUTATING_KEYS:
            await pilot.press(key)
        for text in MUTATING_COMMANDS:
            app.run_command(text)
        await pilot.pause()
        assert cells(app, "#nodes-table", "master")[6] == "10.251.0.100"
    assert sent and {command for _, command in sent} == {cluster.POLL_SCRIPT}


# --- filter, command line, palette, help, themes, keymap ----------------------------------------

async def test_filter_hides_rows_everywhere_and_escape_clears_it():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("slash", "v", "m", "0", "1")
        await pilot.pause()
        assert table(app, "#nodes-table").row_keys == ["vm01a", "vm01b"]
        await pilot.press("enter")
        await pilot.pause()
        assert "filter: vm01" in str(app.query_one("#tabs").content)
        assert app.focused is table(app, "#nodes-table")
        await pilot.press("2")  # a pane built after the filter was set follows it too
        await pilot.pause()
        keys = table(app, "#drbd-table").row_keys
        assert keys and all(k.startswith("vm01") for k in keys)
        await pilot.press("1")
        await settle(pilot, app, app._polls_done + 1)
        assert table(app, "#nodes-table").row_keys == ["vm01a", "vm01b"]  # survives a refresh
        await pilot.press("slash", "escape")
        await pilot.pause()
        assert len(table(app, "#nodes-table").row_keys) == 6


async def test_command_line_panes_themes_and_errors():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("colon", "p", "a", "n", "e", "space", "d", "r", "b", "d", "enter")
        await pilot.pause()
        assert app.active == "drbd"
        assert app.run_command(":theme hatui-light")
        assert app.theme == "hatui-light"
        assert not app.run_command("theme no-such-theme")
        assert not app.run_command("frobnicate")
        assert app.run_command("pane 7") and app.active == "log"
        assert app.run_command("filter vm02") and app.filter_text == "vm02"
        assert app.run_command("filter") and app.filter_text == ""


async def test_theme_switch_from_the_palette_and_restyle():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.theme == "hatui-dark"
        before = table(app, "#nodes-table").shown_cells("vm02b")[0].style
        await pilot.press("ctrl+p")
        await pilot.pause()
        pilot.app.screen.query_one("Input").value = "hatui-contrast"
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.theme == "hatui-contrast"
        after = table(app, "#nodes-table").shown_cells("vm02b")[0].style
        assert after != before and "reverse" in str(after)
        for theme in ("hatui-light", "hatui-amber", "hatui-dark"):
            assert app.switch_theme(theme)
            await pilot.pause()
            assert app.theme == theme and app.export_screenshot()


def test_themes_bundled_and_a_broken_theme_file_only_warns(tmp_path):
    (tmp_path / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#ff0000"\n')
    app = HatuiApp(FakeCore(), extra_theme_dirs=[tmp_path], theme="mine")
    assert {"hatui-dark", "hatui-light", "hatui-contrast", "hatui-amber", "mine"} <= set(app.available_themes)
    assert app.theme == "mine"
    assert any("broken.toml" in f and "not a colour" in f for f in app.theme_failures)


async def test_broken_theme_is_notified_and_unknown_theme_falls_back(tmp_path):
    (tmp_path / "broken.toml").write_text("this is not toml")
    app = HatuiApp(FakeCore(), extra_theme_dirs=[tmp_path], theme="nope")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        assert app.theme == "hatui-dark"
        messages = [n.message for n in app._notifications]
        assert any("broken.toml" in m and "nope" in m for m in messages)


async def test_keys_from_lab_toml_override_bindings():
    lab = fake_lab(keys={"failover": "F", "pane.drbd": "ctrl+d", "no-such-id": "z"})
    core = FakeCore(lab)
    app = make_app(core)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        await pilot.press("f")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("F")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape", "ctrl+d")
        await pilot.pause()
        assert app.active == "drbd"
        assert any("no-such-id" in n.message for n in app._notifications)
        assert app.key_for("failover") == "F"


async def test_help_overlay_lists_every_key():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").content)
        for expected in ("fail over", "fail back", "start a drill", "filter", "command palette", ":fault PAIR",
                         "DRBD pane: problems only", "Nodes pane", "Log pane"):
            assert expected in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_the_action_table_drives_keys_help_palette_and_command_line():
    app = make_app(FakeCore(with_vms=True))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        help_text = " ".join(str(app.screen.query_one("#help-text").content).split())  # unwrapped
        await pilot.press("escape")
        titles = [title for title, _, _ in palette_commands(app)]
        suggestions = app.command_line.suggestions()
        for row in ACTIONS:
            if row.action:  # its key runs a method of its owner, under its binding id
                owner = app if row.owner == "app" else app.panes[row.owner]
                assert callable(app.handler(row)), row
                assert (row.key, row.binding_action, row.id) in [(b.key, b.action, b.id) for b in owner.BINDINGS], row
            if row.help:
                assert " ".join(row.help.split("{")[0].split()) in help_text, row
            if row.palette and row.action != "abort":  # abort: only while a drill runs
                assert row.palette in titles, row
            if row.command:
                assert row.command in app.command_line.with_words or row.action, row
                assert any(s.startswith(row.command) for s in suggestions), row
                assert f":{row.usage or row.command}" in help_text, row


# --- drill console -------------------------------------------------------------------------------

async def test_drill_starts_after_confirmation_and_renders_events():
    core = FakeCore()
    core.drill_script = demo_drill_events(core.lab)
    app = make_app(core)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("5", "d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        text = str(app.screen.query_one("#text").content)
        assert "Stop heartbeat on master" in text and "Start a drill" in text
        await pilot.press("enter")  # No
        await pilot.pause()
        assert core.sent == []
        await pilot.press("d", "y")
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "drill"])
        await pilot.pause(0.3)
        kind, plan = core.sent[0]
        assert kind == "run_drill" and [r.rate for r in plan.runs][:1] == [10.0]
        view = app.panes["drill"].view
        assert view.attempted == 28 * 50 and view.marks["fault-sent"] == 10.0
        status = str(app.query_one("#drill-status").content)
        assert "run 2 of" in status and "errors 27   availability 98.1 %   (connrefused 25, client-timo 2)" in status
        assert table(app, "#drill-results").row_keys == ["native/native/rate50/rep1/failover",
                                                         "native/native/rate50/rep1/failback"]
        assert cells(app, "#drill-results", "native/native/rate50/rep1/failover")[8] == "0.58 s"
        assert "native/native/rate50/rep1" in app.panes["charts"].results
        assert not view.running


async def test_drill_parameters_from_the_form_and_abort():
    core = FakeCore()
    core.drill_hold, core.drill_script = True, []
    app = make_app(core)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.run_command("drill rates=50 repeat=2 conns=1000 stacks=native")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        plan = core.sent[0][1]
        assert [r.rate for r in plan.runs] == [50.0, 50.0] and plan.connections == 1000
        assert app.panes["drill"].view.running
        assert "DRILL RUNNING" in str(app.query_one("#tabs").content)
        await pilot.press("a")
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "drill"])
        await pilot.pause()
        assert not app.panes["drill"].view.running


async def test_bad_drill_parameters_are_reported_not_run():
    core = FakeCore()
    app = make_app(core)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot, app)
        app.run_command("drill rates=fast")
        app.run_command("drill conns=10 rates=50")  # too short for fault + recovery
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        messages = " ".join(n.message for n in app._notifications)
        assert "rates: not a number" in messages and "too short" in messages
    assert core.sent == []


async def test_flood_of_load_progress_is_coalesced():
    core = FakeCore()
    app = make_app(core)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        events = demo_drill_events(core.lab)
        for _ in range(50):
            for event in events:
                app.panes["drill"].on_drill_event(event)
        await pilot.pause(0.4)
        assert app.panes["drill"].view.events_seen == 50 * len(events)
        assert not app.panes["drill"].pending_events


async def test_journal_results_feed_the_charts(tmp_path):
    results = demo_results(fake_lab())
    journal = tmp_path / "journal.jsonl"
    lines = [{"v": 1, "kind": "drill-started", "wall": 1.0}]
    lines += [{"v": 1, "kind": "run-finished", "wall": 2.0, "result": r.to_dict()} for r in results]
    journal.write_text("\n".join(json.dumps(x) for x in lines) + "\n{torn")
    app = make_app(FakeCore(results_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "journal"])
        await pilot.pause()
        await pilot.press("6")
        assert table(app, "#charts-table").row_keys == ["native/failover/50", "native/failback/50"]
        row = cells(app, "#charts-table", "native/failover/50")
        assert row[3] == "2/2" and row[6] == "0.60 s"


async def test_plain_load_run_against_a_local_server():
    async def serve(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    core = FakeCore()
    app = make_app(core)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            app.panes["drill"].load_url = lambda pair: f"http://127.0.0.1:{port}/"
            await pilot.press("5")
            form = app.panes["drill"].query_one("DrillForm")
            form.set_values({"rates": "100", "conns": "50"})
            await pilot.press("l")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            assert f"50 connections at 100 conn/s to http://127.0.0.1:{port}/" in str(app.screen.query_one("#text").content)
            await pilot.press("y")
            await app.workers.wait_for_complete([w for w in app.workers if w.group == "drill"])
            await pilot.pause()
            view = app.panes["drill"].view
            assert view.ended.startswith("load run finished: 50 requests, availability 100.00 %"), view.ended
            assert not view.running
    finally:
        server.close()
    assert core.sent == []  # a load run changes nothing on the cluster


async def test_footer_keeps_help_and_quit_at_80_columns_on_every_pane():
    from hatui.drill.plan import make_plan

    core = FakeCore(with_vms=True)
    core.drill_script, core.drill_hold = demo_drill_events(core.lab), True  # "a abort drill" shown too
    app = make_app(core, load_journal=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        app.panes["drill"].start_drill(make_plan(app.lab))
        for number, name in enumerate(PANES, 1):
            await pilot.press(str(number))
            await pilot.pause()
            drawn = app.query_one(KeyFooter).render_line(0).text  # what is on screen, not the content
            assert "? help" in drawn and "q quit" in drawn, (name, drawn)
        await pilot.press("a")


async def test_no_color_keeps_severity_readable(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert app.no_color  # Textual draws monochrome
        assert [c.plain for c in table(app, "#nodes-table").shown_cells("vm02b")][:1] == ["!!"]
        assert "reverse" in str(table(app, "#nodes-table").shown_cells("vm02b")[0].style)

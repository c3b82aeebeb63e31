"""The hatui terminal UI: one app over one core (`hatui.session_protocol.CoreProtocol`).

The app keeps the layout, pane switching, the theme, read-only mode and the wiring. Each concern
lives where it belongs: the panes own their data, workers and handlers (VMs, Drill, Charts, Log),
`polling.Poller` the cluster readings, `faults.Faults` faults and recoveries, `prompt.PromptBar`
the `/` and `:` line. Workers only post messages (`hatui.ui.messages`); handlers update widgets.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any, Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.events import DescendantFocus, Resize
from textual.widgets import Input

from hatui.session_protocol import CoreProtocol
from hatui.ui import actions, commandline, model
from hatui.ui.actions import MUTATING_ACTIONS, PANES, UiAction
from hatui.ui.charts_pane import ChartsPane
from hatui.ui.commandline import CommandRunner
from hatui.ui.drill_form import DrillForm
from hatui.ui.drill_pane import DrillPane
from hatui.ui.faults import Faults
from hatui.ui.log_pane import LogPane
from hatui.ui.messages import FaultDone, FilterTyped, PollFailed, PromptClosed, StatePolled, while_mounted
from hatui.ui.modals import ConfirmScreen, HelpScreen
from hatui.ui.panes import DrbdPane, HeartbeatPane, NodesPane, Pane, StatePane
from hatui.ui.polling import Poller
from hatui.ui.prompt import PromptBar
from hatui.ui.theming import install_themes, theme_dirs
from hatui.ui.vms_pane import VmsPane
from hatui.ui.widgets import KeyFooter, Quiet, TabBar, TitleBar, key_bindings

WIDE = (160, 48)  # at least this many columns and rows: panes side by side
BOTTOM_PANES = ("drill", "charts", "log")


def hatui_commands():
    """The palette provider, imported when the palette first opens (textual.command is slow to import)."""
    from hatui.ui.palette import HatuiCommands

    return HatuiCommands


class HatuiApp(App[int]):
    TITLE = "hatui"
    CSS_PATH = Path(__file__).parent / "app.tcss"  # absolute: subclasses elsewhere still find it
    # The active pane decides the focus (set_active); Textual's auto-focus of the first table
    # after a modal closes would silently switch panes.
    AUTO_FOCUS = None
    COMMANDS = App.COMMANDS | {hatui_commands}

    BINDINGS = key_bindings("app")

    def __init__(self, core: CoreProtocol, *, theme: str | None = None, read_only: bool | None = None,
                 refresh_s: float | None = None, extra_theme_dirs: list[Path] | None = None,
                 close_core: bool = False, load_journal: bool = True):
        super().__init__()
        self.core = core
        self.lab = core.lab
        self.read_only = bool(core.read_only if read_only is None else read_only)
        if self.read_only:
            core.read_only = True  # the core refuses too (second line of defence)
        self.refresh_s = float(refresh_s if refresh_s is not None else self.lab.ui.refresh_s)
        self.close_core = close_core
        self.load_journal_at_start = load_journal
        self.hatui_themes, self.theme_failures = install_themes(
            self, theme or self.lab.ui.theme, theme_dirs(self.lab.path) + list(extra_theme_dirs or []))

        self.active = "nodes"
        self.bottom = "drill"
        self.wide = False
        self.filter_text = ""
        self.state = None
        self.poll_error: str | None = None
        self.tracker = model.TakeoverTracker()
        self.poller = Poller(self)
        self.faults = Faults(self)
        self.command_line = CommandRunner(self)
        self._polls_done = 0
        self._keymap_ids: dict[str, str] = {}
        self.panes: dict[str, Pane] = {}

    # --- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="topbar"):
            yield TitleBar(id="title")
            yield Quiet("READ-ONLY" if self.read_only else "RW", id="mode",
                        classes="-read-only" if self.read_only else "")
        yield TabBar(id="tabs")
        panes = [NodesPane(), DrbdPane(), HeartbeatPane(), VmsPane(), DrillPane(self.lab), ChartsPane(), LogPane()]
        panes[2].tracker = self.tracker
        with Container(id="panes"):
            for pane in panes:
                self.panes[pane.pane_id] = pane
                if pane.pane_id in BOTTOM_PANES:
                    pane.add_class("-bottom")
                pane.display = pane.pane_id == self.active
                yield pane
        yield PromptBar()
        yield KeyFooter(id="footer")

    @property
    def prompt(self) -> PromptBar:
        return self.query_one(PromptBar)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        theme = self.current_theme
        return {"sev-ok": theme.success or "green", "sev-warn": theme.warning or "yellow",
                "sev-alert": theme.error or "red"}

    def on_mount(self) -> None:
        keys = dict(self.lab.ui.keys)
        known = actions.BY_ID
        unknown = sorted(set(keys) - set(known))
        if unknown:
            self.notify(f"lab.toml [ui] keys: unknown binding id(s) {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(known))}", severity="warning", timeout=10, markup=False)
        self._keymap_ids = {k: v for k, v in keys.items() if k in known}
        if self._keymap_ids:
            self.set_keymap(self._keymap_ids)
        if self.theme_failures:
            self.notify("Some themes could not be loaded:\n" + "\n".join(self.theme_failures),
                        severity="warning", timeout=10, markup=False)
        self.theme_changed_signal.subscribe(self, lambda _theme: self.restyle())
        self.apply_layout(self.size.width, self.size.height)
        self.set_active("nodes")
        self.render_title()
        self.poller.start()
        if self.load_journal_at_start:
            self.panes["charts"].load_journal()
        self.panes["vms"].start()

    def on_resize(self, event: Resize) -> None:
        self.apply_layout(event.size.width, event.size.height)

    def apply_layout(self, width: int, height: int) -> None:
        wide = width >= WIDE[0] and height >= WIDE[1]
        if wide != self.wide or not self.panes["nodes"].parent.has_class("-wide") == wide:
            self.wide = wide
            self.query_one("#panes").set_class(wide, "-wide")
            if self.panes:
                self._show_panes()
            self.render_tabs()

    def set_active(self, name: str, *, focus: bool = True) -> None:
        self.active = name
        if name in BOTTOM_PANES:
            self.bottom = name
        self._show_panes()
        if focus:
            self.call_after_refresh(self._focus_active)
        self.render_tabs()

    def _show_panes(self) -> None:
        """Which panes are visible. Set as inline `display` (no stylesheet pass over the panes'
        widgets), so switching panes stays well under the 100 ms key budget."""
        for pane_id, pane in self.panes.items():
            if self.wide:
                visible = pane_id not in BOTTOM_PANES or pane_id == self.bottom
            else:
                visible = pane_id == self.active
            if pane.display != visible:
                pane.display = visible
            if visible:
                pane.ensure_built()

    def pane_ready(self, pane_id: str) -> None:
        """A pane finished building (first shown): focus it if it is the active one."""
        if pane_id == self.active:
            self._focus_active()

    def _focus_active(self) -> None:
        if self.prompt.mode:
            return
        target = self.panes[self.active].focus_target()
        if target is not None:
            target.focus()
        else:
            self.set_focus(None)

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        widget = event.widget
        for pane_id, pane in self.panes.items():
            if widget is pane or pane in widget.ancestors:
                if pane_id != self.active:
                    self.set_active(pane_id, focus=False)
                return

    def render_tabs(self) -> None:
        shown = [name for name, pane in self.panes.items() if self.wide and pane.display]
        extras = [f"filter: {self.filter_text}"] if self.filter_text else []
        if self.panes and self.panes["drbd"].problems_only:
            extras.append("DRBD: problems only")
        if self.panes and self.panes["drill"].view.running:
            extras.append("LOAD RUNNING" if self.panes["drill"].view.is_load_run else "DRILL RUNNING")
        self.query_one("#tabs", TabBar).show_panes(self.active, shown, extras)

    def render_title(self) -> None:
        self.query_one("#title", TitleBar).show_reading(self.lab.name, self.state, self.poll_error)

    def restyle(self) -> None:
        for pane in self.panes.values():
            pane.restyle()
        self.render_title()
        self.query_one(KeyFooter).redraw()

    # --- cluster readings (polling.Poller) ----------------------------------------------------------

    @while_mounted
    def on_state_polled(self, message: StatePolled) -> None:
        state = message.state
        self.state = state
        self.poll_error = None
        self._polls_done += 1
        for pair, takeover in self.tracker.observe(state):
            self.notify(f"{pair}: takeover {takeover.old} → {takeover.new}", timeout=6, markup=False)
        for pane in self.panes.values():
            if isinstance(pane, StatePane):
                pane.show_state(state)
        self.render_title()
        self.poller.arm()

    @while_mounted
    def on_poll_failed(self, message: PollFailed) -> None:
        self.poll_error = message.error
        self.render_title()
        self.poller.arm()

    def action_refresh(self) -> None:
        self.poller.now()
        self.panes["vms"].refresh_vms()

    # --- panes -------------------------------------------------------------------------------

    def action_show_pane(self, name: str) -> None:
        self.set_active(commandline.pane_name(name))

    def _step_pane(self, step: int) -> None:
        index = PANES.index(self.active)
        self.set_active(PANES[(index + step) % len(PANES)])

    def action_next_pane(self) -> None:
        if self._tab_inside_form(+1):
            return
        self._step_pane(+1)

    def action_prev_pane(self) -> None:
        if self._tab_inside_form(-1):
            return
        self._step_pane(-1)

    def _tab_inside_form(self, step: int) -> bool:
        """Tab moves between the drill form's fields; tab past the last one changes pane.
        In a modal (confirmation, palette...) tab moves the focus as usual."""
        if len(self.screen_stack) > 1:
            if step > 0:
                self.screen.focus_next()
            else:
                self.screen.focus_previous()
            return True
        focused = self.focused
        if isinstance(focused, Input) and focused.id == "prompt-input":
            return True
        form = focused.parent if isinstance(focused, Input) else None
        return isinstance(form, DrillForm) and form.step(focused, step)

    def selected_pair(self) -> str:
        return self.panes[self.active].selected_pair() or next(iter(self.lab.pairs))

    # --- read-only -----------------------------------------------------------------------------

    def allows(self, action: str) -> bool:
        """False for an action that changes the cluster, in read-only mode."""
        return not (self.read_only and action in MUTATING_ACTIONS)

    def refuses(self, row: UiAction) -> bool:
        """Read-only mode refuses (and hides) every row of the action table marked mutating."""
        return self.read_only and row.mutating

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "abort":
            return self.panes["drill"].view.running if self.panes else False
        return self.allows(action)

    def refuse_if_read_only(self, what: str) -> bool:
        if self.read_only:
            self.notify(f"read-only mode: {what} is not allowed", severity="warning", markup=False)
            return True
        return False

    def confirm(self, text: str, *, yes_label: str, title: str, then: Callable[[], Any]) -> None:
        """Show exactly what will run (No has the focus); `then` only on Yes, and never in read-only mode."""

        def answered(yes: bool | None) -> None:
            if yes and not self.read_only:
                then()

        self.push_screen(ConfirmScreen(text, yes_label=yes_label, title=title), answered)

    # --- actions the panes and managers carry out ----------------------------------------------

    def action_failover(self) -> None:
        self.faults.failover(self.selected_pair())

    def action_failback(self) -> None:
        self.faults.failback(self.selected_pair())

    @while_mounted
    def on_fault_done(self, message: FaultDone) -> None:
        self.faults.done(message)
        self.action_refresh()

    def action_drill(self, values: dict[str, str] | None = None) -> None:
        self.panes["drill"].request_drill(values)

    def action_load(self) -> None:
        self.panes["drill"].request_load()

    def action_abort(self) -> None:
        self.panes["drill"].abort()

    # --- filter and command line ---------------------------------------------------------------

    def action_filter(self) -> None:
        self.prompt.open_filter(self.filter_text)

    def action_command_line(self) -> None:
        self.prompt.open_command(self.command_line.suggestions())

    def on_filter_typed(self, message: FilterTyped) -> None:
        self.set_filter(message.text)

    def on_prompt_closed(self, message: PromptClosed) -> None:
        self.set_active(self.active)
        if message.command.strip():
            self.run_command(message.command)

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        for pane in self.panes.values():
            pane.set_filter(self.filter_text)
        self.render_tabs()

    def run_command(self, text: str) -> bool:
        """Run one `:` command line; False (and a notification) when it was refused or bad."""
        return self.command_line.run(text)

    def switch_theme(self, name: str) -> bool:
        if name not in self.available_themes:
            self.notify(f"no theme {name!r}; known: {', '.join(sorted(self.available_themes))}",
                        severity="error", markup=False)
            return False
        self.theme = name
        return True

    # --- the action table: keys, palette, help -------------------------------------------------------

    def _owner(self, row: UiAction) -> App | Pane:
        return self if row.owner == "app" else self.panes[row.owner]

    def handler(self, row: UiAction) -> Callable[[], Any]:
        """What the row's key runs, as a function: the palette and `:` call it directly."""
        return functools.partial(getattr(self._owner(row), f"action_{row.action}"), *row.args)

    def offers(self, row: UiAction) -> bool:
        """Whether the row's action can run now (what its key's check_action says)."""
        return bool(self._owner(row).check_action(row.action, row.args))

    def key_for(self, binding_id: str, default: str = "") -> str:
        """The key in effect for a binding id (lab.toml [ui] keys applied), as the footer shows it."""
        row = actions.BY_ID.get(binding_id)
        key = self._keymap_ids.get(binding_id) or (row.key if row else default)
        return self.get_key_display(Binding(key.split(",")[0], "")) if key else default

    def action_help(self) -> None:
        self.push_screen(HelpScreen(actions.help_sections(self.key_for, self.read_only, self.lab),
                                    actions.help_footer(self.read_only)))

    # --- quit --------------------------------------------------------------------------------

    def action_quit_app(self) -> None:
        if not self.panes["drill"].stop_before_quit():
            self.call_later(self.action_quit)

    async def action_quit(self) -> None:
        self.poller.stop()
        if self.close_core:
            try:
                await asyncio.wait_for(self.core.close(), 5)
            except Exception:
                pass
        self.exit(0)

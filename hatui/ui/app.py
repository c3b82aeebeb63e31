"""The hatui terminal UI: one app over one core (`hatui.session_protocol.CoreProtocol`).

The app keeps the layout, pane switching, the theme, read-only mode and the wiring. Each concern
lives where it belongs: the panes own their data, workers and handlers (VMs, Drill, Charts, Log),
`polling.Poller` the cluster readings, `faults.Faults` faults and recoveries, `prompt.PromptBar`
the `/` and `:` line. Workers only post messages (`hatui.ui.messages`); handlers update widgets.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.events import DescendantFocus, Resize
from textual.widgets import Input

from hatui.collectors.severity import Severity
from hatui.drill.faults import FAULT_ACTIONS, RECOVERY
from hatui.session_protocol import CoreProtocol
from hatui.ui import commandline, model
from hatui.ui.charts_pane import ChartsPane
from hatui.ui.commandline import PANE_TITLES, PANES, Command, CommandError
from hatui.ui.drill_form import DrillForm
from hatui.ui.drill_pane import DrillPane
from hatui.ui.faults import Faults
from hatui.ui.log_pane import LogPane
from hatui.ui.messages import FaultDone, FilterTyped, PollFailed, PromptClosed, StatePolled, while_mounted
from hatui.ui.modals import ConfirmScreen, HelpScreen
from hatui.ui.panes import DrbdPane, HeartbeatPane, NodesPane, Pane, StatePane, severity_style
from hatui.ui.polling import Poller
from hatui.ui.prompt import PromptBar
from hatui.ui.theming import DEFAULT_THEME, load_themes, theme_dirs
from hatui.ui.vms_pane import VmsPane
from hatui.ui.widgets import KeyFooter, Quiet, TabBar, TitleBar

WIDE = (160, 48)  # at least this many columns and rows: panes side by side
BOTTOM_PANES = ("drill", "charts", "log")
# Actions that change the cluster: hidden and refused in read-only mode.
MUTATING_ACTIONS = frozenset({"failover", "failback", "drill", "load", "vm_power"})


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

    BINDINGS = [
        *[Binding(str(i), f"show_pane('{name}')", PANE_TITLES[name], show=False, id=f"pane.{name}")
          for i, name in enumerate(PANES, 1)],
        Binding("tab", "next_pane", "next pane", show=False, priority=True, id="pane.next"),
        Binding("shift+tab", "prev_pane", "previous pane", show=False, priority=True, id="pane.prev"),
        Binding("f", "failover", "failover", id="failover"),
        Binding("b", "failback", "failback", id="failback"),
        Binding("d", "drill", "drill", id="drill"),
        Binding("a", "abort", "abort drill", id="abort"),
        Binding("l", "load", "load", id="load"),
        Binding("slash", "filter", "filter", id="filter"),
        Binding("colon", "command_line", "cmd", id="command-line"),
        Binding("r", "refresh", "refresh", show=False, id="refresh"),
        Binding("question_mark", "help", "help", id="help"),
        Binding("q", "quit_app", "quit", id="quit"),
        Binding("ctrl+s", "screenshot", "screenshot", show=False, id="screenshot"),
    ]

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
        self._load_themes(theme, extra_theme_dirs or [])

        self.active = "nodes"
        self.bottom = "drill"
        self.wide = False
        self.filter_text = ""
        self.state = None
        self.poll_error: str | None = None
        self.tracker = model.TakeoverTracker()
        self.poller = Poller(self)
        self.faults = Faults(self)
        self._polls_done = 0
        self._keymap_ids: dict[str, str] = {}
        self.panes: dict[str, Pane] = {}

    def _load_themes(self, theme: str | None, extra_dirs: list[Path]) -> None:
        loaded = load_themes(theme_dirs(self.lab.path) + extra_dirs)
        self.theme_failures = list(loaded.failures)
        self.hatui_themes = [t.name for t in loaded.themes]
        for t in loaded.themes:
            self.register_theme(t)
        wanted = theme or self.lab.ui.theme or DEFAULT_THEME
        if wanted not in self.available_themes:
            self.theme_failures.append(f"theme {wanted!r} not found; using {DEFAULT_THEME}")
            wanted = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
        self.theme = wanted

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
        known = self.binding_ids()
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
        text = Text()
        for i, name in enumerate(PANES, 1):
            label = f" {i} {PANE_TITLES[name]} "
            if name == self.active:
                text.append(label, style="bold reverse")
            elif self.wide and (name not in BOTTOM_PANES or name == self.bottom):
                text.append(label, style="bold")
            else:
                text.append(label)
        extras = []
        if self.filter_text:
            extras.append(f"filter: {self.filter_text}")
        if self.panes and self.panes["drbd"].problems_only:
            extras.append("DRBD: problems only")
        if self.panes and self.panes["drill"].view.running:
            extras.append("LOAD RUNNING" if self.panes["drill"].view.is_load_run else "DRILL RUNNING")
        if extras:
            text.append("  " + "  ".join(extras), style="bold")
        self.query_one("#tabs", TabBar).show(text)

    def render_title(self) -> None:
        text = Text()
        text.append(" hatui ", style="bold")
        text.append(f" {self.lab.name} ")
        if self.state is not None:
            for severity, part in model.vip_summary(self.state):
                style = severity_style(self, severity) if severity > Severity.OK else ""
                text.append(" ")
                text.append(part, style=style)
        else:
            text.append(" waiting for the first reading…")
        if self.poll_error:
            text.append("  poll failed: ", style=severity_style(self, Severity.ALERT))
            text.append(self.poll_error)
        self.query_one("#title", TitleBar).show(text)

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
        if isinstance(focused, Input) and isinstance(focused.parent, DrillForm):
            inputs = list(focused.parent.query(Input))
            index = inputs.index(focused) + step
            if 0 <= index < len(inputs):
                inputs[index].focus()
                return True
        return False

    def selected_pair(self) -> str:
        return self.panes[self.active].selected_pair() or next(iter(self.lab.pairs))

    # --- read-only -----------------------------------------------------------------------------

    def allows(self, action: str) -> bool:
        """False for an action that changes the cluster, in read-only mode."""
        return not (self.read_only and action in MUTATING_ACTIONS)

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
        self.prompt.open_command(self.command_suggestions())

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

    def command_suggestions(self) -> list[str]:
        actions = [] if self.read_only else list(FAULT_ACTIONS) + list(RECOVERY.values())
        out = commandline.suggestions(list(self.lab.pairs), actions, sorted(self.available_themes))
        if self.read_only:
            out = [s for s in out if s.split()[0] not in commandline.MUTATING]
        return out

    def run_command(self, text: str) -> bool:
        """Run one `:` command line; False (and a notification) when it was refused or bad."""
        try:
            command = commandline.parse(text)
        except CommandError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return False
        if command.mutating and self.read_only:
            self.notify(f"read-only mode: '{command.name}' is not allowed", severity="warning", markup=False)
            return False
        return self._dispatch(command)

    def _dispatch(self, command: Command) -> bool:
        name, args = command.name, command.args
        if name == "fault":
            self.faults.inject(args[0], args[1], args[2] if len(args) > 2 else "master")
        elif name == "failback":
            pair = args[0] if args else self.selected_pair()
            if pair not in self.lab.pairs:
                self.notify(f"no pair {pair!r} (pairs: {', '.join(self.lab.pairs)})", severity="error", markup=False)
                return False
            self.faults.failback(pair)
        elif name == "drill":
            self.action_drill(command.options or None)
        elif name == "abort":
            self.action_abort()
        elif name == "load":
            self.action_load()
        elif name == "pane":
            self.set_active(args[0])
        elif name == "theme":
            return self.switch_theme(args[0])
        elif name == "filter":
            self.set_filter(args[0] if args else "")
        elif name == "problems":
            self.panes["drbd"].action_toggle_problems()
        elif name == "refresh":
            self.action_refresh()
        elif name == "help":
            self.action_help()
        elif name == "quit":
            self.call_later(self.action_quit_app)
        return True

    def switch_theme(self, name: str) -> bool:
        if name not in self.available_themes:
            self.notify(f"no theme {name!r}; known: {', '.join(sorted(self.available_themes))}",
                        severity="error", markup=False)
            return False
        self.theme = name
        return True

    # --- palette -----------------------------------------------------------------------------

    def palette_commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        out: list[tuple[str, str, Callable[[], Any]]] = []
        for i, name in enumerate(PANES, 1):
            out.append((f"Pane: {PANE_TITLES[name]}", f"show the {PANE_TITLES[name]} pane (key {i})",
                        lambda n=name: self.set_active(n)))
        themes = self.hatui_themes + sorted(set(self.available_themes) - set(self.hatui_themes))
        for theme in themes:
            out.append((f"Theme: {theme}", "switch the colour theme", lambda t=theme: self.switch_theme(t)))
        if not self.read_only:
            for pair in self.lab.pairs.values():
                for action in list(FAULT_ACTIONS) + list(RECOVERY.values()):
                    if action in ("stop-vm", "start-vm") and pair.stack != "virtual":
                        continue
                    for target in ("master", "slave"):
                        out.append((f"Fault: {pair.name} {action} {target}",
                                    "asks first: shows exactly what runs where",
                                    lambda p=pair.name, a=action, t=target: self.faults.inject(p, a, t)))
                out.append((f"Failback: {pair.name}", "undo the last fault (asks first)",
                            lambda p=pair.name: self.faults.failback(p)))
            out.append(("Drill: start", "with the Drill pane's parameters (asks first)", self.action_drill))
            out.append(("Load run", "plain load run on the selected pair's VIP (asks first)", self.action_load))
        if self.panes and self.panes["drill"].view.running:
            out.append(("Drill: abort", "stop the running drill (it recovers the cluster)", self.action_abort))
        out += [
            ("DRBD: problems only (toggle)", "hide healthy DRBD resources",
             self.panes["drbd"].action_toggle_problems),
            ("Filter rows…", "type to filter every table (/)", self.action_filter),
            ("Command line…", "the : command line", self.action_command_line),
            ("Refresh now", "poll the cluster now (r)", self.action_refresh),
            ("Help: keys", "every key (?)", self.action_help),
            ("Quit", "leave hatui (q)", self.action_quit_app),
        ]
        return out

    # --- help --------------------------------------------------------------------------------

    def binding_ids(self) -> dict[str, Binding]:
        out = {}
        for cls in (HatuiApp, DrbdPane, VmsPane, DrillPane):
            for binding in cls.BINDINGS:
                if isinstance(binding, Binding) and binding.id:
                    out[binding.id] = binding
        return out

    def key_for(self, binding_id: str, default: str = "") -> str:
        binding = self.binding_ids().get(binding_id)
        key = self._keymap_ids.get(binding_id) or (binding.key if binding else default)
        return self.get_key_display(Binding(key.split(",")[0], "")) if key else default

    def action_help(self) -> None:
        ids = self.binding_ids()

        def row(binding_id: str, what: str | None = None) -> tuple[str, str]:
            binding = ids[binding_id]
            return self.key_for(binding_id), what or binding.description

        panes = [row(f"pane.{name}", f"{PANE_TITLES[name]} pane") for name in PANES]
        panes += [row("pane.next", "next pane (also →)"), row("pane.prev", "previous pane (also ←)"),
                  ("↑ ↓ pgup pgdn", "move in a table")]
        actions = []
        if not self.read_only:
            actions += [row("failover", f"fail over the selected pair: {self.lab.drill.fault} on its "
                                        f"{self.lab.drill.fault_target} (asks first)"),
                        row("failback", "fail back: undo the last fault on the selected pair (asks first)"),
                        row("drill", "start a drill with the Drill pane's parameters (asks first)"),
                        row("abort", "abort the running drill or load run (the runner recovers the cluster)"),
                        row("load", "plain load run, no fault, at the Drill pane's first rate (asks first)"),
                        row("vm.stop", "VMs pane: power off the selected VM (asks first)"),
                        row("vm.start", "VMs pane: start the selected VM (asks first)")]
        actions += [row("drbd.problems", "DRBD pane: problems only"),
                    row("drill.edit", "Drill pane: edit the parameters (enter/escape: done)"),
                    row("refresh", "refresh now"),
                    row("screenshot", "save an SVG screenshot")]
        general = [row("filter", "filter every table (escape clears)"),
                   row("command-line", "command line (see below)"),
                   ("ctrl+p", "command palette: panes, themes, faults, drill…"),
                   row("help", "this help"), row("quit", "quit (asks first while a drill runs)"),
                   ("ctrl+q", "quit at once")]
        commands = [(f":{commandline.USAGE[name]}", "") for name in commandline.USAGE
                    if not (self.read_only and name in commandline.MUTATING)]
        footer = ("READ-ONLY: nothing that changes the cluster can run.\n" if self.read_only else
                  "Every fault, failback, VM power change and drill shows exactly what will run where "
                  "and defaults to No.\n")
        footer += "Keys can be changed in lab.toml: [ui] keys = { failover = \"F\" } (binding ids as in this list)."
        sections = [("Panes", panes), ("Actions", actions), ("General", general), ("Command line", commands)]
        self.push_screen(HelpScreen(sections, footer))

    # --- quit --------------------------------------------------------------------------------

    def action_quit_app(self) -> None:
        drill = self.panes["drill"]
        if drill.view.running and drill.stop_event is not None:
            def answered(yes: bool | None) -> None:
                if yes:
                    drill.quit_when_stopped = True
                    drill.abort()

            self.push_screen(ConfirmScreen("A drill is running. Stop it (the runner recovers the cluster "
                                           "first) and quit when it has stopped?",
                                           yes_label="Yes, stop and quit", title="Quit"), answered)
            return
        self.call_later(self.action_quit)

    async def action_quit(self) -> None:
        self.poller.stop()
        if self.close_core:
            try:
                await asyncio.wait_for(self.core.close(), 5)
            except Exception:
                pass
        self.exit(0)

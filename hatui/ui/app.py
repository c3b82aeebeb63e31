"""The hatui terminal UI: one app over one `Core` (or anything with the same surface).

Data flow: workers call the core (async, on the app's loop) and only post messages
(`hatui.ui.messages`); the app's handlers hand the data to the panes. Polls are chained: each
reading arms a one-shot timer for the next, so polls never overlap.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.css.query import NoMatches
from textual.events import DescendantFocus, Resize
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label

from hatui.collectors.severity import Severity
from hatui.session_protocol import CoreProtocol
from hatui.drill.faults import FAULT_ACTIONS, RECOVERY
from hatui.ui import commandline, model
from hatui.ui.commandline import PANE_TITLES, PANES, Command, CommandError
from hatui.ui.drill_pane import ChartsPane, DrillForm, DrillPane, plan_arguments
from hatui.ui.messages import (CommandLogged, DrillEnded, DrillEventsPending, FaultDone, JournalLoaded, PollFailed,
                               StatePolled, VmsListed)
from hatui.ui.modals import ConfirmScreen, HelpScreen
from hatui.ui.panes import DrbdPane, HeartbeatPane, LogPane, NodesPane, Pane, StatePane, VmsPane, severity_style
from hatui.ui.theming import DEFAULT_THEME, load_themes, theme_dirs
from hatui.ui.widgets import KeyFooter, Quiet, TabBar, TitleBar

WIDE = (160, 48)  # at least this many columns and rows: panes side by side
BOTTOM_PANES = ("drill", "charts", "log")
# Actions that change the cluster: hidden and refused in read-only mode.
MUTATING_ACTIONS = frozenset({"failover", "failback", "drill", "load", "vm_power"})
VM_POLL_EVERY = 5  # VM listing every 5 cluster refreshes
CHART_DELAY_S = 0.25  # the live chart is redrawn at most 4 times a second


def while_mounted(handler):
    """Skip a data handler once the app is shutting down (its widgets are gone)."""

    @functools.wraps(handler)
    def wrapper(self, *args, **kwargs):
        if self._closing or self._closed:
            return None
        try:
            return handler(self, *args, **kwargs)
        except NoMatches:
            if self._closing or self._closed or not self.is_running:
                return None
            raise

    return wrapper


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
        self.chart_delay_s = CHART_DELAY_S
        self.close_core = close_core
        self.load_journal_at_start = load_journal
        dirs = theme_dirs(self.lab.path) + list(extra_theme_dirs or [])
        loaded = load_themes(dirs)
        self.theme_failures = list(loaded.failures)
        self.hatui_themes = [t.name for t in loaded.themes]
        for t in loaded.themes:
            self.register_theme(t)
        wanted = theme or self.lab.ui.theme or DEFAULT_THEME
        if wanted not in self.available_themes:
            self.theme_failures.append(f"theme {wanted!r} not found; using {DEFAULT_THEME}")
            wanted = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
        self.theme = wanted

        self.active = "nodes"
        self.bottom = "drill"
        self.wide = False
        self.filter_text = ""
        self.state = None
        self.poll_error: str | None = None
        self.tracker = model.TakeoverTracker()
        self.last_fault: dict[str, tuple[str, str]] = {}  # pair -> (action, target) injected from the UI
        self.prompt_mode = ""
        self._polling = False
        self._poll_timer = None
        self._polls_done = 0
        self._vm_busy = False
        self._drill_buffer: collections.deque = collections.deque()
        self._drill_pending = False
        self._drill_stop: asyncio.Event | None = None
        self._chart_timer = None
        self._quit_after_drill = False
        self._keymap_ids: dict[str, str] = {}
        self.panes: dict[str, Pane] = {}
        self.core.command_listeners.append(self._on_command)

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
        with Horizontal(id="prompt"):
            yield Label(":", id="prompt-label")
            yield Input(id="prompt-input", compact=True)
        yield KeyFooter(id="footer")

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
        self.panes["vms"].show_vms(None, self._vm_status())
        self.panes["log"].add_events(list(self.core.commands))
        self.apply_layout(self.size.width, self.size.height)
        self.set_active("nodes")
        self.render_title()
        self.start_poll()
        if self.load_journal_at_start:
            self.load_journal()
        if self.vms_supported():
            self.start_vm_poll()

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
        if self.prompt_mode:
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
        if self.panes and getattr(self.panes.get("drbd"), "problems_only", False):
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

    # --- polling -----------------------------------------------------------------------------

    def start_poll(self) -> None:
        if self._polling:
            return
        self._polling = True
        self._poll_worker()

    def _poll_timeout(self) -> float:
        return max(2.0, 2 * self.refresh_s)

    @work(group="poll", exit_on_error=False)
    async def _poll_worker(self) -> None:
        try:
            state = await self.core.poll(timeout=self._poll_timeout())
        except Exception as exc:  # a bad reading must never take the console down
            self.post_message(PollFailed(f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(StatePolled(state))

    def _arm_poll(self) -> None:
        self._polling = False
        if self._poll_timer is not None:
            self._poll_timer.stop()
        self._poll_timer = self.set_timer(self.refresh_s, self.start_poll, name="poll")

    @while_mounted
    def on_state_polled(self, message: StatePolled) -> None:
        state = message.state
        self.state = state
        self.poll_error = None
        self._polls_done += 1
        for pair, takeover in self.tracker.observe(state):
            self.notify(f"{pair}: takeover {takeover.old} → {takeover.new}", timeout=6, markup=False)
        for pane in self.panes.values():
            if isinstance(pane, StatePane) and not isinstance(pane, VmsPane):
                pane.show_state(state)
        self.render_title()
        self._arm_poll()

    @while_mounted
    def on_poll_failed(self, message: PollFailed) -> None:
        self.poll_error = message.error
        self.render_title()
        self._arm_poll()

    def action_refresh(self) -> None:
        if not self._polling:
            if self._poll_timer is not None:
                self._poll_timer.stop()
            self.start_poll()
        if self.vms_supported() and not self._vm_busy:
            self.start_vm_poll()

    # --- VMs ---------------------------------------------------------------------------------

    def vms_supported(self) -> bool:
        return self.core.can_list_vms()

    def _vm_status(self) -> str:
        if self.lab.proxmox is None:
            return "Proxmox is not configured in lab.toml: there are no VMs to show."
        if not self.vms_supported():
            return ("Proxmox VM state is not available in this hatui yet; "
                    "the VMs below are as lab.toml describes them.")
        if self.read_only:
            return "VM state from the Proxmox API."
        return (f"VM state from the Proxmox API ({self.key_for('vm.stop', 'x')} stop, "
                f"{self.key_for('vm.start', 'o')} start; both ask first).")

    def start_vm_poll(self) -> None:
        if not self._vm_busy:
            self._vm_busy = True
            self._vm_worker()

    @work(group="vms", exit_on_error=False)
    async def _vm_worker(self) -> None:
        try:
            vms = await self.core.list_vms()
        except Exception as exc:
            self.post_message(VmsListed(error=f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(VmsListed(vms=list(vms or [])))

    @while_mounted
    def on_vms_listed(self, message: VmsListed) -> None:
        self._vm_busy = False
        pane = self.panes["vms"]
        if message.error:
            pane.show_vms(pane.vms, f"Proxmox not available: {message.error}")
        else:
            pane.show_vms(message.vms, self._vm_status())
        self.set_timer(self.refresh_s * VM_POLL_EVERY, self.start_vm_poll, name="vm-poll")

    # --- command log -------------------------------------------------------------------------

    def _on_command(self, event) -> None:
        """Core listener: may be called from anywhere; only posts."""
        self.post_message(CommandLogged(event))

    @while_mounted
    def on_command_logged(self, message: CommandLogged) -> None:
        self.panes["log"].add_events([message.event])

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
        pane = self.panes.get(self.active)
        pair = pane.selected_pair() if isinstance(pane, StatePane) else None
        return pair or next(iter(self.lab.pairs))

    # --- read-only -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MUTATING_ACTIONS and self.read_only:
            return False
        if action == "abort":
            return self.panes["drill"].view.running if self.panes else False
        return True

    def _refuse_if_read_only(self, what: str) -> bool:
        if self.read_only:
            self.notify(f"read-only mode: {what} is not allowed", severity="warning", markup=False)
            return True
        return False

    # --- faults --------------------------------------------------------------------------------

    def action_failover(self) -> None:
        pair = self.selected_pair()
        action = self.lab.drill.fault
        if action == "stop-vm" and self.lab.pairs[pair].stack != "virtual":
            action = "stop-heartbeat"
        self.request_fault(pair, action, self.lab.drill.fault_target, yes_label="Yes, fail over")

    def action_failback(self) -> None:
        pair = self.selected_pair()
        self.request_failback(pair)

    def request_failback(self, pair: str) -> None:
        action, target = self.last_fault.get(pair, (self.lab.drill.fault, self.lab.drill.fault_target))
        if action == "stop-vm" and self.lab.pairs[pair].stack != "virtual":
            action = "stop-heartbeat"
        self.request_fault(pair, RECOVERY.get(action, action), target, yes_label="Yes, fail back")

    def action_vm_power(self, kind: str) -> None:
        pane = self.panes["vms"]
        vm, pair = pane.selected_vm(), pane.selected_pair()
        if not vm or not pair:
            self.notify("select a VM first", severity="warning")
            return
        self.request_fault(pair, "stop-vm" if kind == "stop" else "start-vm", vm,
                           yes_label="Yes, power off" if kind == "stop" else "Yes, start")

    def request_fault(self, pair: str, action: str, target: str, *, yes_label: str = "Yes") -> None:
        """Plan (sends nothing), then ask; only Yes executes exactly the planned action."""
        if self._refuse_if_read_only(f"{action} on {pair}"):
            return
        try:
            fault = self.core.plan_fault(pair, action, target)
        except Exception as exc:
            self.notify(str(exc), severity="error", markup=False)
            return

        def answered(yes: bool | None) -> None:
            if yes and not self.read_only:
                self._execute_fault(fault)

        self.push_screen(ConfirmScreen(fault.confirmation, yes_label=yes_label,
                                       title=f"{action} on {fault.host} ({pair})"), answered)

    @work(group="fault", exit_on_error=False)
    async def _execute_fault(self, fault) -> None:
        if self.read_only:
            return
        try:
            outcome = await self.core.execute(fault)
        except Exception as exc:
            self.post_message(FaultDone(fault, error=f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(FaultDone(fault, outcome=outcome))

    @while_mounted
    def on_fault_done(self, message: FaultDone) -> None:
        fault = message.action
        if message.error or (message.outcome is not None and not message.outcome.ok):
            detail = message.error or message.outcome.detail
            self.notify(f"{fault.description} failed: {detail}", severity="error", timeout=10, markup=False)
        else:
            self.notify(f"done: {fault.description}. {fault.expect}", timeout=8, markup=False)
            if fault.action in FAULT_ACTIONS:
                target = "master" if fault.host == self.lab.pairs[fault.pair].master else (
                    "slave" if fault.host == self.lab.pairs[fault.pair].slave else fault.host)
                self.last_fault[fault.pair] = (fault.action, target)
            elif fault.action in RECOVERY.values():
                self.last_fault.pop(fault.pair, None)
        self.action_refresh()

    # --- drill -------------------------------------------------------------------------------

    def drill_form_values(self) -> dict[str, str]:
        return self.panes["drill"].values()

    def action_drill(self, values: dict[str, str] | None = None) -> None:
        if self._refuse_if_read_only("a drill"):
            return
        pane = self.panes["drill"]
        self.set_active("drill")
        if pane.view.running:
            self.notify("a drill is already running", severity="warning")
            return
        from hatui.drill.plan import make_plan

        try:
            if values:
                pane.set_values(values)
            plan = make_plan(self.lab, **plan_arguments(self.drill_form_values()))
            first = plan.runs[0]
            fault = self.core.plan_fault(first.pair, first.fault, first.fault_target)
        except Exception as exc:
            self.notify(f"cannot start the drill: {exc}", severity="error", timeout=10, markup=False)
            return
        minutes = plan.planned_seconds / 60
        pairs = sorted({r.pair for r in plan.runs})
        text = (f"Start a drill: {len(plan.runs)} run(s) on {', '.join(pairs)}; rates "
                f"{', '.join(f'{r:g}' for r in plan.rates)} conn/s x {plan.repetitions}, {plan.connections} "
                f"connections each (about {minutes:.0f} min of load).\n"
                f"Each run injects {first.fault} on the {first.fault_target} and recovers it. The first:\n\n"
                f"{fault.confirmation}")

        def answered(yes: bool | None) -> None:
            if yes and not self.read_only:
                self._start_drill(plan)

        self.push_screen(ConfirmScreen(text, yes_label="Yes, start the drill", title="Start a drill"), answered)

    def _start_drill(self, plan) -> None:
        pane = self.panes["drill"]
        pane.view.start(plan)
        pane.render_status()
        pane.replot()
        self.render_tabs()
        self.refresh_bindings()
        self._drill_stop = asyncio.Event()
        self._drill_worker(plan, self._drill_stop)

    @work(group="drill", exit_on_error=False)
    async def _drill_worker(self, plan, stop: asyncio.Event) -> None:
        try:
            result = await self.core.run_drill(plan, self.on_drill_event, stop)
        except Exception as exc:
            self.post_message(DrillEnded(error=f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(DrillEnded(result=result))

    def on_drill_event(self, event) -> None:
        """The runner's callback: buffer and post one coalescing marker (never blocks)."""
        self._drill_buffer.append(event)
        if not self._drill_pending:
            self._drill_pending = True
            self.post_message(DrillEventsPending())

    @while_mounted
    def on_drill_events_pending(self, _message: DrillEventsPending) -> None:
        self._drill_pending = False
        pane = self.panes["drill"]
        changed: set[str] = set()
        finished = []
        buffer = self._drill_buffer
        while buffer:
            event = buffer.popleft()
            changed |= pane.view.apply(event)
            if getattr(event, "kind", "") == "run-finished":
                finished.append(event.result)
        if "status" in changed:
            pane.render_status()
        if "results" in changed:
            pane.render_results()
            self.panes["charts"].add_results(finished, "this session")
        if "chart" in changed and self._chart_timer is None:
            self._chart_timer = self.set_timer(max(self.chart_delay_s, 0.01), self._replot_drill, name="chart")

    def _replot_drill(self) -> None:
        self._chart_timer = None
        self.panes["drill"].replot()

    @while_mounted
    def on_drill_ended(self, message: DrillEnded) -> None:
        self.on_drill_events_pending(DrillEventsPending())
        pane = self.panes["drill"]
        view = pane.view
        view.running = False
        if message.error:
            view.ended = f"failed: {message.error}"
            self.notify(f"drill failed: {message.error}", severity="error", timeout=10, markup=False)
        elif not view.ended:
            view.ended = "finished"
        outcome = message.result
        if isinstance(outcome, str):
            view.ended = outcome
        elif outcome is not None and getattr(outcome, "halted", None):
            view.ended = f"halted: {outcome.halted}"
        pane.render_status()
        self._drill_stop = None
        self.render_tabs()
        self.refresh_bindings()
        self.load_journal()
        if self._quit_after_drill:
            self.call_later(self.action_quit)

    def action_abort(self) -> None:
        if self._drill_stop is None:
            self.notify("no drill is running")
            return
        self._drill_stop.set()
        if self.panes["drill"].view.is_load_run:
            self.notify("stopping the load run", timeout=5)
            return
        self.notify("stopping the drill: the runner recovers the cluster first", timeout=8)

    # --- plain load run ----------------------------------------------------------------------

    def action_load(self) -> None:
        """A plain load run (no fault) against the selected pair's VIP, shown in the Drill console."""
        if self._refuse_if_read_only("a load run"):
            return
        pane = self.panes["drill"]
        self.set_active("drill")
        if pane.view.running:
            self.notify("a drill or load run is already running", severity="warning")
            return
        from hatui.ui import loadrun

        pair = self.lab.pairs[self.selected_pair()]
        try:
            args = plan_arguments(self.drill_form_values())
            rate = (args.get("rates") or self.lab.load.rates)[0]
            conns = args.get("conns", self.lab.load.connections)
            spec, probe = loadrun.make_specs(self.lab, pair, rate, conns, url=self.load_url(pair))
        except Exception as exc:
            self.notify(f"cannot start the load run: {exc}", severity="error", timeout=10, markup=False)
            return
        text = (f"Send {conns} connections at {rate:g} conn/s to {spec.url} (about {conns / rate:.0f} s), "
                f"with a probe request every {probe.interval * 1000:g} ms.\n"
                f"Nothing on the cluster is changed; the service behind {pair.vip_address} gets the load.")

        def answered(yes: bool | None) -> None:
            if yes and not self.read_only:
                self._start_load(pair, spec, probe, rate, conns)

        self.push_screen(ConfirmScreen(text, yes_label="Yes, send the load", title=f"Load run on {pair.name}"),
                         answered)

    def load_url(self, pair) -> str:
        from hatui.ui.loadrun import load_url

        return load_url(self.lab, pair)

    def _start_load(self, pair, spec, probe, rate, conns) -> None:
        pane = self.panes["drill"]
        pane.view.start(None)
        pane.render_status()
        self.render_tabs()
        self.refresh_bindings()
        self._drill_stop = asyncio.Event()
        self._load_worker(pair, spec, probe, rate, conns, self._drill_stop)

    @work(group="drill", exit_on_error=False)
    async def _load_worker(self, pair, spec, probe, rate, conns, stop: asyncio.Event) -> None:
        from hatui.ui.loadrun import LoadToDrillEvents, summary_line

        adapter = LoadToDrillEvents(pair, rate, conns)

        def listener(event) -> None:
            for converted in adapter.convert(event):
                self.on_drill_event(converted)

        try:
            summary = await self.core.run_load(spec, probe, listener, stop)
        except Exception as exc:
            self.post_message(DrillEnded(error=f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(DrillEnded(result=summary_line(summary)))

    # --- journal / charts --------------------------------------------------------------------

    def load_journal(self) -> None:
        self._journal_worker()

    @work(group="journal", exit_on_error=False, thread=True)
    def _journal_worker(self) -> None:
        path = Path(self.core.results_dir) / "journal.jsonl"
        try:
            results, problems = model.load_journal(path)
        except Exception as exc:  # unreadable journal: say so, keep going
            results, problems = [], [f"{path}: {exc}"]
        self.post_message(JournalLoaded(results, problems, str(path)))

    @while_mounted
    def on_journal_loaded(self, message: JournalLoaded) -> None:
        if message.results:
            self.panes["charts"].add_results(message.results, message.source)
        for problem in message.problems:
            self.notify(problem, severity="warning", markup=False)

    # --- filter and command line ---------------------------------------------------------------

    def _open_prompt(self, mode: str) -> None:
        self.prompt_mode = mode
        prompt = self.query_one("#prompt")
        prompt.add_class("-shown")
        self.query_one("#prompt-label", Label).update(":" if mode == "command" else "/")
        field = self.query_one("#prompt-input", Input)
        if mode == "command":
            field.suggester = SuggestFromList(self.command_suggestions(), case_sensitive=False)
            field.value = ""
        else:
            field.suggester = None
            field.value = self.filter_text
        field.focus()

    def _close_prompt(self) -> None:
        self.prompt_mode = ""
        self.query_one("#prompt").remove_class("-shown")
        self.set_active(self.active)

    def action_filter(self) -> None:
        self._open_prompt("filter")

    def action_command_line(self) -> None:
        self._open_prompt("command")

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        for pane in self.panes.values():
            pane.set_filter(self.filter_text)
        self.render_tabs()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "prompt-input" and self.prompt_mode == "filter":
            self.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "prompt-input":
            return
        mode, value = self.prompt_mode, event.value
        self._close_prompt()
        if mode == "command" and value.strip():
            self.run_command(value)

    def on_key(self, event) -> None:
        if event.key == "escape" and self.prompt_mode:
            event.stop()
            if self.prompt_mode == "filter":
                self.set_filter("")
            self._close_prompt()

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
            pair, action = args[0], args[1]
            target = args[2] if len(args) > 2 else "master"
            label = "Yes, fail back" if action in RECOVERY.values() else "Yes, inject the fault"
            self.request_fault(pair, action, target, yes_label=label)
        elif name == "failback":
            pair = args[0] if args else self.selected_pair()
            if pair not in self.lab.pairs:
                self.notify(f"no pair {pair!r} (pairs: {', '.join(self.lab.pairs)})", severity="error", markup=False)
                return False
            self.request_failback(pair)
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
            self.render_tabs()
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
                                    lambda p=pair.name, a=action, t=target: self.run_command(f"fault {p} {a} {t}")))
                out.append((f"Failback: {pair.name}", "undo the last fault (asks first)",
                            lambda p=pair.name: self.run_command(f"failback {p}")))
            out.append(("Drill: start", "with the Drill pane's parameters (asks first)", self.action_drill))
            out.append(("Load run", "plain load run on the selected pair's VIP (asks first)", self.action_load))
        if self.panes and self.panes["drill"].view.running:
            out.append(("Drill: abort", "stop the running drill (it recovers the cluster)", self.action_abort))
        out += [
            ("DRBD: problems only (toggle)", "hide healthy DRBD resources",
             lambda: self.run_command("problems")),
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
        if self.panes["drill"].view.running and self._drill_stop is not None:
            def answered(yes: bool | None) -> None:
                if yes:
                    self._quit_after_drill = True
                    self.action_abort()

            self.push_screen(ConfirmScreen("A drill is running. Stop it (the runner recovers the cluster "
                                           "first) and quit when it has stopped?",
                                           yes_label="Yes, stop and quit", title="Quit"), answered)
            return
        self.call_later(self.action_quit)

    async def action_quit(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
        if self._on_command in self.core.command_listeners:
            self.core.command_listeners.remove(self._on_command)
        if self.close_core:
            try:
                await asyncio.wait_for(self.core.close(), 5)
            except Exception:
                pass
        self.exit(0)

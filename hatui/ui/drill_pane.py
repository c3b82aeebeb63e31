"""The Drill pane: the parameter form, the live console (counters, per-second chart, finished
runs), and the drill and plain load run it starts (both ask first) and aborts. The runner's events
are buffered and drawn in batches; the chart is redrawn at most every `chart_delay_s`."""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Awaitable, Callable

from rich.text import Text
from textual.widgets import Input

from hatui.drill.events import DrillRunFinished
from hatui.drill.plan import make_plan
from hatui.ui import loadrun, model
from hatui.ui.drill_form import DrillForm, form_defaults, plan_arguments
from hatui.ui.drillview import DrillView
from hatui.ui.messages import DrillEnded, DrillEventsPending, while_mounted
from hatui.ui.modals import ConfirmScreen
from hatui.ui.panes import Pane, styled
from hatui.ui.widgets import LiveTable, Quiet, key_bindings

CHART_DELAY_S = 0.25  # the live chart is redrawn at most 4 times a second


class DrillPane(Pane):
    pane_id, title, number = "drill", "Drill", 5

    BINDINGS = key_bindings("drill")

    DEFAULT_CSS = """
    DrillPane #drill-status { height: auto; max-height: 4; padding: 0 1; text-wrap: nowrap;
                              text-overflow: ellipsis; }
    DrillPane RunChart { height: 1fr; min-height: 6; }
    DrillPane #drill-results { max-height: 7; }
    DrillPane.-running #drill-form { display: none; }
    """

    def __init__(self, lab) -> None:
        super().__init__()
        self.view = DrillView()
        self.form_values = form_defaults(lab)
        self.chart_delay_s = CHART_DELAY_S
        self.pending_events: collections.deque = collections.deque()  # from the runner, not drawn yet
        self._pending_posted = False
        self._chart_timer = None
        self.stop_event: asyncio.Event | None = None  # set: the running drill / load run stops
        self._load_run = False  # what runs is a plain load run
        self.quit_when_stopped = False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "edit":
            return not self.view.running
        return super().check_action(action, parameters)

    def build(self):
        from hatui.ui.charts import RunChart  # plotext only once a chart is shown

        yield DrillForm(self.form_values)
        yield Quiet("", id="drill-status")
        yield RunChart(id="drill-chart")
        yield LiveTable(model.RESULT_COLUMNS, id="drill-results")

    def after_build(self) -> None:
        self.render_status()
        self.render_results()
        self.replot()

    def values(self) -> dict[str, str]:
        """The drill parameters as edited (lab.toml's until the form is changed)."""
        if self.ready:
            self.form_values = self.query_one(DrillForm).values()
        return dict(self.form_values)

    def set_values(self, values: dict[str, str]) -> None:
        self.form_values.update(values)
        if self.ready:
            self.query_one(DrillForm).set_values(values)

    def focus_target(self):
        # Never an input: number keys must keep switching panes. `e` edits the parameters.
        return self.query_one("#drill-results", LiveTable) if self.ready else None

    def action_edit(self) -> None:
        if self.view.running:
            self.app.notify("the parameters apply to the next drill; this one is running", severity="warning")
            return
        if self.ready:
            self.query_one("#drill-stacks", Input).focus()

    def render_status(self) -> None:
        if not self.ready:
            return
        keys = self.app.key_for
        lines = self.view.status_lines(keys("drill", "d"), keys("abort", "a"))
        lines = [line.replace("e edits", f"{keys('drill.edit', 'e')} edits", 1) for line in lines]
        text = Text("\n".join(lines))
        if self.view.run is not None:
            text.stylize("bold", 0, len(lines[0]))
        self.query_one("#drill-status", Quiet).show(text)
        if self.view.running != self.has_class("-running"):
            self.set_class(self.view.running, "-running")
            self.refresh_bindings()

    def render_results(self) -> None:
        if not self.ready:
            return
        rows = model.result_rows(self.view.results)
        self.query_one("#drill-results", LiveTable).sync(styled(self.app, rows, column=9))

    def replot(self) -> None:
        if self.ready:
            self.query_one("#drill-chart").replot(self.view)

    def restyle(self) -> None:
        self.render_status()
        self.render_results()

    # --- a drill ---------------------------------------------------------------------------------

    def request_drill(self, values: dict[str, str] | None = None) -> None:
        """Plan a drill from the form (updated with `values` first), show its first fault, ask."""
        app = self.app
        if not self._can_start("a drill", "a drill is already running"):
            return
        try:
            if values:
                self.set_values(values)
            plan = make_plan(app.lab, **plan_arguments(self.values()))
            first = plan.runs[0]
            fault = app.core.plan_fault(first.pair, first.fault, first.fault_target)
        except Exception as exc:
            app.notify(f"cannot start the drill: {exc}", severity="error", timeout=10, markup=False)
            return
        minutes = plan.planned_seconds / 60
        pairs = sorted({r.pair for r in plan.runs})
        text = (f"Start a drill: {len(plan.runs)} run(s) on {', '.join(pairs)}; rates "
                f"{', '.join(f'{r:g}' for r in plan.rates)} conn/s x {plan.repetitions}, {plan.connections} "
                f"connections each (about {minutes:.0f} min of load).\n"
                f"Each run injects {first.fault} on the {first.fault_target} and recovers it. The first:\n\n"
                f"{fault.confirmation}")
        app.confirm(text, yes_label="Yes, start the drill", title="Start a drill", then=lambda: self.start_drill(plan))

    def start_drill(self, plan) -> None:
        stop = self._begin(plan, load_run=False)
        self.replot()
        self.run_worker(self._until_ended(self.app.core.run_drill(plan, self.on_drill_event, stop)),
                        group="drill", exit_on_error=False)

    # --- a plain load run ------------------------------------------------------------------------

    def request_load(self) -> None:
        """A plain load run (no fault) at the form's first rate against a pair's VIP; asks first."""
        app = self.app
        if not self._can_start("a load run", "a drill or load run is already running"):
            return
        pair = app.lab.pairs[app.selected_pair()]
        try:
            args = plan_arguments(self.values())
            rate = (args.get("rates") or app.lab.load.rates)[0]
            conns = args.get("conns", app.lab.load.connections)
            spec, probe = loadrun.make_specs(app.lab, pair, rate, conns, url=self.load_url(pair))
        except Exception as exc:
            app.notify(f"cannot start the load run: {exc}", severity="error", timeout=10, markup=False)
            return
        text = (f"Send {conns} connections at {rate:g} conn/s to {spec.url} (about {conns / rate:.0f} s), "
                f"with a probe request every {probe.interval * 1000:g} ms.\n"
                f"Nothing on the cluster is changed; the service behind {pair.vip_address} gets the load.")
        app.confirm(text, yes_label="Yes, send the load", title=f"Load run on {pair.name}",
                    then=lambda: self.start_load(pair, spec, probe, rate, conns))

    def load_url(self, pair) -> str:
        return loadrun.load_url(self.app.lab, pair)

    def start_load(self, pair, spec, probe, rate: float, conns: int) -> None:
        stop = self._begin(None, load_run=True)
        adapter = loadrun.LoadToDrillEvents(pair, rate, conns)

        def listener(event) -> None:  # the load engine's events, shown as a drill's
            for converted in adapter.convert(event):
                self.on_drill_event(converted)

        self.run_worker(self._until_ended(self.app.core.run_load(spec, probe, listener, stop), loadrun.summary_line),
                        group="drill", exit_on_error=False)

    # --- while it runs -----------------------------------------------------------------------------

    def _can_start(self, what: str, busy: str) -> bool:
        """Not in read-only mode, not while something runs; the Drill pane is shown either way."""
        if self.app.refuse_if_read_only(what):
            return False
        self.app.set_active("drill")
        if self.view.running:
            self.app.notify(busy, severity="warning")
            return False
        return True

    def _begin(self, plan, *, load_run: bool) -> asyncio.Event:
        self.view.start(plan)
        self.render_status()
        self.app.render_tabs()
        self.app.refresh_bindings()
        self._load_run = load_run
        self.stop_event = asyncio.Event()
        return self.stop_event

    async def _until_ended(self, running: Awaitable, describe: Callable[[Any], Any] | None = None) -> None:
        """The worker: wait for the drill or load run, then post how it ended."""
        try:
            result = await running
        except Exception as exc:
            self.post_message(DrillEnded(error=f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(DrillEnded(result=describe(result) if describe else result))

    def on_drill_event(self, event) -> None:
        """The runner's callback: buffer and post one coalescing marker (never blocks)."""
        self.pending_events.append(event)
        if not self._pending_posted:
            self._pending_posted = True
            self.post_message(DrillEventsPending())

    @while_mounted
    def on_drill_events_pending(self, _message: DrillEventsPending) -> None:
        self._pending_posted = False
        changed: set[str] = set()
        finished = []
        while self.pending_events:
            event = self.pending_events.popleft()
            changed |= self.view.apply(event)
            if isinstance(event, DrillRunFinished):
                finished.append(event.result)
        if "status" in changed:
            self.render_status()
        if "results" in changed:
            self.render_results()
            self.app.panes["charts"].add_results(finished, "this session")
        if "chart" in changed and self._chart_timer is None:
            self._chart_timer = self.set_timer(max(self.chart_delay_s, 0.01), self._replot_later, name="chart")

    def _replot_later(self) -> None:
        self._chart_timer = None
        self.replot()

    @while_mounted
    def on_drill_ended(self, message: DrillEnded) -> None:
        self.on_drill_events_pending(DrillEventsPending())  # what is still in the buffer
        view = self.view
        view.running = False
        if message.error:
            view.ended = f"failed: {message.error}"
            self.app.notify(f"drill failed: {message.error}", severity="error", timeout=10, markup=False)
        elif not view.ended:
            view.ended = "finished"
        outcome = message.result
        if isinstance(outcome, str):
            view.ended = outcome
        elif outcome is not None and outcome.halted:
            view.ended = f"halted: {outcome.halted}"
        self.render_status()
        self.stop_event = None
        self.app.render_tabs()
        self.app.refresh_bindings()
        self.app.panes["charts"].load_journal()
        if self.quit_when_stopped:
            self.app.call_later(self.app.action_quit)

    def abort(self) -> None:
        if self.stop_event is None:
            self.app.notify("no drill is running")
            return
        self.stop_event.set()
        if self._load_run:
            self.app.notify("stopping the load run", timeout=5)
        else:
            self.app.notify("stopping the drill: the runner recovers the cluster first", timeout=8)

    def stop_before_quit(self) -> bool:
        """While a drill runs, quitting asks first, then stops it and quits once it has stopped.
        False: nothing runs, quit now."""
        if not (self.view.running and self.stop_event is not None):
            return False

        def answered(yes: bool | None) -> None:
            if yes:
                self.quit_when_stopped = True
                self.abort()

        self.app.push_screen(ConfirmScreen("A drill is running. Stop it (the runner recovers the cluster first) "
                                           "and quit when it has stopped?", yes_label="Yes, stop and quit",
                                           title="Quit"), answered)
        return True


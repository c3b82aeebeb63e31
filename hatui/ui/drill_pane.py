"""The drill console (live counters, per-second chart, finished runs) and the Charts pane.
The plot widgets live in `hatui.ui.charts`, imported when a chart is first shown."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label

from hatui.config import FAULTS, STACKS
from hatui.drill.results import aggregate
from hatui.ui import format as fmt
from hatui.ui import model
from hatui.ui.drillview import DrillView
from hatui.ui.panes import Pane, styled
from hatui.ui.widgets import LiveTable, Quiet

FORM_FIELDS = ("stacks", "rates", "repeat", "conns", "fault")


def form_defaults(lab) -> dict[str, str]:
    """The drill parameters of lab.toml, as the form shows them."""
    return {"stacks": " ".join(lab.drill.stacks), "rates": " ".join(f"{r:g}" for r in lab.load.rates),
            "repeat": str(lab.load.repetitions), "conns": str(lab.load.connections), "fault": lab.drill.fault}


AGG_COLUMNS = [("stack", "stack"), ("phase", "phase"), ("rate", "rate"), ("runs", "runs"),
               ("avail mean", "avail"), ("± sd", "avail_sd"), ("downtime mean", "down"), ("± sd", "down_sd")]


class DrillForm(Horizontal):
    DEFAULT_CSS = """
    DrillForm { height: auto; width: 1fr; layout: grid; grid-size: 6; grid-columns: auto 1fr auto 1fr auto 1fr;
                grid-gutter: 0 1; padding: 0 1; }
    DrillForm Label { padding: 0 0 0 0; color: $text-muted; }
    DrillForm Input { width: 1fr; }
    """

    BINDINGS = [Binding("escape", "leave", "done editing", show=True)]

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(id="drill-form")
        self.initial = dict(values)

    def action_leave(self) -> None:
        pane = next((a for a in self.ancestors if isinstance(a, DrillPane)), None)
        if pane is not None:
            pane.query_one("#drill-results", LiveTable).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_leave()

    def compose(self) -> ComposeResult:
        suggesters = {"stacks": SuggestFromList(["native", "virtual", "native virtual"]),
                      "fault": SuggestFromList(list(FAULTS))}
        for name in FORM_FIELDS:
            yield Label(name)
            yield Input(self.initial.get(name, ""), id=f"drill-{name}", compact=True,
                        suggester=suggesters.get(name), select_on_focus=False)

    def values(self) -> dict[str, str]:
        return {name: self.query_one(f"#drill-{name}", Input).value for name in FORM_FIELDS}

    def set_values(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self.query_one(f"#drill-{name}", Input).value = value


def plan_arguments(values: dict[str, str]) -> dict[str, Any]:
    """Form / `:drill` values -> make_plan keyword arguments; ValueError names the bad field."""
    out: dict[str, Any] = {}
    if values.get("stacks", "").strip():
        stacks = fmt.words(values["stacks"])
        bad = [s for s in stacks if s not in STACKS]
        if bad:
            raise ValueError(f"stacks: unknown {', '.join(bad)} (native, virtual)")
        out["stacks"] = stacks
    if values.get("rates", "").strip():
        try:
            out["rates"] = fmt.numbers(values["rates"])
        except ValueError as exc:
            raise ValueError(f"rates: {exc}") from None
    for key, arg in (("repeat", "repeat"), ("conns", "conns")):
        text = values.get(key, "").strip()
        if text:
            try:
                out[arg] = int(text)
            except ValueError:
                raise ValueError(f"{key}: not a whole number: {text!r}") from None
    if values.get("fault", "").strip():
        out["fault"] = values["fault"].strip()
    return out


class DrillPane(Pane):
    pane_id, title, number = "drill", "Drill", 5

    BINDINGS = [Binding("e", "edit", "edit", id="drill.edit")]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "edit":
            return not self.view.running
        return True

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
        keys = getattr(self.app, "key_for", lambda _id, default: default)
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


class ChartsPane(Pane):
    pane_id, title, number = "charts", "Charts", 6

    DEFAULT_CSS = """
    ChartsPane AvailabilityChart { height: 1fr; min-height: 8; }
    ChartsPane #charts-table { max-height: 10; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.results: dict[str, Any] = {}
        self.sources: list[str] = []

    def build(self):
        from hatui.ui.charts import AvailabilityChart

        yield AvailabilityChart(id="charts-chart")
        yield LiveTable(AGG_COLUMNS, id="charts-table")
        yield Quiet("", id="charts-hint", classes="hint")

    def add_results(self, results: list, source: str | None = None) -> None:
        for run in results:
            self.results[run.run_id] = run
        if source and source not in self.sources:
            self.sources.append(source)
        self.render_results()

    def render_results(self) -> None:
        if not self.ready:
            return
        aggregates = aggregate(list(self.results.values()))
        self.query_one("#charts-chart").replot(aggregates)
        rows = []
        for agg in aggregates:
            a, d = agg.availability_pct, agg.downtime_ms
            rows.append(model.TableRow(f"{agg.stack}/{agg.phase}/{agg.rate:g}", None, [
                agg.stack, agg.phase, f"{agg.rate:g}", f"{agg.valid_runs}/{agg.runs}",
                fmt.percent(a.mean, 2), f"{a.stddev:.2f}" if a.stddev is not None else "-",
                fmt.millis(d.mean), f"{d.stddev / 1000:.2f} s" if d.stddev is not None else "-"]))
        self.query_one("#charts-table", LiveTable).sync(styled(self.app, rows, None))
        where = " + ".join(self.sources) if self.sources else "no journal found; runs of this session appear here"
        self.query_one("#charts-hint", Quiet).show(f"{len(self.results)} finished run(s) from {where}")

    def restyle(self) -> None:
        self.render_results()


__all__ = ["DrillPane", "ChartsPane", "DrillForm", "plan_arguments"]

"""The Charts pane: availability and downtime per stack, phase and rate over every finished run,
from the results journal (read at start and after each drill) and this session's drills. The plot
widget lives in `hatui.ui.charts`, imported when the chart is first shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work

from hatui.drill.results import aggregate
from hatui.ui import format as fmt
from hatui.ui import model
from hatui.ui.messages import JournalLoaded, while_mounted
from hatui.ui.panes import Pane, styled
from hatui.ui.widgets import LiveTable, Quiet

AGG_COLUMNS = [("stack", "stack"), ("phase", "phase"), ("rate", "rate"), ("runs", "runs"),
               ("avail mean", "avail"), ("± sd", "avail_sd"), ("downtime mean", "down"), ("± sd", "down_sd")]


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

    def load_journal(self) -> None:
        self._read_journal(Path(self.app.core.results_dir) / "journal.jsonl")

    @work(group="journal", exit_on_error=False, thread=True)
    def _read_journal(self, path: Path) -> None:
        try:
            results, problems = model.load_journal(path)
        except Exception as exc:  # unreadable journal: say so, keep going
            results, problems = [], [f"{path}: {exc}"]
        self.post_message(JournalLoaded(results, problems, str(path)))

    @while_mounted
    def on_journal_loaded(self, message: JournalLoaded) -> None:
        if message.results:
            self.add_results(message.results, message.source)
        for problem in message.problems:
            self.app.notify(problem, severity="warning", markup=False)

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


"""Plot widgets (plotext through textual-plotext): the live per-second chart of a run and the
availability-vs-rate chart. Imported lazily: plotext costs start-up time."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from hatui.ui.drillview import FAILBACK_MARK, FAULT_MARK, DrillView


class RunChart(PlotextPlot):
    """Successes and errors per second of the current run, fault (F) and failback (B) marked."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.view: DrillView | None = None

    def replot(self, view: DrillView) -> None:
        self.view = view
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        planned = view.planned_s()
        xs = view.seconds
        if xs:
            plt.plot(xs, view.success_s, label="success/s", marker="braille")
            failed = [(x, y) for x, y in zip(xs, view.errors_s) if y]
            if failed:
                plt.scatter([x for x, _ in failed], [y for _, y in failed], label="errors/s", marker="x")
        top = max(view.success_s + view.errors_s + [1.0]) * 1.15
        marks = []
        for mark, letter in ((FAULT_MARK, "F"), (FAILBACK_MARK, "B")):
            at = view.marks.get(mark)
            if at is not None:
                plt.vline(at)
                plt.text(letter, at, top * 0.97)
                marks.append(f"{letter} {mark} at {at:.1f} s")
        plt.title("per second" + (f"   ({', '.join(marks)})" if marks else ""))
        plt.xlim(0, max(planned or 0, xs[-1] if xs else 0, 10))
        plt.ylim(0, top)
        self.refresh()


class AvailabilityChart(PlotextPlot):
    """Availability vs rate, one line per stack and phase (means over repetitions)."""

    MARKERS = ("o", "x", "+", "*", "#", "@")

    def replot(self, aggregates: list) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        series: dict[tuple[str, str], list] = {}
        for agg in aggregates:
            if agg.availability_pct.mean is not None:
                series.setdefault((agg.stack, agg.phase), []).append((agg.rate, agg.availability_pct.mean))
        lowest = 100.0
        for i, ((stack, phase), points) in enumerate(sorted(series.items())):
            points.sort()
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            lowest = min(lowest, *ys)
            plt.plot(xs, ys, label=f"{stack} {phase}", marker=self.MARKERS[i % len(self.MARKERS)])
        plt.title("availability % vs rate (conn/s)" if series else "availability % vs rate: no finished run yet")
        plt.ylim(max(0.0, lowest - 2), 100.5)
        plt.xlabel("conn/s")
        self.refresh()

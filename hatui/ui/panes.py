"""The pane base classes and the cluster-reading panes: Nodes, DRBD, Heartbeat. VMs, Drill, Charts
and Log live in their own modules, with the workers that feed them.

Each pane renders rows built by `hatui.ui.model` into `LiveTable`s (updated in place) and a
`Quiet` notes area. The cluster-reading panes get each reading from the app (`show_state`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget

from hatui.ui import model
from hatui.ui.widgets import LiveTable, Quiet, key_bindings, severity_style

def styled(app, rows: Iterable[model.TableRow], column: int | None = 0) -> list[tuple[str, list[Any]]]:
    out = []
    for row in rows:
        cells: list[Any] = [Text(c) for c in row.cells]
        if column is not None and row.severity is not None and cells:
            cells[column] = Text(row.cells[column], style=severity_style(app, row.severity))
        out.append((row.key, cells))
    return out


def notes_text(app, notes: list[model.Note], limit: int = 12) -> Text:
    text = Text()
    for i, note in enumerate(notes[:limit]):
        if i:
            text.append("\n")
        text.append(f"{model.fmt.mark(note.severity):>2}", style=severity_style(app, note.severity))
        text.append(f" {note.text}")
    if len(notes) > limit:
        text.append(f"\n   … {len(notes) - limit} more")
    return text


class Pane(Vertical):
    """One pane: a number key, a title, tables that follow the filter.

    A pane's widgets are built the first time it is shown (`ensure_built`): panes keep their
    data themselves and draw it once ready, so hidden panes cost nothing at start-up.
    """

    pane_id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    number: ClassVar[int] = 0

    DEFAULT_CSS = """
    Pane { height: 1fr; }
    Pane .notes { height: auto; max-height: 8; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    Pane .hint { height: auto; color: $text-muted; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__(id=self.pane_id, classes="pane")
        self.border_title = f"{self.number} {self.title}"
        self.built = False  # build scheduled
        self.ready = False  # widgets mounted
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield from ()

    def build(self) -> Iterable[Widget]:
        """The pane's widgets (mounted on first show)."""
        yield from ()

    def ensure_built(self) -> None:
        if not self.built:
            self.built = True
            # after the next refresh: the app's frame (bars, borders) is drawn first
            self.call_after_refresh(self._build)

    async def _build(self) -> None:
        await self.mount_all(list(self.build()))
        if self._closing or self.app._closing or not self.children:
            return  # the app is shutting down
        self.ready = True
        for table in self.query(LiveTable):
            table.set_filter(self.filter_text)
        self.after_build()
        self.app.pane_ready(self.pane_id)

    def after_build(self) -> None:
        """Draw the data received while the pane was not built yet."""
        self.restyle()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.app.allows(action)  # read-only mode refuses the pane's mutating keys too

    def focus_target(self) -> Widget | None:
        if not self.ready:
            return None
        for table in self.query(LiveTable):
            if table.can_focus:
                return table
        return None

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        if self.ready:
            for table in self.query(LiveTable):
                table.set_filter(text)

    def restyle(self) -> None:
        """Theme changed: draw the last data again with the new colours."""

    def selected_key(self) -> str | None:
        target = self.focus_target()
        return target.current_key() if isinstance(target, LiveTable) else None

    def selected_pair(self) -> str | None:
        """The pair of the row under the cursor (None: this pane has no such row)."""
        return None


class StatePane(Pane):
    """A pane that renders cluster readings."""

    def __init__(self) -> None:
        super().__init__()
        self.state = None

    def show_state(self, state) -> None:
        self.state = state
        if self.ready:
            self.render_state()

    def render_state(self) -> None:
        raise NotImplementedError

    def restyle(self) -> None:
        if self.state is not None and self.ready:
            self.render_state()


class NodesPane(StatePane):
    pane_id, title, number = "nodes", "Nodes", 1

    def build(self) -> Iterable[Widget]:
        yield LiveTable(model.NODE_COLUMNS, id="nodes-table")
        yield Quiet("waiting for the first reading…", id="nodes-notes", classes="notes")

    def render_state(self) -> None:
        self.query_one(LiveTable).sync(styled(self.app, model.node_rows(self.state, self.app.lab)))
        notes = model.node_notes(self.state)
        self.query_one("#nodes-notes", Quiet).show(
            notes_text(self.app, notes) if notes else Text("all nodes OK"))

    def selected_pair(self) -> str | None:
        key = self.selected_key()
        if key and self.state is not None and key in self.state.nodes:
            return self.state.nodes[key].pair
        return None


class DrbdPane(StatePane):
    pane_id, title, number = "drbd", "DRBD", 2
    BINDINGS = key_bindings("drbd")

    def __init__(self) -> None:
        super().__init__()
        self.problems_only = False

    def build(self) -> Iterable[Widget]:
        yield LiveTable(model.DRBD_COLUMNS, id="drbd-table")
        yield Quiet("", id="drbd-notes", classes="notes")
        yield Quiet("", id="drbd-hint", classes="hint")

    def after_build(self) -> None:
        self._hint()
        self.restyle()

    def _hint(self) -> None:
        if not self.ready:
            return
        self.query_one("#drbd-hint", Quiet).show(
            "showing problems only (P: show all)" if self.problems_only else "")

    def render_state(self) -> None:
        self.query_one(LiveTable).sync(styled(self.app, model.drbd_rows(self.state, self.problems_only)))
        notes = model.drbd_notes(self.state, self.problems_only)
        self.query_one("#drbd-notes", Quiet).show(notes_text(self.app, notes) if notes else Text(""))

    def action_toggle_problems(self) -> None:
        self.set_problems_only(not self.problems_only)

    def set_problems_only(self, value: bool) -> None:
        self.problems_only = value
        self._hint()
        self.app.render_tabs()
        self.restyle()

    def selected_pair(self) -> str | None:
        key = self.selected_key()
        if key and self.state is not None:
            node = self.state.nodes.get(key.split("/")[0])
            return node.pair if node else None
        return None


class HeartbeatPane(StatePane):
    pane_id, title, number = "heartbeat", "Heartbeat", 3

    def __init__(self) -> None:
        super().__init__()
        self.tracker: model.TakeoverTracker | None = None

    def build(self) -> Iterable[Widget]:
        yield LiveTable(model.HB_PAIR_COLUMNS, id="hb-pairs")
        yield Quiet("", id="hb-details", classes="notes")
        yield LiveTable(model.HB_RESOURCE_COLUMNS, id="hb-resources", can_focus=False)

    def render_state(self) -> None:
        self.query_one("#hb-pairs", LiveTable).sync(
            styled(self.app, model.heartbeat_pair_rows(self.state, self.tracker)))
        self.query_one("#hb-resources", LiveTable).sync(
            styled(self.app, model.heartbeat_resource_rows(self.state), None))
        self._details()

    def _details(self) -> None:
        """ha.cf checks and latest log events of the pair under the cursor."""
        notes = model.heartbeat_details(self.state, self.selected_pair())
        self.query_one("#hb-details", Quiet).show(notes_text(self.app, notes) if notes else Text(""))

    def on_data_table_row_highlighted(self, event) -> None:
        if self.ready and self.state is not None:
            self._details()

    def selected_pair(self) -> str | None:
        return self.selected_key()

"""The Log pane: every command hatui sent (host, exit status, duration, the command), as the core
reports them. The core may call its listener from anywhere: the listener only posts."""

from __future__ import annotations

from typing import Any, Iterable

from rich.text import Text
from textual.widget import Widget

from hatui.collectors.severity import Severity
from hatui.ui import model
from hatui.ui.messages import CommandLogged, while_mounted
from hatui.ui.panes import Pane
from hatui.ui.widgets import LiveTable, Quiet, severity_style

MAX_LOG_ROWS = 1000


class LogPane(Pane):
    """Every command hatui sent: host, exit status, duration, the command."""

    pane_id, title, number = "log", "Log", 7

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self.seq = 0

    def build(self) -> Iterable[Widget]:
        yield LiveTable(model.LOG_COLUMNS, id="log-table")
        yield Quiet("no command sent yet", id="log-hint", classes="hint")

    def on_mount(self) -> None:
        core = self.app.core
        self.add_events(list(core.commands))
        core.command_listeners.append(self._on_command)

    def on_unmount(self) -> None:
        if self._on_command in self.app.core.command_listeners:
            self.app.core.command_listeners.remove(self._on_command)

    def _on_command(self, event) -> None:
        self.post_message(CommandLogged(event))

    @while_mounted
    def on_command_logged(self, message: CommandLogged) -> None:
        self.add_events([message.event])

    def add_events(self, events: Iterable[Any]) -> None:
        for event in events:
            self.seq += 1
            self.rows.append((str(self.seq), model.log_cells(event)))
        del self.rows[:-MAX_LOG_ROWS]
        self.render_rows()

    def render_rows(self) -> None:
        if not self.ready:
            return
        table = self.query_one(LiveTable)
        follow = not table.row_keys or table.cursor_row >= len(table.row_keys) - 1
        cells = []
        for key, row in self.rows:
            failed = row[1] != "0"
            style = severity_style(self.app, Severity.ALERT if row[1] == "ERR" else Severity.WARN) if failed else ""
            cells.append((key, [Text(row[0]), Text(row[1], style=style), Text(row[2]), Text(row[3])]))
        table.sync(cells)
        if follow and table.row_keys:
            table.move_cursor(row=len(table.row_keys) - 1, animate=False)
        self.query_one("#log-hint", Quiet).show(
            f"{len(self.rows)} command(s), newest last" if self.rows else "no command sent yet")

    def restyle(self) -> None:
        self.render_rows()

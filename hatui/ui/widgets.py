"""Small widgets shared by the panes: the live table, the title bar and the tab bar."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable, Static

from hatui.collectors.severity import Severity
from hatui.ui import actions, model

Row = tuple[str, Sequence[Any]]  # (row key, cells)


def severity_style(app, severity: Severity | None) -> str:
    """Colour from the theme's sev-* variables, plus bold / reverse so it survives NO_COLOR."""
    if severity is None:
        return ""
    variables = app.theme_variables
    if severity == Severity.OK:
        return variables.get("sev-ok", "green")
    if severity == Severity.WARN:
        return f"bold {variables.get('sev-warn', 'yellow')}"
    return f"bold reverse {variables.get('sev-alert', 'red')}"


def key_bindings(owner: str) -> list[Binding]:
    """The key bindings of `owner` (the app or a pane id), from the action table."""
    return [Binding(row.key, row.binding_action, row.footer or row.help, show=bool(row.footer),
                    priority=row.priority, id=row.id) for row in actions.keyed(owner)]


def cell_text(value: Any) -> str:
    return value.plain if isinstance(value, Text) else str(value)


class LiveTable(DataTable):
    """A DataTable of keyed rows, updated in place.

    `sync(rows)` compares with what is shown: changed cells are updated with `update_cell`,
    vanished rows are removed and new rows appended, so nothing flickers and the cursor stays
    on its row. Only a change of row order rebuilds the table (cursor and scroll kept by key).
    A text filter (`filter_text`) hides rows that do not contain it.
    """

    DEFAULT_CSS = """
    LiveTable { height: auto; max-height: 100%; }
    """

    # Left/right switch panes (tables here are read row by row); the rest as DataTable.
    BINDINGS = [
        Binding("left", "app.prev_pane", "previous pane", show=False),
        Binding("right", "app.next_pane", "next pane", show=False),
    ]

    def __init__(self, columns: Sequence[tuple[str, str]], *, id: str | None = None,
                 classes: str | None = None, can_focus: bool = True):
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False,
                         show_cursor=can_focus)
        self.can_focus = can_focus
        self._column_spec = list(columns)
        self._shown: dict[str, tuple] = {}
        self._order: list[str] = []
        self._all_rows: list[Row] = []
        self.filter_text = ""
        for label, key in self._column_spec:
            self.add_column(label, key=key)

    @property
    def row_keys(self) -> list[str]:
        return list(self._order)

    def current_key(self) -> str | None:
        if not self._order or not self.show_cursor:
            return None
        row = min(max(self.cursor_row, 0), len(self._order) - 1)
        return self._order[row]

    def shown_cells(self, key: str) -> tuple | None:
        return self._shown.get(key)

    def set_filter(self, text: str) -> None:
        text = text.strip().lower()
        if text != self.filter_text:
            self.filter_text = text
            self.sync(self._all_rows)

    def _visible(self, rows: Iterable[Row]) -> list[Row]:
        if not self.filter_text:
            return list(rows)
        return [(k, c) for k, c in rows if self.filter_text in " ".join(cell_text(x) for x in c).lower()]

    def sync(self, rows: Iterable[Row]) -> None:
        self._all_rows = [(k, tuple(c if isinstance(c, Text) else Text(str(c)) for c in cells))
                          for k, cells in rows]
        wanted = self._visible(self._all_rows)
        keys = [k for k, _ in wanted]
        wanted_set = set(keys)
        kept = [k for k in self._order if k in wanted_set]
        old_set = set(self._order)
        in_wanted_order = [k for k in keys if k in old_set]
        new_keys = [k for k in keys if k not in old_set]
        appendable = kept == in_wanted_order and (
            not new_keys or not kept or keys.index(new_keys[0]) > keys.index(kept[-1]))
        if not appendable:
            self._rebuild(wanted)
            return
        for key in self._order:
            if key not in wanted_set:
                self.remove_row(key)
                del self._shown[key]
        columns = [key for _, key in self._column_spec]
        for key, cells in wanted:
            old = self._shown.get(key)
            if old is None:
                self.add_row(*cells, key=key)
            elif old != cells:
                for column, new, previous in zip(columns, cells, old):
                    if new != previous:
                        self.update_cell(key, column, new, update_width=True)
            self._shown[key] = cells
        self._order = keys

    def _rebuild(self, wanted: list[Row]) -> None:
        current = self.current_key()
        scroll_y = self.scroll_y
        self.clear()
        self._shown.clear()
        for key, cells in wanted:
            self.add_row(*cells, key=key)
            self._shown[key] = cells
        self._order = [k for k, _ in wanted]
        if current in self._shown:
            self.move_cursor(row=self._order.index(current), animate=False, scroll=False)
        self.scroll_to(y=scroll_y, animate=False)


class Quiet(Static):
    """A Static that only repaints when its text changed (data refreshes every second)."""

    def __init__(self, text: str | Text = "", **kwargs):
        kwargs.setdefault("markup", False)
        super().__init__(text, **kwargs)
        self._last: Any = text

    def show(self, text: str | Text) -> None:
        if text != self._last:
            self._last = text
            self.update(text)


class TitleBar(Quiet):
    """The top line: lab, who holds each VIP, RW / READ-ONLY. Plain text only (no markup)."""

    def show_reading(self, lab_name: str, state, poll_error: str | None) -> None:
        text = Text()
        text.append(" hatui ", style="bold")
        text.append(f" {lab_name} ")
        if state is not None:
            for severity, part in model.vip_summary(state):
                style = severity_style(self.app, severity) if severity > Severity.OK else ""
                text.append(" ")
                text.append(part, style=style)
        else:
            text.append(" waiting for the first reading…")
        if poll_error:
            text.append("  poll failed: ", style=severity_style(self.app, Severity.ALERT))
            text.append(poll_error)
        self.show(text)

    DEFAULT_CSS = """
    TitleBar { height: 1; width: 1fr; background: $panel; color: $foreground; }
    """


class TabBar(Quiet):
    """`1 Nodes  2 DRBD ...`: which pane is shown; also the active filter."""

    def show_panes(self, active: str, shown: Iterable[str], extras: list[str]) -> None:
        """`active` reversed, the others on screen (`shown`) bold, then the `extras` (filter...)."""
        text = Text()
        for i, name in enumerate(actions.PANES, 1):
            style = "bold reverse" if name == active else ("bold" if name in shown else "")
            text.append(f" {i} {actions.PANE_TITLES[name]} ", style=style)
        if extras:
            text.append("  " + "  ".join(extras), style="bold")
        self.show(text)

    DEFAULT_CSS = """
    TabBar { height: 1; width: 1fr; }
    """


class KeyFooter(Quiet):
    """The keys of the focused pane and the app, in one line of text. The pinned keys of the action
    table (help, quit) stay at the end however narrow the terminal: the keys before them give way
    (whole, marked …).

    Textual's Footer rebuilds a widget per key on every focus change; with panes switching on
    every number key that cost a visible delay, so this draws plain text and only when the
    bindings actually changed.
    """

    DEFAULT_CSS = """
    KeyFooter { height: 1; width: 1fr; background: $footer-background; color: $footer-foreground;
                text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._changed)
        self.call_after_refresh(self.redraw)

    def _changed(self, _screen) -> None:
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        variables = self.app.theme_variables
        key_style = f"bold {variables.get('footer-key-foreground', variables.get('accent', ''))}".strip()
        keys: list[Text] = []
        pinned: list[Text] = []
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding, enabled = active.binding, active.enabled
            if not binding.show or not enabled or binding.action in seen:
                continue
            seen.add(binding.action)
            shown = Text.assemble((self.app.get_key_display(binding), key_style), f" {binding.description}")
            (pinned if binding.id in actions.PINNED_IDS else keys).append(shown)
        self.show(fit_keys(keys, pinned, self.size.width))


def fit_keys(keys: list[Text], pinned: list[Text], width: int) -> Text:
    """`keys` then `pinned`, two spaces apart, in `width` cells: keys are dropped from the end
    (an … says so) until the pinned ones fit."""
    gap = Text("  ")
    text = gap.join(keys + pinned)
    if not width or text.cell_len <= width:
        return text
    keys = list(keys)
    while keys and gap.join(keys + [Text("…")] + pinned).cell_len > width:
        keys.pop()
    return gap.join(keys + [Text("…")] + pinned)

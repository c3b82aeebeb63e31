"""Modal screens: the confirmation (defaults to No) and the key help overlay."""

from __future__ import annotations

import textwrap

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Shows exactly what will run and where. No has the focus: Enter or Escape says No."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > #dialog {
        width: auto; max-width: 96%; min-width: 50; height: auto; max-height: 90%;
        border: thick $error; background: $surface; padding: 1 2;
    }
    ConfirmScreen #title { text-style: bold; color: $error; margin-bottom: 1; }
    ConfirmScreen #text { width: auto; max-width: 100%; }
    ConfirmScreen #buttons { height: auto; width: 100%; align-horizontal: right; margin-top: 1; }
    ConfirmScreen Button { margin-left: 2; min-width: 8; }
    """

    BINDINGS = [
        Binding("escape,n", "answer(False)", "No", show=False),
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("left,right", "app.focus_next", show=False),
    ]

    def __init__(self, text: str, *, yes_label: str = "Yes", title: str = "Confirm"):
        super().__init__()
        self.text = text
        self.yes_label = yes_label
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.title_text, id="title", markup=False)
            yield Static(self.text, id="text", markup=False)
            with Horizontal(id="buttons"):
                yield Button("No", id="no", variant="primary", compact=True)
                yield Button(self.yes_label, id="yes", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class HelpScreen(ModalScreen[None]):
    """Every key, grouped; the keys shown are the ones in effect (lab.toml [ui] keys applied)."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 78; max-width: 100%; height: auto; max-height: 100%;
        border: round $primary; background: $surface; padding: 0 1;
    }
    """

    AUTO_FOCUS = "*"
    BINDINGS = [Binding("escape,q,question_mark", "dismiss_help", "close", show=False)]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]], footer: str = ""):
        super().__init__()
        self.sections = sections
        self.footer = footer

    def compose(self) -> ComposeResult:
        text = Text()
        for title, rows in self.sections:
            text.append(f"{title}\n", style="bold underline")
            for keys, what in rows:
                text.append(f"  {keys:<16}", style="bold")
                lines = textwrap.wrap(what, 54) or [""]
                text.append(lines[0] + "\n")
                for more in lines[1:]:
                    text.append(" " * 18 + more + "\n")
            text.append("\n")
        if self.footer:
            text.append(self.footer)
        with VerticalScroll():
            yield Static(text, markup=False, id="help-text")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)

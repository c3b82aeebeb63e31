"""The bottom prompt: `/` filters every table as you type, `:` takes one command line (run on
enter). Escape closes it; escape on the filter also clears the filter. The prompt only posts
`FilterTyped` / `PromptClosed`; the app applies the filter and runs the command."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import Key
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label

from hatui.ui.messages import FilterTyped, PromptClosed


class PromptBar(Horizontal):
    def __init__(self) -> None:
        super().__init__(id="prompt")
        self.mode = ""  # "", "filter" or "command"

    def compose(self) -> ComposeResult:
        yield Label(":", id="prompt-label")
        yield Input(id="prompt-input", compact=True)

    def open_filter(self, text: str) -> None:
        self._open("filter", "/", text, None)

    def open_command(self, suggestions: list[str]) -> None:
        self._open("command", ":", "", SuggestFromList(suggestions, case_sensitive=False))

    def _open(self, mode: str, label: str, value: str, suggester: SuggestFromList | None) -> None:
        self.mode = mode
        self.add_class("-shown")
        self.query_one("#prompt-label", Label).update(label)
        field = self.query_one("#prompt-input", Input)
        field.suggester = suggester
        field.value = value
        field.focus()

    def _close(self, command: str = "") -> None:
        self.mode = ""
        self.remove_class("-shown")
        self.post_message(PromptClosed(command))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.mode == "filter":
            self.post_message(FilterTyped(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._close(event.value if self.mode == "command" else "")

    def on_key(self, event: Key) -> None:
        if event.key == "escape" and self.mode:
            event.stop()
            if self.mode == "filter":
                self.post_message(FilterTyped(""))
            self._close()

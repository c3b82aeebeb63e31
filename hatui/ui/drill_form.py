"""The Drill pane's parameter form (stacks, rates, repeat, conns, fault) and its reading into
`make_plan` arguments (`plan_arguments`, also used by `:drill key=value ...`)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label

from hatui.config import FAULTS, STACKS
from hatui.ui import format as fmt
from hatui.ui.widgets import LiveTable

FORM_FIELDS = ("stacks", "rates", "repeat", "conns", "fault")


def form_defaults(lab) -> dict[str, str]:
    """The drill parameters of lab.toml, as the form shows them."""
    return {"stacks": " ".join(lab.drill.stacks), "rates": " ".join(f"{r:g}" for r in lab.load.rates),
            "repeat": str(lab.load.repetitions), "conns": str(lab.load.connections), "fault": lab.drill.fault}


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
        """Back to the drill pane's results table (the form sits in the Drill pane)."""
        self.parent.query_one("#drill-results", LiveTable).focus()

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

    def step(self, field: Input, step: int) -> bool:
        """Focus the next (+1) or previous (-1) field; False past either end (tab changes pane then)."""
        fields = list(self.query(Input))
        index = fields.index(field) + step
        if 0 <= index < len(fields):
            fields[index].focus()
            return True
        return False

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



"""hatui's commands in the command palette (ctrl+p): every row of the action table that has a
palette title and can run now, every theme, and a fault or failback per pair. Each entry calls a
function directly (nothing is spelled as a command line and parsed again)."""

from __future__ import annotations

import functools
from typing import Any, Callable

from textual.command import DiscoveryHit, Hit, Provider

from hatui import config
from hatui.ui.actions import ACTIONS, COMMANDS

PaletteEntry = tuple[str, str, Callable[[], Any]]  # title, help, what it runs


def palette_commands(app) -> list[PaletteEntry]:
    out: list[PaletteEntry] = [
        (row.palette, row.palette_help.format(key=app.key_for(row.id)), app.handler(row))
        for row in ACTIONS if row.palette and app.offers(row)]
    themes = app.hatui_themes + sorted(set(app.available_themes) - set(app.hatui_themes))
    out += [(f"Theme: {theme}", "switch the colour theme", functools.partial(app.switch_theme, theme))
            for theme in themes]
    if not app.refuses(COMMANDS["fault"]):
        for pair in app.lab.pairs.values():
            for action in config.ACTIONS:
                if action in ("stop-vm", "start-vm") and pair.stack != "virtual":
                    continue
                for target in ("master", "slave"):
                    out.append((f"Fault: {pair.name} {action} {target}", "asks first: shows exactly what runs where",
                                functools.partial(app.faults.inject, pair.name, action, target)))
    if not app.refuses(COMMANDS["failback"]):
        out += [(f"Failback: {pair}", "undo the last fault (asks first)", functools.partial(app.faults.failback, pair))
                for pair in app.lab.pairs]
    return out


class HatuiCommands(Provider):
    """hatui's commands in the palette (ctrl+p): panes, themes, faults, drill, filter..."""

    async def discover(self):
        for title, help_text, callback in palette_commands(self.app):
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str):
        matcher = self.matcher(query)
        for title, help_text, callback in palette_commands(self.app):
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)

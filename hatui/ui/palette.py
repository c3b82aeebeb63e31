"""hatui's commands in the command palette (ctrl+p). The app lists them (`palette_commands`)."""

from __future__ import annotations

from textual.command import DiscoveryHit, Hit, Provider


class HatuiCommands(Provider):
    """hatui's commands in the palette (ctrl+p): panes, themes, faults, drill, filter..."""

    async def discover(self):
        for title, help_text, callback in self.app.palette_commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str):
        matcher = self.matcher(query)
        for title, help_text, callback in self.app.palette_commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)

"""The `:` command line (no Textual): parsing, completion, and `CommandRunner`, which carries a
line out on the app. The commands, their usage, aliases and word counts come from the action table
(`hatui.ui.actions`).

    :fault PAIR ACTION [master|slave|HOST]   inject a fault or a recovery (asks first)
    :failback [PAIR]                          undo the last fault on PAIR (asks first)
    :drill [stacks=..] [rates=..] [repeat=N] [conns=N] [fault=NAME]   start a drill (asks first)
    :abort                                    stop the running drill (it recovers the cluster)
    :load                                     plain load run
    :pane NAME|N      :theme NAME      :filter [TEXT]      :problems
    :refresh          :help            :quit
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from hatui.config import ACTIONS
from hatui.ui.actions import ALIASES, COMMANDS, PANE_TITLES, PANES, usage

DRILL_OPTIONS = ("stacks", "rates", "repeat", "conns", "fault")


class CommandError(ValueError):
    pass


@dataclass
class Command:
    name: str
    args: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def mutating(self) -> bool:
        return COMMANDS[self.name].mutating


def parse(text: str) -> Command:
    text = text.strip()
    if text.startswith(":"):
        text = text[1:].strip()
    if not text:
        raise CommandError("empty command")
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise CommandError(f"cannot read the command: {exc}") from None
    name = ALIASES.get(words[0].lower(), words[0].lower())
    if name not in COMMANDS:
        raise CommandError(f"unknown command {words[0]!r} (known: {', '.join(COMMANDS)})")
    args = words[1:]
    command = Command(name)
    if name == "drill":
        for word in args:
            key, sep, value = word.partition("=")
            if not sep or key not in DRILL_OPTIONS:
                raise CommandError(f"drill options are key=value with key in {', '.join(DRILL_OPTIONS)}; got {word!r}")
            command.options[key] = value
        return command
    least, most = COMMANDS[name].nargs
    if not least <= len(args) <= most:
        raise CommandError(f"usage: {usage(name)}")
    if name == "pane":
        args = [pane_name(args[0])]
    elif name == "filter":
        args = [" ".join(args)] if args else []
    command.args = args
    return command


def pane_name(word: str) -> str:
    w = word.lower()
    if w.isdigit() and 1 <= int(w) <= len(PANES):
        return PANES[int(w) - 1]
    for name in PANES:
        if name == w or PANE_TITLES[name].lower() == w:
            return name
    matches = [name for name in PANES if name.startswith(w)]
    if len(matches) == 1:
        return matches[0]
    raise CommandError(f"no pane {word!r} (panes: {', '.join(PANES)} or 1-{len(PANES)})")


def suggestions(pairs: list[str], actions: list[str], themes: list[str], commands: list[str]) -> list[str]:
    """Whole command lines for the input's completion, for `commands` in the action table's order
    (the first line that starts with what was typed is the one offered)."""
    words = {"pane": [f"pane {p}" for p in PANES], "theme": [f"theme {t}" for t in themes],
             "fault": [f"fault {p} {a} master" for p in pairs for a in actions],
             "failback": [f"failback {p}" for p in pairs], "filter": ["filter "]}
    return [line for name in commands for line in words.get(name, [name])]


class CommandRunner:
    """Runs `:` lines on the app. A command that takes words has its method here; the others run
    their action-table row's action, as their key does."""

    def __init__(self, app) -> None:
        self.app = app
        self.with_words = {"fault": self.fault, "failback": self.failback, "drill": self.drill,
                           "pane": self.pane, "theme": self.theme, "filter": self.filter}

    def suggestions(self) -> list[str]:
        app = self.app
        commands = [name for name, row in COMMANDS.items() if not app.refuses(row)]
        faults = list(ACTIONS)
        return suggestions(list(app.lab.pairs), faults, sorted(app.available_themes), commands)

    def run(self, text: str) -> bool:
        """False (and a notification) when the line was refused or bad."""
        app = self.app
        try:
            command = parse(text)
        except CommandError as exc:
            app.notify(str(exc), severity="error", markup=False)
            return False
        if app.refuses(COMMANDS[command.name]):
            app.notify(f"read-only mode: '{command.name}' is not allowed", severity="warning", markup=False)
            return False
        if command.name in self.with_words:
            return self.with_words[command.name](command)
        app.handler(COMMANDS[command.name])()
        return True

    def fault(self, command: Command) -> bool:
        pair, action, *target = command.args
        self.app.faults.inject(pair, action, *target)
        return True

    def failback(self, command: Command) -> bool:
        app = self.app
        pair = command.args[0] if command.args else app.selected_pair()
        if pair not in app.lab.pairs:
            app.notify(f"no pair {pair!r} (pairs: {', '.join(app.lab.pairs)})", severity="error", markup=False)
            return False
        app.faults.failback(pair)
        return True

    def drill(self, command: Command) -> bool:
        self.app.panes["drill"].request_drill(command.options or None)
        return True

    def pane(self, command: Command) -> bool:
        self.app.set_active(command.args[0])
        return True

    def theme(self, command: Command) -> bool:
        return self.app.switch_theme(command.args[0])

    def filter(self, command: Command) -> bool:
        self.app.set_filter(command.args[0] if command.args else "")
        return True

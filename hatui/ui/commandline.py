"""The `:` command line: parsing only (no Textual). The app carries the commands out.

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

PANES = ("nodes", "drbd", "heartbeat", "vms", "drill", "charts", "log")
PANE_TITLES = {"nodes": "Nodes", "drbd": "DRBD", "heartbeat": "Heartbeat", "vms": "VMs", "drill": "Drill",
               "charts": "Charts", "log": "Log"}

USAGE = {
    "fault": "fault PAIR ACTION [master|slave|HOST]",
    "failback": "failback [PAIR]",
    "drill": "drill [stacks=native,virtual] [rates=10,20] [repeat=N] [conns=N] [fault=NAME]",
    "abort": "abort",
    "load": "load",
    "pane": "pane NAME|1-7",
    "theme": "theme NAME",
    "filter": "filter [TEXT]",
    "problems": "problems",
    "refresh": "refresh",
    "help": "help",
    "quit": "quit",
}
# Commands that change the cluster: refused (and not offered) in read-only mode.
MUTATING = frozenset({"fault", "failback", "drill", "load"})
ALIASES = {"q": "quit", "h": "help", "f": "fault", "b": "failback", "p": "pane", "t": "theme", "r": "refresh"}
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
        return self.name in MUTATING


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
    if name not in USAGE:
        raise CommandError(f"unknown command {words[0]!r} (known: {', '.join(USAGE)})")
    args = words[1:]
    command = Command(name)
    if name == "drill":
        for word in args:
            key, sep, value = word.partition("=")
            if not sep or key not in DRILL_OPTIONS:
                raise CommandError(f"drill options are key=value with key in {', '.join(DRILL_OPTIONS)}; got {word!r}")
            command.options[key] = value
        return command
    if name == "fault":
        if len(args) not in (2, 3):
            raise CommandError(f"usage: {USAGE['fault']}")
    elif name in ("pane", "theme"):
        if len(args) != 1:
            raise CommandError(f"usage: {USAGE[name]}")
        if name == "pane":
            args = [pane_name(args[0])]
    elif name == "failback":
        if len(args) > 1:
            raise CommandError(f"usage: {USAGE['failback']}")
    elif name == "filter":
        args = [" ".join(args)] if args else []
    elif args:
        raise CommandError(f"usage: {USAGE[name]}")
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


def suggestions(pairs: list[str], actions: list[str], themes: list[str]) -> list[str]:
    """Whole command lines for the input's completion."""
    out = [f"pane {p}" for p in PANES] + [f"theme {t}" for t in themes]
    out += [f"fault {p} {a} master" for p in pairs for a in actions]
    out += [f"failback {p}" for p in pairs]
    out += ["drill", "abort", "load", "filter ", "problems", "refresh", "help", "quit"]
    return out

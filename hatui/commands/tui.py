"""The terminal UI: `hatui [--lab FILE] [--theme NAME] [--read-only]` (no subcommand).

Textual is imported only inside `run()`, so `hatui --help` and the headless modes stay fast
and Textual-free.
"""

from __future__ import annotations

import argparse
import sys

from hatui.commands import add_mode_option
from hatui.errors import EXIT_USAGE

MODE = "the terminal UI (hatui with no command)"


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("terminal UI (hatui with no command)")
    add_mode_option(group, MODE, "--theme", metavar="NAME",
                    help="colour theme: hatui-dark (default), hatui-light, hatui-contrast, hatui-amber, "
                         "or one from themes/*.toml next to the lab file")
    add_mode_option(group, MODE, "--read-only", action="store_true",
                    help="observe only: every action that changes the cluster is removed")


def claims(args: argparse.Namespace) -> bool:
    return getattr(args, "command", None) is None and not getattr(args, "export", None)


def run(args: argparse.Namespace) -> int:
    from hatui.config import load_lab

    lab = load_lab(args.lab)
    if not sys.stdout.isatty() and not sys.stdin.isatty():
        print("hatui: the terminal UI needs a terminal (use `hatui status` or `hatui export DIR`)",
              file=sys.stderr)
        return EXIT_USAGE

    from hatui.core import Core
    from hatui.ui.app import HatuiApp

    core = Core(lab, read_only=args.read_only)
    app = HatuiApp(core, theme=args.theme, read_only=args.read_only, close_core=True)
    app.run()
    return int(app.return_code or 0)

"""Command line entry point.

Each subcommand lives in its own module under `hatui.commands` and exposes
`register(subparsers)`, which adds its parser and sets `func` (args -> exit code).
Top-level modes (`--export`, and the TUI when no subcommand is given) are handled here.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hatui import __version__
from hatui.errors import EXIT_USAGE, HatuiError

# Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES = [
    "hatui.commands.check",
    "hatui.commands.lab",
    "hatui.commands.load",
    "hatui.commands.status",
    "hatui.commands.vms",
]

DEFAULT_LAB = "lab.toml"


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our usage code (2) and a one-line message."""

    def error(self, message: str) -> None:  # pragma: no cover - exercised through main()
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"hatui: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hatui",
        description="Run and measure high-availability failover drills (Heartbeat, DRBD, Proxmox VE).",
        epilog="Without a command, hatui opens the terminal UI on the lab. "
        "Exit codes: 0 ok, 1 a drill broke a threshold, 2 usage or config error, 3 refused by a safety check.",
    )
    parser.add_argument("--version", action="version", version=f"hatui {__version__}")
    parser.add_argument("--lab", default=DEFAULT_LAB, metavar="FILE", help="lab description (default: ./lab.toml)")
    add_top_level_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def add_top_level_options(parser: argparse.ArgumentParser) -> None:
    """Options of the no-subcommand modes (TUI, --export). Extended by later features."""
    for name in TOP_LEVEL_MODULES:
        importlib.import_module(name).add_options(parser)


# Modules that add top-level options and may claim the run (`claims(args) -> bool`, `run(args)`).
TOP_LEVEL_MODULES: list[str] = [
    "hatui.commands.export",
    "hatui.commands.tui",
]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "func", None) is not None:
            return int(args.func(args) or 0)
        for name in TOP_LEVEL_MODULES:
            module = importlib.import_module(name)
            if module.claims(args):
                return int(module.run(args) or 0)
        parser.print_help()
        return 0
    except HatuiError as exc:
        print(f"hatui: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hatui: interrupted", file=sys.stderr)
        return 130

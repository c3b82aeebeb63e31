"""Command line entry point.

Each subcommand lives in its own module under `hatui.commands` and exposes
`register(subparsers)`, which adds its parser and sets `func` (args -> exit code).
Top-level modes (`--export`, and the TUI when no subcommand is given) are handled here,
and so are the errors every command may raise (one message, never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hatui import __version__
from hatui.commands import error_fields, examples, print_json
from hatui.config import ConfigError
from hatui.errors import EXIT_USAGE, HatuiError, UsageError

# Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES = [
    "hatui.commands.check",
    "hatui.commands.export",
    "hatui.commands.lab",
    "hatui.commands.load",
    "hatui.commands.report",
    "hatui.commands.status",
    "hatui.commands.vms",
    "hatui.commands.completion",
]

# Modules that add top-level options and may claim the run (`claims(args) -> bool`, `run(args)`, `MODE`).
TOP_LEVEL_MODULES: list[str] = [
    "hatui.commands.export",
    "hatui.commands.tui",
]

DEFAULT_LAB = "lab.toml"

DESCRIPTION = """\
Run and measure high-availability failover drills (Heartbeat, DRBD, Proxmox VE).
Without a command, hatui opens the terminal UI on the lab."""

EPILOG = examples(
    "hatui                              the terminal UI on ./lab.toml",
    "hatui check                        validate lab.toml, show the drill plan",
    "hatui export results/study --stack both",
    "hatui report results/study         write its reports again from its journal",
    "hatui COMMAND --help               a command's options and examples",
    more="Exit codes: 0 ok, 1 a drill broke a threshold, 2 usage or config error,\n"
         "3 refused by a safety check.")


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our usage code (2) and keeps the examples' lines in --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # pragma: no cover - exercised through main()
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"hatui: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hatui", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"hatui {__version__}")
    parser.add_argument("--lab", default=DEFAULT_LAB, metavar="FILE", help="lab description (default: ./lab.toml)")
    for name in TOP_LEVEL_MODULES:
        importlib.import_module(name).add_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _chosen(args: argparse.Namespace):
    """(run, mode): the subcommand's function (mode None), or the top-level mode that claims the run."""
    if args.command is not None:
        return args.func, None
    for name in TOP_LEVEL_MODULES:
        module = importlib.import_module(name)
        if module.claims(args):
            return module.run, module.MODE
    raise AssertionError("the terminal UI claims every run without a command")  # pragma: no cover


def _refuse_ignored_mode_flags(args: argparse.Namespace, mode: str | None) -> None:
    """A mode option next to a command or mode that ignores it: CI must not silently run the wrong thing."""
    for flag, flag_mode in getattr(args, "mode_flags", []):
        if args.command is not None:
            raise UsageError(f"{flag} is a top-level option of {flag_mode} and does nothing for "
                             f"`hatui {args.command}`; a command's own options go after its name")
        if flag_mode != mode:
            raise UsageError(f"{flag} is an option of {flag_mode} and does nothing for {mode}")


def _print_error(args: argparse.Namespace, exc: HatuiError) -> None:
    """A JSON object under --json (on commands with a schema), else the message on stderr."""
    if getattr(args, "json", False) and getattr(args, "schema", None):
        print_json({"schema": args.schema, "ok": False, **error_fields(exc)})
    elif isinstance(exc, ConfigError):
        for line in exc.lines():
            print(line, file=sys.stderr)
        print(f"hatui: {len(exc.problems)} problem(s) in {exc.file}", file=sys.stderr)
    else:
        print(f"hatui: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run, mode = _chosen(args)
        _refuse_ignored_mode_flags(args, mode)
        return int(run(args) or 0)
    except HatuiError as exc:
        _print_error(args, exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hatui: interrupted", file=sys.stderr)
        return 130

"""CLI subcommands: one module each, each with `register(subparsers)`."""

from __future__ import annotations

import argparse
import json
import sys

from hatui.config import ConfigError
from hatui.errors import HatuiError


def add_lab_option(parser: argparse.ArgumentParser) -> None:
    """`--lab FILE` after the subcommand too; SUPPRESS keeps the top-level value when absent."""
    parser.add_argument("--lab", default=argparse.SUPPRESS, metavar="FILE", help="lab description (default: ./lab.toml)")


def examples(*lines: str, more: str = "") -> str:
    """The epilog of a command's --help: its examples, one a line, then `more` (kept as written)."""
    text = "Example:" if len(lines) == 1 else "Examples:"
    text += "".join(f"\n  {line}" for line in lines)
    return f"{text}\n\n{more}" if more else text


def add_json_option(parser: argparse.ArgumentParser, schema: str) -> None:
    """`--json`: machine-readable output; errors too become a JSON object of `schema` (see cli.main)."""
    parser.add_argument("--json", action="store_true", help=f"machine-readable output (schema {schema})")
    parser.set_defaults(schema=schema)


def print_json(data: dict) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    print()


def error_fields(exc: HatuiError) -> dict:
    """An error for JSON output: message, exit code, and the details some errors carry."""
    if isinstance(exc, ConfigError):
        out = {"error": f"{len(exc.problems)} problem(s) in {exc.file}",
               "problems": [{"file": exc.file, "line": p.line, "path": p.path, "message": p.message}
                            for p in exc.problems]}
    else:
        out = {"error": str(exc)}
    for name in ("upid", "log_tail", "differences"):  # a failed Proxmox task and its log; how a VM differs
        if getattr(exc, name, None):
            out[name] = getattr(exc, name)
    return {**out, "exit_code": exc.exit_code}


class ModeOption(argparse.Action):
    """A top-level option of a mode that runs without a command (the TUI, `--export DIR`).

    Stores its value like "store" (or True when `nargs=0`) and notes `(flag, mode)` in
    `args.mode_flags`, so that cli.main can refuse it where it would be silently ignored.
    """

    def __init__(self, option_strings, dest, mode: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.mode = mode

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True if self.nargs == 0 else values)
        namespace.mode_flags = [*getattr(namespace, "mode_flags", []), (self.option_strings[0], self.mode)]


def add_mode_option(group, mode: str, *flags: str, **kwargs) -> None:
    """`group.add_argument` for a ModeOption; `action="store_true"` gives a flag."""
    if kwargs.pop("action", None) == "store_true":
        kwargs.update(nargs=0, default=False)
    group.add_argument(*flags, action=ModeOption, mode=mode, **kwargs)

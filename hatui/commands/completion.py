"""`hatui completion bash|zsh`: a shell completion script generated from the parser by shtab.

shtab is imported only here, so the CLI's start-up does not pay for it.
"""

from __future__ import annotations

import argparse

from hatui.commands import examples
from hatui.errors import EXIT_OK

SHELLS = ("bash", "zsh")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "completion", help="print a shell completion script (bash or zsh)",
        description="Print a completion script for hatui's commands and options to stdout.\n"
                    "bash: source it, or save it as a bash-completion file; zsh: save it as _hatui\n"
                    "in a directory on $fpath.",
        epilog=examples('eval "$(hatui completion bash)"',
                        "hatui completion bash > ~/.local/share/bash-completion/completions/hatui",
                        'hatui completion zsh > "${fpath[1]}/_hatui"'))
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shtab

    from hatui.cli import build_parser

    parser = build_parser()
    _complete_paths(parser, shtab)
    print(shtab.complete(parser, shell=args.shell))
    return EXIT_OK


def _complete_paths(parser: argparse.ArgumentParser, shtab) -> None:
    """FILE arguments complete file names, DIR arguments directory names, in every subcommand."""
    for action in parser._actions:
        if action.metavar == "FILE":
            action.complete = shtab.FILE
        elif action.metavar == "DIR":
            action.complete = shtab.DIRECTORY
        if isinstance(action.choices, dict):  # a subcommand's parsers
            for sub in action.choices.values():
                _complete_paths(sub, shtab)

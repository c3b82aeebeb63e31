"""CLI subcommands: one module each, each with `register(subparsers)`."""

from __future__ import annotations

import argparse


def add_lab_option(parser: argparse.ArgumentParser) -> None:
    """`--lab FILE` after the subcommand too; SUPPRESS keeps the top-level value when absent."""
    parser.add_argument("--lab", default=argparse.SUPPRESS, metavar="FILE", help="lab description (default: ./lab.toml)")

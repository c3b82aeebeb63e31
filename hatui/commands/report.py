"""`hatui report DIR`: write an export's reports again from DIR/journal.jsonl alone (no lab, no lab.toml)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hatui.commands import examples
from hatui.errors import EXIT_OK
from hatui.report import REPORT_FILES, rebuild

DESCRIPTION = f"""\
Write the reports of an export again from DIR/journal.jsonl alone:
{', '.join(REPORT_FILES)}.
The plan, every run, the environment and the time the export wrote them come from the journal,
so the files come out byte for byte as the export wrote them. Nothing is sent to any host and no
lab.toml is read. Also for the journal of an export that was killed before writing its reports."""

EPILOG = examples("hatui report results/study",
                  more="Exit codes: 0 reports written, 2 DIR holds no hatui journal.")


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="write an export's reports again from its journal",
                                   description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("directory", metavar="DIR", help="the directory of a hatui export (holding journal.jsonl)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    written = rebuild(Path(args.directory))
    print(written[0])  # report.md, as `hatui export` prints it
    return EXIT_OK

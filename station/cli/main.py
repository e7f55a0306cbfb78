"""``station`` entry point: builds the parser from the command modules and dispatches.

A command module exposes ``register(subparsers)``, which adds its sub-parser and sets
``handler=<callable(args) -> int>``. Add a command by adding its module to ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import station

COMMAND_MODULES = (
    "station.cli.cmd_demo",
    "station.cli.cmd_gui",
    "station.cli.cmd_analyze",
    "station.cli.cmd_eis_fit",
    "station.cli.cmd_verify",
    "station.cli.cmd_sim",
    "station.cli.cmd_run",
    "station.cli.cmd_doctor",
    "station.cli.cmd_import",
    "station.cli.cmd_match",
    "station.cli.cmd_export",
    "station.cli.cmd_report",
    "station.cli.cmd_grade",
    "station.cli.cmd_followups",
)


class CommandError(Exception):
    """A user-facing error: printed as one line on stderr, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="station",
        description="Battery cell testing and grading station (headless commands and the GUI).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {station.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args))
    except CommandError as error:
        print(f"station {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"station {args.command}: interrupted", file=sys.stderr)
        return 130

"""``station gui``: open the bench GUI in its own process (the GUI layer sits above the station)."""

from __future__ import annotations

import argparse
import subprocess
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gui", help="open the bench GUI", description="Open the technician's bench GUI."
    )
    parser.add_argument(
        "--sim",
        action="store_true",
        help="start a simulated bench; SIMULATED is shown in the title and status bar",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "ui"]
    if args.sim:
        command.append("--sim")
    return subprocess.call(command)

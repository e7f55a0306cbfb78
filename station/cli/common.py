"""Shared pieces of the headless commands: default paths (platformdirs, overridable by
environment variables and flags) and one-line user errors.

Environment variables: ``STATION_DB`` (database file), ``STATION_LOG`` (run log file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import platformdirs

APP_NAME = "cell-grading-station"  # the same directory as the station key (passport.signing)


def default_db_path() -> Path:
    """``$STATION_DB`` or ``station.db`` in the platform's user data directory."""
    env = os.environ.get("STATION_DB")
    if env:
        return Path(env)
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "station.db"


def default_log_path() -> Path:
    """``$STATION_LOG`` or ``station-run.log`` in the platform's user log directory."""
    env = os.environ.get("STATION_LOG")
    if env:
        return Path(env)
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)) / "station-run.log"


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def add_signing_options(parser: argparse.ArgumentParser, station_id_default: str) -> None:
    """``--key`` and ``--station-id``, shared by the commands that write signed records."""
    parser.add_argument(
        "--key",
        type=Path,
        help="station signing key (default: $STATION_KEY_FILE or the user data directory; "
        "created on first use)",
    )
    parser.add_argument(
        "--station-id",
        default=station_id_default,
        help="station identifier written in the signed records",
    )

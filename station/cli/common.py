"""Shared pieces of the headless commands: default paths (platformdirs, overridable by
environment variables and flags) and one-line user errors.

Environment variables: ``STATION_DB`` (database file), ``STATION_LOG`` (run log file).
"""

from __future__ import annotations

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

"""Test set-up shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

# Qt must never try to open a display in tests; set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = PROJECT_ROOT.parent / "shared"


def pytest_addoption(parser):
    """Real-instrument addresses; each driver's hardware tests skip unless theirs is given."""
    group = parser.getgroup("instruments", "real instruments (tests marked 'hardware')")
    group.addoption("--bt3562-address", default=None, help="Hioki BT3562/BT3563 address")
    group.addoption("--bt4560-address", default=None, help="Hioki BT4560 address")
    group.addoption("--keithley-address", default=None, help="Keithley 2450/2460/2461 address")

"""Test set-up shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

# Qt must never try to open a display in tests; set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = PROJECT_ROOT.parent / "shared"

"""Station storage (SQLite): see :mod:`station.storage.db` and :mod:`station.storage.schema`."""

from __future__ import annotations

from station.storage.db import (
    RunProgress,
    RunRecord,
    Storage,
    StorageError,
    integrity_check,
)

__all__ = [
    "RunProgress",
    "RunRecord",
    "Storage",
    "StorageError",
    "integrity_check",
]

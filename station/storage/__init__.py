"""Station storage (SQLite): see :mod:`station.storage.db` and :mod:`station.storage.schema`."""

from __future__ import annotations

from station.storage.db import (
    GradeEntry,
    RunProgress,
    RunRecord,
    Storage,
    StorageError,
    StoredGrade,
    integrity_check,
)

__all__ = [
    "GradeEntry",
    "RunProgress",
    "RunRecord",
    "Storage",
    "StorageError",
    "StoredGrade",
    "integrity_check",
]

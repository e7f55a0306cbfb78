"""Station storage (SQLite): see :mod:`station.storage.db` and :mod:`station.storage.schema`."""

from __future__ import annotations

from station.storage.db import (
    FollowUp,
    GradeEntry,
    RunProgress,
    RunRecord,
    Storage,
    StorageError,
    StoredGrade,
    integrity_check,
    latest_record_t_s,
    open_followups,
)

__all__ = [
    "FollowUp",
    "GradeEntry",
    "RunProgress",
    "RunRecord",
    "Storage",
    "StorageError",
    "StoredGrade",
    "integrity_check",
    "latest_record_t_s",
    "open_followups",
]

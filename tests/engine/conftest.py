"""Fixtures for the engine tests: a cell, a stored database on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from station.clock import ManualClock
from station.storage import Storage

from .fakes import T0, make_cell

__all__ = ["T0", "make_cell"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def storage(tmp_path: Path, clock: ManualClock) -> Iterator[Storage]:
    db = Storage(tmp_path / "station.db", clock, batch_interval_s=0.05)
    yield db
    db.close()

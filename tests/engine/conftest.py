"""Fixtures for the engine tests: a cell, a stored database on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from station.cells import Cell
from station.clock import ManualClock
from station.storage import Storage

T0 = 1_800_000_000.0  # 2027-01-15, a fixed epoch so calibration dates are deterministic


def make_cell(cell_id: str = "CELL-1", capacity_ah: float = 3.0) -> Cell:
    return Cell(
        cell_id,
        lot="LOT-1",
        chemistry="NMC",
        format="cylindrical",
        rated_capacity_ah=capacity_ah,
        voltage_min_v=2.5,
        voltage_max_v=4.2,
        max_charge_current_a=capacity_ah,
        max_discharge_current_a=2 * capacity_ah,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def storage(tmp_path: Path, clock: ManualClock) -> Iterator[Storage]:
    db = Storage(tmp_path / "station.db", clock, batch_interval_s=0.05)
    yield db
    db.close()

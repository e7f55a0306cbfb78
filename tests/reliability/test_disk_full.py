"""D3: the database disk fills up mid-run, through the real engine over the simulated cabinet:
no crash, the storage alarm fires, the samples are held and every cabinet row is in the database
once space is back (SQLite's ``max_page_count`` stands in for a full disk: same SQLITE_FULL)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from station.engine import Engine
from station.events import RunOutcome

from .harness import Batch, count_rows, inprocess_bench, run_batch, stored_keys, unmatched


def _disk_full(tmp_path: Path, *, full_for_s: float, speed: float, seed: int) -> None:
    db = tmp_path / "full.db"
    errors: list[str] = []
    with inprocess_bench(speed=speed, seed=seed) as sim:
        counters = count_rows(sim, channels=2)
        held: list[int] = []

        def fill_disk(engine: Engine, batch: Batch) -> None:
            storage = engine.storage
            pages = storage.call(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
            storage.call(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
            published = batch.samples_published
            time.sleep(full_for_s)
            held.append(batch.samples_published - published)
            storage.call(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))

        batch = run_batch(
            sim, db, recipe="fast-triage", channels=2, during=fill_disk, storage_errors=errors
        )
        rows = {c: counters[c].rows() for c in batch.runs}
    lost = duplicated = 0
    for channel_id, run_id in batch.runs.items():
        missing, extra = unmatched(rows[channel_id], stored_keys(db, run_id))
        lost += missing
        duplicated += extra
    print(
        f"D3: disk full for {full_for_s} s wall, {held[0]} samples arrived meanwhile, "
        f"{len(errors)} storage alarms, samples lost {lost}, duplicated {duplicated}"
    )
    assert held[0] > 0  # the fault overlapped live data
    assert errors and all("full" in e for e in errors)
    assert all(o is RunOutcome.COMPLETED for o in batch.outcomes.values()), batch.reasons
    assert (lost, duplicated) == (0, 0)


def test_disk_full_short(tmp_path: Path) -> None:
    _disk_full(tmp_path, full_for_s=1.5, speed=100, seed=3)


@pytest.mark.slow
def test_disk_full_long(tmp_path: Path) -> None:
    _disk_full(tmp_path, full_for_s=20.0, speed=10, seed=9)

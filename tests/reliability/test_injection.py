"""X1 SQL injection and X2 formula injection through the lot import, the database and the CSV
summary, plus cell IDs that would escape the output folder (the demo names files after them).

Reference for "intact": the exact text that went in; for "no schema change": ``sqlite_master``
before and after; for "neutralised": no exported cell starts with a formula trigger and
``restore`` gives back the original. The figure printed is the number of hostile values tried.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.cells import CellDataError, check_cell_id, parse_lot
from station.clock import ManualClock
from station.reports.summary import neutralise, restore
from station.storage import Storage

HOSTILE = [
    "'; DROP TABLE cells; --",
    "x' OR '1'='1",
    '"); DELETE FROM samples; --',
    "=cmd|' -C calc'!A0",
    '=HYPERLINK("evil.example","x")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A9)",
    "Robert'); DROP TABLE runs;--",
    "ünïcødé ☢ 😀",
    "a" * 120,
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def schema(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("SELECT name, COALESCE(sql, '') FROM sqlite_master"))


def lot_json(ids: list[str], lot: str) -> str:
    return json.dumps(
        [{"cell_id": cid, "lot": lot, "chemistry": "NMC", "rated_capacity_ah": 3.0} for cid in ids]
    )


def test_hostile_cell_ids_and_lot_names_reach_the_database_intact(tmp_path: Path) -> None:
    db = tmp_path / "x1.db"
    storage = Storage(db, ManualClock(1_800_000_000.0))
    try:
        before = schema(db)
        for n, lot in enumerate(HOSTILE):
            ids = [f"{text}#{n}" for text in HOSTILE]
            cells = parse_lot(lot_json(ids, lot), kind="json")
            storage.add_cells(cells, who=lot, why=lot)
            for cid in ids:
                stored = storage.get_cell(cid)
                assert stored is not None and stored.cell_id == cid and stored.lot == lot
        after = schema(db)
    finally:
        storage.close()
    with sqlite3.connect(db) as conn:
        count = conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    print(f"X1: {len(HOSTILE) ** 2} hostile IDs and {len(HOSTILE)} hostile lot names stored")
    assert after == before
    assert count == len(HOSTILE) ** 2


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_any_text_is_stored_verbatim_or_refused_by_name(tmp_path_factory, text: str) -> None:
    db = tmp_path_factory.mktemp("x1h") / "h.db"
    try:
        check_cell_id(text)
    except ValueError:
        return  # refused up front, with a message; nothing reaches the database
    storage = Storage(db, ManualClock(1_800_000_000.0))
    try:
        before = schema(db)
        storage.add_cells(parse_lot(lot_json([text], "L"), kind="json"), who="t")
        stored = storage.get_cell(text)
        assert stored is not None and stored.cell_id == text
        assert schema(db) == before
    finally:
        storage.close()


def test_exported_cells_are_neutralised_and_restore_to_the_original() -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([[neutralise(text)] for text in HOSTILE])
    exported = [row[0] for row in csv.reader(io.StringIO(buffer.getvalue()))]
    print(f"X2: {len(HOSTILE)} hostile values exported")
    assert not [cell for cell in exported if cell.startswith(FORMULA_START)]
    assert [restore(cell) for cell in exported] == HOSTILE


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "..\\win", "C:\\x", "..", "."])
def test_cell_ids_that_are_paths_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ValueError, match="path separator|file name"):
        check_cell_id(bad)
    with pytest.raises(CellDataError):
        parse_lot(lot_json([bad], "L"), kind="json")

"""Migration 2 (samples keyed by one integer) and the ingest settings of ADR 0007.

References are independent of the code under test: the rows a test wrote itself through plain
sqlite3 into a version-1 database, and SQLite's own PRAGMA answers."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from station.clock import ManualClock
from station.events import RunStarted, Sample
from station.storage import RunRecord, Storage, integrity_check
from station.storage.schema import MIGRATIONS, SEQ_LIMIT
from tests.engine.fakes import T0, make_cell


def _record(run_id: str) -> RunRecord:
    return RunRecord(
        run_id, "ch01", "CELL-1", "fast-triage", 1, "abc", "[recipe]", "cabinet", "SN1",
        "2099-01-01", True, False, "tester", T0,
    )  # fmt: skip


def _version1_db(
    path: Path, rows: list[tuple[int, int, float, int, float, float, float | None]]
) -> None:
    """A database as a version-1 station left it: schema 1 only, runs 1..3, the given samples."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(
        "BEGIN;"
        + MIGRATIONS[0][2]
        + "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_t_s REAL NOT NULL);"
        f"INSERT INTO schema_migrations VALUES (1, 'initial schema', {T0});"
        f"INSERT INTO cells (cell_id, created_t_s) VALUES ('CELL-1', {T0});"
        "COMMIT;"
    )
    for pk in (1, 2, 3):
        conn.execute(
            "INSERT INTO runs (run_pk, run_id, channel_id, cell_id, recipe_name, recipe_version,"
            " recipe_hash, recipe_toml, instrument, instrument_serial, simulated, production,"
            " operator, started_t_s) VALUES (?, ?, 'ch01', 'CELL-1', 'r', 1, 'h', '', 'cab',"
            " 'SN1', 1, 0, 'op', ?)",
            (pk, f"run-{pk}", T0),
        )
        conn.execute(
            "INSERT INTO run_progress (run_pk, state, step_index, last_seq, updated_t_s)"
            " VALUES (?, 'running', 0, -1, ?)",
            (pk, T0),
        )
    conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()


def test_version1_database_upgrades_with_every_sample(tmp_path: Path) -> None:
    rng = random.Random(7)
    rows = [
        (pk, seq, T0 + seq, seq % 3, rng.uniform(2.5, 4.2), rng.uniform(-3, 3), temp)
        for seq in range(300)
        for pk in (1, 2, 3)
        for temp in [None if seq % 5 else 25.0]
    ]
    rows.append((2, SEQ_LIMIT - 1, T0, 0, 3.0, 0.0, None))  # the largest seq the key holds
    db = tmp_path / "v1.db"
    _version1_db(db, rows)
    storage = Storage(db, ManualClock(T0))
    try:
        with storage.reader() as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
            got = conn.execute(
                "SELECT run_pk, seq, t_s, step_index, voltage_v, current_a, temperature_c"
                " FROM samples ORDER BY run_pk, seq"
            ).fetchall()
        assert versions == [1, 2, 3]
        # Exact equality: the migration copies values, it computes nothing from them.
        assert got == sorted(rows)
        assert storage.samples("run-3") == [r[1:] for r in sorted(rows) if r[0] == 3]
    finally:
        storage.close()
    assert integrity_check(db) == "ok"


def test_upgraded_samples_stay_append_only_and_unique(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    _version1_db(db, [(1, 0, T0, 0, 3.7, 1.0, None)])
    Storage(db, ManualClock(T0)).close()
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE samples SET voltage_v = 0")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM samples")
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE|PRIMARY"):
            conn.execute(
                "INSERT INTO samples (sample_key, t_s, step_index, voltage_v, current_a)"
                " VALUES ((1 << 32) | 0, 0, 0, 0, 0)"
            )
    finally:
        conn.close()


def test_out_of_range_seq_refuses_the_upgrade_and_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    _version1_db(db, [(1, 0, T0, 0, 3.7, 1.0, None), (1, SEQ_LIMIT, T0, 0, 3.7, 1.0, None)])
    with pytest.raises(Exception, match=f"run_pk=1 seq={SEQ_LIMIT}"):
        Storage(db, ManualClock(T0))
    conn = sqlite3.connect(db)
    try:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations")] == [1]
        assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 2
    finally:
        conn.close()


def test_seq_beyond_the_key_is_dropped_and_recorded(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    with Storage(tmp_path / "s.db", clock, batch_interval_s=0.05) as storage:
        storage.add_cells([make_cell()], who="tester")
        storage.begin_run(_record("run-1"))
        storage.handle_event(RunStarted("run-1", "ch01", "CELL-1", "fast-triage", T0, True))
        for seq in (0, 1, SEQ_LIMIT, 2):
            storage.handle_event(Sample("run-1", "ch01", seq, T0 + seq % 10, 0, 3.7, 1.0, None))
        storage.flush()
        assert [r[0] for r in storage.samples("run-1")] == [0, 1, 2]
        with storage.reader() as conn:
            faults = conn.execute("SELECT kind, message FROM faults").fetchall()
        message = f"sample seq {SEQ_LIMIT} is not after 1 or not below {SEQ_LIMIT}; dropped"
        assert faults == [("duplicate_sample", message)]


@pytest.mark.parametrize(("setting", "pragma_value"), [("FULL", 2), ("NORMAL", 1)])
def test_synchronous_setting_reaches_the_writer(
    tmp_path: Path, setting: str, pragma_value: int
) -> None:
    # SQLite's documented PRAGMA synchronous codes: NORMAL = 1, FULL = 2.
    with Storage(tmp_path / "s.db", ManualClock(T0), synchronous=setting) as storage:
        assert storage.call(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == pragma_value
        assert storage.call(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"


def test_default_is_full_and_unknown_setting_is_refused(tmp_path: Path) -> None:
    with Storage(tmp_path / "s.db", ManualClock(T0)) as storage:
        assert storage.synchronous == "FULL"
    with pytest.raises(Exception, match="synchronous must be one of FULL, NORMAL, got 'OFF'"):
        Storage(tmp_path / "t.db", ManualClock(T0), synchronous="OFF")

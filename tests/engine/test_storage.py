"""Storage: migrations and pragmas, append-only raw data, corrections, the audit chain, cells,
progress checkpoints committed with samples, calibration flags."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.identity import InstrumentIdentity
from station.cells import CellDataError
from station.clock import ManualClock
from station.events import (
    Fault,
    LimitTripped,
    MeasurementTaken,
    RunEnded,
    RunOutcome,
    RunStarted,
    Sample,
    StepEnded,
    StepStarted,
)
from station.storage import RunRecord, Storage, integrity_check
from station.storage.db import NETWORK_FILESYSTEMS, filesystem_type
from station.storage.schema import APPEND_ONLY_TABLES

from .conftest import T0, make_cell


def record(
    run_id: str = "run-1", cell_id: str = "CELL-1", due: str | None = "2099-01-01"
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        channel_id="ch01",
        cell_id=cell_id,
        recipe_name="fast-triage",
        recipe_version=1,
        recipe_hash="abc",
        recipe_toml="[recipe]",
        instrument="cabinet",
        instrument_serial="SN1",
        calibration_due=due,
        simulated=True,
        production=False,
        operator="tester",
        started_t_s=T0,
    )


def start_run(storage: Storage, run_id: str = "run-1", **kw: object) -> None:
    if storage.get_cell("CELL-1") is None:
        storage.add_cells([make_cell()], who="tester")
    storage.begin_run(record(run_id, **kw))  # type: ignore[arg-type]
    storage.handle_event(RunStarted(run_id, "ch01", "CELL-1", "fast-triage", T0, True))


def test_pragmas_and_schema_version(storage: Storage) -> None:
    assert storage.call(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert storage.call(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2  # FULL
    with storage.reader() as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 3


def test_reopen_does_not_reapply_migrations(tmp_path: Path, clock: ManualClock) -> None:
    Storage(tmp_path / "a.db", clock).close()
    again = Storage(tmp_path / "a.db", clock)
    with again.reader() as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 3
    again.close()


def test_samples_and_progress_commit_together(storage: Storage) -> None:
    start_run(storage)
    storage.handle_event(StepStarted("run-1", "ch01", 0, "charge_cc", "cc", T0, '{"top": 0}'))
    # 1 A at a constant 4 V for one hour, sampled every 10 s: exactly 1 Ah and 4 Wh.
    for seq in range(361):
        storage.handle_event(Sample("run-1", "ch01", seq, T0 + 10 * seq, 0, 4.0, 1.0, 25.0))
    storage.flush()
    progress = storage.run_progress("run-1")
    assert progress is not None
    assert progress.last_seq == 360 and progress.step_index == 0
    assert progress.resume_token == '{"top": 0}' and progress.step_start_t_s == T0
    assert progress.cum_ah == pytest.approx(1.0, rel=1e-12)
    assert progress.cum_wh == pytest.approx(4.0, rel=1e-12)
    rows = storage.samples("run-1")
    assert [r[0] for r in rows] == list(range(361))


def test_duplicate_samples_are_dropped_and_recorded(storage: Storage) -> None:
    start_run(storage)
    for seq in (0, 1, 1, 2):
        storage.handle_event(Sample("run-1", "ch01", seq, T0 + seq, 0, 3.7, 0.0))
    storage.flush()
    assert [r[0] for r in storage.samples("run-1")] == [0, 1, 2]
    with storage.reader() as conn:
        assert conn.execute("SELECT kind FROM faults").fetchall() == [("duplicate_sample",)]


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_raw_tables_refuse_update_and_delete(storage: Storage, table: str) -> None:
    start_run(storage)
    storage.handle_event(StepStarted("run-1", "ch01", 0, "rest", "r", T0))
    storage.handle_event(Sample("run-1", "ch01", 0, T0, 0, 3.7, 0.0))
    storage.handle_event(MeasurementTaken("run-1", "ch01", 0, "acir", '{"r": 1}', "x s/n SN1", T0))
    storage.handle_event(LimitTripped("run-1", "ch01", "voltage_max", 4.3, 4.25, "V", T0))
    storage.handle_event(Fault("run-1", "ch01", "stuck", "no data", T0))
    storage.flush()
    storage.record_reference_check(
        instrument_serial="SN1",
        reference_cell_id="REF",
        quantity="ocv",
        measured=1.0,
        expected=1.0,
        tolerance=0.1,
        operator="t",
    )
    storage.record_instrument(
        "m", "d", "COM1", InstrumentIdentity("a", "b", "SN1", "f"), "2099-01-01"
    )
    with storage.reader() as conn:
        before = conn.execute(f"SELECT * FROM {table}").fetchall()
    assert before, f"{table} should have a row for this test"
    for sql in (
        f"UPDATE {table} SET t_s = 0"
        if table not in ("calibrations",)
        else f"UPDATE {table} SET due_date = 'x'",
        f"DELETE FROM {table}",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only|never deleted"):
            storage.call(lambda c, sql=sql: c.execute(sql))
    with storage.reader() as conn:
        assert conn.execute(f"SELECT * FROM {table}").fetchall() == before


def test_closed_run_is_never_changed(storage: Storage) -> None:
    start_run(storage)
    storage.handle_event(RunEnded("run-1", "ch01", RunOutcome.COMPLETED, "done", T0 + 5))
    storage.flush()
    with pytest.raises(sqlite3.IntegrityError, match="closed run"):
        storage.call(lambda c: c.execute("UPDATE runs SET outcome = 'aborted'"))
    assert storage.interrupted_runs() == []


def test_correction_is_a_new_linked_row(storage: Storage) -> None:
    start_run(storage)
    storage.handle_event(MeasurementTaken("run-1", "ch01", 0, "acir", '{"r": 1}', "x s/n SN1", T0))
    storage.flush()
    new_id = storage.correct_measurement(1, {"r": 2}, who="lead", why="wrong fixture noted")
    with storage.reader() as conn:
        rows = conn.execute("SELECT id, values_json, corrects_id FROM measurements").fetchall()
    assert rows == [(1, '{"r": 1}', None), (new_id, '{"r": 2}', 1)]
    with pytest.raises(Exception, match="reason"):
        storage.correct_measurement(1, {"r": 3}, who="lead", why=" ")


def test_audit_chain_detects_tampering(storage: Storage, tmp_path: Path) -> None:
    for i in range(5):
        storage.audit("op", "note", f"s{i}", "d", "because")
    assert storage.verify_audit() is None
    storage.close()
    conn = sqlite3.connect(tmp_path / "station.db")
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET why = 'forged' WHERE id = 3")
    conn.commit()
    conn.close()
    reopened = Storage(tmp_path / "station.db", ManualClock(T0))
    assert reopened.verify_audit() == 3
    reopened.close()


HOSTILE = ["'; DROP TABLE cells; --", '=HYPERLINK("x")', "+1", "@SUM(A1)", "Robert'); --", 'a"b']


def test_hostile_ids_are_stored_verbatim(storage: Storage) -> None:
    storage.add_cells([make_cell(cid) for cid in HOSTILE], who="t")
    with storage.reader() as conn:
        tables_before = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        stored = sorted(r[0] for r in conn.execute("SELECT cell_id FROM cells"))
    assert stored == sorted(HOSTILE)
    for cid in HOSTILE:
        cell, created = storage.find_or_create_cell(cid, who="t")
        assert cell.cell_id == cid and not created
    with storage.reader() as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == tables_before


def test_lot_import_is_all_or_nothing(storage: Storage) -> None:
    storage.add_cells([make_cell("A"), make_cell("B")], who="t")
    with pytest.raises(CellDataError, match="'B' is already stored"):
        storage.add_cells([make_cell("C"), make_cell("B")], who="t")
    assert storage.get_cell("C") is None


def test_scan_creates_from_template(storage: Storage) -> None:
    cell, created = storage.find_or_create_cell("NEW-1", who="t", template=make_cell("tmpl"))
    assert created and cell.cell_id == "NEW-1" and cell.rated_capacity_ah == 3.0
    assert storage.get_cell("NEW-1") == cell


def test_out_of_calibration_results_are_flagged(storage: Storage) -> None:
    start_run(storage, due="2026-12-31")  # due before T0 (2027-01-15)
    storage.record_instrument(
        "acir",
        "hioki-bt3562",
        "COM3",
        InstrumentIdentity("HIOKI", "BT3562", "M1", "1"),
        "2026-12-01",
    )
    storage.handle_event(
        MeasurementTaken("run-1", "ch01", 0, "acir", "{}", "HIOKI BT3562 s/n M1 fw 1", T0)
    )
    storage.handle_event(RunEnded("run-1", "ch01", RunOutcome.COMPLETED, "done", T0 + 1))
    storage.flush()
    with storage.reader() as conn:
        assert conn.execute("SELECT out_of_calibration FROM measurements").fetchone()[0] == 1
        assert conn.execute("SELECT out_of_calibration FROM runs").fetchone()[0] == 1


def test_followup_due_date_is_stored(storage: Storage) -> None:
    start_run(storage)
    due = T0 + 7 * 86400
    storage.handle_event(
        MeasurementTaken(
            "run-1",
            "ch01",
            2,
            "follow_up",
            json.dumps({"kind": "self-discharge", "due_t_s": due}),
            "",
            T0,
        )
    )
    storage.flush()
    assert storage.followups_due() == [("CELL-1", "self-discharge", due)]
    assert storage.followups_due(before_t_s=T0) == []


def test_interrupted_runs_survive_reopen(tmp_path: Path, clock: ManualClock) -> None:
    db = Storage(tmp_path / "s.db", clock)
    start_run(db)
    db.handle_event(StepStarted("run-1", "ch01", 3, "rest", "r", T0, "tok"))
    db.handle_event(Sample("run-1", "ch01", 0, T0, 3, 3.7, 0.0))
    db.flush()
    db.close()
    again = Storage(tmp_path / "s.db", clock)
    (progress,) = again.interrupted_runs()
    assert (progress.run_id, progress.step_index, progress.last_seq) == ("run-1", 3, 0)
    again.handle_event(Sample("run-1", "ch01", 1, T0 + 1, 3, 3.7, 0.0))
    again.flush()
    assert [r[0] for r in again.samples("run-1")] == [0, 1]
    again.close()
    assert integrity_check(tmp_path / "s.db") == "ok"


def test_step_events_stored(storage: Storage) -> None:
    start_run(storage)
    storage.handle_event(StepStarted("run-1", "ch01", 0, "discharge_cc", "d", T0))
    storage.handle_event(
        StepEnded("run-1", "ch01", 0, "discharge_cc", "voltage", T0 + 9, -2.9, -10.6)
    )
    storage.flush()
    with storage.reader() as conn:
        rows = conn.execute("SELECT event, reason, capacity_ah FROM step_events").fetchall()
    assert rows == [("started", "", None), ("ended", "voltage", -2.9)]


def test_disk_full_keeps_the_batch_and_commits_it_later(tmp_path: Path, clock: ManualClock) -> None:
    errors: list[str] = []
    db = Storage(tmp_path / "full.db", clock, batch_interval_s=0.02, on_error=errors.append)
    try:
        start_run(db)
        db.handle_event(Sample("run-1", "ch01", 0, T0, 0, 3.7, 0.0))
        db.flush()
        pages = db.call(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        # A size cap one page above the current file: the next big batch cannot fit (SQLITE_FULL).
        db.call(lambda c: c.execute(f"PRAGMA max_page_count = {pages + 1}"))
        for seq in range(1, 20_001):
            db.handle_event(Sample("run-1", "ch01", seq, T0 + seq, 0, 3.7, 0.5, 25.0))
        db.flush()
        assert errors and "full" in errors[-1]
        assert db.last_error is not None
        assert [r[0] for r in db.samples("run-1")] == [0]  # nothing half-written
        db.call(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        db.handle_event(Sample("run-1", "ch01", 20_001, T0 + 20_001, 0, 3.7, 0.5, 25.0))
        db.flush()
        assert db.last_error is None
        assert [r[0] for r in db.samples("run-1")] == list(range(20_002))
        progress = db.run_progress("run-1")
        assert progress is not None and progress.last_seq == 20_001
        # 0.5 A for 20,001 s: 2.778 Ah, the same as if the disk had never been full.
        assert progress.cum_ah == pytest.approx(0.25 * 1 / 3600 + 0.5 * 20_000 / 3600, rel=1e-9)
    finally:
        db.close()


def test_network_filesystems_are_recognised() -> None:
    mounts = (
        "/dev/sda1 / ext4 rw 0 0\n"
        "server:/export /mnt/lab nfs4 rw 0 0\n"
        "//nas/share /mnt/lab/smb cifs rw 0 0\n"
    )
    assert filesystem_type("/home/x/station.db", mounts) == "ext4"
    assert filesystem_type("/mnt/lab/run/station.db", mounts) == "nfs4"
    assert filesystem_type("/mnt/lab/smb/station.db", mounts) == "cifs"
    assert {"nfs4", "cifs"} <= NETWORK_FILESYSTEMS


@settings(max_examples=25, deadline=None)
@given(
    ids=st.lists(
        st.text(min_size=1, max_size=40).filter(lambda s: s.strip()),
        min_size=1,
        max_size=8,
        unique=True,
    )
)
def test_arbitrary_text_ids_round_trip_without_schema_change(tmp_path_factory, ids) -> None:
    ids = [i for i in ids if not any(ord(c) < 32 or ord(c) == 127 for c in i)]
    if not ids:
        return
    path = tmp_path_factory.mktemp("x1") / "x1.db"
    db = Storage(path, ManualClock(T0))
    try:
        with db.reader() as conn:
            schema = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        db.add_cells([make_cell(i) for i in ids], who=ids[0])
        with db.reader() as conn:
            assert (
                conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
                == schema
            )
            stored = sorted(r[0] for r in conn.execute("SELECT cell_id FROM cells"))
        assert stored == sorted(ids)
    finally:
        db.close()


def test_a_refused_event_does_not_block_the_rest(storage: Storage) -> None:
    errors: list[str] = []
    storage.on_error = errors.append
    start_run(storage)
    storage.handle_event(Sample("run-1", "ch01", 0, T0, 0, 3.7, 0.0))
    # A NaN voltage becomes NULL in SQLite and violates NOT NULL: that one event is refused.
    storage.handle_event(Sample("run-1", "ch01", 1, T0 + 1, 0, math.nan, 0.0))
    storage.handle_event(
        LimitTripped(
            "run-1", "ch01", "instrument_protection:200104", math.nan, math.nan, "", T0 + 2
        )
    )
    storage.flush()
    assert [r[0] for r in storage.samples("run-1")] == [0]
    assert errors and "refused" in errors[-1] and "nan" in errors[-1]
    with storage.reader() as conn:
        assert conn.execute("SELECT limit_name, value FROM limit_trips").fetchall() == [
            ("instrument_protection:200104", None)
        ]
    storage.handle_event(Sample("run-1", "ch01", 1, T0 + 3, 0, 3.7, 0.0))
    storage.flush()
    assert [r[0] for r in storage.samples("run-1")] == [0, 1]

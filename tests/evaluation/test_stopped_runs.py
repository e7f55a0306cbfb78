"""Cells whose run stopped before its end get a decision through the same evaluation path.

A lot of three completed cells (tests/evaluation/storedlot) plus cells whose only run was
refused at the pre-start OCV probe, tripped a limit, faulted, or was refused before any reading.
The references are the stored events themselves: the probe OCV is the run's one stored sample,
the trip's limit, value and threshold are the ``LimitTripped`` event's.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from station.cells import Cell
from station.clock import ManualClock
from station.evaluation import STOP_RULE, grade_entries, grade_lot, main_reason, store_grades
from station.events import Fault, LimitTripped, RunEnded, RunOutcome
from station.grading.profiles import load_profile
from station.reports.lot import lot_records
from station.storage import Storage
from tests.evaluation.storedlot import FACTS, RATED_AH, T0, Spec, _Run, rows_for, store_lot

REVERSED_V = -3.4748
DEEP_V = 1.95
TRIP_V = 4.31
TRIP_LIMIT_V = 4.25


def _stopped(storage: Storage, cell_id: str, rows: list[tuple[float, float]], end: object) -> None:
    run = _Run(storage, f"run-{cell_id}", cell_id, T0 + 100_000.0)
    if rows:
        run.step_rows("probe", rows)
    if isinstance(end, LimitTripped | Fault):
        storage.handle_event(end)
        outcome = RunOutcome.TRIPPED if isinstance(end, LimitTripped) else RunOutcome.FAULTED
        reason = "voltage_max: ..." if isinstance(end, LimitTripped) else "stuck_instrument: ..."
    else:
        outcome, reason = RunOutcome.ABORTED, str(end)
    storage.handle_event(RunEnded(run.run_id, "ch01", outcome, reason, run.t_s))


@pytest.fixture(scope="module")
def lot_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stopped") / "lot.db"
    store_lot(path, [Spec(f"C{i}", rows_for(0.9), 0.018, 0.1) for i in range(1, 4)])
    storage = Storage(path, ManualClock(T0 + 200_000.0), batch_interval_s=0.05)
    try:
        ids = ("REV", "DEEP", "TRIP", "FAULT", "CAL")
        storage.add_cells(
            [
                Cell(c, lot="L1", chemistry="NMC", rated_capacity_ah=RATED_AH, voltage_min_v=2.5)
                for c in ids
            ],
            who="test",
        )
        for cell_id in ids:
            storage.record_intake(cell_id, FACTS, who="test", why="intake")
        _stopped(
            storage,
            "REV",
            [(REVERSED_V, 0.0)],
            f"refused: OCV {REVERSED_V:.4f} V is negative: reversed polarity",
        )
        _stopped(
            storage,
            "DEEP",
            [(DEEP_V, 0.0)],
            f"refused: OCV {DEEP_V:.4f} V is below the cell's minimum 2.5 V (over-discharged)",
        )
        trip = LimitTripped("run-TRIP", "ch01", "voltage_max", TRIP_V, TRIP_LIMIT_V, "V", T0)
        _stopped(storage, "TRIP", [(3.7, 0.0), (4.0, 1.0), (TRIP_V, 1.0)], trip)
        fault = Fault("run-FAULT", "ch01", "stuck_instrument", "no fresh sample", T0)
        _stopped(storage, "FAULT", [(3.7, 0.0), (3.8, 1.0)], fault)
        _stopped(storage, "CAL", [], "refused: calibration of cabinet overdue")
        storage.flush()
    finally:
        storage.close()
    return path


def test_every_measured_cell_gets_a_decision_with_its_reason(lot_db: Path) -> None:
    profile = load_profile("second-life")
    graded = grade_lot(lot_db, profile, lot="L1")
    outcome = {g.cell_id: g.outcome for g in graded.grades}
    assert outcome == {
        "C1": "A",
        "C2": "A",
        "C3": "A",
        "REV": "QUARANTINE",
        "DEEP": "QUARANTINE",
        "TRIP": "QUARANTINE",
        "FAULT": "RETEST",
    }
    # Refused before any reading of the cell: never measured, so no grade.
    assert set(graded.not_graded) == {"CAL"}
    assert "nothing measured" in graded.not_graded["CAL"]
    assert graded.stopped == {
        "REV": "aborted",
        "DEEP": "aborted",
        "TRIP": "tripped",
        "FAULT": "faulted",
    }

    rev = graded.grade_of("REV")
    assert rev is not None
    reason = main_reason(rev, profile)
    # The profile's OCV gate (grading.md 8.1) decides, with the probe OCV and its limit.
    assert reason.startswith("OCV below the manufacturer's minimum")
    assert f"ocv_v {REVERSED_V:g} V, limit >= 2.5 V" in reason
    assert "reversed polarity" in reason
    gate = next(r for r in rev.rules if r.rule == "ocv-above-minimum")
    assert gate.value == REVERSED_V and gate.verdict.value == "fail"

    deep = graded.grade_of("DEEP")
    assert deep is not None and f"ocv_v {DEEP_V:g} V" in main_reason(deep, profile)

    trip = graded.grade_of("TRIP")
    assert trip is not None
    words = main_reason(trip, profile)
    assert words.startswith("run stopped by the voltage_max limit at step 0 (probe): ")
    assert f"{TRIP_V:g} V beyond {TRIP_LIMIT_V:g} V" in words
    stop = next(r for r in trip.rules if r.rule == STOP_RULE)
    assert (stop.metric, stop.value, stop.threshold) == ("voltage_max", TRIP_V, TRIP_LIMIT_V)

    fault = graded.grade_of("FAULT")
    assert fault is not None and "not a property of the cell" in main_reason(fault, profile)


def test_stopped_cells_stay_out_of_the_lot_statistics_and_are_stored(lot_db: Path) -> None:
    profile = load_profile("second-life")
    graded = grade_lot(lot_db, profile, lot="L1")
    metrics, grades = graded.completed()
    assert [m.cell_id for m in metrics] == ["C1", "C2", "C3"] == [g.cell_id for g in grades]
    assert graded.report.stats["capacity_ah"].n == 3
    entries = {e.cell_id: e for e in grade_entries(graded)}
    assert entries["TRIP"].grade == "QUARANTINE" and entries["TRIP"].bin == ""
    assert entries["REV"].run_ids == ("run-REV",)
    assert entries["REV"].explanation["figures"]["ocv_v"]["value"] == REVERSED_V  # type: ignore[index]


def test_lot_report_lists_a_stopped_cell_with_its_decision(lot_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "graded.db"
    shutil.copy(lot_db, db)
    storage = Storage(db, ManualClock(T0 + 300_000.0), batch_interval_s=0.05)
    try:
        store_grades(
            storage, grade_lot(storage, load_profile("second-life")), operator="t", why="t"
        )
    finally:
        storage.close()
    with sqlite3.connect(db) as conn:
        _, left_out = lot_records(conn, "L1", station_id="test", originals={})
    assert left_out["TRIP"].startswith("QUARANTINE: run stopped by the voltage_max limit")
    assert left_out["FAULT"].startswith("RETEST: instrument fault")
    assert "no stored grade" in left_out["CAL"]

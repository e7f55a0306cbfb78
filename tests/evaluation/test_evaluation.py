"""The one evaluation path on a stored lot with closed-form figures (tests/evaluation/storedlot).

References and tolerances: capacity ``I * dt * (n - 1/2)`` to 1e-9 Ah (float sums of exact
steps); SoH that over the rated 3 Ah; RTE by an independent ``np.trapezoid`` of V*I over the
stored rows of the two steps, 1e-12 relative; K-value ``(OCV1 - OCV2) / days`` to 1e-9 mV/day;
resistance increase ``(ACIR - BOL) / BOL`` to 1e-9 %.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from station.clock import ManualClock
from station.evaluation import (
    EvaluationError,
    grade_entries,
    grade_lot,
    grade_run,
    main_reason,
    matching_metrics,
    metrics_of,
    run_data,
    store_grades,
)
from station.grading.profiles import load_profile
from station.storage import Storage
from tests.evaluation.storedlot import (
    BOL_OHM,
    RATED_AH,
    T0,
    V_REST,
    Spec,
    rows_for,
    store_lot,
)

SPECS = [
    Spec("C1", rows_for(0.90), 0.018, 0.10),
    Spec("C2", rows_for(0.86), 0.019, 0.12),
    Spec("C3", rows_for(0.75), 0.022, 0.11),
    Spec("C4", rows_for(0.65), 0.026, 0.13),
    Spec("C5", rows_for(0.50), 0.030, 0.10),
    # Below the 0.5 mV/day hard limit, far above the lot: only the lot-relative gate catches it.
    Spec("C6", rows_for(0.88), 0.018, 0.45),
    # Deep-discharged at intake: quarantined whatever its capacity.
    Spec("C7", rows_for(0.90), 0.018, 0.10, ocv_v=2.1),
]


@pytest.fixture(scope="module")
def lot_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("evaluation") / "lot.db"
    store_lot(path, SPECS)
    return path


def test_figures_equal_the_closed_form(lot_db: Path) -> None:
    for spec in SPECS:
        m = metrics_of(lot_db, spec.cell_id)
        assert m.value("capacity_ah") == pytest.approx(spec.capacity_ah, abs=1e-9)
        soh = spec.capacity_ah / RATED_AH * 100.0
        assert m.value("soh_capacity_pct") == pytest.approx(soh, abs=1e-7)
        increase = (spec.acir_ohm - BOL_OHM) / BOL_OHM * 100.0
        assert m.value("resistance_increase_pct") == pytest.approx(increase, abs=1e-9)
        assert m.value("k_mv_per_day") == pytest.approx(spec.k_mv_per_day, abs=1e-9)
        assert m.value("hold_days") == pytest.approx(spec.hold_days, abs=1e-9)
        assert m.value("ocv_v") == spec.ocv_v


def test_rte_against_an_independent_trapezoid(lot_db: Path) -> None:
    run = run_data(lot_db, "run-C1")
    steps = sorted(run.steps.items())
    discharge = next(i for i, k in steps if k == "discharge_cc")
    recharge = next(i for i, k in steps if k == "charge_cccv" and i > discharge)

    def wh(step: int) -> float:
        rows = np.flatnonzero(run.step_index == step)
        rows = np.concatenate([[rows[0] - 1], rows])
        p = run.voltage_v[rows] * run.current_a[rows]
        return float(np.trapezoid(p, run.t_s[rows])) / 3600.0

    expected = -wh(discharge) / wh(recharge)
    assert metrics_of(lot_db, "C1").value("rte") == pytest.approx(expected, rel=1e-12)


def test_lot_grades_use_the_lot_statistics(lot_db: Path) -> None:
    profile = load_profile("second-life")
    graded = grade_lot(lot_db, profile, lot="L1")
    outcome = {g.cell_id: g.outcome for g in graded.grades}
    assert outcome == {
        "C1": "A",
        "C2": "A",
        "C3": "B",
        "C4": "C",
        "C5": "D",
        "C6": "REJECT",
        "C7": "QUARANTINE",
    }
    c6 = graded.grade_of("C6")
    assert c6 is not None
    # The gate's words, the measured value and the limit it failed (lot median + 5 MAD).
    assert main_reason(c6, profile).startswith(
        "self-discharge far above the lot (median + 5 MAD) (k_mv_per_day 0.45 mV/day, limit <= "
    )
    c7 = graded.grade_of("C7")
    assert c7 is not None and "OCV below the manufacturer's minimum" in main_reason(c7, profile)
    assert graded.counts() == {"A": 2, "B": 1, "C": 1, "D": 1, "QUARANTINE": 1, "REJECT": 1}
    assert graded.runs["C1"] == "run-C1"  # the grading run, not the later hold run
    # Graded alone, C6 has no lot to stand out from: the 0.5 mV/day hard limit passes it.
    assert grade_run(lot_db, "run-C6", profile).outcome == "A"


def test_grades_are_stored_append_only_and_regrading_keeps_old_ones(
    lot_db: Path, tmp_path: Path
) -> None:
    db = tmp_path / "copy.db"
    with sqlite3.connect(lot_db) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    profile = load_profile("second-life")
    storage = Storage(db, ManualClock(T0 + 30 * 86400.0), batch_interval_s=0.05)
    try:
        first = store_grades(storage, grade_lot(storage, profile), operator="ann", why="batch")
        newer = replace(profile, version="1.1.0", sha256="f" * 64)
        graded_again = grade_lot(storage, newer)
        second = store_grades(storage, graded_again, operator="bob", why="v1.1")
        history = storage.grades_of("C1")
        assert [g.profile_version for g in history] == ["1.0.0", "1.1.0"]
        assert [g.id for g in history] == [first[0], second[0]]
        assert history[1].supersedes_id == history[0].id and history[0].supersedes_id is None
        assert history[0].operator == "ann" and history[1].operator == "bob"
        assert history[0].grade == history[0].bin == "A"
        assert history[0].explanation["grade"]["rules"]
        latest = storage.latest_grades("L1")
        assert set(latest) == {s.cell_id for s in SPECS}
        assert latest["C1"].profile_version == "1.1.0"
        assert latest["C6"].grade == "REJECT" and latest["C6"].bin == ""
        assert latest["C6"].reason.startswith("self-discharge far above the lot")
        with storage.reader() as conn:
            audits = conn.execute("SELECT count(*) FROM audit WHERE action = 'grade cell'")
            assert audits.fetchone()[0] == 2 * len(SPECS)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            storage.call(lambda c: c.execute("UPDATE grades SET grade = 'A'"))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            storage.call(lambda c: c.execute("DELETE FROM grades"))
        one = storage.record_grade(grade_entries(graded_again)[0], who="cy", why="single")
        assert storage.grades_of(graded_again.grades[0].cell_id)[-1].id == one
        assert storage.verify_audit() is None
    finally:
        storage.close()


def test_errors_name_what_is_missing(lot_db: Path, tmp_path: Path) -> None:
    profile = load_profile("second-life")
    with pytest.raises(EvaluationError, match="does not exist"):
        grade_lot(tmp_path / "none.db", profile)
    with pytest.raises(EvaluationError, match="lot 'nope' holds no cells"):
        grade_lot(lot_db, profile, lot="nope")
    with pytest.raises(EvaluationError, match="run missing is not in the database"):
        run_data(lot_db, "missing")
    with pytest.raises(EvaluationError, match="cell X9 is not in the database"):
        metrics_of(lot_db, "X9")
    not_db = tmp_path / "text.db"
    not_db.write_text("hello", encoding="utf-8")
    with pytest.raises(EvaluationError, match="not a station database"):
        grade_lot(not_db, profile)


def test_matching_compares_the_hold_end_ocv_when_every_cell_has_one(lot_db: Path) -> None:
    """The hold's last OCV record is ``V_REST - K * days`` (storedlot), the intake OCV is the
    spec's; both exact."""
    graded = grade_lot(lot_db, load_profile("second-life"), lot="L1")
    cells, source = matching_metrics(graded.metrics)
    assert source == "hold end"
    for spec, cell in zip(SPECS, cells, strict=True):
        assert spec.k_mv_per_day is not None
        drop = spec.k_mv_per_day * spec.hold_days / 1000.0
        assert cell.value("ocv_v") == pytest.approx(V_REST - drop, abs=1e-12)
    # One cell without a hold: every cell keeps its intake OCV, never a mix.
    without = [replace(graded.metrics[0], figures={"ocv_v": graded.metrics[0].figures["ocv_v"]})]
    cells, source = matching_metrics(without + graded.metrics[1:])
    assert source == "intake"
    assert [c.value("ocv_v") for c in cells] == [s.ocv_v for s in SPECS]

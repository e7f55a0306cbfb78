"""Records built from the database alone (station/passport/stored.py), on the analytic stored lot
of tests/evaluation/storedlot.py, whose figures have closed forms.

References and tolerances: remaining capacity ``I * dt * (n - 1/2)`` to 1e-9 Ah; capacity fade
``(1 - C/C_rated) * 100`` to 1e-7 %; SoC as shipped 100 % (the run ends on a rest at 0 A right
after the CCCV recharge; the cut-off interval's 0.0014 Ah is the CV tail), 1e-9 %; a
charge-counted SoC on a synthetic run against a hand sum, 1e-9 %.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from station.clock import ManualClock
from station.evaluation import RunData, grade_lot, store_grades
from station.grading.profiles import load_profile
from station.passport.record import BatteryStatus, Source
from station.passport.stored import (
    StoredRecordError,
    file_stem,
    passport_id_of,
    read_datasheet,
    state_of_charge_at_end,
    stored_record,
    stored_spectrum,
)
from station.storage import Storage
from tests.evaluation.storedlot import RATED_AH, T0, Spec, rows_for, store_lot

SPECS = [
    Spec("C1", rows_for(0.90), 0.018, 0.10),
    Spec("C2", rows_for(0.86), 0.019, 0.12),
    Spec("C3", rows_for(0.75), 0.022, 0.11),
    Spec("C4", rows_for(0.65), 0.026, 0.13),
    Spec("C5", rows_for(0.50), 0.030, 0.10),
    # Far above the lot's self-discharge: rejected by the lot-relative gate.
    Spec("C6", rows_for(0.88), 0.018, 0.45),
    # Left ungraded.
    Spec("C8", rows_for(0.80), 0.020, 0.11),
]
GRADED = ["C1", "C2", "C3", "C4", "C5", "C6"]


@pytest.fixture(scope="module")
def graded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stored") / "lot.db"
    store_lot(path, SPECS)
    storage = Storage(path, ManualClock(T0 + 30 * 86400.0), batch_interval_s=0.05)
    try:
        graded = grade_lot(storage, load_profile("second-life"), cell_ids=GRADED)
        store_grades(storage, graded, operator="ann", why="test")
    finally:
        storage.close()
    return path


def _conn(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def test_binned_cell_record_from_storage(graded_db: Path) -> None:
    spec = SPECS[0]
    with _conn(graded_db) as conn:
        stored = stored_record(conn, "C1", station_id="st-1", original_passport_id="urn:x:old")
    record = stored.record
    assert record.grade.grade == "A" and record.grade.bin == "A"
    assert record.status is BatteryStatus.REPURPOSED
    assert record.original_passport_id == "urn:x:old"
    assert record.cell.passport_id == passport_id_of("C1")
    assert record.test_id == "run-C1" and record.operator == "ann"
    # reasons: each once
    assert len(set(record.grade.reasons)) == len(record.grade.reasons) >= 1
    capacity = record.require("6.7.2.3")
    assert capacity.source is Source.MEASURED
    assert float(capacity.value) == pytest.approx(spec.capacity_ah, abs=1e-9)
    assert record.number("6.7.2.2") == RATED_AH
    assert record.require("6.7.2.2").source is Source.DATASHEET
    fade = (1 - spec.capacity_ah / RATED_AH) * 100
    assert record.number("6.7.2.4") == pytest.approx(fade, abs=1e-7)
    assert record.number("6.7.2.8") == pytest.approx(100.0, abs=1e-9)
    # the analytic runs are flagged simulated in storage; so is the record
    assert stored.simulated and record.station_id == "st-1 [SIMULATED]"
    assert record.started_at.timestamp() == pytest.approx(T0)
    assert stored.raw.t_s[0] == 0.0 and np.all(np.diff(stored.raw.t_s) > 0)
    assert stored.record.to_dict()["raw_data_sha256"] == record.raw_data_sha256


def test_record_is_the_same_every_time(graded_db: Path) -> None:
    with _conn(graded_db) as conn:
        first = stored_record(conn, "C2", station_id="s", original_passport_id="urn:x:o")
        second = stored_record(conn, "C2", station_id="s", original_passport_id="urn:x:o")
    assert first.record.canonical() == second.record.canonical()


def test_status_follows_the_grade(graded_db: Path) -> None:
    with _conn(graded_db) as conn:
        rejected = stored_record(conn, "C6", station_id="s").record
        assert rejected.grade.grade == "REJECT"
        assert rejected.status is BatteryStatus.WASTE
        with pytest.raises(StoredRecordError, match="original passport"):
            stored_record(conn, "C1", station_id="s")


def test_unknown_and_ungraded_cells_are_refused(graded_db: Path) -> None:
    with _conn(graded_db) as conn:
        with pytest.raises(StoredRecordError, match="'C9' is not in the database"):
            stored_record(conn, "C9", station_id="s")
        with pytest.raises(StoredRecordError, match="'C8' has no stored grade"):
            stored_record(conn, "C8", station_id="s")


def test_datasheet_values_replace_the_cell_record(graded_db: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.json"
    sheet.write_text(
        json.dumps(
            {
                "format": "station-datasheet/1",
                "document_id": "DS-1",
                "issued": "2020-01-02",
                "values": {"6.7.2.2": 3.2, "6.1.3.6": 0.07, "6.7.3.2#soc=20": 40.0},
            }
        ),
        encoding="utf-8",
    )
    values = read_datasheet(sheet).values
    assert {v.key for v in values} == {"6.7.2.2", "6.1.3.6", "6.7.3.2#soc=20"}
    assert next(v for v in values if v.qualifier == "soc=20").conditions.soc_pct == 20.0
    with _conn(graded_db) as conn:
        record = stored_record(
            conn,
            "C1",
            station_id="s",
            imported=values,
            identity={"warranty_period": "P8Y", "date_of_manufacture": "2019-05-01"},
            original_passport_id="urn:x:o",
        ).record
    assert record.cell.warranty_period == "P8Y"
    assert record.cell.date_of_manufacture is not None
    assert record.cell.date_of_manufacture.isoformat() == "2019-05-01"
    assert record.number("6.7.2.2") == 3.2
    assert record.require("6.7.2.2").origin == "datasheet:DS-1"
    for bad, message in (
        ({"format": "x"}, "not a station-datasheet/1"),
        (
            {"format": "station-datasheet/1", "document_id": "D", "issued": "2020-01-01",
             "values": {"9.9.9": 1}},
            "unknown DIN clause",
        ),
        (
            {"format": "station-datasheet/1", "document_id": "D", "issued": "2020-01-01",
             "values": {"6.7.2.2": "big"}},
            "expected a number",
        ),
        (
            {"format": "station-datasheet/1", "document_id": "D", "issued": "2020-01-01",
             "values": {}, "identity": {"colour": "red"}},
            "unknown field",
        ),
    ):  # fmt: skip
        sheet.write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(StoredRecordError, match=message):
            read_datasheet(sheet)


def _run(step_index: list[int], t_s: list[float], current_a: list[float]) -> RunData:
    n = len(t_s)
    return RunData(
        run_id="r", run_pk=1, cell_id="c", lot="", chemistry="NMC", rated_capacity_ah=2.0,
        bol_resistance_ohm=None, voltage_min_v=2.5, voltage_max_v=4.2, recipe_name="x",
        outcome="completed", reason="", started_t_s=0.0, ended_t_s=t_s[-1],
        seq=np.arange(n), t_s=np.array(t_s), step_index=np.array(step_index),
        voltage_v=np.full(n, 3.7), current_a=np.array(current_a), temperature_c=None,
        steps={0: "discharge_cc", 1: "charge_cccv", 2: "soc_move"}, labels={}, measurements={},
    )  # fmt: skip


def test_state_of_charge_counts_from_the_recharge_end() -> None:
    # recharge ends at t=20 s; then -2 A for 1800 s within step 2: 1 Ah out of 2 Ah -> 50 %
    # exactly (the 1 s from the recharge's last row to step 2's first row is a step boundary).
    run = _run([0, 0, 1, 1, 2, 2], [0, 10, 15, 20, 21, 1821], [-1, -1, 1, 0, -2, -2])
    assert state_of_charge_at_end(run, 2.0) == pytest.approx(50.0, abs=1e-9)
    # a count outside 0-100 % is no measurement
    assert state_of_charge_at_end(run, 0.5) is None
    assert state_of_charge_at_end(run, float("nan")) is None


@pytest.mark.parametrize("gap_s", [0.5, 10.0, 300.0])
def test_state_of_charge_is_exact_with_coarse_samples_at_step_boundaries(gap_s: float) -> None:
    # CV tail cut off at 0.1 A, then a rest (0 A) and a -1 A move of 720 s (0.2 Ah of 2 Ah), with
    # a gap of gap_s before each step's first row. Per-step trapezoids of these constant-current
    # steps are exact: 100 % - 10 % = 90 % whatever the gaps (a trapezoid across the boundaries
    # would add 0.1 A * gap / 2 and count the move's first gap too).
    t_rest = 20.0 + gap_s
    t_move = t_rest + 60.0 + gap_s
    run = _run(
        [0, 1, 1, 3, 3, 2, 2, 2],
        [0, 10, 20, t_rest, t_rest + 60, t_move, t_move + 360, t_move + 720],
        [-1, 1, 0.1, 0, 0, -1, -1, -1],
    )
    run = replace(run, steps={**run.steps, 3: "rest"})
    assert state_of_charge_at_end(run, 2.0) == pytest.approx(90.0, abs=1e-9)
    tail = _run([0, 1, 1, 2], [0, 10, 20, 20 + gap_s], [-1, 1, 0.1, 0.0])
    assert state_of_charge_at_end(tail, 2.0) == pytest.approx(100.0, abs=1e-12)


def test_stored_spectrum_keeps_the_valid_points() -> None:
    run = _run([0, 1], [0.0, 1.0], [-1.0, 1.0])
    assert stored_spectrum(run) is None
    points = [
        [1000.0, 0.025, -3e-5, 3.6, "valid"],
        [20.0, float("nan"), float("nan"), 3.6, "over_range"],
        [10.0, 0.031, -0.004, 3.6, "valid"],
    ]
    found = stored_spectrum(replace(run, measurements={"eis": {"points": points}}))
    assert found is not None
    frequency, z = found
    assert frequency.tolist() == [1000.0, 10.0]
    assert z.tolist() == [complex(0.025, -3e-5), complex(0.031, -0.004)]


def test_file_stem_keeps_ids_safe() -> None:
    assert file_stem("C1") == "C1"
    assert file_stem("../a b/c") == "a-b-c"
    assert file_stem("///") == "cell"

"""Station objects shown in the GUI: bench instruments, recipes in words, history from storage."""

from __future__ import annotations

from pathlib import Path

from station.cells import Cell
from station.clock import ManualClock
from station.config import load_preset
from station.events import RunStarted, Sample
from station.grading.profiles import grade_cell, load_profile
from station.grading.results import CellMetrics, Figure, Verdict
from station.recipes import loads_recipe, recipe_names, shipped_recipe
from station.storage import RunRecord, Storage, StoredGrade
from ui.adapters import (
    describe_step,
    instruments_from_bench,
    recipe_info,
    storage_history,
)
from ui.grading import grade_view_from_stored

T0 = 1_800_000_000.0

CELL = Cell(
    "CELL-1",
    lot="LOT-1",
    chemistry="NMC",
    format="cylindrical",
    rated_capacity_ah=2.0,
    voltage_min_v=2.5,
    voltage_max_v=4.2,
    max_charge_current_a=2.0,
    max_discharge_current_a=4.0,
)

RECIPE = """
[recipe]
name = "two-step"
version = 3
description = "rest then discharge"
assumed_start_soc = 0.5

[[steps]]
type = "rest"
duration_s = 600

[[steps]]
type = "discharge_cc"
current_a = 1.0
measure_capacity = true
label = "capacity"
"""


def test_recipe_info_lists_steps_and_estimated_duration() -> None:
    info = recipe_info(loads_recipe(RECIPE), CELL, profile="nmc-second-life")
    assert info.steps == (
        "Rest 600 s",
        "capacity: CC discharge at 1 A to the cell's limit (measures capacity)",
    )
    # 600 s rest + half of 2 Ah at 1 A = 600 + 3600 = 4200 s (hand calculation).
    assert info.estimated_duration_s == 4200.0
    assert info.extra["version"] == "3" and info.profile == "nmc-second-life"


def test_every_shipped_recipe_step_has_words() -> None:
    for name in recipe_names():
        recipe = shipped_recipe(name)
        for step in recipe.steps:
            text = describe_step(step)
            assert text and text != type(step).__name__, (name, text)


def test_instruments_from_sim_bench() -> None:
    bench = load_preset("sim-demo")
    rows = instruments_from_bench(bench, {"cabinet": "NEWARE BTS SIMULATED"})
    by_name = {row.name: row for row in rows}
    assert set(by_name) == set(bench.instruments)
    assert by_name["cabinet"].connected and by_name["cabinet"].identity == "NEWARE BTS SIMULATED"
    assert not by_name["acir"].connected
    assert by_name["acir"].calibration_due == "2099-12-31"


def test_history_reads_back_what_storage_committed(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "s.db", ManualClock(T0), batch_interval_s=0.05)
    try:
        storage.add_cells([CELL], who="test")
        storage.begin_run(
            RunRecord(
                "run-1",
                "ch01",
                "CELL-1",
                "two-step",
                3,
                "h",
                "[recipe]",
                "cabinet",
                "SN1",
                "2099-01-01",
                True,
                False,
                "tester",
                T0,
            )
        )
        storage.handle_event(RunStarted("run-1", "ch01", "CELL-1", "two-step", T0, True))
        sent = [
            Sample("run-1", "ch01", seq, T0 + seq, 0, 3.0 + seq / 100, -1.0, 25.0 if seq else None)
            for seq in range(50)
        ]
        for sample in sent:
            storage.handle_event(sample)
        storage.flush()
        assert storage_history(storage)("run-1", "ch01") == sent
    finally:
        storage.close()


def test_stored_grade_keeps_the_grading_cores_words_and_verdicts() -> None:
    profile = load_profile("second-life")
    metrics = CellMetrics(
        "CELL-1",
        "nmc",
        figures={"ocv_v": Figure(2.1, "V", 0.001), "hold_days": Figure(10.0, "d")},
        facts={"damaged": False, "calendar_expired": False, "traceable": True},
    )
    grade = grade_cell(metrics, profile)
    # As station.evaluation.grade_entries stores it.
    stored = StoredGrade(
        cell_id="CELL-1",
        run_ids=("run-9",),
        profile_name=grade.profile_name,
        profile_version=grade.profile_version,
        profile_sha256=grade.profile_sha256,
        grade=grade.outcome,
        bin="",
        use=grade.use,
        reason=grade.summary,
        explanation={"grade": grade.to_dict(), "figures": metrics.to_dict()["figures"]},
    )
    view = grade_view_from_stored(stored)
    assert (view.cell_id, view.run_id, view.grade) == ("CELL-1", "run-9", grade.outcome)
    assert view.grade == "QUARANTINE", "2.1 V is below the NMC minimum of 2.5 V"
    assert view.summary == grade.summary
    assert view.figures == (("hold_days", 10.0, "d"), ("ocv_v", 2.1, "V"))
    assert len(view.reasons) == len(grade.rules)
    for reason, result in zip(view.reasons, grade.rules, strict=True):
        words = result.explanation.removeprefix(f"[second-life v{grade.profile_version}] ")
        assert reason.plain() == f"{result.rule}: {words}"
        assert reason.verdict == result.verdict.value
        assert reason.passed is (result.verdict is Verdict.PASS)
    ocv = next(r for r in view.reasons if r.rule == "ocv-above-minimum")
    # margin = value - threshold for ">=": 2.1 - 2.5 = -0.4 V (hand calculation).
    assert ocv.verdict == "fail" and abs(ocv.margin + 0.4) < 1e-12

"""The daily reference-cell check in the instruments view, over the simulator: measure the
reference cell in the meter's fixture, compare with its reference values, store, show pass/fail
and when the next check is due; a check taken with the meter's calibration overdue is flagged.

Reference for "pass" and "fail": the simulator's own model of the cell in the fixture (1 kHz
impedance real part, terminal voltage), read in-process; the stored verdict is checked against
|measured - expected| <= tolerance computed here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from PySide6 import QtCore

from tests.gui.test_sim_intake import SimStation, station  # noqa: F401 - the fixture
from ui.refcheck import ReferenceCell, ReferenceChecker, load_reference_cells

REFERENCE = "REV0070000160"  # a lot cell on no channel, kept as the bench's reference


def model_values(sim: SimStation) -> tuple[float, float]:
    meter = sim.place_in_meter(REFERENCE)
    with meter.lock:
        assert meter.cell is not None
        meter.cell.advance_to(meter.clock.now())
        return meter.cell.terminal_voltage_v, float(meter.cell.impedance(1000.0).real)


def run_check(qtbot, sim: SimStation, cell: ReferenceCell, *, bench=None) -> object:
    controller = sim.window.controller
    controller.reference_checker = ReferenceChecker(
        bench or sim.sim.config,
        sim.storage,
        sim.engine.measure_screen,
        [cell],
        clock=sim.storage.clock,
        operator="gui-test",
    )
    panel = sim.window.instruments_view.refcheck
    panel.set_cells([cell])
    with (
        qtbot.waitSignal(controller.reference_history, timeout=30_000),
        qtbot.waitSignal(controller.reference_checked, timeout=30_000) as checked,
    ):
        qtbot.mouseClick(panel.run_button, QtCore.Qt.MouseButton.LeftButton)
    return checked.args[0]


def test_reference_check_pass_fail_due_and_flagged(qtbot, station: SimStation) -> None:  # noqa: F811
    ocv_v, acir_ohm = model_values(station)
    panel = station.window.instruments_view.refcheck
    good = ReferenceCell(REFERENCE, "ch01", ocv_v, 0.002, acir_ohm, 0.02 * acir_ohm)

    result = run_check(qtbot, station, good)
    assert result.passed and not result.flagged
    assert panel.verdict.text().startswith(f"{REFERENCE} on SIMULATED-7: PASS")
    stored = station.storage.last_reference_checks()
    assert [c.quantity for c in stored] == ["acir_ohm", "ocv_v"]
    for check in stored:
        acir = check.quantity == "acir_ohm"
        truth, tolerance = (acir_ohm, 0.01 * acir_ohm) if acir else (ocv_v, 1e-3)
        assert abs(check.measured - truth) <= tolerance
        assert check.passed is (abs(check.measured - check.expected) <= check.tolerance)
    assert panel.due.text().startswith("SIMULATED-7: checked today; next due ")
    assert "#2e7d32" in panel.due.styleSheet()
    assert panel.table.rowCount() == 2

    # Reference values 3 tolerances away from what the cell really reads: the check fails.
    off = dataclasses.replace(good, acir_ohm=acir_ohm + 3 * good.acir_tolerance_ohm)
    result = run_check(qtbot, station, off)
    assert not result.passed
    assert "FAIL" in panel.verdict.text() and "ACIR" in panel.verdict.text()
    newest = station.storage.last_reference_checks(2)
    acir = next(c for c in newest if c.quantity == "acir_ohm")
    assert not acir.passed and abs(acir.measured - acir.expected) > acir.tolerance
    assert panel.due.text() == "SIMULATED-7: DUE: today's check failed; repeat it before grading"
    assert "#c62828" in panel.due.styleSheet()

    # The same good values, but the meter's calibration ran out yesterday (station clock, as the
    # engine's pre-start check counts it): stored, flagged, not a pass.
    today = dt.datetime.fromtimestamp(station.storage.clock.now(), dt.UTC).date()
    yesterday = today - dt.timedelta(days=1)
    bench = station.sim.config
    overdue = dataclasses.replace(bench.instruments["acir"], calibration_due=yesterday)
    bench = dataclasses.replace(bench, instruments={**bench.instruments, "acir": overdue})
    result = run_check(qtbot, station, good, bench=bench)
    assert result.flagged == f"meter calibration overdue (due {yesterday.isoformat()})"
    assert not result.passed and all(q.passed for q in result.quantities)
    assert "FLAGGED: meter calibration overdue" in panel.verdict.text()
    with station.storage.reader() as conn:
        actions = [row[0] for row in conn.execute("SELECT action FROM audit ORDER BY id")]
    assert actions.count("reference check flagged") == 1
    assert actions.count("reference check failed") == 1


def test_reference_cells_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "refs.toml"
    path.write_text(
        '[[reference_cells]]\ncell_id = "REF-1"\nchannel = "ch01"\nocv_v = 3.65\n'
        "ocv_tolerance_v = 0.005\nacir_ohm = 0.0212\nacir_tolerance_ohm = 0.0005\n",
        encoding="utf-8",
    )
    assert load_reference_cells(path) == [
        ReferenceCell("REF-1", "ch01", 3.65, 0.005, 0.0212, 0.0005)
    ]
    path.write_text('[[reference_cells]]\ncell_id = "REF-1"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"reference_cells\[1\]: needs exactly the keys"):
        load_reference_cells(path)

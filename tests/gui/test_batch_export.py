"""Passport exports and the lot report from the batch view, over the simulator: a cell is
scanned, run (``second-life-full``: the capacity discharge a passport needs, the pulses the
certificate's resistance needs) and graded in the window, with a second cell run on
``incoming-inspection`` (no pulses); then the batch view exports the first cell's AAS and BDF
passports and writes the lot report (the second cell listed without a certificate), on
workers, through the same station code as ``station export`` / ``station report``.

References, independent of the GUI: every signed record verifies against the station key's
public half (:func:`station.passport.signing.verify_bytes`) and holds the grade stored in the
database (read back through Storage); the BDF sidecar's SHA-256 of the CSV matches the bytes on
disk (hashlib); the PDFs, read by poppler's ``pdftotext``, name the cell.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6 import QtCore

from station.passport.signing import KEY_ENV, StationKey, verify_bytes
from tests.gui.test_sim_intake import GOOD_CELL, SimStation, open_station
from tests.gui.test_window_flow import scan
from ui.batch_export import Outcome, PassportRequest
from ui.views import PassportDialog


def _pdf_text(path: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    )
    return done.stdout


SPEED = 3600.0
"""Simulated seconds per wall second: second-life-full (the capacity discharge a passport needs,
the pulses a certificate's resistance needs) takes many simulated hours."""


@pytest.fixture
def station(qtbot, settings, tmp_path: Path) -> Iterator[SimStation]:
    with open_station(qtbot, settings, tmp_path, speed=SPEED) as opened:
        yield opened


def _grade_two_cells(qtbot, station: SimStation) -> str:
    """GOOD_CELL scanned and run on ``second-life-full``; ch02's cell, started from the bench,
    on ``incoming-inspection`` (no pulse step, so no DC resistance). Returns ch02's cell."""
    window, controller = station.window, station.window.controller
    other = next(cell for cell, channel in controller.positions.items() if channel == "ch02")
    controller.recipe = "incoming-inspection"
    controller.start_run("ch02", other)
    qtbot.waitUntil(lambda: controller.state.channel("ch02").run_id is not None, timeout=30_000)
    controller.recipe = "second-life-full"
    station.place_in_meter(GOOD_CELL)
    with qtbot.waitSignal(controller.intake_result, timeout=30_000):
        scan(qtbot, window, GOOD_CELL)
    qtbot.keyClick(window.intake.field, QtCore.Qt.Key.Key_Return)  # Enter starts assigned cells
    qtbot.waitUntil(lambda: window.batch.model.rowCount() == 2, timeout=300_000)
    return other


def _verified_record(path: Path, key: StationKey) -> dict:
    result = verify_bytes(path.read_bytes(), [key.public_key])
    assert result.problems == [] and result.trusted, (path, result.problems)
    return result.document


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
def test_batch_view_exports_passports_and_writes_the_lot_report(
    qtbot,
    station: SimStation,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = tmp_path / "station-key.pem"
    monkeypatch.setenv(KEY_ENV, str(key_file))
    controller, batch = station.window.controller, station.window.batch
    other = _grade_two_cells(qtbot, station)
    stored = station.storage.latest_grades()[GOOD_CELL]

    threads: list[str] = []
    export, report = controller.passport_exporter, controller.lot_reporter
    assert export is not None and report is not None

    def exporting(request: PassportRequest) -> Outcome:
        threads.append(threading.current_thread().name)
        return export(request)

    def reporting(lot: str, folder: str) -> Outcome:
        threads.append(threading.current_thread().name)
        return report(lot, folder)

    controller.passport_exporter, controller.lot_reporter = exporting, reporting

    cells = [batch.proxy.index(row, 0).data() for row in range(batch.proxy.rowCount())]
    batch.table.selectRow(cells.index(GOOD_CELL))
    assert batch.selected_cells() == [GOOD_CELL]
    out = tmp_path / "passports"
    for fmt in ("aas", "bdf"):
        dialog = PassportDialog(batch.selected_cells(), str(out), batch)
        dialog.format.setCurrentIndex(dialog.format.findData(fmt))
        request = dialog.request()
        assert request == PassportRequest((GOOD_CELL,), fmt, str(out))
        with qtbot.waitSignal(controller.batch_exported, timeout=60_000) as done:
            batch.request_passports(request)
            assert not batch.passports_button.isEnabled()  # busy while the worker writes
        outcome = done.args[0]
        assert outcome.ok, outcome.summary
        assert batch.export_status.text() == outcome.summary
        assert "[SIMULATED data]" in outcome.summary
        assert batch.passports_button.isEnabled()
    key = StationKey.load_or_create(key_file)
    names = sorted(p.name for p in out.iterdir())
    # The raw exports carry the BDF file stem (institution, cell, start date, run).
    bdf_csv = next(out.glob(f"*{GOOD_CELL}*.bdf.csv"))
    sidecar = next(out.glob(f"*{GOOD_CELL}*.meta.json"))
    assert names == sorted(
        [
            f"{GOOD_CELL}.record.signed.json",
            f"{GOOD_CELL}.aas.json",
            f"{GOOD_CELL}.aasx",
            bdf_csv.name,
            sidecar.name,
        ]
    ), names
    record = _verified_record(out / f"{GOOD_CELL}.record.signed.json", key)
    assert record["cell"]["serial_number"] == GOOD_CELL
    assert record["grade"]["grade"] == stored.grade
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    digest = hashlib.sha256(bdf_csv.read_bytes()).hexdigest()
    assert meta["file_sha256"][bdf_csv.name] == digest
    aas = json.loads((out / f"{GOOD_CELL}.aas.json").read_text(encoding="utf-8"))
    assert GOOD_CELL in json.dumps(aas)

    # idta without the BMS read-out and datasheet: one plain line, nothing written.
    with qtbot.waitSignal(controller.batch_exported, timeout=60_000) as done:
        batch.request_passports(PassportRequest((GOOD_CELL,), "idta", str(tmp_path / "idta")))
    outcome = done.args[0]
    assert not outcome.ok and "\n" not in outcome.summary
    assert "BMS read-out and datasheet" in outcome.summary
    assert not (tmp_path / "idta").exists() or not list((tmp_path / "idta").iterdir())
    assert "color: #c62828" in batch.export_status.styleSheet()

    lot = station.storage.get_cell(GOOD_CELL).lot
    qtbot.waitUntil(lambda: batch.lot.count() > 0, timeout=5000)
    assert batch.lot.currentText() == lot
    report_dir = tmp_path / "report"
    with qtbot.waitSignal(controller.batch_exported, timeout=120_000) as done:
        batch.request_report(lot, str(report_dir))
    outcome = done.args[0]
    assert outcome.ok, outcome.summary
    assert "1 certificate(s)" in outcome.summary
    with station.storage.reader() as conn:
        (in_lot,) = conn.execute("SELECT COUNT(*) FROM cells WHERE lot = ?", (lot,)).fetchone()
    assert outcome.lines[-2].startswith(f"{other}: no certificate: ")
    assert "no value for 6.7.5#method=dcir" in outcome.lines[-2]
    assert outcome.lines[-1] == f"{in_lot - 2} cell(s) of the lot have no stored grade yet"
    batch_pdf = report_dir / "batch-report.pdf"
    certificate = report_dir / "certificates" / f"{GOOD_CELL}.pdf"
    signed = report_dir / "records" / f"{GOOD_CELL}.record.signed.json"
    for path in (batch_pdf, certificate, signed, report_dir / "summary.csv"):
        assert str(path.relative_to(report_dir)) in outcome.lines
    batch_text = _pdf_text(batch_pdf)
    assert GOOD_CELL in batch_text
    assert other in batch_text.split("not in this report", 1)[1]  # listed as left out
    assert not (report_dir / "certificates" / f"{other}.pdf").exists()
    assert GOOD_CELL in _pdf_text(certificate)
    assert _verified_record(signed, key)["grade"]["grade"] == stored.grade
    log = batch.export_log.toPlainText().splitlines()
    assert log[-len(outcome.lines) - 1] == outcome.summary
    assert log[-1] == f"  {outcome.lines[-1]}"
    assert len(threads) == 4 and all(name.startswith("gui-worker") for name in threads)
    assert threading.current_thread().name == "MainThread"


def test_passport_dialog_asks_for_the_bms_readout_and_datasheet_for_idta(
    qtbot, tmp_path: Path
) -> None:
    dialog = PassportDialog([], "")
    qtbot.addWidget(dialog)
    assert dialog.all_graded.isChecked() and not dialog.only_selected.isEnabled()
    assert not dialog.bms_readout.isEnabled()
    dialog.format.setCurrentIndex(dialog.format.findData("idta"))
    assert dialog.bms_readout.isEnabled() and dialog.datasheet.isEnabled()
    dialog._accept()
    assert dialog.problem.text() == "Choose an output folder."
    dialog.folder.setText(str(tmp_path))
    dialog._accept()
    assert dialog.problem.text() == "idta needs the BMS read-out and the datasheet."
    bms, sheet = str(tmp_path / "bms.json"), str(tmp_path / "sheet.json")
    dialog.bms_readout.setText(bms)
    dialog.datasheet.setText(sheet)
    assert dialog.request() == PassportRequest((), "idta", str(tmp_path), bms, sheet)
    dialog.format.setCurrentIndex(dialog.format.findData("csv"))
    assert dialog.request() == PassportRequest((), "csv", str(tmp_path))

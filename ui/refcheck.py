"""The daily reference-cell check: measure a known cell, compare with its reference values.

A reference cell is a stable cell kept at the bench whose OCV (V) and 1 kHz ACIR (ohm) are known
with a tolerance (from its certificate or the lab's own characterisation). Once a day, before
grading, the technician puts it in the impedance meter's fixture and runs the check: the meter
must read both values within tolerance. Each quantity is stored as one row of
``reference_checks`` (:meth:`station.storage.Storage.record_reference_check`). A check taken
while the meter's calibration is overdue is stored as it was measured but flagged here and in
the audit trail, and does not count as passed: an uncalibrated meter cannot vouch for itself.

Reference cells are listed in a TOML file::

    [[reference_cells]]
    cell_id = "REF-0001"
    channel = "ch01"            # whose ACIR meter takes the reading
    ocv_v = 3.650
    ocv_tolerance_v = 0.005
    acir_ohm = 0.0212
    acir_tolerance_ohm = 0.0005

:class:`ReferenceChecker` blocks (it measures and writes), so the GUI runs it in a worker.
:class:`RefCheckPanel` is the widget in the instruments view.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PySide6 import QtCore, QtGui, QtWidgets

from station.clock import Clock
from station.config import BenchConfig
from station.storage.db import ReferenceCheck
from ui.screening import SCREEN_TIMEOUT_S, MeasureScreen

REFERENCE_FIELDS = (
    "cell_id",
    "channel",
    "ocv_v",
    "ocv_tolerance_v",
    "acir_ohm",
    "acir_tolerance_ohm",
)


@dataclass(frozen=True)
class ReferenceCell:
    """A reference cell and its reference values: OCV in V, ACIR in ohm, each with a tolerance."""

    cell_id: str
    channel: str
    ocv_v: float
    ocv_tolerance_v: float
    acir_ohm: float
    acir_tolerance_ohm: float


def load_reference_cells(path: str | Path) -> list[ReferenceCell]:
    """Reference cells from a TOML file (see the module docstring); ValueError names the entry."""
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    cells: list[ReferenceCell] = []
    for index, entry in enumerate(data.get("reference_cells", []), start=1):
        where = f"{path}: reference_cells[{index}]"
        if not isinstance(entry, dict) or set(entry) != set(REFERENCE_FIELDS):
            raise ValueError(f"{where}: needs exactly the keys {', '.join(REFERENCE_FIELDS)}")
        try:
            cell = ReferenceCell(
                str(entry["cell_id"]),
                str(entry["channel"]),
                *(float(entry[key]) for key in REFERENCE_FIELDS[2:]),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        if cell.ocv_tolerance_v <= 0 or cell.acir_tolerance_ohm <= 0:
            raise ValueError(f"{where}: tolerances must be positive")
        cells.append(cell)
    return cells


def serial_of(instrument: str) -> str:
    """The serial from an identity text ``make model s/n SERIAL fw ...`` (all of it if none)."""
    parts = instrument.split()
    if "s/n" in parts and parts.index("s/n") + 1 < len(parts):
        return parts[parts.index("s/n") + 1]
    return instrument


@dataclass(frozen=True)
class QuantityCheck:
    quantity: str
    """``ocv_v`` (V) or ``acir_ohm`` (ohm)."""
    measured: float | None
    expected: float
    tolerance: float
    passed: bool


@dataclass(frozen=True)
class RefCheckResult:
    """One reference-cell check as the GUI shows it."""

    cell_id: str
    instrument: str
    serial: str
    t_s: float
    quantities: tuple[QuantityCheck, ...]
    flagged: str = ""
    """Why the result cannot be trusted (e.g. the meter's calibration is overdue); empty if none."""

    @property
    def passed(self) -> bool:
        """Every quantity within tolerance and nothing flagged."""
        return not self.flagged and all(q.passed for q in self.quantities)

    def summary(self) -> str:
        parts = []
        for q in self.quantities:
            scale, unit = (1.0, "V") if q.quantity == "ocv_v" else (1000.0, "mΩ")
            name = "OCV" if q.quantity == "ocv_v" else "ACIR"
            measured = "no reading" if q.measured is None else f"{q.measured * scale:.4g} {unit}"
            reference = f"ref {q.expected * scale:.4g} ± {q.tolerance * scale:.2g} {unit}"
            parts.append(f"{name} {measured} ({reference}) {'ok' if q.passed else 'OUT'}")
        verdict = "PASS" if self.passed else "FAIL"
        if self.flagged:
            verdict = f"FLAGGED: {self.flagged}"
        return f"{self.cell_id} on {self.serial}: {verdict} - {'; '.join(parts)}"


class ReferenceStore(Protocol):
    def record_reference_check(
        self,
        *,
        instrument_serial: str,
        reference_cell_id: str,
        quantity: str,
        measured: float,
        expected: float,
        tolerance: float,
        operator: str,
    ) -> bool: ...

    def last_reference_checks(self, limit: int = 50) -> list[ReferenceCheck]: ...

    def audit(self, who: str, action: str, subject: str, detail: str, why: str) -> None: ...


class ReferenceChecker:
    """Measures a reference cell on its channel's meter, compares, stores (blocks)."""

    def __init__(
        self,
        bench: BenchConfig,
        storage: ReferenceStore,
        measure: MeasureScreen,
        cells: Sequence[ReferenceCell],
        *,
        clock: Clock,
        operator: str,
        timeout_s: float = SCREEN_TIMEOUT_S,
    ) -> None:
        self.bench = bench
        self.clock = clock
        self.storage = storage
        self.measure = measure
        self.cells = {cell.cell_id: cell for cell in cells}
        self.operator = operator
        self.timeout_s = timeout_s

    def calibration_due(self, channel: str) -> dt.date | None:
        meter = self.bench.channels[channel].acir_meter
        return None if meter is None else self.bench.instruments[meter].calibration_due

    def check(self, cell_id: str) -> RefCheckResult:
        ref = self.cells[cell_id]
        reading = self.measure(ref.channel, self.timeout_s)
        serial = serial_of(reading.instrument)
        # The station clock's day, as the engine's pre-start calibration check counts it.
        day = dt.datetime.fromtimestamp(reading.t_s, dt.UTC).date()
        due = self.calibration_due(ref.channel)
        flagged = ""
        if due is None or due < day:
            flagged = f"meter calibration overdue (due {due.isoformat() if due else 'unknown'})"
        quantities = []
        for quantity, measured, expected, tolerance in (
            ("ocv_v", reading.ocv_v, ref.ocv_v, ref.ocv_tolerance_v),
            ("acir_ohm", reading.acir_ohm, ref.acir_ohm, ref.acir_tolerance_ohm),
        ):
            passed = False
            if measured is not None:
                passed = self.storage.record_reference_check(
                    instrument_serial=serial,
                    reference_cell_id=ref.cell_id,
                    quantity=quantity,
                    measured=measured,
                    expected=expected,
                    tolerance=tolerance,
                    operator=self.operator,
                )
            quantities.append(QuantityCheck(quantity, measured, expected, tolerance, passed))
        result = RefCheckResult(
            ref.cell_id, reading.instrument, serial, reading.t_s, tuple(quantities), flagged
        )
        if flagged or not result.passed:
            self.storage.audit(
                self.operator,
                "reference check flagged" if flagged else "reference check failed",
                serial,
                result.summary(),
                flagged or "reference cell out of tolerance",
            )
        return result

    def history(self, limit: int = 50) -> tuple[list[ReferenceCheck], str]:
        """The newest stored checks and when the newest-checked meter's next check is due."""
        checks = self.storage.last_reference_checks(limit)
        if not checks:
            return checks, "DUE: no reference check stored yet"
        today = dt.datetime.fromtimestamp(self.clock.now(), dt.UTC).date()
        serial = checks[0].instrument_serial
        return checks, f"{serial}: {due_text(checks, serial, today)}"


def due_text(checks: Sequence[ReferenceCheck], serial: str, today: dt.date) -> str:
    """When the daily check of the meter ``serial`` is due, from the stored checks (newest first).

    A day counts as checked when every quantity of the day's newest check passed.
    """
    latest: dict[str, ReferenceCheck] = {}
    for check in checks:
        if check.instrument_serial != serial:
            continue
        if dt.datetime.fromtimestamp(check.t_s, dt.UTC).date() == today:
            latest.setdefault(check.quantity, check)
    if latest and all(check.passed for check in latest.values()):
        return f"checked today; next due {(today + dt.timedelta(days=1)).isoformat()}"
    if latest:
        return "DUE: today's check failed; repeat it before grading"
    return "DUE: no reference check today"


class RefCheckPanel(QtWidgets.QGroupBox):
    """Reference-cell check in the instruments view: pick the cell, run, see PASS/FAIL and due."""

    check_requested = QtCore.Signal(str)
    COLUMNS = ("Time (UTC)", "Meter", "Reference cell", "Quantity", "Measured", "Ref ± tol", "")

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Daily reference-cell check", parent)
        self.cells = QtWidgets.QComboBox()
        self.run_button = QtWidgets.QPushButton("Run reference check")
        self.run_button.clicked.connect(self._run)
        self.verdict = QtWidgets.QLabel("No reference cell configured")
        font = self.verdict.font()
        font.setPointSize(14)
        font.setBold(True)
        self.verdict.setFont(font)
        self.verdict.setWordWrap(True)
        self.due = QtWidgets.QLabel("")
        self.table = QtWidgets.QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Reference cell:"))
        row.addWidget(self.cells, 1)
        row.addWidget(self.run_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.verdict)
        layout.addWidget(self.due)
        layout.addWidget(self.table, 1)
        self.set_cells([])

    def set_cells(self, cells: Sequence[ReferenceCell]) -> None:
        self.cells.clear()
        for cell in cells:
            self.cells.addItem(f"{cell.cell_id} on {cell.channel}", cell.cell_id)
        self.run_button.setEnabled(bool(cells))
        if cells:
            self.verdict.setText("Not run yet in this session")

    def _run(self) -> None:
        cell_id = self.cells.currentData()
        if cell_id:
            self.verdict.setStyleSheet("")
            self.verdict.setText(f"Measuring {cell_id}…")
            self.run_button.setEnabled(False)
            self.check_requested.emit(str(cell_id))

    def show_result(self, result: RefCheckResult) -> None:
        self.run_button.setEnabled(True)
        colour = "#2e7d32" if result.passed else "#c62828"
        self.verdict.setStyleSheet(f"color: {colour};")
        self.verdict.setText(result.summary())

    def show_error(self, message: str) -> None:
        self.run_button.setEnabled(True)
        self.verdict.setStyleSheet("color: #c62828;")
        self.verdict.setText(message)

    def show_history(self, checks: Sequence[ReferenceCheck], due: str) -> None:
        self.due.setText(due)
        self.due.setStyleSheet("color: #c62828;" if "DUE:" in due else "color: #2e7d32;")
        self.table.setRowCount(len(checks))
        for row, check in enumerate(checks):
            when = dt.datetime.fromtimestamp(check.t_s, dt.UTC).strftime("%Y-%m-%d %H:%M")
            values = (
                when,
                check.instrument_serial,
                check.reference_cell_id,
                check.quantity,
                f"{check.measured:.5g}",
                f"{check.expected:.5g} ± {check.tolerance:.2g}",
                "pass" if check.passed else "FAIL",
            )
            for col, text in enumerate(values):
                item = QtWidgets.QTableWidgetItem(text)
                if col == 6:
                    item.setForeground(QtGui.QColor("#2e7d32" if check.passed else "#c62828"))
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()

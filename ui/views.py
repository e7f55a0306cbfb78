"""Instruments, recipes and batch-results views."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from station.passport.writer import FORMATS, NEEDS_IMPORTS
from ui.batch_export import Outcome, PassportRequest
from ui.engine_api import GradeView, InstrumentInfo, RecipeInfo
from ui.followups import FollowUpsPanel
from ui.refcheck import RefCheckPanel
from ui.state import format_duration, grade_colour

ItemRole = QtCore.Qt.ItemDataRole


def calibration_overdue(due_iso: str, today: dt.date) -> bool:
    """True when ``due_iso`` (YYYY-MM-DD) is before ``today``; unknown dates count as overdue."""
    try:
        return dt.date.fromisoformat(due_iso) < today
    except ValueError:
        return True


class InstrumentsView(QtWidgets.QWidget):
    """Configured instruments: identity, connection state, calibration due, a connection test
    and the daily reference-cell check."""

    test_requested = QtCore.Signal(str)

    COLUMNS = ("Instrument", "Address", "Identity", "Connection", "Calibration due")

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QtWidgets.QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.test_button = QtWidgets.QPushButton("Test connection")
        self.test_button.clicked.connect(self._test_selected)
        self.status = QtWidgets.QLabel("")
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.table)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.test_button)
        row.addWidget(self.status, 1)
        layout.addLayout(row)
        self.refcheck = RefCheckPanel()
        layout.addWidget(self.refcheck, 1)
        self.instruments: list[InstrumentInfo] = []

    def set_instruments(self, instruments: Sequence[InstrumentInfo], today: dt.date) -> None:
        self.instruments = list(instruments)
        self.table.setRowCount(len(self.instruments))
        for row, info in enumerate(self.instruments):
            values = (
                info.name,
                info.address,
                info.identity or "not identified",
                "connected" if info.connected else "not connected",
                info.calibration_due or "unknown",
            )
            for col, text in enumerate(values):
                item = QtWidgets.QTableWidgetItem(text)
                if col == 3:
                    item.setForeground(QtGui.QColor("#2e7d32" if info.connected else "#c62828"))
                if col == 4 and calibration_overdue(info.calibration_due, today):
                    item.setBackground(QtGui.QColor("#ffcdd2"))
                    item.setText(f"{text} (OVERDUE)")
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()

    def _test_selected(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self.instruments):
            self.status.setText(f"Testing {self.instruments[row].name}…")
            self.test_requested.emit(self.instruments[row].name)


class RecipesView(QtWidgets.QWidget):
    """Pick a recipe; see its steps, grading profile and estimated duration.

    ``recipe_chosen(name)`` is emitted when the technician picks one; new runs use it.
    """

    recipe_chosen = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QtWidgets.QListWidget()
        self.details = QtWidgets.QPlainTextEdit()
        self.details.setReadOnly(True)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.details, 2)
        self.recipes: list[RecipeInfo] = []
        self.list.currentRowChanged.connect(self._show)

    def set_recipes(self, recipes: Sequence[RecipeInfo]) -> None:
        self.recipes = list(recipes)
        self.list.clear()
        for recipe in self.recipes:
            duration = recipe.estimated_duration_s
            self.list.addItem(
                recipe.name if duration is None else f"{recipe.name}  ({format_duration(duration)})"
            )
        if self.recipes:
            self.list.setCurrentRow(0)

    def selected(self) -> RecipeInfo | None:
        row = self.list.currentRow()
        return self.recipes[row] if 0 <= row < len(self.recipes) else None

    def _show(self, row: int) -> None:
        if not 0 <= row < len(self.recipes):
            self.details.clear()
            return
        recipe = self.recipes[row]
        self.recipe_chosen.emit(recipe.name)
        lines = [
            f"Recipe: {recipe.name}",
            f"Grading profile: {recipe.profile or 'default'}",
            "Estimated duration: "
            + (
                "depends on the cell's rated values"
                if recipe.estimated_duration_s is None
                else format_duration(recipe.estimated_duration_s)
            ),
            "",
            "Steps:",
        ]
        lines += [f"  {index}. {step}" for index, step in enumerate(recipe.steps, start=1)]
        lines += [f"{key}: {value}" for key, value in recipe.extra.items()]
        self.details.setPlainText("\n".join(lines))


class BatchResultsModel(QtCore.QAbstractTableModel):
    """One row per graded cell (a re-grade replaces the row); figure columns are the union of
    the grades' figure names."""

    BASE = ("Cell", "Grade", "Bin", "Run")

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[GradeView] = []
        self.figure_columns: list[tuple[str, str]] = []

    def rowCount(self, parent: Any = QtCore.QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Any = QtCore.QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self.BASE) + len(self.figure_columns)

    def headerData(  # noqa: N802 - Qt API
        self, section: int, orientation: QtCore.Qt.Orientation, role: int = ItemRole.DisplayRole
    ) -> Any:
        if role != ItemRole.DisplayRole or orientation != QtCore.Qt.Orientation.Horizontal:
            return None
        if section < len(self.BASE):
            return self.BASE[section]
        name, unit = self.figure_columns[section - len(self.BASE)]
        return f"{name} ({unit})" if unit else name

    def _value(self, grade: GradeView, column: int) -> Any:
        if column < len(self.BASE):
            return (grade.cell_id, grade.grade, grade.bin, grade.run_id)[column]
        name, _unit = self.figure_columns[column - len(self.BASE)]
        for figure_name, value, _ in grade.figures:
            if figure_name == name:
                return value
        return None

    def data(self, index: Any, role: int = ItemRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        grade = self.rows[index.row()]
        value = self._value(grade, index.column())
        if role == ItemRole.DisplayRole:
            if value is None:
                return ""
            return f"{value:.4g}" if isinstance(value, float) else str(value)
        if role == ItemRole.UserRole:
            # Sort key: numbers as numbers, missing values last.
            return float("inf") if value is None else value
        if role == ItemRole.BackgroundRole and index.column() == 1:
            return QtGui.QColor(grade_colour(grade.grade))
        if role == ItemRole.ForegroundRole and index.column() == 1:
            return QtGui.QColor("white")
        return None

    def add(self, grade: GradeView) -> None:
        for row, existing in enumerate(self.rows):
            if existing.cell_id == grade.cell_id:
                self.rows[row] = grade
                self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))
                return
        new_columns = [
            (name, unit)
            for name, _value, unit in grade.figures
            if (name, unit) not in self.figure_columns
        ]
        if new_columns:
            self.beginResetModel()
            self.figure_columns += new_columns
            self.rows.append(grade)
            self.endResetModel()
            return
        self.beginInsertRows(QtCore.QModelIndex(), len(self.rows), len(self.rows))
        self.rows.append(grade)
        self.endInsertRows()


class PassportDialog(QtWidgets.QDialog):
    """Format, cells (selected or every graded one), output folder and, for idta / catenax, the
    BMS read-out and datasheet files with the values the station does not measure."""

    FORMAT_WORDS = {
        "idta": "IDTA-02035 Parts 5, 4, 1 (signed JSON)",
        "catenax": "Catena-X 6.1.0 performance.dynamic (signed JSON)",
        "aas": "AAS JSON + AASX package",
        "bdf": "Battery Data Format CSV + metadata",
        "csv": "station CSV + metadata",
    }

    def __init__(
        self, selected: Sequence[str], folder: str = "", parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export passports")
        self.selected = tuple(selected)
        self.format = QtWidgets.QComboBox()
        for fmt in FORMATS:
            self.format.addItem(f"{fmt}: {self.FORMAT_WORDS[fmt]}", fmt)
        self.format.setCurrentIndex(FORMATS.index("aas"))
        self.only_selected = QtWidgets.QRadioButton(f"Selected cells ({len(self.selected)})")
        self.all_graded = QtWidgets.QRadioButton("Every graded cell")
        (self.only_selected if self.selected else self.all_graded).setChecked(True)
        self.only_selected.setEnabled(bool(self.selected))
        self.folder = QtWidgets.QLineEdit(folder)
        self.bms_readout = QtWidgets.QLineEdit()
        self.bms_readout.setPlaceholderText("station-bms-readout/1 JSON")
        self.datasheet = QtWidgets.QLineEdit()
        self.datasheet.setPlaceholderText("station-datasheet/1 JSON")
        self.imports_note = QtWidgets.QLabel(
            "idta and catenax hold values the station does not measure (usage history, rated "
            "values, nameplate): pick the cells' BMS read-out and datasheet."
        )
        self.imports_note.setWordWrap(True)
        form = QtWidgets.QFormLayout()
        form.addRow("Format", self.format)
        cells = QtWidgets.QVBoxLayout()
        cells.addWidget(self.only_selected)
        cells.addWidget(self.all_graded)
        form.addRow("Cells", cells)
        form.addRow("Output folder", self._with_browse(self.folder, folder=True))
        form.addRow("BMS read-out", self._with_browse(self.bms_readout, folder=False))
        form.addRow("Datasheet", self._with_browse(self.datasheet, folder=False))
        form.addRow(self.imports_note)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        self.problem = QtWidgets.QLabel("")
        self.problem.setStyleSheet("color: #c62828")
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)
        self.format.currentIndexChanged.connect(self._format_changed)
        self._format_changed()
        self.resize(620, self.sizeHint().height())

    def _with_browse(self, field: QtWidgets.QLineEdit, *, folder: bool) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(field, 1)
        browse = QtWidgets.QPushButton("Browse…")
        row.addWidget(browse)

        def pick() -> None:
            if folder:
                chosen = QtWidgets.QFileDialog.getExistingDirectory(self, "Export to")
            else:
                chosen, _ = QtWidgets.QFileDialog.getOpenFileName(
                    self, "Open", "", "JSON (*.json);;All files (*)"
                )
            if chosen:
                field.setText(chosen)

        browse.clicked.connect(pick)
        return box

    def _format_changed(self) -> None:
        needs = self.format.currentData() in NEEDS_IMPORTS
        for widget in (self.bms_readout, self.datasheet, self.imports_note):
            widget.setEnabled(needs)

    def request(self) -> PassportRequest:
        fmt = str(self.format.currentData())
        needs = fmt in NEEDS_IMPORTS
        return PassportRequest(
            cell_ids=self.selected if self.only_selected.isChecked() else (),
            fmt=fmt,
            folder=self.folder.text().strip(),
            bms_readout=self.bms_readout.text().strip() if needs else "",
            datasheet=self.datasheet.text().strip() if needs else "",
        )

    def _accept(self) -> None:
        request = self.request()
        if not request.folder:
            self.problem.setText("Choose an output folder.")
            return
        if request.fmt in NEEDS_IMPORTS and not (request.bms_readout and request.datasheet):
            self.problem.setText(f"{request.fmt} needs the BMS read-out and the datasheet.")
            return
        self.accept()


class BatchView(QtWidgets.QWidget):
    """Sortable, filterable batch results table (filter matches cell, grade or bin) from the
    stored grades, the open follow-ups, and matched groups for an SsPp pack.

    ``refresh_requested()`` asks for the stored grades again; ``match_requested(series,
    parallel)`` for matched groups of the lot on the bench.
    """

    refresh_requested = QtCore.Signal()
    match_requested = QtCore.Signal(int, int)
    export_requested = QtCore.Signal(str)
    """A folder to write the stored grades to (CSV and JSON)."""
    passports_requested = QtCore.Signal(object)
    """A :class:`ui.batch_export.PassportRequest`."""
    report_requested = QtCore.Signal(str, str)
    """(lot, folder) for the batch report PDF, certificates and signed records."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = BatchResultsModel(self)
        self.proxy = QtCore.QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(ItemRole.UserRole)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(QtCore.Qt.CaseSensitivity.CaseInsensitive)
        self.filter = QtWidgets.QLineEdit()
        self.filter.setPlaceholderText("Filter (cell, grade, bin)")
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QtWidgets.QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.refresh_button = QtWidgets.QPushButton("Reload stored grades")
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.export_button = QtWidgets.QPushButton("Export results…")
        self.export_button.clicked.connect(self._choose_export_folder)
        self.export_status = QtWidgets.QLabel("")
        self.export_status.setWordWrap(True)
        self.passports_button = QtWidgets.QPushButton("Export passports…")
        self.passports_button.clicked.connect(self._choose_passports)
        self.lot = QtWidgets.QComboBox()
        self.lot.setPlaceholderText("no lot stored")
        self.report_button = QtWidgets.QPushButton("Write lot report…")
        self.report_button.clicked.connect(self._choose_report_folder)
        self.export_log = QtWidgets.QPlainTextEdit()
        self.export_log.setReadOnly(True)
        self.export_log.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.export_log.setPlaceholderText("Files written by passport exports and lot reports")
        self.last_folder = ""
        self.series = QtWidgets.QSpinBox()
        self.series.setRange(1, 400)
        self.series.setValue(4)
        self.series.setPrefix("S ")
        self.parallel = QtWidgets.QSpinBox()
        self.parallel.setRange(1, 100)
        self.parallel.setValue(1)
        self.parallel.setPrefix("P ")
        self.match_button = QtWidgets.QPushButton("Build matched groups")
        self.match_button.clicked.connect(self._match)
        self.groups = QtWidgets.QPlainTextEdit()
        self.groups.setReadOnly(True)
        self.groups.setPlaceholderText("Matched groups appear here")
        self.followups = FollowUpsPanel()
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.export_button)
        exports = QtWidgets.QHBoxLayout()
        exports.addWidget(self.passports_button)
        exports.addWidget(QtWidgets.QLabel("Lot:"))
        exports.addWidget(self.lot)
        exports.addWidget(self.report_button)
        exports.addStretch(1)
        matching = QtWidgets.QHBoxLayout()
        matching.addWidget(QtWidgets.QLabel("Pack:"))
        matching.addWidget(self.series)
        matching.addWidget(self.parallel)
        matching.addWidget(self.match_button)
        matching.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.followups, 1)
        layout.addLayout(exports)
        layout.addWidget(self.export_status)
        layout.addLayout(matching)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self.groups, 1)
        bottom.addWidget(self.export_log, 1)
        layout.addLayout(bottom, 1)

    def _choose_export_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export results to")
        if folder:
            self.export_status.setText(f"Exporting to {folder}…")
            self.export_requested.emit(folder)

    def selected_cells(self) -> list[str]:
        """Cell IDs of the selected rows, in table order."""
        rows = sorted(
            self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()
        )
        return [self.model.rows[row].cell_id for row in rows]

    def _choose_passports(self) -> None:
        dialog = PassportDialog(self.selected_cells(), self.last_folder, self)
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            self.request_passports(dialog.request())

    def request_passports(self, request: PassportRequest) -> None:
        """Ask for ``request`` and show that it is running (the dialog's accept path)."""
        self.last_folder = request.folder
        cells = f"{len(request.cell_ids)} cell(s)" if request.cell_ids else "every graded cell"
        self._busy(f"Exporting {request.fmt} passports of {cells} to {request.folder}…")
        self.passports_requested.emit(request)

    def _choose_report_folder(self) -> None:
        lot = self.lot.currentText()
        if not lot:
            self.export_status.setText("No lot stored: nothing to report.")
            return
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, f"Write lot {lot} report to")
        if folder:
            self.request_report(lot, folder)

    def request_report(self, lot: str, folder: str) -> None:
        """Ask for lot ``lot``'s report into ``folder`` and show that it is running."""
        self.last_folder = folder
        self._busy(f"Writing the report of lot {lot} to {folder}…")
        self.report_requested.emit(lot, folder)

    def _busy(self, text: str) -> None:
        self.export_status.setStyleSheet("")
        self.export_status.setText(text)
        self.passports_button.setEnabled(False)
        self.report_button.setEnabled(False)

    def show_outcome(self, outcome: Outcome) -> None:
        """The result of a passport export or lot report: the summary line (red on failure),
        and in the log (newest last, earlier results kept) the files written."""
        self.passports_button.setEnabled(True)
        self.report_button.setEnabled(True)
        self.export_status.setStyleSheet("" if outcome.ok else "color: #c62828")
        self.export_status.setText(outcome.summary)
        detail = [f"  {line}" for line in outcome.lines]
        self.export_log.appendPlainText("\n".join([outcome.summary, *detail]))

    def set_lots(self, lots: Sequence[str]) -> None:
        current = self.lot.currentText()
        self.lot.clear()
        self.lot.addItems(list(lots))
        # With a placeholder the combo selects nothing by itself: keep the lot chosen before,
        # else the first.
        self.lot.setCurrentIndex(max(self.lot.findText(current), 0) if lots else -1)

    def _match(self) -> None:
        self.groups.setPlainText("Building groups…")
        self.match_requested.emit(self.series.value(), self.parallel.value())

    def set_grades(self, grades: Sequence[GradeView]) -> None:
        for grade in grades:
            self.model.add(grade)
        self.table.resizeColumnsToContents()

    def show_groups(self, lines: Sequence[str], groups: int, unmatched: int) -> None:
        head = f"{groups} group(s), {unmatched} cell(s) not matched"
        self.groups.setPlainText("\n".join([head, *lines]))

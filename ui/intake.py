"""Cell intake: the barcode field (a keyboard-wedge scanner types the ID + Enter) and lot import."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

DEFAULT_ID_PATTERN = r"[A-Z0-9][A-Z0-9._-]{3,39}"
"""Cell IDs: 4-40 upper-case letters, digits, dot, dash, underscore (Code 128 / DataMatrix safe)."""

MAX_LOT_ROWS = 100_000
MAX_LOT_BYTES = 20_000_000


class LotFileError(ValueError):
    """A lot file that cannot be imported; the message names the row and column."""


@dataclass(frozen=True)
class LotEntry:
    cell_id: str
    row: int
    fields: dict[str, str]


def check_cell_id(text: str, pattern: str = DEFAULT_ID_PATTERN) -> str | None:
    """None when ``text`` is a valid cell ID, else the problem in words."""
    if not text:
        return "empty scan"
    if re.fullmatch(pattern, text) is None:
        return f"'{text}' is not a valid cell ID (expected {pattern})"
    return None


def parse_lot_file(path: Path, pattern: str = DEFAULT_ID_PATTERN) -> list[LotEntry]:
    """Read a lot (CSV with a ``cell_id`` column) completely, or raise naming row and column.

    Nothing is returned unless every row is valid, so an import is never half-done.
    """
    size = path.stat().st_size
    if size > MAX_LOT_BYTES:
        raise LotFileError(f"{path.name}: {size} bytes is larger than {MAX_LOT_BYTES}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LotFileError(
            f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    reader = csv.DictReader(text.splitlines())
    header = [name.strip() for name in (reader.fieldnames or [])]
    if "cell_id" not in header:
        raise LotFileError(f"{path.name}: no 'cell_id' column in header {header}")
    if len(set(header)) != len(header):
        raise LotFileError(f"{path.name}: duplicate column names in header {header}")
    reader.fieldnames = header
    entries: list[LotEntry] = []
    seen: dict[str, int] = {}
    for row_number, row in enumerate(reader, start=2):
        if len(entries) >= MAX_LOT_ROWS:
            raise LotFileError(f"{path.name}: more than {MAX_LOT_ROWS} rows")
        if None in row:
            raise LotFileError(f"{path.name} row {row_number}: more fields than header columns")
        cell_id = (row.get("cell_id") or "").strip()
        problem = check_cell_id(cell_id, pattern)
        if problem is not None:
            raise LotFileError(f"{path.name} row {row_number}, column cell_id: {problem}")
        if cell_id in seen:
            raise LotFileError(
                f"{path.name} row {row_number}, column cell_id: '{cell_id}' already on row"
                f" {seen[cell_id]}"
            )
        seen[cell_id] = row_number
        fields = {key: (value or "").strip() for key, value in row.items() if key != "cell_id"}
        entries.append(LotEntry(cell_id, row_number, fields))
    if not entries:
        raise LotFileError(f"{path.name}: no cells in file")
    return entries


class IntakePanel(QtWidgets.QWidget):
    """Barcode field with focus, validation, re-scan guard, result line and lot import.

    ``scanned(cell_id)`` is emitted for each accepted scan; the owner decides where the cell goes
    and reports back with :meth:`show_result`.
    """

    scanned = QtCore.Signal(str)
    start_requested = QtCore.Signal()
    lot_import_requested = QtCore.Signal(str)

    def __init__(
        self,
        *,
        pattern: str = DEFAULT_ID_PATTERN,
        is_known: Callable[[str], str | None] | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.pattern = pattern
        self._is_known = is_known or (lambda _cell: None)
        self.field = QtWidgets.QLineEdit()
        self.field.setPlaceholderText("Scan cell barcode (or type ID + Enter)")
        self.field.setClearButtonEnabled(True)
        font = self.field.font()
        font.setPointSize(18)
        self.field.setFont(font)
        self.field.returnPressed.connect(self._on_enter)
        self.result = QtWidgets.QLabel("Ready to scan")
        result_font = self.result.font()
        result_font.setPointSize(14)
        result_font.setBold(True)
        self.result.setFont(result_font)
        self.result.setWordWrap(True)
        self.start_button = QtWidgets.QPushButton("Start assigned (Enter)")
        self.start_button.clicked.connect(self.start_requested)
        self.import_button = QtWidgets.QPushButton("Import lot…")
        self.import_button.clicked.connect(self._choose_lot_file)

        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Cell:"))
        row.addWidget(self.field, 1)
        row.addWidget(self.start_button)
        row.addWidget(self.import_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row)
        layout.addWidget(self.result)
        self.setFocusProxy(self.field)

    def _on_enter(self) -> None:
        text = self.field.text().strip().upper()
        self.field.clear()
        if not text:
            # An empty Enter on the scanner field starts the cells already assigned.
            self.start_requested.emit()
            return
        problem = check_cell_id(text, self.pattern)
        if problem is not None:
            self.show_result(problem, ok=False)
            return
        where = self._is_known(text)
        if where is not None:
            self.show_result(f"{text} already scanned: {where}", ok=False)
            return
        self.scanned.emit(text)

    def show_result(self, text: str, ok: bool) -> None:
        colour = "#2e7d32" if ok else "#c62828"
        self.result.setStyleSheet(f"color: {colour};")
        self.result.setText(text)
        if not ok:
            QtWidgets.QApplication.beep()

    def _choose_lot_file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Import lot", "", "Lot files (*.csv);;All files (*)"
        )
        if path:
            self.lot_import_requested.emit(path)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.key() == QtCore.Qt.Key.Key_Escape:
            self.field.clear()
            self.show_result("Ready to scan", ok=True)
            return
        super().keyPressEvent(event)

"""Cell detail: grade and bin in large type, figures with units, reasons in words, run log."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from ui.engine_api import GradeView
from ui.state import ChannelState, ChannelView, grade_colour, unit_symbol

VERDICT_COLOURS = {"pass": "#1b5e20", "fail": "#c62828", "retest": "#e65100", "missing": "#6a1b9a"}


class CellDetail(QtWidgets.QWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.cell_label = QtWidgets.QLabel("No cell selected")
        self.grade_label = QtWidgets.QLabel("–")
        self.bin_label = QtWidgets.QLabel("")
        self.state_label = QtWidgets.QLabel("")
        for label, size in (
            (self.cell_label, 18),
            (self.grade_label, 36),
            (self.bin_label, 14),
            (self.state_label, 13),
        ):
            font = label.font()
            font.setPointSize(size)
            font.setBold(True)
            label.setFont(font)
        for label in (self.cell_label, self.bin_label, self.state_label):
            label.setWordWrap(True)
        self.grade_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        # Large but bounded: the figures and reasons below need the room more than the letter.
        self.grade_label.setMinimumSize(120, 70)
        self.grade_label.setMaximumHeight(80)
        self.grade_label.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Minimum, QtWidgets.QSizePolicy.Policy.Fixed
        )

        self.figures = QtWidgets.QTableWidget(0, 3)
        self.figures.setHorizontalHeaderLabels(["Figure", "Value", "Unit"])
        self.figures.horizontalHeader().setStretchLastSection(True)
        self.figures.verticalHeader().hide()
        self.figures.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.reasons = QtWidgets.QListWidget()
        self.reasons.setWordWrap(True)
        self.log = QtWidgets.QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(1000)

        head = QtWidgets.QHBoxLayout()
        names = QtWidgets.QVBoxLayout()
        names.addWidget(self.cell_label)
        names.addWidget(self.bin_label)
        names.addWidget(self.state_label)
        head.addLayout(names, 1)
        head.addWidget(self.grade_label)

        lists = QtWidgets.QHBoxLayout()
        left = QtWidgets.QVBoxLayout()
        left.addWidget(QtWidgets.QLabel("Figures"))
        left.addWidget(self.figures)
        right = QtWidgets.QVBoxLayout()
        right.addWidget(QtWidgets.QLabel("Why this grade"))
        right.addWidget(self.reasons)
        lists.addLayout(left, 1)
        lists.addLayout(right, 1)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(head)
        layout.addLayout(lists, 3)
        layout.addWidget(QtWidgets.QLabel("Run log"))
        layout.addWidget(self.log, 1)
        self._log_lines: list[str] = []

    def show_view(self, view: ChannelView) -> None:
        self.cell_label.setText(f"{view.cell_id or 'no cell'}  on {view.channel_id}")
        state = view.state.value.upper()
        self.state_label.setText(f"{state}: {view.alarm}" if view.alarm else state)
        lines = list(view.log)
        if lines != self._log_lines:
            self._log_lines = lines
            self.log.setPlainText("\n".join(lines))
            self.log.moveCursor(QtGui.QTextCursor.MoveOperation.End)
        self.show_grade(view.grade)
        if view.grade is None and view.state in (
            ChannelState.TRIPPED,
            ChannelState.FAULT,
            ChannelState.STOPPED,
        ):
            self.bin_label.setText(f"not graded: the run {view.state.value}")

    def show_grade(self, grade: GradeView | None) -> None:
        if grade is None:
            self.grade_label.setText("")
            self.grade_label.setStyleSheet("")
            self.grade_label.hide()
            self.bin_label.setText("not graded yet")
            self.figures.setRowCount(0)
            self.reasons.clear()
            return
        self.grade_label.setText(grade.grade)
        self.grade_label.show()
        self.grade_label.setStyleSheet(
            f"color: white; background: {grade_colour(grade.grade)}; border-radius: 8px;"
            " padding: 4px 14px;"
        )
        self.bin_label.setText(grade.summary or f"Bin {grade.bin}")
        self.figures.setRowCount(len(grade.figures))
        for row, (name, value, unit) in enumerate(grade.figures):
            for col, text in enumerate((name, f"{value:.4g}", unit_symbol(unit))):
                self.figures.setItem(row, col, QtWidgets.QTableWidgetItem(text))
        self.figures.resizeColumnsToContents()
        self.reasons.clear()
        for reason in grade.reasons:
            item = QtWidgets.QListWidgetItem(reason.plain())
            # Missing figures in purple, not red: a missing lot statistic may not decide anything.
            item.setForeground(
                QtGui.QColor(VERDICT_COLOURS.get(reason.verdict_text, VERDICT_COLOURS["fail"]))
            )
            self.reasons.addItem(item)

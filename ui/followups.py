"""Open follow-ups (self-discharge re-measurements, grading.md 2.4 and 8.1) in the Batch tab:
what is due when, and a Re-measure action for a due one on the channel holding its cell."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6 import QtCore, QtGui, QtWidgets

FOLLOW_UP_RECIPE = "self-discharge-follow-up"
"""The shipped recipe whose OCV closes a due self-discharge follow-up."""

DUE_COLOUR = "#ffe082"


@dataclass(frozen=True)
class FollowUpRow:
    """One open follow-up as the panel shows it.

    ``due_t_s`` and ``now_t_s`` are on the station clock (s since the epoch; a simulated bench's
    clock runs ahead of the wall clock, so "now" is the station's, read with the follow-ups).
    ``channel_id`` is the channel whose fixture holds the cell, empty when none does;
    ``channel_busy`` says why that channel cannot start a run now (empty when it can).
    """

    cell_id: str
    kind: str
    run_id: str
    due_t_s: float
    now_t_s: float
    channel_id: str = ""
    channel_busy: str = ""

    @property
    def due(self) -> bool:
        return self.now_t_s >= self.due_t_s

    def blocked(self) -> str:
        """Why Re-measure cannot start for this follow-up, in words; empty when it can."""
        if not self.due:
            return (
                f"Not due until {local_time(self.due_t_s)}: a re-measurement before then would"
                " not close the follow-up."
            )
        if not self.channel_id:
            return f"{self.cell_id} is not on a channel: scan it into a free channel first."
        if self.channel_busy:
            return f"{self.channel_id} is {self.channel_busy}: wait until it is free."
        return ""


def due_text(due_t_s: float, now_t_s: float) -> str:
    """ "due" at or after ``due_t_s``, else the time left (s, station clock) in whole days and
    hours ("due in 3 d 4 h"), hours and minutes under a day, minutes under an hour; rounded up,
    so it never says less time than is left."""
    left_s = due_t_s - now_t_s
    if left_s <= 0:
        return "due"
    minutes = -int(-left_s // 60)
    if minutes < 60:
        return f"due in {minutes} min"
    hours = -(-minutes // 60)
    if hours < 24:
        return f"due in {minutes // 60} h {minutes % 60} min"
    return f"due in {hours // 24} d {hours % 24} h"


def local_time(t_s: float) -> str:
    """``t_s`` (s since the epoch) as local date and time, ISO-like ("2026-12-13 06:15")."""
    return dt.datetime.fromtimestamp(t_s).astimezone().strftime("%Y-%m-%d %H:%M")


class FollowUpsPanel(QtWidgets.QGroupBox):
    """Table of open follow-ups (earliest due first), due ones highlighted, and Re-measure for
    the selected one. ``remeasure_requested(cell_id, channel_id)`` asks for the follow-up recipe
    on that cell; ``refresh_requested()`` for the follow-ups again."""

    remeasure_requested = QtCore.Signal(str, str)
    refresh_requested = QtCore.Signal()

    COLUMNS = ("Cell", "Kind", "Scheduled by run", "Due (local time)", "Status", "Channel")

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Follow-ups", parent)
        self.table = QtWidgets.QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.itemSelectionChanged.connect(self._update_action)
        self.remeasure_button = QtWidgets.QPushButton("Re-measure")
        self.remeasure_button.clicked.connect(self._remeasure)
        self.reload_button = QtWidgets.QPushButton("Reload")
        self.reload_button.clicked.connect(self.refresh_requested)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.rows: list[FollowUpRow] = []
        self.starting: set[str] = set()
        """Cells whose re-measurement was asked for and has not ended yet (no second start)."""
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.remeasure_button)
        buttons.addWidget(self.reload_button)
        buttons.addWidget(self.status, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self._update_action()

    def set_followups(self, rows: Sequence[FollowUpRow]) -> None:
        """Show ``rows``, keeping the selected cell selected."""
        selected = self.selected()
        self.rows = list(rows)
        open_cells = {row.cell_id for row in self.rows}
        self.starting &= open_cells
        self.table.setRowCount(len(self.rows))
        for index, row in enumerate(self.rows):
            values = (
                row.cell_id,
                row.kind,
                row.run_id,
                local_time(row.due_t_s),
                due_text(row.due_t_s, row.now_t_s),
                row.channel_id or "not on a channel",
            )
            for column, text in enumerate(values):
                item = QtWidgets.QTableWidgetItem(text)
                if row.due:
                    item.setBackground(QtGui.QColor(DUE_COLOUR))
                    if column == 4:
                        font = item.font()
                        font.setBold(True)
                        item.setFont(font)
                self.table.setItem(index, column, item)
        self.table.resizeColumnsToContents()
        if selected is not None:
            for index, row in enumerate(self.rows):
                if row.cell_id == selected.cell_id and row.kind == selected.kind:
                    self.table.selectRow(index)
        self.setTitle(f"Follow-ups: {len(self.rows)} open, {sum(row.due for row in self.rows)} due")
        self._update_action()

    def selected(self) -> FollowUpRow | None:
        index = self.table.currentRow()
        if not self.table.selectionModel().hasSelection():
            return None
        return self.rows[index] if 0 <= index < len(self.rows) else None

    def select_cell(self, cell_id: str) -> None:
        for index, row in enumerate(self.rows):
            if row.cell_id == cell_id:
                self.table.selectRow(index)
                return

    def _blocked(self, row: FollowUpRow | None) -> str:
        if row is None:
            return "Select a follow-up to re-measure it."
        if row.cell_id in self.starting:
            return f"The re-measurement of {row.cell_id} is under way."
        return row.blocked()

    def _update_action(self) -> None:
        row = self.selected()
        why = self._blocked(row)
        self.remeasure_button.setEnabled(not why)
        if why:
            self.remeasure_button.setToolTip(why)
        elif row is not None:
            self.remeasure_button.setToolTip(
                f"Run {FOLLOW_UP_RECIPE} on {row.cell_id} in {row.channel_id}"
            )
        self.status.setText(why if row is not None or self.rows else "")

    def _remeasure(self) -> None:
        row = self.selected()
        if row is None or self._blocked(row):
            return
        self.starting.add(row.cell_id)
        self._update_action()
        self.status.setText(f"Starting {FOLLOW_UP_RECIPE} on {row.cell_id} in {row.channel_id}…")
        self.remeasure_requested.emit(row.cell_id, row.channel_id)

    def run_ended(self, _channel_id: str, cell_id: str) -> None:
        """A run of ``cell_id`` ended: if it was the re-measurement and did not close the
        follow-up (stopped, tripped), Re-measure may be tried again."""
        self.starting.discard(cell_id)
        self._update_action()

    def start_failed(self, cell_id: str, message: str) -> None:
        """The re-measurement of ``cell_id`` did not start: allow another try, say why."""
        self.starting.discard(cell_id)
        self._update_action()
        self.status.setText(message)

"""Batch results (sortable, filterable), instruments (calibration due) and recipes views."""

from __future__ import annotations

import datetime as dt

from PySide6 import QtCore

from ui.engine_api import GradeView, InstrumentInfo, RecipeInfo
from ui.views import BatchView, InstrumentsView, RecipesView, calibration_overdue


def grade(cell: str, letter: str, capacity_ah: float | None) -> GradeView:
    figures = () if capacity_ah is None else (("capacity", capacity_ah, "Ah"),)
    return GradeView(cell, f"run-{cell}", letter, f"{letter}1", (), figures)


def column(view: BatchView, col: int) -> list[str]:
    proxy = view.proxy
    return [proxy.index(r, col).data() for r in range(proxy.rowCount())]


def test_batch_table_sorts_numerically_and_filters(qtbot) -> None:
    view = BatchView()
    qtbot.addWidget(view)
    for cell, letter, cap in [
        ("C-10", "A", 10.5),
        ("C-9", "B", 9.75),
        ("C-100", "REJECT", None),
        ("C-2", "A", 2.0),
    ]:
        view.model.add(grade(cell, letter, cap))
    assert view.model.headerData(4, QtCore.Qt.Orientation.Horizontal) == "capacity (Ah)"
    view.table.sortByColumn(4, QtCore.Qt.SortOrder.AscendingOrder)
    # Numeric, not text order ("10.5" < "2" as text); a missing figure sorts last.
    assert column(view, 4) == ["2", "9.75", "10.5", ""]
    view.filter.setText("reject")
    assert column(view, 0) == ["C-100"]
    view.filter.setText("")
    view.model.add(grade("C-9", "C", 9.0))  # a re-grade of the same run replaces its row
    assert view.model.rowCount() == 4


def test_calibration_overdue() -> None:
    today = dt.date(2026, 11, 22)
    assert calibration_overdue("2026-11-21", today)
    assert not calibration_overdue("2026-11-22", today)
    assert calibration_overdue("", today), "an unknown due date is treated as overdue"


def test_instruments_view_marks_overdue_and_disconnected(qtbot) -> None:
    view = InstrumentsView()
    qtbot.addWidget(view)
    view.set_instruments(
        [
            InstrumentInfo(
                "cycler", "TCPIP::127.0.0.1::5025::SOCKET", "SIM,CYC8", True, "2027-01-01"
            ),
            InstrumentInfo("acir", "ASRL/dev/ttyUSB0", "", False, "2026-10-01"),
        ],
        dt.date(2026, 11, 22),
    )
    assert view.table.item(0, 3).text() == "connected"
    assert view.table.item(1, 2).text() == "not identified"
    assert view.table.item(1, 4).text() == "2026-10-01 (OVERDUE)"
    assert view.table.item(0, 4).text() == "2027-01-01"
    requested: list[str] = []
    view.test_requested.connect(requested.append)
    view.table.selectRow(1)
    view.test_button.click()
    assert requested == ["acir"]


def test_recipes_view_shows_steps_and_duration(qtbot) -> None:
    view = RecipesView()
    qtbot.addWidget(view)
    view.set_recipes(
        [RecipeInfo("capacity-check", ("Rest 10 min", "CC-CV charge 0.5C to 4.2 V"), 9000.0, "nmc")]
    )
    assert view.list.item(0).text() == "capacity-check  (2:30:00)"
    text = view.details.toPlainText()
    assert "Estimated duration: 2:30:00" in text and "2. CC-CV charge 0.5C to 4.2 V" in text
    assert view.selected() is not None and view.selected().profile == "nmc"

"""Barcode validation, re-scan guard, lot import errors that name the row and column."""

from __future__ import annotations

import pytest
from PySide6 import QtCore

from ui.intake import IntakePanel, check_cell_id


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("CELL-0001", True),
        ("LG21700.M50T_001", True),
        ("ABC", False),  # too short
        ("cell-0001", False),  # the panel upper-cases first; the pattern itself is strict
        ("CELL 0001", False),
        ("CELL-0001'; DROP TABLE cells;--", False),
        ("", False),
        ("X" * 41, False),
    ],
)
def test_cell_id_pattern(text: str, ok: bool) -> None:
    assert (check_cell_id(text) is None) is ok


def test_scanner_enter_emits_valid_ids_and_rejects_bad_ones(qtbot) -> None:
    known = {"CELL-0002": "on CH03 (running)"}
    panel = IntakePanel(is_known=known.get)
    qtbot.addWidget(panel)
    scanned: list[str] = []
    starts: list[bool] = []
    panel.scanned.connect(lambda cell_id, facts: scanned.append((cell_id, facts)))
    panel.start_requested.connect(lambda: starts.append(True))

    for text in ("cell-0001", "bad id", "CELL-0002", ""):
        qtbot.keyClicks(panel.field, text)
        qtbot.keyClick(panel.field, QtCore.Qt.Key.Key_Return)
        assert panel.field.text() == "", "the field is cleared for the next scan"
        if text == "bad id":
            assert "'BAD ID' is not a valid cell ID" in panel.result.text()
        if text == "CELL-0002":
            assert panel.result.text() == "CELL-0002 already scanned: on CH03 (running)"
    clean = {"damaged": False, "calendar_expired": False, "traceable": True}
    assert scanned == [("CELL-0001", clean)]
    assert starts == [True]
    qtbot.keyClicks(panel.field, "half")
    qtbot.keyClick(panel.field, QtCore.Qt.Key.Key_Escape)
    assert panel.field.text() == "" and panel.result.text() == "Ready to scan"

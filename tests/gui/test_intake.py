"""Barcode validation, re-scan guard, lot import errors that name the row and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6 import QtCore

from ui.intake import IntakePanel, LotFileError, check_cell_id, parse_lot_file


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
    panel.scanned.connect(scanned.append)
    panel.start_requested.connect(lambda: starts.append(True))

    for text in ("cell-0001", "bad id", "CELL-0002", ""):
        qtbot.keyClicks(panel.field, text)
        qtbot.keyClick(panel.field, QtCore.Qt.Key.Key_Return)
        assert panel.field.text() == "", "the field is cleared for the next scan"
        if text == "bad id":
            assert "'BAD ID' is not a valid cell ID" in panel.result.text()
        if text == "CELL-0002":
            assert panel.result.text() == "CELL-0002 already scanned: on CH03 (running)"
    assert scanned == ["CELL-0001"]
    assert starts == [True]
    qtbot.keyClicks(panel.field, "half")
    qtbot.keyClick(panel.field, QtCore.Qt.Key.Key_Escape)
    assert panel.field.text() == "" and panel.result.text() == "Ready to scan"


def write(tmp_path: Path, text: str, name: str = "lot.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_lot_file_parses_all_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffcell_id,chemistry\nCELL-0001,NMC\nCELL-0002 , LFP\n")
    entries = parse_lot_file(path)
    assert [(e.cell_id, e.row, e.fields) for e in entries] == [
        ("CELL-0001", 2, {"chemistry": "NMC"}),
        ("CELL-0002", 3, {"chemistry": "LFP"}),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,chemistry\nCELL-0001,NMC\n", "no 'cell_id' column"),
        ("cell_id,cell_id\nCELL-0001,x\n", "duplicate column names"),
        ("cell_id\nCELL-0001\nbad id\n", "row 3, column cell_id: 'bad id' is not a valid"),
        ("cell_id\nCELL-0001\nCELL-0001\n", "row 3, column cell_id: 'CELL-0001' already on row 2"),
        ("cell_id,a\nCELL-0001,x,y\n", "row 2: more fields than header columns"),
        ("cell_id\n", "no cells in file"),
    ],
)
def test_lot_file_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(LotFileError, match=message):
        parse_lot_file(write(tmp_path, text))


def test_lot_file_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "lot.csv"
    path.write_bytes(b"cell_id\n\xff\xfe\x00CELL")
    with pytest.raises(LotFileError, match="not UTF-8 text"):
        parse_lot_file(path)

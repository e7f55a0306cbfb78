"""Cells and lot import: all-or-nothing parsing with row/column errors, test readiness gate."""

from __future__ import annotations

import json

import pytest

import station.cells as cells_module
from station.cells import (
    CELL_FIELDS,
    Cell,
    CellDataError,
    cell_from_mapping,
    check_ready_for_test,
    parse_lot,
)

HEADER = (
    "cell_id,lot,chemistry,format,rated_capacity_ah,voltage_min_v,voltage_max_v,"
    "max_charge_current_a,max_discharge_current_a,manufacturer,carbon_footprint_kg_co2e"
)


def row(cell_id: str, capacity: str = "3.0") -> str:
    return f"{cell_id},L1,nmc,Cylindrical,{capacity},2.5,4.2,3,6,ACME,4.5"


def test_csv_lot_parses_every_column() -> None:
    cells = parse_lot("\n".join([HEADER, row("A1"), row("A2", "2.95")]), kind="csv")
    assert [c.cell_id for c in cells] == ["A1", "A2"]
    first = cells[0]
    assert first.chemistry == "NMC" and first.format == "cylindrical"
    assert first.rated_capacity_ah == 3.0 and cells[1].rated_capacity_ah == 2.95
    assert first.carbon_footprint_kg_co2e == 4.5 and first.manufacturer == "ACME"
    check_ready_for_test(first)


def test_json_lot_and_lot_default() -> None:
    data = {"cells": [{"cell_id": "J1", "chemistry": "LFP", "rated_capacity_ah": 100}]}
    (cell,) = parse_lot(json.dumps(data), kind="json", lot="LOT-9")
    assert cell.lot == "LOT-9" and cell.rated_capacity_ah == 100.0


def test_bad_rows_name_row_and_column_and_return_nothing() -> None:
    text = "\n".join([HEADER, row("A1"), row("A2", "-3"), row("A1"), row("A4", "abc")])
    with pytest.raises(CellDataError) as info:
        parse_lot(text, kind="csv")
    problems = info.value.problems
    assert (2, "rated_capacity_ah", "must be positive, got '-3'") in problems
    assert any(p[0] == 3 and p[1] == "cell_id" and "duplicate" in p[2] for p in problems)
    assert any(p[0] == 4 and p[1] == "rated_capacity_ah" for p in problems)
    assert "row 2, column 'rated_capacity_ah'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "kind", "needle"),
    [
        ("cell_id,colour\nA,red", "csv", "'colour': unknown column"),
        ("lot\nL1", "csv", "'cell_id': required column is missing"),
        ("cell_id,cell_id\nA,B", "csv", "duplicate column"),
        (HEADER + "\nA1,L1", "csv", "row 1, column '*': has 2 fields"),
        ('[{"cell_id": "A", "cell_id": "B"}]', "json", "duplicate key"),
        ('{"cells": 3}', "json", "expected a list"),
        ("[1]", "json", "row 1, column '*': expected an object"),
        ('[{"cell_id": "A", "rated_capacity_ah": NaN}]', "json", "must be finite"),
        ("[" * 100_000, "json", "malformed JSON"),
        ("", "csv", "empty"),
        ('[{"cell_id": "A\\nB"}]', "json", "control characters"),
        ('[{"cell_id": "A", "chemistry": "unobtainium"}]', "json", "unknown chemistry"),
    ],
)
def test_malformed_lists_are_rejected_with_a_named_problem(
    text: str, kind: str, needle: str
) -> None:
    with pytest.raises(CellDataError, match=needle.replace("*", r"\*").replace("(", r"\(")):
        parse_lot(text, kind=kind)


@pytest.mark.parametrize(
    "cell_id", ["'; DROP TABLE cells; --", '=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", 'A"B']
)
def test_hostile_ids_are_kept_verbatim(cell_id: str) -> None:
    cell = cell_from_mapping({"cell_id": cell_id})
    assert cell.cell_id == cell_id


def test_readiness_gate_names_missing_values() -> None:
    with pytest.raises(CellDataError) as info:
        check_ready_for_test(Cell("X", chemistry="NMC", rated_capacity_ah=3.0))
    missing = {p[1] for p in info.value.problems}
    assert missing == {
        "voltage_min_v",
        "voltage_max_v",
        "max_charge_current_a",
        "max_discharge_current_a",
    }
    with pytest.raises(CellDataError, match="has no chemistry"):
        check_ready_for_test(Cell("Y"))


def _million_rows(bad: set[int], *, wide: bool) -> str:
    lines = [HEADER if wide else "cell_id,rated_capacity_ah"]
    for i in range(1, 1_000_001):
        capacity = "-1" if i in bad else "3.0"
        lines.append(row(f"C{i}", capacity) if wide else f"C{i},{capacity}")
    return "\n".join(lines)


def test_million_row_list_with_bad_rows_is_rejected_whole() -> None:
    bad = {10, 500_000, 999_990}
    with pytest.raises(CellDataError) as info:
        parse_lot(_million_rows(bad, wide=False), kind="csv")
    assert sorted(p[0] for p in info.value.problems if p[0] is not None) == sorted(bad)


@pytest.mark.slow
def test_million_row_wide_list_with_bad_rows_is_rejected_whole() -> None:
    bad = {1, 333_333, 1_000_000}
    with pytest.raises(CellDataError) as info:
        parse_lot(_million_rows(bad, wide=True), kind="csv")
    assert sorted(p[0] for p in info.value.problems if p[0] is not None) == sorted(bad)


def test_field_list_matches_dataclass() -> None:
    assert CELL_FIELDS[0] == "cell_id" and "due_diligence_refs" in CELL_FIELDS


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_plain_and_quoted_csv_give_the_same_cells(line_end: str) -> None:
    plain = line_end.join([HEADER, row("A1"), row("A2", "2.95"), "A3,,,,,,,,,,"]) + line_end
    quoted = plain.replace("ACME", '"ACME, Inc."')
    cells, quoted_cells = parse_lot(plain, kind="csv"), parse_lot(quoted, kind="csv")
    assert [c.cell_id for c in cells] == [c.cell_id for c in quoted_cells] == ["A1", "A2", "A3"]
    assert quoted_cells[0].manufacturer == "ACME, Inc." and cells[0].manufacturer == "ACME"
    assert cells[2] == Cell("A3") == quoted_cells[2]


@pytest.mark.parametrize(
    ("cell_id", "message"),
    [
        ("..", "not usable as a file name"),
        (" . ", "not usable as a file name"),
        ("   ", "cell ID is empty"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("a\tb", "control characters"),
        ("x" * 129, "longer than 128"),
    ],
)
def test_bad_id_in_a_long_csv_is_named_by_row(cell_id: str, message: str) -> None:
    lines = ["cell_id,chemistry"] + [f"C{k},NMC" for k in range(1, 5000)]
    lines[2500] = f"{cell_id},NMC"
    with pytest.raises(CellDataError) as info:
        parse_lot("\n".join(lines), kind="csv")
    ((number, column, text),) = info.value.problems
    assert (number, column) == (2500, "cell_id") and message in text


def test_every_bad_column_of_a_row_is_reported_in_row_order() -> None:
    text = "\n".join(
        [HEADER, row("A1"), "A2,L1,xyz,cube,inf,4.2,2.5,3,6,ACME,0", row("A1"), row("A4", "")]
    )
    with pytest.raises(CellDataError) as info:
        parse_lot(text, kind="csv")
    assert [(p[0], p[1]) for p in info.value.problems] == [
        (2, "chemistry"),
        (2, "format"),
        (2, "rated_capacity_ah"),
        (2, "carbon_footprint_kg_co2e"),
        (3, "cell_id"),
    ]
    with pytest.raises(CellDataError, match="row 1, column 'voltage_min_v': must be below"):
        parse_lot("cell_id,voltage_min_v,voltage_max_v\nA,4.2,2.5", kind="csv")


def test_more_than_the_reported_number_of_problems_says_so() -> None:
    lines = ["cell_id,rated_capacity_ah"] + [f"C{k},-1" for k in range(1, 61)]
    with pytest.raises(CellDataError, match=r"stopped after 50 problems") as info:
        parse_lot("\n".join(lines), kind="csv")
    assert [p[0] for p in info.value.problems] == list(range(1, 51))


def test_json_rows_with_missing_or_unknown_keys_name_their_row() -> None:
    data = [{"cell_id": "A"}, {"chemistry": "NMC"}, {"cell_id": "C", "colour": "red"}]
    with pytest.raises(CellDataError) as info:
        parse_lot(json.dumps(data), kind="json")
    assert info.value.problems == [
        (2, "cell_id", "cell ID is missing"),
        (3, "colour", "unknown column"),
    ]
    with pytest.raises(CellDataError, match="row 1, column 'rated_capacity_ah': expected a n"):
        parse_lot('[{"cell_id": "A", "rated_capacity_ah": true}]', kind="json")


@pytest.mark.parametrize("chunk_chars", [1, 64, 1 << 18])
def test_chunked_check_finds_problems_across_chunks(
    monkeypatch: pytest.MonkeyPatch, chunk_chars: int
) -> None:
    monkeypatch.setattr(cells_module, "CHUNK_CHARS", chunk_chars)
    lines = ["cell_id,rated_capacity_ah,lot"] + [f"C{k},3.0," for k in range(1, 301)]
    lines[7] = "C3,3.0,"  # row 7 repeats row 3's ID
    lines[250] = "C250,abc,"
    good = parse_lot("\n".join(lines[:7] + lines[8:250]) + "\n", kind="csv", lot="L")
    assert [c.cell_id for c in good] == [f"C{k}" for k in range(1, 250) if k != 7]
    assert {c.lot for c in good} == {"L"} and {c.rated_capacity_ah for c in good} == {3.0}
    with pytest.raises(CellDataError) as info:
        parse_lot("\n".join(lines), kind="csv")
    assert info.value.problems == [
        (7, "cell_id", "duplicate ID 'C3' (first in row 3)"),
        (250, "rated_capacity_ah", "expected a number, got 'abc'"),
    ]


def test_json_id_that_is_not_text_is_refused_not_hashed() -> None:
    with pytest.raises(CellDataError, match="row 2, column 'cell_id': cell ID is empty"):
        parse_lot('[{"cell_id": "A"}, {"cell_id": [1]}, {"cell_id": "A"}]', kind="json")

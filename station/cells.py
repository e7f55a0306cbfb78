"""Cells, their rated values and provenance, and intake (lot import, barcode scan).

A :class:`Cell` carries what grading and the passport need: identity (barcode ID, lot, source
pack/module), chemistry and format, rated values (capacity, energy, voltage window, maximum
currents, BOL resistance if known) and supplier provenance (manufacturer, production date,
origin, carbon footprint, due-diligence references).

Lots are imported from CSV (header row of field names) or JSON (a list of objects, or
``{"cells": [...]}``) all-or-nothing: every row is checked first and any problem raises
:class:`CellDataError` listing rows and columns; nothing is stored then. Cell IDs are stored
verbatim (SQL or spreadsheet-formula characters included) through bound parameters only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

# Default voltage windows by chemistry, used only to sanity-check rated values (never substituted).
CHEMISTRIES: dict[str, tuple[float, float]] = {
    "NMC": (2.5, 4.35),
    "NCA": (2.5, 4.3),
    "LCO": (2.75, 4.45),
    "LMO": (2.5, 4.3),
    "LFP": (2.0, 3.65),
    "LTO": (1.5, 2.85),
    "NA-ION": (1.5, 4.3),
}
FORMATS = ("cylindrical", "prismatic", "pouch", "coin")
MAX_ID_LENGTH = 128
MAX_REPORTED_ERRORS = 50
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Rated values a test cannot run without.
REQUIRED_FOR_TEST = (
    "rated_capacity_ah",
    "voltage_min_v",
    "voltage_max_v",
    "max_charge_current_a",
    "max_discharge_current_a",
)


class CellDataError(ValueError):
    """Bad cell data; ``problems`` lists ``(row, column, message)`` (row is 1-based, data rows)."""

    def __init__(self, problems: list[tuple[int | None, str, str]], *, more: bool = False) -> None:
        self.problems = problems
        lines = [
            (f"row {row}, " if row is not None else "") + f"column {column!r}: {message}"
            for row, column, message in problems
        ]
        if more:
            lines.append(f"(stopped after {len(problems)} problems)")
        super().__init__("; ".join(lines))


@dataclass(frozen=True)
class Cell:
    """One cell. Rated values are ``None`` until known; :func:`check_ready_for_test` gates runs."""

    cell_id: str
    lot: str = ""
    source_pack: str = ""
    source_module: str = ""
    chemistry: str = ""
    format: str = ""
    rated_capacity_ah: float | None = None
    rated_energy_wh: float | None = None
    nominal_voltage_v: float | None = None
    voltage_min_v: float | None = None
    voltage_max_v: float | None = None
    max_charge_current_a: float | None = None
    max_discharge_current_a: float | None = None
    bol_resistance_ohm: float | None = None
    manufacturer: str = ""
    production_date: str = ""
    origin: str = ""
    carbon_footprint_kg_co2e: float | None = None
    due_diligence_refs: str = ""

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


CELL_FIELDS = tuple(f.name for f in fields(Cell))
_FLOAT_FIELDS = frozenset(
    f.name for f in fields(Cell) if "float" in str(f.type) and f.name != "cell_id"
)


def check_cell_id(value: Any) -> str:
    """A usable barcode ID: non-empty text without control characters (kept verbatim).

    Path separators and the names ``.``/``..`` are refused too: reports and passports are files
    named after the cell ID, and ``../x`` must not write outside the output folder.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("cell ID is empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"cell ID is longer than {MAX_ID_LENGTH} characters")
    if _CONTROL.search(value):
        raise ValueError("cell ID contains control characters")
    if "/" in value or "\\" in value:
        raise ValueError(f"cell ID {value!r} contains a path separator ('/' or '\\')")
    if value.strip() in (".", ".."):
        raise ValueError(f"cell ID {value!r} is not usable as a file name")
    return value


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"must be finite, got {value!r}")
    if number <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return number


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return str(value).strip()


def _chemistry(value: Any) -> str:
    chemistry = _text(value).upper()
    if chemistry and chemistry not in CHEMISTRIES:
        raise ValueError(f"unknown chemistry {chemistry!r} ({', '.join(CHEMISTRIES)})")
    return chemistry


def _format(value: Any) -> str:
    cell_format = _text(value).lower()
    if cell_format and cell_format not in FORMATS:
        raise ValueError(f"unknown format {cell_format!r} ({', '.join(FORMATS)})")
    return cell_format


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    name: (
        check_cell_id
        if name == "cell_id"
        else _number
        if name in _FLOAT_FIELDS
        else _chemistry
        if name == "chemistry"
        else _format
        if name == "format"
        else _text
    )
    for name in CELL_FIELDS
}


def cell_from_mapping(row: Mapping[str, Any], *, row_number: int | None = None) -> Cell:
    """Build and check one cell from a mapping of field name -> value (strings or numbers)."""
    problems: list[tuple[int | None, str, str]] = []
    values: dict[str, Any] = {}
    for name, raw in row.items():
        converter = _CONVERTERS.get(name)
        if converter is None:
            problems.append((row_number, str(name), "unknown column"))
            continue
        try:
            values[name] = converter(raw)
        except ValueError as error:
            problems.append((row_number, name, str(error)))
    if "cell_id" not in row:
        problems.append((row_number, "cell_id", "cell ID is missing"))
    if not problems:
        vmin, vmax = values.get("voltage_min_v"), values.get("voltage_max_v")
        if vmin is not None and vmax is not None and vmin >= vmax:
            problems.append((row_number, "voltage_min_v", "must be below voltage_max_v"))
    if problems:
        raise CellDataError(problems)
    return Cell(**values)


def check_ready_for_test(cell: Cell) -> None:
    """Refuse a test (before anything starts) on unknown chemistry or missing rated values."""
    problems: list[tuple[int | None, str, str]] = []
    if not cell.chemistry:
        problems.append((None, "chemistry", f"cell {cell.cell_id!r} has no chemistry"))
    elif cell.chemistry not in CHEMISTRIES:
        problems.append((None, "chemistry", f"unknown chemistry {cell.chemistry!r}"))
    for name in REQUIRED_FOR_TEST:
        if getattr(cell, name) is None:
            problems.append((None, name, f"cell {cell.cell_id!r} has no rated value"))
    if problems:
        raise CellDataError(problems)


def _rows_from_csv(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise CellDataError([(None, "header", "the CSV file is empty")]) from None
    header = [name.strip() for name in header]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise CellDataError([(None, name, "duplicate column") for name in duplicates])
    unknown = [name for name in header if name not in CELL_FIELDS]
    if unknown:
        raise CellDataError([(None, name, "unknown column") for name in unknown])
    if "cell_id" not in header:
        raise CellDataError([(None, "cell_id", "required column is missing")])
    width = len(header)
    for number, record in enumerate(reader, start=1):
        if len(record) != width:
            raise CellDataError([(number, "*", f"has {len(record)} fields, header has {width}")])
        yield number, dict(zip(header, record, strict=True))


def _rows_from_json(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        for key in keys:
            if keys.count(key) > 1:
                raise CellDataError([(None, key, "duplicate key in JSON object")])
        return dict(pairs)

    try:
        data = json.loads(text.lstrip("\ufeff"), object_pairs_hook=no_duplicates)
    except CellDataError:
        raise
    except (ValueError, RecursionError) as error:  # ValueError: also over-long integers
        raise CellDataError([(None, "json", f"malformed JSON: {error}")]) from error
    if isinstance(data, dict) and set(data) == {"cells"}:
        data = data["cells"]
    if not isinstance(data, list):
        raise CellDataError([(None, "json", 'expected a list of cells or {"cells": [...]}')])
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise CellDataError([(number, "*", "expected an object")])
        yield number, item


def parse_lot(text: str, *, kind: str, lot: str | None = None) -> list[Cell]:
    """Parse and check a whole cell list (``kind`` is ``csv`` or ``json``); all or nothing.

    ``lot`` fills the lot of rows that leave it empty. Duplicate IDs inside the list are errors.
    """
    rows: Iterable[tuple[int, Mapping[str, Any]]]
    if kind == "csv":
        rows = _rows_from_csv(text)
    elif kind == "json":
        rows = _rows_from_json(text)
    else:
        raise ValueError(f"unknown cell list kind {kind!r} (csv or json)")
    cells: list[Cell] = []
    problems: list[tuple[int | None, str, str]] = []
    seen: dict[str, int] = {}
    for number, row in rows:
        try:
            cell = cell_from_mapping(row, row_number=number)
        except CellDataError as error:
            problems.extend(error.problems)
            if len(problems) >= MAX_REPORTED_ERRORS:
                raise CellDataError(problems[:MAX_REPORTED_ERRORS], more=True) from None
            continue
        if cell.cell_id in seen:
            problems.append(
                (
                    number,
                    "cell_id",
                    f"duplicate ID {cell.cell_id!r} (first in row {seen[cell.cell_id]})",
                )
            )
            continue
        seen[cell.cell_id] = number
        if lot and not cell.lot:
            cell = replace(cell, lot=lot)
        cells.append(cell)
    if problems:
        raise CellDataError(problems)
    if not cells:
        raise CellDataError([(None, "*", "the cell list has no rows")])
    return cells


def read_lot_file(path: str | Path, *, lot: str | None = None) -> list[Cell]:
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CellDataError([(None, "file", f"{path} is not UTF-8 text: {error}")]) from error
    return parse_lot(text, kind=kind, lot=lot)

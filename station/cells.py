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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from itertools import repeat
from pathlib import Path
from typing import Any, cast

import numpy as np

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
_ABSENT = object()  # a JSON object without this key (only ``cell_id`` must be present)

Problem = tuple[int | None, str, str]  # (1-based row or None, column, message)
BadValue = tuple[int, str]  # (0-based position in its column, message)


def _slow_column(name: str, values: Sequence[Any], rows: list[int]) -> list[BadValue]:
    """(position, message) of every value of a column its converter refuses, one by one."""
    converter = _CONVERTERS[name]
    bad: list[BadValue] = []
    for k in rows:
        try:
            converter(values[k])
        except ValueError as error:
            bad.append((k, str(error)))
    return bad


CHUNK = 4096  # values per float attempt: a bad value sends only its chunk to the slow path


def _floats(values: Sequence[str]) -> np.ndarray:
    """``float`` of every value at C speed (empty values read as 1: they are checked apart)."""
    texts = (v or "1" for v in values) if "" in values else values
    return np.fromiter(map(float, texts), float, len(values))


def _number_column(
    name: str, values: Sequence[Any], *, text: bool
) -> tuple[list[float | None], list[BadValue]]:
    """Convert a numeric column at C speed; the slow per-value path runs only to name problems.

    A text (CSV) column takes ``float`` over it (one ``map`` per chunk; only a chunk where it
    fails is looked at value by value) and one vectorised finite/positive test; JSON values of
    any type take the per-value path.
    """
    if text:
        numbers = np.empty(len(values))
        suspects: list[int] = []
        for a in range(0, len(values), CHUNK):
            chunk = values[a : a + CHUNK]
            try:
                numbers[a : a + len(chunk)] = _floats(chunk)
            except ValueError:
                suspects.extend(range(a, a + len(chunk)))
        if suspects:
            return [], _slow_column(name, values, suspects)
        bad = np.flatnonzero(~np.isfinite(numbers) | (numbers <= 0))
        if bad.size:
            return [], _slow_column(name, values, bad.tolist())
        converted = cast("list[float | None]", numbers.tolist())  # None goes in below
        if "" in values:
            for k, v in enumerate(values):
                if v == "":
                    converted[k] = None
        return converted, []
    problems = _slow_column(name, values, [k for k, v in enumerate(values) if v is not _ABSENT])
    if problems:
        return [], problems
    return [None if v is _ABSENT else _number(v) for v in values], []


def _choice_column(
    name: str, values: Sequence[Any], allowed: Iterable[str], *, text: bool, upper: bool
) -> tuple[list[str], list[BadValue]]:
    """Chemistry or format: each distinct value is normalised and looked up once."""
    texts, problems = _text_column(name, values, text=text)
    if problems:
        return [], problems
    normal = {v: v.upper() if upper else v.lower() for v in set(texts)}
    unknown = {v for v, n in normal.items() if n and n not in allowed}
    if unknown:
        return [], _slow_column(name, values, [k for k, v in enumerate(texts) if v in unknown])
    return list(map(normal.__getitem__, texts)), []


def _text_column(
    name: str, values: Sequence[Any], *, text: bool
) -> tuple[list[str], list[BadValue]]:
    if text:
        return list(map(str.strip, values)), []
    rows = [k for k, v in enumerate(values) if v is not _ABSENT and type(v) is not str]
    problems = _slow_column(name, values, rows)
    if problems:
        return [], problems
    return ["" if v is _ABSENT else _text(v) for v in values], []


# In IDs joined by newlines: a control character (other than the joining newline) or separator.
_BAD_ID_IN_JOINED = re.compile(r"[\x00-\x09\x0b-\x1f\x7f/\\]")


def _id_column(values: Sequence[Any], *, text: bool) -> tuple[list[str], list[BadValue]]:
    """Cell IDs: whole-column checks (one regex search over the IDs joined by newlines, where a
    newline inside an ID shows as one line too many) find suspects; only then is every ID
    checked on its own."""
    if text:
        stripped = list(map(str.strip, values))
        joined = "\n".join(values)
        if (
            "" not in stripped
            and "." not in stripped
            and ".." not in stripped
            and joined.count("\n") == len(values) - 1
            and max(map(len, values)) <= MAX_ID_LENGTH
            and _BAD_ID_IN_JOINED.search(joined) is None
        ):
            return list(values), []
    present = [k for k, v in enumerate(values) if v is not _ABSENT]
    return list(values), _slow_column("cell_id", values, present)


def _check_columns(
    columns: Mapping[str, Sequence[Any]], *, text: bool
) -> tuple[dict[str, list[Any]], list[tuple[int, str, str]]]:
    """Check and convert a table held as columns; problems carry 0-based row positions.

    ``text`` says every value is a string (CSV). Every column is checked whole (vectorised or
    set-based), so a refused file costs a few passes over its columns.
    """
    problems: list[tuple[int, str, str]] = []
    converted: dict[str, list[Any]] = {}
    for name, values in columns.items():
        is_text = text or all(type(v) is str for v in values)
        column: list[Any]
        if name == "cell_id":
            column, bad = _id_column(values, text=is_text)
        elif name in _FLOAT_FIELDS:
            column, bad = _number_column(name, values, text=is_text)
        elif name == "chemistry":
            column, bad = _choice_column(name, values, CHEMISTRIES, text=is_text, upper=True)
        elif name == "format":
            column, bad = _choice_column(name, values, FORMATS, text=is_text, upper=False)
        else:
            column, bad = _text_column(name, values, text=is_text)
        problems.extend((k, name, message) for k, message in bad)
        converted[name] = column
    failed = {k for k, _, _ in problems}
    vmin, vmax = converted.get("voltage_min_v"), converted.get("voltage_max_v")
    if vmin and vmax:
        problems.extend(
            (k, "voltage_min_v", "must be below voltage_max_v")
            for k, (low, high) in enumerate(zip(vmin, vmax, strict=True))
            if low is not None and high is not None and low >= high and k not in failed
        )
    return converted, problems


def _cells(converted: dict[str, list[Any]]) -> list[Cell]:
    names = list(converted)
    return [
        Cell(**dict(zip(names, row, strict=True))) for row in zip(*converted.values(), strict=True)
    ]


def _sorted_problems(problems: list[Problem]) -> list[Problem]:
    order = {name: k for k, name in enumerate(CELL_FIELDS)}
    return sorted(
        problems, key=lambda p: (-1 if p[0] is None else p[0], order.get(p[1], len(order)))
    )


def cell_from_mapping(row: Mapping[str, Any], *, row_number: int | None = None) -> Cell:
    """Build and check one cell from a mapping of field name -> value (strings or numbers)."""
    problems: list[Problem] = [
        (row_number, str(name), "unknown column") for name in row if name not in _CONVERTERS
    ]
    if "cell_id" not in row:
        problems.append((row_number, "cell_id", "cell ID is missing"))
    columns = {name: [value] for name, value in row.items() if name in _CONVERTERS}
    converted, bad = _check_columns(columns, text=False)
    problems.extend((row_number, name, message) for _, name, message in bad)
    if problems:
        raise CellDataError(_sorted_problems(problems))
    return _cells(converted)[0]


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


CHUNK_CHARS = 1 << 18  # characters of a plain CSV split at a time (cache-sized; bounds peak memory)


class _NotPlain(Exception):
    """A plain-looking CSV has a blank or ragged line: the csv module reads it instead."""


def _check_header(header: list[str]) -> list[str]:
    header = [name.strip() for name in header]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise CellDataError([(None, name, "duplicate column") for name in duplicates])
    unknown = [name for name in header if name not in CELL_FIELDS]
    if unknown:
        raise CellDataError([(None, name, "unknown column") for name in unknown])
    if "cell_id" not in header:
        raise CellDataError([(None, "cell_id", "required column is missing")])
    return header


def _plain_csv_chunks(text: str) -> Iterator[dict[str, list[str]]] | None:
    """Columns of a CSV without quotes, a chunk of lines at a time, split with whole-chunk
    ``str`` operations; None (no plain header) or :class:`_NotPlain` (a blank or ragged line)
    sends the text to the csv module."""
    if '"' in text:
        return None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            return None
    end = text.find("\n")
    end = len(text) if end == -1 else end
    if end == 0:
        return None
    header = _check_header(text[:end].split(","))
    width = len(header)

    stop = len(text) - 1 if text.endswith("\n") else len(text)  # the last line's newline

    def chunks(pos: int) -> Iterator[dict[str, list[str]]]:
        while pos < stop:
            end = text.find("\n", pos + CHUNK_CHARS, stop)
            end = stop if end == -1 else end
            lines = text[pos:end].split("\n")
            if "" in lines or set(map(str.count, lines, repeat(","))) != {width - 1}:
                raise _NotPlain
            flat = ",".join(lines).split(",")
            yield {name: flat[k::width] for k, name in enumerate(header)}
            pos = end + 1

    return chunks(end + 1)


def _csv_module_columns(text: str) -> dict[str, Sequence[str]]:
    """The columns of any CSV by header name, read by the csv module (quotes, blank lines), which
    also names the first row with the wrong number of fields."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = _check_header(next(reader))
    except StopIteration:
        raise CellDataError([(None, "header", "the CSV file is empty")]) from None
    records = list(reader)
    width = len(header)
    if set(map(len, records)) - {width}:
        number, record = next((k, r) for k, r in enumerate(records, start=1) if len(r) != width)
        raise CellDataError([(number, "*", f"has {len(record)} fields, header has {width}")])
    by_position = zip(*records, strict=True) if records else ((),) * width
    return dict(zip(header, by_position, strict=True))


def _csv_chunks(text: str, *, plain: bool) -> Iterator[Mapping[str, Sequence[str]]]:
    text = text.lstrip("\ufeff")
    chunks = _plain_csv_chunks(text) if plain else None
    if chunks is None:
        yield _csv_module_columns(text)
    else:
        yield from chunks


def _columns_from_json(text: str) -> tuple[dict[str, Sequence[Any]], list[Problem]]:
    """The JSON list's columns (keys a row leaves out are absent), row count and key problems."""

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
    problems: list[Problem] = []
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise CellDataError([(number, "*", "expected an object")])
        problems.extend(
            (number, str(key), "unknown column") for key in item if key not in _CONVERTERS
        )
        if "cell_id" not in item:
            problems.append((number, "cell_id", "cell ID is missing"))
    names = [name for name in CELL_FIELDS if name == "cell_id" or any(name in r for r in data)]
    columns = {name: [item.get(name, _ABSENT) for item in data] for name in names}
    return dict(columns), problems


def _id_hashes(ids: Sequence[Any], *, text: bool) -> np.ndarray:
    """``hash`` of every ID (0 for a value that is no text: refused as an ID anyway)."""
    keys = ids if text else [v if type(v) is str else "" for v in ids]
    return np.fromiter(map(hash, keys), np.int64, len(ids))


def _duplicate_ids(
    chunks: Callable[[], Iterable[Mapping[str, Sequence[Any]]]],
    hashes: np.ndarray,
    skip: set[int],
) -> list[Problem]:
    """Rows (1-based) whose ID an earlier row already has; rows in ``skip`` are left out.

    Only IDs whose hash repeats are candidates; those alone are fetched again from the chunks
    and compared, so a million IDs cost one array of hashes instead of a set of strings."""
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if repeated.size == 0:
        return []
    wanted = np.flatnonzero(np.isin(hashes, repeated))
    candidates: list[tuple[int, Any]] = []
    offset = 0
    for columns in chunks():
        ids = columns["cell_id"]
        here = wanted[(wanted >= offset) & (wanted < offset + len(ids))]
        candidates.extend((k, ids[k - offset]) for k in here.tolist())
        offset += len(ids)
    first: dict[str, int] = {}
    problems: list[Problem] = []
    for k, cell_id in candidates:
        if k in skip or type(cell_id) is not str:
            continue
        if cell_id in first:
            problems.append(
                (k + 1, "cell_id", f"duplicate ID {cell_id!r} (first in row {first[cell_id]})")
            )
        else:
            first[cell_id] = k + 1
    return problems


def _parse_chunks(
    chunks: Callable[[], Iterable[Mapping[str, Sequence[Any]]]],
    problems: list[Problem],
    *,
    text: bool,
    lot: str | None,
) -> list[Cell]:
    """Check every chunk of columns (keeping only hashes of the IDs, for duplicates), then, if
    nothing is wrong, convert them again and build the cells: a refused file never holds its
    cells, nor all its IDs."""
    hashes: list[np.ndarray] = []
    bad_ids: set[int] = set()
    offset = 0
    for columns in chunks():
        _, bad = _check_columns(columns, text=text)
        problems.extend((offset + k + 1, name, message) for k, name, message in bad)
        bad_ids.update(offset + k for k, name, _ in bad if name == "cell_id")
        hashes.append(_id_hashes(columns["cell_id"], text=text))
        offset += len(columns["cell_id"])
    if offset == 0:
        raise CellDataError([(None, "*", "the cell list has no rows")])
    problems.extend(_duplicate_ids(chunks, np.concatenate(hashes), bad_ids))
    if problems:
        problems = _sorted_problems(problems)
        more = len(problems) > MAX_REPORTED_ERRORS
        raise CellDataError(problems[:MAX_REPORTED_ERRORS], more=more)
    cells: list[Cell] = []
    for columns in chunks():
        converted, _ = _check_columns(columns, text=text)
        if lot:
            count = len(columns["cell_id"])
            converted["lot"] = [value or lot for value in converted.get("lot", [""] * count)]
        cells.extend(_cells(converted))
    return cells


def parse_lot(text: str, *, kind: str, lot: str | None = None) -> list[Cell]:
    """Parse and check a whole cell list (``kind`` is ``csv`` or ``json``); all or nothing.

    ``lot`` fills the lot of rows that leave it empty. Duplicate IDs inside the list are errors.
    The list is checked column by column (see :func:`_check_columns`), a chunk of rows at a
    time: a million-row file with one bad row is refused in a few whole-column passes instead
    of a million row checks, and without building any cell.
    """
    if kind == "csv":
        try:
            return _parse_chunks(lambda: _csv_chunks(text, plain=True), [], text=True, lot=lot)
        except _NotPlain:
            return _parse_chunks(lambda: _csv_chunks(text, plain=False), [], text=True, lot=lot)
    if kind == "json":
        columns, problems = _columns_from_json(text)
        return _parse_chunks(lambda: [columns], problems, text=False, lot=lot)
    raise ValueError(f"unknown cell list kind {kind!r} (csv or json)")


def read_lot_file(path: str | Path, *, lot: str | None = None) -> list[Cell]:
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CellDataError([(None, "file", f"{path} is not UTF-8 text: {error}")]) from error
    return parse_lot(text, kind=kind, lot=lot)

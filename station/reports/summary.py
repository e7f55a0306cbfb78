"""CSV and XLSX summaries of a batch, safe against spreadsheet formula injection (reliability.md
X2).

A text cell that a spreadsheet could run as a formula (starting with ``= + - @``, tab or CR) gets
a leading apostrophe, as does one that already starts with an apostrophe, so :func:`restore`
gives back the original text exactly. Control characters (NUL and the rest of C0, which XLSX cannot
store) are written as ``\\xHH`` and backslashes doubled. Numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path

from station.passport.record import GradingRecord, format_utc

_DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r", "'")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\\]")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")

COLUMNS: Sequence[tuple[str, str]] = (
    ("serial_number", "text"),
    ("passport_id", "text"),
    ("grade", "text"),
    ("bin", "text"),
    ("status", "text"),
    ("capacity_ah", "number"),
    ("soh_capacity_pct", "number"),
    ("dcir_mohm", "number"),
    ("reasons", "text"),
    ("operator", "text"),
    ("finished_at", "text"),
    ("record_id", "text"),
)


def neutralise(text: str) -> str:
    """Text safe to put in a spreadsheet cell; :func:`restore` inverts it."""
    escaped = _CONTROL.sub(
        lambda m: "\\\\" if m.group() == "\\" else f"\\x{ord(m.group()):02x}", text
    )
    return "'" + escaped if escaped.startswith(_DANGEROUS_START) else escaped


def restore(cell: str) -> str:
    """The original text of a cell written by :func:`neutralise`."""
    if cell.startswith("'"):
        cell = cell[1:]
    return _ESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1)[1:], 16)), cell)


def summary_rows(records: Sequence[GradingRecord]) -> list[list[str | float]]:
    rows: list[list[str | float]] = []
    for r in records:
        rows.append(
            [
                r.cell.serial_number,
                r.cell.passport_id,
                r.grade.grade,
                r.grade.bin,
                r.status.value,
                r.number("6.7.2.3"),
                r.number("x-station.soh-capacity"),
                r.number("6.7.5#method=dcir") * 1000.0,
                "; ".join(r.grade.reasons),
                r.operator,
                format_utc(r.finished_at),
                r.record_id,
            ]
        )
    return rows


def _safe(row: Sequence[str | float]) -> list[str | float]:
    return [neutralise(v) if isinstance(v, str) else v for v in row]


def write_csv(records: Sequence[GradingRecord], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([name for name, _ in COLUMNS])
    for row in summary_rows(records):
        writer.writerow([repr(v) if isinstance(v, float) else v for v in _safe(row)])
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    temporary.replace(path)
    return path


def write_xlsx(records: Sequence[GradingRecord], path: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "cells"
    sheet.append([name for name, _ in COLUMNS])
    for number, row in enumerate(summary_rows(records), start=2):
        for column, value in enumerate(_safe(row), start=1):
            cell = sheet.cell(row=number, column=column, value=value)
            if isinstance(value, str):
                # openpyxl would otherwise store text starting with '=' as a formula.
                cell.data_type = "s"
    temporary = path.with_name(path.name + ".part")
    book.save(temporary)
    temporary.replace(path)
    return path

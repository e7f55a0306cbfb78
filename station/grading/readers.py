"""Readers for the files the CLI accepts: Battery Data Format CSV time series and EIS spectra.

BDF (``../shared/reference/bdf.md``): header of preferred labels (``Test Time / s``) or
machine-readable names (``test_time_second``); the station's own export uses the snake-case
names of :class:`station.grading.timeseries.TimeSeries` (``t_s``, ``voltage_v``, ...), which
are accepted too. Current is positive when charging; a file that looks like the opposite
convention (voltage rising while the current is negative) is refused with a clear message
unless ``flip_current`` is given.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from station.grading.timeseries import TimeSeries, TimestampError

ALIASES: dict[str, tuple[str, ...]] = {
    "t_s": ("test time / s", "test_time_second", "t_s"),
    "voltage_v": ("voltage / v", "voltage_volt", "voltage_v"),
    "current_a": ("current / a", "current_ampere", "current_a"),
    "cycle_count": ("cycle count / 1", "cycle_count", "cycle_index"),
    "step_count": ("step count / 1", "step_count", "step_index", "step index / 1"),
    "temperature_c": (
        "surface temperature t1 / degc",
        "temperature_t1_celsius",
        "temperature_c",
        "ambient temperature / degc",
        "ambient_temperature_celsius",
    ),
}
REQUIRED = ("t_s", "voltage_v", "current_a")


class InputFileError(ValueError):
    """A file cannot be read as asked; the message names the file, line and column."""


def _sniff(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    for delimiter in (",", ";", "\t"):
        if delimiter in first:
            return delimiter
    return " "


def _numeric_table(
    rows: list[list[str]], columns: list[int], names: list[str], first_line: int, path: Path
) -> np.ndarray:
    out = np.empty((len(rows), len(columns)))
    for r, row in enumerate(rows):
        for c, (index, name) in enumerate(zip(columns, names, strict=True)):
            try:
                out[r, c] = float(row[index])
            except (ValueError, IndexError):
                cell = row[index] if index < len(row) else "<missing>"
                raise InputFileError(
                    f"{path}: line {first_line + r}, column {name!r}: {cell!r} is not a number"
                ) from None
    return out


@dataclass(frozen=True)
class LoadedSeries:
    series: TimeSeries
    columns: dict[str, str]  # our name -> header label found
    flipped: bool


def read_bdf_csv(path: str | Path, flip_current: bool = False) -> LoadedSeries:
    """Read a BDF CSV (or station export) into a validated :class:`TimeSeries`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputFileError(f"{path}: cannot read ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise InputFileError(
            f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8"
        ) from None
    if not text.strip():
        raise InputFileError(f"{path}: empty file")
    delimiter = _sniff(text)
    head_line = text.split("\n", 1)[0]
    head_row = next(csv.reader([head_line], delimiter=delimiter, skipinitialspace=True), [])
    header = [h.strip().lower() for h in head_row]
    found: dict[str, int] = {}
    for ours, aliases in ALIASES.items():
        for alias in aliases:
            if alias in header:
                found[ours] = header.index(alias)
                break
    missing = [ALIASES[name][0] for name in REQUIRED if name not in found]
    if missing:
        raise InputFileError(
            f"{path}: missing column(s) {', '.join(repr(m.title()) for m in missing)} "
            f"(header has {', '.join(repr(h) for h in head_row)})"
        )
    names = list(found)
    table = _fast_table(text, delimiter, [found[n] for n in names])
    if table is None:
        _name_bad_chunk(text, delimiter, [found[n] for n in names], names, path)
        # Slow path only to find and name the offending line and column.
        reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
        rows = [row for row in reader if row and any(cell.strip() for cell in row)]
        table = _numeric_table(rows[1:], [found[n] for n in names], names, 2, path)
    if len(table) < 2:
        raise InputFileError(f"{path}: needs a header and at least 2 data rows")
    data = {name: table[:, k] for k, name in enumerate(names)}
    current = -data["current_a"] if flip_current else data["current_a"]
    try:
        series = TimeSeries.from_arrays(
            data["t_s"],
            data["voltage_v"],
            current,
            temperature_c=data.get("temperature_c"),
            step_count=None if "step_count" not in data else data["step_count"].astype(np.int64),
            cycle_count=None if "cycle_count" not in data else data["cycle_count"].astype(np.int64),
        )
    except TimestampError as error:
        lines = ", ".join(str(int(r) + 2) for r in error.rows[:5])
        raise InputFileError(f"{path}: time goes backwards at line(s) {lines}: {error}") from None
    except ValueError as error:
        raise InputFileError(f"{path}: {error} (data row 0 is line 2)") from None
    if not flip_current and _looks_flipped(series):
        raise InputFileError(
            f"{path}: the voltage rises while the current is negative, so the file seems to "
            "count discharge current as positive; the station counts charge as positive. "
            "Re-run with --flip-current if that is so."
        )
    return LoadedSeries(series, {n: head_row[found[n]].strip() for n in names}, flip_current)


def _fast_table(
    text: str, delimiter: str, columns: list[int], *, skiprows: int = 1
) -> np.ndarray | None:
    """All data rows at numpy speed, or None when any cell is not a number."""
    try:
        table = np.loadtxt(
            io.StringIO(text),
            delimiter=None if delimiter == " " else delimiter,
            skiprows=skiprows,
            usecols=columns,
            ndmin=2,
            dtype=np.float64,
        )
    except (ValueError, IndexError):
        return None
    return table


CHUNK_LINES = 1 << 16  # lines per numpy attempt when looking for the line that is not a number


def _name_bad_chunk(
    text: str, delimiter: str, columns: list[int], names: list[str], path: Path
) -> None:
    """Raise the slow path's error for the first block of lines numpy cannot read, so that a
    long file with one bad line is read cell by cell only around that line. Returns when no
    block fails on its own (then the whole-file slow path decides)."""
    lines = io.StringIO(text).readlines()  # the universal newlines numpy and csv see
    for start in range(1, len(lines), CHUNK_LINES):
        chunk = lines[start : start + CHUNK_LINES]
        block = "".join(chunk)
        if block.strip() and _fast_table(block, delimiter, columns, skiprows=0) is None:
            reader = csv.reader(chunk, delimiter=delimiter, skipinitialspace=True)
            rows = [row for row in reader if row and any(cell.strip() for cell in row)]
            _numeric_table(rows, columns, names, start + 1, path)


def _looks_flipped(ts: TimeSeries) -> bool:
    """True when, over the current-carrying samples, V mostly rises under negative current."""
    i = ts.current_a[1:]
    dv = np.diff(ts.voltage_v)
    moving = (np.abs(i) > 0.05 * float(np.max(np.abs(i)) or 1.0)) & (dv != 0)
    if moving.sum() < 10:
        return False
    agreement = np.mean(np.sign(i[moving]) == np.sign(dv[moving]))
    return bool(agreement < 0.2)


@dataclass(frozen=True)
class Spectrum:
    frequency_hz: np.ndarray
    z: np.ndarray
    note: str


def read_spectrum_csv(path: str | Path) -> Spectrum:
    """Frequency (Hz), real and imaginary impedance (ohm), with or without a header.

    A header whose third column starts with ``-`` (``-Z''``, ``-Im``) holds -Im Z. Without a
    header, a column that is mostly positive is read as -Im Z (battery arcs are capacitive)
    and the note says so.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputFileError(f"{path}: cannot read ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise InputFileError(
            f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8"
        ) from None
    delimiter = _sniff(text)
    rows = [
        [c for c in row if c.strip()]
        for row in csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    ]
    rows = [row for row in rows if row]
    if not rows:
        raise InputFileError(f"{path}: empty file")
    try:
        [float(c) for c in rows[0][:3]]
        header: list[str] | None = None
        body, first_line = rows, 1
    except ValueError:
        header, body, first_line = rows[0], rows[1:], 2
    if len(rows[0]) < 3:
        raise InputFileError(f"{path}: line 1 needs 3 columns (frequency, real, imaginary)")
    table = _numeric_table(body, [0, 1, 2], ["frequency", "real", "imaginary"], first_line, path)
    # float() accepts "nan", "inf" and 1e400; a fit on them fails far from the cause.
    bad = np.flatnonzero(~np.isfinite(table).all(axis=1) | (table[:, 0] <= 0))
    if len(bad):
        lines = ", ".join(str(first_line + int(r)) for r in bad[:5])
        raise InputFileError(
            f"{path}: line(s) {lines}: frequency must be a positive number and the impedance finite"
        )
    imag = table[:, 2]
    note = "imaginary column read as Im Z"
    if header is not None and header[2].strip().startswith("-"):
        imag = -imag
        note = f"imaginary column {header[2].strip()!r} read as -Im Z"
    elif header is None and np.mean(imag > 0) > 0.5:
        imag = -imag
        note = "imaginary column is mostly positive: read as -Im Z (capacitive arcs)"
    if len(table) < 5:
        raise InputFileError(f"{path}: a spectrum needs at least 5 frequencies")
    return Spectrum(table[:, 0].copy(), table[:, 1] + 1j * imag, note)

"""Raw data per cell: Battery Data Format CSV and the station's own CSV with a JSON sidecar.

BDF rules (shared/reference/bdf.md): one cell per file, a header of preferred labels with the unit
fixed by the label, ``.bdf.csv`` infix, cell metadata in a parallel file. The station writes
preferred labels and states its sign convention (positive current charges) in the sidecar.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from station.passport.canonical import canonical_bytes
from station.passport.record import GradingRecord, format_utc, raw_data_sha256

SIDECAR_FORMAT = "station-raw-data/1"


class RawDataError(ValueError):
    """Raw data that cannot be written or read; the message names the column or row."""


@dataclass(frozen=True)
class RawSeries:
    """One cell's time series. ``t_s`` from the test start, ``voltage_v``, ``current_a`` (positive
    charges), optional cell ``temperature_c`` and cycler ``step_index``; ``unix_start_s`` is the
    UTC epoch of ``t_s = 0``."""

    t_s: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    temperature_c: np.ndarray | None = None
    step_index: np.ndarray | None = None
    unix_start_s: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.t_s)
        for name, column in self.columns().items():
            if len(column) != n:
                raise RawDataError(f"column {name}: {len(column)} rows, t_s has {n}")
            if not np.all(np.isfinite(column)):
                row = int(np.flatnonzero(~np.isfinite(column))[0])
                raise RawDataError(f"column {name}: row {row} is not a finite number")
        if n > 1 and np.any(np.diff(self.t_s) <= 0):
            row = int(np.flatnonzero(np.diff(self.t_s) <= 0)[0]) + 1
            raise RawDataError(f"column t_s: row {row} does not increase")

    def columns(self) -> dict[str, np.ndarray]:
        out = {"t_s": self.t_s, "voltage_v": self.voltage_v, "current_a": self.current_a}
        if self.temperature_c is not None:
            out["temperature_c"] = self.temperature_c
        if self.step_index is not None:
            out["step_index"] = self.step_index
        return out


_BDF_COLUMNS = (
    ("Test Time / s", "t_s"),
    ("Unix Time / s", None),
    ("Voltage / V", "voltage_v"),
    ("Current / A", "current_a"),
    ("Step Index / 1", "step_index"),
    ("Surface Temperature T1 / degC", "temperature_c"),
)


def _file_stem(record: GradingRecord, institution: str) -> str:
    day = record.started_at.strftime("%Y%m%d")
    cell = re.sub(r"[^A-Za-z0-9-]+", "-", record.cell.serial_number).strip("-")
    return f"{institution}__{cell}__{day}_{record.test_id[-3:]:0>3}"


def bdf_csv(raw: RawSeries) -> str:
    """The BDF CSV text (preferred labels, ``repr`` floats so values round-trip exactly)."""
    columns = raw.columns()
    header = []
    data = []
    for label, name in _BDF_COLUMNS:
        if name is None:
            header.append(label)
            data.append(raw.t_s + raw.unix_start_s)
        elif name in columns:
            header.append(label)
            data.append(columns[name])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in zip(*data, strict=True):
        writer.writerow([repr(float(v)) for v in row])
    return buffer.getvalue()


def read_bdf_csv(text: str) -> RawSeries:
    """Read BDF CSV written by :func:`bdf_csv` (preferred labels or machine-readable names)."""
    aliases = {
        "test_time_second": "Test Time / s",
        "unix_time_second": "Unix Time / s",
        "voltage_volt": "Voltage / V",
        "current_ampere": "Current / A",
        "step_index": "Step Index / 1",
        "temperature_t1_celsius": "Surface Temperature T1 / degC",
    }
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise RawDataError("BDF file is empty")
    header = [aliases.get(h.strip(), h.strip()) for h in rows[0]]
    for required in ("Test Time / s", "Voltage / V", "Current / A"):
        if required not in header:
            raise RawDataError(f"BDF header lacks the required column {required!r}")
    values: dict[str, list[float]] = {h: [] for h in header}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise RawDataError(f"row {number}: {len(row)} fields, header has {len(header)}")
        for label, cell in zip(header, row, strict=True):
            try:
                values[label].append(float(cell))
            except ValueError as error:
                raise RawDataError(f"row {number}, column {label!r}: {cell!r}") from error
    t_s = np.array(values["Test Time / s"])
    unix = values.get("Unix Time / s")
    return RawSeries(
        t_s=t_s,
        voltage_v=np.array(values["Voltage / V"]),
        current_a=np.array(values["Current / A"]),
        temperature_c=(
            np.array(values["Surface Temperature T1 / degC"])
            if "Surface Temperature T1 / degC" in values
            else None
        ),
        step_index=np.array(values["Step Index / 1"]) if "Step Index / 1" in values else None,
        unix_start_s=float(unix[0] - t_s[0]) if unix else 0.0,
    )


def station_csv(raw: RawSeries) -> str:
    """The station's own CSV: machine names with units in them (``t_s``, ``voltage_v`` ...)."""
    columns = raw.columns()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for row in zip(*columns.values(), strict=True):
        writer.writerow([repr(float(v)) for v in row])
    return buffer.getvalue()


def sidecar(record: GradingRecord, raw: RawSeries, files: dict[str, str]) -> dict[str, Any]:
    """Metadata for the raw files: cell identity, test, sign convention, digests."""
    return {
        "format": SIDECAR_FORMAT,
        "record_id": record.record_id,
        "test_id": record.test_id,
        "passport_id": record.cell.passport_id,
        "cell_serial_number": record.cell.serial_number,
        "cell_model": record.cell.model,
        "manufacturer_name": record.cell.manufacturer_name,
        "started_at": format_utc(record.started_at),
        "current_sign_convention": "positive current charges the cell",
        "raw_data_sha256": raw_data_sha256(raw.columns()),
        "rows": len(raw.t_s),
        "files": files,
        "units": {
            "t_s": "s",
            "voltage_v": "V",
            "current_a": "A",
            "temperature_c": "degC",
            "step_index": "1",
        },
    }


def write_raw_exports(
    record: GradingRecord, raw: RawSeries, out_dir: Path, *, institution: str = "STATION"
) -> dict[str, Path]:
    """Write ``<stem>.bdf.csv``, ``<stem>.station.csv`` and ``<stem>.meta.json`` into ``out_dir``.

    Refuses raw data whose digest differs from the record's ``raw_data_sha256`` (the files must be
    the data the figures came from). Each file is written to a temporary name and renamed, so a
    failure leaves no half-written file.
    """
    digest = raw_data_sha256(raw.columns())
    if digest != record.raw_data_sha256:
        raise RawDataError(
            f"raw data digest {digest[:12]}... differs from the record's "
            f"{record.raw_data_sha256[:12]}... (record {record.record_id})"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = _file_stem(record, institution)
    texts = {"bdf": bdf_csv(raw).encode(), "station": station_csv(raw).encode()}
    names = {"bdf": f"{stem}.bdf.csv", "station": f"{stem}.station.csv"}
    meta = sidecar(record, raw, names)
    meta["file_sha256"] = {names[k]: hashlib.sha256(v).hexdigest() for k, v in texts.items()}
    texts["meta"] = json.dumps(json.loads(canonical_bytes(meta)), indent=2).encode() + b"\n"
    names["meta"] = f"{stem}.meta.json"
    paths: dict[str, Path] = {}
    for key, payload in texts.items():
        target = out_dir / names[key]
        temporary = target.with_name(target.name + ".part")
        temporary.write_bytes(payload)
        temporary.replace(target)
        paths[key] = target
    return paths

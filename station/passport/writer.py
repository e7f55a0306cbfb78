"""Signed passport exports of stored cells, written to a folder: the one code path behind
``station export`` and the GUI's batch export.

The record comes from stored data only (:mod:`station.passport.stored`), so a cell tested on lab
instruments and one tested on a simulated bench export the same way; a simulated one says so in
every file. Each format writes the signed record with it (``station verify`` checks both):

- ``idta``: IDTA-02035 Part 5, Part 4 and Part 1 payloads (signed envelopes);
- ``catenax``: the Catena-X 6.1.0 ``performance.dynamic`` block (signed envelope);
- ``aas``: an AAS JSON environment and AASX package from the shipped IDTA templates;
- ``bdf``: the raw series as Battery Data Format CSV with its metadata sidecar;
- ``csv``: the raw series as the station's CSV with its metadata sidecar.

Every payload is checked against the shipped schema before anything is written; the files are
staged in a temporary folder inside the output folder and renamed into place, so a failure
leaves nothing behind. Every failure is an :class:`ExportError` whose message is one line.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station.passport.aas import write_aas_json, write_aasx
from station.passport.exports import (
    catenax_dynamic,
    idta_nameplate,
    idta_product_condition,
    idta_technical_data,
)
from station.passport.models import aas_templates, schema_errors
from station.passport.rawdata import RawDataError, write_raw_exports
from station.passport.record import (
    GradingRecord,
    PassportValue,
    RecordError,
    read_bms_readout,
    read_earlier_passport,
)
from station.passport.signing import SigningError, StationKey, sign_document
from station.passport.stored import StoredRecord, file_stem, read_datasheet, stored_record

FORMATS = ("idta", "catenax", "aas", "bdf", "csv")
NEEDS_IMPORTS = ("idta", "catenax")
"""Formats whose payloads hold values the station does not measure (usage history, rated
values, nameplate): they need a BMS read-out and a datasheet."""
TARGETS: dict[str, dict[str, Callable[[GradingRecord], dict[str, Any]]]] = {
    "idta": {
        "idta-02035-5": idta_product_condition,
        "idta-02035-4": idta_technical_data,
        "idta-02035-1": idta_nameplate,
    },
    "catenax": {"catenax-6.1.0-performance-dynamic": catenax_dynamic},
}
DEFAULT_STATION_ID = "station"


class ExportError(RuntimeError):
    """The export cannot be written; nothing was. The message is one line and says why."""


class MissingValuesError(ExportError):
    """A payload needs values the station does not measure (usage history, rated values,
    nameplate); they come from a BMS read-out, a datasheet or an earlier passport."""


@dataclass(frozen=True)
class Imports:
    """Values the station does not measure, from files: a BMS read-out (station-bms-readout/1),
    a datasheet (station-datasheet/1) and an earlier IDTA-02035-5 payload (which needs the
    original passport's ID)."""

    bms_readout: Path | None = None
    datasheet: Path | None = None
    earlier_passport: Path | None = None

    def read(self, original_passport_id: str | None) -> tuple[list[PassportValue], dict[str, str]]:
        """The imported values and the datasheet's nameplate identity texts."""
        values: list[PassportValue] = []
        identity: dict[str, str] = {}
        for path in (self.bms_readout, self.datasheet, self.earlier_passport):
            if path is not None and not path.is_file():
                raise ExportError(f"{path} does not exist")
        try:
            if self.bms_readout is not None:
                values.extend(read_bms_readout(self.bms_readout))
            if self.datasheet is not None:
                sheet = read_datasheet(self.datasheet)
                values.extend(sheet.values)
                identity.update(sheet.identity)
            if self.earlier_passport is not None:
                if not original_passport_id:
                    raise ExportError(
                        "an earlier passport needs the original passport ID (its passport ID)"
                    )
                values.extend(
                    read_earlier_passport(self.earlier_passport, passport_id=original_passport_id)
                )
        except RecordError as error:
            raise ExportError(str(error)) from None
        return values, identity


@dataclass
class ExportResult:
    """Files written per cell (in the order written), the records they hold, and the cells left
    out, with why."""

    files: dict[str, list[Path]] = field(default_factory=dict)
    records: dict[str, GradingRecord] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)
    simulated: bool = False

    def paths(self) -> list[Path]:
        return [path for paths in self.files.values() for path in paths]


def load_key(path: Path | None) -> StationKey:
    """The station signing key at ``path`` (default: $STATION_KEY_FILE or the user data
    directory), created on first use."""
    try:
        return StationKey.load_or_create(path)
    except SigningError as error:
        raise ExportError(str(error)) from None


@contextmanager
def read_only(db_path: Path) -> Iterator[sqlite3.Connection]:
    """The database opened read-only (an export never writes to it); its errors become
    :class:`ExportError`."""
    if not db_path.is_file():
        raise ExportError(f"database {db_path} does not exist")
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise ExportError(f"database {db_path}: {error}") from None
    try:
        yield conn
    except sqlite3.Error as error:
        raise ExportError(f"database {db_path}: {error}") from None
    finally:
        conn.close()


def load_stored(
    db_path: Path,
    cell_id: str,
    *,
    station_id: str,
    imported: list[PassportValue] | None = None,
    identity: dict[str, str] | None = None,
    original_passport_id: str | None = None,
) -> StoredRecord:
    """The cell's record from the database at ``db_path``."""
    with read_only(db_path) as conn:
        try:
            return stored_record(
                conn,
                cell_id,
                station_id=station_id,
                imported=imported or [],
                identity=identity,
                original_passport_id=original_passport_id,
            )
        except RecordError as error:
            raise ExportError(str(error)) from None


def _signed_documents(stored: StoredRecord, fmt: str, key: StationKey) -> dict[str, bytes]:
    """file name -> signed bytes: the record and the format's schema-checked payloads."""
    record = stored.record
    stem = file_stem(record.cell.serial_number)
    documents: dict[str, Any] = {"record": record.to_dict()}
    for target, build in TARGETS.get(fmt, {}).items():
        try:
            export = build(record)
        except RecordError as error:
            raise MissingValuesError(str(error)) from None
        problems = schema_errors(target, export["payload"])
        if problems:
            raise ExportError(
                f"the {target} payload breaks its schema ({len(problems)} problems; first: "
                f"{problems[0]})"
            )
        documents[target] = export
    return {
        f"{stem}.{name}.signed.json": sign_document(document, key)
        for name, document in documents.items()
    }


def _stage(stored: StoredRecord, fmt: str, key: StationKey, staging: Path) -> list[str]:
    """Write every file of one cell's export into ``staging``; returns their names."""
    names = []
    for name, data in _signed_documents(stored, fmt, key).items():
        (staging / name).write_bytes(data)
        names.append(name)
    stem = file_stem(stored.record.cell.serial_number)
    try:
        if fmt == "aas":
            templates = aas_templates()
            for path in (
                write_aas_json(stored.record, templates, staging / f"{stem}.aas.json"),
                write_aasx(stored.record, templates, staging / f"{stem}.aasx"),
            ):
                names.append(path.name)
        elif fmt in ("bdf", "csv"):
            keep = ("bdf" if fmt == "bdf" else "station", "meta")
            for kind, path in write_raw_exports(stored.record, stored.raw, staging).items():
                if kind in keep:
                    names.append(path.name)
                else:
                    path.unlink()
    except (RecordError, RawDataError) as error:
        raise ExportError(str(error)) from None
    return names


def write_export(stored: StoredRecord, fmt: str, key: StationKey, out_dir: Path) -> list[Path]:
    """One cell's export into ``out_dir``, all or nothing."""
    return write_exports([stored], fmt, key, out_dir).paths()


def write_exports(
    records: Sequence[StoredRecord],
    fmt: str,
    key: StationKey,
    out_dir: Path,
    *,
    skip_failures: bool = False,
) -> ExportResult:
    """Every cell's export staged in a temporary folder inside ``out_dir`` and moved into place
    (renames on one file system) when all were written; a failure writes nothing.

    ``skip_failures``: a cell whose payloads cannot be built is left out (listed with why)
    instead of failing the export; when no cell is left, that is an error naming the first
    reason.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    result = ExportResult(simulated=any(s.simulated for s in records))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".station-export-", dir=out_dir))
    except OSError as error:
        raise ExportError(f"{error.filename or out_dir}: {error.strerror}") from None
    try:
        staged: dict[str, tuple[Path, list[str]]] = {}
        for index, stored in enumerate(records):
            cell_id = stored.record.cell.serial_number
            # One folder per cell, so a cell left out takes its partial files with it.
            folder = staging / str(index)
            folder.mkdir()
            try:
                staged[cell_id] = (folder, _stage(stored, fmt, key, folder))
            except ExportError as error:
                if not skip_failures:
                    raise
                result.left_out[cell_id] = str(error)
        if not staged:
            cell_id, why = next(iter(result.left_out.items()))
            raise ExportError(f"no cell could be exported ({cell_id}: {why})")
        by_cell = {s.record.cell.serial_number: s.record for s in records}
        for cell_id, (folder, names) in staged.items():
            result.records[cell_id] = by_cell[cell_id]
            result.files[cell_id] = []
            for name in names:
                (folder / name).replace(out_dir / name)
                result.files[cell_id].append(out_dir / name)
        return result
    except OSError as error:
        raise ExportError(f"{error.filename or out_dir}: {error.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_cells(
    db_path: Path,
    cell_ids: Sequence[str],
    fmt: str,
    out_dir: Path,
    key: StationKey,
    *,
    station_id: str = DEFAULT_STATION_ID,
    imports: Imports | None = None,
    original_passport_ids: Mapping[str, str] | None = None,
) -> ExportResult:
    """Export the cells' latest stored grades as ``fmt`` into ``out_dir``.

    With one cell, any problem is an :class:`ExportError`. With several, a cell whose record
    or payloads cannot be built is left out (listed with why) and the others are written; when
    none can be, that is an error naming the first reason. Nothing is written on an error.
    """
    if not cell_ids:
        raise ExportError("no cells to export")
    originals = original_passport_ids or {}
    imports = imports or Imports()
    several = len(cell_ids) > 1
    records: list[StoredRecord] = []
    left_out: dict[str, str] = {}
    for cell_id in cell_ids:
        try:
            values, identity = imports.read(originals.get(cell_id))
            records.append(
                load_stored(
                    db_path,
                    cell_id,
                    station_id=station_id,
                    imported=values,
                    identity=identity,
                    original_passport_id=originals.get(cell_id),
                )
            )
        except ExportError as error:
            if not several:
                raise
            left_out[cell_id] = str(error)
    if not records:
        cell_id, why = next(iter(left_out.items()))
        raise ExportError(f"no cell could be exported ({cell_id}: {why})")
    result = write_exports(records, fmt, key, out_dir, skip_failures=several)
    result.left_out = {**left_out, **result.left_out}
    return result

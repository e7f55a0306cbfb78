"""``station export``: a graded cell's passport exports, built from the database and signed.

The record comes from stored data only (:mod:`station.passport.stored`), so a cell tested on lab
instruments and one tested on a simulated bench export the same way; a simulated one says so in
every file. Each format writes the signed record with it (``station verify`` checks both):

- ``idta``: IDTA-02035 Part 5, Part 4 and Part 1 payloads (signed envelopes);
- ``catenax``: the Catena-X 6.1.0 ``performance.dynamic`` block (signed envelope);
- ``aas``: an AAS JSON environment and AASX package from the shipped IDTA templates;
- ``bdf``: the raw series as Battery Data Format CSV with its metadata sidecar;
- ``csv``: the raw series as the station's CSV with its metadata sidecar.

Every payload is checked against the shipped schema before anything is written; the files are
staged in a temporary folder inside ``--out`` and renamed into place, so a failure leaves
nothing behind. Exit codes: 0 written, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from station.cli.common import default_db_path, print_json
from station.cli.main import CommandError
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
TARGETS: dict[str, dict[str, Callable[[GradingRecord], dict[str, Any]]]] = {
    "idta": {
        "idta-02035-5": idta_product_condition,
        "idta-02035-4": idta_technical_data,
        "idta-02035-1": idta_nameplate,
    },
    "catenax": {"catenax-6.1.0-performance-dynamic": catenax_dynamic},
}
DEFAULT_STATION_ID = "station"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a graded cell's signed passport exports from the database",
        description=(
            "Build the passport record of CELL from the database (its latest stored grade and the "
            "run that grade used), check every payload against the shipped schemas, sign it "
            "with the station key and write the files of FORMAT into OUT. Nothing is written "
            "when any step fails."
        ),
    )
    parser.add_argument(
        "--db", type=Path, help="database file (default: $STATION_DB or the user data directory)"
    )
    parser.add_argument("--cell", required=True, help="cell ID (barcode) to export")
    parser.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="idta (IDTA-02035 Parts 5, 4, 1), catenax (6.1.0 performance.dynamic), aas "
        "(AAS JSON + AASX), bdf (Battery Data Format CSV), csv (station CSV)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path(), help="output folder (default: current folder)"
    )
    parser.add_argument(
        "--key",
        type=Path,
        help="station signing key (default: $STATION_KEY_FILE or the user data directory; "
        "created on first use)",
    )
    parser.add_argument(
        "--station-id", default=DEFAULT_STATION_ID, help="station identifier written in the record"
    )
    parser.add_argument(
        "--original-passport-id",
        help="ID of the cell's original passport; needed for a cell graded into a bin "
        "(repurposed, Art. 77)",
    )
    parser.add_argument(
        "--bms-readout",
        type=Path,
        help="BMS read-out JSON (station-bms-readout/1) with the cell's usage history",
    )
    parser.add_argument(
        "--earlier-passport",
        type=Path,
        help="earlier IDTA-02035-5 payload of the cell (needs --original-passport-id)",
    )
    parser.add_argument(
        "--datasheet",
        type=Path,
        help="datasheet JSON (station-datasheet/1): rated values keyed by DIN clause and the "
        "nameplate identity (manufacturer, facility, address, warranty)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the written files as one JSON document"
    )
    parser.set_defaults(handler=run)


def _imported(args: argparse.Namespace) -> tuple[list[PassportValue], dict[str, str]]:
    """Values and identity texts from the files given (BMS read-out, datasheet, earlier
    passport)."""
    values: list[PassportValue] = []
    identity: dict[str, str] = {}
    for path in (args.bms_readout, args.datasheet, args.earlier_passport):
        if path is not None and not path.is_file():
            raise CommandError(f"{path} does not exist")
    if args.bms_readout is not None:
        values.extend(read_bms_readout(args.bms_readout))
    if args.datasheet is not None:
        sheet = read_datasheet(args.datasheet)
        values.extend(sheet.values)
        identity.update(sheet.identity)
    if args.earlier_passport is not None:
        if not args.original_passport_id:
            raise CommandError("--earlier-passport needs --original-passport-id (its passport ID)")
        values.extend(
            read_earlier_passport(args.earlier_passport, passport_id=args.original_passport_id)
        )
    return values, identity


def load_stored(
    db_path: Path,
    cell_id: str,
    *,
    station_id: str,
    imported: list[PassportValue] | None = None,
    identity: dict[str, str] | None = None,
    original_passport_id: str | None = None,
) -> StoredRecord:
    """The cell's record from a database opened read-only (an export never writes to it)."""
    if not db_path.is_file():
        raise CommandError(f"database {db_path} does not exist; give --db")
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise CommandError(f"database {db_path}: {error}") from None
    try:
        return stored_record(
            conn,
            cell_id,
            station_id=station_id,
            imported=imported or [],
            identity=identity,
            original_passport_id=original_passport_id,
        )
    except sqlite3.Error as error:
        raise CommandError(f"database {db_path}: {error}") from None
    finally:
        conn.close()


def _signed_documents(stored: StoredRecord, fmt: str, key: StationKey) -> dict[str, bytes]:
    """file name -> signed bytes: the record and the format's schema-checked payloads."""
    record = stored.record
    stem = file_stem(record.cell.serial_number)
    documents: dict[str, Any] = {"record": record.to_dict()}
    for target, build in TARGETS.get(fmt, {}).items():
        try:
            export = build(record)
        except RecordError as error:
            raise CommandError(
                f"{error} (values the station does not measure come from --bms-readout, "
                "--datasheet or --earlier-passport); nothing was written"
            ) from None
        problems = schema_errors(target, export["payload"])
        if problems:
            raise CommandError(
                f"the {target} payload breaks its schema ({len(problems)} problems; first: "
                f"{problems[0]}); nothing was written"
            )
        documents[target] = export
    return {
        f"{stem}.{name}.signed.json": sign_document(document, key)
        for name, document in documents.items()
    }


def _stage(stored: StoredRecord, fmt: str, key: StationKey, staging: Path) -> list[str]:
    """Write every file of the export into ``staging``; returns their names."""
    names = []
    for name, data in _signed_documents(stored, fmt, key).items():
        (staging / name).write_bytes(data)
        names.append(name)
    stem = file_stem(stored.record.cell.serial_number)
    writers: dict[str, Callable[[], None]] = {
        "aas": lambda: _stage_aas(stored, staging, stem, names),
        "bdf": lambda: _stage_raw(stored, staging, ("bdf", "meta"), names),
        "csv": lambda: _stage_raw(stored, staging, ("station", "meta"), names),
    }
    if fmt in writers:
        writers[fmt]()
    return names


def _stage_aas(stored: StoredRecord, staging: Path, stem: str, names: list[str]) -> None:
    templates = aas_templates()
    for path in (
        write_aas_json(stored.record, templates, staging / f"{stem}.aas.json"),
        write_aasx(stored.record, templates, staging / f"{stem}.aasx"),
    ):
        names.append(path.name)


def _stage_raw(
    stored: StoredRecord, staging: Path, keep: tuple[str, ...], names: list[str]
) -> None:
    written = write_raw_exports(stored.record, stored.raw, staging)
    for kind, path in written.items():
        if kind in keep:
            names.append(path.name)
        else:
            path.unlink()


def write_export(stored: StoredRecord, fmt: str, key: StationKey, out_dir: Path) -> list[Path]:
    """Stage the export in a temporary folder inside ``out_dir`` and move its files into place
    (renames on one file system); a failure removes the staging folder and writes nothing."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".station-export-", dir=out_dir))
    try:
        names = _stage(stored, fmt, key, staging)
        targets = []
        for name in names:
            (staging / name).replace(out_dir / name)
            targets.append(out_dir / name)
        return targets
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_key(path: Path | None) -> StationKey:
    try:
        return StationKey.load_or_create(path)
    except SigningError as error:
        raise CommandError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    db_path: Path = args.db or default_db_path()
    try:
        imported, identity = _imported(args)
        stored = load_stored(
            db_path,
            args.cell,
            station_id=args.station_id,
            imported=imported,
            identity=identity,
            original_passport_id=args.original_passport_id,
        )
        key = load_key(args.key)
        paths = write_export(stored, args.format, key, args.out)
    except (RecordError, RawDataError) as error:
        raise CommandError(f"{error}; nothing was written") from None
    except OSError as error:
        raise CommandError(f"{error.filename or args.out}: {error.strerror}") from None
    if args.json:
        print_json(
            {
                "cell": args.cell,
                "format": args.format,
                "simulated": stored.simulated,
                "record_id": stored.record.record_id,
                "grade": stored.record.grade.grade,
                "key_fingerprint": key.fingerprint,
                "files": [str(p) for p in paths],
            }
        )
        return 0
    tag = " [SIMULATED data]" if stored.simulated else ""
    print(f"{args.cell}: {args.format} export{tag}, signed by key {key.fingerprint}")
    for path in paths:
        print(f"  {path}")
    return 0

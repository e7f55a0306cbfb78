"""``station export``: a graded cell's passport exports, built from the database and signed
(:mod:`station.passport.writer`, which says what each format writes).

Exit codes: 0 written, 2 bad input (one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from station.cli.common import add_signing_options, default_db_path, print_json
from station.cli.main import CommandError
from station.passport.writer import (
    DEFAULT_STATION_ID,
    FORMATS,
    ExportError,
    Imports,
    MissingValuesError,
    export_cells,
    load_key,
)


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
    add_signing_options(parser, DEFAULT_STATION_ID)
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


def run(args: argparse.Namespace) -> int:
    db_path: Path = args.db or default_db_path()
    if not db_path.is_file():
        raise CommandError(f"database {db_path} does not exist; give --db")
    if args.earlier_passport is not None and not args.original_passport_id:
        raise CommandError("--earlier-passport needs --original-passport-id (its passport ID)")
    imports = Imports(args.bms_readout, args.datasheet, args.earlier_passport)
    originals = {args.cell: args.original_passport_id} if args.original_passport_id else {}
    try:
        key = load_key(args.key)
        result = export_cells(
            db_path,
            [args.cell],
            args.format,
            args.out,
            key,
            station_id=args.station_id,
            imports=imports,
            original_passport_ids=originals,
        )
    except MissingValuesError as error:
        raise CommandError(
            f"{error} (values the station does not measure come from --bms-readout, "
            "--datasheet or --earlier-passport); nothing was written"
        ) from None
    except ExportError as error:
        raise CommandError(f"{error}; nothing was written") from None
    paths = result.paths()
    if args.json:
        print_json(
            {
                "cell": args.cell,
                "format": args.format,
                "simulated": result.simulated,
                "record_id": result.records[args.cell].record_id,
                "grade": result.records[args.cell].grade.grade,
                "key_fingerprint": key.fingerprint,
                "files": [str(p) for p in paths],
            }
        )
        return 0
    tag = " [SIMULATED data]" if result.simulated else ""
    print(f"{args.cell}: {args.format} export{tag}, signed by key {key.fingerprint}")
    for path in paths:
        print(f"  {path}")
    return 0

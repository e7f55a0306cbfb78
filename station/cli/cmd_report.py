"""``station report``: the batch report, certificates and signed records of a stored lot.

Exit codes: 0 written (cells without a stored grade are listed, not fatal), 2 bad input or
nothing reportable (one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from station.cli.common import add_signing_options, default_db_path, print_json
from station.cli.main import CommandError
from station.passport.writer import DEFAULT_STATION_ID, ExportError, load_key
from station.reports.lot import LotReportError, report_lot

ORIGINALS_COLUMNS = ("cell_id", "original_passport_id")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write the batch report and per-cell certificates of a stored lot",
        description=(
            "Build the records of LOT's graded cells from the database, sign them with the "
            "station key, and write into OUT: batch-report.pdf, summary.csv, certificates/"
            "<cell>.pdf and records/<cell>.record.signed.json. Nothing is written on an error."
        ),
    )
    parser.add_argument(
        "--db", type=Path, help="database file (default: $STATION_DB or the user data directory)"
    )
    parser.add_argument("--lot", required=True, help="lot name as stored with the cells")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_signing_options(parser, DEFAULT_STATION_ID)
    parser.add_argument(
        "--originals",
        type=Path,
        help="CSV with columns cell_id, original_passport_id: the original passports of cells "
        "graded into a bin (repurposed, Art. 77)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the written files as one JSON document"
    )
    parser.set_defaults(handler=run)


def read_originals(path: Path) -> dict[str, str]:
    """cell -> original passport ID; every row checked before any is used."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise CommandError(f"{path}: {error.strerror or error}") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != ORIGINALS_COLUMNS:
        raise CommandError(f"{path}: the header must be {','.join(ORIGINALS_COLUMNS)}")
    out: dict[str, str] = {}
    problems = []
    for row_number, row in enumerate(reader, start=1):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            problems.append(f"row {row_number}: needs a cell_id and an original_passport_id")
        elif row[0].strip() in out:
            problems.append(f"row {row_number}: cell {row[0].strip()!r} given twice")
        else:
            out[row[0].strip()] = row[1].strip()
    if problems:
        raise CommandError(f"{path}: {'; '.join(problems)}; nothing was written")
    return out


def run(args: argparse.Namespace) -> int:
    db_path: Path = args.db or default_db_path()
    originals = read_originals(args.originals) if args.originals else {}
    if not db_path.is_file():
        raise CommandError(f"database {db_path} does not exist; give --db")
    try:
        key = load_key(args.key)
        report = report_lot(
            db_path, args.lot, args.out, key, station_id=args.station_id, originals=originals
        )
    except (ExportError, LotReportError) as error:
        raise CommandError(f"{error}; nothing was written") from None
    if args.json:
        print_json(
            {
                "lot": report.lot,
                "simulated": report.simulated,
                "batch_report": str(report.batch_report),
                "summary_csv": str(report.summary_csv),
                "certificates": {c: str(p) for c, p in report.certificates.items()},
                "records": {c: str(p) for c, p in report.records.items()},
                "left_out": report.left_out,
                "key_fingerprint": key.fingerprint,
            }
        )
        return 0
    tag = " [SIMULATED data]" if report.simulated else ""
    print(
        f"lot {report.lot}{tag}: {len(report.certificates)} certificates, signed by key "
        f"{key.fingerprint}"
    )
    print(f"  {report.batch_report}")
    print(f"  {report.summary_csv}")
    for cell_id, path in report.certificates.items():
        print(f"  {cell_id}: {path}")
    for cell_id, why in report.left_out.items():
        print(f"  {cell_id}: no certificate: {why}")
    return 0

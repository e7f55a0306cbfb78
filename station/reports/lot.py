"""Reports of a stored lot: the batch report PDF, one certificate PDF per graded cell with its
signed record, and the summary CSV, all built from the database (:mod:`station.passport.stored`).

Cells without a stored grade, graded from a run that stopped early (no figures to certify),
graded into a bin without their original passport's ID, or whose run lacks a figure the reports
show (no pulse step: no DC resistance) get no certificate; :class:`LotReport` lists them with the
reason, led by their stored decision when they have one. Files are staged in a temporary folder
inside the output folder and moved into place only when every one was written.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from station.evaluation import lot_cells
from station.passport.record import RecordError
from station.passport.signing import StationKey, sign_document
from station.passport.stored import StoredRecord, StoredRecordError, file_stem, stored_record
from station.passport.writer import ExportError, read_only
from station.reports.batch import render_batch_report, summarise
from station.reports.certificate import SignatureInfo, render_certificate
from station.reports.plots import Impedance
from station.reports.summary import summary_rows, write_csv

BATCH_REPORT = "batch-report.pdf"
SUMMARY_CSV = "summary.csv"
CERTIFICATES = "certificates"
RECORDS = "records"


class LotReportError(RuntimeError):
    """The lot cannot be reported; nothing was written. The message says why."""


@dataclass
class LotReport:
    """What was written (paths under the output folder) and the cells left out, with why."""

    lot: str
    batch_report: Path | None = None
    summary_csv: Path | None = None
    certificates: dict[str, Path] = field(default_factory=dict)
    records: dict[str, Path] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)
    simulated: bool = False


def lot_records(
    conn: sqlite3.Connection,
    lot: str,
    *,
    station_id: str,
    originals: Mapping[str, str],
) -> tuple[list[StoredRecord], dict[str, str]]:
    """The records of the lot's graded cells and the cells left out (cell -> why)."""
    cell_ids = lot_cells(conn, lot)
    if not cell_ids:
        raise LotReportError(f"lot {lot!r} holds no cells in this database")
    unknown = sorted(set(originals) - set(cell_ids))
    if unknown:
        raise LotReportError(f"original passport IDs given for cells not in lot {lot!r}: {unknown}")
    records: list[StoredRecord] = []
    left_out: dict[str, str] = {}
    for cell_id in cell_ids:
        try:
            records.append(
                stored_record(
                    conn,
                    cell_id,
                    station_id=station_id,
                    original_passport_id=originals.get(cell_id),
                )
            )
        except StoredRecordError as error:
            left_out[cell_id] = _with_decision(conn, cell_id, str(error))
    return records, left_out


def _with_decision(conn: sqlite3.Connection, cell_id: str, why: str) -> str:
    """Why a cell has no record, led by its stored decision when it has one (a cell whose run
    stopped early is graded QUARANTINE or RETEST but has no figures to certify)."""
    row = conn.execute(
        "SELECT grade, reason FROM grades WHERE cell_id = ? ORDER BY id DESC LIMIT 1", (cell_id,)
    ).fetchone()
    return why if row is None else f"{row[0]}: {row[1]} (no record: {why})"


def write_lot_report(
    conn: sqlite3.Connection,
    lot: str,
    out_dir: Path,
    key: StationKey,
    *,
    station_id: str,
    originals: Mapping[str, str] | None = None,
) -> LotReport:
    """Render and sign everything for the lot into ``out_dir`` (all or nothing)."""
    records, left_out = lot_records(conn, lot, station_id=station_id, originals=originals or {})
    if not records:
        raise LotReportError(
            f"no cell of lot {lot!r} can be reported: "
            + "; ".join(f"{c}: {why}" for c, why in sorted(left_out.items()))
        )
    simulated = any(r.simulated for r in records)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".station-report-", dir=out_dir))
    try:
        report = _stage(records, lot, key, staging, simulated, left_out)
        return _move(report, staging, out_dir)
    except (RecordError, ValueError) as error:
        raise LotReportError(f"lot {lot!r}: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def report_lot(
    db_path: Path,
    lot: str,
    out_dir: Path,
    key: StationKey,
    *,
    station_id: str,
    originals: Mapping[str, str] | None = None,
) -> LotReport:
    """:func:`write_lot_report` on the database at ``db_path``, opened read-only (a report never
    writes to it); every failure is a :class:`LotReportError` with a one-line message."""
    try:
        with read_only(db_path) as conn:
            return write_lot_report(
                conn, lot, out_dir, key, station_id=station_id, originals=originals
            )
    except ExportError as error:
        raise LotReportError(str(error)) from None
    except OSError as error:
        raise LotReportError(f"{error.filename or out_dir}: {error.strerror}") from None


def _stage(
    records: list[StoredRecord],
    lot: str,
    key: StationKey,
    staging: Path,
    simulated: bool,
    left_out: dict[str, str],
) -> LotReport:
    report = LotReport(lot=lot, simulated=simulated, left_out=left_out)
    (staging / CERTIFICATES).mkdir()
    (staging / RECORDS).mkdir()
    reported: list[StoredRecord] = []
    for stored in records:
        record = stored.record
        cell_id = record.cell.serial_number
        stem = file_stem(cell_id)
        signed = sign_document(record.to_dict(), key)
        try:
            # The figures the summary and batch report show (summary_rows reads them all): a
            # run without one (no pulse step, so no DC resistance) leaves that cell out
            # instead of failing the whole lot.
            summary_rows([record])
            certificate = render_certificate(
                record,
                stored.raw,
                staging / CERTIFICATES / f"{stem}.pdf",
                signature=SignatureInfo.from_signed(signed),
                discharge_step=stored.discharge_step,
                pulse_step=stored.pulse_step,
                impedance=None if stored.spectrum is None else Impedance(*stored.spectrum),
            )
        except RecordError as error:
            left_out[cell_id] = f"{error}: its run lacks a figure the report shows"
            continue
        path = staging / RECORDS / f"{stem}.record.signed.json"
        path.write_bytes(signed)
        report.records[cell_id] = path
        report.certificates[cell_id] = certificate
        reported.append(stored)
    if not reported:
        raise LotReportError(
            f"no cell of lot {lot!r} can be reported: "
            + "; ".join(f"{c}: {why}" for c, why in sorted(left_out.items()))
        )
    plain = [s.record for s in reported]
    title = f"{lot} [SIMULATED]" if simulated else lot
    report.batch_report = render_batch_report(
        summarise(plain, lot=title), staging / BATCH_REPORT, left_out
    )
    report.summary_csv = write_csv(plain, staging / SUMMARY_CSV)
    return report


def _move(report: LotReport, staging: Path, out_dir: Path) -> LotReport:
    def move(path: Path) -> Path:
        target = out_dir / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
        return target

    if report.batch_report is not None:
        report.batch_report = move(report.batch_report)
    if report.summary_csv is not None:
        report.summary_csv = move(report.summary_csv)
    report.records = {c: move(p) for c, p in report.records.items()}
    report.certificates = {c: move(p) for c, p in report.certificates.items()}
    return report

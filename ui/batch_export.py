"""Passports and lot reports from the batch view: the same station code as ``station export``
and ``station report`` (:func:`station.passport.writer.export_cells`,
:func:`station.reports.lot.report_lot`) on the bench's database, with the outcome in words.

Pure Python (no Qt). Every call reads the database and writes files, so the GUI runs them in
workers (:class:`ui.workers.Workers`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from station.passport.writer import (
    DEFAULT_STATION_ID,
    NEEDS_IMPORTS,
    ExportError,
    Imports,
    MissingValuesError,
    export_cells,
    load_key,
)
from station.reports.lot import LotReportError, report_lot
from station.storage import Storage

IMPORTS_HINT = (
    "idta and catenax need the cells' BMS read-out and datasheet (usage history, rated values "
    "and nameplate the station does not measure): pick both files in the export dialog"
)


@dataclass(frozen=True)
class PassportRequest:
    """What the technician asked for: ``cell_ids`` (empty: every graded cell), the format, the
    output folder and the files with values the station does not measure."""

    cell_ids: tuple[str, ...]
    fmt: str
    folder: str
    bms_readout: str = ""
    datasheet: str = ""


@dataclass(frozen=True)
class Outcome:
    """One line for the status (it names the output folder) and the lines of detail (files
    written, relative to that folder; cells left out, with why)."""

    ok: bool
    summary: str
    lines: tuple[str, ...] = ()


def make_passport_exporter(
    storage: Storage, *, key_path: Path | None = None, station_id: str = DEFAULT_STATION_ID
) -> Callable[[PassportRequest], Outcome]:
    """request -> outcome; signs with the key at ``key_path`` (default: $STATION_KEY_FILE or the
    user data directory, created on first use). Blocks."""

    def export(request: PassportRequest) -> Outcome:
        cells = list(request.cell_ids) or sorted(storage.latest_grades())
        if not cells:
            return Outcome(False, "No graded cell to export.")
        imports = Imports(
            Path(request.bms_readout) if request.bms_readout else None,
            Path(request.datasheet) if request.datasheet else None,
        )
        try:
            result = export_cells(
                Path(storage.path),
                cells,
                request.fmt,
                Path(request.folder),
                load_key(key_path),
                station_id=station_id,
                imports=imports,
            )
        except ExportError as error:
            hint = ""
            if request.fmt in NEEDS_IMPORTS and (
                isinstance(error, MissingValuesError)
                or not (request.bms_readout and request.datasheet)
            ):
                hint = f" ({IMPORTS_HINT})"
            return Outcome(False, f"Passport export failed: {error}{hint}")
        tag = " [SIMULATED data]" if result.simulated else ""
        folder = Path(request.folder)
        lines = [str(p.relative_to(folder)) for p in result.paths()]
        lines += [f"{cell}: not exported: {why}" for cell, why in result.left_out.items()]
        left = f", {len(result.left_out)} left out" if result.left_out else ""
        return Outcome(
            True,
            f"{request.fmt} passports{tag}: {len(result.paths())} files for "
            f"{len(result.files)} cell(s){left} in {request.folder}",
            tuple(lines),
        )

    return export


def make_lot_reporter(
    storage: Storage, *, key_path: Path | None = None, station_id: str = DEFAULT_STATION_ID
) -> Callable[[str, str], Outcome]:
    """(lot, folder) -> outcome: the batch report PDF, summary CSV, certificates and signed
    records of the lot's graded cells. Blocks."""

    def report(lot: str, folder: str) -> Outcome:
        try:
            written = report_lot(
                Path(storage.path), lot, Path(folder), load_key(key_path), station_id=station_id
            )
        except (ExportError, LotReportError) as error:
            return Outcome(False, f"Lot report failed: {error}")
        tag = " [SIMULATED data]" if written.simulated else ""
        files = [written.batch_report, written.summary_csv]
        files += [*written.certificates.values(), *written.records.values()]
        lines = [str(path.relative_to(folder)) for path in files if path is not None]
        # A lot is usually tested a few cells at a time: its cells not graded yet are one line,
        # any other cell left out is named with why.
        graded = storage.latest_grades()
        ungraded = [cell for cell in written.left_out if cell not in graded]
        lines += [
            f"{cell}: no certificate: {why}"
            for cell, why in written.left_out.items()
            if cell in graded
        ]
        if ungraded:
            lines.append(f"{len(ungraded)} cell(s) of the lot have no stored grade yet")
        return Outcome(
            True,
            f"Lot {lot}{tag}: batch report and {len(written.certificates)} certificate(s) "
            f"in {folder}",
            tuple(lines),
        )

    return report

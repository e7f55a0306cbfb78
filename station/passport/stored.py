"""The passport record of a graded cell, built from what the database holds.

Everything comes from storage, the same way for a real bench and a simulated one: the cell's
identity and rated values (``cells``), its latest stored grade (``grades``, ADR 0009), the
figures of the run that grade used, recomputed by :mod:`station.evaluation` (the one path from
stored samples to figures), the identities of the instruments that measured (``instruments``,
``runs``, ``measurements``) and their calibration (``runs.calibration_due``, ``calibrations``).
Values the station does not store (usage history, datasheet mass ...) come only from the files
the caller passes (a BMS read-out, an earlier passport); nothing is filled in.

Times: the station clock's seconds read as UTC epoch seconds. A simulated bench's clock starts
at the wall clock's time of its launch and runs accelerated from there, so a simulated record's
dates lie at or after its launch date; every instrument of such a run is marked simulated, and
so is every export of it.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np

import station
from station.evaluation import (
    CURRENT_ACCURACY_REL,
    EvaluationError,
    RunData,
    metrics_for_run,
    reference_steps,
    run_data,
)
from station.grading.metrics import pulse_power_key
from station.grading.results import CellMetrics
from station.grading.timeseries import charge_increments_as
from station.passport.rawdata import RawSeries
from station.passport.record import (
    CLAUSES,
    CellIdentity,
    Conditions,
    GradeOutcome,
    GradingRecord,
    Instrument,
    PassportValue,
    RecordBuilder,
    RecordError,
    Source,
    raw_data_sha256,
)
from station.reports.certificate import status_for_decision

DATASHEET_FORMAT = "station-datasheet/1"
CELLS_ORIGIN = "cell record of the station database (lot file or intake)"
PASSPORT_NAMESPACE = uuid.UUID("6f1c1f0e-3f52-5d8e-9a57-2b7f3c1d0a11")
"""Namespace of the station's passport IDs: ``urn:uuid:uuid5(namespace, cell ID)``, so the same
cell always gets the same passport ID from any export."""

METHODS = {
    "capacity_ah": "CC discharge to the cell's minimum voltage, trapezoidal Ah",
    "energy_wh": "bench estimate: integral of V*I over the capacity discharge",
    "rte": "Wh out of the capacity discharge over Wh into the CCCV recharge after it",
    "dcir_10s_ohm": "median 10 s discharge pulse resistance",
    "acir_ohm": "1 kHz AC resistance at intake",
    "self_discharge_pct_per_month": "K-value of the OCV hold x dQ/dV of the capacity discharge at "
    "the hold OCV, over the rated capacity (grading.md 2.4)",
}
POWER_SOC_PCT = (20, 80)


class StoredRecordError(RecordError):
    """The database cannot give a record for this cell; the message says why and what to do."""


@dataclass(frozen=True)
class StoredRecord:
    """A record with the raw series it was computed from and the steps the certificate plots
    (``discharge_step`` the capacity discharge, ``pulse_step`` the first discharge pulse)."""

    record: GradingRecord
    raw: RawSeries
    discharge_step: int
    pulse_step: int | None
    simulated: bool
    spectrum: tuple[np.ndarray, np.ndarray] | None = None  # (frequency Hz, complex Z ohm)


@dataclass
class _PlainFigure:
    """``FigureLike`` declares settable attributes, which a frozen ``Figure`` cannot satisfy
    for mypy; this plain copy does."""

    value: float
    unit: str
    uncertainty: float | None


def _when(t_s: float) -> datetime:
    return datetime.fromtimestamp(t_s, UTC)


def file_stem(cell_id: str) -> str:
    """A file name stem for a cell ID (barcodes may hold characters a file system refuses)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", cell_id).strip("-.") or "cell"


def passport_id_of(cell_id: str) -> str:
    return f"urn:uuid:{uuid.uuid5(PASSPORT_NAMESPACE, cell_id)}"


def _rows(conn: sqlite3.Connection) -> sqlite3.Cursor:
    """A cursor returning named rows (the caller's connection keeps its own row factory)."""
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor


def _cell_row(conn: sqlite3.Connection, cell_id: str) -> sqlite3.Row:
    row = _rows(conn).execute("SELECT * FROM cells WHERE cell_id = ?", (cell_id,)).fetchone()
    if row is None:
        raise StoredRecordError(f"cell {cell_id!r} is not in the database")
    return row


def _latest_grade(conn: sqlite3.Connection, cell_id: str) -> sqlite3.Row:
    query = (
        "SELECT id, run_ids, profile_name, profile_version, profile_sha256, grade, bin, use,"
        " reason, explanation_json, operator FROM grades WHERE cell_id = ?"
        " ORDER BY id DESC LIMIT 1"
    )
    row = _rows(conn).execute(query, (cell_id,)).fetchone()
    if row is None:
        raise StoredRecordError(
            f"cell {cell_id!r} has no stored grade; grade it first (station grade --db DB)"
        )
    return row


def _reasons(grade: sqlite3.Row) -> tuple[str, ...]:
    """The deciding reason, then the grade's summary when it says more (never twice)."""
    reasons = [str(grade["reason"])]
    summary = json.loads(grade["explanation_json"]).get("grade", {}).get("summary")
    if isinstance(summary, str) and summary and summary not in reasons:
        reasons.append(summary)
    return tuple(r for r in reasons if r)


def _instrument(
    conn: sqlite3.Connection, key: str, where: str, params: tuple[object, ...]
) -> Instrument | None:
    row = conn.execute(
        "SELECT make, model, serial, firmware, simulated FROM instruments WHERE "
        + where
        + " ORDER BY seen_t_s DESC LIMIT 1",
        params,
    ).fetchone()
    if row is None:
        return None
    make, model, serial, firmware, simulated = row
    calibration = conn.execute(
        "SELECT due_date, certificate FROM calibrations WHERE serial = ? ORDER BY id DESC LIMIT 1",
        (serial,),
    ).fetchone()
    due = None if calibration is None else date.fromisoformat(calibration[0])
    certificate = "" if calibration is None else str(calibration[1])
    return Instrument(
        key,
        str(make),
        str(model),
        str(serial),
        str(firmware),
        calibration_certificate=certificate or "(not recorded)",
        calibration_due=due,
        simulated=bool(simulated),
    )


def _instruments(conn: sqlite3.Connection, run: RunData) -> dict[str, Instrument]:
    """The cycler of the run and the meter of its ACIR measurement, as stored."""
    head = conn.execute(
        "SELECT instrument, instrument_serial, calibration_due, simulated FROM runs"
        " WHERE run_id = ?",
        (run.run_id,),
    ).fetchone()
    found: dict[str, Instrument] = {}
    cycler = _instrument(conn, "cycler", "name = ? AND serial = ?", (head[0], head[1]))
    if cycler is None:
        # The run names an instrument the identity table never saw (e.g. imported data).
        cycler = Instrument("cycler", str(head[0]), "", str(head[1]), "", simulated=bool(head[3]))
    if head[2]:
        cycler = Instrument(
            cycler.key,
            cycler.make,
            cycler.model,
            cycler.serial,
            cycler.firmware,
            calibration_certificate=cycler.calibration_certificate,
            calibration_due=date.fromisoformat(head[2]),
            simulated=cycler.simulated,
        )
    found["cycler"] = cycler
    text = conn.execute(
        "SELECT instrument FROM measurements WHERE run_pk = ? AND kind = 'acir'"
        " ORDER BY id DESC LIMIT 1",
        (run.run_pk,),
    ).fetchone()
    if text is not None:
        # The measurement names its meter as "make model s/n serial fw firmware".
        meter = _instrument(
            conn,
            "acir",
            "? LIKE make || ' ' || model || ' s/n ' || serial || '%'",
            (str(text[0]),),
        )
        if meter is not None:
            found["acir"] = meter
    return found


def raw_series(run: RunData) -> RawSeries:
    """The run's samples for export: ``t_s`` from the test start, strictly increasing (a sample
    repeated at a step boundary keeps its first row)."""
    keep = np.concatenate([[True], np.diff(run.t_s) > 0])
    t = run.t_s[keep]
    return RawSeries(
        t_s=t - t[0],
        voltage_v=run.voltage_v[keep],
        current_a=run.current_a[keep],
        temperature_c=None if run.temperature_c is None else run.temperature_c[keep],
        step_index=run.step_index[keep].astype(float),
        unix_start_s=float(t[0]),
    )


def _identity(cell: sqlite3.Row, given: Mapping[str, str]) -> CellIdentity:
    """The nameplate identity: the cell record's, with what a datasheet states on top."""
    base = _stored_identity(cell)
    fields: dict[str, Any] = dict(given)
    for name in ("date_of_manufacture", "date_of_putting_into_service"):
        if name in fields:
            fields[name] = date.fromisoformat(fields[name])
    return replace(base, **fields)


def _stored_identity(cell: sqlite3.Row) -> CellIdentity:
    chemistry = str(cell["chemistry"])
    rated = cell["rated_capacity_ah"]
    model = f"{chemistry} {cell['format']} {rated:g} Ah".strip() if rated else chemistry
    produced = None
    if cell["production_date"]:
        try:
            produced = date.fromisoformat(str(cell["production_date"]))
        except ValueError:
            produced = None  # free text in the lot file: not a date the models can carry
    return CellIdentity(
        passport_id=passport_id_of(str(cell["cell_id"])),
        serial_number=str(cell["cell_id"]),
        manufacturer_name=str(cell["manufacturer"]),
        manufacturer_identifier="",
        model=model,
        chemistry=chemistry,
        date_of_manufacture=produced,
    )


@dataclass(frozen=True)
class Datasheet:
    """What a datasheet file gives: record values and nameplate identity texts."""

    values: tuple[PassportValue, ...]
    identity: dict[str, str]


IDENTITY_FIELDS = frozenset(
    {
        "manufacturer_name",
        "manufacturer_identifier",
        "model",
        "category",
        "date_of_manufacture",
        "date_of_putting_into_service",
        "facility_identifier",
        "address_street",
        "address_zip",
        "address_city",
        "address_country",
        "warranty_period",
    }
)
"""Nameplate fields of :class:`CellIdentity` a datasheet may state (the cell record has none)."""


def read_datasheet(path: Path) -> Datasheet:
    """Datasheet values from a file, marked ``source=datasheet`` with the document as origin.

    Format ``station-datasheet/1``: ``{"format", "document_id", "issued" (ISO date),
    "values": {<record key>: number}, "identity": {<field>: text}}``; value keys are DIN clauses
    with an optional qualifier (``6.7.3.2#soc=20``), each value in the unit the record keeps for
    its clause (:data:`station.passport.record.CLAUSES`); identity fields are those of
    :data:`IDENTITY_FIELDS` (dates ISO). Unknown clauses and fields are refused.
    """
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoredRecordError(f"{where}: cannot read a JSON datasheet: {error}") from None
    if not isinstance(data, dict) or data.get("format") != DATASHEET_FORMAT:
        raise StoredRecordError(f"{where}: not a {DATASHEET_FORMAT} document")
    document = data.get("document_id")
    values = data.get("values")
    if not isinstance(document, str) or not document or not isinstance(values, dict):
        raise StoredRecordError(f"{where}: needs a document_id and a values object")
    try:
        issued = datetime.combine(date.fromisoformat(str(data.get("issued"))), time(), UTC)
    except ValueError:
        raise StoredRecordError(f"{where}: issued is not an ISO date") from None
    out = []
    for key, number in sorted(values.items()):
        clause, _, qualifier = key.partition("#")
        if clause not in CLAUSES:
            raise StoredRecordError(f"{where}: values.{key}: unknown DIN clause {clause!r}")
        info = CLAUSES[clause]
        if info.kind == "integer":
            if isinstance(number, bool) or not isinstance(number, int):
                raise StoredRecordError(f"{where}: values.{key}: expected an integer")
            value: float | int | tuple[str, ...] = number
        elif info.kind == "text_list":
            if not isinstance(number, list) or not all(isinstance(t, str) for t in number):
                raise StoredRecordError(f"{where}: values.{key}: expected a list of texts")
            value = tuple(number)
        else:
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise StoredRecordError(f"{where}: values.{key}: expected a number")
            value = float(number)
        soc = qualifier.removeprefix("soc=") if qualifier.startswith("soc=") else None
        try:
            conditions = Conditions(soc_pct=None if soc is None else float(soc))
        except ValueError:
            raise StoredRecordError(f"{where}: values.{key}: soc= needs a number") from None
        out.append(
            PassportValue(
                clause=clause,
                value=value,
                unit=info.unit,
                source=Source.DATASHEET,
                observed_at=issued,
                qualifier=qualifier,
                conditions=conditions,
                origin=f"datasheet:{document}",
            )
        )
    identity = data.get("identity", {})
    if not isinstance(identity, dict) or not all(isinstance(v, str) for v in identity.values()):
        raise StoredRecordError(f"{where}: identity must be an object of texts")
    unknown = sorted(set(identity) - IDENTITY_FIELDS)
    if unknown:
        raise StoredRecordError(f"{where}: identity: unknown field(s) {', '.join(unknown)}")
    for name in ("date_of_manufacture", "date_of_putting_into_service"):
        if name in identity:
            try:
                date.fromisoformat(identity[name])
            except ValueError:
                raise StoredRecordError(f"{where}: identity.{name} is not an ISO date") from None
    return Datasheet(tuple(out), dict(identity))


def _add_datasheet(
    builder: RecordBuilder, cell: sqlite3.Row, at: datetime, given: set[str]
) -> None:
    """Rated values the cell record holds, as datasheet values (nothing assumed), unless a
    datasheet file gives the same key (``given``)."""
    for clause, column, scale in (
        ("6.7.2.2", "rated_capacity_ah", 1.0),
        ("6.7.2.5", "rated_energy_wh", 1e-3),
        ("6.7.2.9", "voltage_min_v", 1.0),
        ("6.7.2.10", "voltage_max_v", 1.0),
        ("6.7.2.11", "nominal_voltage_v", 1.0),
    ):
        number = cell[column]
        if number is not None and clause not in given:
            builder.datasheet(clause, float(number) * scale, origin=CELLS_ORIGIN, observed_at=at)
    if cell["bol_resistance_ohm"] is not None and "6.7.5.2#method=acir_1khz" not in given:
        builder.datasheet(
            "6.7.5.2",
            float(cell["bol_resistance_ohm"]),
            origin=CELLS_ORIGIN,
            observed_at=at,
            qualifier="method=acir_1khz",
        )


def _add_measured(
    builder: RecordBuilder,
    run: RunData,
    metrics: CellMetrics,
    instruments: dict[str, Instrument],
    at: datetime,
) -> None:
    reference = Conditions(temperature_c=25.0, c_rate=1 / 3)
    for metric, method in METHODS.items():
        figure = metrics.figures.get(metric)
        if figure is None or not math.isfinite(figure.value):
            continue
        meter = "acir" if metric == "acir_ohm" else "cycler"
        if meter not in instruments:
            continue
        builder.measured_figure(
            metric,
            _PlainFigure(figure.value, figure.unit, figure.uncertainty),
            instrument=meter,
            method=method,
            observed_at=at,
            conditions={
                "acir_ohm": Conditions(temperature_c=25.0),
                "dcir_10s_ohm": Conditions(temperature_c=25.0, pulse_length_s=10.0),
            }.get(metric, reference),
        )
    if run.temperature_c is not None and np.isfinite(run.temperature_c).any():
        builder.measured(
            "6.7.7.2",
            float(np.nanmax(run.temperature_c)),
            instrument="cycler",
            method="maximum cell temperature during the test",
            observed_at=at,
            uncertainty=None,
        )
    capacity = metrics.figures.get("capacity_ah")
    soc = None if capacity is None else state_of_charge_at_end(run, capacity.value)
    if soc is not None:
        builder.measured(
            "6.7.2.8",
            soc,
            instrument="cycler",
            method="charge counted from the end of the CCCV recharge (100 %) to the end of the "
            "test, over the measured capacity",
            observed_at=at,
            # two charge integrals of the same current sensor, each 0.1 % of reading
            uncertainty=soc * CURRENT_ACCURACY_REL * math.sqrt(2.0),
        )
    for soc in POWER_SOC_PCT:
        watts = metrics.value(pulse_power_key("discharge", soc))
        if watts is not None:
            builder.measured(
                "6.7.3.3",
                watts,
                instrument="cycler",
                method="10 s discharge pulse power to the minimum voltage (grading core)",
                observed_at=at,
                uncertainty=None,
                conditions=Conditions(temperature_c=25.0, soc_pct=soc, pulse_length_s=10.0),
                qualifier=f"soc={soc}",
            )


def _derive_soce(
    builder: RecordBuilder,
    metrics: CellMetrics,
    cell: sqlite3.Row,
    imported: Sequence[PassportValue],
    at: datetime,
) -> None:
    """State of certified energy (6.7.2.7) from the measured energy over the certified energy
    (6.7.2.5: a datasheet file's, else the cell record's rated energy)."""
    energy = metrics.figures.get("energy_wh")
    given = next((v for v in imported if v.key == "6.7.2.5"), None)
    certified_kwh = (
        float(given.value)  # type: ignore[arg-type]
        if given is not None
        else None
        if cell["rated_energy_wh"] is None
        else float(cell["rated_energy_wh"]) / 1000.0
    )
    if energy is None or not math.isfinite(energy.value) or not certified_kwh:
        return
    builder.derive(
        "6.7.2.7",
        energy.value / 1000.0 / certified_kwh * 100.0,
        method="bench-derived SOCE: measured energy / certified energy",
        observed_at=at,
        uncertainty=None
        if energy.uncertainty is None
        else energy.uncertainty / 1000.0 / certified_kwh * 100.0,
    )


def state_of_charge_at_end(run: RunData, capacity_ah: float) -> float | None:
    """SoC (%) the cell is left at: full (100 %) at the last row of the CCCV recharge after the
    capacity discharge (the CV cut-off defines full), plus the charge (Ah) moved from there to
    the last row of the run over the measured capacity. The charge is the sum of per-step
    trapezoids, like the sequencer's step capacity: an interval between the last row of one step
    and the first row of the next is left out, because the current steps there rather than
    ramping and a trapezoid across it would count half the cut-off current over a gap of any
    length. None without that recharge or outside 0-100 %."""
    steps = reference_steps(run)
    if steps is None or not (math.isfinite(capacity_ah) and capacity_ah > 0):
        return None
    rows = np.flatnonzero(run.step_index == steps[1])
    if rows.size == 0:
        return None
    after = slice(rows[-1], None)
    current = np.asarray(run.current_a[after], dtype=float)
    moved_as = charge_increments_as(np.asarray(run.t_s[after], dtype=float), current)
    moved_as[1:][np.diff(run.step_index[after]) != 0] = 0.0
    soc = 100.0 + float(np.sum(moved_as)) / 3600.0 / capacity_ah * 100.0
    return soc if 0.0 <= soc <= 100.0 else None


def stored_record(
    conn: sqlite3.Connection,
    cell_id: str,
    *,
    station_id: str,
    imported: Sequence[PassportValue] = (),
    identity: Mapping[str, str] | None = None,
    original_passport_id: str | None = None,
) -> StoredRecord:
    """The record of the cell's latest stored grade, from the database alone plus ``imported``
    values (BMS read-out, earlier passport, datasheet) and a datasheet's nameplate ``identity``
    (fields of :data:`IDENTITY_FIELDS`).

    Status: as the certificate maps the decision (:func:`station.reports.certificate.
    status_for_decision`): a REJECT or a recycle bin is waste; a reuse bin is repurposed, which
    needs the original passport's ID (Art. 77); RETEST and QUARANTINE leave it original.
    """
    cell = _cell_row(conn, cell_id)
    grade = _latest_grade(conn, cell_id)
    run_ids = json.loads(grade["run_ids"])
    try:
        run = run_data(conn, run_ids[0])
        metrics = metrics_for_run(run)
    except EvaluationError as error:
        raise StoredRecordError(f"cell {cell_id!r}: {error}") from None
    outcome = str(grade["grade"])
    status = status_for_decision(outcome, str(grade["use"]))
    if status.needs_original_link and not original_passport_id:
        raise StoredRecordError(
            f"cell {cell_id!r} is graded {outcome}: a {status.value} battery's passport links to "
            "its original passport (Art. 77); give that ID (export --original-passport-id, "
            "report --originals)"
        )
    raw = raw_series(run)
    started = _when(run.started_t_s)
    finished = _when(run.ended_t_s if run.ended_t_s is not None else float(run.t_s[-1]))
    instruments = _instruments(conn, run)
    simulated = any(i.simulated for i in instruments.values())
    builder = RecordBuilder(
        record_id=f"{run.run_id}-g{grade['id']}",
        test_id=run.run_id,
        cell=_identity(cell, identity or {}),
        grade=GradeOutcome(
            outcome,
            str(grade["bin"]) or outcome,
            _reasons(grade),
            str(grade["profile_name"]),
            str(grade["profile_version"]),
            str(grade["profile_sha256"]),
        ),
        operator=str(grade["operator"]),
        station_id=f"{station_id} [SIMULATED]" if simulated else station_id,
        started_at=started,
        finished_at=finished,
        raw_data_sha256=raw_data_sha256(raw.columns()),
        status=status,
        original_passport_id=original_passport_id,
        software_version=f"station {station.__version__}",
    )
    for instrument in instruments.values():
        builder.instrument(instrument)
    _add_datasheet(builder, cell, started, {value.key for value in imported})
    _add_measured(builder, run, metrics, instruments, finished)
    # A figure the station measured on this cell (e.g. the self-discharge rate of its hold)
    # supersedes the same clause from a BMS read-out or an earlier passport.
    builder.imported(value for value in imported if not builder.has(value.key))
    _derive_soce(builder, metrics, cell, imported, finished)
    builder.derive_fades()
    steps = reference_steps(run)
    discharge = steps[0] if steps is not None else _last_discharge(run)
    pulse = next(
        (i for i, kind in sorted(run.steps.items()) if kind == "pulse" and i > discharge), None
    )
    return StoredRecord(builder.build(), raw, discharge, pulse, simulated, stored_spectrum(run))


def stored_spectrum(run: RunData) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's EIS sweep as stored (points ``[f Hz, Z' ohm, Z'' ohm, V, status]``), the
    points the meter reported valid only; None without one."""
    points = run.measurements.get("eis", {}).get("points")
    if not isinstance(points, list):
        return None
    kept = [
        (float(p[0]), complex(float(p[1]), float(p[2])))
        for p in points
        if isinstance(p, list)
        and len(p) >= 5
        and p[4] == "valid"
        and all(isinstance(x, int | float) and math.isfinite(x) for x in p[:3])
    ]
    if not kept:
        return None
    return np.array([f for f, _ in kept]), np.array([z for _, z in kept])


def _last_discharge(run: RunData) -> int:
    discharges = [i for i, kind in sorted(run.steps.items()) if kind.startswith("discharge")]
    if not discharges:
        raise StoredRecordError(f"run {run.run_id} of {run.cell_id} has no discharge step")
    return discharges[-1]

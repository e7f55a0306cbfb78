"""``station demo``: a simulated grading batch end to end.

Starts ``python -m hardware_sim`` as a child process (:class:`station.simbench.SimulatedBench`;
the station reaches it only through its TCP endpoints), runs the second-life recipe on the first
``cells`` cells of the simulated retired-EV lot, then the self-discharge hold grading.md 8.1 asks
for: an OCV reading on every completed cell, seven days of simulated time skipped on the
simulator's and the station's clocks together (the cells leak through those days in the cell
physics), and a second OCV reading. Every cell is then graded under the second-life profile from
the database through :mod:`station.evaluation` (the one evaluation path), the grades are stored,
and under ``out`` are written:

- ``demo.db``: the station's SQLite database (samples, steps, measurements, grades, audit);
- ``passports/<serial>.*.signed.json`` and raw data exports (:func:`write_bundle`), signed with a
  demo key kept in ``out/keys`` (never the production key: every instrument of the record is
  marked simulated, so each record and export says SIMULATED);
- ``certificates/<serial>.pdf``; ``batch-report.pdf`` and ``summary.csv``.

Figures: capacity and energy of the C/3 reference discharge, round-trip efficiency of that
discharge and the recharge that follows it, DCIR (median 10 s HPPC discharge pulse), ACIR from the
intake 1 kHz measurement, OCV of the intake hold (grading.md section 8.1 gate), K-value (mV/day)
from the two hold OCV readings.
"""

from __future__ import annotations

import json
import math
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from station.config import sim_lot
from station.engine import Engine
from station.evaluation import (
    LotGrades,
    RunData,
    grade_lot,
    main_reason,
    reference_steps,
    run_data,
    store_grades,
)
from station.events import Event, MeasurementTaken, RunEnded, RunOutcome
from station.grading.metrics import pulse_power_key
from station.grading.profiles import Profile, load_profile
from station.grading.results import CellMetrics, Grade
from station.passport.bundle import write_bundle
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
    Source,
    raw_data_sha256,
)
from station.passport.signing import StationKey
from station.passport.stored import raw_series, stored_spectrum
from station.recipes import loads_recipe
from station.reports.batch import render_batch_report, summarise
from station.reports.certificate import SignatureInfo, render_certificate, status_for_decision
from station.reports.plots import Impedance
from station.reports.summary import write_csv
from station.simbench import SimulatedBench
from station.storage import Storage

RECIPE = "second-life-full"
PROFILE = "second-life"
MAX_CELLS = 16  # cells the simulated demo cabinet holds
DB_NAME = "demo.db"
STATION_ID = "sim-demo"
OPERATOR = "demo"
ORIGIN = "simulated lot (hardware_sim), not a real datasheet or BMS read-out [SIMULATED]"
INTAKE_TIMEOUT_S = 30.0  # wall seconds for one cell's intake ACIR
# The simulated lot comes with its identity and history and no damage is simulated.
INTAKE_FACTS = {"damaged": False, "calendar_expired": False, "traceable": True}
HOLD_DAYS = 7.0  # grading.md 8.1: K is trusted after a hold of 7 days or more
# One end of the self-discharge hold: a 2 h rest (the cell relaxes from the run's last charge:
# the slowest diffusion time constant is minutes) and its OCV at the end. The first reading
# schedules the follow-up; the second, after the 7 skipped days, closes it (storage) and so
# schedules none.
HOLD_RECIPE = """
[recipe]
name = "self-discharge-hold-ocv"
version = 1
description = "Self-discharge hold: OCV after a 2 h rest (one end of the hold)"
assumed_start_soc = 0.5

[[steps]]
type = "ocv_hold"
duration_s = 7200
label = "self-discharge hold OCV"

[[steps]]
type = "follow_up"
kind = "self-discharge"
after_days = 7
"""


class DemoError(RuntimeError):
    """The demo cannot run or could not finish; the message says why."""


@dataclass(frozen=True)
class DemoOptions:
    cells: int = MAX_CELLS
    speed: float = 3600.0
    seed: int = 7
    out: Path = Path("demo-out")
    timeout_s: float | None = 600.0

    def check(self) -> None:
        if not 1 <= self.cells <= MAX_CELLS:
            raise DemoError(f"--cells {self.cells}: the simulated cabinet holds 1 to {MAX_CELLS}")
        if not (math.isfinite(self.speed) and 1.0 <= self.speed <= 20000.0):
            raise DemoError(f"--speed {self.speed}: choose 1 to 20000 simulated s per wall s")
        if (self.out / DB_NAME).exists():
            raise DemoError(
                f"{self.out} already holds a demo ({DB_NAME}); remove it or choose another --out"
            )


@dataclass(frozen=True)
class DemoRow:
    """One line of the printed summary (figures in SI units, NaN when not measured)."""

    cell_id: str
    chemistry: str
    capacity_ah: float
    soh_pct: float
    dcir_ohm: float
    acir_ohm: float
    k_mv_per_day: float
    grade: str
    reason: str


@dataclass
class DemoResult:
    rows: list[DemoRow] = field(default_factory=list)
    db_path: Path = Path()
    certificates: dict[str, Path] = field(default_factory=dict)
    bundles: dict[str, dict[str, Path]] = field(default_factory=dict)
    report_pdf: Path | None = None
    summary_csv: Path | None = None
    key_path: Path | None = None
    graded: LotGrades | None = None
    wall_s: float = 0.0


def _when(t_s: float) -> datetime:
    """Simulated time on the calendar: the simulator's clock is Unix time that starts at the
    wall clock's time of the launch and runs ``speed`` times faster (hardware_sim.bench)."""
    return datetime.fromtimestamp(t_s, UTC)


@dataclass
class _PlainFigure:
    """``FigureLike`` declares settable attributes, which a frozen ``Figure`` cannot satisfy
    for mypy; this plain copy does."""

    value: float
    unit: str
    uncertainty: float | None


def read_instruments(
    conn: sqlite3.Connection, calibration_due: dict[str, date | None]
) -> tuple[Instrument, ...]:
    """The cycler and ACIR meter as the engine recorded their identities (simulated flag
    included), with the bench file's calibration due dates."""
    found: dict[str, Instrument] = {}
    for name, key in (("cabinet", "cycler"), ("acir", "acir")):
        row = conn.execute(
            "SELECT make, model, serial, firmware, simulated FROM instruments WHERE name = ?"
            " ORDER BY seen_t_s DESC",
            (name,),
        ).fetchone()
        if row is None:
            raise DemoError(f"the database has no identity of instrument {name!r}")
        make, model, serial, firmware, simulated = row
        found[key] = Instrument(
            key,
            str(make),
            str(model),
            str(serial),
            str(firmware),
            calibration_certificate="bench file (simulated)",
            calibration_due=calibration_due.get(name),
            simulated=bool(simulated),
        )
    return found["cycler"], found["acir"]


def build_record(
    run: RunData,
    metrics: CellMetrics,
    grade: Grade,
    profile: Profile,
    raw: RawSeries,
    started: datetime,
    finished: datetime,
    seed: int,
    instruments: Sequence[Instrument],
) -> GradingRecord:
    """The passport record of one simulated cell. Identity, datasheet and history values the
    simulator does not model are stated as simulated placeholders (origin says so)."""
    reasons: tuple[str, ...] = (main_reason(grade, profile), grade.summary)
    cell = CellIdentity(
        passport_id=f"urn:sim:{seed}:{run.cell_id}",
        serial_number=run.cell_id,
        manufacturer_name="Simulated Cells (hardware_sim)",
        manufacturer_identifier="SIMULATED",
        model=f"SIM-{run.chemistry}-{run.rated_capacity_ah:g}Ah",
        chemistry=run.chemistry,
        date_of_manufacture=date(2018, 1, 1),
        date_of_putting_into_service=date(2018, 6, 1),
        facility_identifier="urn:sim:facility",
        address_street="Simulated",
        address_zip="00000",
        address_city="Simulated",
        address_country="DE",
        warranty_period="P8Y",
    )
    builder = RecordBuilder(
        record_id=f"sim-{run.run_id}",
        test_id=run.run_id,
        cell=cell,
        grade=GradeOutcome(
            grade.outcome,
            grade.outcome,
            reasons,
            grade.profile_name,
            grade.profile_version,
            grade.profile_sha256,
        ),
        operator=OPERATOR,
        station_id=f"{STATION_ID} [SIMULATED]",
        started_at=started,
        finished_at=finished,
        raw_data_sha256=raw_data_sha256(raw.columns()),
        status=status_for_decision(grade.outcome, grade.use),
        original_passport_id=f"urn:sim:original:{run.cell_id}",
        software_version="station demo",
    )
    for instrument in instruments:
        builder.instrument(instrument)
    rated = run.rated_capacity_ah
    nominal_v = 3.65
    for clause, number in (
        ("6.7.2.2", rated),
        ("6.7.2.5", rated * nominal_v / 1000.0),
        ("6.7.4.2", 95.0),
        ("6.7.4.6", 2.0),
        ("6.1.3.6", 0.07),
        ("6.7.2.9", 2.5),
        ("6.7.2.10", 4.2),
        ("6.7.2.11", nominal_v),
        ("6.7.3.5", 72.0),
        ("6.7.3.6", 4.0),
        ("6.7.4.3", 95.0),
        ("6.7.6.2", 10.0),
        ("6.7.6.6", 0.5),
        ("6.7.6.9", 70.0),
        ("6.7.7.3", -20.0),
        ("6.7.7.4", 45.0),
    ):
        builder.datasheet(clause, number, origin=ORIGIN, observed_at=started)
    builder.add(PassportValue("6.7.6.3", 1000, "1", Source.DATASHEET, started, origin=ORIGIN))
    builder.add(
        PassportValue(
            "6.7.6.5", ("simulated",), "document ids", Source.DATASHEET, started, origin=ORIGIN
        )
    )
    if run.bol_resistance_ohm is not None:
        builder.datasheet(
            "6.7.5.2",
            run.bol_resistance_ohm,
            origin=ORIGIN,
            observed_at=started,
            qualifier="method=acir_1khz",
        )
    reference = Conditions(temperature_c=25.0, c_rate=1 / 3)
    method = {
        "capacity_ah": "CC discharge C/3 to the cell's minimum voltage, trapezoidal Ah",
        "energy_wh": "bench estimate: integral of V*I over the C/3 discharge",
        "rte": "Wh out of the C/3 discharge over Wh into the CCCV recharge after it",
        "dcir_10s_ohm": "median 10 s HPPC discharge pulse resistance",
        "acir_ohm": "1 kHz AC resistance at intake",
        "self_discharge_pct_per_month": "K-value of the 7-day OCV hold x dQ/dV of the C/3 "
        "discharge at the hold OCV, over the rated capacity (grading.md 2.4)",
    }
    for metric, text in method.items():
        figure = metrics.figures.get(metric)
        if figure is None or not math.isfinite(figure.value):
            continue
        if metric == "energy_wh":
            builder.measured(
                "6.7.2.6",
                figure.value / 1000.0,
                instrument="cycler",
                method=text,
                observed_at=finished,
                uncertainty=None if figure.uncertainty is None else figure.uncertainty / 1000.0,
                conditions=reference,
            )
            continue
        builder.measured_figure(
            metric,
            _PlainFigure(figure.value, figure.unit, figure.uncertainty),
            instrument="acir" if metric == "acir_ohm" else "cycler",
            method=text,
            observed_at=finished,
            conditions={
                "acir_ohm": Conditions(temperature_c=25.0),
                "dcir_10s_ohm": Conditions(temperature_c=25.0, pulse_length_s=10.0),
            }.get(metric, reference),
        )
    energy = metrics.figures.get("energy_wh")
    if energy is not None and math.isfinite(energy.value):
        certified_wh = rated * nominal_v
        builder.derive(
            "6.7.2.7",
            energy.value / certified_wh * 100.0,
            method="bench-derived SOCE: measured energy / simulated certified energy",
            observed_at=finished,
        )
    temperature = raw.temperature_c
    builder.measured(
        "6.7.7.2",
        float(np.max(temperature)) if temperature is not None else 25.0,
        instrument="cycler",
        method="maximum cell temperature during the test",
        observed_at=finished,
        uncertainty=0.5,
    )
    builder.measured(
        "6.7.2.8",
        40.0,
        instrument="cycler",
        method="recipe's storage SoC target",
        observed_at=finished,
        uncertainty=5.0,
    )
    dcir_figure = metrics.figures.get("dcir_10s_ohm")
    # P = V_min (OCV - V_min) / R: its relative uncertainty is the resistance's (the OCV and the
    # voltage floor are known far better).
    rel_r = (
        dcir_figure.uncertainty / dcir_figure.value
        if dcir_figure is not None and dcir_figure.uncertainty and dcir_figure.value
        else None
    )
    acir = metrics.value("acir_ohm")
    for soc in (20, 80):
        power_w = metrics.value(pulse_power_key("discharge", soc))
        if power_w is None:
            continue
        conditions = Conditions(temperature_c=25.0, soc_pct=soc, pulse_length_s=10.0)
        builder.measured(
            "6.7.3.3",
            power_w,
            instrument="cycler",
            method="10 s HPPC discharge pulse, P = V_min (OCV - V_min) / R_10s (grading.md 15)",
            observed_at=finished,
            uncertainty=None if rel_r is None else power_w * rel_r,
            conditions=conditions,
            qualifier=f"soc={soc}",
        )
        if acir and run.bol_resistance_ohm:
            # The simulated nameplate power: the same formula at the same OCV with the 10 s
            # resistance scaled by rated / measured 1 kHz ACIR (the simulator's cell model
            # scales all its resistances together).
            builder.datasheet(
                "6.7.3.2",
                power_w * acir / run.bol_resistance_ohm,
                origin=ORIGIN,
                observed_at=started,
                qualifier=f"soc={soc}",
                conditions=conditions,
            )
    history: list[tuple[str, float | int | tuple[str, ...]]] = [
        ("6.7.6.4", 800),
        ("6.7.6.7", 12.0),
        ("6.7.6.8", 4000.0),
        ("6.7.7.5", 120.0),
        ("6.7.7.6", 30.0),
        ("6.7.7.7", 4.0),
        ("6.7.7.8", 0.0),
        ("6.7.8.2", 0),
        ("6.7.8.3", 0),
        ("6.7.8.4", ()),
        ("6.7.8.5", ()),
    ]
    if metrics.value("self_discharge_pct_per_month") is None:
        # No hold measured on this cell: the rate stays the simulated history's.
        history.append(("6.7.4.7", 2.0))
    for clause, value in history:
        builder.add(
            PassportValue(
                clause=clause,
                value=value,
                unit=CLAUSES[clause].unit,
                source=Source.BMS,
                observed_at=started,
                method="simulated BMS read-out [SIMULATED]",
                origin=ORIGIN,
            )
        )
    builder.derive_fades()
    return builder.build()


def _control(port: int, request: dict[str, object], timeout_s: float = 10.0) -> None:
    """One request to the simulator launcher's JSON-lines control endpoint (TCP loopback)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as link:
        link.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(link.makefile("rb").readline() or b"{}")
    if not reply.get("ok"):
        raise DemoError(f"simulator control {request.get('cmd')}: {reply.get('error', reply)}")


def _run_lot(
    sim: SimulatedBench,
    db_path: Path,
    cells: int,
    timeout_s: float | None,
    on_event: Callable[[Event], None] | None,
) -> dict[str, str]:
    """Run the recipe on the first ``cells`` placed cells, then the self-discharge hold on the
    cells that completed it; returns cell_id -> run_id of the grading run.

    The bench has one ACIR fixture: as an operator would, each cell is put in it (simulator
    control ``place``) and its run started, and the next cell waits until that run has taken its
    intake ACIR (or ended). Without this every run would measure whatever cell sat in the fixture.
    """
    runs: dict[str, str] = {}
    outcomes: dict[str, RunOutcome] = {}  # run_id -> how it ended
    intake_done: dict[str, threading.Event] = {}  # channel_id -> its intake ACIR is taken

    def hear(event: Event) -> None:
        if isinstance(event, RunEnded):
            outcomes[event.run_id] = event.outcome
        done = intake_done.get(getattr(event, "channel_id", ""))
        if done is not None and (
            isinstance(event, RunEnded)
            or (isinstance(event, MeasurementTaken) and event.kind == "acir")
        ):
            done.set()
        if on_event is not None:
            on_event(event)

    port = sim.launch.control_port
    if port is None:
        raise DemoError("the simulator has no control endpoint (needed to place cells and hold)")
    storage = Storage(db_path, sim.clock)
    engine = Engine(sim.bench, storage, sim.clock, operator=OPERATOR)
    engine.subscribe(hear)
    try:
        engine.connect()
        placed = [(c, ch) for c, ch in sim_lot(sim.launch, sim.bench) if ch][:cells]
        if len(placed) < cells:
            raise DemoError(f"the simulated bench holds {len(placed)} cells, {cells} asked")
        storage.add_cells([c for c, _ in placed], who=OPERATOR, why="simulated demo lot")
        for cell, channel in placed:
            storage.record_intake(cell.cell_id, INTAKE_FACTS, who=OPERATOR, why="simulated lot")
            _control(port, {"cmd": "place", "device": "acir", "cell": cell.cell_id})
            done = intake_done[channel] = threading.Event()
            runs[cell.cell_id] = engine.start_run(channel, cell.cell_id, RECIPE)
            if not done.wait(INTAKE_TIMEOUT_S):
                raise DemoError(f"cell {cell.cell_id}: no intake ACIR within {INTAKE_TIMEOUT_S} s")
        _wait(engine, timeout_s, "the simulated batch")
        held = [
            (cell.cell_id, channel)
            for cell, channel in placed
            if outcomes.get(runs[cell.cell_id]) is RunOutcome.COMPLETED
        ]
        if held:
            _hold(engine, sim, port, held, timeout_s)
    finally:
        engine.shutdown()
        storage.close()
    return runs


def _wait(engine: Engine, timeout_s: float | None, what: str) -> None:
    if not engine.wait_idle(timeout_s):
        engine.stop_all("demo timed out")
        raise DemoError(f"{what} did not finish within {timeout_s} s")


def _hold(
    engine: Engine,
    sim: SimulatedBench,
    port: int,
    cells: Sequence[tuple[str, str]],
    timeout_s: float | None,
) -> None:
    """The self-discharge hold (grading.md 8.1): an OCV reading on each cell, HOLD_DAYS of
    simulated time skipped on the simulator's and the station's clocks (the engine is idle and
    the channels are off, so nothing else sees the jump), and a second OCV reading."""
    recipe = loads_recipe(HOLD_RECIPE, source="station.demo.HOLD_RECIPE")
    for end in ("start", "end"):
        for cell_id, channel in cells:
            engine.start_run(channel, cell_id, recipe)
        _wait(engine, timeout_s, f"the self-discharge hold {end} reading")
        if end == "start":
            _control(port, {"cmd": "skip", "s": HOLD_DAYS * 86400.0})
            sim.clock.skip(HOLD_DAYS * 86400.0)


def run_demo(
    options: DemoOptions, *, on_event: Callable[[Event], None] | None = None
) -> DemoResult:
    """Run the whole demo; raises :class:`DemoError` (or the failing layer's error)."""
    options.check()
    wall0 = time.monotonic()
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(db_path=out / DB_NAME)
    profile = load_profile(PROFILE)

    with SimulatedBench(speed=options.speed, seed=options.seed) as sim:
        runs = _run_lot(sim, result.db_path, options.cells, options.timeout_s, on_event)
        due = {name: inst.calibration_due for name, inst in sim.bench.instruments.items()}
        graded = grade_lot(result.db_path, profile, cell_ids=list(runs), runs=runs)
        with Storage(result.db_path, sim.clock) as storage:
            store_grades(storage, graded, operator=OPERATOR, why="simulated demo batch")
    result.graded = graded

    conn = sqlite3.connect(f"file:{result.db_path}?mode=ro", uri=True)
    try:
        instruments = read_instruments(conn, due)
    finally:
        conn.close()

    key = StationKey.load_or_create(out / "keys" / "demo-station-key.pem")
    result.key_path = key.path
    records: list[GradingRecord] = []
    left_out: dict[str, str] = {}
    for cell_id, run_id in runs.items():
        m, grade = graded.metrics_of(cell_id), graded.grade_of(cell_id)
        run = run_data(result.db_path, run_id)
        nan = math.nan
        if m is None or grade is None:
            why = graded.not_graded.get(cell_id, "not graded")
            result.rows.append(
                DemoRow(cell_id, run.chemistry, nan, nan, nan, nan, nan, "NOT GRADED", why)
            )
            continue
        if cell_id in graded.stopped:
            # The run stopped before the reference test: a decision, but no figures to certify.
            reason = main_reason(grade, profile)
            left_out[cell_id] = f"{grade.outcome}: {reason} (no passport: run {run.outcome})"
            acir = _value(m, "acir_ohm")
            result.rows.append(
                DemoRow(cell_id, run.chemistry, nan, nan, nan, acir, nan, grade.outcome, reason)
            )
            continue
        started = _when(float(run.t_s[0]))
        finished = _when(float(run.t_s[-1]))
        raw = raw_series(run)
        record = build_record(
            run, m, grade, profile, raw, started, finished, options.seed, instruments
        )
        records.append(record)
        paths = write_bundle(record, raw, out / "passports", key)
        result.bundles[cell_id] = paths
        signed = paths["record"].read_bytes()
        steps = reference_steps(run)
        pulse = next((i for i, kind in sorted(run.steps.items()) if kind == "pulse"), None)
        spectrum = stored_spectrum(run)
        (out / "certificates").mkdir(exist_ok=True)
        result.certificates[cell_id] = render_certificate(
            record,
            raw,
            out / "certificates" / f"{cell_id}.pdf",
            signature=SignatureInfo.from_signed(signed),
            discharge_step=steps[0] if steps else 0,
            pulse_step=pulse,
            impedance=None if spectrum is None else Impedance(*spectrum),
        )
        result.rows.append(
            DemoRow(
                cell_id,
                run.chemistry,
                _value(m, "capacity_ah"),
                _value(m, "soh_capacity_pct"),
                _value(m, "dcir_10s_ohm"),
                _value(m, "acir_ohm"),
                _value(m, "k_mv_per_day"),
                grade.outcome,
                main_reason(grade, profile),
            )
        )
    if records:
        summary = summarise(records, lot=f"SIM-LOT seed {options.seed} [SIMULATED]")
        result.report_pdf = render_batch_report(summary, out / "batch-report.pdf", left_out)
        result.summary_csv = write_csv(records, out / "summary.csv")
    result.wall_s = time.monotonic() - wall0
    return result


def _value(metrics: CellMetrics, name: str) -> float:
    value = metrics.value(name)
    return math.nan if value is None else value


def _fmt(value: float, scale: float, decimals: int) -> str:
    return "-" if not math.isfinite(value) else f"{value * scale:.{decimals}f}"


TABLE_HEADER = (
    "cell",
    "chem",
    "cap Ah",
    "SoH %",
    "DCIR mOhm",
    "ACIR mOhm",
    "K mV/d",
    "grade",
    "reason",
)


def format_table(rows: Sequence[DemoRow]) -> str:
    """The summary table: capacity 3 decimals, SoH 1, resistances in mOhm with 2, K-value in
    mV/day with 3."""
    lines = [
        (
            r.cell_id,
            r.chemistry,
            _fmt(r.capacity_ah, 1.0, 3),
            _fmt(r.soh_pct, 1.0, 1),
            _fmt(r.dcir_ohm, 1000.0, 2),
            _fmt(r.acir_ohm, 1000.0, 2),
            _fmt(r.k_mv_per_day, 1.0, 3),
            r.grade,
            r.reason,
        )
        for r in rows
    ]
    table = [TABLE_HEADER, *lines]
    widths = [max(len(row[i]) for row in table) for i in range(len(TABLE_HEADER) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in table
    )

"""``station demo``: a simulated grading batch end to end.

Starts ``python -m hardware_sim`` as a child process (:class:`station.simbench.SimulatedBench`;
the station reaches it only through its TCP endpoints), runs the second-life recipe on the first
``cells`` cells of the simulated retired-EV lot, grades every cell under the second-life profile
from the raw data read back from the database, and writes under ``out``:

- ``demo.db``: the station's SQLite database (samples, steps, measurements, audit);
- ``passports/<serial>.*.signed.json`` and raw data exports (:func:`write_bundle`), signed with a
  demo key kept in ``out/keys`` (never the production key: every instrument of the record is
  marked simulated, so each record and export says SIMULATED);
- ``certificates/<serial>.pdf``; ``batch-report.pdf`` and ``summary.csv``.

Figures: capacity and energy of the C/3 reference discharge, round-trip efficiency of that
discharge and the recharge that follows it, DCIR (median 10 s HPPC discharge pulse), ACIR from the
intake 1 kHz measurement, OCV of the intake hold (grading.md section 8.1 gate).
"""

from __future__ import annotations

import json
import math
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from station.config import sim_lot
from station.engine import Engine
from station.events import Event, MeasurementTaken, RunEnded
from station.grading.metrics import CellInputs, MeasurementConditions, cell_metrics
from station.grading.profiles import Profile, grade_batch, load_profile
from station.grading.results import CellMetrics, Figure, Grade, Verdict
from station.grading.soh import Reference
from station.grading.timeseries import TimeSeries
from station.passport.bundle import write_bundle
from station.passport.rawdata import RawSeries
from station.passport.record import (
    CLAUSES,
    BatteryStatus,
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
from station.reports.batch import render_batch_report, summarise
from station.reports.certificate import SignatureInfo, render_certificate
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
# Standard uncertainties assumed for the simulated instruments (the Neware spec sheet's 0.1 %
# of current; the BT3562's 0.5 % of reading at 1 kHz).
CURRENT_ACCURACY_REL = 0.001
ACIR_ACCURACY_REL = 0.005
OCV_ACCURACY_V = 0.001
HOLD_METRICS = frozenset({"hold_days", "k_mv_per_day"})
INTAKE_TIMEOUT_S = 30.0  # wall seconds for one cell's intake ACIR


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
    wall_s: float = 0.0


@dataclass(frozen=True)
class RunData:
    """What the database holds for one run, as arrays (``t_s`` simulated seconds)."""

    run_id: str
    cell_id: str
    chemistry: str
    rated_capacity_ah: float
    bol_resistance_ohm: float | None
    outcome: str
    reason: str
    seq: np.ndarray
    t_s: np.ndarray
    step_index: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    temperature_c: np.ndarray | None
    steps: dict[int, str]  # step index -> step kind
    labels: dict[int, str]  # step index -> recipe label
    measurements: dict[str, dict[str, object]]  # kind -> values of its last row


def read_run(conn: sqlite3.Connection, run_id: str) -> RunData:
    """Read one run back from the database (the grading input: nothing is taken from memory)."""
    head = conn.execute(
        "SELECT r.run_pk, r.cell_id, r.outcome, r.reason, c.chemistry, c.rated_capacity_ah,"
        " c.bol_resistance_ohm FROM runs r JOIN cells c USING (cell_id) WHERE r.run_id = ?",
        (run_id,),
    ).fetchone()
    if head is None:
        raise DemoError(f"run {run_id} is not in the database")
    run_pk, cell_id, outcome, reason, chemistry, rated, bol = head
    rows = conn.execute(
        "SELECT seq, t_s, step_index, voltage_v, current_a, temperature_c FROM samples"
        " WHERE run_pk = ? ORDER BY seq",
        (run_pk,),
    ).fetchall()
    data = np.array(
        [[np.nan if v is None else v for v in row] for row in rows], dtype=float
    ).reshape(-1, 6)
    temperature = data[:, 5]
    started = conn.execute(
        "SELECT step_index, step_kind, label FROM step_events"
        " WHERE run_pk = ? AND event = 'started'",
        (run_pk,),
    ).fetchall()
    steps = {int(index): str(kind) for index, kind, _ in started}
    labels = {int(index): str(label) for index, _, label in started}
    measurements: dict[str, dict[str, object]] = {}
    for kind, values in conn.execute(
        "SELECT kind, values_json FROM measurements WHERE run_pk = ? ORDER BY id", (run_pk,)
    ):
        measurements[str(kind)] = json.loads(values)
    return RunData(
        run_id=run_id,
        cell_id=str(cell_id),
        chemistry=str(chemistry),
        rated_capacity_ah=float(rated),
        bol_resistance_ohm=None if bol is None else float(bol),
        outcome=str(outcome or "unfinished"),
        reason=str(reason or ""),
        seq=data[:, 0].astype(int),
        t_s=data[:, 1],
        step_index=data[:, 2].astype(int),
        voltage_v=data[:, 3],
        current_a=data[:, 4],
        temperature_c=None if np.all(np.isnan(temperature)) else temperature,
        steps=steps,
        labels=labels,
        measurements=measurements,
    )


def reference_steps(run: RunData) -> tuple[int, int]:
    """(C/3 capacity discharge step, the recharge right after it) of the second-life recipe."""
    ordered = sorted(run.steps.items())
    discharge = next((i for i, kind in ordered if kind == "discharge_cc"), None)
    if discharge is None:
        raise DemoError(f"run {run.run_id}: no capacity discharge step recorded")
    recharge = next((i for i, kind in ordered if i > discharge and kind == "charge_cccv"), None)
    if recharge is None:
        raise DemoError(f"run {run.run_id}: no recharge after the capacity discharge")
    return discharge, recharge


def _step_wh(run: RunData, step: int) -> float:
    """Trapezoid integral of V*I over a step (Wh, signed), including the interval that ends at
    its first row (decision 0006: the interval k-1..k belongs to the step of row k)."""
    rows = np.flatnonzero(run.step_index == step)
    if rows.size == 0:
        return math.nan
    idx = np.concatenate([[max(rows[0] - 1, 0)], rows])
    power = run.voltage_v[idx] * run.current_a[idx]
    return float(np.sum((power[1:] + power[:-1]) * np.diff(run.t_s[idx])) / 2.0 / 3600.0)


def pulse_power_w(run: RunData, soc_pct: int) -> tuple[float, float] | None:
    """(power W, current A) at the end of the HPPC discharge pulse at ``soc_pct``: the last
    sample of the pulse step, P = V_end * |I| (the usual 10 s pulse power, grading.md 1.7)."""
    step = next(
        (
            i
            for i, label in sorted(run.labels.items())
            if run.steps.get(i) == "pulse" and label == f"HPPC discharge pulse {soc_pct}%"
        ),
        None,
    )
    rows = np.flatnonzero(run.step_index == step) if step is not None else np.array([], int)
    if rows.size == 0:
        return None
    last = int(rows[-1])
    current = float(run.current_a[last])
    if current >= 0:
        return None
    return float(run.voltage_v[last]) * -current, current


def metrics_of(run: RunData) -> CellMetrics:
    """Grade inputs of one completed run, every figure computed from the stored samples."""
    discharge, recharge = reference_steps(run)
    # The simulated lot's rated resistance is a 1 kHz ACIR: the resistance increase compares
    # the intake ACIR with it (same method), never the 10 s DCIR with an AC figure.
    reference = Reference(rated_capacity_ah=run.rated_capacity_ah)
    inputs = CellInputs(
        run.cell_id,
        run.chemistry.lower(),
        reference,
        # The simulated lot comes with its identity and history and no damage is simulated.
        facts={"damaged": False, "calendar_expired": False, "traceable": True},
    )
    conditions = MeasurementConditions(
        cv_cutoff_a=run.rated_capacity_ah / 20.0, current_accuracy_rel=CURRENT_ACCURACY_REL
    )
    # Capacity and energy: the last charge-then-discharge up to the reference discharge (later
    # SOC moves of the HPPC are discharges too, and must not be taken for it).
    upto = run.step_index <= discharge
    first = TimeSeries.from_arrays(
        run.t_s[upto],
        run.voltage_v[upto],
        run.current_a[upto],
        None if run.temperature_c is None else run.temperature_c[upto],
        step_count=run.step_index[upto],
    )
    reference_cycle = cell_metrics(inputs, first, conditions)
    extra: dict[str, Figure] = {
        "capacity_ah": reference_cycle.figures["capacity_ah"],
        "energy_wh": reference_cycle.figures["energy_wh"],
    }
    e_out = reference_cycle.figures["energy_wh"].value
    e_in = _step_wh(run, recharge)
    rte = e_out / e_in if e_in > 0 else math.nan
    extra["rte"] = Figure(
        rte,
        "1",
        rte * CURRENT_ACCURACY_REL * math.sqrt(2.0),
        reference_cycle.figures["energy_wh"].flags,
        note="C/3 discharge Wh over the CCCV recharge Wh that follows it",
    )
    acir = run.measurements.get("acir", {}).get("resistance_ohm")
    if isinstance(acir, int | float) and math.isfinite(acir):
        extra["acir_ohm"] = Figure(float(acir), "ohm", float(acir) * ACIR_ACCURACY_REL)
    ocv = run.measurements.get("ocv", {}).get("voltage_v")
    if isinstance(ocv, int | float) and math.isfinite(ocv):
        extra["ocv_v"] = Figure(float(ocv), "V", OCV_ACCURACY_V, note="intake OCV hold")
    full = TimeSeries.from_arrays(
        run.t_s,
        run.voltage_v,
        run.current_a,
        run.temperature_c,
        step_count=run.step_index,
    )
    metrics = cell_metrics(inputs, full, conditions, extra)
    # CE of the whole run's last charge/discharge pair would pair an HPPC SOC move with the
    # recharge; the reference cycle's CE starts from a partial charge: neither is reported.
    figures = {k: v for k, v in metrics.figures.items() if k != "coulombic_efficiency"}
    acir_figure = extra.get("acir_ohm")
    if acir_figure is not None and run.bol_resistance_ohm:
        bol = run.bol_resistance_ohm
        figures["resistance_increase_pct"] = Figure(
            (acir_figure.value - bol) / bol * 100.0,
            "%",
            None if acir_figure.uncertainty is None else acir_figure.uncertainty / bol * 100.0,
            acir_figure.flags,
            note="1 kHz ACIR at intake vs the rated 1 kHz ACIR",
        )
    return CellMetrics(metrics.cell_id, metrics.chemistry, figures, metrics.facts)


def main_reason(grade: Grade, profile: Profile) -> str:
    """The words of what decided the grade: the bin's use, the gate that set the outcome, or the
    rule that kept a bin from being confirmed."""
    if grade.use:
        return grade.summary
    results = {rule.rule: rule for rule in grade.rules}
    for gate in profile.gates:
        result = results.get(gate.rule.name)
        if result is None:
            continue
        decided = {
            Verdict.FAIL: gate.outcome,
            Verdict.RETEST: "RETEST",
            Verdict.MISSING: gate.when_missing,
        }.get(result.verdict)
        if decided == grade.outcome:
            return gate.rule.words or result.explanation
    # No gate decided: the summary names the bin that could not be confirmed and why.
    return grade.summary.split(": ", 1)[-1]


def without_hold(profile: Profile) -> Profile:
    """The profile without its self-discharge hold gates: what the grade will be once the 7-day
    hold passes (shown as provisional; records and certificates carry the real grade)."""
    return replace(
        profile,
        name=f"{profile.name} (provisional, hold pending)",
        gates=tuple(g for g in profile.gates if g.rule.metric not in HOLD_METRICS),
    )


def table_reason(grade: Grade, profile: Profile, provisional: Grade) -> str:
    """The printed reason; a cell held back only by the pending hold also shows its
    provisional bin."""
    reason = main_reason(grade, profile)
    hold_gates = {g.rule.name for g in profile.gates if g.rule.metric in HOLD_METRICS}
    deciding = {
        r.rule for r in grade.rules if r.verdict is not Verdict.PASS and r.rule in hold_gates
    }
    if grade.outcome != "RETEST" or not deciding:
        return reason
    held = f"7-day self-discharge hold pending; provisional {provisional.outcome}"
    if provisional.outcome == "RETEST":
        return f"{held}: {main_reason(provisional, without_hold(profile))}"
    return held


def _when(launch_w0_s: float, launch_t0_s: float, t_s: float) -> datetime:
    """Simulated time on the calendar: the simulated epoch is the wall time the bench started."""
    return datetime.fromtimestamp(launch_w0_s + (t_s - launch_t0_s), UTC)


def raw_series(run: RunData, unix_start_s: float) -> RawSeries:
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
        unix_start_s=unix_start_s,
    )


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
    provisional: Grade | None = None,
) -> GradingRecord:
    """The passport record of one simulated cell. Identity, datasheet and history values the
    simulator does not model are stated as simulated placeholders (origin says so)."""
    reject = grade.outcome in ("REJECT", "QUARANTINE", "D")
    reasons: tuple[str, ...] = (main_reason(grade, profile), grade.summary)
    if provisional is not None and provisional.outcome != grade.outcome:
        reasons += (
            f"provisional {provisional.outcome} once the 7-day self-discharge hold passes "
            "(not a grade)",
        )
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
        status=BatteryStatus.WASTE if reject else BatteryStatus.REPURPOSED,
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
    # Simulated nameplate 10 s power at 1C: nominal voltage less the rated resistance's drop.
    pulse_a = rated
    bol_pulse_w = pulse_a * (nominal_v - pulse_a * (run.bol_resistance_ohm or 0.0))
    reference = Conditions(temperature_c=25.0, c_rate=1 / 3)
    method = {
        "capacity_ah": "CC discharge C/3 to the cell's minimum voltage, trapezoidal Ah",
        "energy_wh": "bench estimate: integral of V*I over the C/3 discharge",
        "rte": "Wh out of the C/3 discharge over Wh into the CCCV recharge after it",
        "dcir_10s_ohm": "median 10 s HPPC discharge pulse resistance",
        "acir_ohm": "1 kHz AC resistance at intake",
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
    for soc in (20, 80):
        pulse = pulse_power_w(run, soc)
        if pulse is not None:
            power_w, current_a = pulse
            builder.measured(
                "6.7.3.3",
                power_w,
                instrument="cycler",
                method="10 s HPPC discharge pulse, P = V_end * |I|",
                observed_at=finished,
                # voltage 1 mV and current 0.1 % (standard) propagated to P
                uncertainty=power_w
                * math.hypot(CURRENT_ACCURACY_REL, 0.001 / (power_w / -current_a)),
                conditions=Conditions(temperature_c=25.0, soc_pct=soc, pulse_length_s=10.0),
                qualifier=f"soc={soc}",
            )
        builder.datasheet(
            "6.7.3.2",
            bol_pulse_w,
            origin=ORIGIN,
            observed_at=started,
            qualifier=f"soc={soc}",
            conditions=Conditions(temperature_c=25.0, soc_pct=soc, pulse_length_s=10.0),
        )
    history = (
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
        # The demo runs no 7-day hold: the current self-discharge rate is the simulated
        # history's, not a station measurement.
        ("6.7.4.7", 2.0),
    )
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
    """Run the recipe on the first ``cells`` placed cells; returns cell_id -> run_id.

    The bench has one ACIR fixture: as an operator would, each cell is put in it (simulator
    control ``place``) and its run started, and the next cell waits until that run has taken its
    intake ACIR (or ended). Without this every run would measure whatever cell sat in the fixture.
    """
    runs: dict[str, str] = {}
    intake_done: dict[str, threading.Event] = {}  # channel_id -> its intake ACIR is taken

    def hear(event: Event) -> None:
        done = intake_done.get(getattr(event, "channel_id", ""))
        if done is not None and (
            isinstance(event, RunEnded)
            or (isinstance(event, MeasurementTaken) and event.kind == "acir")
        ):
            done.set()
        if on_event is not None:
            on_event(event)

    port = sim.launch.control_port
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
            if port is not None:
                _control(port, {"cmd": "place", "device": "acir", "cell": cell.cell_id})
            done = intake_done[channel] = threading.Event()
            runs[cell.cell_id] = engine.start_run(channel, cell.cell_id, RECIPE)
            if port is not None and not done.wait(INTAKE_TIMEOUT_S):
                raise DemoError(f"cell {cell.cell_id}: no intake ACIR within {INTAKE_TIMEOUT_S} s")
        if not engine.wait_idle(timeout_s):
            engine.stop_all("demo timed out")
            raise DemoError(f"the simulated batch did not finish within {timeout_s} s")
    finally:
        engine.shutdown()
        storage.close()
    return runs


def run_demo(
    options: DemoOptions, *, on_event: Callable[[Event], None] | None = None
) -> DemoResult:
    """Run the whole demo; raises :class:`DemoError` (or the failing layer's error)."""
    options.check()
    wall0 = time.monotonic()
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(db_path=out / DB_NAME)
    ended: list[RunEnded] = []

    def hear(event: Event) -> None:
        if isinstance(event, RunEnded):
            ended.append(event)
        if on_event is not None:
            on_event(event)

    with SimulatedBench(speed=options.speed, seed=options.seed) as sim:
        runs = _run_lot(sim, result.db_path, options.cells, options.timeout_s, hear)
        w0_s, t0_s = sim.launch.w0_s, sim.launch.t0_s
        due = {name: inst.calibration_due for name, inst in sim.bench.instruments.items()}

    conn = sqlite3.connect(f"file:{result.db_path}?mode=ro", uri=True)
    try:
        data = [read_run(conn, run_id) for run_id in runs.values()]
        instruments = read_instruments(conn, due)
    finally:
        conn.close()
    completed = [r for r in data if r.outcome == "completed"]
    metrics = [metrics_of(r) for r in completed]
    profile = load_profile(PROFILE)
    grades, _ = grade_batch(metrics, profile) if metrics else ([], None)
    provisional, _ = grade_batch(metrics, without_hold(profile)) if metrics else ([], None)

    key = StationKey.load_or_create(out / "keys" / "demo-station-key.pem")
    result.key_path = key.path
    records: list[GradingRecord] = []
    by_cell = {m.cell_id: (m, g, p) for m, g, p in zip(metrics, grades, provisional, strict=True)}
    for run in data:
        if run.cell_id not in by_cell:
            result.rows.append(
                DemoRow(
                    run.cell_id,
                    run.chemistry,
                    math.nan,
                    math.nan,
                    math.nan,
                    math.nan,
                    "NOT GRADED",
                    f"run {run.outcome}: {run.reason}",
                )
            )
            continue
        m, grade, maybe = by_cell[run.cell_id]
        started = _when(w0_s, t0_s, float(run.t_s[0]))
        finished = _when(w0_s, t0_s, float(run.t_s[-1]))
        raw = raw_series(run, started.timestamp())
        record = build_record(
            run, m, grade, profile, raw, started, finished, options.seed, instruments, maybe
        )
        records.append(record)
        paths = write_bundle(record, raw, out / "passports", key)
        result.bundles[run.cell_id] = paths
        signed = paths["record"].read_bytes()
        discharge, _ = reference_steps(run)
        pulse = next((i for i, kind in sorted(run.steps.items()) if kind == "pulse"), None)
        (out / "certificates").mkdir(exist_ok=True)
        result.certificates[run.cell_id] = render_certificate(
            record,
            raw,
            out / "certificates" / f"{run.cell_id}.pdf",
            signature=SignatureInfo.from_signed(signed),
            discharge_step=discharge,
            pulse_step=pulse,
        )
        result.rows.append(
            DemoRow(
                run.cell_id,
                run.chemistry,
                _value(m, "capacity_ah"),
                _value(m, "soh_capacity_pct"),
                _value(m, "dcir_10s_ohm"),
                _value(m, "acir_ohm"),
                grade.outcome,
                table_reason(grade, profile, maybe),
            )
        )
    if records:
        summary = summarise(records, lot=f"SIM-LOT seed {options.seed} [SIMULATED]")
        result.report_pdf = render_batch_report(summary, out / "batch-report.pdf")
        result.summary_csv = write_csv(records, out / "summary.csv")
    result.wall_s = time.monotonic() - wall0
    return result


def _value(metrics: CellMetrics, name: str) -> float:
    value = metrics.value(name)
    return math.nan if value is None else value


def _fmt(value: float, scale: float, decimals: int) -> str:
    return "-" if not math.isfinite(value) else f"{value * scale:.{decimals}f}"


TABLE_HEADER = ("cell", "chem", "cap Ah", "SoH %", "DCIR mOhm", "ACIR mOhm", "grade", "reason")


def format_table(rows: Sequence[DemoRow]) -> str:
    """The summary table: capacity 3 decimals, SoH 1, resistances in mOhm with 2."""
    lines = [
        (
            r.cell_id,
            r.chemistry,
            _fmt(r.capacity_ah, 1.0, 3),
            _fmt(r.soh_pct, 1.0, 1),
            _fmt(r.dcir_ohm, 1000.0, 2),
            _fmt(r.acir_ohm, 1000.0, 2),
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

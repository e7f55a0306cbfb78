"""One path from stored runs to figures to grades (ADR 0009).

The demo, ``station match``, ``station grade`` and ``station run``'s summary grade through here
(and so should every other front end), so a cell's figures and grade never depend on which front
end asked:

- :func:`run_data` reads one run back from the database as arrays (nothing is taken from memory);
- :func:`metrics_for_run` computes its :class:`CellMetrics` with the grading core: the reference
  cycle (C/3 capacity discharge and the recharge after it, when the recipe recorded them; else the
  run's last full charge/discharge), DCIR, the intake ACIR and OCV measurements, and the
  self-discharge K-value from the OCV records of a hold that followed the run, and the OCV at
  the hold's end (:func:`matching_metrics` matches on it: the storage SOC, not the intake's);
- :func:`metrics_of` does that for a cell's latest completed run;
- :func:`grade_run` grades one run alone; :func:`grade_lot` grades a lot together, so that the
  lot-relative rules (median + k MAD) see the lot's statistics;
- a run that stopped before its end (refused at the pre-start OCV probe, a limit trip, an
  instrument fault) is graded too (:func:`stopped_grade`): the station's stop rule and the
  profile's gates on what was measured decide QUARANTINE or RETEST with the reason; only a cell
  never measured stays without a grade;
- :func:`main_reason` gives the words of what decided a grade;
- the lot's open follow-ups (a self-discharge re-measurement not taken yet) come with the grades,
  with their due times (``LotGrades.followups``).

Units: times in s (``t_s`` is the station clock), voltages V, currents A (positive charges the
cell), resistances ohm, K-value mV/day, hold length days.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from station.grading.metrics import CellInputs, MeasurementConditions, cell_metrics
from station.grading.ocv import dqdv_at, ica, k_value_mv_per_day, leakage
from station.grading.profiles import (
    SEVERITY,
    LotReport,
    Profile,
    ProfileError,
    evaluate_rule,
    grade_batch,
    lot_report,
)
from station.grading.results import CellMetrics, Figure, Grade, RuleResult, Verdict
from station.grading.soh import Reference
from station.grading.timeseries import TimeSeries
from station.storage import FollowUp, GradeEntry, Storage, open_followups
from station.storage.schema import SEQ_BITS, SEQ_LIMIT

# Standard uncertainties of the figures the station reads rather than computes: the cycler's
# current (0.1 % of reading, Neware spec sheet), the 1 kHz ACIR (0.5 % of reading, BT3562) and an
# OCV reading (1 mV absolute). A self-discharge hold reads the same cell on the same channel twice,
# so the absolute offset cancels in the difference and only the repeatability counts (0.1 mV).
CURRENT_ACCURACY_REL = 0.001
ACIR_ACCURACY_REL = 0.005
OCV_ACCURACY_V = 0.001
HOLD_OCV_REPEATABILITY_V = 0.0001
SECONDS_PER_DAY = 86400.0
INTAKE_KIND = "intake_checklist"
HOLD_END_OCV = "ocv_hold_end_v"  # the figure matching compares OCVs by (storage SOC)
STOP_RULE = "run-ended-safely"  # the station's own gate on a run that stopped before its end

Source = Storage | sqlite3.Connection | str | Path


class EvaluationError(RuntimeError):
    """Stored data cannot be evaluated; the message names the run or cell and what is missing."""


@dataclass(frozen=True)
class HoldRecords:
    """The first and last OCV records of a self-discharge hold (``t_s`` station seconds, V)."""

    first_t_s: float
    first_v: float
    last_t_s: float
    last_v: float
    count: int

    @property
    def days(self) -> float:
        return (self.last_t_s - self.first_t_s) / SECONDS_PER_DAY


@dataclass(frozen=True)
class RunData:
    """What the database holds for one run, as arrays (``t_s`` station seconds)."""

    run_id: str
    run_pk: int
    cell_id: str
    lot: str
    chemistry: str
    rated_capacity_ah: float
    bol_resistance_ohm: float | None
    voltage_min_v: float | None
    voltage_max_v: float | None
    recipe_name: str
    outcome: str
    reason: str
    started_t_s: float
    ended_t_s: float | None
    seq: np.ndarray
    t_s: np.ndarray
    step_index: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    temperature_c: np.ndarray | None
    steps: dict[int, str]  # step index -> step kind
    labels: dict[int, str]  # step index -> recipe label
    measurements: dict[str, dict[str, object]]  # kind -> values of its latest (corrected) row
    facts: dict[str, bool] = field(default_factory=dict)  # intake checklist answers
    hold: HoldRecords | None = None


@dataclass(frozen=True)
class LotGrades:
    """A lot graded together under one profile: per-cell figures and grades, the lot statistics
    the lot-relative rules used, and the cells that could not be graded with the reason.

    ``metrics`` and ``grades`` are in the same order and include the cells graded from a run
    that stopped before its end (``stopped``: cell_id -> the run's outcome); those have only the
    figures measured before the stop and take no part in the lot statistics."""

    profile: Profile
    lot: str | None
    runs: dict[str, str]  # cell_id -> run_id the figures came from
    metrics: list[CellMetrics]
    grades: list[Grade]
    report: LotReport
    not_graded: dict[str, str]  # cell_id -> why it has no grade
    stopped: dict[str, str] = field(default_factory=dict)
    followups: list[FollowUp] = field(default_factory=list)  # open ones, earliest due first

    def grade_of(self, cell_id: str) -> Grade | None:
        return next((g for g in self.grades if g.cell_id == cell_id), None)

    def metrics_of(self, cell_id: str) -> CellMetrics | None:
        return next((m for m in self.metrics if m.cell_id == cell_id), None)

    def completed(self) -> tuple[list[CellMetrics], list[Grade]]:
        """Figures and grades of the cells whose grading run completed (what matching uses)."""
        pairs = [
            (m, g)
            for m, g in zip(self.metrics, self.grades, strict=True)
            if m.cell_id not in self.stopped
        ]
        return [m for m, _ in pairs], [g for _, g in pairs]

    def counts(self) -> dict[str, int]:
        """How many cells got each outcome (bins, REJECT, QUARANTINE, RETEST)."""
        out: dict[str, int] = {}
        for grade in self.grades:
            out[grade.outcome] = out.get(grade.outcome, 0) + 1
        return dict(sorted(out.items()))


@contextlib.contextmanager
def connection(source: Source) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the station database held by ``source`` (a :class:`Storage`, an
    open connection, or a database path)."""
    if isinstance(source, sqlite3.Connection):
        yield source
        return
    if isinstance(source, Storage):
        with source.reader() as conn:
            yield conn
        return
    path = Path(source)
    if not path.is_file():
        raise EvaluationError(f"database {path} does not exist")
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        conn.execute("SELECT 1 FROM runs LIMIT 1")
    except sqlite3.Error as error:
        conn.close()
        raise EvaluationError(f"{path} is not a station database ({error})") from None
    try:
        yield conn
    finally:
        conn.close()


_LATEST_VALUES = (
    "COALESCE((SELECT c.values_json FROM measurements c WHERE c.corrects_id = m.id"
    " ORDER BY c.id DESC LIMIT 1), m.values_json)"
)


def _facts(conn: sqlite3.Connection, cell_id: str) -> dict[str, bool]:
    row = conn.execute(
        f"SELECT {_LATEST_VALUES} FROM measurements m WHERE m.cell_id = ? AND m.kind = ?"
        " AND m.corrects_id IS NULL ORDER BY m.id DESC LIMIT 1",
        (cell_id, INTAKE_KIND),
    ).fetchone()
    if row is None:
        return {}
    return {k: v for k, v in json.loads(row[0]).items() if isinstance(v, bool)}


def hold_records(conn: sqlite3.Connection, cell_id: str, after_t_s: float) -> HoldRecords | None:
    """The OCV records of ``cell_id`` taken after ``after_t_s`` (the end of its grading run):
    the first and the last define the hold. None with fewer than two at distinct times."""
    rows = [
        (float(t), json.loads(values).get("voltage_v"))
        for t, values in conn.execute(
            f"SELECT m.t_s, {_LATEST_VALUES} FROM measurements m WHERE m.cell_id = ?"
            " AND m.kind = 'ocv' AND m.corrects_id IS NULL AND m.t_s > ? ORDER BY m.t_s, m.id",
            (cell_id, after_t_s),
        )
    ]
    usable = [(t, float(v)) for t, v in rows if isinstance(v, int | float) and math.isfinite(v)]
    if len(usable) < 2 or usable[-1][0] <= usable[0][0]:
        return None
    (t1, v1), (t2, v2) = usable[0], usable[-1]
    return HoldRecords(t1, v1, t2, v2, len(usable))


def _read_run(conn: sqlite3.Connection, run_id: str) -> RunData:
    head = conn.execute(
        "SELECT r.run_pk, r.cell_id, r.outcome, r.reason, r.recipe_name, r.started_t_s,"
        " r.ended_t_s, c.lot, c.chemistry, c.rated_capacity_ah, c.bol_resistance_ohm,"
        " c.voltage_min_v, c.voltage_max_v FROM runs r JOIN cells c USING (cell_id)"
        " WHERE r.run_id = ?",
        (run_id,),
    ).fetchone()
    if head is None:
        raise EvaluationError(f"run {run_id} is not in the database")
    (run_pk, cell_id, outcome, reason, recipe, started, ended, lot, chemistry, rated, bol) = head[
        :11
    ]
    v_min, v_max = head[11:]
    first = int(run_pk) << SEQ_BITS
    # A key range, not ``run_pk = ?``: the virtual column has no index.
    rows = conn.execute(
        "SELECT seq, t_s, step_index, voltage_v, current_a, temperature_c FROM samples"
        " WHERE sample_key BETWEEN ? AND ? ORDER BY sample_key",
        (first, first + SEQ_LIMIT - 1),
    ).fetchall()
    data = np.array(
        [[np.nan if v is None else v for v in row] for row in rows], dtype=float
    ).reshape(-1, 6)
    temperature = data[:, 5]
    started_steps = conn.execute(
        "SELECT step_index, step_kind, label FROM step_events"
        " WHERE run_pk = ? AND event = 'started' ORDER BY id",
        (run_pk,),
    ).fetchall()
    measurements: dict[str, dict[str, object]] = {}
    for kind, values in conn.execute(
        f"SELECT m.kind, {_LATEST_VALUES} FROM measurements m WHERE m.run_pk = ?"
        " AND m.corrects_id IS NULL ORDER BY m.id",
        (run_pk,),
    ):
        measurements[str(kind)] = json.loads(values)
    ended_t_s = None if ended is None else float(ended)
    return RunData(
        run_id=run_id,
        run_pk=int(run_pk),
        cell_id=str(cell_id),
        lot=str(lot),
        chemistry=str(chemistry),
        rated_capacity_ah=math.nan if rated is None else float(rated),
        bol_resistance_ohm=None if bol is None else float(bol),
        voltage_min_v=None if v_min is None else float(v_min),
        voltage_max_v=None if v_max is None else float(v_max),
        recipe_name=str(recipe),
        outcome=str(outcome or "unfinished"),
        reason=str(reason or ""),
        started_t_s=float(started),
        ended_t_s=ended_t_s,
        seq=data[:, 0].astype(int),
        t_s=data[:, 1],
        step_index=data[:, 2].astype(int),
        voltage_v=data[:, 3],
        current_a=data[:, 4],
        temperature_c=None if np.all(np.isnan(temperature)) else temperature,
        steps={int(i): str(kind) for i, kind, _ in started_steps},
        labels={int(i): str(label) for i, _, label in started_steps},
        measurements=measurements,
        facts=_facts(conn, str(cell_id)),
        hold=None if ended_t_s is None else hold_records(conn, str(cell_id), ended_t_s),
    )


def run_data(source: Source, run_id: str) -> RunData:
    """One run read back from the database, with the cell's intake facts and hold records."""
    with connection(source) as conn:
        return _read_run(conn, run_id)


def grading_run(conn: sqlite3.Connection, cell_id: str) -> str | None:
    """The cell's latest completed run with a discharge in its samples. A run of OCV readings
    only (a hold end) is not a grading run: its OCV readings belong to the hold after it."""
    for run_id, run_pk in conn.execute(
        "SELECT run_id, run_pk FROM runs WHERE cell_id = ? AND outcome = 'completed'"
        " ORDER BY ended_t_s DESC, run_pk DESC",
        (cell_id,),
    ):
        first = int(run_pk) << SEQ_BITS
        discharge = conn.execute(
            "SELECT 1 FROM samples WHERE sample_key BETWEEN ? AND ? AND current_a < 0 LIMIT 1",
            (first, first + SEQ_LIMIT - 1),
        ).fetchone()
        if discharge is not None:
            return str(run_id)
    return None


def reference_steps(run: RunData) -> tuple[int, int] | None:
    """(C/3 capacity discharge step, the CCCV recharge right after it) when the recipe recorded
    them by kind; None for runs without step kinds (imports)."""
    ordered = sorted(run.steps.items())
    discharge = next((i for i, kind in ordered if kind == "discharge_cc"), None)
    if discharge is None:
        return None
    recharge = next((i for i, kind in ordered if i > discharge and kind == "charge_cccv"), None)
    return None if recharge is None else (discharge, recharge)


def _step_wh(run: RunData, step: int) -> float:
    """Trapezoid integral of V*I over a step (Wh, signed), including the interval that ends at
    its first row (decision 0006: the interval k-1..k belongs to the step of row k)."""
    rows = np.flatnonzero(run.step_index == step)
    if rows.size == 0:
        return math.nan
    idx = np.concatenate([[max(rows[0] - 1, 0)], rows])
    power = run.voltage_v[idx] * run.current_a[idx]
    return float(np.sum((power[1:] + power[:-1]) * np.diff(run.t_s[idx])) / 2.0 / 3600.0)


def _series(run: RunData, rows: np.ndarray | slice) -> TimeSeries:
    return TimeSeries.from_arrays(
        run.t_s[rows],
        run.voltage_v[rows],
        run.current_a[rows],
        None if run.temperature_c is None else run.temperature_c[rows],
        step_count=run.step_index[rows],
    )


def _measured(run: RunData) -> dict[str, Figure]:
    """Figures the run read from instruments: intake 1 kHz ACIR and intake OCV."""
    extra: dict[str, Figure] = {}
    acir = run.measurements.get("acir", {}).get("resistance_ohm")
    if isinstance(acir, int | float) and math.isfinite(acir):
        extra["acir_ohm"] = Figure(
            float(acir), "ohm", float(acir) * ACIR_ACCURACY_REL, note="1 kHz ACIR at intake"
        )
    ocv = run.measurements.get("ocv", {}).get("voltage_v")
    if isinstance(ocv, int | float) and math.isfinite(ocv):
        extra["ocv_v"] = Figure(float(ocv), "V", OCV_ACCURACY_V, note="intake OCV hold")
    return extra


def _hold_figures(hold: HoldRecords) -> dict[str, Figure]:
    """K-value (grading.md 2.4, the core's formula) and hold length from the hold's OCV records."""
    first = Figure(hold.first_v, "V", HOLD_OCV_REPEATABILITY_V)
    last = Figure(hold.last_v, "V", HOLD_OCV_REPEATABILITY_V)
    k = k_value_mv_per_day(first, hold.first_t_s, last, hold.last_t_s)
    note = f"OCV {hold.first_v:.5f} V -> {hold.last_v:.5f} V over {hold.days:.2f} days"
    return {
        "k_mv_per_day": Figure(k.value, k.unit, k.uncertainty, k.flags, note=note),
        "hold_days": Figure(hold.days, "day", note=f"{hold.count} OCV records"),
        HOLD_END_OCV: Figure(
            hold.last_v, "V", OCV_ACCURACY_V, note="OCV at the end of the self-discharge hold"
        ),
    }


def matching_metrics(metrics: Sequence[CellMetrics]) -> tuple[list[CellMetrics], str]:
    """The cells' figures for matching, and which OCV they carry as ``ocv_v``.

    The intake OCV is read at whatever SOC the cell arrived with, so an OCV window on it splits
    a lot by its history; the OCV at the end of the self-discharge hold is read at the storage
    SOC the grading run left every cell at. When every cell has a hold, ``ocv_v`` is that one
    ("hold end"); otherwise all keep the intake OCV ("intake"), never a mix of the two."""
    if metrics and all(HOLD_END_OCV in m.figures for m in metrics):
        swapped = [
            CellMetrics(
                m.cell_id, m.chemistry, {**m.figures, "ocv_v": m.figures[HOLD_END_OCV]}, m.facts
            )
            for m in metrics
        ]
        return swapped, "hold end"
    return list(metrics), "intake"


def metrics_for_run(run: RunData) -> CellMetrics:
    """Grade inputs of one completed run, every figure computed from the stored records."""
    if run.outcome != "completed":
        raise EvaluationError(f"run {run.run_id} of {run.cell_id} is {run.outcome}: {run.reason}")
    if len(run.t_s) < 2:
        raise EvaluationError(f"run {run.run_id} of {run.cell_id} holds no samples")
    if not math.isfinite(run.rated_capacity_ah) or run.rated_capacity_ah <= 0:
        raise EvaluationError(f"cell {run.cell_id} has no rated capacity stored")
    # The rated resistance of a cell record is a 1 kHz ACIR: the resistance increase compares
    # the intake ACIR with it (same method), never the 10 s DCIR with an AC figure.
    inputs = CellInputs(
        run.cell_id,
        run.chemistry.lower(),
        Reference(rated_capacity_ah=run.rated_capacity_ah),
        facts=dict(run.facts),
    )
    conditions = MeasurementConditions(
        cv_cutoff_a=run.rated_capacity_ah / 20.0,
        current_accuracy_rel=CURRENT_ACCURACY_REL,
        v_min_v=run.voltage_min_v,
        v_max_v=run.voltage_max_v,
    )
    extra = _measured(run)
    if run.hold is not None:
        extra.update(_hold_figures(run.hold))
    pair = reference_steps(run)
    if pair is not None:
        discharge, recharge = pair
        # Capacity and energy: the last charge-then-discharge up to the reference discharge (the
        # HPPC's SOC moves are discharges too, and must not be taken for it).
        reference_cycle = cell_metrics(
            inputs, _series(run, run.step_index <= discharge), conditions
        )
        energy = reference_cycle.figures["energy_wh"]
        extra["capacity_ah"] = reference_cycle.figures["capacity_ah"]
        extra["energy_wh"] = energy
        e_in = _step_wh(run, recharge)
        rte = energy.value / e_in if e_in > 0 else math.nan
        extra["rte"] = Figure(
            rte,
            "1",
            rte * CURRENT_ACCURACY_REL * math.sqrt(2.0),
            energy.flags,
            note="C/3 discharge Wh over the CCCV recharge Wh that follows it",
        )
    metrics = cell_metrics(inputs, _series(run, slice(None)), conditions, extra)
    figures = dict(metrics.figures)
    if pair is not None:
        # CE of the whole run's last charge/discharge pair would pair an HPPC SOC move with the
        # recharge; the reference cycle's CE starts from a partial charge: neither is reported.
        figures.pop("coulombic_efficiency", None)
    if pair is not None and "k_mv_per_day" in figures:
        figures.update(_self_discharge_rate(run, pair[0], figures))
    acir = extra.get("acir_ohm")
    if acir is not None and run.bol_resistance_ohm:
        bol = run.bol_resistance_ohm
        figures["resistance_increase_pct"] = Figure(
            (acir.value - bol) / bol * 100.0,
            "%",
            None if acir.uncertainty is None else acir.uncertainty / bol * 100.0,
            acir.flags,
            note="1 kHz ACIR at intake vs the rated 1 kHz ACIR",
        )
    return CellMetrics(metrics.cell_id, metrics.chemistry, figures, metrics.facts)


def _self_discharge_rate(
    run: RunData, discharge_step: int, figures: dict[str, Figure]
) -> dict[str, Figure]:
    """Self-discharge as %/month of rated capacity (passport clause 6.7.4.7, grading.md 2.4):
    the leakage current K x dQ/dV, with dQ/dV read off the ICA of the reference C/3 discharge at
    the voltage that discharge showed at the hold's OCV (the hold-end OCV less the discharge's
    I x R_10s drop, as the loaded curve sits that far below the OCV). Empty when the discharge
    spans too few voltages for an ICA."""
    rows = run.step_index == discharge_step
    current = run.current_a[rows]
    try:
        curve = ica(run.t_s[rows], run.voltage_v[rows], current)
    except ValueError:
        return {}
    ocv = figures[HOLD_END_OCV].value if HOLD_END_OCV in figures else math.nan
    dcir = figures.get("dcir_10s_ohm")
    drop = abs(float(np.median(current))) * dcir.value if dcir is not None and dcir.ok else 0.0
    if not math.isfinite(ocv):
        return {}
    dqdv = dqdv_at(curve, ocv - drop)
    rate = leakage(figures["k_mv_per_day"], dqdv, run.rated_capacity_ah).pct_per_month
    note = (
        f"K x dQ/dV ({dqdv:.4g} Ah/V of the C/3 discharge at {ocv - drop:.4f} V, the hold OCV "
        f"{ocv:.4f} V less its I x R drop), over the rated capacity, 30-day month"
    )
    return {
        "self_discharge_pct_per_month": Figure(
            rate.value, rate.unit, rate.uncertainty, rate.flags, note=note
        )
    }


def metrics_of(source: Source, cell_id: str) -> CellMetrics:
    """Figures of a cell from its latest completed grading run (and the hold after it)."""
    with connection(source) as conn:
        if conn.execute("SELECT 1 FROM cells WHERE cell_id = ?", (cell_id,)).fetchone() is None:
            raise EvaluationError(f"cell {cell_id} is not in the database")
        run_id = grading_run(conn, cell_id)
        if run_id is None:
            raise EvaluationError(f"cell {cell_id} has no completed run to grade")
        return metrics_for_run(_read_run(conn, run_id))


def grade_run(source: Source, run_id: str, profile: Profile) -> Grade:
    """One run graded alone (no lot: lot-relative rules have no median and are skipped or
    missing as the profile says)."""
    metrics = metrics_for_run(run_data(source, run_id))
    return _grade([metrics], profile)[0][0]


def _grade(metrics: Sequence[CellMetrics], profile: Profile) -> tuple[list[Grade], LotReport]:
    try:
        return grade_batch(metrics, profile)
    except ProfileError as error:
        raise EvaluationError(str(error)) from None


def lot_cells(conn: sqlite3.Connection, lot: str | None) -> list[str]:
    """Cell IDs of ``lot`` (every stored cell when None), sorted."""
    if lot is None:
        rows = conn.execute("SELECT cell_id FROM cells ORDER BY cell_id")
    else:
        rows = conn.execute("SELECT cell_id FROM cells WHERE lot = ? ORDER BY cell_id", (lot,))
    return [str(r[0]) for r in rows]


def grade_lot(
    source: Source,
    profile: Profile,
    *,
    lot: str | None = None,
    cell_ids: Sequence[str] | None = None,
    runs: Mapping[str, str] | None = None,
) -> LotGrades:
    """Grade cells together: each cell's latest completed grading run (or the run given in
    ``runs``), with the lot statistics the lot-relative rules need. A cell without a completed
    grading run whose last run stopped early after measuring it is graded by
    :func:`stopped_grade`.

    Cells are ``cell_ids`` when given, else the cells of ``lot`` (every cell when None)."""
    with connection(source) as conn:
        ids = list(cell_ids) if cell_ids is not None else lot_cells(conn, lot)
        if not ids:
            where = "the database" if lot is None else f"lot {lot!r}"
            raise EvaluationError(f"{where} holds no cells")
        chosen: dict[str, str] = {}
        not_graded: dict[str, str] = {}
        data: list[RunData] = []
        stops: list[tuple[RunData, RunStop]] = []
        for cell_id in ids:
            run_id = (runs or {}).get(cell_id) or grading_run(conn, cell_id)
            if run_id is None:
                run_id = _last_run(conn, cell_id)
                if run_id is None:
                    not_graded[cell_id] = "no run stored"
                    continue
                if _outcome(conn, run_id) == "completed":
                    not_graded[cell_id] = "no completed run with a discharge to grade"
                    continue
            run = _read_run(conn, run_id)
            if run.outcome == "completed":
                data.append(run)
            else:
                stop = run_stop(conn, run)
                if stop is None:
                    not_graded[cell_id] = _never_measured(run)
                    continue
                stops.append((run, stop))
            chosen[cell_id] = run_id
        followups = open_followups(conn, ids)
    metrics = [metrics_for_run(run) for run in data]
    grades, report = _grade(metrics, profile) if metrics else ([], lot_report([], profile))
    stopped: dict[str, str] = {}
    for run, stop in stops:
        figures, grade = stopped_grade(run, stop, profile)
        metrics.append(figures)
        grades.append(grade)
        stopped[run.cell_id] = run.outcome
    return LotGrades(profile, lot, chosen, metrics, grades, report, not_graded, stopped, followups)


def _last_run(conn: sqlite3.Connection, cell_id: str) -> str | None:
    row = conn.execute(
        "SELECT run_id FROM runs WHERE cell_id = ? ORDER BY run_pk DESC LIMIT 1", (cell_id,)
    ).fetchone()
    return None if row is None else str(row[0])


def _outcome(conn: sqlite3.Connection, run_id: str) -> str:
    row = conn.execute("SELECT outcome FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return str(row[0] or "unfinished") if row is not None else "unfinished"


def _never_measured(run: RunData) -> str:
    return f"run {run.outcome}: {run.reason}".rstrip(": ") + " (nothing measured on the cell)"


@dataclass(frozen=True)
class RunStop:
    """Why a run stopped before its end, as the station's stop rule sees it: the outcome it
    decides (QUARANTINE when the cell's own readings stopped it, RETEST when the station did),
    the figure and limit involved (``value`` None when the instrument gave none; SI units) and
    the words."""

    outcome: str
    metric: str
    value: float | None
    unit: str
    threshold: float
    words: str


def _step_words(run: RunData) -> str:
    step = int(run.step_index[-1])
    label = run.labels.get(step) or run.steps.get(step, "")
    return f"at step {step}" + (f" ({label})" if label else "")


def run_stop(conn: sqlite3.Connection, run: RunData) -> RunStop | None:
    """The stop rule of a run that ended early and measured the cell (None for a completed or
    unfinished run, or one refused before any reading of the cell: nothing to grade).

    - refused at the pre-start OCV probe for the cell's voltage (reversed, deep-discharged, no
      contact, above its maximum): QUARANTINE, the probe OCV being the run's stored sample;
    - a limit trip: QUARANTINE with the limit, the value, the threshold and the step;
    - refused for a station cause (temperature sensor, protection read-back), an instrument
      fault or an operator's abort: RETEST, since that says nothing about the cell.
    """
    if run.outcome in ("completed", "unfinished") or run.t_s.size == 0:
        return None
    where = _step_words(run)
    if run.outcome == "tripped":
        row = conn.execute(
            "SELECT limit_name, value, threshold, unit FROM limit_trips WHERE run_pk = ?"
            " ORDER BY id DESC LIMIT 1",
            (run.run_pk,),
        ).fetchone()
        limit, value, threshold, unit = (
            ("limit", None, None, "") if row is None else (str(row[0]), row[1], row[2], str(row[3]))
        )
        beyond = (
            f"{value:.6g} {unit} beyond {threshold:.6g} {unit}"
            if value is not None and threshold is not None
            else "no value (the instrument's own protection tripped)"
        )
        return RunStop(
            "QUARANTINE",
            limit,
            None if value is None else float(value),
            unit,
            math.nan if threshold is None else float(threshold),
            f"run stopped by the {limit} limit {where}: {beyond}; inspect before any re-test",
        )
    cause = run.reason.removeprefix("refused: ")
    if run.outcome == "aborted" and cause != run.reason and cause.startswith("OCV"):
        return RunStop(
            "QUARANTINE",
            "ocv_v",
            float(run.voltage_v[-1]),
            "V",
            math.nan,
            f"pre-start OCV probe refused the run: {cause}",
        )
    what = "instrument fault" if run.outcome == "faulted" else f"run {run.outcome}"
    return RunStop(
        "RETEST",
        run.outcome,
        None,
        "",
        math.nan,
        f"{what} {where}: {run.reason}; not a property of the cell: re-test",
    )


def stopped_grade(run: RunData, stop: RunStop, profile: Profile) -> tuple[CellMetrics, Grade]:
    """The grade of a run that stopped early: the station's stop rule and the profile's gates on
    the figures measured before the stop (the probe OCV, intake ACIR/OCV, intake facts); the
    most severe decides (QUARANTINE before REJECT before RETEST). Bins are never tried: the
    reference test did not run."""
    figures = _measured(run)
    if stop.metric == "ocv_v" and stop.value is not None:
        figures["ocv_v"] = Figure(stop.value, "V", OCV_ACCURACY_V, note="pre-start OCV probe")
    metrics = CellMetrics(run.cell_id, run.chemistry.lower(), figures, dict(run.facts))
    station = RuleResult(
        STOP_RULE,
        stop.metric,
        stop.value,
        stop.unit,
        "within",
        stop.threshold,
        None,
        None,
        Verdict.FAIL,
        f"[station] {stop.words}",
    )
    evidence = [station]
    decided = [(stop.outcome, stop.words)]
    if metrics.chemistry in profile.chemistries:
        for gate in profile.gates:
            result = evaluate_rule(gate.rule, metrics, profile)
            evidence.append(result)
            if result.verdict is Verdict.FAIL:
                decided.append((gate.outcome, gate.rule.words or result.explanation))
    outcome, words = min(decided, key=lambda d: SEVERITY.index(d[0]))
    grade = Grade(
        run.cell_id,
        outcome,
        profile.name,
        profile.version,
        profile.sha256,
        tuple(evidence),
        f"{outcome} under {profile.name} v{profile.version}: {words}",
    )
    return metrics, grade


def _gate_words(gate_words: str, result: RuleResult) -> str:
    """A failed gate's words with the measured value and the limit it failed."""
    if result.value is None or not result.unit:
        return gate_words
    return (
        f"{gate_words} ({result.metric} {result.value:.6g} {result.unit}, "
        f"limit {result.comparison} {result.threshold:.6g} {result.unit})"
    )


def main_reason(grade: Grade, profile: Profile) -> str:
    """The words of what decided the grade: the bin's use, the gate that set the outcome (with
    the measured value and the limit), the station's stop rule, or the rule that kept a bin from
    being confirmed."""
    if grade.use:
        return grade.summary
    results = {rule.rule: rule for rule in grade.rules}
    stop = results.get(STOP_RULE)
    stop_words = "" if stop is None else stop.explanation.removeprefix("[station] ")
    for gate in profile.gates:
        result = results.get(gate.rule.name)
        if result is None:
            continue
        decided = {
            Verdict.FAIL: gate.outcome,
            Verdict.RETEST: "RETEST",
            Verdict.MISSING: gate.when_missing,
        }.get(result.verdict)
        if decided != grade.outcome or (stop is not None and result.verdict is not Verdict.FAIL):
            continue
        if result.verdict is Verdict.RETEST:
            # A guard-band RETEST is not the failure the gate's words describe.
            return (
                f"{result.metric} within its measurement uncertainty of the limit of "
                f"'{gate.rule.name}': re-test"
            )
        if result.verdict is Verdict.MISSING:
            return f"{result.metric or gate.rule.name} not measured ({gate.rule.name})"
        words = _gate_words(gate.rule.words or result.explanation, result)
        return f"{words}; {stop_words}" if stop_words else words
    if stop_words:
        return stop_words
    # No gate decided: the summary names the bin that could not be confirmed and why.
    return grade.summary.split(": ", 1)[-1]


def _finite(value: object) -> object:
    """JSON-safe copy: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def grade_entries(graded: LotGrades) -> list[GradeEntry]:
    """The lot's grades as rows to store: outcome, bin, the deciding reason and the full
    explanation (every rule and every figure) as JSON."""
    entries = []
    for grade, metrics in zip(graded.grades, graded.metrics, strict=True):
        binned = grade.outcome if grade.use else ""
        explanation = {
            "grade": grade.to_dict(),
            "figures": metrics.to_dict()["figures"],
            "facts": dict(metrics.facts),
            "lot_flags": list(graded.report.flags),
        }
        entries.append(
            GradeEntry(
                cell_id=grade.cell_id,
                run_ids=(graded.runs[grade.cell_id],),
                profile_name=grade.profile_name,
                profile_version=grade.profile_version,
                profile_sha256=grade.profile_sha256,
                grade=grade.outcome,
                bin=binned,
                use=grade.use,
                reason=main_reason(grade, graded.profile),
                explanation=_finite(explanation),  # type: ignore[arg-type]
            )
        )
    return entries


def store_grades(storage: Storage, graded: LotGrades, *, operator: str, why: str) -> list[int]:
    """Append the lot's grades to the database (earlier grades stay; each new row names the one
    it supersedes); returns the new grade row IDs."""
    return storage.record_grades(grade_entries(graded), who=operator, why=why)

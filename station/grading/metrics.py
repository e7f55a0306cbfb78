"""From one cell's time series to its :class:`CellMetrics`, with data-quality flags.

This is the glue the engine calls after a grading run: capacity and energy of the reference
discharge, RTE and CE of that cycle, SoH/fade figures, DCIR (10 s) referred to 25 C, resistance
increase and the final rest OCV. Flags (grading.md section 7 row 28): sample interval, cell
temperature outside the window, CV cut-off not reached before the reference discharge, rest
too short or not relaxed, no temperature recorded, no reference value.

Uncertainties: charge and energy carry the cycler's current accuracy (``current_accuracy_rel``,
relative standard uncertainty; the time base is far better and is neglected); DCIR carries
the voltage accuracy of its two readings (``voltage_accuracy_v``, standard uncertainty) over
the pulse current, combined with the spread of the pulses it is the median of.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from station.grading.compensation import compensate_to_25c
from station.grading.ocv import rest_ocv
from station.grading.pulses import analyze_pulses
from station.grading.results import CellMetrics, Figure, Quality
from station.grading.soh import Reference, health_figures
from station.grading.timeseries import StepKind, StepTable, TimeSeries, step_table

NAN = float("nan")


@dataclass(frozen=True)
class MeasurementConditions:
    """What a figure must have been measured under to count without a flag."""

    temperature_window_c: tuple[float, float] = (20.0, 30.0)
    cv_cutoff_a: float | None = None
    max_sample_interval_s: float = 30.0
    min_rest_s: float = 1800.0
    current_accuracy_rel: float = 0.001
    voltage_accuracy_v: float = 1e-4
    activation_energy_j_per_mol: float | None = None


@dataclass(frozen=True)
class CellInputs:
    """Intake facts about a cell (identity, chemistry, datasheet/BOL references, checklist)."""

    cell_id: str
    chemistry: str
    reference: Reference
    facts: dict[str, bool] = field(default_factory=dict)


def _last_full_cycle(steps: StepTable) -> tuple[int, int] | None:
    """(charge step, discharge step) of the last non-pulse charge followed by a non-pulse
    discharge."""
    charge = None
    found = None
    for k, kind in enumerate(steps.kind):
        if kind.is_pulse or kind is StepKind.REST:
            continue
        if kind.is_charge:
            charge = k
        elif kind.is_discharge and charge is not None:
            found = (charge, k)
            charge = None
    return found


def _flags_for(ts: TimeSeries, start: int, end: int, cond: MeasurementConditions) -> set[Quality]:
    flags: set[Quality] = set()
    dt = np.diff(ts.t_s[start:end])
    if len(dt) and float(np.median(dt)) > cond.max_sample_interval_s:
        flags.add(Quality.SAMPLING_TOO_COARSE)
    if ts.temperature_c is None:
        flags.add(Quality.NO_TEMPERATURE)
    else:
        temp = float(np.nanmean(ts.temperature_c[start:end]))
        low, high = cond.temperature_window_c
        if not low <= temp <= high:
            flags.add(Quality.TEMPERATURE_OUT_OF_WINDOW)
    return flags


def cell_metrics(
    cell: CellInputs,
    ts: TimeSeries,
    conditions: MeasurementConditions | None = None,
    extra: dict[str, Figure] | None = None,
) -> CellMetrics:
    """Every figure the grading profiles use that a time series can give; ``extra`` adds
    figures measured elsewhere (ACIR, K-value, hold days) and overrides computed ones."""
    cond = conditions or MeasurementConditions()
    steps = step_table(ts)
    figures: dict[str, Figure] = {}
    pair = _last_full_cycle(steps)
    capacity = Figure(
        NAN,
        "Ah",
        flags=frozenset({Quality.MISSING_REFERENCE}),
        note="no charge followed by a discharge",
    )
    energy = Figure(NAN, "Wh", flags=capacity.flags)
    rte = Figure(NAN, "1", flags=capacity.flags)
    if pair is not None:
        ch, dis = pair
        flags = _flags_for(ts, int(steps.start_row[dis]), int(steps.end_row[dis]), cond)
        charge_flags = set(flags)
        if cond.cv_cutoff_a is not None and abs(float(steps.i_end_a[ch])) > 1.05 * cond.cv_cutoff_a:
            charge_flags.add(Quality.CV_CUTOFF_NOT_REACHED)
        q_dis = float(steps.discharge_ah[dis])
        e_dis = float(steps.discharge_wh[dis])
        # The charge may be split into CC and CV steps: sum the charge steps before dis.
        first = ch
        while first > 0 and steps.kind[first - 1].is_charge and not steps.kind[first - 1].is_pulse:
            first -= 1
        q_ch = float(np.sum(steps.charge_ah[first : ch + 1]))
        e_ch = float(np.sum(steps.charge_wh[first : ch + 1]))
        rel = cond.current_accuracy_rel
        all_flags = frozenset(flags | charge_flags)
        capacity = Figure(q_dis, "Ah", q_dis * rel, frozenset(charge_flags))
        energy = Figure(e_dis, "Wh", e_dis * rel, frozenset(charge_flags))
        rte_value = e_dis / e_ch if e_ch > 0 else NAN
        rte = Figure(rte_value, "1", rte_value * rel * np.sqrt(2), all_flags)
        ce = q_dis / q_ch if q_ch > 0 else NAN
        figures["coulombic_efficiency"] = Figure(ce, "1", ce * rel * np.sqrt(2), all_flags)
    figures["capacity_ah"] = capacity
    figures["energy_wh"] = energy
    figures["rte"] = rte
    pulses = analyze_pulses(ts, steps, capacity_ah=cell.reference.rated_capacity_ah)
    used = [p for p in pulses if p.is_discharge and p.dcir_ohm["10"].ok]
    r10 = [p.dcir_ohm["10"] for p in used]
    temps = [p.temperature_c for p in used]
    if r10:
        values = np.array([f.value for f in r10])
        # Two voltage readings per value: sqrt(2) * accuracy / |I|, combined with the spread of
        # the pulses when there are several.
        reading = float(
            np.sqrt(2.0) * cond.voltage_accuracy_v / min(abs(p.current_a) for p in used)
        )
        spread = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
        sigma = float(np.hypot(reading, spread))
        dcir = Figure(
            float(np.median(values)),
            "ohm",
            sigma,
            note=f"median of {len(values)} discharge pulse(s) at 10 s",
        )
        temp = float(np.nanmean(temps)) if temps and not np.all(np.isnan(temps)) else None
        figures["dcir_10s_ohm"] = dcir
        figures["dcir_10s_25c_ohm"] = compensate_to_25c(
            dcir, temp, cond.activation_energy_j_per_mol
        )
    else:
        figures["dcir_10s_ohm"] = Figure(NAN, "ohm", note="no usable 10 s discharge pulse")
        figures["dcir_10s_25c_ohm"] = figures["dcir_10s_ohm"]
    last = len(steps) - 1
    if steps.kind[last] is StepKind.REST:
        s, e = int(steps.start_row[last]), int(steps.end_row[last])
        if e - s >= 2:
            figures["ocv_v"] = rest_ocv(ts.t_s[s:e], ts.voltage_v[s:e], min_rest_s=cond.min_rest_s)
    figures.update(extra or {})
    figures.update(
        health_figures(
            cell.reference,
            capacity=figures["capacity_ah"],
            energy=figures["energy_wh"],
            rte=figures["rte"],
            resistance_25c=figures["dcir_10s_25c_ohm"],
        )
    )
    return CellMetrics(cell.cell_id, cell.chemistry, figures, dict(cell.facts))

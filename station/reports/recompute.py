"""Recompute report figures from raw data and compare them with the record (reliability.md P4).

Every figure a certificate prints for capacity, energy, round-trip efficiency, DC resistance and
the capacity SoH and fade must equal the figure recomputed here from the raw time series, within a
relative tolerance of 1e-9. The integration is written independently of whatever code produced
the record: cumulative charge and energy by the trapezoid rule over the rows of one cycler step,
starting from the last row of the previous step (the step's true start).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from station.passport.rawdata import RawSeries
from station.passport.record import GradingRecord


class RecomputeError(ValueError):
    """The raw data lacks what a figure needs (a step, a column)."""


@dataclass(frozen=True)
class StepPlan:
    """Which cycler steps hold the capacity discharge, the recharge and the DC pulse."""

    discharge_step: int
    charge_step: int | None = None
    pulse_step: int | None = None


@dataclass(frozen=True)
class Mismatch:
    key: str
    reported: float
    recomputed: float

    @property
    def relative(self) -> float:
        scale = max(abs(self.recomputed), 1e-300)
        return abs(self.reported - self.recomputed) / scale


def _step_rows(raw: RawSeries, step: int) -> np.ndarray:
    if raw.step_index is None:
        raise RecomputeError("raw data has no step_index column")
    rows = np.flatnonzero(raw.step_index == step)
    if rows.size == 0:
        raise RecomputeError(f"raw data has no rows for step {step}")
    if np.any(np.diff(rows) != 1):
        raise RecomputeError(f"step {step} is not one contiguous block of rows")
    first = int(rows[0])
    return np.arange(max(first - 1, 0), int(rows[-1]) + 1)


def integrate_ah(raw: RawSeries, step: int) -> float:
    """Charge moved during ``step`` in Ah (signed: negative for a discharge)."""
    rows = _step_rows(raw, step)
    t = raw.t_s[rows]
    i = raw.current_a[rows]
    return float(np.sum(0.5 * (i[1:] + i[:-1]) * (t[1:] - t[:-1])) / 3600.0)


def integrate_wh(raw: RawSeries, step: int) -> float:
    """Energy moved during ``step`` in Wh (signed: negative for a discharge)."""
    rows = _step_rows(raw, step)
    t = raw.t_s[rows]
    p = raw.current_a[rows] * raw.voltage_v[rows]
    return float(np.sum(0.5 * (p[1:] + p[:-1]) * (t[1:] - t[:-1])) / 3600.0)


def pulse_resistance_ohm(raw: RawSeries, step: int) -> float:
    """DC resistance ΔV/ΔI between the row before the pulse and its last row."""
    rows = _step_rows(raw, step)
    before, end = rows[0], rows[-1]
    delta_i = raw.current_a[end] - raw.current_a[before]
    if delta_i == 0:
        raise RecomputeError(f"step {step}: current does not change, no resistance")
    return float(abs((raw.voltage_v[end] - raw.voltage_v[before]) / delta_i))


def recompute(raw: RawSeries, plan: StepPlan, rated_capacity_ah: float) -> dict[str, float]:
    """The record keys this module can recompute, in the record's units."""
    capacity_ah = -integrate_ah(raw, plan.discharge_step)
    energy_wh = -integrate_wh(raw, plan.discharge_step)
    out = {
        "6.7.2.3": capacity_ah,
        "6.7.2.6": energy_wh / 1000.0,
        "6.7.2.4": (1.0 - capacity_ah / rated_capacity_ah) * 100.0,
        "x-station.soh-capacity": capacity_ah / rated_capacity_ah * 100.0,
    }
    if plan.charge_step is not None:
        out["6.7.4.4"] = energy_wh / integrate_wh(raw, plan.charge_step) * 100.0
    if plan.pulse_step is not None:
        out["6.7.5#method=dcir"] = pulse_resistance_ohm(raw, plan.pulse_step)
    return out


def check_record(
    record: GradingRecord,
    raw: RawSeries,
    plan: StepPlan,
    *,
    rel_tol: float = 1e-9,
    figures: Mapping[str, float] | None = None,
) -> list[Mismatch]:
    """Mismatches between reported figures and figures recomputed from ``raw``.

    ``figures`` are the reported values to check (default: the record's own values for every key
    :func:`recompute` covers). An empty list means every figure agrees within ``rel_tol``.
    """
    recomputed = recompute(raw, plan, record.number("6.7.2.2"))
    reported = (
        dict(figures)
        if figures is not None
        else {key: record.number(key) for key in recomputed if record.get(key) is not None}
    )
    mismatches = []
    for key, value in sorted(reported.items()):
        if key not in recomputed:
            raise RecomputeError(f"{key}: no recomputation for this figure")
        mismatch = Mismatch(key, value, recomputed[key])
        if mismatch.relative > rel_tol:
            mismatches.append(mismatch)
    return mismatches

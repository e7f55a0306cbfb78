"""DCIR from current steps, its ohmic/charge-transfer/diffusion split, and pulse power.

Method (``../shared/reference/grading.md`` 2.2 and section 7 rows 13-15): V(t0) and I(t0) are the
last rest sample (I(t0) the mean of the last five rest currents, as BEEP does); R(dt) = (V(t0+dt)
- V(t0)) / (I(t0+dt) - I(t0)), positive for charge and discharge pulses, with V and I linearly
interpolated to the exact instant t0+dt. A value is rejected (NaN with a flag) when the samples
bracketing the instant are further apart than dt/5 or when the current at the instant differs
from the pulse's settled current by more than ``settle_tolerance``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from station.grading.results import Figure, Quality
from station.grading.timeseries import StepKind, StepTable, TimeSeries, charge_increments_as

#: Instants after the current step at which DCIR is evaluated (s); "end" is the end of pulse.
DCIR_INSTANTS_S: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 30.0)


@dataclass(frozen=True)
class Pulse:
    """One current pulse after a rest and the resistances derived from it.

    ``dcir_ohm`` maps an instant label ("0.01", "0.1", "1", "10", "30", "end") to its Figure.
    ``soc`` is the state of charge at the pulse start (0..1, NaN when unknown).
    """

    start_s: float
    duration_s: float
    current_a: float
    rest_voltage_v: float
    v_extreme_v: float
    soc: float
    temperature_c: float
    dcir_ohm: dict[str, Figure] = field(default_factory=dict)
    r_ohmic_ohm: Figure = Figure(float("nan"), "ohm")
    r_charge_transfer_ohm: Figure = Figure(float("nan"), "ohm")
    r_diffusion_ohm: Figure = Figure(float("nan"), "ohm")

    @property
    def is_discharge(self) -> bool:
        return self.current_a < 0

    def to_dict(self) -> dict[str, object]:
        return {
            "start_s": self.start_s,
            "duration_s": self.duration_s,
            "current_a": self.current_a,
            "rest_voltage_v": self.rest_voltage_v,
            "soc": None if self.soc != self.soc else self.soc,
            "temperature_c": None
            if self.temperature_c != self.temperature_c
            else self.temperature_c,
            "dcir_ohm": {k: f.to_dict() for k, f in self.dcir_ohm.items()},
            "r_ohmic_ohm": self.r_ohmic_ohm.to_dict(),
            "r_charge_transfer_ohm": self.r_charge_transfer_ohm.to_dict(),
            "r_diffusion_ohm": self.r_diffusion_ohm.to_dict(),
        }


def _label(dt_s: float) -> str:
    return f"{dt_s:g}"


def dcir_at(
    t_s: np.ndarray,
    voltage_v: np.ndarray,
    current_a: np.ndarray,
    rest_row: int,
    end_row: int,
    dt_s: float,
    rest_current_a: float,
    settled_current_a: float,
    settle_tolerance: float = 0.02,
) -> Figure:
    """R(dt) of the pulse occupying rows ``rest_row+1 .. end_row-1`` after rest row ``rest_row``.

    Returns NaN with a flag when the instant lies beyond the pulse, sampling is too coarse
    (bracketing interval > dt/5), or the current is not settled at the instant.
    """
    t0 = t_s[rest_row]
    target = t0 + dt_s
    pulse_t = t_s[rest_row + 1 : end_row]
    if len(pulse_t) == 0 or target > pulse_t[-1] + 1e-9 * max(1.0, abs(target)):
        return Figure(
            float("nan"),
            "ohm",
            flags=frozenset({Quality.OUT_OF_RANGE}),
            note=f"pulse shorter than {dt_s:g} s",
        )
    flags: set[Quality] = set()
    first = rest_row + 1
    if target <= pulse_t[0]:
        # The current stepped somewhere between the last rest sample and the first pulse
        # sample; that sample stands for the instant only if it is close enough to it.
        if pulse_t[0] - t0 > dt_s / 5 + 1e-12:
            flags.add(Quality.SAMPLING_TOO_COARSE)
        v_at, i_at = float(voltage_v[first]), float(current_a[first])
    else:
        j = first + int(np.searchsorted(pulse_t, target, side="left"))
        j = min(j, end_row - 1)
        lo, hi = j - 1, j
        span = float(t_s[hi] - t_s[lo])
        if span > dt_s / 5 + 1e-12:
            flags.add(Quality.SAMPLING_TOO_COARSE)
        w = 1.0 if span == 0 else (target - t_s[lo]) / span
        v_at = float(voltage_v[lo] + w * (voltage_v[hi] - voltage_v[lo]))
        i_at = float(current_a[lo] + w * (current_a[hi] - current_a[lo]))
    if abs(i_at - settled_current_a) > settle_tolerance * abs(settled_current_a):
        flags.add(Quality.CURRENT_NOT_SETTLED)
    d_i = i_at - rest_current_a
    if flags or d_i == 0:
        return Figure(float("nan"), "ohm", flags=frozenset(flags))
    return Figure(float((v_at - voltage_v[rest_row]) / d_i), "ohm")


def state_of_charge(ts: TimeSeries, steps: StepTable, capacity_ah: float) -> np.ndarray:
    """SOC (0..1) at each step start, counted from the end of the last full CV charge before it.

    NaN for steps before any CV charge has ended (no known full state).
    """
    q_as = np.cumsum(charge_increments_as(ts.t_s, ts.current_a))
    soc = np.full(len(steps), np.nan)
    full_row = -1
    for k, kind in enumerate(steps.kind):
        if full_row >= 0:
            soc[k] = 1.0 + (q_as[steps.start_row[k]] - q_as[full_row]) / 3600.0 / capacity_ah
        if kind in (StepKind.CV_CHARGE, StepKind.CCCV_CHARGE):
            full_row = int(steps.end_row[k] - 1)
    return soc


def analyze_pulses(
    ts: TimeSeries,
    steps: StepTable,
    capacity_ah: float | None = None,
    instants_s: tuple[float, ...] = DCIR_INSTANTS_S,
    settle_tolerance: float = 0.02,
) -> list[Pulse]:
    """DCIR at each instant and at the end of every pulse step that follows a rest."""
    t, v, i = ts.t_s, ts.voltage_v, ts.current_a
    soc = state_of_charge(ts, steps, capacity_ah) if capacity_ah else np.full(len(steps), np.nan)
    pulses: list[Pulse] = []
    for k, kind in enumerate(steps.kind):
        if not kind.is_pulse or k == 0 or steps.kind[k - 1] is not StepKind.REST:
            continue
        start, end = int(steps.start_row[k]), int(steps.end_row[k])
        rest_row = start - 1
        rest_start = int(steps.start_row[k - 1])
        rest_current = float(np.mean(i[max(rest_start, rest_row - 4) : rest_row + 1]))
        settled = float(np.median(i[start:end]))
        figures: dict[str, Figure] = {}
        for dt_s in instants_s:
            figures[_label(dt_s)] = dcir_at(
                t, v, i, rest_row, end, dt_s, rest_current, settled, settle_tolerance
            )
        figures["end"] = dcir_at(
            t,
            v,
            i,
            rest_row,
            end,
            float(t[end - 1] - t[rest_row]),
            rest_current,
            settled,
            settle_tolerance,
        )
        pulses.append(
            _with_split(
                Pulse(
                    start_s=float(t[rest_row]),
                    duration_s=float(t[end - 1] - t[rest_row]),
                    current_a=settled,
                    rest_voltage_v=float(v[rest_row]),
                    v_extreme_v=float(v[start:end].min() if settled < 0 else v[start:end].max()),
                    soc=float(soc[k]),
                    temperature_c=float(steps.temperature_mean_c[k]),
                    dcir_ohm=figures,
                )
            )
        )
    return pulses


def _with_split(pulse: Pulse) -> Pulse:
    """Split: R_ohm = R(0.01 s), else R(0.1 s) with a note; R_ct = R(1 s) - R_ohm;
    R_diff = R(10 s) - R(1 s)."""
    fig = pulse.dcir_ohm
    ohmic = fig.get("0.01", Figure(float("nan"), "ohm"))
    if not ohmic.ok and "0.1" in fig:
        ohmic = Figure(
            fig["0.1"].value,
            "ohm",
            flags=fig["0.1"].flags,
            note="R(0.1 s) used: sampling too coarse for R(10 ms)",
        )
    r1 = fig.get("1", Figure(float("nan"), "ohm"))
    r10 = fig.get("10", Figure(float("nan"), "ohm"))
    ct = Figure(r1.value - ohmic.value, "ohm", flags=r1.flags | ohmic.flags)
    diff = Figure(r10.value - r1.value, "ohm", flags=r10.flags | r1.flags)
    return replace(pulse, r_ohmic_ohm=ohmic, r_charge_transfer_ohm=ct, r_diffusion_ohm=diff)


def pulse_power_w(ocv_v: float, resistance_ohm: float, limit_v: float, discharge: bool) -> float:
    """Pulse power (W) at a voltage limit (grading.md section 7 row 15).

    Discharge: P = V_min (OCV - V_min) / R_dis; regen (charge): P = V_max (V_max - OCV) / R_chg.
    """
    if resistance_ohm <= 0 or resistance_ohm != resistance_ohm:
        return float("nan")
    if discharge:
        return limit_v * (ocv_v - limit_v) / resistance_ohm
    return limit_v * (limit_v - ocv_v) / resistance_ohm

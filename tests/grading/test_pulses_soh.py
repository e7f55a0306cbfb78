"""DCIR against the analytic RC step response; SoH/fade definitions against hand arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from station.grading.pulses import analyze_pulses, pulse_power_w
from station.grading.results import Figure, Quality
from station.grading.soh import Reference, health_figures
from station.grading.timeseries import TimeSeries, step_table
from tests.grading.cellmodel import RcCell

R0, R1, TAU, CAP = 0.03, 0.02, 20.0, 2.0
OCV_SLOPE = (3.7 - 3.45) / 0.4  # V per unit SOC on the model's 0.1..0.5 OCV segment


def expected_dcir(dt_s: float) -> float:
    """R(dt) of an R0 + R1||C cell from rest, plus the OCV drift of the charge moved."""
    return R0 + R1 * (1 - math.exp(-dt_s / TAU)) + OCV_SLOPE * dt_s / 3600.0 / CAP


def hppc_series(dt_s: float, current_a: float) -> TimeSeries:
    cell = RcCell(capacity_ah=CAP, r0_ohm=R0, r1_ohm=R1, tau1_s=TAU, soc=0.3)
    cell.hold(0.0, 60.0, dt_s)
    cell.hold(current_a, 30.0, dt_s)
    cell.hold(0.0, 60.0, dt_s)
    t, v, i, step = cell.arrays()
    return TimeSeries.from_arrays(t, v, i, step_count=step)


@pytest.mark.parametrize("current_a", [-2.0, 1.0])
def test_rc_step_gives_the_known_dcir_at_each_instant(current_a: float) -> None:
    ts = hppc_series(0.002, current_a)
    pulses = analyze_pulses(ts, step_table(ts))
    assert len(pulses) == 1
    pulse = pulses[0]
    for label, dt_s in (("0.01", 0.01), ("0.1", 0.1), ("1", 1.0), ("10", 10.0), ("30", 30.0)):
        figure = pulse.dcir_ohm[label]
        assert figure.ok, (label, figure)
        # Samples fall on the instants: the only error is float rounding (1e-9 ohm).
        assert figure.value == pytest.approx(expected_dcir(dt_s), abs=1e-9), label
    assert pulse.dcir_ohm["end"].value == pytest.approx(expected_dcir(30.0), abs=1e-9)
    assert pulse.r_ohmic_ohm.value == pytest.approx(expected_dcir(0.01), abs=1e-9)
    assert pulse.r_charge_transfer_ohm.value == pytest.approx(
        expected_dcir(1.0) - expected_dcir(0.01), abs=1e-9
    )


def test_off_grid_instants_are_interpolated_to_the_exact_time() -> None:
    ts = hppc_series(0.003, -2.0)  # 0.1 s and 1 s fall between samples
    pulse = analyze_pulses(ts, step_table(ts))[0]
    # Linear interpolation error of the exponential over 3 ms: R1*(h/tau)^2/8 < 1e-9 ohm.
    for label, dt_s in (("0.1", 0.1), ("1", 1.0), ("10", 10.0)):
        assert pulse.dcir_ohm[label].value == pytest.approx(expected_dcir(dt_s), abs=1e-8)


def test_coarse_sampling_is_rejected_not_guessed() -> None:
    ts = hppc_series(0.5, -2.0)  # 2 Hz logging: 0.01 s and 0.1 s are not resolvable
    pulse = analyze_pulses(ts, step_table(ts))[0]
    assert Quality.SAMPLING_TOO_COARSE in pulse.dcir_ohm["0.1"].flags
    assert math.isnan(pulse.dcir_ohm["0.1"].value)
    assert pulse.dcir_ohm["10"].value == pytest.approx(expected_dcir(10.0), abs=1e-9)


def test_unsettled_current_is_rejected() -> None:
    t = np.arange(0, 40.0, 0.01)
    i = np.where(t < 10, 0.0, -2.0 * (1 - np.exp(-(t - 10) / 0.5)))  # slow current rise
    i[(t >= 10) & (i > -0.05)] = -0.05
    v = 3.6 + 0.03 * i
    step = (t >= 10).astype(int)
    ts = TimeSeries.from_arrays(t, v, i, step_count=step)
    pulse = analyze_pulses(ts, step_table(ts))[0]
    assert Quality.CURRENT_NOT_SETTLED in pulse.dcir_ohm["0.1"].flags
    assert pulse.dcir_ohm["10"].value == pytest.approx(0.03, rel=1e-6)


def test_pulse_power_formula_and_pulse_soc() -> None:
    # P_dis = Vmin (OCV - Vmin) / R: 2.5 * (3.7 - 2.5) / 0.05 = 60 W by hand.
    assert pulse_power_w(3.7, 0.05, 2.5, discharge=True) == pytest.approx(60.0, rel=1e-12)
    assert pulse_power_w(3.7, 0.05, 4.2, discharge=False) == pytest.approx(42.0, rel=1e-12)
    cell = RcCell(capacity_ah=CAP, r0_ohm=R0, r1_ohm=R1, tau1_s=TAU, soc=0.3)
    cell.cc_until(1.0, 4.1, 1.0)
    cell.cv_hold(4.1, 0.02, 1.0)
    for _ in range(3):
        cell.hold(0.0, 60.0, 0.1)
        cell.hold(-2.0, 10.0, 0.1)
        cell.hold(0.0, 60.0, 0.1)
        cell.hold(1.0, 10.0, 0.1)
        cell.hold(0.0, 60.0, 0.1)
        cell.hold(-2.0, 0.3 * CAP * 3600 / 2.0, 1.0)
    t, v, i, step = cell.arrays()
    ts = TimeSeries.from_arrays(t, v, i, step_count=step)
    pulses = analyze_pulses(ts, step_table(ts), capacity_ah=CAP)
    socs = [p.soc for p in pulses if p.is_discharge]
    # Full at the CV end; each cycle removes 30 % plus the pulse pair's net 10 As. Boundary
    # timestamps repeat, so the trapezoid is exact here up to float rounding (1e-9).
    per_cycle = 0.3 + 10.0 / 3600.0 / CAP
    assert socs == pytest.approx([1.0, 1.0 - per_cycle, 1.0 - 2 * per_cycle], abs=1e-9)


def test_soh_and_fades_follow_99100_definitions() -> None:
    ref = Reference(
        rated_capacity_ah=50.0,
        rated_energy_wh=185.0,
        bol_capacity_ah=52.0,
        bol_resistance_ohm=0.002,
        bol_power_w=1000.0,
        bol_rte=0.95,
    )
    out = health_figures(
        ref,
        capacity=Figure(40.0, "Ah", uncertainty=0.2),
        energy=Figure(144.3, "Wh"),
        rte=Figure(0.9025, "1"),
        resistance_25c=Figure(0.003, "ohm"),
        power=Figure(800.0, "W"),
    )
    # Hand arithmetic: 40/50 = 80 %, 20 % fade, 40/52 = 76.92 %, 144.3/185 = 78 %,
    # RTE fade 1 - 0.9025/0.95 = 5 %, R_inc (3-2)/2 = 50 %, power fade 20 %.
    assert out["soh_capacity_pct"].value == pytest.approx(80.0, rel=1e-12)
    assert out["soh_capacity_pct"].uncertainty == pytest.approx(0.4, rel=1e-12)
    assert out["capacity_fade_pct"].value == pytest.approx(20.0, rel=1e-12)
    assert out["soh_capacity_bol_pct"].value == pytest.approx(100 * 40 / 52, rel=1e-12)
    assert out["soh_energy_pct"].value == pytest.approx(78.0, rel=1e-12)
    assert out["rte_fade_pct"].value == pytest.approx(5.0, rel=1e-9)
    assert out["resistance_increase_pct"].value == pytest.approx(50.0, rel=1e-9)
    assert out["power_fade_pct"].value == pytest.approx(20.0, rel=1e-12)
    missing = health_figures(Reference(rated_capacity_ah=50.0), Figure(40.0, "Ah"))
    assert Quality.MISSING_REFERENCE in missing["soh_capacity_bol_pct"].flags

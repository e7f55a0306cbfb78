"""Cell metrics from a simulated grading run, and grading them end to end."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from station.grading.metrics import CellInputs, MeasurementConditions, cell_metrics
from station.grading.profiles import grade_cell, load_profile
from station.grading.results import Figure, Quality
from station.grading.soh import Reference
from station.grading.timeseries import TimeSeries
from tests.grading.cellmodel import RcCell

R0, R1, TAU = 0.03, 0.02, 20.0


@functools.lru_cache(maxsize=4)
def grading_run(temperature_c: float) -> tuple[TimeSeries, float]:
    """Discharge to cut-off, rest, charge CC-CV, rest, one 10 s pulse, C/3 reference
    discharge, 1 h rest."""
    cell = RcCell(capacity_ah=2.0, r0_ohm=R0, r1_ohm=R1, tau1_s=TAU, soc=0.4)
    cell.cc_until(-2.0 / 3, 3.0, 5.0)
    cell.hold(0.0, 1800.0, 10.0)
    cell.cc_until(1.0, 4.1, 5.0)
    cell.cv_hold(4.1, 0.05, 5.0)
    cell.hold(0.0, 1800.0, 10.0)
    cell.hold(-2.0, 10.0, 0.1)
    cell.hold(0.0, 600.0, 10.0)
    start = len(cell.t)
    cell.cc_until(-2.0 / 3, 3.0, 5.0)
    end = len(cell.t)
    cell.hold(0.0, 3600.0, 10.0)
    t, v, i, step = cell.arrays()
    # Independent reference: the model's zero-order-hold charge of the reference discharge.
    exact = float(-np.sum(i[start : end - 1] * np.diff(t[start:end]))) / 3600.0
    temps = np.full(len(t), temperature_c)
    return TimeSeries.from_arrays(t, v, i, temperature_c=temps, step_count=step), exact


REFERENCE = Reference(rated_capacity_ah=2.0, rated_energy_wh=7.3, bol_resistance_ohm=0.035)


def test_metrics_of_a_grading_run_at_25c() -> None:
    ts, exact = grading_run(25.0)
    cell = CellInputs("cell-1", "nmc", REFERENCE, {"damaged": False})
    metrics = cell_metrics(cell, ts, MeasurementConditions(cv_cutoff_a=0.05))
    cap = metrics.figures["capacity_ah"]
    # Trapezoid vs zero-order hold over a 5 s-sampled constant current: equal except the
    # first interval (current step), 5 s * 0.67 A / 2 / 3600 < 5e-4 Ah.
    assert cap.value == pytest.approx(exact, abs=5e-4)
    assert cap.ok and cap.uncertainty == pytest.approx(cap.value * 1e-3)
    assert metrics.figures["soh_capacity_pct"].value == pytest.approx(cap.value / 2.0 * 100)
    # DCIR(10 s) of the model from rest: R0 + R1 (1 - e^-0.5) plus the OCV drift of 20 As on
    # the model's 0.9..1.0 SOC segment (slope 1.5 V per unit SOC); samples fall on 10 s.
    drift = 1.5 * 10.0 / 3600.0 / 2.0
    expected_r10 = R0 + R1 * (1 - math.exp(-10 / TAU)) + drift
    assert metrics.figures["dcir_10s_25c_ohm"].value == pytest.approx(expected_r10, abs=1e-9)
    # One pulse of 2 A: sigma = sqrt(2) * 0.1 mV / 2 A.
    assert metrics.figures["dcir_10s_25c_ohm"].uncertainty == pytest.approx(math.sqrt(2) * 5e-5)
    r_inc = metrics.figures["resistance_increase_pct"].value
    assert r_inc == pytest.approx((metrics.figures["dcir_10s_25c_ohm"].value / 0.035 - 1) * 100)
    assert 0.85 < metrics.figures["rte"].value < 1.0
    ocv = metrics.figures["ocv_v"]
    assert ocv.ok and ocv.value == pytest.approx(metrics.value("ocv_v"))


def test_out_of_window_temperature_flags_and_grades_retest() -> None:
    ts, _ = grading_run(35.0)
    # Sodium-ion ships without an activation energy: 10 K off 25 C must be refused.
    cell = CellInputs(
        "cell-2",
        "sodium-ion",
        REFERENCE,
        {"damaged": False, "calendar_expired": False, "traceable": True},
    )
    extra = {"k_mv_per_day": Figure(0.05, "mV/day", 0.005), "hold_days": Figure(10.0, "day")}
    metrics = cell_metrics(cell, ts, MeasurementConditions(cv_cutoff_a=0.05), extra)
    assert Quality.TEMPERATURE_OUT_OF_WINDOW in metrics.figures["rte"].flags
    refused = metrics.figures["dcir_10s_25c_ohm"]
    assert math.isnan(refused.value) and Quality.NOT_TEMPERATURE_COMPENSATED in refused.flags
    grade = grade_cell(metrics, load_profile("second-life"))
    # A bad measurement is never taken for a bad cell: the resistance gate asks for a re-test.
    assert grade.outcome == "RETEST"
    compensated = cell_metrics(
        cell, ts, MeasurementConditions(cv_cutoff_a=0.05, activation_energy_j_per_mol=30e3), extra
    )
    assert compensated.figures["dcir_10s_25c_ohm"].ok


def test_cv_cutoff_not_reached_is_flagged() -> None:
    ts, _ = grading_run(25.0)
    cell = CellInputs("cell-3", "nmc", REFERENCE)
    metrics = cell_metrics(cell, ts, MeasurementConditions(cv_cutoff_a=0.01))
    assert Quality.CV_CUTOFF_NOT_REACHED in metrics.figures["capacity_ah"].flags

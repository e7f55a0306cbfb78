"""Time-series core against analytic cases and an independent cell model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.grading.timeseries import (
    StepKind,
    TimeSeries,
    TimestampError,
    check_timestamps,
    cycle_summary,
    step_table,
    total_charge_ah,
)
from tests.grading.cellmodel import RcCell


def test_constant_current_gives_q_equals_i_t_on_non_uniform_timestamps() -> None:
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.01, 5.0, 5000))
    current = np.full_like(t, -1.7)
    expected = -1.7 * (t[-1] - t[0]) / 3600.0
    # Trapezoid is exact for constant current: only float rounding (1e-12 relative).
    assert total_charge_ah(t, current) == pytest.approx(expected, rel=1e-12)


def test_linear_current_ramp_is_integrated_exactly() -> None:
    t = np.sort(np.random.default_rng(2).uniform(0, 1000, 300))
    current = 0.5 + 0.002 * t
    exact = (0.5 * (t[-1] - t[0]) + 0.001 * (t[-1] ** 2 - t[0] ** 2)) / 3600.0
    assert total_charge_ah(t, current) == pytest.approx(exact, rel=1e-12)


def cccv_cycle(cell: RcCell, cycles: int = 2) -> RcCell:
    cell.hold(0.0, 60, 1.0)
    for _ in range(cycles):
        cell.cc_until(1.0, 4.1, 1.0)
        cell.cv_hold(4.1, 0.05, 1.0)
        cell.hold(0.0, 600, 1.0)
        cell.cc_until(-1.0, 3.2, 1.0)
        cell.hold(0.0, 600, 1.0)
    return cell


def model_charge_ah(t: np.ndarray, i: np.ndarray) -> float:
    """Exact charge of the model's zero-order-hold current (left Riemann sum)."""
    return float(np.sum(i[:-1] * np.diff(t))) / 3600.0


def test_cccv_cycles_with_detected_steps_match_the_model() -> None:
    cell = cccv_cycle(RcCell(soc=0.3))
    t, v, i, _ = cell.arrays()
    ts = TimeSeries.from_arrays(t, v, i)
    steps = step_table(ts)
    kinds = [k for k in steps.kind if k is not StepKind.REST]
    assert kinds == [StepKind.CC_CHARGE, StepKind.CV_CHARGE, StepKind.CC_DISCHARGE] * 2
    cycles = cycle_summary(ts)
    assert list(cycles.cycle) == [1, 2]
    # The model's exact charge uses zero-order hold; the trapezoid differs by at most half a
    # sample of current change per step edge: 1 s * 1 A / 3600 per edge -> 2e-3 Ah absolute.
    first_discharge = int(np.flatnonzero(i < 0)[0])
    exact_ch1 = model_charge_ah(t[: first_discharge + 1], np.maximum(i[: first_discharge + 1], 0))
    assert cycles.charge_ah[0] == pytest.approx(exact_ch1, abs=2e-3)
    second_charge = int(np.flatnonzero((i[1:] > 0) & (i[:-1] <= 0))[1]) + 1
    exact_dis2 = -model_charge_ah(t[second_charge:], np.minimum(i[second_charge:], 0))
    assert cycles.discharge_ah[1] == pytest.approx(exact_dis2, abs=2e-3)
    assert cycles.charge_cv_ah[0] > 0
    assert cycles.charge_cc_ah[0] + cycles.charge_cv_ah[0] == pytest.approx(
        cycles.charge_ah[0], rel=1e-12
    )
    assert 0.95 < cycles.coulombic_efficiency[1] <= 1.0 + 1e-3
    # RTE below 1 by the resistive losses; an R0=30 mOhm, R1=20 mOhm cell at 1 A loses ~2.5 %.
    assert 0.9 < cycles.energy_efficiency[1] < 0.995


def test_cycler_step_indices_and_detection_agree() -> None:
    cell = cccv_cycle(RcCell(soc=0.3), cycles=1)
    t, v, i, step = cell.arrays()
    detected = cycle_summary(TimeSeries.from_arrays(t, v, i))
    indexed = cycle_summary(TimeSeries.from_arrays(t, v, i, step_count=step))
    # Same rows, same trapezoid: equal to float rounding (1e-9 relative).
    assert indexed.charge_ah.sum() == pytest.approx(detected.charge_ah.sum(), rel=1e-9)
    assert indexed.discharge_wh.sum() == pytest.approx(detected.discharge_wh.sum(), rel=1e-9)


def test_backwards_timestamps_are_reported_with_their_rows() -> None:
    t = np.array([0.0, 1.0, 2.0, 1.5, 3.0, 2.9])
    with pytest.raises(TimestampError) as info:
        TimeSeries.from_arrays(t, np.full(6, 3.7), np.ones(6))
    assert list(info.value.rows) == [3, 5]
    assert "row 3" in str(info.value)


def test_non_finite_value_names_column_and_row() -> None:
    v = np.full(4, 3.7)
    v[2] = np.nan
    with pytest.raises(ValueError, match="voltage_v.*row 2"):
        TimeSeries.from_arrays(np.arange(4.0), v, np.ones(4))


def test_repeated_boundary_timestamp_counts_nothing_twice() -> None:
    # rest 0..10 s, charge 2 A 10..40 s, discharge -1 A 40..100 s; each boundary sample repeated.
    t = np.concatenate([np.arange(0, 11.0), np.arange(10, 41.0), np.arange(40, 101.0)])
    i = np.concatenate([np.zeros(11), np.full(31, 2.0), np.full(61, -1.0)])
    step = np.concatenate([np.zeros(11), np.ones(31), np.full(61, 2)]).astype(int)
    v = 3.6 + 0.001 * np.arange(len(t))
    report = check_timestamps(t)
    assert report.ok and list(report.repeated_rows) == [11, 42]
    for ts in (
        TimeSeries.from_arrays(t, v, i, step_count=step),
        TimeSeries.from_arrays(t, v, i),
    ):
        steps = step_table(ts)
        # 30 s after a rest is short enough to be a pulse; direction is what matters here.
        assert steps.kind[0] is StepKind.REST
        assert steps.kind[1].is_charge and steps.kind[2].is_discharge
        # Exact: 2 A * 30 s and 1 A * 60 s (1e-12 relative).
        assert steps.charge_ah[1] == pytest.approx(60 / 3600, rel=1e-12)
        assert steps.discharge_ah[2] == pytest.approx(60 / 3600, rel=1e-12)
        assert steps.discharge_ah[1] == 0 and steps.charge_ah[2] == 0


series = st.integers(min_value=3, max_value=200).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0.0, 10.0), min_size=n, max_size=n),
        st.lists(st.floats(2.5, 4.2), min_size=n, max_size=n),
        st.lists(st.floats(-5.0, 5.0), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(series)
def test_capacities_never_negative_and_energy_within_voltage_range(data: tuple) -> None:
    dts, volts, amps = (np.array(x) for x in data)
    t = np.cumsum(dts)
    ts = TimeSeries.from_arrays(t, volts, amps)
    steps = step_table(ts)
    for name in ("charge_ah", "discharge_ah", "charge_cc_ah", "charge_cv_ah", "charge_wh"):
        assert np.all(getattr(steps, name) >= -1e-12), name
    assert np.all(steps.discharge_cc_ah >= -1e-12) and np.all(steps.discharge_wh >= -1e-12)
    # Energy moved in either direction is bounded by the voltage range times the charge moved
    # through the cell (sum of |I| trapezoids), with a 1e-9 Wh float allowance.
    throughput = float(np.sum(0.5 * (np.abs(amps[1:]) + np.abs(amps[:-1])) * np.diff(t))) / 3600
    total_wh = steps.charge_wh.sum() + steps.discharge_wh.sum()
    assert total_wh <= volts.max() * throughput + 1e-9
    same_sign = amps >= 0
    if same_sign.all():
        assert steps.charge_wh.sum() >= volts.min() * steps.charge_ah.sum() - 1e-9


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.0, 5.0), min_size=3, max_size=50),
    st.integers(min_value=1, max_value=48),
)
def test_backwards_step_is_always_reported(dts: list[float], at: int) -> None:
    t = np.cumsum(dts)
    at = min(at, len(t) - 1)
    t[at] = t[at - 1] - 0.5
    assert at in check_timestamps(t).backwards_rows


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-3, 3), st.integers(2, 30)), min_size=1, max_size=8))
def test_repeated_boundary_timestamps_give_exact_step_charges(steps: list) -> None:
    ts_list, is_list, ks = [], [], []
    t0 = 0.0
    for k, (amps, n) in enumerate(steps):
        ts_list.append(t0 + np.arange(n, dtype=float))
        is_list.append(np.full(n, amps))
        ks.append(np.full(n, k))
        t0 += n - 1  # next step's first sample repeats this step's last timestamp
    t, i, step = np.concatenate(ts_list), np.concatenate(is_list), np.concatenate(ks)
    table = step_table(TimeSeries.from_arrays(t, np.full(len(t), 3.7), i, step_count=step))
    for k, (amps, n) in enumerate(steps):
        net = table.charge_ah[k] - table.discharge_ah[k]
        assert net == pytest.approx(amps * (n - 1) / 3600, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.0, 5.0), min_size=3, max_size=50),
    st.lists(st.integers(min_value=1, max_value=49), min_size=1, max_size=4),
)
def test_backwards_rows_are_refused_by_name_and_repeats_are_not(
    dts: list[float], backs: list[int]
) -> None:
    t = np.cumsum(dts)
    # Zero steps in dts are repeated timestamps: legal, never reported as backwards.
    assert check_timestamps(t).ok
    TimeSeries.from_arrays(t, np.full(len(t), 3.7), np.ones(len(t)))
    rows = sorted({min(b, len(t) - 1) for b in backs})
    for row in rows:
        t[row] = t[row - 1] - 0.25
    with pytest.raises(TimestampError) as info:
        TimeSeries.from_arrays(t, np.full(len(t), 3.7), np.ones(len(t)))
    assert set(rows) <= {int(r) for r in info.value.rows}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([-2.0, -0.5, 0.0, 0.5, 2.0]), st.integers(2, 30)),
        min_size=1,
        max_size=8,
    )
)
def test_repeated_boundary_timestamps_without_cycler_indices(steps: list) -> None:
    """Detected steps (no step column): the repeated boundary sample adds a zero-length
    interval, so the totals are exactly sum(I * duration) of the constant-current steps."""
    ts_list, is_list = [], []
    t0 = 0.0
    for amps, n in steps:
        ts_list.append(t0 + np.arange(n, dtype=float))
        is_list.append(np.full(n, amps))
        t0 += n - 1
    t, i = np.concatenate(ts_list), np.concatenate(is_list)
    table = step_table(TimeSeries.from_arrays(t, np.full(len(t), 3.7), i))
    charge = sum(a * (n - 1) for a, n in steps if a > 0) / 3600
    discharge = sum(-a * (n - 1) for a, n in steps if a < 0) / 3600
    assert table.charge_ah.sum() == pytest.approx(charge, abs=1e-12)
    assert table.discharge_ah.sum() == pytest.approx(discharge, abs=1e-12)
    assert np.all(table.charge_ah >= 0) and np.all(table.discharge_ah >= 0)

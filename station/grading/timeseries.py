"""Cycler time series: validation, trapezoidal charge/energy, step segmentation, step/cycle tables.

Conventions (``../shared/reference/grading.md`` section 2): current positive when charging, t in
seconds, capacities reported positive, trapezoid rule on the raw non-uniform timestamps.

Interval attribution: the interval between rows k-1 and k belongs to the step of row k. A cycler
that repeats the boundary timestamp (last sample of one step and first of the next at the same t)
therefore adds a zero-length interval and nothing is counted twice; a cycler that does not
repeat it has the straddling interval counted in the later step, as its step capacity does.

Everything is vectorised: per-row work is a fixed number of numpy passes, and per-step and
per-cycle sums use ``np.add.reduceat`` over the step start rows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class TimestampError(ValueError):
    """The time column goes backwards; ``rows`` are the 0-based data rows that are earlier than
    the row before them."""

    def __init__(self, rows: IntArray, t_s: FloatArray) -> None:
        self.rows = rows
        shown = ", ".join(
            f"row {int(r)} (t={t_s[r]:.6g} s after {t_s[r - 1]:.6g} s)" for r in rows[:5]
        )
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        super().__init__(f"timestamps go backwards at {len(rows)} row(s): {shown}{more}")


class StepKind(enum.Enum):
    """What a step did to the cell."""

    REST = "rest"
    CC_CHARGE = "cc_charge"
    CV_CHARGE = "cv_charge"
    CCCV_CHARGE = "cccv_charge"
    CC_DISCHARGE = "cc_discharge"
    CV_DISCHARGE = "cv_discharge"
    CCCV_DISCHARGE = "cccv_discharge"
    PULSE_CHARGE = "pulse_charge"
    PULSE_DISCHARGE = "pulse_discharge"

    @property
    def is_pulse(self) -> bool:
        return self in (StepKind.PULSE_CHARGE, StepKind.PULSE_DISCHARGE)

    @property
    def is_charge(self) -> bool:
        return self.value.endswith("_charge")

    @property
    def is_discharge(self) -> bool:
        return self.value.endswith("_discharge")


@dataclass(frozen=True)
class TimestampReport:
    """What the time column looks like: backwards rows, repeated rows, sample intervals (s)."""

    backwards_rows: IntArray
    repeated_rows: IntArray
    median_interval_s: float
    max_interval_s: float

    @property
    def ok(self) -> bool:
        return len(self.backwards_rows) == 0


def check_timestamps(t_s: FloatArray) -> TimestampReport:
    """Report rows whose timestamp is earlier (backwards) or equal (repeated) to the row before."""
    dt = np.diff(t_s)
    positive = dt[dt > 0]
    return TimestampReport(
        backwards_rows=np.flatnonzero(dt < 0).astype(np.int64) + 1,
        repeated_rows=np.flatnonzero(dt == 0).astype(np.int64) + 1,
        median_interval_s=float(np.median(positive)) if len(positive) else float("nan"),
        max_interval_s=float(positive.max()) if len(positive) else float("nan"),
    )


@dataclass(frozen=True)
class TimeSeries:
    """A validated cycler time series of one cell (all arrays of equal length, rows in time order).

    ``step_count`` and ``cycle_count`` are the cycler's indices when it gave them (any integers
    that change at a step/cycle boundary); ``temperature_c`` is the cell temperature.
    """

    t_s: FloatArray
    voltage_v: FloatArray
    current_a: FloatArray
    temperature_c: FloatArray | None = None
    step_count: IntArray | None = None
    cycle_count: IntArray | None = None

    @classmethod
    def from_arrays(
        cls,
        t_s: object,
        voltage_v: object,
        current_a: object,
        temperature_c: object | None = None,
        step_count: object | None = None,
        cycle_count: object | None = None,
    ) -> TimeSeries:
        """Build and validate: equal lengths, finite values, at least 2 rows, time never backwards.

        Raises ``ValueError`` naming the column and row, or :class:`TimestampError`.
        """
        columns: dict[str, FloatArray] = {}
        for name, raw in (("t_s", t_s), ("voltage_v", voltage_v), ("current_a", current_a)):
            columns[name] = np.ascontiguousarray(raw, dtype=np.float64)
        n = len(columns["t_s"])
        if n < 2:
            raise ValueError(f"time series needs at least 2 rows, got {n}")
        temp = None if temperature_c is None else np.ascontiguousarray(temperature_c, np.float64)
        step = None if step_count is None else np.ascontiguousarray(step_count, dtype=np.int64)
        cycle = None if cycle_count is None else np.ascontiguousarray(cycle_count, dtype=np.int64)
        for name, arr in (
            *columns.items(),
            ("temperature_c", temp),
            ("step_count", step),
            ("cycle_count", cycle),
        ):
            if arr is None:
                continue
            if arr.ndim != 1 or len(arr) != n:
                raise ValueError(f"column {name} has shape {arr.shape}, expected ({n},)")
            if arr.dtype == np.float64 and name != "temperature_c":
                bad = np.flatnonzero(~np.isfinite(arr))
                if len(bad):
                    raise ValueError(f"column {name} is not finite at row {int(bad[0])}")
        report = check_timestamps(columns["t_s"])
        if not report.ok:
            raise TimestampError(report.backwards_rows, columns["t_s"])
        return cls(columns["t_s"], columns["voltage_v"], columns["current_a"], temp, step, cycle)

    def __len__(self) -> int:
        return len(self.t_s)


def charge_increments_as(t_s: FloatArray, current_a: FloatArray) -> FloatArray:
    """Per-row trapezoid charge increments in A*s; element 0 is 0, element k covers (k-1, k]."""
    inc = np.empty_like(current_a)
    inc[0] = 0.0
    np.multiply(current_a[1:] + current_a[:-1], np.diff(t_s), out=inc[1:])
    inc[1:] *= 0.5
    return inc


def total_charge_ah(t_s: FloatArray, current_a: FloatArray) -> float:
    """Net charge (Ah, positive = into the cell) by the trapezoid rule on raw timestamps."""
    return float(np.sum(charge_increments_as(t_s, current_a))) / 3600.0


def total_energy_wh(t_s: FloatArray, voltage_v: FloatArray, current_a: FloatArray) -> float:
    """Net energy (Wh, positive = into the cell) by the trapezoid rule on V*I."""
    return float(np.sum(charge_increments_as(t_s, voltage_v * current_a))) / 3600.0


@dataclass(frozen=True)
class SegmentationOptions:
    """Thresholds for step detection when the cycler gives no step indices.

    ``rest_current_a``: |I| below this is rest (default 1 % of the largest |I|).
    ``jump_fraction``: a sample-to-sample current change above this fraction of the largest |I|
    starts a new step (a CV decay is gradual, a set-point change is not).
    ``cv_voltage_tol_v`` / ``cv_current_fraction``: a sample is in the CV part of a charge when V
    is within the tolerance of the step's extreme voltage and |I| has fallen below the fraction
    of the step's largest |I|.
    ``pulse_max_s``: a charge/discharge step shorter than this is a pulse.
    """

    rest_current_a: float | None = None
    jump_fraction: float = 0.1
    cv_voltage_tol_v: float = 0.005
    cv_current_fraction: float = 0.98
    pulse_max_s: float = 120.0


@dataclass(frozen=True)
class StepTable:
    """One entry per step (arrays of equal length). Charges/energies in Ah/Wh, positive.

    ``start_row``/``end_row`` are the step's first row and one past its last row;
    ``mean_current_a`` is the time-weighted mean (net charge / duration). ``t_start_s`` is the
    time of the row before the step (the interval into the step belongs to it).
    """

    kind: tuple[StepKind, ...]
    cycle: IntArray
    start_row: IntArray
    end_row: IntArray
    t_start_s: FloatArray
    t_end_s: FloatArray
    mean_current_a: FloatArray
    charge_ah: FloatArray
    discharge_ah: FloatArray
    charge_cc_ah: FloatArray
    charge_cv_ah: FloatArray
    discharge_cc_ah: FloatArray
    discharge_cv_ah: FloatArray
    charge_wh: FloatArray
    discharge_wh: FloatArray
    v_start_v: FloatArray
    v_end_v: FloatArray
    i_end_a: FloatArray
    temperature_mean_c: FloatArray
    temperature_end_c: FloatArray

    def __len__(self) -> int:
        return len(self.start_row)

    @property
    def duration_s(self) -> FloatArray:
        return self.t_end_s - self.t_start_s


@dataclass(frozen=True)
class CycleTable:
    """One entry per cycle: charge and discharge Ah (with CC/CV parts), Wh, efficiencies, T.

    ``coulombic_efficiency`` = discharge_ah / charge_ah and ``energy_efficiency`` =
    discharge_wh / charge_wh of the same cycle (NaN when the cycle has no charge).
    """

    cycle: IntArray
    t_start_s: FloatArray
    t_end_s: FloatArray
    charge_ah: FloatArray
    discharge_ah: FloatArray
    charge_cc_ah: FloatArray
    charge_cv_ah: FloatArray
    discharge_cc_ah: FloatArray
    discharge_cv_ah: FloatArray
    charge_wh: FloatArray
    discharge_wh: FloatArray
    coulombic_efficiency: FloatArray
    energy_efficiency: FloatArray
    temperature_mean_c: FloatArray
    temperature_end_c: FloatArray

    def __len__(self) -> int:
        return len(self.cycle)

    def rows(self) -> list[dict[str, float | int | None]]:
        """Plain dicts (NaN as None), one per cycle, for JSON and printing."""
        names = [n for n in self.__dataclass_fields__ if n != "cycle"]
        out: list[dict[str, float | int | None]] = []
        for i in range(len(self)):
            row: dict[str, float | int | None] = {"cycle": int(self.cycle[i])}
            for name in names:
                value = float(getattr(self, name)[i])
                row[name] = None if value != value else value
            out.append(row)
        return out


def _run_starts(codes: IntArray) -> IntArray:
    """First row of each run of equal values."""
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return np.concatenate(([0], change)).astype(np.int64)


def _rest_threshold(i: FloatArray, opts: SegmentationOptions) -> float:
    if opts.rest_current_a is not None:
        return opts.rest_current_a
    return 0.01 * max(float(i.max()), -float(i.min()), 0.0)


def _cv_start(
    v: FloatArray, i: FloatArray, start: int, end: int, charge: bool, opts: SegmentationOptions
) -> int:
    """First row of the constant-voltage part of one step, or ``end`` when there is none.

    It is the first row at the step's extreme voltage (within ``cv_voltage_tol_v``) whose |I|
    has fallen below ``cv_current_fraction`` of the step's peak |I|.
    """
    # A CV phase ends with the current well below where the step began: a step whose last
    # current is still at its opening level has none, and is not scanned.
    opening = max(abs(float(i[start])), abs(float(i[min(start + 1, end - 1)])))
    if abs(float(i[end - 1])) >= opts.cv_current_fraction * opening:
        return end
    seg_v = v[start:end]
    seg_i = np.abs(i[start:end])
    if charge:
        at_extreme = seg_v >= seg_v.max() - opts.cv_voltage_tol_v
    else:
        at_extreme = seg_v <= seg_v.min() + opts.cv_voltage_tol_v
    candidate = at_extreme & (seg_i < opts.cv_current_fraction * seg_i.max())
    first = int(np.argmax(candidate))
    return start + first if candidate[first] else end


def segment(ts: TimeSeries, opts: SegmentationOptions | None = None) -> tuple[IntArray, IntArray]:
    """Step start rows and, per step, the first row of its CV part (= its end row when none;
    -1 when the cycler gave the steps and the CV part is still to be located).

    Uses the cycler's step counter when present (a CC-CV step stays one step with a CV part),
    else detects steps from current sign changes and current jumps, and splits each CC-CV
    segment into a CC step and a CV step.
    """
    opts = opts or SegmentationOptions()
    n = len(ts)
    v, i = ts.voltage_v, ts.current_a
    rest_a = _rest_threshold(i, opts)
    if ts.step_count is not None:
        starts = _run_starts(ts.step_count)
        if ts.cycle_count is not None:
            starts = np.union1d(starts, _run_starts(ts.cycle_count)).astype(np.int64)
        # CV parts are found by step_table once it knows each step's mean current.
        return starts, np.full(len(starts), -1, dtype=np.int64)
    # int8 direction codes (+1 charge, -1 discharge, 0 rest) keep these passes narrow.
    sign = (i > rest_a).view(np.int8) - (i < -rest_a).view(np.int8)
    jump = opts.jump_fraction * (max(float(i.max()), -float(i.min())) or 1.0)
    step_i = np.diff(i)
    boundary = sign[1:] != sign[:-1]
    boundary |= step_i > jump
    boundary |= step_i < -jump
    if ts.cycle_count is not None:
        boundary |= ts.cycle_count[1:] != ts.cycle_count[:-1]
    raw = np.concatenate(([0], np.flatnonzero(boundary) + 1)).astype(np.int64)
    raw_ends = np.append(raw[1:], n)
    starts_out: list[int] = []
    cv_out: list[int] = []
    for s, e in zip(raw.tolist(), raw_ends.tolist(), strict=True):
        direction = int(sign[s])
        c = _cv_start(v, i, s, e, direction > 0, opts) if direction != 0 and e - s > 1 else e
        if s < c < e:
            starts_out += [s, c]
            cv_out += [c, c]  # the CC step has no CV part; the CV step is CV from its start
        else:
            starts_out.append(s)
            cv_out.append(c)
    return np.array(starts_out, dtype=np.int64), np.array(cv_out, dtype=np.int64)


def _classify(
    level_a: FloatArray,
    rest_a: float,
    cv_rows: IntArray,
    rows: IntArray,
    duration: FloatArray,
    opts: SegmentationOptions,
) -> tuple[StepKind, ...]:
    kinds: list[StepKind] = []
    previous_rest = True
    for level, cv, count, dur in zip(
        level_a.tolist(), cv_rows.tolist(), rows.tolist(), duration.tolist(), strict=True
    ):
        if abs(level) <= rest_a:
            kinds.append(StepKind.REST)
            previous_rest = True
            continue
        charge = level > 0
        if dur < opts.pulse_max_s and previous_rest:
            kinds.append(StepKind.PULSE_CHARGE if charge else StepKind.PULSE_DISCHARGE)
        elif 0 < cv < count:
            kinds.append(StepKind.CCCV_CHARGE if charge else StepKind.CCCV_DISCHARGE)
        elif cv == 0:
            kinds.append(StepKind.CV_CHARGE if charge else StepKind.CV_DISCHARGE)
        else:
            kinds.append(StepKind.CC_CHARGE if charge else StepKind.CC_DISCHARGE)
        previous_rest = False
    return tuple(kinds)


def _detect_cycles(kinds: tuple[StepKind, ...]) -> IntArray:
    """Cycle numbers (from 1): a new cycle starts at a non-pulse charge that follows a discharge."""
    cycle = np.empty(len(kinds), dtype=np.int64)
    current = 1
    seen_discharge = False
    for k, kind in enumerate(kinds):
        if kind.is_charge and not kind.is_pulse and seen_discharge:
            current += 1
            seen_discharge = False
        elif kind.is_discharge and not kind.is_pulse:
            seen_discharge = True
        cycle[k] = current
    return cycle


BLOCK_ROWS = 1 << 15  # rows per block: the per-block temporaries stay in the CPU cache


def _step_sums(t: FloatArray, v: FloatArray, i: FloatArray, starts: IntArray) -> FloatArray:
    """Per step: sum of 2*dq, |2*dq|, 2*dE, |2*dE| over its intervals (A*s, W*s), shape (4, S).

    Interval k joins rows k and k+1 and belongs to the step of row k+1. The series is walked in
    blocks so that every temporary is cache-sized; within a block one ``np.add.reduceat``
    sums all four quantities per step.
    """
    n = len(t)
    intervals = n - 1
    out = np.zeros((4, len(starts)))
    buf = np.empty((4, min(BLOCK_ROWS, intervals)))
    dt = np.empty(buf.shape[1])
    power = np.empty(buf.shape[1] + 1)
    first_interval = starts - 1  # of each step (step 0 also owns interval 0 on)
    for a in range(0, intervals, BLOCK_ROWS):
        b = min(a + BLOCK_ROWS, intervals)
        width = b - a
        d, q, qa, e, ea = dt[:width], buf[0, :width], buf[1, :width], buf[2, :width], buf[3, :width]
        np.subtract(t[a + 1 : b + 1], t[a:b], out=d)
        np.add(i[a + 1 : b + 1], i[a:b], out=q)
        q *= d
        np.abs(q, out=qa)
        p = power[: width + 1]
        np.multiply(v[a : b + 1], i[a : b + 1], out=p)
        np.add(p[1:], p[:-1], out=e)
        e *= d
        np.abs(e, out=ea)
        step_a = int(np.searchsorted(starts, a + 1, side="right")) - 1
        step_b = int(np.searchsorted(starts, b, side="right")) - 1  # owner of interval b-1
        local = first_interval[step_a + 1 : step_b + 1] - a
        index = np.concatenate(([0], local))
        out[:, step_a : step_b + 1] += np.add.reduceat(buf[:, :width], index, axis=1)
    return out


def step_table(ts: TimeSeries, opts: SegmentationOptions | None = None) -> StepTable:
    """Segment the series and sum charge, energy, CC/CV parts and temperature per step.

    Per row this is a fixed handful of numpy passes (interval widths, trapezoid charge and
    energy increments and their magnitudes); the split into charge and discharge uses
    charge = (sum|dq| + sum dq) / 2 so that no per-row masks are needed.
    """
    opts = opts or SegmentationOptions()
    starts, cv_start = segment(ts, opts)
    n = len(ts)
    ends = np.append(starts[1:], n)
    t, v, i = ts.t_s, ts.voltage_v, ts.current_a
    q_net, q_abs, e_net, e_abs = _step_sums(t, v, i, starts) * 0.5
    charge = (q_abs + q_net) / 7200.0
    discharge = (q_abs - q_net) / 7200.0
    t_start = t[np.maximum(starts - 1, 0)]
    duration = t[ends - 1] - t_start
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(duration > 0, q_net / duration, i[starts])
    rest_a = _rest_threshold(i, opts)
    if ts.step_count is not None:
        cv_start = ends.copy()
        for k in np.flatnonzero((np.abs(level) > rest_a) & (ends - starts > 1)).tolist():
            cv_start[k] = _cv_start(v, i, int(starts[k]), int(ends[k]), level[k] > 0, opts)
    cv_charge = np.zeros(len(starts))
    cv_discharge = np.zeros(len(starts))
    for k in np.flatnonzero(cv_start < ends).tolist():
        s, c, e = int(starts[k]), int(cv_start[k]), int(ends[k])
        if c == s:
            part = q_net[k] / 3600.0
        else:
            part = float(np.dot(i[c:e] + i[c - 1 : e - 1], np.diff(t[c - 1 : e]))) / 7200.0
        if level[k] > 0:
            cv_charge[k] = max(part, 0.0)
        else:
            cv_discharge[k] = max(-part, 0.0)
    counts = (ends - starts).astype(np.float64)
    if ts.temperature_c is not None:
        temp_mean = np.add.reduceat(ts.temperature_c, starts) / counts
        temp_end = ts.temperature_c[ends - 1]
    else:
        temp_mean = np.full(len(starts), np.nan)
        temp_end = np.full(len(starts), np.nan)
    kinds = _classify(level, rest_a, cv_start - starts, ends - starts, duration, opts)
    cycle = ts.cycle_count[starts] if ts.cycle_count is not None else _detect_cycles(kinds)
    return StepTable(
        kind=kinds,
        cycle=cycle,
        start_row=starts,
        end_row=ends,
        t_start_s=t_start,
        t_end_s=t[ends - 1],
        mean_current_a=level,
        charge_ah=charge,
        discharge_ah=discharge,
        charge_cc_ah=np.maximum(charge - cv_charge, 0.0),
        charge_cv_ah=cv_charge,
        discharge_cc_ah=np.maximum(discharge - cv_discharge, 0.0),
        discharge_cv_ah=cv_discharge,
        charge_wh=(e_abs + e_net) / 7200.0,
        discharge_wh=(e_abs - e_net) / 7200.0,
        v_start_v=v[starts],
        v_end_v=v[ends - 1],
        i_end_a=i[ends - 1],
        temperature_mean_c=temp_mean,
        temperature_end_c=temp_end,
    )


def cycle_table(steps: StepTable) -> CycleTable:
    """Sum a step table per cycle (steps of one cycle are contiguous)."""
    if len(steps) == 0:
        raise ValueError("no steps to summarise")
    starts = _run_starts(steps.cycle)
    ends = np.append(starts[1:], len(steps))

    def add(values: FloatArray) -> FloatArray:
        return np.add.reduceat(values, starts)

    charge = add(steps.charge_ah)
    discharge = add(steps.discharge_ah)
    charge_wh = add(steps.charge_wh)
    discharge_wh = add(steps.discharge_wh)
    weights = steps.end_row - steps.start_row
    temp_sum = add(np.nan_to_num(steps.temperature_mean_c) * weights)
    temp_mean = temp_sum / np.add.reduceat(weights, starts)
    temp_mean[np.isnan(steps.temperature_mean_c[starts])] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ce = np.where(charge > 0, discharge / charge, np.nan)
        ee = np.where(charge_wh > 0, discharge_wh / charge_wh, np.nan)
    return CycleTable(
        cycle=steps.cycle[starts],
        t_start_s=steps.t_start_s[starts],
        t_end_s=steps.t_end_s[ends - 1],
        charge_ah=charge,
        discharge_ah=discharge,
        charge_cc_ah=add(steps.charge_cc_ah),
        charge_cv_ah=add(steps.charge_cv_ah),
        discharge_cc_ah=add(steps.discharge_cc_ah),
        discharge_cv_ah=add(steps.discharge_cv_ah),
        charge_wh=charge_wh,
        discharge_wh=discharge_wh,
        coulombic_efficiency=ce,
        energy_efficiency=ee,
        temperature_mean_c=temp_mean,
        temperature_end_c=steps.temperature_end_c[ends - 1],
    )


def cycle_summary(ts: TimeSeries, opts: SegmentationOptions | None = None) -> CycleTable:
    """Per-cycle figures of a time series (step table, then cycle sums)."""
    return cycle_table(step_table(ts, opts))

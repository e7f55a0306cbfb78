"""OCV at the end of a rest, self-discharge K-value and leakage, ICA (dQ/dV) and DVA (dV/dQ).

Methods: ``../shared/reference/grading.md`` 2.4 and 2.5.

ICA smoothing, documented: the charge is interpolated on a uniform voltage grid (``step_v``,
default 1 mV) after making V monotone along the segment (a running extreme, which removes noise
reversals), differentiated by central differences, then convolved with a Gaussian of FWHM
``fwhm_v`` (default 10 mV, as cellpy's default post-smoothing). DVA is done the same way on a
uniform charge grid with a Gaussian of ``fwhm_fraction`` (default 1 %) of the charge span.
Peak features come from ``scipy.signal.find_peaks`` with widths at half height.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import trapezoid
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks, peak_widths

from station.grading.results import Figure, Quality

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def rest_ocv(
    t_s: np.ndarray,
    voltage_v: np.ndarray,
    dvdt_limit_v_per_s: float = 1e-4 / 60.0,
    window_s: float = 60.0,
    last_n: int = 10,
    min_rest_s: float = 0.0,
) -> Figure:
    """OCV (V): mean of the last ``last_n`` samples of a rest, once |dV/dt| < the limit.

    dV/dt is the least-squares slope over the last ``window_s`` seconds (default limit
    0.1 mV/min). The figure is flagged NOT_RELAXED when the slope is above the limit and
    REST_TOO_SHORT when the rest is shorter than ``min_rest_s``; its uncertainty is the
    standard error of the mean of the samples used.
    """
    if len(t_s) < 2:
        raise ValueError("a rest needs at least 2 samples")
    flags: set[Quality] = set()
    if t_s[-1] - t_s[0] < min_rest_s:
        flags.add(Quality.REST_TOO_SHORT)
    window = t_s >= t_s[-1] - window_s
    if window.sum() >= 2 and np.ptp(t_s[window]) > 0:
        slope = float(np.polyfit(t_s[window], voltage_v[window], 1)[0])
    else:
        slope = float("inf")
    if abs(slope) >= dvdt_limit_v_per_s:
        flags.add(Quality.NOT_RELAXED)
    tail = voltage_v[-last_n:]
    sigma = float(np.std(tail, ddof=1) / np.sqrt(len(tail))) if len(tail) > 1 else None
    return Figure(
        float(np.mean(tail)),
        "V",
        uncertainty=sigma,
        flags=frozenset(flags),
        note=f"dV/dt {slope * 60e3:.3g} mV/min",
    )


def k_value_mv_per_day(ocv1: Figure, t1_s: float, ocv2: Figure, t2_s: float) -> Figure:
    """K = (OCV1 - OCV2) / (t2 - t1) in mV/day; a voltage drop is positive."""
    days = (t2_s - t1_s) / 86400.0
    if days <= 0:
        raise ValueError(f"second OCV record must be later than the first (t1={t1_s}, t2={t2_s})")
    sigma = None
    if ocv1.uncertainty is not None and ocv2.uncertainty is not None:
        sigma = float(np.hypot(ocv1.uncertainty, ocv2.uncertainty)) * 1e3 / days
    return Figure(
        (ocv1.value - ocv2.value) * 1e3 / days,
        "mV/day",
        uncertainty=sigma,
        flags=ocv1.flags | ocv2.flags,
    )


@dataclass(frozen=True)
class Leakage:
    """Self-discharge expressed as a current and as a share of rated capacity."""

    current_a: Figure
    pct_per_day: Figure
    pct_per_month: Figure


def leakage(k: Figure, dqdv_ah_per_v: float, rated_capacity_ah: float) -> Leakage:
    """I_sd = K [V/s] * dQ/dV [As/V]; %/day = I_sd * 24 h / C_rated * 100; month = 30 days."""
    k_v_per_s = k.value * 1e-3 / 86400.0
    current = k_v_per_s * dqdv_ah_per_v * 3600.0
    per_day = current * 24.0 / rated_capacity_ah * 100.0
    rel = None if k.uncertainty is None or k.value == 0 else abs(k.uncertainty / k.value)
    return Leakage(
        current_a=Figure(current, "A", None if rel is None else abs(current) * rel, k.flags),
        pct_per_day=Figure(per_day, "%/day", None if rel is None else abs(per_day) * rel, k.flags),
        pct_per_month=Figure(
            per_day * 30.0, "%/month", None if rel is None else abs(per_day) * 30.0 * rel, k.flags
        ),
    )


@dataclass(frozen=True)
class DifferentialCurve:
    """A differential curve: ``x`` (V for ICA, Ah for DVA) and ``y`` (Ah/V or V/Ah)."""

    x: np.ndarray
    y: np.ndarray
    smoothing: str


@dataclass(frozen=True)
class Peak:
    """One peak of a differential curve: position, height, area (y*x units) and FWHM."""

    position: float
    height: float
    area: float
    fwhm: float


def _charge_from_zero(t_s: np.ndarray, current_a: np.ndarray) -> np.ndarray:
    dq = np.concatenate(([0.0], 0.5 * (current_a[1:] + current_a[:-1]) * np.diff(t_s)))
    return np.abs(np.cumsum(dq)) / 3600.0


def ica(
    t_s: np.ndarray,
    voltage_v: np.ndarray,
    current_a: np.ndarray,
    step_v: float = 0.001,
    fwhm_v: float = 0.01,
) -> DifferentialCurve:
    """dQ/dV (Ah/V) of one CC segment (charge or discharge), smoothed as the module says."""
    q = _charge_from_zero(t_s, current_a)
    charging = float(np.mean(current_a)) > 0
    v = np.maximum.accumulate(voltage_v) if charging else np.minimum.accumulate(voltage_v)
    v_unique, first = np.unique(v, return_index=True)
    q_unique = q[first]
    if len(v_unique) < 5:
        raise ValueError("segment spans too few distinct voltages for ICA")
    grid = np.arange(v_unique[0], v_unique[-1], step_v)
    q_grid = np.interp(grid, v_unique, q_unique)
    dqdv = np.abs(np.gradient(q_grid, step_v))
    sigma_pts = fwhm_v / FWHM_PER_SIGMA / step_v
    smoothed = gaussian_filter1d(dqdv, sigma_pts, mode="nearest") if sigma_pts > 0 else dqdv
    return DifferentialCurve(
        grid, smoothed, f"uniform {step_v * 1e3:g} mV grid, Gaussian FWHM {fwhm_v * 1e3:g} mV"
    )


def dva(
    t_s: np.ndarray,
    voltage_v: np.ndarray,
    current_a: np.ndarray,
    points: int = 1000,
    fwhm_fraction: float = 0.01,
) -> DifferentialCurve:
    """dV/dQ (V/Ah) against Q of one CC segment, on a uniform charge grid."""
    q = _charge_from_zero(t_s, current_a)
    q_unique, first = np.unique(q, return_index=True)
    if len(q_unique) < 5:
        raise ValueError("segment moves too little charge for DVA")
    grid = np.linspace(q_unique[0], q_unique[-1], points)
    v_grid = np.interp(grid, q_unique, voltage_v[first])
    step = grid[1] - grid[0]
    dvdq = np.abs(np.gradient(v_grid, step))
    sigma_pts = fwhm_fraction * (grid[-1] - grid[0]) / FWHM_PER_SIGMA / step
    smoothed = gaussian_filter1d(dvdq, sigma_pts, mode="nearest") if sigma_pts > 0 else dvdq
    return DifferentialCurve(
        grid,
        smoothed,
        f"uniform {points}-point charge grid, Gaussian FWHM {fwhm_fraction * 100:g} % of span",
    )


def peaks(curve: DifferentialCurve, prominence_fraction: float = 0.05) -> list[Peak]:
    """Peaks above ``prominence_fraction`` of the curve's maximum, with the area between the
    minima that separate a peak from its neighbours (or the curve ends), by the trapezoid rule,
    and the FWHM in x units."""
    y = curve.y
    index, _ = find_peaks(y, prominence=prominence_fraction * float(np.max(y)))
    if len(index) == 0:
        return []
    widths = peak_widths(y, index, rel_height=0.5)[0]
    step = float(curve.x[1] - curve.x[0])
    out = []
    for k, p in enumerate(index):
        left = 0 if k == 0 else int(index[k - 1])
        right = len(y) - 1 if k == len(index) - 1 else int(index[k + 1])
        lo = left + int(np.argmin(y[left : p + 1]))
        hi = p + int(np.argmin(y[p : right + 1])) + 1
        out.append(
            Peak(
                position=float(curve.x[p]),
                height=float(y[p]),
                area=float(trapezoid(y[lo:hi], curve.x[lo:hi])),
                fwhm=float(widths[k] * step),
            )
        )
    return out


def dqdv_at(curve: DifferentialCurve, voltage_v: float) -> float:
    """dQ/dV (Ah/V) at a voltage, for leakage current at the storage SOC."""
    return float(np.interp(voltage_v, curve.x, curve.y))

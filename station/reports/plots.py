"""Report plots drawn with matplotlib's Agg backend (no display, no Qt) into PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from station.passport.rawdata import RawSeries  # noqa: E402

_STYLE: Any = {
    "font.size": 7.5,
    "axes.titlesize": 8,
    "axes.labelsize": 7.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.2,
}


@dataclass(frozen=True)
class Impedance:
    """An impedance spectrum and its model fit: complex ohms at ``frequency_hz``."""

    frequency_hz: np.ndarray
    z_ohm: np.ndarray
    z_fit_ohm: np.ndarray | None = None


def _png(figure: Figure, dpi: int = 200) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def dqdv(
    capacity_ah: np.ndarray, voltage_v: np.ndarray, bin_v: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """dQ/dV (Ah/V) on a uniform voltage grid: capacity interpolated against voltage, then
    differentiated, which avoids dividing by near-zero voltage steps on the plateaus."""
    order = np.argsort(voltage_v)
    v = voltage_v[order]
    q = capacity_ah[order]
    keep = np.concatenate([[True], np.diff(v) > 0])
    v, q = v[keep], q[keep]
    if v.size < 3:
        return np.array([]), np.array([])
    grid = np.arange(v[0], v[-1], bin_v)
    if grid.size < 3:
        return np.array([]), np.array([])
    q_grid = np.interp(grid, v, q)
    return grid[1:], np.abs(np.diff(q_grid)) / bin_v


def cell_panels(
    raw: RawSeries,
    *,
    discharge_step: int,
    pulse_step: int | None,
    impedance: Impedance | None,
) -> bytes:
    """Four panels: discharge curve, dQ/dV, pulse response, Nyquist with fit."""
    with plt.rc_context(_STYLE):
        figure, axes = plt.subplots(2, 2, figsize=(7.0, 4.6))
        steps = raw.step_index if raw.step_index is not None else np.zeros_like(raw.t_s)
        rows = np.flatnonzero(steps == discharge_step)
        ax = axes[0, 0]
        if rows.size > 1:
            rows = np.concatenate([[max(rows[0] - 1, 0)], rows])
            t = raw.t_s[rows]
            i = raw.current_a[rows]
            q = np.concatenate([[0.0], np.cumsum(-0.5 * (i[1:] + i[:-1]) * np.diff(t))]) / 3600
            ax.plot(q, raw.voltage_v[rows], color="#1f4e79")
            ax.set_xlabel("discharged capacity / Ah")
            ax.set_ylabel("voltage / V")
            # The row before the step is the rested start; its IR jump is not capacity.
            grid, slope = dqdv(q[1:], raw.voltage_v[rows][1:])
            axes[0, 1].plot(grid, slope, color="#7a3b00")
        ax.set_title("Discharge curve")
        axes[0, 1].set_title("Incremental capacity dQ/dV")
        axes[0, 1].set_xlabel("voltage / V")
        axes[0, 1].set_ylabel("dQ/dV / Ah/V")
        ax = axes[1, 0]
        if pulse_step is not None:
            pulse = np.flatnonzero(steps == pulse_step)
            if pulse.size:
                t0 = raw.t_s[pulse[0]]
                t1 = raw.t_s[pulse[-1]]
                span = max(t1 - t0, 1.0)
                window = np.flatnonzero((raw.t_s >= t0 - 1.5 * span) & (raw.t_s <= t1 + 1.5 * span))
                ax.plot(
                    raw.t_s[window] - t0, raw.voltage_v[window], ".-", color="#1f4e79", markersize=2
                )
                twin = ax.twinx()
                twin.step(
                    raw.t_s[window] - t0,
                    raw.current_a[window],
                    where="pre",
                    color="#b0413e",
                    linewidth=0.8,
                )
                twin.set_ylabel("current / A", color="#b0413e")
                twin.grid(False)
        else:
            _no_data(ax, "no pulse in this test")
        ax.set_title("Pulse response")
        ax.set_xlabel("time from pulse start / s")
        ax.set_ylabel("voltage / V")
        ax = axes[1, 1]
        if impedance is not None:
            z = impedance.z_ohm
            ax.plot(z.real * 1e3, -z.imag * 1e3, "o", markersize=2.5, label="measured")
            if impedance.z_fit_ohm is not None:
                f = impedance.z_fit_ohm
                ax.plot(f.real * 1e3, -f.imag * 1e3, "-", color="#b0413e", label="fit")
            ax.set_aspect("equal", adjustable="datalim")
            ax.legend(loc="upper left", fontsize=6.5)
        else:
            _no_data(ax, "no impedance spectrum in this test")
        ax.set_title("Nyquist plot (EIS)")
        ax.set_xlabel("Z' / mOhm")
        ax.set_ylabel("-Z'' / mOhm")
        figure.tight_layout()
        return _png(figure)


def batch_panels(
    soh_pct: Sequence[float], resistance_mohm: Sequence[float], bins: Sequence[str]
) -> bytes:
    """Yield per bin, SoH histogram and resistance histogram side by side."""
    with plt.rc_context(_STYLE):
        figure, axes = plt.subplots(1, 3, figsize=(7.2, 2.3))
        names = sorted(set(bins), key=lambda b: (b == "reject", b))
        counts = [list(bins).count(name) for name in names]
        colors = ["#b0413e" if name == "reject" else "#1f4e79" for name in names]
        axes[0].bar(names, counts, color=colors)
        axes[0].set_title("Cells per bin")
        axes[0].set_ylabel("cells")
        axes[1].hist(soh_pct, bins=10, color="#1f4e79", edgecolor="white")
        axes[1].set_title("Capacity SoH")
        axes[1].set_xlabel("SoH / % of rated")
        axes[2].hist(resistance_mohm, bins=10, color="#7a3b00", edgecolor="white")
        axes[2].set_title("DC resistance")
        axes[2].set_xlabel("R / mOhm")
        figure.tight_layout()
        return _png(figure)

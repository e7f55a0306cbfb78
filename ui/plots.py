"""Live V, I, T (and dQ/dV) plots for one channel, fed from bounded ring buffers.

Samples go into a fixed-size numpy ring per channel as they arrive (cheap); the curves are
redrawn by a 15 Hz timer only when the shown channel or the visible time range changed. Before a
curve gets its data, :func:`peak_decimate` cuts it to the visible time window (binary search on
the monotonic time column) and keeps the minimum and maximum of each pixel-wide slice, so
pyqtgraph draws a few thousand points however long the run is, and no spike is lost. The full
history of a run is read from storage on demand, off the GUI thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from station.events import Sample

RING_CAPACITY = 20_000
"""Samples kept per channel for live plots (about 33 min at 10 Hz); storage has the rest."""

REDRAW_HZ = 15

MIN_BINS = 500
"""Pixel slices used when the plot is narrower (or not shown yet), so small data is never cut."""

COLUMNS = ("seq", "t_s", "voltage_v", "current_a", "temperature_c", "step_index")


class RingBuffer:
    """Fixed-capacity store of sample columns (see :data:`COLUMNS`); oldest are overwritten."""

    def __init__(self, capacity: int = RING_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._data = np.full((capacity, len(COLUMNS)), np.nan, dtype=np.float64)
        self._start = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        self._start = 0
        self._size = 0

    def append(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        if len(samples) > self.capacity:
            samples = samples[-self.capacity :]
        rows = np.array(
            [
                (
                    s.seq,
                    s.t_s,
                    s.voltage_v,
                    s.current_a,
                    np.nan if s.temperature_c is None else s.temperature_c,
                    s.step_index,
                )
                for s in samples
            ],
            dtype=np.float64,
        )
        n = len(rows)
        end = (self._start + self._size) % self.capacity
        first = min(n, self.capacity - end)
        self._data[end : end + first] = rows[:first]
        self._data[: n - first] = rows[first:]
        overflow = max(self._size + n - self.capacity, 0)
        self._size = min(self._size + n, self.capacity)
        self._start = (self._start + overflow) % self.capacity

    def columns(self) -> np.ndarray:
        """An (n, 6) copy in time order, columns as in :data:`COLUMNS`."""
        index = (self._start + np.arange(self._size)) % self.capacity
        return self._data[index]


def samples_to_columns(samples: Sequence[Sample]) -> np.ndarray:
    ring = RingBuffer(max(len(samples), 1))
    ring.append(samples)
    return ring.columns()


def peak_decimate(
    x: np.ndarray, y: np.ndarray, x_min: float, x_max: float, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """The points of ``(x, y)`` a ``bins``-pixel-wide plot of ``[x_min, x_max]`` needs.

    ``x`` must be non-decreasing (sample time). The window is found by binary search, widened by
    one point each side so the line runs to the plot's edges. A window of at most ``2 * bins``
    points is returned as is; a longer one is cut into ``bins`` slices of equal point count and
    each slice contributes its minimum and maximum in time order (plus the window's first and last
    points), so every extreme of the raw data within the window survives. The inputs are not
    changed.
    """
    lo, hi = visible_slice(x, x_min, x_max)
    return _decimate(x[lo:hi], y[lo:hi], bins)


def visible_slice(x: np.ndarray, x_min: float, x_max: float) -> tuple[int, int]:
    """Index range of non-decreasing ``x`` within ``[x_min, x_max]``, plus one point each side."""
    lo = max(int(np.searchsorted(x, x_min, side="left")) - 1, 0)
    hi = min(int(np.searchsorted(x, x_max, side="right")) + 1, len(x))
    return lo, hi


def _decimate(xs: np.ndarray, ys: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(xs)
    if n == 0 or bins < 1:
        return xs[:0], ys[:0]
    if n <= 2 * bins:
        return xs, ys
    per = n // bins
    body = ys[: per * bins].reshape(bins, per)
    first = np.argmin(body, axis=1)
    second = np.argmax(body, axis=1)
    # Keep each slice's pair in time order so the drawn line does not double back.
    early = np.minimum(first, second)
    late = np.maximum(first, second)
    offsets = np.arange(bins) * per
    index = np.empty(2 * bins, dtype=np.intp)
    index[0::2] = offsets + early
    index[1::2] = offsets + late
    pieces = [np.array([0, n - 1]), index]
    if n > per * bins:
        tail = ys[per * bins :]
        pieces.append(per * bins + np.array([np.argmin(tail), np.argmax(tail)]))
    # The window's first and last points keep the line running to the newest sample.
    index = np.unique(np.concatenate(pieces))
    return xs[index], ys[index]


def dq_dv(
    t_s: np.ndarray, voltage_v: np.ndarray, current_a: np.ndarray, bin_v: float = 0.005
) -> tuple[np.ndarray, np.ndarray]:
    """Incremental capacity dQ/dV (Ah/V) of one monotonic segment, on voltage bins ``bin_v`` wide.

    Charge is the trapezoidal integral of current over time; dQ/dV is the charge moved while the
    voltage crossed each bin, divided by the bin width. Returns (bin centres V, dQ/dV Ah/V); empty
    arrays when there is not enough data. A live-view estimate; graded ICA comes from the grading
    core.
    """
    if len(t_s) < 3 or bin_v <= 0:
        return np.empty(0), np.empty(0)
    q_ah = np.concatenate(([0.0], np.cumsum(np.diff(t_s) * (current_a[1:] + current_a[:-1]) / 2)))
    q_ah /= 3600.0
    v_min, v_max = float(np.nanmin(voltage_v)), float(np.nanmax(voltage_v))
    if v_max - v_min < 2 * bin_v:
        return np.empty(0), np.empty(0)
    # Whole bins only, so the last bin is not a partial one with a biased height.
    bins = int(np.floor((v_max - v_min) / bin_v + 1e-9))
    edges = v_min + bin_v * np.arange(bins + 1)
    order = np.argsort(voltage_v, kind="stable")
    q_at_edges = np.interp(edges, voltage_v[order], q_ah[order])
    centres = (edges[:-1] + edges[1:]) / 2
    return centres, np.abs(np.diff(q_at_edges)) / bin_v


def _add_grid(plot: pg.PlotItem) -> None:
    """A light grid of about ten lines per axis, drawn as its own item.

    The axes' built-in grid (``showGrid``) repaints with each axis picture and cost 10-30 ms of
    every 1280x800 frame offscreen (bench_gui_frame); a two-level GridItem costs about 1 ms. The
    GridItem's default third level draws ~100 lines per axis from Python and costs as much.
    """
    grid = pg.GridItem(pen=pg.mkPen("#606060"), textPen=None)
    grid.setTickSpacing(x=[None, None], y=[None, None])
    plot.addItem(grid)


@dataclass(frozen=True)
class _Series:
    """Plot-ready columns of one block of samples: time in minutes since ``t0_s``."""

    t_min: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    temp_t_min: np.ndarray
    temperature_c: np.ndarray
    # The last decimation of each curve by (window, bins): a loaded history is the same every
    # frame while live samples arrive, and re-scanning a million points costs ~20 ms per frame.
    _memo: dict[str, tuple[tuple[int, int, int], tuple[np.ndarray, np.ndarray]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, cols: np.ndarray, t0_s: float) -> _Series:
        t_min = (cols[:, 1] - t0_s) / 60.0
        finite = np.isfinite(cols[:, 4])
        return cls(t_min, cols[:, 2], cols[:, 3], t_min[finite], cols[finite, 4])

    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        if key == "voltage":
            return self.t_min, self.voltage_v
        if key == "current":
            return self.t_min, self.current_a
        return self.temp_t_min, self.temperature_c

    def decimated(
        self, key: str, x_min: float, x_max: float, bins: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`peak_decimate` of one curve, reused while its window and bins are unchanged."""
        x, y = self.curve(key)
        lo, hi = visible_slice(x, x_min, x_max)
        memo = self._memo.get(key)
        if memo is not None and memo[0] == (lo, hi, bins):
            return memo[1]
        result = _decimate(x[lo:hi], y[lo:hi], bins)
        self._memo[key] = ((lo, hi, bins), result)
        return result


class LivePlots(QtWidgets.QWidget):
    """V, I, T vs time and dQ/dV for the selected channel."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.buffers: dict[str, RingBuffer] = {}
        self.history: dict[str, np.ndarray] = {}
        # History converted once when it arrives, so a redraw never re-copies a long run.
        self._history_series: dict[str, _Series] = {}
        self._dqdv_key: tuple[object, ...] = ()
        self.channel_id: str | None = None
        self._dirty = False
        self.redraws = 0

        layout = QtWidgets.QVBoxLayout(self)
        self.title = QtWidgets.QLabel("No channel selected")
        font = self.title.font()
        font.setPointSize(14)
        font.setBold(True)
        self.title.setFont(font)
        self.history_button = QtWidgets.QPushButton("Load full history")
        head = QtWidgets.QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.history_button)
        layout.addLayout(head)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        layout.addWidget(self.graphics, 1)
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        specs = [
            ("voltage", "Voltage", "V", "#1f6fb2"),
            ("current", "Current", "A", "#c62828"),
            ("temperature", "Temperature", "°C", "#ef6c00"),
        ]
        for row, (key, name, unit, colour) in enumerate(specs):
            plot = self.graphics.addPlot(row=row, col=0)
            plot.setLabel("left", f"{name} ({unit})")
            _add_grid(plot)
            if row:
                plot.setXLink(self.plots["voltage"])
            if row < len(specs) - 1:
                # The stacked plots share one time axis; only the bottom one labels it, which
                # also spares two axes' tick text per frame while the time range grows.
                plot.getAxis("bottom").setStyle(showValues=False)
            self.plots[key] = plot
            self.curves[key] = plot.plot(pen=pg.mkPen(colour, width=1))
        self.plots["temperature"].setLabel("bottom", "Time since start (min)")
        self.plots["voltage"].sigXRangeChanged.connect(self._x_range_changed)
        dqdv = self.graphics.addPlot(row=0, col=1, rowspan=3)
        dqdv.setLabel("left", "dQ/dV (Ah/V)")
        dqdv.setLabel("bottom", "Voltage (V)")
        _add_grid(dqdv)
        self.plots["dqdv"] = dqdv
        self.curves["dqdv"] = dqdv.plot(pen=pg.mkPen("#6a1b9a", width=1))
        self.graphics.ci.layout.setColumnStretchFactor(0, 3)
        self.graphics.ci.layout.setColumnStretchFactor(1, 2)

        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(int(1000 / REDRAW_HZ))
        self._timer.timeout.connect(self.redraw)
        self._timer.start()

    def buffer(self, channel_id: str) -> RingBuffer:
        ring = self.buffers.get(channel_id)
        if ring is None:
            ring = self.buffers[channel_id] = RingBuffer()
        return ring

    def reset_channel(self, channel_id: str) -> None:
        """A new run started on the channel: forget the previous run's points."""
        self.buffer(channel_id).clear()
        self.history.pop(channel_id, None)
        self._history_series.pop(channel_id, None)
        if channel_id == self.channel_id:
            self._dirty = True

    def add_samples(self, channel_id: str, samples: Sequence[Sample]) -> None:
        self.buffer(channel_id).append(samples)
        if channel_id == self.channel_id:
            self._dirty = True

    def show_channel(self, channel_id: str, title: str = "") -> None:
        self.channel_id = channel_id
        self.title.setText(title or channel_id)
        self._dirty = True
        self.redraw()

    def set_history(self, channel_id: str, samples: Sequence[Sample]) -> None:
        self.set_history_columns(channel_id, samples_to_columns(samples))

    def set_history_columns(self, channel_id: str, cols: np.ndarray) -> None:
        """The run's stored samples as an (n, 6) array in :data:`COLUMNS` order, time ordered."""
        self.history[channel_id] = cols
        if len(cols):
            self._history_series[channel_id] = _Series.of(cols, float(cols[0, 1]))
        else:
            self._history_series.pop(channel_id, None)
        if channel_id == self.channel_id:
            self._dirty = True
            self.redraw()

    def data(self, channel_id: str) -> np.ndarray:
        """History (if loaded) followed by the live samples newer than it."""
        live = self.buffer(channel_id).columns()
        past = self.history.get(channel_id)
        if past is None or len(past) == 0:
            return live
        return np.concatenate((past, self._newer_live(live, past)))

    @staticmethod
    def _newer_live(live: np.ndarray, past: np.ndarray) -> np.ndarray:
        return live[live[:, 0] > past[-1, 0]] if len(live) else live

    @QtCore.Slot()
    def _x_range_changed(self) -> None:
        # A zoom or pan shows another window of the data; auto-range always shows all of it.
        if not self.plots["voltage"].getViewBox().autoRangeEnabled()[0]:
            self._dirty = True

    def _visible(self, first_min: float, last_min: float) -> tuple[float, float, int]:
        """The shown time window (min) and how many pixel slices it spans."""
        plot = self.plots["voltage"]
        box = plot.getViewBox()
        bins = max(int(box.width()), MIN_BINS)
        if box.autoRangeEnabled()[0]:
            return first_min, last_min, bins
        low, high = plot.viewRange()[0]
        return float(low), float(high), bins

    @QtCore.Slot()
    def redraw(self) -> None:
        if not self._dirty or self.channel_id is None:
            return
        self._dirty = False
        self.redraws += 1
        channel = self.channel_id
        live = self.buffer(channel).columns()
        past_cols = self.history.get(channel)
        past = self._history_series.get(channel)
        if past_cols is not None and past is not None:
            live = self._newer_live(live, past_cols)
            t0_s = float(past_cols[0, 1])
        elif len(live):
            t0_s = float(live[0, 1])
        else:
            for curve in self.curves.values():
                curve.setData([], [])
            self._dqdv_key = ()
            return
        blocks = [b for b in (past, _Series.of(live, t0_s) if len(live) else None) if b]
        first_min = float(blocks[0].t_min[0])
        last_min = float(blocks[-1].t_min[-1])
        low, high, bins = self._visible(first_min, last_min)
        for key in ("voltage", "current", "temperature"):
            parts = [b.decimated(key, low, high, bins) for b in blocks]
            self.curves[key].setData(
                np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            )
        self._redraw_dqdv(channel, live if len(live) else past_cols)

    def _redraw_dqdv(self, channel: str, cols: np.ndarray | None) -> None:
        """dQ/dV of the newest step, recomputed only when that step got new samples."""
        if cols is None or len(cols) == 0:
            return
        key = (channel, float(cols[-1, 0]), len(cols))
        if key == self._dqdv_key:
            return
        self._dqdv_key = key
        # One charge or discharge is one monotonic segment: the current step only.
        segment = cols[cols[:, 5] == cols[-1, 5]]
        v_centres, dqdv = dq_dv(segment[:, 1], segment[:, 2], segment[:, 3])
        self.curves["dqdv"].setData(v_centres, dqdv)

    def stop(self) -> None:
        self._timer.stop()

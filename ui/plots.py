"""Live V, I, T (and dQ/dV) plots for one channel, fed from bounded ring buffers.

Samples go into a fixed-size numpy ring per channel as they arrive (cheap); the curves are
redrawn by a 15 Hz timer only when the shown channel changed, with pyqtgraph's peak downsampling
and clip-to-view so a long run never costs more than the pixels on screen. The full history of a
run is read from storage on demand, off the GUI thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from station.events import Sample

RING_CAPACITY = 20_000
"""Samples kept per channel for live plots (about 33 min at 10 Hz); storage has the rest."""

REDRAW_HZ = 15

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


class LivePlots(QtWidgets.QWidget):
    """V, I, T vs time and dQ/dV for the selected channel."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.buffers: dict[str, RingBuffer] = {}
        self.history: dict[str, np.ndarray] = {}
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
            plot.showGrid(x=True, y=True, alpha=0.3)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setClipToView(True)
            if row:
                plot.setXLink(self.plots["voltage"])
            self.plots[key] = plot
            self.curves[key] = plot.plot(pen=pg.mkPen(colour, width=1))
        self.plots["temperature"].setLabel("bottom", "Time since start (min)")
        dqdv = self.graphics.addPlot(row=0, col=1, rowspan=3)
        dqdv.setLabel("left", "dQ/dV (Ah/V)")
        dqdv.setLabel("bottom", "Voltage (V)")
        dqdv.showGrid(x=True, y=True, alpha=0.3)
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
        self.history[channel_id] = samples_to_columns(samples)
        if channel_id == self.channel_id:
            self._dirty = True
            self.redraw()

    def data(self, channel_id: str) -> np.ndarray:
        """History (if loaded) followed by the live samples newer than it."""
        live = self.buffer(channel_id).columns()
        past = self.history.get(channel_id)
        if past is None or len(past) == 0:
            return live
        newer = live[live[:, 0] > past[-1, 0]] if len(live) else live
        return np.concatenate((past, newer))

    @QtCore.Slot()
    def redraw(self) -> None:
        if not self._dirty or self.channel_id is None:
            return
        self._dirty = False
        self.redraws += 1
        cols = self.data(self.channel_id)
        if len(cols) == 0:
            for curve in self.curves.values():
                curve.setData([], [])
            return
        t = (cols[:, 1] - cols[0, 1]) / 60.0
        self.curves["voltage"].setData(t, cols[:, 2])
        self.curves["current"].setData(t, cols[:, 3])
        finite = np.isfinite(cols[:, 4])
        self.curves["temperature"].setData(t[finite], cols[finite, 4])
        # dQ/dV of the current step only: one charge or discharge is one monotonic segment.
        segment = cols[cols[:, 5] == cols[-1, 5]]
        v_centres, dqdv = dq_dv(segment[:, 1], segment[:, 2], segment[:, 3])
        self.curves["dqdv"].setData(v_centres, dqdv)

    def stop(self) -> None:
        self._timer.stop()

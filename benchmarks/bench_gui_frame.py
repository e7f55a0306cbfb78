"""GUI frame time of the live plots with 100k and 1M points (issue 10).

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python -m benchmarks.bench_gui_frame``.
Targets: at least 60 frames/s with 100k points and 30 frames/s with 1M points.

One frame is what the live view does at every redraw tick while a run streams: 10 new samples
arrive, the curves are updated and the whole widget is painted (``QWidget.grab``, a real render
into an image on the offscreen platform). The station side is :class:`ui.plots.LivePlots` with the
run's history loaded and the ring buffer filling. The peer is the same three pyqtgraph plots fed
the full arrays each frame with pyqtgraph's own peak downsampling and clip-to-view, which is what
the live view did before it decimated in numpy. Both are checked to draw the same extremes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from benchmarks.common import Case, write_result
from station.events import Sample
from ui.plots import LivePlots

FRAMES = 40
BATCH = 10
SIZE = (1280, 800)


def synthetic_run(n: int, seed: int = 3) -> np.ndarray:
    """(n, 6) columns of a 10 Hz run: a slow voltage ramp with noise and a few spikes."""
    rng = np.random.default_rng(seed)
    cols = np.empty((n, 6))
    cols[:, 0] = np.arange(n)
    cols[:, 1] = np.arange(n) * 0.1
    cols[:, 2] = 3.0 + 1.2 * np.arange(n) / n + rng.normal(0, 0.002, n)
    cols[rng.integers(0, n, 10), 2] += 0.3
    cols[:, 3] = 1.5 + rng.normal(0, 0.01, n)
    cols[:, 4] = 25.0 + rng.normal(0, 0.1, n)
    cols[:, 5] = 1
    return cols


def new_samples(start: int) -> list[Sample]:
    return [
        Sample("bench", "CH1", s, s * 0.1, 1, 4.2, 1.5, 25.0) for s in range(start, start + BATCH)
    ]


def station_frames(n: int) -> tuple[list[float], list[float], float]:
    """Wall and GUI-thread CPU durations (s) of LivePlots frames, and the highest voltage drawn."""
    plots = LivePlots()
    plots.stop()  # frames are driven here, not by the widget's timer
    plots.resize(*SIZE)
    plots.show()
    cols = synthetic_run(n)
    plots.show_channel("CH1")
    plots.set_history_columns("CH1", cols)
    plots.grab()
    durations, cpu = [], []
    seq = n
    for _ in range(FRAMES):
        start, start_cpu = time.perf_counter(), time.thread_time()
        plots.add_samples("CH1", new_samples(seq))
        plots.redraw()
        plots.grab()
        durations.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
        seq += BATCH
    drawn_max = float(np.max(plots.curves["voltage"].getData()[1]))
    plots.close()
    return durations, cpu, drawn_max


def peer_frames(n: int) -> tuple[list[float], list[float], float]:
    """Like :func:`station_frames` for plain pyqtgraph downsampling the full arrays itself."""
    widget = pg.GraphicsLayoutWidget()
    widget.resize(*SIZE)
    widget.show()
    curves = []
    for row in range(3):
        plot = widget.addPlot(row=row, col=0)
        plot.setDownsampling(auto=True, mode="peak")
        plot.setClipToView(True)
        curves.append(plot.plot(pen=pg.mkPen("#1f6fb2", width=1)))
    cols = synthetic_run(n)
    widget.grab()
    durations, cpu = [], []
    for _ in range(FRAMES):
        start, start_cpu = time.perf_counter(), time.thread_time()
        extra = np.array(
            [(s.seq, s.t_s, s.voltage_v, s.current_a, 25.0, 1) for s in new_samples(len(cols))]
        )
        cols = np.concatenate((cols, extra))
        t = (cols[:, 1] - cols[0, 1]) / 60.0
        for curve, column in zip(curves, (2, 3, 4), strict=True):
            curve.setData(t, cols[:, column])
        widget.grab()
        durations.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    drawn_max = float(np.max(curves[0].getData()[1]))
    widget.close()
    return durations, cpu, drawn_max


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/)")
    args = parser.parse_args()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    cases = []
    for n, goal_fps in ((100_000, 60.0), (1_000_000, 30.0)):
        station, station_cpu, station_max = station_frames(n)
        peer, peer_cpu, peer_max = peer_frames(n)
        app.processEvents()
        fps = 1.0 / statistics.median(station)
        peer_fps = 1.0 / statistics.median(peer)
        cpu_fps = 1.0 / statistics.median(station_cpu)
        peer_cpu_fps = 1.0 / statistics.median(peer_cpu)
        cases.append(
            Case(
                case=f"live plot frame, {n:,} points + {BATCH} new per frame, {SIZE[0]}x{SIZE[1]}",
                metric="frames/s",
                station=round(fps, 1),
                peer=round(peer_fps, 1),
                peer_name="pyqtgraph peak downsampling + clip-to-view on the full arrays",
                goal=goal_fps,
                equal_results=station_max == peer_max,
                repeats=FRAMES,
                notes=(
                    f"median wall time of {FRAMES} frames (update + QWidget.grab render, "
                    f"offscreen); by GUI-thread CPU time per frame, which other processes on a "
                    f"busy machine do not inflate: station {cpu_fps:.1f}, peer "
                    f"{peer_cpu_fps:.1f} frames/s; "
                    f"goal >= {goal_fps:g} frames/s; equal_results: both draw the same maximum "
                    f"voltage ({station_max:.4f} V), the spike peak decimation must keep"
                ),
            )
        )
        print(
            f"{n:>9,} points: station {fps:.1f} frames/s ({cpu_fps:.1f} by CPU time), "
            f"peer {peer_fps:.1f} frames/s ({peer_cpu_fps:.1f} by CPU time)"
        )
    write_result("gui_frame", cases, None if args.out is None else Path(args.out))


if __name__ == "__main__":
    main()

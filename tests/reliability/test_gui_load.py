"""G1 under a heavier load than tests/gui/test_lag.py: the same 32 channels streaming at 10 Hz
into the real window, with the shown channel's plot also holding a loaded history of a million
points, so every redraw has to cut a long run down to the pixels on screen.

A probe QTimer asks to fire every 20 ms; how late each tick comes is the time the event loop was
busy elsewhere. The short form reports the figure. ``-m slow`` runs 20 s without and 20 s with
the history, back to back, and asserts the G1 goal of ../shared/reference/reliability.md
(p99 <= 100 ms) for the loaded window, or, when other processes already push the plain window
over it, that the history adds at most half again (the absolute goal under 32 channels belongs
to tests/gui/test_lag.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore

from tests.gui.conftest import make_window
from tests.gui.fake_engine import FakeEngine
from tests.gui.test_lag import CHANNELS, PROBE_MS, RATE_HZ, LagProbe

HISTORY_POINTS = 1_000_000


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[QtCore.QSettings]:
    yield QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat)


def history(n: int) -> np.ndarray:
    cols = np.zeros((n, 6))
    cols[:, 0] = np.arange(-n, 0)  # older than every live sample
    cols[:, 1] = np.arange(n) * 0.1 - n * 0.1
    cols[:, 2] = 3.0 + 1.2 * np.arange(n) / n
    cols[:, 3] = 1.5
    cols[:, 4] = 25.0
    return cols


def run_loaded(
    qtbot, settings: QtCore.QSettings, seconds: float, points: int = HISTORY_POINTS
) -> tuple[float, float, int, int]:
    engine = FakeEngine(samples_per_run=10**9, period_s=1 / RATE_HZ)
    window = make_window(qtbot, engine, CHANNELS, settings)
    window.show()
    qtbot.waitExposed(window)
    for n in range(CHANNELS):
        window.controller.start_run(f"CH{n + 1:02d}", f"CELL-{n:04d}")
    qtbot.waitUntil(
        lambda: len(window.controller.state.active_channels()) == CHANNELS, timeout=5000
    )
    shown = window.plots.channel_id or "CH01"
    window.plots.show_channel(shown)
    if points:
        window.plots.set_history_columns(shown, history(points))
    probe = LagProbe(PROBE_MS)
    redraws = window.plots.redraws
    probe.start()
    qtbot.wait(int(seconds * 1000))
    probe.stop()
    redraws = window.plots.redraws - redraws
    window.close()
    engine.shutdown(5)
    lags = np.array(probe.lags_ms)
    p99, worst = float(np.percentile(lags, 99)), float(lags.max())
    print(
        f"\nG1 loaded: {CHANNELS} ch x {RATE_HZ:g} Hz + {points:,}-point history shown, "
        f"{seconds:g} s: p99 {p99:.1f} ms, max {worst:.1f} ms, {len(lags)} ticks, "
        f"{redraws} plot redraws"
    )
    return p99, worst, len(lags), redraws


def test_loaded_plot_keeps_the_event_loop_turning(qtbot, settings) -> None:
    seconds = 3.0
    p99, worst, ticks, redraws = run_loaded(qtbot, settings, seconds)
    assert ticks > seconds * 1000 / PROBE_MS / 4
    assert redraws > 0
    assert worst >= p99 >= 0


@pytest.mark.slow
def test_loaded_plot_lag_meets_goal(qtbot, settings) -> None:
    plain, _worst, _ticks, _redraws = run_loaded(qtbot, settings, 20.0, points=0)
    p99, _worst, _ticks, redraws = run_loaded(qtbot, settings, 20.0)
    assert redraws > 0
    limit = max(100.0, 1.5 * plain)
    assert p99 <= limit, f"p99 lag {p99:.1f} ms with the history, {plain:.1f} ms without"

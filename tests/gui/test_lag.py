"""G1: event-loop lag with 32 channels streaming at 10 Hz into the real window.

A probe QTimer asks to fire every 20 ms; how late each tick arrives is the time the event loop was
busy with something else. The short form runs in every test run and reports the figure; the slow
form (``-m slow``) runs longer and asserts the goal: p99 <= 100 ms, max <= 250 ms, Stop all to
every output off <= 300 ms (../shared/reference/reliability.md, G1). With the test double the
stop figure covers the GUI's share (click to engine call on the reserved thread), not a real
instrument's reply time.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PySide6 import QtCore

from tests.gui.conftest import make_window
from tests.gui.fake_engine import FakeEngine

CHANNELS = 32
RATE_HZ = 10.0
PROBE_MS = 20


class LagProbe(QtCore.QObject):
    """Measures how late a repeating timer fires (ms); wall time is the point here."""

    def __init__(self, interval_ms: int) -> None:
        super().__init__()
        self.interval_s = interval_ms / 1000
        self.lags_ms: list[float] = []
        self._timer = QtCore.QTimer(self)
        self._timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0

    def start(self) -> None:
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lags_ms.append(max((now - self._last - self.interval_s) * 1000, 0.0))
        self._last = now


def run_lag(qtbot, settings, seconds: float) -> tuple[float, float, int, int, float]:
    engine = FakeEngine(samples_per_run=10**9, period_s=1 / RATE_HZ)
    window = make_window(qtbot, engine, CHANNELS, settings)
    window.show()
    qtbot.waitExposed(window)
    for n in range(CHANNELS):
        window.controller.start_run(f"CH{n + 1:02d}", f"CELL-{n:04d}")
    qtbot.waitUntil(
        lambda: len(window.controller.state.active_channels()) == CHANNELS, timeout=5000
    )
    probe = LagProbe(PROBE_MS)
    seen_before = sum(v.samples_seen for v in window.controller.state.channels.values())
    probe.start()
    qtbot.wait(int(seconds * 1000))
    probe.stop()
    seen = sum(v.samples_seen for v in window.controller.state.channels.values()) - seen_before
    started = time.perf_counter()
    qtbot.mouseClick(window.stop_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not engine.outputs_on, timeout=5000)
    stop_ms = (time.perf_counter() - started) * 1000
    window.close()
    engine.shutdown(5)
    lags = np.array(probe.lags_ms)
    p99, worst = float(np.percentile(lags, 99)), float(lags.max())
    print(
        f"\nG1 lag probe: {CHANNELS} ch x {RATE_HZ:g} Hz for {seconds:g} s: "
        f"p99 {p99:.1f} ms, max {worst:.1f} ms, {len(lags)} ticks, {seen} samples shown; "
        f"Stop all -> every output off in {stop_ms:.0f} ms"
    )
    return p99, worst, len(lags), seen, stop_ms


def test_lag_probe_short_form(qtbot, settings) -> None:
    seconds = 3.0
    p99, worst, ticks, seen, _stop_ms = run_lag(qtbot, settings, seconds)
    # The figure is reported, not asserted here (timing goals live in the slow form); what must
    # hold is that the loop kept turning and samples kept arriving.
    assert ticks > seconds * 1000 / PROBE_MS / 4
    assert seen > CHANNELS * RATE_HZ * seconds / 4
    assert worst >= p99 >= 0


@pytest.mark.slow
def test_lag_p99_meets_goal_under_32_channels_at_10_hz(qtbot, settings) -> None:
    seconds = float(os.environ.get("GUI_LAG_SECONDS", "60"))
    p99, worst, _ticks, seen, stop_ms = run_lag(qtbot, settings, seconds)
    assert seen > CHANNELS * RATE_HZ * seconds * 0.9
    assert p99 <= 100.0, f"p99 event-loop lag {p99:.1f} ms exceeds 100 ms"
    assert worst <= 250.0, f"max event-loop lag {worst:.1f} ms exceeds 250 ms"
    assert stop_ms <= 300.0, f"Stop all took {stop_ms:.0f} ms to turn every output off"

"""Ring buffers, the live dQ/dV estimate and the timer-driven redraw."""

from __future__ import annotations

import numpy as np

from station.events import Sample
from ui.plots import LivePlots, RingBuffer, dq_dv, samples_to_columns


def make(seq: int, step: int = 0) -> Sample:
    return Sample(
        "r", "CH1", seq, seq * 0.5, step, 3.0 + seq * 1e-3, 1.0, 25.0 if seq % 2 else None
    )


def test_ring_buffer_keeps_the_newest_in_order_across_wraps() -> None:
    ring = RingBuffer(7)
    reference: list[int] = []
    for start, count in ((0, 3), (3, 5), (8, 1), (9, 20), (29, 6)):
        ring.append([make(s) for s in range(start, start + count)])
        reference = (reference + list(range(start, start + count)))[-7:]
        cols = ring.columns()
        assert cols[:, 0].tolist() == reference
        assert np.allclose(cols[:, 1], np.array(reference) * 0.5, rtol=0, atol=0)
    temperatures = ring.columns()[:, 4]
    assert np.isnan(temperatures[np.array(reference) % 2 == 0]).all()


def test_dq_dv_of_a_linear_cell_is_the_inverse_slope() -> None:
    # Constant 2 A charge for 1 h with V = 3.0 V + 0.5 V/Ah * Q: dQ/dV = 2 Ah/V everywhere.
    t_s = np.linspace(0.0, 3600.0, 3601)
    q_ah = 2.0 * t_s / 3600.0
    voltage_v = 3.0 + 0.5 * q_ah
    current_a = np.full_like(t_s, 2.0)
    centres, dqdv = dq_dv(t_s, voltage_v, current_a, bin_v=0.01)
    assert len(centres) == 100
    assert np.allclose(centres[[0, -1]], [3.005, 3.995], rtol=0, atol=1e-12)
    assert np.allclose(dqdv, 2.0, rtol=1e-9)


def test_dq_dv_plateau_gives_a_peak_at_the_plateau_voltage() -> None:
    # A flat plateau at 3.4 V holding 0.5 Ah between two slopes: the peak bin is at 3.4 V.
    q_ah = np.linspace(0.0, 1.5, 15001)
    voltage_v = np.interp(q_ah, [0.0, 0.5, 1.0, 1.5], [3.2, 3.395, 3.405, 3.6])
    t_s = q_ah * 3600.0
    centres, dqdv = dq_dv(t_s, voltage_v, np.ones_like(t_s), bin_v=0.01)
    assert abs(centres[np.argmax(dqdv)] - 3.4) < 0.01


def test_dq_dv_needs_data() -> None:
    empty = np.empty(0)
    assert dq_dv(empty, empty, empty)[0].size == 0


def test_samples_to_columns() -> None:
    cols = samples_to_columns([make(s, step=2) for s in range(4)])
    assert cols.shape == (4, 6) and cols[:, 5].tolist() == [2, 2, 2, 2]


def test_redraw_happens_on_timer_and_shows_selected_channel(qtbot) -> None:
    plots = LivePlots()
    qtbot.addWidget(plots)
    plots.show_channel("CH1")
    redraws = plots.redraws
    plots.add_samples("CH1", [make(s) for s in range(100)])
    plots.add_samples("CH2", [make(s) for s in range(10)])
    assert plots.redraws == redraws, "adding samples does not redraw by itself"
    qtbot.waitUntil(lambda: plots.redraws == redraws + 1, timeout=1000)
    x, y = plots.curves["voltage"].getData()
    assert len(x) == 100 and x[0] == 0.0 and x[-1] == 49.5 / 60  # minutes
    for key in ("voltage", "current", "temperature"):
        item = plots.plots[key]
        assert item.clipToViewMode()
        _factor, auto, method = item.downsampleMode()
        assert auto and method == "peak"
    history = [make(s) for s in range(-50, 0)]
    plots.set_history("CH1", history)
    assert len(plots.data("CH1")) == 150
    plots.stop()

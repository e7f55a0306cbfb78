"""Ring buffers, the live dQ/dV estimate and the timer-driven redraw."""

from __future__ import annotations

import numpy as np

from station.events import Sample
from ui.plots import MIN_BINS, LivePlots, RingBuffer, dq_dv, peak_decimate, samples_to_columns


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


def brute_force_extremes(
    x: np.ndarray, y: np.ndarray, index: np.ndarray, x_min: float, x_max: float, bins: int
) -> None:
    """Check by plain loops that every pixel slice of the window keeps its raw min and max."""
    kept = set(index.tolist())
    window = [i for i in range(len(x)) if x_min <= x[i] <= x_max]
    lo, hi = max(window[0] - 1, 0), min(window[-1] + 2, len(x))
    n = hi - lo
    per = n // bins
    starts = [lo + k * per for k in range(bins)] + [lo + bins * per]
    for k in range(len(starts)):
        end = starts[k + 1] if k + 1 < len(starts) else hi
        chunk = range(starts[k], end)
        if not chunk:
            continue
        values = [y[i] for i in chunk]
        assert any(i in kept and y[i] == min(values) for i in chunk), f"slice {k} lost its min"
        assert any(i in kept and y[i] == max(values) for i in chunk), f"slice {k} lost its max"


def test_peak_decimation_keeps_every_slice_extreme_and_time_order() -> None:
    rng = np.random.default_rng(7)
    for n, bins, window in ((10_007, 50, (0.0, 1e9)), (30_000, 64, (1000.0, 2500.0))):
        x = np.cumsum(rng.uniform(0.05, 0.15, n))
        y = rng.normal(3.7, 0.01, n)
        y[rng.integers(0, n, 20)] += rng.choice([-1.0, 1.0], 20)  # isolated spikes
        xd, yd = peak_decimate(x, y, window[0], window[1], bins)
        assert len(xd) <= 2 * bins + 4
        assert np.all(np.diff(xd) >= 0), "decimated curve goes back in time"
        index = np.searchsorted(x, xd)
        assert np.array_equal(x[index], xd) and np.array_equal(y[index], yd), "not raw points"
        brute_force_extremes(x, y, index, window[0], window[1], bins)
        visible = (x >= window[0]) & (x <= window[1])
        assert yd.max() >= y[visible].max() and yd.min() <= y[visible].min()


def test_peak_decimation_leaves_short_windows_alone() -> None:
    x = np.arange(100.0)
    y = np.sin(x)
    xd, yd = peak_decimate(x, y, 10.0, 20.0, 50)
    assert xd.tolist() == list(range(9, 22)) and np.array_equal(yd, y[9:22])
    assert peak_decimate(x[:0], y[:0], 0.0, 1.0, 50)[0].size == 0


def test_long_history_reaches_pyqtgraph_decimated(qtbot) -> None:
    plots = LivePlots()
    qtbot.addWidget(plots)
    n = 200_000
    cols = np.zeros((n, 6))
    cols[:, 0] = np.arange(n)
    cols[:, 1] = np.arange(n) * 0.1
    cols[:, 2] = 3.7
    cols[n // 3, 2] = 4.5  # one spike must survive
    cols[:, 3] = 1.0
    cols[:, 4] = 25.0
    plots.show_channel("CH1")
    plots.set_history_columns("CH1", cols)
    x, y = plots.curves["voltage"].getData()
    assert len(x) <= 2 * max(int(plots.plots["voltage"].getViewBox().width()), MIN_BINS) + 4
    assert y.max() == 4.5 and x[0] == 0.0 and abs(x[-1] - (n - 1) * 0.1 / 60) < 1e-9
    plots.add_samples(
        "CH1", [Sample("r", "CH1", n + s, (n + s) * 0.1, 0, 3.6, 1.0, None) for s in range(5)]
    )
    plots.redraw()
    x, y = plots.curves["voltage"].getData()
    assert y[-1] == 3.6 and abs(x[-1] - (n + 4) * 0.1 / 60) < 1e-9
    plots.stop()


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
    history = [make(s) for s in range(-50, 0)]
    plots.set_history("CH1", history)
    assert len(plots.data("CH1")) == 150
    plots.stop()

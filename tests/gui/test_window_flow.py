"""Acceptance: the real window, offscreen, driven like a technician would at the bench."""

from __future__ import annotations

import threading

import pytest
from PySide6 import QtCore

from tests.gui.conftest import make_window
from tests.gui.fake_engine import FakeEngine
from ui.app import CloseChoice, MainWindow
from ui.engine_api import GateResult
from ui.state import ChannelState

ENTER = QtCore.Qt.Key.Key_Return


def scan(qtbot, window: MainWindow, text: str) -> None:
    """A keyboard-wedge scanner: types the ID into whatever has focus, then Enter."""
    window.intake.field.setFocus()
    qtbot.keyClicks(window.intake.field, text)
    qtbot.keyClick(window.intake.field, ENTER)


def test_scan_start_samples_grade_and_reasons(qtbot, window: MainWindow, engine: FakeEngine):
    scan(qtbot, window, "cell-0001")
    assert window.controller.assigned == {"CH01": "CELL-0001"}
    assert "CH01" in window.intake.result.text()

    scan(qtbot, window, "CELL-0001")
    assert "already scanned" in window.intake.result.text()

    qtbot.keyClick(window.intake.field, ENTER)  # empty Enter starts the assigned cells
    tile = window.overview.tiles["CH01"]
    qtbot.waitUntil(lambda: tile.state_text == "RUNNING", timeout=3000)
    qtbot.waitUntil(lambda: len(window.plots.buffer("CH01")) >= 5, timeout=3000)
    qtbot.waitUntil(lambda: window.plots.curves["voltage"].getData()[0] is not None, timeout=3000)
    x, y = window.plots.curves["voltage"].getData()
    # The fake cell's voltage is v0 + dv * seq exactly; the plot shows the same points.
    assert y[0] == engine.v0_v
    assert abs(y[-1] - (engine.v0_v + engine.dv_per_sample_v * (len(y) - 1))) < 1e-12
    assert "V" in tile.values_text

    qtbot.waitUntil(lambda: tile.state_text == "DONE", timeout=5000)
    qtbot.waitUntil(lambda: tile.grade_text != "", timeout=3000)
    assert tile.grade_text == "A"
    # capacity = 1 A x 39 s / 3600 = 0.01083 Ah against a 0.005 Ah minimum (exact arithmetic).
    assert window.detail.grade_label.text() == "A"
    reason = window.detail.reasons.item(0).text()
    assert "capacity_min: 0.0108333 Ah against limit 0.005 Ah" in reason
    assert "0.00583333 Ah inside" in reason and reason.endswith("pass")
    assert window.batch.model.rowCount() == 1
    # G2: every engine command ran on a worker thread, never the GUI thread.
    assert engine.calls and all(name != "MainThread" for _call, name in engine.calls)
    assert threading.current_thread().name == "MainThread"


def test_limit_trip_shows_reason_on_tile_and_banner(qtbot, settings) -> None:
    engine = FakeEngine(trip_cells=("CELL-HOT",), samples_per_run=100)
    window = make_window(qtbot, engine, 2, settings)
    window.show()
    scan(qtbot, window, "CELL-HOT")
    window.controller.start_assigned()
    tile = window.overview.tiles["CH01"]
    qtbot.waitUntil(lambda: tile.state_text == "TRIPPED", timeout=5000)
    assert window.banner.isVisible()
    # 25 + 0.5 k reaches 45 at k = 40.
    expected = "CH01: limit 'temperature_max' tripped at 45 °C (limit 45 °C); output turned off"
    assert window.banner.messages == [expected]
    assert tile.alarm_text == expected.removeprefix("CH01: ")
    assert "CH01" not in engine.outputs_on
    window.close()
    engine.shutdown(5)


def test_stop_all_button_and_shortcut_stop_every_channel(qtbot, settings) -> None:
    engine = FakeEngine(samples_per_run=10_000, period_s=0.01)
    window = make_window(qtbot, engine, 4, settings)
    window.show()
    for n in range(1, 4):
        scan(qtbot, window, f"CELL-{n:04d}")
    window.controller.start_assigned()
    tiles = [window.overview.tiles[f"CH{n:02d}"] for n in range(1, 4)]
    qtbot.waitUntil(lambda: all(t.state_text == "RUNNING" for t in tiles), timeout=3000)
    assert engine.outputs_on == {"CH01", "CH02", "CH03"}

    with qtbot.waitSignal(window.controller.stop_all_finished, timeout=5000) as blocker:
        qtbot.mouseClick(window.stop_button, QtCore.Qt.MouseButton.LeftButton)
    assert blocker.args == [True, "All channels stopped, outputs off"]
    assert engine.outputs_on == set()
    qtbot.waitUntil(lambda: all(t.state_text == "STOPPED" for t in tiles), timeout=3000)
    stop_thread = [name for call, name in engine.calls if call == "stop_all"]
    assert stop_thread and stop_thread[0].startswith("gui-stop")

    # The shortcut works while the scan field has focus.
    window.intake.field.setFocus()
    with qtbot.waitSignal(window.controller.stop_all_finished, timeout=5000):
        window.stop_button.shortcuts[0].activated.emit()
    assert [call for call, _ in engine.calls].count("stop_all") == 2
    window.close()


def test_pause_and_resume_selected_channel(qtbot, window: MainWindow, engine: FakeEngine):
    engine.samples_per_run = 10_000
    scan(qtbot, window, "CELL-0002")
    window.controller.start_assigned()
    tile = window.overview.tiles["CH01"]
    qtbot.waitUntil(lambda: tile.state_text == "RUNNING", timeout=3000)
    window.pause_action.trigger()
    qtbot.waitUntil(lambda: tile.state_text == "PAUSED", timeout=3000)
    window.resume_action.trigger()
    qtbot.waitUntil(lambda: tile.state_text == "RUNNING", timeout=3000)


def test_closing_with_active_runs_asks_and_stops_workers(qtbot, settings) -> None:
    engine = FakeEngine(samples_per_run=10_000)
    window = make_window(qtbot, engine, 2, settings)
    asked: list[list[str]] = []

    def choose(active: list[str]) -> CloseChoice:
        asked.append(active)
        return CloseChoice.CANCEL if len(asked) == 1 else CloseChoice.STOP_AND_QUIT

    window.confirm_close = choose
    window.show()
    scan(qtbot, window, "CELL-0003")
    window.controller.start_assigned()
    qtbot.waitUntil(lambda: window.controller.state.active_channels() == ["CH01"], timeout=3000)

    window.close()
    assert window.isVisible(), "cancel keeps the window and the run"
    assert engine.alive_threads() == ["CH01"]

    closed_after: list[bool] = []
    window.after_shutdown.append(lambda: closed_after.append(engine.alive_threads() == []))
    window.close()
    assert not window.isVisible()
    assert closed_after == [True], "after-shutdown steps run once, after the runs have stopped"
    assert asked == [["CH01"], ["CH01"]]
    assert window.shutdown_clean is True
    assert engine.shutdown_called
    assert engine.alive_threads() == []
    assert not [t for t in threading.enumerate() if t.name.startswith("gui-")]


def test_full_history_loads_off_the_gui_thread(qtbot, window: MainWindow, engine: FakeEngine):
    scan(qtbot, window, "CELL-0004")
    window.controller.start_assigned()
    tile = window.overview.tiles["CH01"]
    qtbot.waitUntil(lambda: tile.state_text == "DONE", timeout=5000)
    with qtbot.waitSignal(window.controller.history_ready, timeout=3000) as blocker:
        window.plots.history_button.click()
    channel_id, samples = blocker.args
    assert channel_id == "CH01" and len(samples) == engine.samples_per_run
    assert [name for call, name in engine.calls if call == "history"][0].startswith("gui-worker")
    assert len(window.plots.data("CH01")) == engine.samples_per_run


def test_layout_and_last_bench_are_remembered(qtbot, settings) -> None:
    engine = FakeEngine()
    first = make_window(qtbot, engine, 2, settings)
    first.show()
    # Inside the offscreen platform's 800x600 screen, which restoreGeometry clamps to.
    first.resize(790, 590)
    first.splitter.setSizes([500, 280])
    sizes = first.splitter.sizes()
    first.close()
    assert settings.value("bench/last") == "test-bench"

    second = make_window(qtbot, engine, 2, settings)
    second.show()
    assert second.size() == QtCore.QSize(790, 590)
    assert second.splitter.sizes() == sizes
    second.close()


def test_selected_channel_state_is_reflected_in_detail(qtbot, window: MainWindow) -> None:
    window.overview.select("CH02")
    assert window.plots.channel_id == "CH02"
    assert window.controller.state.channel("CH02").state is ChannelState.IDLE
    assert window.detail.state_label.text() == "IDLE"


LOT_HEADER = (
    "cell_id,lot,chemistry,format,rated_capacity_ah,voltage_min_v,voltage_max_v,"
    "max_charge_current_a,max_discharge_current_a\n"
)


def test_lot_import_then_scan_shows_the_cell_from_the_lot(qtbot, window: MainWindow, tmp_path):
    path = tmp_path / "lot.csv"
    path.write_text(
        LOT_HEADER
        + "CELL-0100,LOT-7,NMC,cylindrical,3.0,2.5,4.2,3,6\n"
        + "CELL-0101,LOT-7,NMC,cylindrical,3.0,2.5,4.2,3,6\n",
        encoding="utf-8",
    )
    with qtbot.waitSignal(window.controller.intake_result, timeout=3000):
        window.intake.lot_import_requested.emit(str(path))
    assert window.intake.result.text() == f"Lot imported: 2 cells from {path}"
    scan(qtbot, window, "CELL-0101")
    assert window.intake.result.text() == (
        "CELL-0101 (lot LOT-7, NMC 3 Ah): no intake screen configured -> CH01"
    )


def test_bad_lot_file_names_row_and_column_and_imports_nothing(qtbot, window, tmp_path):
    path = tmp_path / "lot.csv"
    path.write_text(
        LOT_HEADER
        + "CELL-0100,LOT-7,NMC,cylindrical,3.0,2.5,4.2,3,6\n"
        + "CELL-0101,LOT-7,NMC,cylindrical,-3.0,2.5,4.2,3,6\n",
        encoding="utf-8",
    )
    with qtbot.waitSignal(window.controller.intake_result, timeout=3000):
        window.intake.lot_import_requested.emit(str(path))
    text = window.intake.result.text()
    assert text.startswith("Lot not imported: ") and "row 2" in text
    assert "rated_capacity_ah" in text
    assert window.controller.lot == {}


def test_remaining_time_and_instrument_test_run_in_workers(qtbot, settings) -> None:
    engine = FakeEngine(samples_per_run=10_000)
    threads: list[str] = []

    def estimate(cell_id: str, recipe_name: str) -> float:
        threads.append(threading.current_thread().name)
        return 7200.0 if (cell_id, recipe_name) == ("CELL-0005", "fake-cccv") else 0.0

    def connection_test(name: str) -> str:
        threads.append(threading.current_thread().name)
        return f"identified {name.upper()} SIM"

    window = make_window(qtbot, engine, 2, settings)
    window.controller.estimate_s = estimate
    window.controller.instrument_test = connection_test
    window.show()
    window.controller.start_run("CH01", "CELL-0005")
    tile = window.overview.tiles["CH01"]
    qtbot.waitUntil(lambda: "left)" in tile.time_text, timeout=3000)
    view = window.controller.state.channel("CH01")
    # remaining = estimate - elapsed, elapsed from the fake's clock (1 s per sample).
    assert view.remaining_s == 7200.0 - view.elapsed_s
    with qtbot.waitSignal(window.controller.instrument_result, timeout=3000):
        window.instruments_view.test_requested.emit("cabinet")
    assert window.instruments_view.status.text() == "cabinet: identified CABINET SIM"
    assert threads and all(name.startswith("gui-worker") for name in threads)
    window.close()


@pytest.mark.parametrize("channels", [1, 16, 64])
def test_overview_holds_1_to_64_channels_without_horizontal_scroll(qtbot, settings, channels):
    engine = FakeEngine()
    window = make_window(qtbot, engine, channels, settings)
    window.resize(790, 590)
    window.show()
    qtbot.waitExposed(window)
    overview = window.overview
    assert len(overview.tiles) == channels
    qtbot.waitUntil(lambda: overview.widget().width() <= overview.viewport().width())
    assert not overview.horizontalScrollBar().isVisible()
    cols = overview.columns
    assert 1 <= cols <= channels
    # Tiles keep their minimum width (200 px) in the columns chosen.
    assert cols == 1 or cols * 200 <= overview.viewport().width()
    window.close()


def test_failed_intake_screen_sends_the_cell_to_quarantine(qtbot, window: MainWindow) -> None:
    screened: list[str] = []

    def screen(cell_id: str, channel_id: str) -> GateResult:
        assert channel_id == "CH01"
        screened.append(threading.current_thread().name)
        return GateResult(False, "OCV 1.92 V below 2.5 V")

    window.controller.screener = screen
    with qtbot.waitSignal(window.controller.intake_result, timeout=3000):
        scan(qtbot, window, "CELL-0200")
    assert window.intake.result.text() == "CELL-0200: OCV 1.92 V below 2.5 V -> QUARANTINE"
    assert window.controller.assigned == {}
    scan(qtbot, window, "CELL-0200")
    assert window.intake.result.text() == "CELL-0200 already scanned: in quarantine"
    assert len(screened) == 1 and screened[0].startswith("gui-worker")


def test_simulated_bench_is_marked_in_toolbar_title_and_status_bar(qtbot, window, settings):
    assert "SIMULATED" in window.windowTitle()
    assert window.mode_label.text() == "SIMULATED"
    assert window.sim_badge.isVisible() and "SIMULATED" in window.sim_badge.text()
    hardware = MainWindow(simulated=False, settings=settings)
    qtbot.addWidget(hardware)
    assert not hasattr(hardware, "sim_badge") and "SIMULATED" not in hardware.windowTitle()


def test_a_run_ending_after_the_workers_shut_down_is_left_for_later_grading(
    qtbot, settings
) -> None:
    """Runs end as the engine stops while the window closes; their RunEnded events may arrive
    after the worker pool has shut down. Grading is skipped (no exception in the event loop, no
    grade call) and the stored run is graded later by `station grade`."""
    engine = FakeEngine()
    window = make_window(qtbot, engine, 2, settings)
    controller = window.controller
    calls: list[str] = []
    controller.grade_provider = lambda run_id: calls.append(run_id)
    try:
        window.close()  # confirm_close answers "stop and quit": runs stop, the workers shut down
        qtbot.waitUntil(lambda: controller.workers.closed, timeout=10_000)
        controller.request_grade("run-after-close")
        assert calls == []
        assert controller.shutdown(stop_runs=True) is True  # closing again is harmless
    finally:
        engine.shutdown(5)

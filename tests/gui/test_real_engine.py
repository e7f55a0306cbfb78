"""Acceptance against the real engine: Engine + Storage + the engine team's deterministic test
cycler (tests/engine/fakes.py) behind the engine's Connector seam, on an accelerated clock.

The window is driven as at the bench: connect, scan, Enter to start, samples on the tile and the
plot, a temperature trip shown with its reason on the tile and the banner, Stop all turning every
output off, full history read back from storage.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6 import QtCore

from station.clock import ScaledClock
from station.config import load_preset
from station.engine import Engine
from station.storage import Storage
from tests.engine.fakes import FakeConnector, bench_models, make_cell
from tests.gui.test_window_flow import scan
from ui.adapters import instruments_from_bench, storage_history
from ui.app import CloseChoice, MainWindow
from ui.controller import StationController
from ui.engine_api import GateResult

BENCH = load_preset("sim-demo")
SPEED = 60.0  # slow enough that a run is still going when the test looks at it


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[tuple[Engine, Storage, FakeConnector]]:
    clock = ScaledClock(t0_s=1_800_000_000.0, w0_s=time.time(), speed=SPEED)
    models = bench_models(soc=0.5)
    storage = Storage(tmp_path / "bench.db", clock, batch_interval_s=0.1)
    connector = FakeConnector(clock, models)
    engine = Engine(BENCH, storage, clock, connector=connector, operator="gui-test")
    yield engine, storage, connector
    engine.shutdown(10)
    storage.close()


def test_bench_flow_against_the_real_engine(qtbot, settings, bench) -> None:
    engine, storage, connector = bench

    def screen(cell_id: str, _channel_id: str) -> GateResult:
        cell, created = storage.find_or_create_cell(cell_id, who="gui-test", template=make_cell())
        return GateResult(True, f"{'new' if created else 'known'} {cell.chemistry} cell")

    controller = StationController(
        engine,
        list(BENCH.channels),
        recipe="fast-triage",
        history_loader=storage_history(storage),
        screener=screen,
    )
    window = MainWindow(
        simulated=True,
        controller=controller,
        settings=settings,
        bench_name=BENCH.name,
        instruments=instruments_from_bench(BENCH),
    )
    controller.setParent(window)
    window.confirm_close = lambda _active: CloseChoice.STOP_AND_QUIT
    qtbot.addWidget(window)
    window.show()

    with qtbot.waitSignal(controller.connected, timeout=10_000):
        controller.connect_bench()
    assert window.instruments_view.table.item(0, 3).text() == "connected"

    for cell_id in ("CELL-A001", "CELL-A002"):
        with qtbot.waitSignal(controller.intake_result, timeout=5000):
            scan(qtbot, window, cell_id)
    assert controller.assigned == {"ch01": "CELL-A001", "ch02": "CELL-A002"}
    assert (
        "CELL-A002" in window.intake.result.text() and "new NMC cell" in window.intake.result.text()
    )

    cabinet = connector.opened["cabinet"]
    # ch02 holds a warm cell (49.5 °C) whose sensor then climbs 0.01 K/s (0.6 K/min, under the
    # 1 K/min dT/dt limit): it must trip at the fast-triage recipe's temperature_max_c = 50 °C.
    hot = cabinet.channels[BENCH.channels["ch02"].hw_channel]
    hot.cell.temperature_c = hot.cell.ambient_c = 49.5
    hot.faults.heater_c_per_s = 0.01
    hot.faults.fault_from_t_s = engine.clock.now()
    qtbot.keyClick(window.intake.field, QtCore.Qt.Key.Key_Return)

    tile1, tile2 = window.overview.tiles["ch01"], window.overview.tiles["ch02"]
    qtbot.waitUntil(lambda: tile1.state_text == "RUNNING", timeout=10_000)
    qtbot.waitUntil(lambda: controller.state.channel("ch01").samples_seen >= 3, timeout=20_000)
    assert tile1.values_text.startswith(f"{controller.state.channel('ch01').voltage_v:.3f} V")
    qtbot.waitUntil(lambda: len(window.plots.buffer("ch01")) >= 3, timeout=5000)

    qtbot.waitUntil(lambda: tile2.state_text == "TRIPPED", timeout=30_000)
    alarm = controller.state.channel("ch02").alarm
    assert alarm.startswith("ch02: limit 'temperature_max' tripped at 50"), alarm
    assert alarm.endswith("°C (limit 50 °C); output turned off"), alarm
    assert any(alarm == message for message in window.banner.messages)
    assert not hot.output_on

    with qtbot.waitSignal(controller.stop_all_finished, timeout=10_000) as stopped:
        qtbot.mouseClick(window.stop_button, QtCore.Qt.MouseButton.LeftButton)
    assert stopped.args[0] is True
    assert all(not channel.output_on for channel in cabinet.channels.values())
    qtbot.waitUntil(lambda: tile1.state_text == "STOPPED", timeout=10_000)

    storage.flush()
    window.overview.select("ch01")
    with qtbot.waitSignal(controller.history_ready, timeout=10_000) as history:
        window.plots.history_button.click()
    _channel, samples = history.args
    assert [s.seq for s in samples] == list(range(len(samples)))
    assert len(samples) >= controller.state.channel("ch01").samples_seen

    window.close()
    assert window.shutdown_clean is True

"""Intake screening over the simulator: scan, the cell's OCV / 1 kHz ACIR measured through
``Engine.measure_screen`` on the meter's worker, the gate decides pass (assigned to the channel
holding the cell) or quarantine (with the reason).

Reference: the simulator's own cell model in the meter's fixture (its 1 kHz impedance real part
and terminal voltage), read in-process, independent of the driver, engine and GUI. Tolerances as
in tests/engine/test_measure_screen.py: the simulated BT3562 adds two counts of noise to the
resistance, so 1 % covers it; the voltage within 1 mV.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from hardware_sim.devices.bt356x import Bt356x
from station.config import sim_lot
from station.engine import Engine
from station.storage import Storage
from tests.gui.test_window_flow import scan
from tests.reliability.harness import InProcessBench, inprocess_bench
from ui.app import CloseChoice, MainWindow
from ui.launch import build_station_window

SEED = 7
GOOD_CELL = "REV0070000009"  # ch01, no defect in seed 7's ground truth
REVERSED_CELL = "REV0070000030"  # ch04, seeded "reversed" defect: the meter reads it reversed


@dataclass
class SimStation:
    sim: InProcessBench
    engine: Engine
    storage: Storage
    window: MainWindow

    def place_in_meter(self, cell_id: str) -> Bt356x:
        """The technician puts the scanned cell in the ACIR meter's fixture."""
        meter = self.sim.running.bench.device("acir").personality
        assert isinstance(meter, Bt356x)
        lot_cell = next(c for c in self.sim.running.bench.lot if c.cell_id == cell_id)
        meter.place_cell(lot_cell.cell)
        return meter


@contextmanager
def open_station(qtbot, settings, tmp_path: Path, *, speed: float = 60.0) -> Iterator[SimStation]:
    """The window ``station gui --sim`` builds, on an in-process simulator at ``speed``
    simulated seconds per wall second, connected; closed cleanly on exit."""
    with inprocess_bench(speed=speed, seed=SEED) as sim:
        clock = sim.launch.clock()
        storage = Storage(tmp_path / "station.db", clock, batch_interval_s=0.1)
        engine = Engine(sim.config, storage, clock, operator="gui-test")
        placed = sim_lot(sim.launch, sim.config)
        storage.add_cells([cell for cell, _ in placed], who="gui-test", why="simulated lot")
        window = build_station_window(
            sim.config, storage, engine, simulated=True, operator="gui-test", settings=settings
        )
        window.confirm_close = lambda _active: CloseChoice.STOP_AND_QUIT
        window.after_shutdown.append(storage.close)
        qtbot.addWidget(window)
        window.controller.place_lot(placed, assign=False)
        window.show()
        with qtbot.waitSignal(window.controller.connected, timeout=30_000):
            window.controller.connect_bench()
        yield SimStation(sim, engine, storage, window)
        if window.isVisible():
            window.close()
        assert window.shutdown_clean is True


@pytest.fixture
def station(qtbot, settings, tmp_path: Path) -> Iterator[SimStation]:
    with open_station(qtbot, settings, tmp_path) as opened:
        yield opened


def test_scan_screens_the_cell_and_assigns_or_quarantines(qtbot, station: SimStation) -> None:
    window, controller = station.window, station.window.controller
    meter = station.place_in_meter(GOOD_CELL)
    with qtbot.waitSignal(controller.intake_result, timeout=30_000) as result:
        scan(qtbot, window, GOOD_CELL)
    text, ok = result.args
    assert ok, text
    assert controller.assigned == {"ch01": GOOD_CELL}
    assert text.endswith(": pass -> ch01") and window.intake.result.text() == text
    match = re.search(r"OCV (\d+\.\d+) V, ACIR (\d+\.\d+) mΩ", text)
    assert match is not None, text
    with meter.lock:
        model = meter.cell
        assert model is not None
        model.advance_to(meter.clock.now())
        expected_mohm = float(model.impedance(1000.0).real) * 1000
        expected_v = model.terminal_voltage_v
    assert abs(float(match[2]) - expected_mohm) <= 0.01 * expected_mohm
    assert abs(float(match[1]) - expected_v) <= 1e-3

    station.place_in_meter(REVERSED_CELL)
    with qtbot.waitSignal(controller.intake_result, timeout=30_000) as result:
        scan(qtbot, window, REVERSED_CELL)
    text, ok = result.args
    assert not ok
    assert text == f"{REVERSED_CELL}: no reading (reversed) -> QUARANTINE"
    assert controller.quarantine == [REVERSED_CELL]
    assert "ch04" not in controller.assigned and not controller.screening
    scan(qtbot, window, REVERSED_CELL)
    assert window.intake.result.text() == f"{REVERSED_CELL} already scanned: in quarantine"
    assert threading.current_thread().name == "MainThread"

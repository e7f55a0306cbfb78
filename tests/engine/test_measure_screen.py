"""``Engine.measure_screen`` over the real simulator and drivers: ACIR and OCV of the cell in the
channel's impedance meter fixture, measured on the meter's worker thread.

Reference: the simulator's own cell model (its 1 kHz impedance real part and terminal voltage),
read in-process, independent of the driver and engine. Tolerances: the simulated BT3562 adds
noise of two counts (one standard deviation) to the resistance, so 1 % of a ~20 mohm cell covers
it many times over; the voltage is compared within 1 mV (display counts plus cell drift while the
meter integrates, at rest both far below 1 mV).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from drivers.readings import ReadingStatus
from hardware_sim.devices.bt356x import Bt356x
from station.engine import Engine, EngineError, ScreenReading
from station.storage import Storage
from tests.reliability.harness import inprocess_bench


def test_screen_reads_the_fixture_cell_from_any_thread(tmp_path: Path) -> None:
    with inprocess_bench(speed=60.0, seed=7) as sim:
        clock = sim.launch.clock()
        storage = Storage(tmp_path / "s.db", clock)
        engine = Engine(sim.config, storage, clock)
        try:
            engine.connect()
            meter = sim.running.bench.device("acir").personality
            assert isinstance(meter, Bt356x) and meter.cell is not None
            channel_id = next(iter(sim.config.channels))
            results: list[ScreenReading] = []
            caller = threading.Thread(
                target=lambda: results.append(engine.measure_screen(channel_id, timeout_s=20))
            )
            caller.start()
            caller.join(30)
            assert len(results) == 1
            reading = results[0]
            cell = meter.cell
            with meter.lock:
                cell.advance_to(meter.clock.now())
                expected_r = float(cell.impedance(1000.0).real)
                expected_v = cell.terminal_voltage_v
            assert reading.channel_id == channel_id
            assert reading.status is ReadingStatus.VALID
            assert reading.frequency_hz == 1000.0
            assert reading.acir_ohm == pytest.approx(expected_r, rel=0.01)
            assert reading.ocv_v == pytest.approx(expected_v, abs=1e-3)
            assert "SIMULATED" in reading.instrument
        finally:
            engine.shutdown()
            storage.close()


def test_screen_without_a_cell_says_no_contact(tmp_path: Path) -> None:
    with inprocess_bench(speed=60.0, seed=7) as sim:
        sim.running.handle({"cmd": "place", "device": "acir", "cell": None})
        clock = sim.launch.clock()
        storage = Storage(tmp_path / "s.db", clock)
        engine = Engine(sim.config, storage, clock)
        try:
            engine.connect()
            reading = engine.measure_screen(next(iter(sim.config.channels)))
            assert reading.status is ReadingStatus.NO_CONTACT
            assert reading.acir_ohm is None
        finally:
            engine.shutdown()
            storage.close()


def test_screen_names_the_problem_before_connect_and_for_unknown_channels(
    tmp_path: Path,
) -> None:
    with inprocess_bench(speed=60.0, seed=7) as sim:
        clock = sim.launch.clock()
        storage = Storage(tmp_path / "s.db", clock)
        engine = Engine(sim.config, storage, clock)
        try:
            with pytest.raises(EngineError, match="not connected"):
                engine.measure_screen("ch01")
            engine.connect()
            with pytest.raises(EngineError, match="unknown channel"):
                engine.measure_screen("no-such-channel")
        finally:
            engine.shutdown()
            storage.close()

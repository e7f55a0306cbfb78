"""Pause and resume at awkward moments (test cycler, tests/engine/fakes.py, scaled clock): a
pause asked right after start, while the open-circuit probe or the first measurement is still in
progress, holds the run before its next step instead of being lost; a resume asked before that
hold took effect cancels it instead of leaving a run that never finishes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from drivers.readings import AcirReading
from station.clock import Clock, ScaledClock
from station.config import load_preset
from station.engine import Engine
from station.events import Event, RunEnded, RunOutcome, StepEnded, StepStarted
from station.storage import Storage

from .conftest import make_cell
from .fakes import FakeBenchAcir, FakeConnector, bench_models

BENCH = load_preset("sim-demo")
WAIT_S = 30.0  # generous wall-clock bound for events that take milliseconds


def kinds(events: list[Event], cls: type[StepStarted] | type[StepEnded]) -> list[str]:
    return [e.step_kind for e in events if isinstance(e, cls)]


def test_pause_on_running_holds_before_the_first_step_then_resume_completes(
    tmp_path: Path,
) -> None:
    clock = ScaledClock(t0_s=1_800_000_000.0, w0_s=time.time(), speed=60.0)
    storage = Storage(tmp_path / "c.db", clock)
    connector = FakeConnector(clock, bench_models())
    engine = Engine(BENCH, storage, clock, connector=connector)
    events: list[Event] = []
    probe_done = threading.Event()

    def watch(event: Event) -> None:
        events.append(event)
        if isinstance(event, StepEnded) and event.step_kind == "probe":
            probe_done.set()

    engine.subscribe(watch)
    try:
        engine.connect()
        storage.add_cells([make_cell("A")], who="t")
        run_id = engine.start_run("ch03", "A", "fast-triage")
        assert engine.snapshot()["ch03"].state == "running"
        engine.pause("ch03")
        assert engine.snapshot()["ch03"].state == "paused"
        assert probe_done.wait(WAIT_S)
        # Held: whatever was in progress when the pause landed (normally still the probe; under
        # load perhaps the first measurement) has ended, and nothing new starts for 5 polls.
        deadline = time.monotonic() + WAIT_S
        while len(kinds(events, StepStarted)) != len(kinds(events, StepEnded)):
            assert time.monotonic() < deadline, events
            clock.sleep(BENCH.poll_period_s)
        held = kinds(events, StepStarted)
        hold_until = clock.now() + 5 * BENCH.poll_period_s
        while clock.now() < hold_until:
            clock.sleep(BENCH.poll_period_s)
        assert kinds(events, StepStarted) == held
        assert not any(isinstance(e, RunEnded) for e in events)
        channel = connector.opened["cabinet"].channel(BENCH.channels["ch03"].hw_channel)  # type: ignore[attr-defined]
        assert not channel.output_on
        engine.resume("ch03")
        assert engine.snapshot()["ch03"].state == "running"
        assert engine.wait_idle(timeout_s=WAIT_S * 4)
        ended = [e for e in events if isinstance(e, RunEnded)]
        assert [(e.run_id, e.outcome) for e in ended] == [(run_id, RunOutcome.COMPLETED)]
        assert len(kinds(events, StepStarted)) > len(held)
    finally:
        engine.shutdown()
        storage.close()


class GatedAcir(FakeBenchAcir):
    """An ACIR meter whose reading waits until the test opens the gate (a slow measurement)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.gate = threading.Event()

    def measure(self) -> AcirReading:
        assert self.gate.wait(WAIT_S)
        return super().measure()


class GatedConnector(FakeConnector):
    def open(self, config) -> object:  # type: ignore[no-untyped-def]
        if config.driver == "hioki-bt3562":
            self.opened[config.name] = GatedAcir(self.clock)
            return self.opened[config.name]
        return super().open(config)


def gated_engine(tmp_path: Path) -> tuple[Engine, Storage, GatedConnector, list[Event]]:
    clock = ScaledClock(t0_s=1_800_000_000.0, w0_s=time.time(), speed=600.0)
    storage = Storage(tmp_path / "g.db", clock)
    connector = GatedConnector(clock, bench_models())
    engine = Engine(BENCH, storage, clock, connector=connector)
    events: list[Event] = []
    engine.subscribe(events.append)
    engine.connect()
    storage.add_cells([make_cell("A")], who="t")
    return engine, storage, connector, events


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_pause_and_resume_during_a_measurement_neither_is_lost(tmp_path: Path) -> None:
    # Paused and resumed while the first measurement is still in the meter: the resume must
    # cancel the pending pause, or the run holds forever once the reading arrives.
    engine, storage, connector, events = gated_engine(tmp_path)
    try:
        run_id = engine.start_run("ch03", "A", "fast-triage")
        wait_for(lambda: "acir" in kinds(events, StepStarted))
        engine.pause("ch03")
        engine.resume("ch03")
        meter = connector.opened["acir"]
        assert isinstance(meter, GatedAcir)
        meter.gate.set()
        assert engine.wait_idle(timeout_s=WAIT_S * 4)
        ended = [e for e in events if isinstance(e, RunEnded)]
        assert [(e.run_id, e.outcome) for e in ended] == [(run_id, RunOutcome.COMPLETED)]
    finally:
        engine.shutdown()
        storage.close()


def test_pause_during_a_measurement_holds_after_it(tmp_path: Path) -> None:
    engine, storage, connector, events = gated_engine(tmp_path)
    try:
        run_id = engine.start_run("ch03", "A", "fast-triage")
        wait_for(lambda: "acir" in kinds(events, StepStarted))
        engine.pause("ch03")
        meter = connector.opened["acir"]
        assert isinstance(meter, GatedAcir)
        meter.gate.set()
        wait_for(lambda: "acir" in kinds(events, StepEnded))
        clock = engine.clock
        hold_until = clock.now() + 5 * BENCH.poll_period_s
        while clock.now() < hold_until:
            clock.sleep(BENCH.poll_period_s)
        assert kinds(events, StepStarted) == ["probe", "acir"]
        assert engine.snapshot()["ch03"].state == "paused"
        engine.resume("ch03")
        assert engine.wait_idle(timeout_s=WAIT_S * 4)
        ended = [e for e in events if isinstance(e, RunEnded)]
        assert [(e.run_id, e.outcome) for e in ended] == [(run_id, RunOutcome.COMPLETED)]
    finally:
        engine.shutdown()
        storage.close()

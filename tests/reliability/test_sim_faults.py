"""S5 stuck instrument, S7 garbage values, S8 shutdown always runs: through the real engine,
drivers and TCP against the simulated cabinet, checking the simulated instrument's own channel
state (``workstatus``), never the station's belief. See shared/reference/reliability.md s. 6."""

from __future__ import annotations

import math
import random
import threading
import time
from pathlib import Path

import pytest

from hardware_sim.faults import Fault, FaultKind
from station.engine import Engine
from station.events import RunOutcome

from .harness import Batch, InProcessBench, inprocess_bench, insane, run_batch, stored_samples

SPEED = 600.0  # simulated s per wall s


def _wait_for_samples(batch: Batch, n: int, timeout_s: float = 20.0) -> None:
    limit = time.monotonic() + timeout_s
    while batch.samples_published < n and time.monotonic() < limit:
        time.sleep(0.02)
    assert batch.samples_published >= n, "no data before the fault"


def test_stuck_cabinet_faults_every_run_and_leaves_no_output_on(tmp_path: Path) -> None:
    """The cabinet stops answering mid-run (every reply dropped, commands still applied)."""
    db = tmp_path / "stuck.db"
    with inprocess_bench(speed=SPEED, seed=3) as sim:
        injector = sim.running.injectors["cabinet"]

        def stop_answering(engine: Engine, batch: Batch) -> None:
            _wait_for_samples(batch, 40)
            injector.inject(Fault(FaultKind.DROP_REPLY, count=1_000_000))

        batch = run_batch(sim, db, recipe="fast-triage", channels=2, during=stop_answering)
        injector.clear()
        still_working = sim.working()
    outcomes = list(batch.outcomes.values())
    dropped = sum(1 for entry in injector.log if entry["fault"] == "drop_reply")
    print(f"S5: {len(outcomes)} runs, {dropped} replies dropped, outcomes {outcomes}")
    assert len(outcomes) == 2
    assert all(o is RunOutcome.FAULTED for o in outcomes), batch.reasons
    assert still_working == []
    rows = stored_samples(db)
    assert rows and not any(insane(r) for r in rows)


def _inject_values(channel: object, voltage_v: float | None, temperature_c: float | None) -> None:
    """From now on the channel's leads read ``voltage_v`` / its probe ``temperature_c``."""
    original = channel._read_cell  # type: ignore[attr-defined]

    def read() -> None:
        original()
        if voltage_v is not None:
            channel._v = voltage_v  # type: ignore[attr-defined]

    channel._read_cell = read  # type: ignore[attr-defined]
    if temperature_c is not None:
        cell = channel.cell  # type: ignore[attr-defined]
        forced_c = temperature_c

        class Hot:
            def __getattr__(self, name: str) -> object:
                return getattr(cell, name)

            @property
            def temperature_c(self) -> float:
                return forced_c

        channel.cell = Hot()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("voltage_v", "temperature_c"),
    [(math.nan, None), (math.inf, None), (1e9, None), (None, -300.0), (None, math.nan)],
)
def test_garbage_values_fault_and_are_never_stored(
    tmp_path: Path, voltage_v: float | None, temperature_c: float | None
) -> None:
    db = tmp_path / "garbage.db"
    with inprocess_bench(speed=SPEED, seed=5) as sim:

        def inject(engine: Engine, batch: Batch) -> None:
            _wait_for_samples(batch, 20)
            channel = sim.sim_channel(next(iter(batch.runs)))
            with sim.cabinet.lock:
                _inject_values(channel, voltage_v, temperature_c)

        batch = run_batch(sim, db, recipe="fast-triage", channels=2, during=inject)
        still_working = sim.working()
    bad_run = next(iter(batch.runs.values()))
    print(
        f"S7: {voltage_v=} {temperature_c=}: {batch.outcomes[bad_run]} ({batch.reasons[bad_run]})"
    )
    # Either the station flags the garbage or the cabinet's own protection stops the channel.
    assert batch.outcomes[bad_run] in (RunOutcome.FAULTED, RunOutcome.TRIPPED), batch.reasons
    rows = stored_samples(db)
    assert rows and not any(insane(r) for r in rows)
    assert still_working == []


def _shutdown_trials(tmp_path: Path, trials: int, seed: int) -> None:
    rng = random.Random(seed)
    actions = ("abort", "stop_all", "shutdown", "exception")
    counts = dict.fromkeys(actions, 0)
    left_on = 0
    crashes: list[str] = []
    closers: list[threading.Thread] = []
    with inprocess_bench(speed=SPEED, seed=seed) as sim:
        for trial in range(trials):
            action = actions[trial % len(actions)]
            counts[action] += 1
            delay_s = rng.uniform(0.05, 1.5)

            def interrupt(
                engine: Engine, batch: Batch, action: str = action, delay_s: float = delay_s
            ) -> None:
                time.sleep(delay_s)
                if action == "abort":
                    engine.abort(next(iter(batch.runs)))
                    engine.stop_all("test over")
                elif action == "stop_all":
                    engine.stop_all("stop all pressed")
                elif action == "shutdown":
                    # The GUI's close while the batch's own shutdown runs: two at once.
                    def close() -> None:
                        try:
                            engine.shutdown()
                        except Exception as exc:  # noqa: BLE001 - the test reports any
                            crashes.append(repr(exc))

                    closer = threading.Thread(target=close)
                    closers.append(closer)
                    closer.start()
                else:
                    _break_polls(sim)

            run_batch(
                sim,
                tmp_path / f"trial{trial}.db",
                recipe="fast-triage",
                channels=3,
                during=interrupt,
            )
            for closer in closers:
                closer.join(30)
            _restore_polls(sim)
            working = sim.working()
            left_on += len(working)
    print(
        f"S8: {trials} trials {counts}, channels left driving current: {left_on}, crashes {crashes}"
    )
    assert left_on == 0
    assert crashes == []


def _break_polls(sim: InProcessBench) -> None:
    """Every cabinet read now fails: the cabinet answers garbage to everything."""
    sim.running.injectors["cabinet"].inject(Fault(FaultKind.GARBAGE, count=1_000_000))


def _restore_polls(sim: InProcessBench) -> None:
    sim.running.injectors["cabinet"].clear()


def test_shutdown_always_runs_short(tmp_path: Path) -> None:
    _shutdown_trials(tmp_path, trials=4, seed=1)


@pytest.mark.slow
def test_shutdown_always_runs_long(tmp_path: Path) -> None:
    _shutdown_trials(tmp_path, trials=40, seed=2)

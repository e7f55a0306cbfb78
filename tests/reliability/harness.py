"""An in-process simulated bench for the reliability tests: the simulator's TCP servers run in
this process so a test can reach the simulated instrument's own state (is a channel still
``working``?) while the station talks to it only over TCP through the real drivers and engine."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hardware_sim.bench import build_bench, load_description
from hardware_sim.devices.neware_bts import NewareCabinet, SimChannel
from hardware_sim.launcher import RunningBench
from station.config import BenchConfig, SimLaunch, bench_from_sim_launch, parse_sim_launch, sim_lot
from station.engine import Engine
from station.events import Event, RunEnded, RunOutcome, Sample
from station.storage import Storage

# The station's own sanity envelope for a stored sample (independent of station.sequencer's).
SANE_VOLTAGE_V = (-10.0, 10.0)
SANE_TEMPERATURE_C = (-60.0, 200.0)


@dataclass
class InProcessBench:
    running: RunningBench
    launch: SimLaunch
    config: BenchConfig

    @property
    def cabinet(self) -> NewareCabinet:
        personality = self.running.bench.device("cabinet").personality
        assert isinstance(personality, NewareCabinet)
        return personality

    def sim_channel(self, channel_id: str) -> SimChannel:
        """The simulated cabinet channel behind a station channel id."""
        return self.cabinet.channel(self.config.channels[channel_id].hw_channel)

    def working(self) -> list[str]:
        """Pipelines the simulated cabinet itself reports as still driving current."""
        with self.cabinet.lock:
            self.cabinet.advance(self.cabinet.clock.now())
            return [
                ch.pipeline for ch in self.cabinet.channels.values() if ch.workstatus == "working"
            ]


# A dead link is declared after ~1 s wall instead of the driver's 5 s x retries, so a test
# with a silent cabinet ends in seconds (bench-config settings the driver accepts).
QUICK_CABINET = {"timeout_s": 0.5, "reconnect_attempts": 1, "reconnect_backoff_s": 0.05}


@contextmanager
def inprocess_bench(
    *, speed: float, seed: int, cabinet_settings: dict[str, Any] | None = None
) -> Iterator[InProcessBench]:
    bench = build_bench(load_description("demo"), seed=seed, speed=speed, skip_unknown=True)
    running = RunningBench.start(bench)
    try:
        launch = parse_sim_launch(json.dumps(running.describe()))
        config = bench_from_sim_launch(launch, "sim-demo")
        cabinet = config.instruments["cabinet"]
        settings = {**cabinet.settings, **(cabinet_settings or QUICK_CABINET)}
        instruments = {**config.instruments, "cabinet": replace(cabinet, settings=settings)}
        yield InProcessBench(running, launch, replace(config, instruments=instruments))
    finally:
        running.stop()


@dataclass
class Batch:
    runs: dict[str, str] = field(default_factory=dict)  # channel_id -> run_id
    outcomes: dict[str, RunOutcome] = field(default_factory=dict)  # run_id -> outcome
    reasons: dict[str, str] = field(default_factory=dict)
    samples_published: int = 0


def run_batch(
    sim: InProcessBench,
    db: Path,
    *,
    recipe: str,
    channels: int,
    during: Callable[[Engine, Batch], None],
    timeout_s: float = 90.0,
    storage_errors: list[str] | None = None,
) -> Batch:
    """Start ``recipe`` on the first ``channels`` placed cells, call ``during`` (the fault) while
    they run, wait for every run to end and shut the engine down."""
    batch = Batch()
    clock = sim.launch.clock()
    storage = Storage(
        db, clock, on_error=storage_errors.append if storage_errors is not None else None
    )
    engine = Engine(sim.config, storage, clock, operator="reliability")

    def record(event: Event) -> None:
        if isinstance(event, RunEnded):
            batch.outcomes[event.run_id] = event.outcome
            batch.reasons[event.run_id] = event.reason
        elif isinstance(event, Sample):
            batch.samples_published += 1

    engine.subscribe(record)
    try:
        engine.connect()
        placed = [(c, ch) for c, ch in sim_lot(sim.launch, sim.config) if ch][:channels]
        storage.add_cells([c for c, _ in placed], who="reliability", why="test lot")
        for cell, channel in placed:
            assert channel is not None
            batch.runs[channel] = engine.start_run(channel, cell.cell_id, recipe)
        during(engine, batch)
        assert engine.wait_idle(timeout_s), "runs did not end in time"
    finally:
        engine.shutdown()
        storage.close()
    return batch


def stored_samples(db: Path) -> list[tuple[str, int, float, float, float | None]]:
    """(run_id, seq, t_s, voltage_v, temperature_c) of every stored sample."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT r.run_id, s.seq, s.t_s, s.voltage_v, s.temperature_c FROM samples s"
            " JOIN runs r USING (run_pk) ORDER BY r.run_id, s.seq"
        ).fetchall()
    finally:
        conn.close()


def insane(row: tuple[Any, ...]) -> bool:
    _, _, _, voltage, temperature = row
    if voltage is None or not math.isfinite(voltage):
        return True
    if not SANE_VOLTAGE_V[0] <= voltage <= SANE_VOLTAGE_V[1]:
        return True
    return temperature is not None and not (
        math.isfinite(temperature) and SANE_TEMPERATURE_C[0] <= temperature <= SANE_TEMPERATURE_C[1]
    )


class RowCounter:
    """Rows a simulated channel recorded over all its starts (``start`` clears ``rows``)."""

    def __init__(self, channel: SimChannel) -> None:
        self.channel = channel
        self.previous: list[tuple[float, float]] = []
        original = channel.start

        def start(*args: Any, **kwargs: Any) -> None:
            self.previous += self._keys()
            original(*args, **kwargs)

        channel.start = start  # type: ignore[method-assign]

    def _keys(self) -> list[tuple[float, float]]:
        return [_key(r.voltage_v, r.current_a) for r in self.channel.rows]

    def rows(self) -> list[tuple[float, float]]:
        return self.previous + self._keys()


def count_rows(sim: InProcessBench, *, channels: int) -> dict[str, RowCounter]:
    """Count the rows of the channels ``run_batch`` will use, from before their runs start (a
    counter installed after the start misses the first step's rows and sees stored samples as
    extra)."""
    placed = [channel for _, channel in sim_lot(sim.launch, sim.config) if channel][:channels]
    with sim.cabinet.lock:
        return {channel: RowCounter(sim.sim_channel(channel)) for channel in placed}


def _key(voltage_v: float, current_a: float) -> tuple[float, float]:
    # A row's identity as both sides see it: the station re-bases the cabinet's timestamps, but
    # voltage and current arrive as the cabinet formatted them (0.1 mV, 0.1 mA).
    return (round(voltage_v, 4), round(current_a, 4))


def unmatched(
    recorded: list[tuple[float, float]], stored: list[tuple[float, float]]
) -> tuple[int, int]:
    """(cabinet rows never stored, stored samples the cabinet never recorded or stored twice).

    The cabinet writes one more row when the station stops the channel after the run: never part
    of the run, so one unmatched cabinet row per run is not a loss."""
    missing = sum((Counter(recorded) - Counter(stored)).values())
    return max(0, missing - 1), sum((Counter(stored) - Counter(recorded)).values())


def stored_keys(db: Path, run_id: str) -> list[tuple[float, float]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [
            _key(v, i)
            for v, i in conn.execute(
                "SELECT s.voltage_v, s.current_a FROM samples s JOIN runs r USING (run_pk)"
                " WHERE r.run_id = ? ORDER BY s.seq",
                (run_id,),
            )
        ]
    finally:
        conn.close()

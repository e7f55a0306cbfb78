"""Run a lot on a simulated bench: start ``python -m hardware_sim`` as a child process, build the
bench from its JSON, and grade every cell the simulated cabinet holds (the CLI's and the tests'
shared path; the station reaches the simulator only through its TCP endpoints).

    with SimulatedBench(speed=3600, seed=7) as sim:
        result = run_lot(sim, db_path, recipe="second-life-full")
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from station.config import BenchConfig, SimLaunch, bench_from_sim_launch, parse_sim_launch, sim_lot
from station.engine import Engine
from station.events import Event, RunEnded, RunOutcome
from station.storage import Storage


class SimulatedBench:
    """The simulator child process and the bench/clock built from what it printed."""

    def __init__(self, *, speed: float, seed: int, bench: str = "demo", preset: str = "sim-demo"):
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hardware_sim",
                "--bench",
                bench,
                "--speed",
                str(speed),
                "--seed",
                str(seed),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(10)
            error = self.process.stderr.read() if self.process.stderr else ""
            raise RuntimeError(f"the simulator did not start: {error.strip()}")
        self.launch: SimLaunch = parse_sim_launch(line)
        self.bench: BenchConfig = bench_from_sim_launch(self.launch, preset)
        self.clock = self.launch.clock()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()

    def __enter__(self) -> SimulatedBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class LotResult:
    runs: dict[str, str] = field(default_factory=dict)  # cell_id -> run_id
    outcomes: dict[str, RunOutcome] = field(default_factory=dict)  # run_id -> outcome
    reasons: dict[str, str] = field(default_factory=dict)


def run_lot(
    sim: SimulatedBench,
    db_path: str | Path,
    *,
    recipe: str = "second-life-full",
    operator: str = "station",
    timeout_s: float | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> LotResult:
    """Import the simulated lot and run ``recipe`` on every channel that holds a cell."""
    result = LotResult()
    storage = Storage(db_path, sim.clock)
    engine = Engine(sim.bench, storage, sim.clock, operator=operator)

    def record(event: Event) -> None:
        if isinstance(event, RunEnded):
            result.outcomes[event.run_id] = event.outcome
            result.reasons[event.run_id] = event.reason

    engine.subscribe(record)
    if on_event is not None:
        engine.subscribe(on_event)
    try:
        engine.connect()
        placed = [(cell, channel) for cell, channel in sim_lot(sim.launch, sim.bench) if channel]
        new = [cell for cell, _ in placed if storage.get_cell(cell.cell_id) is None]
        if new:
            storage.add_cells(new, who=operator, why="simulated lot")
        for cell, channel in placed:
            result.runs[cell.cell_id] = engine.start_run(channel, cell.cell_id, recipe)
        if not engine.wait_idle(timeout_s):
            engine.stop_all("batch timed out")
    finally:
        engine.shutdown()
        storage.close()
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m station.simbench``: grade the simulated lot headless, print one line per run."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m station.simbench",
        description="Run a recipe on every cell of a simulated bench and store everything.",
    )
    parser.add_argument("--db", required=True, help="SQLite database file (created if missing)")
    parser.add_argument("--recipe", default="second-life-full", help="shipped recipe name")
    parser.add_argument("--speed", type=float, default=3600.0, help="simulated s per wall s")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated lot")
    parser.add_argument("--timeout", type=float, default=None, help="wall-clock limit (s)")
    args = parser.parse_args(argv)
    with SimulatedBench(speed=args.speed, seed=args.seed) as sim:
        result = run_lot(sim, args.db, recipe=args.recipe, timeout_s=args.timeout)
    for cell_id, run_id in sorted(result.runs.items()):
        outcome = result.outcomes.get(run_id)
        print(
            f"{cell_id}\t{run_id}\t{outcome.value if outcome else 'unknown'}\t"
            f"{result.reasons.get(run_id, '')}"
        )
    completed = sum(o is RunOutcome.COMPLETED for o in result.outcomes.values())
    print(f"{completed}/{len(result.runs)} runs completed; data in {args.db}")
    return 0 if completed == len(result.runs) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Channels sustained in real time: the largest simulated bench the engine keeps up with.

Run: ``.venv/bin/python -m benchmarks.bench_channels_sustained [--rate 10] [--seconds 20]``.
Issue 10 target: at least 256 channels at 10 Hz, stored and graded live on 2 cores, with CPU to
spare; reported with the CPU the station uses per 1,000 samples/s.

For each bench size (doubling from 64 channels) the channels sit in cabinets of at most 64, each
served by its own simulator process (``python -m hardware_sim``, real-time clock), as each
cabinet of a lab is its own machine; this process runs the real engine (one worker per cabinet)
and storage over TCP: every channel rests while
recording at ``--rate`` Hz for ``--seconds``, each poll fetching the samples recorded since the
last. Runs are started together (``Engine.start_runs``); once all record, the engine is measured for
``--seconds`` of steady state. The bench is kept up with when, over that window, the 99th
percentile of sample lag (station clock when the engine publishes a sample, minus the sample's own
time) stays within one poll period plus 1 s and the database holds every sample: the independent
reference is rate x (last - first) + 1 rows per run. CPU is this process's CPU time (user +
system) over the window; the simulator's is not counted. Runs are then stopped.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from benchmarks.common import Case, write_result
from station.config import SimLaunch, loads_bench, parse_sim_launch, preset_text, sim_lot
from station.engine import Engine
from station.events import Event, Sample
from station.recipes import loads_recipe
from station.storage import Storage

SIZES = (64, 128, 256, 512)
GOAL_CHANNELS = 256
RUN_S = 3600.0
"""Programmed rest length; runs are stopped once the measuring window is over (s)."""
CHANNELS_PER_UNIT = 8
CABINET_CHANNELS = 64


def cabinets(channels: int) -> list[int]:
    """Channels per cabinet: full cabinets of :data:`CABINET_CHANNELS`, then the rest."""
    full, rest = divmod(channels, CABINET_CHANNELS)
    return [CABINET_CHANNELS] * full + ([rest] if rest else [])


def sim_description(index: int, size: int) -> str:
    """One simulated cabinet ``cab<index+1>`` of ``size`` channels, its own lot seed."""
    return f"""
[bench]
seed = {11 + index}
speed = 1.0

[lot]
preset = "new-cells"
cells = {size + 8}
defect_share = 0.0

[[device]]
kind = "neware-bts"
name = "cab{index + 1}"
channels = {size}
"""


def bench_text(channels: int) -> str:
    """The sim-demo station bench with its cabinet repeated per simulated cabinet."""
    demo = preset_text("sim-demo")
    head = demo[: demo.index("[instruments.cabinet]")]
    cabinet = demo[demo.index("[instruments.cabinet]") : demo.index("[instruments.acir]")]
    parts = [head]
    n = 0
    for k, size in enumerate(cabinets(channels)):
        name = f"cab{k + 1}"
        parts.append(cabinet.replace("cabinet", name))
        for index in range(size):
            n += 1
            unit, chl = divmod(index, CHANNELS_PER_UNIT)
            parts.append(
                f'[sensors.t{n:03d}]\nsource = "cycler-aux"\ninstrument = "{name}"\n\n'
                f'[channels.ch{n:03d}]\ninstrument = "{name}"\n'
                f'hw_channel = "27-{unit + 1}-{chl + 1}"\ntemperature_sensor = "t{n:03d}"\n'
            )
    return "\n".join(parts)


def recipe_text(rate_hz: float, seconds: float) -> str:
    return f"""
[recipe]
name = "bench-sustained"
version = 1
description = "rest while recording at {rate_hz:g} Hz (benchmark)"

[limits]
temperature_max_c = 60.0

[[steps]]
type = "rest"
duration_s = {seconds:g}
record_interval_s = {1.0 / rate_hz:g}
"""


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid``; NaN where /proc is absent."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    # Fields 14 and 15 of proc(5) (utime, stime), counted from after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def simulator(description: Path) -> Iterator[tuple[SimLaunch, int]]:
    """``python -m hardware_sim`` on ``description`` (real-time clock): what it printed, its pid."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hardware_sim", "--bench", str(description), "--speed", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the simulator did not start")
        yield parse_sim_launch(line), process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def trial(channels: int, rate_hz: float, seconds: float, work: Path) -> dict[str, float]:
    recipe = loads_recipe(recipe_text(rate_hz, RUN_S), source="bench-sustained")
    with ExitStack() as stack:
        sims = []
        for index, size in enumerate(cabinets(channels)):
            description = work / f"sim-{channels}-{index + 1}.toml"
            description.write_text(sim_description(index, size))
            sims.append(stack.enter_context(simulator(description)))
        launches = [launch for launch, _pid in sims]
        endpoints = {
            name: address for launch in launches for name, address in launch.endpoints.items()
        }
        config = loads_bench(bench_text(channels), source="bench-sustained")
        config = replace(
            config,
            instruments={
                name: replace(instrument, address=endpoints[name])
                for name, instrument in config.instruments.items()
            },
        )
        db = work / f"run-{channels}.sqlite"
        # Each simulator runs at real time; sample times are the station clock at step start
        # plus the cabinet's test time, so one station clock serves every cabinet.
        clock = launches[0].clock()
        storage = Storage(db, clock)
        engine = Engine(config, storage, clock, operator="bench")
        lags: list[float] = []
        window: list[float] = []  # [start] while measuring: station clock (s)

        def lag(event: Event) -> None:
            if isinstance(event, Sample) and window and event.t_s >= window[0]:
                lags.append(clock.now() - event.t_s)

        engine.subscribe(lag)
        try:
            engine.connect()
            placed = [(c, ch) for launch in launches for c, ch in sim_lot(launch, config) if ch]
            storage.add_cells([c for c, _ in placed], who="bench", why="sustained-rate bench")
            start_wall = time.perf_counter()
            started = engine.start_runs(
                [(channel, cell.cell_id, recipe) for cell, channel in placed if channel]
            )
            refused = [result for result in started if isinstance(result, Exception)]
            if refused:
                raise RuntimeError(f"{len(refused)} runs refused, first: {refused[0]!r}")
            start_s = time.perf_counter() - start_wall
            # Steady state: every channel records; measure over the next ``seconds``.
            window.append(clock.now())
            cpu0, wall0 = time.process_time(), time.perf_counter()
            sim_cpu0 = sum(process_cpu_s(pid) for _launch, pid in sims)
            time.sleep(seconds)
            cpu_s = time.process_time() - cpu0
            sim_cpu_s = sum(process_cpu_s(pid) for _launch, pid in sims) - sim_cpu0
            wall_s = time.perf_counter() - wall0
            window_end = clock.now()
            engine.stop_all("benchmark window over")
            ended = engine.wait_idle(60.0)
        finally:
            engine.shutdown()
            storage.close()
        with sqlite3.connect(db) as con:
            per_run = con.execute(
                "SELECT COUNT(*), MIN(t_s), MAX(t_s) FROM samples WHERE t_s >= ? AND t_s < ? "
                "GROUP BY run_pk",
                (window[0], window_end),
            ).fetchall()
    # Independent reference for "nothing missing": a channel recording at rate_hz holds
    # rate_hz x (last - first) + 1 rows between its first and last stored sample.
    stored = sum(count for count, _first, _last in per_run)
    gaps = sum(
        max(0, round((last - first) * rate_hz) + 1 - count) for count, first, last in per_run
    )
    lags.sort()
    p99 = lags[int(0.99 * (len(lags) - 1))] if lags else float("inf")
    return {
        "channels": channels,
        "start_s": start_s,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "sim_cpu_s": sim_cpu_s,
        "stored": stored,
        "missing": gaps,
        "runs": len(per_run),
        "lag_p99_s": p99,
        "lag_median_s": statistics.median(lags) if lags else float("inf"),
        "kept_up": float(
            ended and len(per_run) == channels and gaps == 0 and p99 <= config.poll_period_s + 1.0
        ),
        # The rate the bench produces; the rows stored in the window lack its last poll's worth.
        "samples_per_s": channels * rate_hz,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="record rate per channel (Hz)")
    parser.add_argument("--seconds", type=float, default=20.0, help="recording per trial (s)")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    args = parser.parse_args()
    best: dict[str, float] | None = None
    trials = []
    with tempfile.TemporaryDirectory() as tmp:
        for channels in args.sizes:
            result = trial(channels, args.rate, args.seconds, Path(tmp))
            trials.append(result)
            print(
                f"{channels} ch @ {args.rate:g} Hz: started in {result['start_s']:.1f} s; "
                f"window {result['wall_s']:.1f} s: {result['stored']:.0f} samples stored, "
                f"{result['missing']:.0f} missing, "
                f"{result['cpu_s']:.1f} s CPU (simulator {result['sim_cpu_s']:.1f} s), "
                f"sample lag median {result['lag_median_s']:.2f} s "
                f"p99 {result['lag_p99_s']:.2f} s, kept up: {bool(result['kept_up'])}",
                flush=True,
            )
            if not result["kept_up"]:
                break
            best = result
    tried = "; ".join(
        f"{t['channels']:.0f} ch: runs started in {t['start_s']:.0f} s, then {t['stored']:.0f} "
        f"rows, {t['missing']:.0f} missing in {t['wall_s']:.1f} s, {t['cpu_s']:.1f} s CPU "
        f"(simulator process {t['sim_cpu_s']:.1f} s), "
        f"lag median {t['lag_median_s']:.2f} s, p99 {t['lag_p99_s']:.2f} s"
        + ("" if t["kept_up"] else " (fell behind)")
        for t in trials
    )
    largest = best["channels"] if best else 0.0
    cases = [
        Case(
            case=f"largest bench kept up with in real time at {args.rate:g} Hz, storing all",
            metric="channels",
            station=largest,
            peer=None,
            peer_name="",
            goal=GOAL_CHANNELS,
            notes=(
                f"{args.seconds:g} s steady-state window per trial; kept up = p99 sample lag "
                f"<= poll period + 1 s and no missing row; {tried}"
            ),
        )
    ]
    if best is not None:
        cores = best["cpu_s"] / best["wall_s"]
        cases.append(
            Case(
                case=f"station CPU per 1,000 samples/s at {largest:.0f} ch x {args.rate:g} Hz",
                metric="cores per 1k samples/s",
                station=round(cores / (best["samples_per_s"] / 1000.0), 4),
                peer=None,
                peer_name="",
                higher_is_better=False,
                notes=(
                    f"{cores:.2f} cores of 2 for {best['samples_per_s']:.0f} samples/s "
                    "(engine, drivers, storage; simulator in its own process, not counted)"
                ),
            )
        )
    write_result("channels_sustained", cases, args.out)


if __name__ == "__main__":
    main()

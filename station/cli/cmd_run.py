"""``station run``: run a recipe on a lot with a bench of lab instruments or a simulated bench file.

Everything the user gives (bench file, recipe, lot file, profile) is checked before the database
is opened, so a bad input writes nothing. A bench file whose addresses are ``@sim:<endpoint>``
starts the simulator (:class:`station.simbench.SimulatedBench`) and fills them from its output.

Lot cells go to the bench's channels in channel-ID order, one cell per channel. A cell that
already has a completed run of the recipe in the database is skipped, so running the same lot
again after Ctrl-C or a crash finishes only what is left: runs a crash interrupted are held by
:meth:`Engine.resume_after_crash` (outputs off) and continued at their checkpoint when their cell
is in the lot; runs stopped by Ctrl-C ended aborted (outputs off) and start again.

Exit codes: 0 every cell of the lot finished, 1 some did not, 2 bad input, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from station.cells import Cell, CellDataError, read_lot_file
from station.cli.common import default_db_path, default_log_path
from station.cli.main import CommandError
from station.clock import Clock, SystemClock
from station.config import SIM_ADDRESS_PREFIX, BenchConfig, ConfigError, load_bench
from station.engine import Engine, EngineError
from station.events import Event, RunEnded, RunOutcome, RunStarted, StepStarted
from station.recipes import Recipe, RecipeError, load_recipe, shipped_recipe
from station.sequencer import PrestartRefused
from station.simbench import SimulatedBench
from station.storage import Storage

log = logging.getLogger("station.run")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a recipe on a lot of cells with a bench (lab instruments or simulated)",
        description=(
            "Run RECIPE on every cell of LOT with the instruments of BENCH, storing everything in "
            "the database. Ctrl-C stops safely (outputs off); running the same command again "
            "finishes what is left. Exit 0 only when every cell finished."
        ),
    )
    parser.add_argument("--bench", required=True, help="bench TOML file (see station.config)")
    parser.add_argument("--recipe", required=True, help="shipped recipe name or recipe TOML file")
    parser.add_argument("--lot", required=True, help="lot file (CSV or JSON, see station.cells)")
    parser.add_argument(
        "--profile", help="grading profile name or TOML file, checked before the run starts"
    )
    parser.add_argument(
        "--db", type=Path, help="database file (default: $STATION_DB or the user data directory)"
    )
    parser.add_argument(
        "--log", type=Path, help="log file (default: $STATION_LOG or the user log directory)"
    )
    parser.add_argument("--operator", default="station", help="operator name for the audit trail")
    parser.add_argument(
        "--sim-speed",
        type=float,
        default=3600.0,
        help="simulated seconds per wall-clock second (simulated benches only)",
    )
    parser.add_argument(
        "--sim-seed", type=int, default=7, help="seed of the simulated bench (simulated only)"
    )
    parser.add_argument(
        "--timeout", type=float, help="wall-clock limit in seconds; unfinished runs are stopped"
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        default=5.0,
        help="seconds between overall progress lines (default 5)",
    )
    parser.set_defaults(handler=run)


@dataclass
class _Inputs:
    bench: BenchConfig
    recipe: Recipe
    cells: list[Cell]


@dataclass
class _Tally:
    """What the event subscriber saw, shared between worker threads and the main thread."""

    total: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    cell_of: dict[str, str] = field(default_factory=dict)  # run_id -> cell_id
    ended: dict[str, tuple[RunOutcome, str]] = field(default_factory=dict)  # cell_id -> end


def _check_inputs(args: argparse.Namespace) -> _Inputs:
    bench_path = Path(args.bench)
    if not bench_path.is_file():
        raise CommandError(f"bench file {bench_path} does not exist; give a bench TOML file")
    try:
        bench = load_bench(bench_path)
    except (ConfigError, OSError) as error:
        raise CommandError(f"bench file {bench_path}: {error}") from None
    try:
        recipe = (
            load_recipe(args.recipe) if Path(args.recipe).is_file() else shipped_recipe(args.recipe)
        )
    except (RecipeError, OSError) as error:
        raise CommandError(str(error)) from None
    lot_path = Path(args.lot)
    if not lot_path.is_file():
        raise CommandError(f"lot file {lot_path} does not exist")
    try:
        cells = read_lot_file(lot_path)
    except CellDataError as error:
        raise CommandError(f"lot file {lot_path}: {error}; nothing was stored") from None
    except OSError as error:
        raise CommandError(f"lot file {lot_path}: {error}") from None
    if args.profile:
        from station.grading.profiles import ProfileError, load_profile

        try:
            load_profile(args.profile)
        except (ProfileError, OSError) as error:
            raise CommandError(f"profile {args.profile}: {error}") from None
    if len(cells) > len(bench.channels):
        raise CommandError(
            f"lot has {len(cells)} cells but the bench has {len(bench.channels)} channels; "
            "split the lot"
        )
    return _Inputs(bench, recipe, cells)


def _fill_sim_addresses(bench: BenchConfig, sim: SimulatedBench) -> BenchConfig:
    filled = {}
    for name, instrument in bench.instruments.items():
        address = instrument.address
        if address.startswith(SIM_ADDRESS_PREFIX):
            endpoint = address[len(SIM_ADDRESS_PREFIX) :]
            if endpoint not in sim.launch.endpoints:
                raise CommandError(
                    f"instruments.{name}.address: the simulator has no endpoint {endpoint!r}"
                )
            address = sim.launch.endpoints[endpoint]
        filled[name] = replace(instrument, address=address)
    return replace(bench, instruments=filled)


def _completed_cells(storage: Storage, recipe_name: str) -> set[str]:
    with storage.reader() as conn:
        rows = conn.execute(
            "SELECT DISTINCT cell_id FROM runs WHERE recipe_name = ? AND outcome = ?",
            (recipe_name, RunOutcome.COMPLETED.value),
        ).fetchall()
    return {row[0] for row in rows}


def _say(text: str) -> None:
    print(text, flush=True)


def _setup_log(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def run(args: argparse.Namespace) -> int:
    inputs = _check_inputs(args)
    db_path: Path = args.db or default_db_path()
    log_path: Path = args.log or default_log_path()
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        handler = _setup_log(log_path)
    except OSError as error:
        raise CommandError(f"cannot create {error.filename}: {error.strerror}") from None
    try:
        return _run(args, inputs, db_path)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _run(args: argparse.Namespace, inputs: _Inputs, db_path: Path) -> int:
    simulated = any(
        i.address.startswith(SIM_ADDRESS_PREFIX) for i in inputs.bench.instruments.values()
    )
    lot_ids = [cell.cell_id for cell in inputs.cells]
    tally = _Tally(total=len(lot_ids))
    with ExitStack() as stack:
        bench = inputs.bench
        clock: Clock = SystemClock()
        if simulated:
            try:
                sim = stack.enter_context(SimulatedBench(speed=args.sim_speed, seed=args.sim_seed))
            except RuntimeError as error:
                raise CommandError(str(error)) from None
            bench = _fill_sim_addresses(bench, sim)
            clock = sim.clock
        try:
            storage = Storage(db_path, clock)
        except (OSError, sqlite3.Error, RuntimeError) as error:
            raise CommandError(f"database {db_path}: {error}") from None
        stack.callback(storage.close)
        engine = Engine(bench, storage, clock, operator=args.operator)
        stack.callback(engine.shutdown)
        engine.subscribe(lambda event: _on_event(event, tally))
        log.info(
            "station run: bench %s, recipe %s, lot %s, db %s",
            args.bench,
            args.recipe,
            args.lot,
            db_path,
        )
        try:
            engine.connect()
        except Exception as error:  # noqa: BLE001 - any instrument failure ends the command
            raise CommandError(f"connecting the bench failed: {error}") from None
        return _drive(args, inputs, engine, storage, tally, lot_ids)
    raise AssertionError("unreachable")


def _on_event(event: Event, tally: _Tally) -> None:
    if isinstance(event, RunStarted):
        with tally.lock:
            tally.cell_of[event.run_id] = event.cell_id
        _say(f"{event.channel_id}: {event.cell_id} started {event.recipe_name}")
    elif isinstance(event, StepStarted):
        _say(f"{event.channel_id}: step {event.step_index + 1} {event.label or event.step_kind}")
    elif isinstance(event, RunEnded):
        with tally.lock:
            cell_id = tally.cell_of.get(event.run_id, "?")
            tally.ended[cell_id] = (event.outcome, event.reason)
            done = len(tally.ended)
        _say(
            f"{event.channel_id}: {cell_id} {event.outcome.value}"
            f"{': ' + event.reason if event.reason else ''} [{done}/{tally.total}]"
        )
    log.info("%s", event)


def _drive(
    args: argparse.Namespace,
    inputs: _Inputs,
    engine: Engine,
    storage: Storage,
    tally: _Tally,
    lot_ids: list[str],
) -> int:
    lot = set(lot_ids)
    busy: set[str] = set()
    started: set[str] = set()
    for held in engine.resume_after_crash():
        busy.add(held.channel_id)
        if held.cell_id in lot and held.recipe_name == inputs.recipe.name:
            engine.continue_run(held.run_id, reason="continued by station run")
            with tally.lock:
                tally.cell_of[held.run_id] = held.cell_id
            started.add(held.cell_id)
            _say(f"{held.channel_id}: {held.cell_id} continued at step {held.step_index + 1}")
        else:
            _say(f"{held.channel_id}: run {held.run_id} of {held.cell_id} is held; not this lot")
    new = [cell for cell in inputs.cells if storage.get_cell(cell.cell_id) is None]
    if new:
        storage.add_cells(new, who=args.operator, why=f"lot import from {args.lot}")
    done_before = _completed_cells(storage, inputs.recipe.name) & lot
    for cell_id in sorted(done_before):
        _say(f"{cell_id}: already completed {inputs.recipe.name}; skipped")
    refused: dict[str, str] = {}
    free = [c for c in sorted(inputs.bench.channels) if c not in busy]
    # Ctrl-C only sets a flag: a KeyboardInterrupt raised inside start_run could leave a run
    # launched but unknown to the loop below.
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: interrupted.set())
    try:
        for cell_id in lot_ids:
            if interrupted.is_set():
                break
            if cell_id in done_before or cell_id in started:
                continue
            if not free:
                refused[cell_id] = "no free channel"
                continue
            channel_id = free.pop(0)
            try:
                engine.start_run(channel_id, cell_id, inputs.recipe)
                started.add(cell_id)
            except (PrestartRefused, EngineError) as error:
                refused[cell_id] = str(error)
                _say(f"{channel_id}: {cell_id} refused: {error}")
        if not interrupted.is_set():
            _wait(args, engine, tally, interrupted)
        if interrupted.is_set():
            engine.stop_all("interrupted by the operator (Ctrl-C)")
            engine.wait_idle(60)
            print(
                "station run: interrupted; outputs are off. Run the same command again to "
                "finish the lot.",
                file=sys.stderr,
            )
            return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    return _summary(lot_ids, done_before, refused, tally, storage, args.profile)


def _wait(
    args: argparse.Namespace, engine: Engine, tally: _Tally, interrupted: threading.Event
) -> None:
    waited_s = 0.0
    step_s = 0.1
    since_report_s = 0.0
    while not engine.wait_idle(step_s):
        if interrupted.is_set():
            return
        waited_s += step_s
        since_report_s += step_s
        if args.timeout is not None and waited_s >= args.timeout:
            engine.stop_all("station run timed out")
            engine.wait_idle(60)
            return
        if since_report_s >= args.progress_every:
            since_report_s = 0.0
            with tally.lock:
                done = len(tally.ended)
            running = sum(1 for s in engine.snapshot().values() if s.state == "running")
            _say(f"overall: {done}/{tally.total} finished, {running} running")


def _grades(storage: Storage, cell_ids: list[str], profile_name: str) -> dict[str, str]:
    """Grades under the profile of the cells with a completed run, from the stored data."""
    from station.evaluation import EvaluationError, grade_lot
    from station.grading.profiles import load_profile

    try:
        graded = grade_lot(storage, load_profile(profile_name), cell_ids=cell_ids)
    except (ValueError, EvaluationError) as error:  # stored data a figure cannot come from
        log.warning("grading under %s failed: %s", profile_name, error)
        _say(f"grading under {profile_name} failed: {error}")
        return {}
    return {g.cell_id: g.outcome for g in graded.grades}


def _summary(
    lot_ids: list[str],
    done_before: set[str],
    refused: dict[str, str],
    tally: _Tally,
    storage: Storage,
    profile: str | None,
) -> int:
    storage.flush()
    grades = _grades(storage, lot_ids, profile) if profile else {}
    finished = 0
    _say("summary:")
    for cell_id in lot_ids:
        if cell_id in done_before:
            status, reason = "completed", "earlier run"
        elif cell_id in refused:
            status, reason = "refused", refused[cell_id]
        elif cell_id in tally.ended:
            outcome, reason = tally.ended[cell_id]
            status = outcome.value
        else:
            status, reason = "not finished", ""
        finished += status == "completed"
        grade = f"\tgrade {grades[cell_id]}" if cell_id in grades else ""
        _say(f"  {cell_id}\t{status}\t{reason}{grade}")
    _say(f"{finished}/{len(lot_ids)} cells completed")
    if finished != len(lot_ids):
        print(
            f"station run: {len(lot_ids) - finished} of {len(lot_ids)} cells did not complete; "
            "see the summary and the log",
            file=sys.stderr,
        )
        return 1
    return 0

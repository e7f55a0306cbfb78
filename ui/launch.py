"""The ``station-gui`` entry point: the bench window around a real engine and storage.

Everything the window needs from the station is wired here as callables the controller runs in
worker threads: cell look-up at scan time, lot storage, run-time estimates, history reads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from station.clock import SystemClock
from station.config import BenchConfig, ConfigError, load_bench, sim_lot
from station.engine import Engine
from station.grading.profiles import load_profile
from station.recipes import estimate_duration_s, recipe_names, shipped_recipe
from station.simbench import SimulatedBench
from station.storage import FollowUp, Storage
from ui.adapters import instruments_from_bench, recipe_info, storage_history
from ui.app import APP_NAME, ORGANISATION, MainWindow
from ui.batch_export import make_lot_reporter, make_passport_exporter
from ui.controller import StationController
from ui.engine_api import EngineLike, GateResult
from ui.grading import (
    export_grades,
    lot_names,
    make_grade_provider,
    matching_groups,
    stored_grade_views,
)
from ui.refcheck import ReferenceCell, ReferenceChecker, load_reference_cells
from ui.screening import make_screener

DEFAULT_RECIPE = "incoming-inspection"
DEFAULT_PROFILE = "second-life"


def followups_now(storage: Storage) -> tuple[list[FollowUp], float]:
    """The open follow-ups once every queued event is stored (a run that just ended has
    scheduled or closed its follow-up), with the station clock's now (s) they are due against."""
    storage.flush()
    return storage.open_followups(), storage.clock.now()


def build_station_window(
    bench: BenchConfig,
    storage: Storage,
    engine: EngineLike,
    *,
    simulated: bool = False,
    operator: str = "operator",
    recipe: str = DEFAULT_RECIPE,
    recipes: Sequence[str] | None = None,
    settings: QtCore.QSettings | None = None,
    reference_cells: Sequence[ReferenceCell] = (),
    profile: str = DEFAULT_PROFILE,
    key_path: Path | None = None,
) -> MainWindow:
    """The main window wired to ``engine`` and ``storage`` for ``bench`` (not yet connected).

    ``key_path``: the station signing key for passports and reports (default:
    $STATION_KEY_FILE or the user data directory, created on first use)."""
    names = list(recipes if recipes is not None else recipe_names())
    if recipe not in names:
        raise ValueError(f"recipe {recipe!r} is not one of {', '.join(names)}")

    def identify(cell_id: str, _channel_id: str) -> GateResult:
        # Without an impedance meter there is nothing to screen: find the cell (imported with
        # its lot) or create it bare; a bare cell cannot start a run until its rated values are
        # known, and the engine's pre-start check says so.
        cell, created = storage.find_or_create_cell(cell_id, who=operator)
        return GateResult(True, "new cell, not screened" if created else "not screened", cell=cell)

    measure = getattr(engine, "measure_screen", None)
    screened = None if measure is None else make_screener(storage, measure, operator=operator)

    def screener(cell_id: str, channel_id: str) -> GateResult:
        if screened is not None and bench.channels[channel_id].acir_meter:
            return screened(cell_id, channel_id)
        return identify(cell_id, channel_id)

    def estimate(cell_id: str, recipe_name: str) -> float | None:
        cell = storage.get_cell(cell_id)
        if cell is None or recipe_name not in names:
            return None
        return estimate_duration_s(shipped_recipe(recipe_name), cell)

    checker = (
        None
        if measure is None or not reference_cells
        else ReferenceChecker(
            bench, storage, measure, reference_cells, clock=storage.clock, operator=operator
        )
    )
    grading_profile = load_profile(profile)
    controller = StationController(
        engine,
        list(bench.channels),
        recipe=recipe,
        history_loader=storage_history(storage),
        screener=screener,
        store_cells=lambda cells: storage.add_cells(cells, who=operator),
        estimate_s=estimate,
        reference_checker=checker,
        grade_provider=make_grade_provider(storage, grading_profile, operator=operator),
        grades_loader=lambda: stored_grade_views(storage),
        matcher=lambda series, parallel: matching_groups(
            storage, grading_profile, lot=None, series=series, parallel=parallel
        ),
        exporter=lambda folder: export_grades(storage, folder),
        lots_loader=lambda: list(lot_names(storage)),
        passport_exporter=make_passport_exporter(storage, key_path=key_path),
        lot_reporter=make_lot_reporter(storage, key_path=key_path),
        record_intake=lambda cell_id, facts: storage.record_intake(
            cell_id, facts, who=operator, why="intake scan"
        ),
        followups_loader=lambda: followups_now(storage),
    )
    window = MainWindow(
        simulated=simulated,
        controller=controller,
        settings=settings,
        bench_name=bench.name,
        instruments=instruments_from_bench(bench),
        recipes=[recipe_info(shipped_recipe(name)) for name in names],
    )
    controller.setParent(window)
    window.recipes_view.list.setCurrentRow(names.index(recipe))
    return window


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="station-gui", description="Open the bench GUI.")
    parser.add_argument(
        "--sim",
        action="store_true",
        help="run against a simulated bench (SIMULATED is shown everywhere)",
    )
    parser.add_argument("--bench", help="bench TOML file (default: the last bench opened)")
    parser.add_argument("--db", help="station database file (default: in the user data folder)")
    parser.add_argument("--recipe", default="incoming-inspection", help="recipe for new runs")
    parser.add_argument("--operator", default="operator", help="who is at the bench")
    parser.add_argument(
        "--profile", default=DEFAULT_PROFILE, help="grading profile for finished runs"
    )
    parser.add_argument(
        "--reference-cells", help="TOML file of reference cells for the daily check"
    )
    parser.add_argument(
        "--key",
        help="station signing key for passports and reports (default: $STATION_KEY_FILE or the "
        "user data folder; created on first use)",
    )
    parser.add_argument(
        "--speed", type=float, default=60.0, help="with --sim: simulated seconds per wall second"
    )
    parser.add_argument("--seed", type=int, default=7, help="with --sim: seed of the simulated lot")
    return parser


def default_db_path(name: str) -> Path:
    folder = Path(
        QtCore.QStandardPaths.writableLocation(
            QtCore.QStandardPaths.StandardLocation.AppDataLocation
        )
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def open_simulated_bench(args: argparse.Namespace, settings: QtCore.QSettings) -> MainWindow:
    """Start ``python -m hardware_sim`` (through station.simbench), import its seeded lot, place
    each cell on the channel holding it and connect in a worker; Enter starts the lot.

    Simulated data goes to its own database (``simulated.db`` unless ``--db``), never the bench's.
    """
    sim = SimulatedBench(speed=args.speed, seed=args.seed)
    storage = Storage(args.db or default_db_path("simulated.db"), sim.clock)
    try:
        engine = Engine(sim.bench, storage, sim.clock, operator=args.operator)
        placed = sim_lot(sim.launch, sim.bench)
        new = [cell for cell, _ in placed if storage.get_cell(cell.cell_id) is None]
        if new:
            storage.add_cells(new, who=args.operator, why="simulated lot")
        window = build_station_window(
            sim.bench,
            storage,
            engine,
            simulated=True,
            operator=args.operator,
            recipe=args.recipe,
            settings=settings,
            reference_cells=(
                load_reference_cells(args.reference_cells) if args.reference_cells else ()
            ),
            profile=args.profile,
            key_path=Path(args.key) if args.key else None,
        )
    except BaseException:
        storage.close()
        sim.close()
        raise
    window.after_shutdown += [storage.close, sim.close]
    window.setProperty("simulator_pid", sim.process.pid)
    window.setProperty("simulator_port", sim.launch.control_port)
    count = window.controller.place_lot(placed)
    # The placed cells skip the scan, so their checklist is the panel's (shown on screen) and
    # is stored for the grading gates, as a scan would store it.
    facts = window.intake.facts()
    record = window.controller.record_intake
    if record is not None:
        held = [cell.cell_id for cell, channel in placed if channel is not None]

        def record_held() -> None:
            for cell_id in held:
                record(cell_id, facts)

        window.controller.workers.submit(
            record_held,
            on_error=lambda exc: window.banner.add(f"Intake checklist not stored: {exc}"),
        )
    window.intake.show_result(
        f"Simulated lot (seed {args.seed}): {count} cells placed; press Enter to start them", True
    )
    window.controller.connect_bench()
    return window


def open_bench(args: argparse.Namespace, settings: QtCore.QSettings) -> QtWidgets.QMainWindow:
    """The window for the bench named on the command line or opened last; errors in the window."""
    if args.sim and not args.bench:
        try:
            return open_simulated_bench(args, settings)
        except (OSError, RuntimeError, ValueError) as exc:
            window = MainWindow(simulated=True, settings=settings)
            window.banner.add(f"The simulated bench did not start: {exc}")
            return window
    bench_path = args.bench or str(settings.value("bench/last_path", "") or "")
    if not bench_path:
        window = MainWindow(simulated=args.sim, settings=settings)
        window.statusBar().showMessage("No bench: start with --bench <bench.toml>")
        return window
    try:
        bench = load_bench(bench_path)
    except (OSError, ConfigError) as exc:
        window = MainWindow(simulated=args.sim, settings=settings)
        window.banner.add(f"Bench {bench_path} not loaded: {exc}")
        return window
    try:
        references = load_reference_cells(args.reference_cells) if args.reference_cells else []
    except (OSError, ValueError) as exc:
        window = MainWindow(simulated=args.sim, settings=settings)
        window.banner.add(f"Reference cells not loaded: {exc}")
        return window
    db_path = args.db or default_db_path("station.db")
    clock = SystemClock()
    storage = Storage(db_path, clock)
    engine = Engine(bench, storage, clock, operator=args.operator)
    window = build_station_window(
        bench,
        storage,
        engine,
        simulated=args.sim,
        operator=args.operator,
        recipe=args.recipe,
        settings=settings,
        reference_cells=references,
        profile=args.profile,
        key_path=Path(args.key) if args.key else None,
    )
    settings.setValue("bench/last_path", str(bench_path))
    window.after_shutdown.append(storage.close)
    window.controller.connect_bench()
    return window


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORGANISATION)
    window = open_bench(args, QtCore.QSettings(ORGANISATION, APP_NAME))
    window.show()
    return app.exec()

"""The entry point's wiring: recipes, lot cells found at scan, run-time estimate, bad benches."""

from __future__ import annotations

import time
from pathlib import Path

from station.clock import ScaledClock
from station.config import load_preset
from station.engine import Engine
from station.recipes import estimate_duration_s, recipe_names, shipped_recipe
from station.storage import Storage
from tests.engine.fakes import FakeConnector, bench_models, make_cell
from tests.gui.test_window_flow import scan
from ui.app import CloseChoice
from ui.launch import build_parser, build_station_window, open_bench

BENCH = load_preset("sim-demo")


def test_station_window_wires_recipes_lot_cells_and_estimates(qtbot, settings, tmp_path: Path):
    clock = ScaledClock(t0_s=1_800_000_000.0, w0_s=time.time(), speed=60.0)
    storage = Storage(tmp_path / "bench.db", clock, batch_interval_s=0.1)
    engine = Engine(
        BENCH,
        storage,
        clock,
        connector=FakeConnector(clock, bench_models(soc=0.5)),
    )
    try:
        storage.add_cells([make_cell("LOT1-0001")], who="test")
        window = build_station_window(
            BENCH, storage, engine, simulated=True, recipe="fast-triage", settings=settings
        )
        window.confirm_close = lambda _active: CloseChoice.STOP_AND_QUIT
        qtbot.addWidget(window)
        window.show()
        names = [r.name for r in window.recipes_view.recipes]
        assert names == list(recipe_names())
        assert window.recipes_view.selected().name == "fast-triage"
        assert window.controller.recipe == "fast-triage"
        window.recipes_view.list.setCurrentRow(names.index("second-life-full"))
        assert window.controller.recipe == "second-life-full"
        window.recipes_view.list.setCurrentRow(names.index("fast-triage"))

        with qtbot.waitSignal(window.controller.connected, timeout=10_000):
            window.controller.connect_bench()
        with qtbot.waitSignal(window.controller.intake_result, timeout=5000):
            scan(qtbot, window, "LOT1-0001")
        assert window.intake.result.text().startswith("LOT1-0001 (lot LOT-1, NMC 3 Ah): OCV ")
        assert window.intake.result.text().endswith(": pass -> ch01")
        window.controller.start_assigned()
        view = window.controller.state.channel("ch01")
        qtbot.waitUntil(lambda: view.estimated_duration_s is not None, timeout=10_000)
        expected = estimate_duration_s(shipped_recipe("fast-triage"), make_cell("LOT1-0001"))
        assert view.estimated_duration_s == expected
        window.close()
        assert window.shutdown_clean is True
    finally:
        engine.shutdown(10)
        storage.close()


def test_open_bench_without_or_with_a_bad_bench_shows_why(qtbot, settings, tmp_path: Path):
    empty = open_bench(build_parser().parse_args([]), settings)
    qtbot.addWidget(empty)
    assert empty.statusBar().currentMessage() == "No bench: start with --bench <bench.toml>"
    bad = tmp_path / "bench.toml"
    bad.write_text("[station]\nname = 'b'\nunknown_key = 1\n", encoding="utf-8")
    window = open_bench(build_parser().parse_args(["--bench", str(bad), "--sim"]), settings)
    qtbot.addWidget(window)
    assert window.banner.messages and window.banner.messages[0].startswith(
        f"Bench {bad} not loaded: "
    )
    assert "SIMULATED" in window.windowTitle()


def test_bad_reference_cells_file_is_shown_not_raised(qtbot, settings, tmp_path: Path) -> None:
    bench = Path(__file__).resolve().parents[2] / "station" / "data" / "benches" / "sim-demo.toml"
    refs = tmp_path / "refs.toml"
    refs.write_text('[[reference_cells]]\ncell_id = "REF-1"\n', encoding="utf-8")
    args = ["--bench", str(bench), "--reference-cells", str(refs), "--db", str(tmp_path / "s.db")]
    window = open_bench(build_parser().parse_args(args), settings)
    qtbot.addWidget(window)
    assert window.banner.messages[0].startswith("Reference cells not loaded: ")
    assert "needs exactly the keys" in window.banner.messages[0]

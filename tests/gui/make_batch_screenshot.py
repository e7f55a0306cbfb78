"""Regenerate docs/images/batch-view.png from the real simulator bench (seed 7).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m tests.gui.make_batch_screenshot

The window ``station gui`` builds, around the real engine and storage, over TCP to
``hardware_sim`` run in this process at 3600 simulated seconds per wall second. Six cells of the
seeded lot run ``second-life-full`` (capacity discharge, pulses, EIS) and are graded; the batch
view then exports the AAS passports of every graded cell, writes the lot report (batch PDF,
certificates, signed records) with a throw-away key, and builds 2S1P matched groups.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from station.config import sim_lot
from station.engine import Engine
from station.storage import Storage
from tests.gui.make_screenshots import SEED, SIZE, pump, save, wait_for
from tests.reliability.harness import inprocess_bench
from ui.app import CloseChoice, MainWindow
from ui.batch_export import PassportRequest
from ui.launch import build_station_window

SPEED = 3600.0
CHANNELS = ("ch01", "ch02", "ch03", "ch05", "ch06", "ch08")  # ch04 holds the reversed cell


def main() -> int:
    _app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])  # kept alive
    workdir = Path(tempfile.mkdtemp(prefix="gui-batch-shot-"))
    settings = QtCore.QSettings(str(workdir / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    with inprocess_bench(speed=SPEED, seed=SEED) as sim:
        clock = sim.launch.clock()
        storage = Storage(workdir / "station.db", clock)
        engine = Engine(sim.config, storage, clock, operator="screenshots")
        placed = sim_lot(sim.launch, sim.config)
        storage.add_cells([cell for cell, _ in placed], who="screenshots", why="simulated lot")
        for cell, _channel in placed:
            storage.record_intake(
                cell.cell_id,
                {"damaged": False, "calendar_expired": False, "traceable": True},
                who="screenshots",
                why="simulated lot, visual check",
            )
        window: MainWindow = build_station_window(
            sim.config,
            storage,
            engine,
            simulated=True,
            operator="screenshots",
            recipe="second-life-full",
            settings=settings,
            key_path=workdir / "station-key.pem",
        )
        window.after_shutdown.append(storage.close)
        window.confirm_close = lambda _active: CloseChoice.STOP_AND_QUIT
        controller = window.controller
        window.resize(SIZE)
        window.show()
        window.splitter.setSizes([700, 900])
        controller.place_lot(placed)
        controller.connect_bench()
        wait_for(lambda: bool(window.instruments_view.instruments[0].connected))
        for channel_id in CHANNELS:
            controller.start_run(channel_id, controller.assigned[channel_id])
        channels = controller.state.channels
        wait_for(lambda: all(channels[c].grade is not None for c in CHANNELS), 600_000)

        batch = window.batch
        window.tabs.setCurrentWidget(batch)
        outcomes = []
        controller.batch_exported.connect(outcomes.append)
        batch.request_passports(PassportRequest((), "aas", str(workdir / "passports")))
        wait_for(lambda: len(outcomes) == 1)
        lot = batch.lot.currentText()
        batch.request_report(lot, str(workdir / "report"))
        wait_for(lambda: len(outcomes) == 2)
        print("\n".join(o.summary for o in outcomes))
        batch.series.setValue(2)
        batch.match_button.click()
        wait_for(lambda: "group(s)" in batch.groups.toPlainText())
        batch.table.selectRow(0)
        pump(500)
        save(window, "batch-view.png")

        window.close()
        print(f"shutdown clean: {window.shutdown_clean}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

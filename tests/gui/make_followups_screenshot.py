"""Regenerate docs/images/batch-followups.png from the real simulator bench (seed 7).

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m tests.gui.make_followups_screenshot

The window ``station gui`` builds, around the real engine and storage, over TCP to
``hardware_sim`` run in this process at 3600 simulated seconds per wall second. The
``self-discharge-follow-up`` recipe runs on the cell in ch01, 7 days pass on the simulator's and
the station's clocks, the recipe runs on the cell in ch02: the Batch tab's follow-ups panel then
lists ch01's follow-up as due and ch02's (selected) as due in 7 days, with why Re-measure is
disabled for it.
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
from ui.followups import FOLLOW_UP_RECIPE
from ui.launch import build_station_window

SPEED = 3600.0
HOLD_S = 7 * 86400.0


def main() -> int:
    _app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])  # kept alive
    workdir = Path(tempfile.mkdtemp(prefix="gui-followups-shot-"))
    settings = QtCore.QSettings(str(workdir / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    with inprocess_bench(speed=SPEED, seed=SEED) as sim:
        clock = sim.launch.clock()
        storage = Storage(workdir / "station.db", clock)
        engine = Engine(sim.config, storage, clock, operator="screenshots")
        placed = sim_lot(sim.launch, sim.config)
        storage.add_cells([cell for cell, _ in placed], who="screenshots", why="simulated lot")
        window: MainWindow = build_station_window(
            sim.config,
            storage,
            engine,
            simulated=True,
            operator="screenshots",
            recipe=FOLLOW_UP_RECIPE,
            settings=settings,
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
        panel = window.batch.followups
        for count, channel_id in enumerate(("ch01", "ch02"), start=1):
            controller.start_run(channel_id, controller.assigned[channel_id])
            wait_for(lambda n=count: len(panel.rows) == n)
            if count == 1:
                sim.running.handle({"cmd": "skip", "s": HOLD_S})
                clock.skip(HOLD_S)
        controller.load_followups()
        wait_for(lambda: len(panel.rows) == 2 and panel.rows[0].due)
        window.tabs.setCurrentWidget(window.batch)
        # The not-due row selected: the due row keeps its highlight and the panel says why
        # Re-measure is disabled for the other.
        panel.table.selectRow(1)
        pump(500)
        save(window, "batch-followups.png")

        window.close()
        print(f"shutdown clean: {window.shutdown_clean}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

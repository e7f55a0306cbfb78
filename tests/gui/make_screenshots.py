"""Regenerate the GUI screenshots in docs/images/ from the real simulator bench (seed 7).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m tests.gui.make_screenshots

The window is the one ``station gui`` builds (``ui.launch.build_station_window``) around the real
engine and storage, talking over TCP to ``hardware_sim`` run in this process (so the script can
put a cell in the meter's fixture and warm one cell, as a technician's hand or a failing cell
would). Sixteen cells of the seeded retired-EV lot run ``incoming-inspection``; ch03 runs
``fast-triage`` instead so it finishes and is graded; ch07's cell is warmed past the recipe's
45 °C limit and trips. Writes overview-16ch.png, cell-detail-graded.png and channel-tripped.png.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from hardware_sim.devices.bt356x import Bt356x
from station.clock import ScaledClock
from station.config import sim_lot
from station.engine import Engine
from station.storage import Storage
from tests.reliability.harness import InProcessBench, inprocess_bench
from ui.app import CloseChoice, MainWindow
from ui.launch import build_station_window
from ui.state import ChannelState

OUT = Path(__file__).resolve().parents[2] / "docs" / "images"
SIZE = QtCore.QSize(1600, 1000)
SEED = 7
SPEED = 300.0  # simulated seconds per wall second: runs progress visibly, none ends too soon
GRADED = "ch03"
TRIPPED = "ch07"


def pump(ms: int) -> None:
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_for(condition: Callable[[], bool], timeout_ms: int = 120_000) -> None:
    waited = 0
    while not condition():
        if waited > timeout_ms:
            raise TimeoutError("screenshot scene did not reach its state")
        pump(50)
        waited += 50


def save(window: QtWidgets.QWidget, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    # Full colour (an 8-bit palette shifted the state colours visibly); Qt maps PNG quality 0
    # to the strongest zlib compression.
    image = window.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    image.save(str(path), "PNG", 0)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return path


@dataclass
class Scene:
    """The simulated bench, the station window around it, its working folder and station clock."""

    sim: InProcessBench
    window: MainWindow
    workdir: Path
    clock: ScaledClock


@contextmanager
def station_scene(
    *,
    speed: float,
    recipe: str,
    splitter: tuple[int, int],
    prefix: str,
    intake: bool = True,
) -> Iterator[Scene]:
    """The window ``station gui`` builds (``ui.launch.build_station_window``) around the real
    engine and storage, over TCP to ``hardware_sim`` run in this process (seed ``SEED``), with
    the seeded lot placed (and its intake checklist recorded when ``intake``) and the bench
    connected; passports and reports are signed with a throw-away key in the working folder;
    closed (stopping its runs) on exit."""
    _app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])  # kept alive
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    settings = QtCore.QSettings(str(workdir / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    with inprocess_bench(speed=speed, seed=SEED) as sim:
        clock = sim.launch.clock()
        storage = Storage(workdir / "station.db", clock)
        engine = Engine(sim.config, storage, clock, operator="screenshots")
        placed = sim_lot(sim.launch, sim.config)
        storage.add_cells([cell for cell, _ in placed], who="screenshots", why="simulated lot")
        if intake:
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
            recipe=recipe,
            settings=settings,
            key_path=workdir / "station-key.pem",
        )
        window.after_shutdown.append(storage.close)
        window.confirm_close = lambda _active: CloseChoice.STOP_AND_QUIT
        window.resize(SIZE)
        window.show()
        window.splitter.setSizes(list(splitter))
        window.controller.place_lot(placed)
        window.controller.connect_bench()
        wait_for(lambda: bool(window.instruments_view.instruments[0].connected))
        yield Scene(sim, window, workdir, clock)
        window.close()
        print(f"shutdown clean: {window.shutdown_clean}")


def main() -> int:
    with station_scene(
        speed=SPEED, recipe="incoming-inspection", splitter=(980, 620), prefix="gui-shots-"
    ) as scene:
        sim, window = scene.sim, scene.window
        controller = window.controller

        # The first cell goes through the intake screen like a scanned one would.
        meter = sim.running.bench.device("acir").personality
        assert isinstance(meter, Bt356x)
        for channel_id, cell_id in sorted(controller.assigned.items()):
            controller.recipe = "fast-triage" if channel_id == GRADED else "incoming-inspection"
            controller.start_run(channel_id, cell_id)
        controller.recipe = "incoming-inspection"
        channels = controller.state.channels
        wait_for(lambda: all(v.state is not ChannelState.IDLE for v in channels.values()))
        wait_for(lambda: channels["ch01"].samples_seen > 300)
        window.overview.select("ch01")
        pump(500)
        save(window, "overview-16ch.png")

        wait_for(lambda: channels[GRADED].grade is not None)
        window.overview.select(GRADED)
        pump(500)
        save(window, "cell-detail-graded.png")

        sim_channel = sim.sim_channel(TRIPPED)
        with sim.cabinet.lock:
            sim_channel.cell.set_temperature(47.0)  # past the recipe's 45 °C limit
        wait_for(lambda: channels[TRIPPED].state is ChannelState.TRIPPED)
        window.overview.select(TRIPPED)
        pump(500)
        save(window, "channel-tripped.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Regenerate the GUI screenshots in docs/images/ (run under Xvfb, or offscreen).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m tests.gui.make_screenshots

Drives the real window with the test double from tests/gui/fake_engine.py: 16 channels running
an incremental-capacity-like charge, one cell tripping its temperature limit, finished cells
graded. Writes overview-16ch.png, cell-detail-graded.png and channel-tripped.png.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from tests.gui.fake_engine import FakeEngine
from ui.app import CloseChoice, MainWindow
from ui.controller import StationController
from ui.engine_api import InstrumentInfo

OUT = Path(__file__).resolve().parents[2] / "docs" / "images"
SIZE = QtCore.QSize(1600, 1000)


def charge_curve(cell_id: str, k: int) -> tuple[float, float, float]:
    """A 1 A charge with two flat plateaus (two dQ/dV peaks), slightly different per cell."""
    spread = (sum(map(ord, cell_id)) % 7) * 0.004
    x = min(k / 600.0, 1.0)
    voltage_v = (
        3.3
        + 0.75 * x
        - 0.03 * math.tanh((x - 0.3) / 0.05)
        - 0.025 * math.tanh((x - 0.65) / 0.04)
        + spread
    )
    temperature_c = 25.0 + 6.0 * x + spread * 50
    if cell_id in ("CELL-0006", "CELL-0017"):
        temperature_c = 25.0 + k * 0.05  # this cell heats up and trips at 45 °C
    return voltage_v, 1.0, temperature_c


def pump(app: QtWidgets.QApplication, ms: int) -> None:
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_for(app: QtWidgets.QApplication, condition, timeout_ms: int = 20_000) -> None:
    waited = 0
    while not condition():
        if waited > timeout_ms:
            raise TimeoutError("screenshot scene did not reach its state")
        pump(app, 50)
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


def main() -> int:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    engine = FakeEngine(
        samples_per_run=10**6,
        period_s=0.004,
        dt_s=6.0,
        trip_cells=("CELL-0006",),
        sample_fn=charge_curve,
        capacity_min_ah=0.5,
    )
    channels = [f"CH{n:02d}" for n in range(1, 17)]
    controller = StationController(
        engine, channels, recipe="fake", grade_provider=engine.grade, history_loader=engine.history
    )
    settings_dir = tempfile.mkdtemp()
    settings = QtCore.QSettings(f"{settings_dir}/s.ini", QtCore.QSettings.Format.IniFormat)
    window = MainWindow(
        simulated=True,
        controller=controller,
        settings=settings,
        bench_name="sim-demo",
        instruments=[
            InstrumentInfo(
                "cabinet", "TCPIP::127.0.0.1::5025::SOCKET", "NEWARE BTS SIM", True, "2099-12-31"
            ),
        ],
    )
    window.confirm_close = lambda _active: CloseChoice.STOP_AND_QUIT
    window.resize(SIZE)
    window.show()
    window.splitter.setSizes([1000, 600])
    for n, channel_id in enumerate(channels, start=1):
        controller.start_run(channel_id, f"CELL-{n:04d}")
    wait_for(app, lambda: controller.state.channel("CH06").state.value == "tripped")
    window.banner.acknowledge()
    window.overview.select("CH03")
    wait_for(app, lambda: controller.state.channel("CH03").samples_seen > 400)
    pump(app, 300)
    save(window, "overview-16ch.png")

    # CH03 and CH05 complete and are graded; the rest keep running.
    for channel_id in ("CH03", "CH05"):
        engine.finish(channel_id)
    wait_for(app, lambda: controller.state.channel("CH05").grade is not None)
    wait_for(app, lambda: controller.state.channel("CH03").grade is not None)
    window.overview.select("CH03")
    pump(app, 300)
    save(window, "cell-detail-graded.png")

    # A fresh trip, banner shown, the tripped channel selected.
    engine.trip_cells = ("CELL-0017",)
    engine.abort("CH07")
    controller.start_run("CH07", "CELL-0017")
    wait_for(app, lambda: controller.state.channel("CH07").state.value == "tripped")
    window.overview.select("CH07")
    pump(app, 300)
    save(window, "channel-tripped.png")

    window.close()
    engine.shutdown(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

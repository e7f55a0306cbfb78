"""GUI test fixtures: isolated QSettings and a window wired to the fake engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6 import QtCore

from tests.gui.fake_engine import FakeEngine
from ui.app import CloseChoice, MainWindow
from ui.controller import StationController


@pytest.fixture
def settings(tmp_path: Path) -> QtCore.QSettings:
    return QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat)


def make_window(qtbot, engine: FakeEngine, channels: int, settings: QtCore.QSettings) -> MainWindow:
    controller = StationController(
        engine,
        [f"CH{n:02d}" for n in range(1, channels + 1)],
        recipe="fake-cccv",
        grade_provider=engine.grade,
        history_loader=engine.history,
    )
    window = MainWindow(
        simulated=True, controller=controller, settings=settings, bench_name="test-bench"
    )
    controller.setParent(window)
    window.confirm_close = lambda _active: CloseChoice.STOP_AND_QUIT
    qtbot.addWidget(window)
    return window


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    fake = FakeEngine()
    yield fake
    fake.shutdown(5)
    assert not fake.alive_threads()


@pytest.fixture
def window(qtbot, engine: FakeEngine, settings: QtCore.QSettings) -> Iterator[MainWindow]:
    win = make_window(qtbot, engine, 4, settings)
    win.show()
    qtbot.waitExposed(win)
    yield win
    if win.isVisible():
        win.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("gui-")]

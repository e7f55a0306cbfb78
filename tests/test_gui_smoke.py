"""The main window opens and closes offscreen, and the PySide6 pin keeps void calls safe."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PySide6 import QtCore

from ui.app import MainWindow


@pytest.fixture
def settings(tmp_path) -> QtCore.QSettings:
    # Never write the user's real settings from a test.
    return QtCore.QSettings(str(tmp_path / "station.ini"), QtCore.QSettings.Format.IniFormat)


def test_main_window_opens_and_closes(qtbot, settings) -> None:
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.isVisible()
    assert "SIMULATED" not in window.windowTitle()
    window.close()
    assert not window.isVisible()


def test_simulated_mode_is_marked_in_title_and_status_bar(qtbot, settings) -> None:
    window = MainWindow(simulated=True, settings=settings)
    qtbot.addWidget(window)
    assert "SIMULATED" in window.windowTitle()
    assert window.mode_label.text() == "SIMULATED"


def test_many_void_qt_calls_do_not_abort_the_interpreter() -> None:
    # PySide6 6.12.0 on CPython 3.11 drops a reference to None per void call and aborts with
    # "Fatal Python error: none_dealloc" after a few thousand; run it in a child so a regression
    # fails this test instead of killing the whole suite.
    code = (
        "from PySide6.QtGui import QPainterPath\n"
        "p = QPainterPath()\n"
        "for _ in range(200_000):\n"
        "    p.clear()\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"

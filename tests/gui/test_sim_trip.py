"""A limit trip and Stop all over the simulator: one warmed cell trips its recipe's temperature
limit, the tile and the banner show the limit, the value and the threshold; Stop all leaves no
simulated cabinet channel driving current.

Reference: the simulated cabinet's own channel state (``workstatus``), read in-process, and the
temperature the test set on the cell (the trip value must lie between the limit and it).
"""

from __future__ import annotations

import re

from PySide6 import QtCore

from station.config import sim_lot
from tests.gui.test_sim_intake import SimStation, station  # noqa: F401 - the fixture
from ui.state import ChannelState

WARMED_TO_C = 47.0  # past incoming-inspection's temperature_max_c = 45 °C


def test_trip_shows_value_on_tile_and_banner_and_stop_all_ends_every_output(
    qtbot,
    station: SimStation,  # noqa: F811
) -> None:
    window, controller = station.window, station.window.controller
    controller.recipe = "incoming-inspection"
    placed = {ch: cell for cell, ch in sim_lot(station.sim.launch, station.sim.config) if ch}
    for channel_id in ("ch01", "ch02", "ch03"):
        controller.start_run(channel_id, placed[channel_id].cell_id)
    views = controller.state.channels
    qtbot.waitUntil(
        lambda: all(views[c].samples_seen > 3 for c in ("ch01", "ch02", "ch03")), timeout=30_000
    )
    cabinet = station.sim.cabinet
    with cabinet.lock:
        station.sim.sim_channel("ch02").cell.set_temperature(WARMED_TO_C)
    qtbot.waitUntil(lambda: views["ch02"].state is ChannelState.TRIPPED, timeout=30_000)
    alarm = views["ch02"].alarm
    match = re.fullmatch(
        r"ch02: limit 'temperature_max' tripped at ([\d.]+) °C \(limit 45 °C\); output turned off",
        alarm,
    )
    assert match is not None, alarm
    assert 45.0 < float(match[1]) <= WARMED_TO_C
    assert alarm in window.banner.messages and window.banner.isVisible()
    tile = window.overview.tiles["ch02"]
    qtbot.waitUntil(lambda: tile.state_text == "TRIPPED", timeout=5000)
    assert tile.alarm_text == alarm.removeprefix("ch02: ")
    assert views["ch01"].state is ChannelState.RUNNING
    # The tripped cell gets a decision too, stored through the one evaluation path: QUARANTINE
    # with the limit and the value (station.evaluation.stopped_grade).
    qtbot.waitUntil(lambda: views["ch02"].grade is not None, timeout=30_000)
    grade = views["ch02"].grade
    assert grade is not None and grade.grade == "QUARANTINE"
    assert grade.summary.startswith("run stopped by the temperature_max limit at step ")
    assert f"{float(match[1]):.6g}" in grade.summary
    assert station.storage.grades_of(placed["ch02"].cell_id)[-1].grade == "QUARANTINE"

    with qtbot.waitSignal(controller.stop_all_finished, timeout=30_000) as stopped:
        qtbot.mouseClick(window.stop_button, QtCore.Qt.MouseButton.LeftButton)
    assert stopped.args == [True, "All channels stopped, outputs off"]
    assert station.sim.working() == []
    qtbot.waitUntil(lambda: not controller.state.active_channels(), timeout=30_000)

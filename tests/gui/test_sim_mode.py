"""``station gui --sim`` end to end: the real simulator child process (python -m hardware_sim),
the real drivers over TCP, the engine and storage, and the window driven as at the bench.

The simulator's own fault injector heats the cabinet's cells; the trips must show on the tiles
and the banner with their values, and Stop all must leave every run stopped.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

from PySide6 import QtCore

from ui.app import CloseChoice
from ui.launch import build_parser, open_bench
from ui.state import ChannelState


def inject_over_temperature(port: int) -> None:
    request = {
        "cmd": "fault",
        "device": "cabinet",
        "fault": "over_temperature",
        "temperature_c": 85,
    }
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall((json.dumps(request) + "\n").encode())
        assert json.loads(conn.makefile().readline())["ok"]


def test_sim_mode_runs_the_seeded_lot_and_shows_trips(qtbot, settings, tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "--sim",
            "--speed",
            "600",
            "--seed",
            "4",
            "--recipe",
            "incoming-inspection",
            "--db",
            str(tmp_path / "sim.db"),
        ]
    )
    window = open_bench(args, settings)
    qtbot.addWidget(window)
    window.confirm_close = lambda _active: CloseChoice.STOP_AND_QUIT
    window.show()
    controller = window.controller
    assert "SIMULATED" in window.windowTitle() and not window.banner.messages
    assert len(controller.assigned) == 16
    assert window.intake.result.text().startswith("Simulated lot (seed 4): 16 cells placed")

    qtbot.waitUntil(
        lambda: window.instruments_view.table.item(0, 3).text() == "connected", timeout=30_000
    )
    qtbot.keyClick(window.intake.field, QtCore.Qt.Key.Key_Return)
    views = controller.state.channels.values()
    # Seed 4 puts an open-tab cell on ch15: the engine's OCV probe refuses to start it.
    qtbot.waitUntil(
        lambda: (
            controller.state.channel("ch15").state is ChannelState.STOPPED
            and len(controller.state.active_channels()) == 15
        ),
        timeout=30_000,
    )
    assert "refused: OCV" in controller.state.channel("ch15").log[-1]
    refused_tile = window.overview.tiles["ch15"]
    qtbot.waitUntil(lambda: refused_tile.state_text == "STOPPED", timeout=5000)
    assert refused_tile.step_text.startswith("refused: OCV")
    qtbot.waitUntil(
        lambda: all(v.samples_seen > 0 for v in views if v.channel_id != "ch15"), timeout=30_000
    )
    tile = window.overview.tiles["ch01"]
    assert tile.values_text.split("\n")[0].endswith(" V")

    inject_over_temperature(int(window.property("simulator_port")))
    qtbot.waitUntil(
        lambda: any(v.state is ChannelState.TRIPPED for v in controller.state.channels.values()),
        timeout=30_000,
    )
    tripped = [v for v in controller.state.channels.values() if v.state is ChannelState.TRIPPED]
    assert window.banner.isVisible()
    assert tripped[0].alarm in window.banner.messages
    assert "tripped at" in tripped[0].alarm and "(limit" in tripped[0].alarm
    trip_tile = window.overview.tiles[tripped[0].channel_id]
    qtbot.waitUntil(lambda: trip_tile.state_text == "TRIPPED", timeout=5000)
    assert trip_tile.alarm_text == tripped[0].alarm.removeprefix(f"{tripped[0].channel_id}: ")

    with qtbot.waitSignal(controller.stop_all_finished, timeout=30_000) as stopped:
        qtbot.mouseClick(window.stop_button, QtCore.Qt.MouseButton.LeftButton)
    assert stopped.args[0] is True, stopped.args
    qtbot.waitUntil(lambda: not controller.state.active_channels(), timeout=30_000)

    # The placed lot skipped the scan; its checklist was stored for the grading gates all the same.
    with closing(sqlite3.connect(f"file:{tmp_path / 'sim.db'}?mode=ro", uri=True)) as conn:
        checklists = conn.execute(
            "SELECT COUNT(DISTINCT cell_id) FROM measurements WHERE kind = 'intake_checklist'"
        ).fetchone()[0]
    assert checklists == 16

    pid = int(window.property("simulator_pid"))
    window.close()
    assert window.shutdown_clean is True
    assert not Path(f"/proc/{pid}").exists(), "the simulator child process was ended and reaped"

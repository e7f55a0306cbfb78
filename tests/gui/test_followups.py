"""Open follow-ups in the Batch tab over the real simulator and engine: the follow-up recipe run
from the GUI schedules a self-discharge re-measurement, the panel shows it not due with its due
time, 7 days skipped on the simulator's and the station's clocks make it due, Re-measure starts
the recipe again on the cell's channel and its run closes the follow-up.

References: the due time must lie between the scheduling run's stored start and end plus
7 days (the follow-up step runs in between; 1 ms for float rounding); the closed follow-up is
read back from the database (``done_run_pk`` of the re-measurement run), not from the GUI.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import pytest
from PySide6 import QtCore, QtGui

from station.storage import FollowUp
from tests.gui.test_sim_intake import GOOD_CELL, open_station
from ui.controller import FOLLOWUPS_REFRESH_MS, StationController
from ui.engine_api import GradeView
from ui.followups import (
    DUE_COLOUR,
    FOLLOW_UP_RECIPE,
    FollowUpRow,
    FollowUpsPanel,
    due_text,
    local_time,
)

DAY_S = 86400.0
HOLD_S = 7 * DAY_S  # after_days in station/data/recipes/self-discharge-follow-up.toml
CHANNEL = "ch01"  # GOOD_CELL's channel in seed 7's lot
SPEED = 3600.0  # the recipe's 600 s OCV hold takes ~0.2 s wall


def test_due_text_rounds_up_to_the_shown_unit() -> None:
    now = 1_000_000.0
    assert due_text(now, now) == "due"
    assert due_text(now - 1.0, now) == "due"
    assert due_text(now + 3 * DAY_S + 4 * 3600.0, now) == "due in 3 d 4 h"
    # 3 d 3 h 0 min 1 s left: shown as 3 d 4 h, never less than is left.
    assert due_text(now + 3 * DAY_S + 3 * 3600.0 + 1.0, now) == "due in 3 d 4 h"
    assert due_text(now + 7 * DAY_S, now) == "due in 7 d 0 h"
    assert due_text(now + 5 * 3600.0 + 30 * 60.0, now) == "due in 5 h 30 min"
    assert due_text(now + 59 * 60.0 + 1.0, now) == "due in 1 h 0 min"
    assert due_text(now + 20 * 60.0, now) == "due in 20 min"
    assert due_text(now + 0.5, now) == "due in 1 min"


def test_remeasure_enabled_only_for_a_due_followup_on_a_free_channel(qtbot) -> None:
    now = 1_800_000_000.0
    rows = [
        FollowUpRow("C-FREE", "self-discharge", "run1", now - 60.0, now, "ch01"),
        FollowUpRow("C-LOOSE", "self-discharge", "run2", now - 60.0, now),
        FollowUpRow("C-BUSY", "self-discharge", "run3", now - 60.0, now, "ch03", "running"),
        FollowUpRow("C-EARLY", "self-discharge", "run4", now + 3600.0, now, "ch04"),
    ]
    panel = FollowUpsPanel()
    qtbot.addWidget(panel)
    panel.set_followups(rows)
    assert panel.title() == "Follow-ups: 4 open, 3 due"
    assert not panel.remeasure_button.isEnabled()
    assert panel.status.text() == "Select a follow-up to re-measure it."
    expected = {
        "C-FREE": "",
        "C-LOOSE": "C-LOOSE is not on a channel: scan it into a free channel first.",
        "C-BUSY": "ch03 is running: wait until it is free.",
        "C-EARLY": f"Not due until {local_time(now + 3600.0)}: a re-measurement before then"
        " would not close the follow-up.",
    }
    asked: list[tuple[str, str]] = []
    panel.remeasure_requested.connect(lambda cell, channel: asked.append((cell, channel)))
    for index, row in enumerate(rows):
        panel.table.selectRow(index)
        why = expected[row.cell_id]
        assert panel.remeasure_button.isEnabled() == (not why)
        assert panel.status.text() == why
        if why:
            assert panel.remeasure_button.toolTip() == why
    panel.table.selectRow(0)
    qtbot.mouseClick(panel.remeasure_button, QtCore.Qt.MouseButton.LeftButton)
    assert asked == [("C-FREE", "ch01")]
    # No second start while the first is under way; a refused start allows another try.
    assert not panel.remeasure_button.isEnabled()
    panel.start_failed("C-FREE", "start on ch01 failed: refused")
    assert panel.remeasure_button.isEnabled()
    assert panel.status.text() == "start on ch01 failed: refused"
    # A re-measurement that ran but ended without closing it (aborted) may be tried again.
    panel.remeasure_button.click()
    assert not panel.remeasure_button.isEnabled()
    panel.run_ended("ch01", "C-FREE")
    assert panel.remeasure_button.isEnabled()


def _stored(db: Path, query: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def test_followup_listed_due_after_seven_days_and_closed_by_remeasure(
    qtbot, settings, tmp_path: Path
) -> None:
    with open_station(qtbot, settings, tmp_path, speed=SPEED) as station:
        window, controller = station.window, station.window.controller
        panel = window.batch.followups
        db = tmp_path / "station.db"
        names = [recipe.name for recipe in window.recipes_view.recipes]
        # A grading run first (a triage with discharge pulses): the follow-up's OCV readings
        # are the self-discharge hold after it.
        window.recipes_view.list.setCurrentRow(names.index("fast-triage"))
        with qtbot.waitSignal(controller.grade_ready, timeout=60_000):
            controller.start_run(CHANNEL, GOOD_CELL)
        triage_run = controller.state.channel(CHANNEL).run_id
        window.recipes_view.list.setCurrentRow(names.index(FOLLOW_UP_RECIPE))
        assert controller.recipe == FOLLOW_UP_RECIPE
        assert controller.channel_of(GOOD_CELL) == CHANNEL
        # Besides runs and Reload, a timer re-reads them (the status changes with time).
        assert controller.followups_timer.isActive()
        assert controller.followups_timer.interval() == FOLLOWUPS_REFRESH_MS

        with qtbot.waitSignal(controller.grade_ready, timeout=60_000):
            controller.start_run(CHANNEL, GOOD_CELL)
        qtbot.waitUntil(lambda: len(panel.rows) == 1, timeout=30_000)
        row = panel.rows[0]
        first_run = controller.state.channel(CHANNEL).run_id
        ((started, ended, outcome),) = _stored(
            db, "SELECT started_t_s, ended_t_s, outcome FROM runs WHERE run_id = ?", first_run
        )
        assert outcome == "completed"
        assert (row.cell_id, row.kind, row.run_id) == (GOOD_CELL, "self-discharge", first_run)
        assert started + HOLD_S - 1e-3 <= row.due_t_s <= ended + HOLD_S + 1e-3
        assert not row.due and row.now_t_s < row.due_t_s
        cells = [panel.table.item(0, column).text() for column in range(6)]
        assert cells[:4] == [GOOD_CELL, "self-discharge", first_run, local_time(row.due_t_s)]
        # Read after the run ended: a little under 7 simulated days left (each wall second of
        # delay is an hour at 3600x), shown rounded up to the hour: shown - 1 h < left <= shown.
        left_s = row.due_t_s - row.now_t_s
        assert 6 * DAY_S <= left_s <= HOLD_S and ended <= row.now_t_s
        match = re.fullmatch(r"due in (\d+) d (\d+) h", cells[4])
        assert match is not None, cells[4]
        shown_s = int(match[1]) * DAY_S + int(match[2]) * 3600.0
        assert shown_s - 3600.0 < left_s <= shown_s
        assert cells[5] == CHANNEL
        panel.table.selectRow(0)
        assert not panel.remeasure_button.isEnabled()
        why = f"Not due until {local_time(row.due_t_s)}: a re-measurement before then would"
        assert panel.remeasure_button.toolTip().startswith(why)
        assert panel.status.text() == panel.remeasure_button.toolTip()

        # The 7-day hold: both clocks jump (as station.demo._hold does), the channel is idle.
        station.sim.running.handle({"cmd": "skip", "s": HOLD_S})
        station.storage.clock.skip(HOLD_S)
        panel.reload_button.click()
        # Reads asked for before the skip may still arrive first: wait for the one after it.
        qtbot.waitUntil(lambda: panel.rows[0].due, timeout=30_000)
        row = panel.rows[0]
        assert row.now_t_s >= row.due_t_s and panel.table.item(0, 4).text() == "due"
        assert panel.table.item(0, 0).background().color() == QtGui.QColor(DUE_COLOUR)
        panel.table.selectRow(0)
        assert panel.remeasure_button.isEnabled(), panel.remeasure_button.toolTip()

        graded: list[GradeView] = []
        controller.grade_ready.connect(graded.append)
        with qtbot.waitSignal(controller.run_started, timeout=30_000):
            qtbot.mouseClick(panel.remeasure_button, QtCore.Qt.MouseButton.LeftButton)
        assert not panel.remeasure_button.isEnabled()
        second_run = controller.state.channel(CHANNEL).run_id
        assert second_run != first_run
        qtbot.waitUntil(lambda: not panel.rows, timeout=60_000)
        # The closing run re-grades the triage run, now with the hold's K-value: the reference
        # is the core's formula (K = -dOCV/dt, grading.md 2.4) on the two stored hold OCVs.
        qtbot.waitUntil(lambda: any(g.run_id == second_run for g in graded), timeout=60_000)
        view = next(g for g in graded if g.run_id == second_run)
        assert station.storage.grades_of(GOOD_CELL)[-1].run_ids[-1] == triage_run
        figures = {name: value for name, value, _ in view.figures}
        ocvs = _stored(
            db,
            "SELECT m.t_s, json_extract(m.values_json, '$.voltage_v') FROM measurements m"
            " WHERE m.cell_id = ? AND m.kind = 'ocv' AND m.corrects_id IS NULL AND m.t_s >"
            " (SELECT ended_t_s FROM runs"
            " WHERE run_id = ?) ORDER BY m.t_s, m.id",
            GOOD_CELL,
            triage_run,
        )
        (t1, v1), (t2, v2) = ocvs[0], ocvs[-1]
        expected_k = (float(v1) - float(v2)) * 1000.0 / ((float(t2) - float(t1)) / DAY_S)
        assert figures["k_mv_per_day"] == pytest.approx(expected_k, rel=1e-9)
        assert figures["hold_days"] == pytest.approx(7.0, abs=0.1)
        assert panel.table.rowCount() == 0
        assert _stored(
            db,
            "SELECT r.run_id, f.kind FROM followups f JOIN runs r ON r.run_pk = f.done_run_pk",
        ) == [(second_run, "self-discharge")]
        # The re-measurement schedules no new follow-up; the recipe is the follow-up one.
        assert _stored(db, "SELECT count(*) FROM followups") == [(1,)]
        assert _stored(db, "SELECT recipe_name FROM runs WHERE run_id = ?", second_run) == [
            (FOLLOW_UP_RECIPE,)
        ]
        assert threading.current_thread().name == "MainThread"


def test_a_burst_of_refreshes_reads_once_more_after_the_read_under_way(qtbot) -> None:
    """Sixteen runs starting at once ask for the follow-ups sixteen times: the first read runs,
    the other asks make one more read after it, not fifteen."""
    release = threading.Event()
    calls: list[int] = []

    def loader() -> tuple[list[FollowUp], float]:
        calls.append(len(calls))
        release.wait(5.0)
        return [], 0.0

    controller = StationController(None, ["ch01"], followups_loader=loader)
    shown: list[list[FollowUpRow]] = []
    controller.followups_ready.connect(shown.append)
    try:
        for _ in range(16):
            controller.load_followups()
        release.set()
        qtbot.waitUntil(lambda: len(shown) == 2, timeout=10_000)
        qtbot.wait(200)  # nothing else was queued behind the second read
        assert (len(calls), len(shown)) == (2, 2)
    finally:
        controller.shutdown(stop_runs=False)

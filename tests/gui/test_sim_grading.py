"""Grades on the real path over the simulator: scan, screen, start, samples arrive, the run
ends, the run is graded through station.evaluation in a worker and stored; the tile shows the
badge, the cell detail the grade and every rule with value, threshold and margin; the batch view
lists the stored grade and builds matching groups.

References: the grade shown must be the grade stored in the database (read back here through
Storage, not the GUI), and each shown margin is recomputed here from the stored value and
threshold (margin = value - threshold for ">=", threshold - value for "<="; 1e-9 relative).
"""

from __future__ import annotations

import csv
import json
import math
import threading
from pathlib import Path

from PySide6 import QtCore

from station.reports.summary import restore
from tests.gui.test_sim_intake import GOOD_CELL, SimStation, station  # noqa: F401 - fixture
from tests.gui.test_window_flow import scan


def test_run_ends_graded_with_reasons_on_tile_detail_and_batch(
    qtbot,
    station: SimStation,  # noqa: F811
    tmp_path: Path,
) -> None:
    window, controller = station.window, station.window.controller
    controller.recipe = "fast-triage"
    station.place_in_meter(GOOD_CELL)
    with qtbot.waitSignal(controller.intake_result, timeout=30_000):
        scan(qtbot, window, GOOD_CELL)
    assert controller.assigned == {"ch01": GOOD_CELL}
    qtbot.keyClick(window.intake.field, QtCore.Qt.Key.Key_Return)  # Enter starts assigned cells

    tile = window.overview.tiles["ch01"]
    qtbot.waitUntil(lambda: tile.state_text == "RUNNING", timeout=30_000)
    qtbot.waitUntil(lambda: len(window.plots.buffer("ch01")) >= 5, timeout=30_000)
    with qtbot.waitSignal(controller.grade_ready, timeout=120_000) as graded:
        qtbot.waitUntil(lambda: tile.state_text == "DONE", timeout=120_000)
    shown = graded.args[0]
    qtbot.waitUntil(lambda: tile.grade_text != "", timeout=5000)

    stored = station.storage.latest_grades()[GOOD_CELL]
    assert stored.run_ids == (controller.state.channel("ch01").run_id,)
    assert tile.grade_text == stored.grade == shown.grade
    window.overview.select("ch01")
    assert window.detail.grade_label.text() == stored.grade
    # The intake checklist recorded with the scan is what the grading gates read.
    assert stored.explanation["facts"] == {
        "damaged": False,
        "calendar_expired": False,
        "traceable": True,
    }
    rules = stored.explanation["grade"]["rules"]
    assert window.detail.reasons.count() == len(rules) > 0
    for row, rule in enumerate(rules):
        reason = shown.reasons[row]
        assert (reason.rule, reason.verdict) == (rule["rule"], rule["verdict"])
        assert window.detail.reasons.item(row).text() == reason.plain()
        if rule["value"] is None or rule["margin"] is None:
            continue
        value, threshold = rule["value"], rule["threshold"]
        expected = value - threshold if rule["comparison"] == ">=" else threshold - value
        assert math.isclose(reason.margin, expected, rel_tol=1e-9, abs_tol=1e-12)
        assert reason.value == value and reason.threshold == threshold

    assert window.batch.model.rowCount() == 1
    assert window.batch.model.rows[0].grade == stored.grade
    with qtbot.waitSignal(controller.matching_ready, timeout=30_000) as matched:
        window.batch.parallel.setValue(1)
        window.batch.series.setValue(1)
        qtbot.mouseClick(window.batch.match_button, QtCore.Qt.MouseButton.LeftButton)
    lines, _groups, _unmatched = matched.args
    assert any(GOOD_CELL in line for line in lines)

    with qtbot.waitSignal(controller.exported, timeout=30_000) as exported:
        window.batch.export_requested.emit(str(tmp_path / "export"))
    assert exported.args[0].startswith("Exported: ")
    with (tmp_path / "export" / "grades.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [restore(row["cell_id"]) for row in rows] == [GOOD_CELL]
    assert restore(rows[0]["grade"]) == stored.grade
    assert restore(rows[0]["reason"]) == stored.reason
    saved = json.loads((tmp_path / "export" / "grades.json").read_text(encoding="utf-8"))
    assert saved[0]["explanation"] == stored.explanation
    assert threading.current_thread().name == "MainThread"

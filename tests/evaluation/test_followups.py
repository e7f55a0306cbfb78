"""Self-discharge follow-ups: scheduled by a run, closed by the re-measurement, listed while open.

The references are the events stored: a follow-up due at ``T_DUE`` is closed by the first OCV of
the cell from a later run at or after ``T_DUE`` (never by an earlier one, never by the run that
scheduled it), and the closing run's own ``follow_up`` step schedules nothing new.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from station.cli.main import main
from station.clock import ManualClock
from station.evaluation import grade_lot
from station.events import MeasurementTaken
from station.grading.profiles import load_profile
from station.storage import Storage, latest_record_t_s, open_followups
from tests.evaluation.storedlot import SECONDS_PER_DAY, V_REST, Spec, _Run, rows_for, store_lot

DAYS = 7.0


def _schedule(run: _Run, due_t_s: float) -> None:
    values = {"kind": "self-discharge", "due_t_s": due_t_s, "after_s": DAYS * SECONDS_PER_DAY}
    run.storage.handle_event(
        MeasurementTaken(run.run_id, "ch01", 1, "follow_up", json.dumps(values), "", run.t_s)
    )


def _follow_up_run(storage: Storage, run_id: str, cell_id: str, t_s: float) -> float:
    """The self-discharge-follow-up recipe's records: an OCV, then its follow_up step."""
    run = _Run(storage, run_id, cell_id, t_s)
    run.step_rows("ocv_hold", [(V_REST, 0.0)] * 3)
    run.measure("ocv", {"voltage_v": V_REST})
    due = run.t_s + DAYS * SECONDS_PER_DAY
    _schedule(run, due)
    run.end()
    return due


@pytest.fixture
def lot_db(tmp_path: Path) -> Path:
    path = tmp_path / "lot.db"
    store_lot(path, [Spec("C1", rows_for(0.9), 0.018), Spec("C2", rows_for(0.9), 0.018)])
    return path


def test_the_re_measurement_closes_the_follow_up_and_schedules_none(lot_db: Path) -> None:
    storage = Storage(lot_db, ManualClock(0.0), batch_interval_s=0.05)
    try:
        due1 = _follow_up_run(storage, "fu-C1-a", "C1", 1_800_000_000.0)
        due2 = _follow_up_run(storage, "fu-C2-a", "C2", 1_800_000_000.0)
        # C2 is re-measured a day too early: its follow-up stays open, and that run schedules
        # a follow-up of its own (it was not the re-measurement).
        early = _follow_up_run(storage, "fu-C2-b", "C2", due2 - SECONDS_PER_DAY)
        # C1 is re-measured after the due time: closed, nothing new scheduled.
        _follow_up_run(storage, "fu-C1-b", "C1", due1 + 60.0)
        storage.flush()
        assert [(f.cell_id, f.due_t_s, f.run_id) for f in storage.open_followups()] == [
            ("C2", due2, "fu-C2-a"),
            ("C2", early, "fu-C2-b"),
        ]
        with storage.reader() as conn:
            done = conn.execute(
                "SELECT f.cell_id, r.run_id FROM followups f JOIN runs r"
                " ON r.run_pk = f.done_run_pk"
            ).fetchall()
        assert done == [("C1", "fu-C1-b")]
    finally:
        storage.close()

    profile = load_profile("second-life")
    graded = grade_lot(lot_db, profile)
    assert [(f.cell_id, f.due_t_s) for f in graded.followups] == [("C2", due2), ("C2", early)]
    # K of C1 comes from the OCV records after its grading run: the scheduling run's and the
    # re-measurement's (equal here: 0 mV/day). The first OCV is read when the follow-up is
    # scheduled (due = then + 7 d); the re-measurement run starts 60 s after the due time and
    # reads its OCV after three 10 s rows: the hold is 7 d + 90 s.
    c1 = graded.metrics_of("C1")
    assert c1 is not None and c1.value("k_mv_per_day") == pytest.approx(0.0, abs=1e-9)
    assert c1.value("hold_days") == pytest.approx(DAYS + 90.0 / SECONDS_PER_DAY, abs=1e-9)


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out


def test_followups_command_and_grade_list_open_follow_ups(
    lot_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = Storage(lot_db, ManualClock(0.0), batch_interval_s=0.05)
    try:
        # Far in the future: open and not due now; the other one is past due.
        future = _follow_up_run(storage, "fu-C1", "C1", 4_000_000_000.0)
        past = _follow_up_run(storage, "fu-C2", "C2", 1_000_000.0)
        storage.flush()
    finally:
        storage.close()
    code, out = _cli(["followups", "--db", str(lot_db), "--json"], capsys)
    assert code == 0
    listed = json.loads(out)
    assert [(f["cell_id"], f["due_t_s"]) for f in listed["followups"]] == [
        ("C2", past),
        ("C1", future),
    ]
    assert [f["due_now"] for f in listed["followups"]] == [True, False]
    # 1,000,000 s + 30 s (three rows) + 7 days = 1,604,830 s = 18 d 13 h 47 min 10 s.
    assert listed["followups"][0]["due_utc"] == "1970-01-19T13:47:10Z"
    code, out = _cli(["followups", "--db", str(lot_db), "--due", "--json"], capsys)
    assert [f["cell_id"] for f in json.loads(out)["followups"]] == ["C2"]

    code, out = _cli(["grade", "--db", str(lot_db), "--json"], capsys)
    assert code == 0
    graded = json.loads(out)
    assert [f["cell_id"] for f in graded["open_followups"]] == ["C2", "C1"]
    # The grade is stamped no earlier than the latest record before it: the end of the run far
    # in the future (its start + three 10 s rows), well ahead of the wall clock.
    with sqlite3.connect(lot_db) as conn:
        stamps = [t for (t,) in conn.execute("SELECT created_t_s FROM grades")]
        assert latest_record_t_s(conn) == min(stamps)
    assert stamps and min(stamps) == future - DAYS * SECONDS_PER_DAY
    assert open_followups(sqlite3.connect(lot_db), ["C1"])[0].run_id == "fu-C1"

"""``station grade`` on a database a short simulated ``station run`` wrote (fast triage of three
cells): what it prints is what it stores, re-grading keeps the earlier grades, errors are one
line and write nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from station.config import preset_text
from station.evaluation import grade_lot
from station.grading.profiles import load_profile
from tests.cli.conftest import cli, lot_csv, station

CELLS = ("C1", "C2", "C3")


@pytest.fixture(scope="module")
def run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("grade")
    bench, lot = tmp / "bench.toml", tmp / "lot.csv"
    bench.write_text(preset_text("sim-demo"), encoding="utf-8")
    lot.write_text(lot_csv(list(CELLS)), encoding="utf-8")
    db = tmp / "st.db"
    done = station("run", "--bench", bench, "--recipe", "fast-triage", "--lot", lot,
                   "--db", db, "--log", tmp / "run.log")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return db


def _copy(db: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy.db"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    return copy


def _rows(db: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_json_output_is_what_is_stored(run_db: Path, tmp_path: Path) -> None:
    db = _copy(run_db, tmp_path)
    done = cli("grade", "--db", db, "--operator", "ann", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["profile"]["name"] == "second-life"
    # The same evaluation path, called directly, gives the same outcomes.
    direct = grade_lot(db, load_profile("second-life"))
    assert {g["cell_id"]: g["grade"] for g in result["grades"]} == {
        g.cell_id: g.outcome for g in direct.grades
    }
    stored = _rows(
        db,
        "SELECT id, cell_id, grade, reason, run_ids, operator, profile_version, supersedes_id"
        " FROM grades ORDER BY id",
    )
    assert [r[1] for r in stored] == list(CELLS)
    for row, printed in zip(stored, result["grades"], strict=True):
        gid, cell, grade, reason, runs, operator, version, supersedes = row
        assert printed["grade_id"] == gid and printed["cell_id"] == cell
        assert (printed["grade"], printed["reason"]) == (grade, reason)
        assert printed["run_ids"] == json.loads(str(runs))
        assert (operator, version, supersedes) == ("ann", "1.0.0", None)
    audit = _rows(db, "SELECT subject, who FROM audit WHERE action = 'grade cell' ORDER BY id")
    assert audit == [(c, "ann") for c in CELLS]


def test_regrading_under_another_profile_keeps_the_old_grades(run_db: Path, tmp_path: Path) -> None:
    db = _copy(run_db, tmp_path)
    assert cli("grade", "--db", db).returncode == 0
    again = cli("grade", "--db", db, "--profile", "incoming-inspection", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    history = _rows(db, "SELECT id, cell_id, profile_name, supersedes_id FROM grades ORDER BY id")
    assert len(history) == 2 * len(CELLS)
    first = {cell: gid for gid, cell, name, _ in history if name == "second-life"}
    for printed in result["grades"]:
        assert printed["supersedes_id"] == first[printed["cell_id"]]
    assert {name for _, _, name, _ in history} == {"second-life", "incoming-inspection"}


def test_table_output_lists_every_cell(run_db: Path, tmp_path: Path) -> None:
    db = _copy(run_db, tmp_path)
    done = cli("grade", "--db", db, "--lot", "")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("lot '' graded under second-life 1.0.0")
    assert lines[1].split()[:3] == ["cell", "grade", "reason"]
    assert [line.split()[0] for line in lines[2:5]] == list(CELLS)
    assert "3 graded" in done.stdout


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--lot", "NOPE"], "lot 'NOPE' holds no cells"),
        (["--profile", "no-such-profile"], "profile no-such-profile"),
        (["--operator", " "], "--operator"),
    ],
)
def test_errors_are_one_line_and_write_nothing(
    run_db: Path, tmp_path: Path, argv: list[str], words: str
) -> None:
    db = _copy(run_db, tmp_path)
    done = cli("grade", "--db", db, *argv)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr
    assert _rows(db, "SELECT count(*) FROM grades") == [(0,)]


def test_missing_database_is_named(tmp_path: Path) -> None:
    done = cli("grade", "--db", tmp_path / "none.db")
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert not (tmp_path / "none.db").exists()

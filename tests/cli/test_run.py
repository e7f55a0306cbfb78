"""``station run`` on the simulated bench, in child processes as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import lot_csv, station


def _runs(db: Path) -> list[tuple[str, str, str | None, str | None]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT cell_id, channel_id, outcome, reason FROM runs ORDER BY run_pk"
        ).fetchall()
    finally:
        conn.close()


def _summary_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows, cell -> the words of its other columns."""
    lines = stdout.splitlines()
    start = lines.index(next(line for line in lines if line.strip() == "summary"))
    rows = {}
    for line in lines[start + 1 :]:
        words = line.split()
        if words and words[0] in ("C1", "C2", "C3"):
            rows[words[0]] = words[1:]
    return rows


def test_run_completes_lot_and_second_run_skips_it(
    tmp_path: Path, bench_file: Path, lot_file: Path
) -> None:
    db, log = tmp_path / "st.db", tmp_path / "run.log"
    args = ("run", "--bench", bench_file, "--recipe", "fast-triage", "--lot", lot_file)
    done = station(*args, "--db", db, "--log", log, "--profile", "second-life")
    assert done.returncode == 0, done.stderr
    assert "3/3 cells completed" in done.stdout
    assert f"log: {log}" in done.stdout.splitlines()
    # The lot file carries no intake checklist (damage, traceability) and triage holds no OCV
    # for days, so the second-life gates can only say RETEST: never a bin, never a reject.
    table = _summary_rows(done.stdout)
    assert table == {
        cell_id: ["completed", "recipe", "completed", "RETEST"] for cell_id in ("C1", "C2", "C3")
    }
    for channel in ("ch01", "ch02", "ch03"):
        assert f"{channel}: " in done.stdout  # per-channel progress lines
    runs = _runs(db)
    # one cell per channel, in channel order, every run completed
    assert [(r[0], r[1], r[2]) for r in runs] == [
        ("C1", "ch01", "completed"),
        ("C2", "ch02", "completed"),
        ("C3", "ch03", "completed"),
    ]
    assert "RunEnded" in log.read_text(encoding="utf-8")

    again = station(*args, "--db", db, "--log", log)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already completed") == 3
    assert _summary_rows(again.stdout)["C2"] == ["completed", "earlier", "run"]
    assert len(_runs(db)) == 3  # nothing ran twice


def test_missing_bench_file_is_one_line_error_and_writes_nothing(
    tmp_path: Path, lot_file: Path
) -> None:
    db = tmp_path / "st.db"
    done = station(
        "run", "--bench", tmp_path / "none.toml", "--recipe", "fast-triage",
        "--lot", lot_file, "--db", db, "--log", tmp_path / "run.log",
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "none.toml" in lines[0] and "does not exist" in lines[0]
    assert not db.exists()


def test_bad_lot_rows_name_row_and_column_and_write_nothing(
    tmp_path: Path, bench_file: Path
) -> None:
    lot = tmp_path / "bad.csv"
    text = lot_csv(["C1", "C2"]).replace("C2,NMC,cylindrical,3.0", "C2,NMC,cylindrical,abc")
    lot.write_text(text, encoding="utf-8")
    db = tmp_path / "st.db"
    done = station(
        "run", "--bench", bench_file, "--recipe", "fast-triage", "--lot", lot,
        "--db", db, "--log", tmp_path / "run.log",
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "row 2" in lines[0] and "rated_capacity_ah" in lines[0]  # data row 2, column
    assert not db.exists()


def test_bad_arguments(tmp_path: Path, bench_file: Path, lot_file: Path) -> None:
    missing = station("run", "--bench", bench_file, "--lot", lot_file)
    assert missing.returncode == 2 and "--recipe" in missing.stderr
    unknown = station(
        "run", "--bench", bench_file, "--recipe", "no-such-recipe", "--lot", lot_file,
        "--db", tmp_path / "st.db",
    )  # fmt: skip
    assert unknown.returncode == 2 and "no-such-recipe" in unknown.stderr
    assert not (tmp_path / "st.db").exists()
    bad_speed = station("run", "--bench", bench_file, "--recipe", "x", "--lot", lot_file,
                        "--sim-speed", "fast")  # fmt: skip
    assert bad_speed.returncode == 2 and "--sim-speed" in bad_speed.stderr
    real = tmp_path / "real.toml"
    real.write_text(
        re.sub(r'"@sim:[\w-]+"', '"TCPIP0::10.0.0.9::5025::SOCKET"', bench_file.read_text("utf-8")),
        encoding="utf-8",
    )
    sim_on_real = station(
        "run", "--bench", real, "--recipe", "fast-triage", "--lot", lot_file,
        "--db", tmp_path / "st.db", "--sim-launch", "demo",
    )  # fmt: skip
    assert sim_on_real.returncode == 2 and "--sim-launch" in sim_on_real.stderr
    assert len(sim_on_real.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "st.db").exists()


def test_ctrl_c_stops_with_outputs_off_and_the_lot_resumes(
    tmp_path: Path, bench_file: Path, lot_file: Path
) -> None:
    db, log = tmp_path / "st.db", tmp_path / "run.log"
    base = ["run", "--bench", str(bench_file), "--recipe", "fast-triage", "--lot", str(lot_file)]
    # 30x speed: the 330 s triage takes ~11 s wall, so the SIGINT lands mid-run.
    child = subprocess.Popen(
        [sys.executable, "-m", "station", *base, "--db", str(db), "--log", str(log),
         "--sim-speed", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    assert child.stdout is not None
    seen = []
    for line in child.stdout:
        seen.append(line)
        if "step 3" in line:  # every started run is past its pre-start probe
            break
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, "".join(seen) + out + err
    assert "outputs are off" in err
    runs = _runs(db)
    assert runs, "no run was stored before the interrupt"
    for cell_id, _channel, outcome, reason in runs:
        # the engine's abort path turns the output off before RunEnded is stored
        assert outcome == "aborted", (cell_id, outcome, reason)
        assert reason is not None and "Ctrl-C" in reason

    resumed = station(*base, "--db", db, "--log", log)
    assert resumed.returncode == 0, resumed.stderr
    after = _runs(db)
    completed = sorted(r[0] for r in after if r[2] == "completed")
    assert completed == ["C1", "C2", "C3"]
    assert all(r[2] in ("aborted", "completed") for r in after)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the simulator via /proc")
def test_crash_mid_run_is_held_and_continued_by_the_next_run(
    tmp_path: Path, bench_file: Path, lot_file: Path
) -> None:
    """SIGKILL leaves runs without an end; the next ``station run`` holds them with outputs off
    (Engine.resume_after_crash) and continues them at their checkpoint instead of restarting."""
    db, log = tmp_path / "st.db", tmp_path / "run.log"
    base = ["run", "--bench", str(bench_file), "--recipe", "fast-triage", "--lot", str(lot_file)]
    child = subprocess.Popen(
        [sys.executable, "-m", "station", *base, "--db", str(db), "--log", str(log),
         "--sim-speed", "30", "--progress-every", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    assert child.stdout is not None
    started = set()
    for line in child.stdout:
        if "step 3" in line:
            started.add(line.split(":")[0])
        if len(started) == 3:
            break
    simulators = [
        int(pid)
        for children in Path(f"/proc/{child.pid}/task").glob("*/children")
        for pid in children.read_text().split()
    ]
    child.kill()
    child.wait(30)
    for pid in simulators:
        os.kill(pid, signal.SIGTERM)
    before = _runs(db)
    assert sorted(r[0] for r in before) == ["C1", "C2", "C3"]
    assert all(r[2] is None for r in before)  # no run ended: the crash interrupted them all

    resumed = station(*base, "--db", db, "--log", log)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("continued at step") == 3
    after = _runs(db)
    assert len(after) == 3  # continued, not restarted as new runs
    assert all(r[2] == "completed" for r in after)

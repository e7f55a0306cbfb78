"""D1: kill -9 at random moments of a headless batch; after every kill the database passes
integrity_check, every acknowledged (committed) sample is present, none is duplicated, each run's
checkpoint agrees with its samples; in the end every run was resumed or closed and every cell
has a completed run."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from station.storage import integrity_check

PROJECT_ROOT_DIR = str(Path(__file__).resolve().parents[2])

SPEED = 600.0  # a 5-minute triage run takes about 0.5 s: kills land mid-run


def spawn(db: Path, base: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.engine.kill_child", str(db), str(base), str(SPEED)],
        cwd=PROJECT_ROOT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_acks(output: str, acked: dict[str, int]) -> None:
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ACK" and parts[2].lstrip("-").isdigit():
            acked[parts[1]] = max(acked.get(parts[1], -1), int(parts[2]))


def check_database(db: Path, acked: dict[str, int]) -> dict[str, tuple[str | None, str]]:
    assert integrity_check(db) == "ok"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        runs = {}
        for run_id, pk, outcome, state, last_seq in conn.execute(
            "SELECT r.run_id, r.run_pk, r.outcome, p.state, p.last_seq FROM runs r"
            " JOIN run_progress p USING (run_pk)"
        ):
            seqs = [
                r[0]
                for r in conn.execute(
                    "SELECT seq FROM samples WHERE run_pk = ? ORDER BY seq", (pk,)
                )
            ]
            assert seqs == list(range(len(seqs))), f"{run_id}: gap or duplicate"
            assert last_seq == len(seqs) - 1, f"{run_id}: checkpoint {last_seq} vs {len(seqs)}"
            assert acked.get(run_id, -1) <= last_seq, f"{run_id}: acknowledged samples lost"
            runs[run_id] = (outcome, state)
        return runs
    finally:
        conn.close()


def kill_loop(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    db = tmp_path / "kill.db"
    base = time.time()
    acked: dict[str, int] = {}
    for _ in range(kills):
        child = spawn(db, base)
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.0, 0.6))  # anywhere, start-up and recovery included
        else:
            assert child.stdout is not None
            line = child.stdout.readline()
            while line and not line.startswith(("READY", "DONE")):
                read_acks(line, acked)
                line = child.stdout.readline()
            time.sleep(rng.uniform(0.0, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        read_acks(out, acked)
        assert child.returncode in (-signal.SIGKILL, 0), err
        check_database(db, acked)
    child = spawn(db, base)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    assert "DONE" in out
    read_acks(out, acked)
    runs = check_database(db, acked)
    assert runs and all(outcome is not None for outcome, _ in runs.values())
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    done = {r[0] for r in conn.execute("SELECT cell_id FROM runs WHERE outcome = 'completed'")}
    audit = conn.execute(
        "SELECT count(*) FROM audit WHERE action IN ('run held', 'close run')"
    ).fetchone()[0]
    conn.close()
    assert done == {f"K-{i}" for i in range(4)}
    assert acked  # kills landed while samples were being committed
    assert audit > 0  # crashes left runs that an operator decision resumed or closed


def test_kill9_loop_short(tmp_path: Path) -> None:
    kill_loop(tmp_path, kills=50, seed=9)


@pytest.mark.slow
def test_kill9_loop_long(tmp_path: Path) -> None:
    kill_loop(tmp_path, kills=500, seed=10)

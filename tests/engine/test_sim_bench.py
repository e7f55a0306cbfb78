"""Acceptance over the real simulator and drivers: ``python -m hardware_sim --bench demo`` at
speed 3600 serves a 16-channel Neware cabinet, a BT3562 and a BT4560 over TCP; the engine runs
the second-life recipe on the 16-cell lot and every cell's data is in the database (a defective
cell's refusal included)."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from station.events import RunOutcome
from station.recipes import shipped_recipe
from station.simbench import SimulatedBench, run_lot
from station.storage import integrity_check


def test_sixteen_channel_simulated_bench_grades_its_lot(tmp_path: Path) -> None:
    db = tmp_path / "sim.db"
    with SimulatedBench(speed=3600, seed=7) as sim:
        assert sim.bench.instruments["cabinet"].address.startswith("tcp://127.0.0.1:")
        result = run_lot(sim, db, recipe="second-life-full", timeout_s=240)
    assert len(result.runs) == 16 and len(result.outcomes) == 16
    # The simulated lot carries the usual defects (e.g. a cell mounted reversed): such a cell is
    # refused before any output, naming the cause; every other cell completes.
    refused = {
        r
        for r, o in result.outcomes.items()
        if o is RunOutcome.ABORTED and result.reasons[r].startswith("refused: ")
    }
    completed = {r for r, o in result.outcomes.items() if o is RunOutcome.COMPLETED}
    assert completed | refused == set(result.outcomes), result.reasons
    assert len(completed) >= 12
    assert integrity_check(db) == "ok"
    recipe_steps = len(shipped_recipe("second-life-full").steps)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for run_id in refused:
            pk = conn.execute("SELECT run_pk FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
            kinds = {
                r[0]
                for r in conn.execute("SELECT step_kind FROM step_events WHERE run_pk = ?", (pk,))
            }
            assert kinds == {"probe"}  # only the open-circuit probe ever ran
            currents = [
                r[0] for r in conn.execute("SELECT current_a FROM samples WHERE run_pk = ?", (pk,))
            ]
            assert all(abs(i) < 1e-6 for i in currents)
        for cell_id, run_id in result.runs.items():
            if run_id in refused:
                continue
            pk, outcome, simulated, stored_cell = conn.execute(
                "SELECT run_pk, outcome, simulated, cell_id FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            assert (outcome, simulated, stored_cell) == ("completed", 1, cell_id)
            seqs = [
                r[0]
                for r in conn.execute(
                    "SELECT seq FROM samples WHERE run_pk = ? ORDER BY seq", (pk,)
                )
            ]
            assert len(seqs) > 1000 and seqs == list(range(len(seqs)))
            assert (
                conn.execute(
                    "SELECT last_seq FROM run_progress WHERE run_pk = ?", (pk,)
                ).fetchone()[0]
                == len(seqs) - 1
            )
            kinds = {
                r[0]: r[1]
                for r in conn.execute(
                    "SELECT kind, values_json FROM measurements WHERE run_pk = ?", (pk,)
                )
            }
            assert {"ocv_probe", "acir", "ocv", "eis"} <= set(kinds)
            acir = json.loads(kinds["acir"])
            assert acir["status"] == "valid" and 0 < acir["resistance_ohm"] < 1
            points = json.loads(kinds["eis"])["points"]  # [f_hz, Re Z, Im Z, V, status]
            assert len(points) == 13 and {p[4] for p in points} == {"valid"}
            steps = {
                r[0]
                for r in conn.execute(
                    "SELECT step_kind FROM step_events WHERE run_pk = ? AND event = 'ended'", (pk,)
                )
            }
            assert {"charge_cccv", "discharge_cc", "pulse", "soc_move", "eis"} <= steps
            capacity = conn.execute(
                "SELECT capacity_ah FROM step_events WHERE run_pk = ? AND event = 'ended'"
                " AND step_kind = 'discharge_cc'",
                (pk,),
            ).fetchone()[0]
            # Retired cells of a 4.8 Ah rating: a C/3 capacity between 40 % and 105 % of rated.
            assert -4.8 * 1.05 < capacity < -4.8 * 0.4
            started = conn.execute(
                "SELECT count(*) FROM step_events WHERE run_pk = ? AND event = 'started'", (pk,)
            ).fetchone()[0]
            assert started >= recipe_steps
        # cabinet, the two meters and their two multiplexers
        assert conn.execute("SELECT count(*) FROM instruments").fetchone()[0] == 5
    finally:
        conn.close()


def test_the_same_batch_from_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "station.simbench",
            "--db",
            str(db),
            "--recipe",
            "fast-triage",
            "--speed",
            "3600",
            "--seed",
            "3",
            "--timeout",
            "120",
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: some cell was refused or tripped
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 17 and lines[-1].endswith(f"data in {db}")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert (
            conn.execute(
                "SELECT count(*) FROM runs WHERE outcome = 'completed'"
                " AND recipe_name = 'fast-triage'"
            ).fetchone()[0]
            == 16
        )
    finally:
        conn.close()


def test_injected_over_temperature_trips_and_is_recorded(tmp_path: Path) -> None:
    """The simulator's own fault injector heats the cabinet's cells to 85 degC mid-run: every
    run still going trips on temperature (station limit 50 degC for triage, or the instrument's
    own protection), the output is stopped and the trip is stored with its value."""
    db = tmp_path / "trip.db"
    with SimulatedBench(speed=600, seed=4) as sim:
        assert sim.launch.control_port is not None

        def inject() -> None:
            time.sleep(0.3)
            request = {
                "cmd": "fault",
                "device": "cabinet",
                "fault": "over_temperature",
                "temperature_c": 85,
            }
            with socket.create_connection(("127.0.0.1", sim.launch.control_port)) as conn:
                conn.sendall((json.dumps(request) + "\n").encode())
                assert json.loads(conn.makefile().readline())["ok"]

        injector = threading.Thread(target=inject)
        injector.start()
        result = run_lot(sim, db, recipe="fast-triage", timeout_s=120)
        injector.join()
    tripped = [r for r, o in result.outcomes.items() if o is RunOutcome.TRIPPED]
    assert len(result.outcomes) == 16 and len(tripped) >= 8, result.reasons
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for run_id in tripped:
            rows = conn.execute(
                "SELECT t.limit_name, t.value, t.threshold, r.reason FROM limit_trips t"
                " JOIN runs r USING (run_pk) WHERE r.run_id = ?",
                (run_id,),
            ).fetchall()
            assert len(rows) == 1
            limit, value, threshold, reason = rows[0]
            assert limit.startswith(("temperature_max", "instrument_protection"))
            assert limit.startswith("instrument_protection") or value > threshold >= 50.0
            assert reason
    finally:
        conn.close()

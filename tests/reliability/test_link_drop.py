"""S6: the Neware cabinet's TCP link drops (and stays offline a moment) several times mid-step,
through the real engine: every row the simulated cabinet recorded is stored exactly once and no
start is re-sent (the cabinet's own start counter equals the cabinet steps the station began)."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest

from station.engine import Engine
from station.events import RunOutcome

from .harness import Batch, RowCounter, inprocess_bench, run_batch, stored_keys, unmatched

# Steps the station runs on the meters, not the cabinet (no cabinet start for these).
METER_STEPS = ("acir", "eis")
# Reconnect at once and a few times: a dropped link comes back within one poll period.
RECONNECTING = {"timeout_s": 0.5, "reconnect_attempts": 5, "reconnect_backoff_s": 0.005}


def _link_drops(tmp_path: Path, *, drops: int, seed: int, speed: float) -> None:
    rng = random.Random(seed)
    db = tmp_path / "drop.db"
    with inprocess_bench(speed=speed, seed=seed, cabinet_settings=RECONNECTING) as sim:
        counters: dict[str, RowCounter] = {}
        done = 0

        def drop_links(engine: Engine, batch: Batch) -> None:
            nonlocal done
            with sim.cabinet.lock:
                for channel_id in batch.runs:
                    counters[channel_id] = RowCounter(sim.sim_channel(channel_id))
            for _ in range(drops):
                time.sleep(rng.uniform(0.2, 0.8))
                if engine.wait_idle(0):
                    break
                # Offline for at most ~1 simulated second: shorter than the 3 poll periods after
                # which the station rightly calls the channel stuck.
                sim.running.tcp["cabinet"].drop_client(offline_s=rng.uniform(0.0, 0.6 / speed))
                done += 1

        batch = run_batch(sim, db, recipe="fast-triage", channels=2, during=drop_links)
        starts = {c: sim.sim_channel(c).testid for c in batch.runs}
        rows = {c: counters[c].rows() for c in batch.runs}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    lost = duplicated = resent = 0
    try:
        for channel_id, run_id in batch.runs.items():
            pk = conn.execute("SELECT run_pk FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
            seqs = [r[0] for r in conn.execute("SELECT seq FROM samples WHERE run_pk = ?", (pk,))]
            stored = stored_keys(db, run_id)
            began = conn.execute(
                "SELECT count(*) FROM step_events WHERE run_pk = ? AND event = 'started'"
                f" AND step_kind NOT IN ({', '.join('?' * len(METER_STEPS))})",
                (pk, *METER_STEPS),
            ).fetchone()[0]
            recorded = rows[channel_id]
            missing, extra = unmatched(recorded, stored)
            lost += missing
            duplicated += extra
            resent += starts[channel_id] - began
            assert seqs == list(range(len(seqs)))
    finally:
        conn.close()
    print(
        f"S6: {done} link drops over {len(batch.runs)} runs; samples lost {lost}, "
        f"duplicated {duplicated}, starts re-sent {resent}; "
        f"outcomes {[o.value for o in batch.outcomes.values()]}"
    )
    assert done >= 1
    assert all(o is RunOutcome.COMPLETED for o in batch.outcomes.values()), batch.reasons
    assert (lost, duplicated, resent) == (0, 0, 0)


def test_link_drops_short(tmp_path: Path) -> None:
    _link_drops(tmp_path, drops=6, seed=3, speed=30)


@pytest.mark.slow
def test_link_drops_long(tmp_path: Path) -> None:
    _link_drops(tmp_path, drops=100, seed=8, speed=5)

"""S7: one garbage reply from the Neware cabinet must not end a run.

The simulator's fault injector replaces cabinet replies with random non-ASCII bytes (framed like a
reply) while two channels run through the real engine over TCP. The driver must treat a garbage
reply as a glitch on the line and keep the run going: it reconnects (so no late reply is taken
for the next answer) and re-asks idempotent requests once; a lost ``start`` reply is resolved by
barcode. Figure printed: faults injected, runs completed, samples lost, samples duplicated
(stored samples that match no cabinet row, or match one twice). The cabinet's rows are counted
from before the runs start, as in the soak (``count_rows``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hardware_sim.faults import Fault, FaultKind
from station.engine import Engine
from station.events import RunOutcome

from .harness import Batch, count_rows, inprocess_bench, run_batch, stored_keys, unmatched

TOLERANT_CABINET = {"timeout_s": 2.0, "reconnect_attempts": 5, "reconnect_backoff_s": 0.005}


def _garbage_run(tmp_path: Path, *, faults: int, channels: int, seed: int) -> None:
    db = tmp_path / "garbage.db"
    with inprocess_bench(speed=30, seed=seed, cabinet_settings=TOLERANT_CABINET) as sim:
        injector = sim.running.injectors["cabinet"]
        counters = count_rows(sim, channels=channels)

        def inject(engine: Engine, batch: Batch) -> None:
            with sim.cabinet.lock:
                now = sim.cabinet.clock.now()
                for k in range(faults):
                    injector.inject(Fault(FaultKind.GARBAGE, at_s=now + 20.0 + 7.0 * k))

        batch = run_batch(sim, db, recipe="fast-triage", channels=channels, during=inject)
        injected = [e for e in injector.log if "garbage" in str(e)]
        rows = {c: counters[c].rows() for c in batch.runs}
    lost = duplicated = 0
    for channel_id, run_id in batch.runs.items():
        missing, extra = unmatched(rows[channel_id], stored_keys(db, run_id))
        lost += missing
        duplicated += extra
    completed = sum(o is RunOutcome.COMPLETED for o in batch.outcomes.values())
    print(
        f"S7 garbage: {len(injected)} garbage replies injected, {completed}/{len(batch.runs)} "
        f"runs completed, samples lost {lost}, duplicated {duplicated}; reasons "
        f"{sorted(set(batch.reasons.values()))}"
    )
    assert injected, "no garbage reached the station"
    assert completed == len(batch.runs), batch.reasons
    assert (lost, duplicated) == (0, 0)


def test_one_garbage_reply_does_not_end_a_run(tmp_path: Path) -> None:
    _garbage_run(tmp_path, faults=1, channels=2, seed=3)


@pytest.mark.slow
def test_repeated_garbage_replies_do_not_end_runs(tmp_path: Path) -> None:
    _garbage_run(tmp_path, faults=20, channels=8, seed=4)

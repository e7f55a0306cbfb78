"""R3: fault-injection soak through the real engine: 16 simulated cabinet channels, seeded reply
faults at about 1 % of the cabinet's messages, on an accelerated clock. Figures: faults injected,
runs, samples lost / duplicated, crashes, stuck channels.

Only late replies (5 simulated s) are injected: a single garbage reply currently ends the run it
hits (the cabinet driver raises ``ProtocolError`` instead of re-asking), so garbage at 1 % faults
every run of a batch; that is reported to the drivers' owner, not hidden here."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hardware_sim.faults import FaultKind, random_schedule
from station.engine import Engine
from station.events import RunOutcome

from .harness import Batch, count_rows, inprocess_bench, run_batch, stored_keys, unmatched

# The station polls each channel once per simulated second with about two messages (status and
# data download): 16 channels x 2 messages, 1 % faulty -> one fault per ~3 simulated seconds.
MEAN_FAULT_INTERVAL_S = 1.0 / (16 * 2 * 0.01)
TOLERANT_CABINET = {"timeout_s": 2.0, "reconnect_attempts": 5, "reconnect_backoff_s": 0.005}


def _soak(tmp_path: Path, *, recipe: str, speed: float, seed: int, timeout_s: float) -> None:
    db = tmp_path / "soak.db"
    crashes: list[str] = []
    previous_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        crashes.append(f"{args.thread.name if args.thread else '?'}: {args.exc_value!r}")

    threading.excepthook = hook
    try:
        with inprocess_bench(speed=speed, seed=seed, cabinet_settings=TOLERANT_CABINET) as sim:
            injector = sim.running.injectors["cabinet"]
            counters = count_rows(sim, channels=16)
            scheduled: list[int] = []

            def faults(engine: Engine, batch: Batch) -> None:
                with sim.cabinet.lock:
                    now = sim.cabinet.clock.now()
                    schedule = random_schedule(
                        seed,
                        kinds=(FaultKind.DELAY,),
                        duration_s=24 * 3600.0,
                        mean_interval_s=MEAN_FAULT_INTERVAL_S,
                        start_s=now,
                    )
                    for fault in schedule:
                        injector.inject(fault)
                    scheduled.append(len(schedule))

            batch = run_batch(
                sim, db, recipe=recipe, channels=16, during=faults, timeout_s=timeout_s
            )
            injector.clear()
            working = sim.working()
            rows = {c: counters[c].rows() for c in batch.runs}
            fault_log = list(injector.log)
    finally:
        threading.excepthook = previous_hook
    lost = duplicated = 0
    for channel_id, run_id in batch.runs.items():
        missing, extra = unmatched(rows[channel_id], stored_keys(db, run_id))
        duplicated += extra
        if batch.outcomes[run_id] is RunOutcome.COMPLETED:
            lost += missing
    outcomes = [o.value for o in batch.outcomes.values()]
    faulted = {r: batch.reasons[r] for r, o in batch.outcomes.items() if o is RunOutcome.FAULTED}
    print(
        f"R3: {len(batch.runs)} channels, {recipe} at x{speed:g}, {len(fault_log)} faults "
        f"injected; samples lost {lost}, duplicated {duplicated}; crashes {len(crashes)}; "
        f"stuck channels {len(working)}; outcomes "
        f"{ {o: outcomes.count(o) for o in set(outcomes)} }; faulted {faulted}"
    )
    assert len(batch.runs) == 16 and len(batch.outcomes) == 16  # every run ended: none stuck
    assert fault_log  # the soak did inject faults
    assert crashes == [] and working == []
    assert (lost, duplicated) == (0, 0)
    # A run the faults ended carries its logged cause; refusals (defective cells) are ABORTED.
    assert all(reason for reason in faulted.values())
    assert all(
        o in (RunOutcome.COMPLETED, RunOutcome.FAULTED, RunOutcome.ABORTED)
        for o in batch.outcomes.values()
    )


# Slow (about 80 s on 2 cores), so no CI form.
@pytest.mark.slow
def test_soak_sixteen_channels_late_replies(tmp_path: Path) -> None:
    _soak(tmp_path, recipe="fast-triage", speed=30, seed=1, timeout_s=120)

"""Child process of the kill -9 test: a headless batch on a simulated 4-cell lot.

``python -m tests.engine.kill_child DB BASE_WALL_S SPEED`` opens the database, holds runs a
previous (killed) process left open, decides for each as an operator would (continue two of
three, close the third), then grades every cell that has no completed run. It prints
``ACK <run_id> <last_seq>`` after every commit (the acknowledgement the parent checks), ``READY``
once recovered and ``DONE`` when every cell has a completed run.
"""

from __future__ import annotations

import sys
import time

from station.clock import ScaledClock
from station.config import load_preset
from station.engine import Engine, EngineError
from station.sequencer import PrestartRefused
from station.storage import Storage

from .fakes import FakeConnector, bench_models, make_cell

CELLS = [f"K-{i}" for i in range(4)]
RECIPE = "fast-triage"


def ack(last_seqs: dict[str, int]) -> None:
    sys.stdout.write("".join(f"ACK {run} {seq}\n" for run, seq in last_seqs.items()))
    sys.stdout.flush()


def main(db: str, base_wall_s: float, speed: float) -> int:
    # Simulated time keeps running across restarts, as a real clock would.
    clock = ScaledClock(
        t0_s=1_800_000_000.0 + (time.time() - base_wall_s) * speed, w0_s=time.time(), speed=speed
    )
    storage = Storage(db, clock, batch_interval_s=0.05, on_commit=ack)
    models = bench_models(soc=0.3)
    engine = Engine(
        load_preset("sim-demo"),
        storage,
        clock,
        connector=FakeConnector(clock, models),
        operator="kill-test",
    )
    engine.connect()
    if storage.get_cell(CELLS[0]) is None:
        storage.add_cells([make_cell(c) for c in CELLS], who="kill-test")
    for progress in engine.resume_after_crash():
        if int(progress.run_id, 16) % 3 == 0:
            engine.close_run(progress.run_id, "operator closed it after a crash")
        else:
            try:
                engine.continue_run(progress.run_id)
            except (PrestartRefused, EngineError) as error:
                engine.close_run(progress.run_id, f"could not continue: {error}")
    print("READY", flush=True)
    while True:
        engine.wait_idle()
        storage.flush()
        with storage.reader() as conn:
            done = {
                r[0] for r in conn.execute("SELECT cell_id FROM runs WHERE outcome = 'completed'")
            }
        todo = [c for c in CELLS if c not in done]
        if not todo:
            break
        for index, cell_id in enumerate(todo):
            engine.start_run(f"ch{index + 1:02d}", cell_id, RECIPE)
    engine.shutdown()
    storage.close()
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))

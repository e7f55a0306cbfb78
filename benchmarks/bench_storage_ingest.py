"""Storage ingest speed (issue 5 goal: >= 500,000 samples/s sustained on a 2-core machine).

Measures, on temporary file databases in WAL mode with synchronous=FULL unless stated:
  1. the issue's peer: plain ``sqlite3.executemany`` of 7-value sample tuples in one transaction
     into a minimal table (no key, no constraints, no triggers);
  2. the same plain executemany into the station's samples table (schema after all migrations);
  3. the station path: ``Storage.handle_event(Sample)`` for pre-built events of 16 runs, from
     the first event queued to the last one committed (batched by the writer thread), with
     synchronous FULL (the default) and NORMAL (the documented opt-in, ADR 0007).
Each figure is the best of ``--repeat`` runs: the machine is shared, and the best run is the
one least disturbed by other processes.

    python benchmarks/bench_storage_ingest.py [--samples 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from station.cells import Cell
from station.clock import ManualClock
from station.events import Sample
from station.storage import RunRecord, Storage
from station.storage.schema import MIGRATIONS, SEQ_BITS

MINIMAL_TABLE = (
    "CREATE TABLE samples (run_pk INTEGER, seq INTEGER, t_s REAL, step_index INTEGER,"
    " voltage_v REAL, current_a REAL, temperature_c REAL)"
)


def plain_minimal(path: Path, count: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(MINIMAL_TABLE)
    rows = [(i % 16, i // 16, float(i), 0, 3.7, 1.0, 25.0) for i in range(count)]
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def plain_station_schema(path: Path, count: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for _, _, script in MIGRATIONS:
        conn.executescript(script)
    rows = [(((i % 16) << SEQ_BITS) | (i // 16), float(i), 0, 3.7, 1.0, 25.0) for i in range(count)]
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO samples (sample_key, t_s, step_index, voltage_v, current_a, temperature_c)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def station_path(path: Path, count: int, synchronous: str = "FULL") -> float:
    clock = ManualClock(1_800_000_000.0)
    storage = Storage(path, clock, synchronous=synchronous)
    cells = [
        Cell(
            f"B{i}",
            chemistry="NMC",
            rated_capacity_ah=3.0,
            voltage_min_v=2.5,
            voltage_max_v=4.2,
            max_charge_current_a=3.0,
            max_discharge_current_a=6.0,
        )
        for i in range(16)
    ]
    storage.add_cells(cells, who="bench")
    for i in range(16):
        storage.begin_run(
            RunRecord(
                f"run{i}",
                f"ch{i}",
                f"B{i}",
                "bench",
                1,
                "h",
                "",
                "cab",
                "S",
                None,
                True,
                False,
                "bench",
                clock.now(),
            )
        )
    per_run = count // 16
    events = [
        Sample(f"run{r}", f"ch{r}", seq, float(seq), 0, 3.7, 1.0, 25.0)
        for seq in range(per_run)
        for r in range(16)
    ]
    start = time.perf_counter()
    for event in events:
        storage.handle_event(event)
    storage.flush(timeout_s=600)
    elapsed = time.perf_counter() - start
    storage.close()
    return len(events) / elapsed


def best_of(repeat: int, measure: Callable[[Path], float]) -> float:
    best = 0.0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            best = max(best, measure(Path(tmp) / "bench.db"))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, k = args.samples, args.repeat
    peer = best_of(k, lambda p: plain_minimal(p, n))
    schema = best_of(k, lambda p: plain_station_schema(p, n))
    full = best_of(k, lambda p: station_path(p, n, "FULL"))
    normal = best_of(k, lambda p: station_path(p, n, "NORMAL"))
    print(f"{n:,} samples, best of {k}, WAL")
    print(f"peer: plain executemany, minimal table, one transaction: {peer:12,.0f} samples/s")
    print(f"plain executemany into the station samples table:        {schema:12,.0f} samples/s")
    print(
        f"station path, synchronous=FULL (default):                {full:12,.0f} samples/s"
        f"  ({full / peer:.0%} of peer; goal 500,000)"
    )
    print(
        f"station path, synchronous=NORMAL (opt-in):               {normal:12,.0f} samples/s"
        f"  ({normal / peer:.0%} of peer)"
    )


if __name__ == "__main__":
    main()

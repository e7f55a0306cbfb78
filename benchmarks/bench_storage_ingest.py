"""Storage ingest speed (issue 5 goal: >= 500,000 samples/s sustained on a 2-core machine).

Measures, on a temporary file database with the station's schema, WAL and synchronous=FULL:
  1. plain ``sqlite3.executemany`` of sample tuples in one transaction (the ceiling);
  2. the station path: ``Storage.handle_event(Sample)`` for pre-built events of 16 runs, from
     the first event queued to the last one committed (batched by the writer thread).

    python benchmarks/bench_storage_ingest.py [--samples 2000000]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from station.cells import Cell
from station.clock import ManualClock
from station.events import Sample
from station.storage import RunRecord, Storage
from station.storage.schema import MIGRATIONS


def plain_executemany(path: Path, count: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(MIGRATIONS[0][2])
    rows = [(i % 16, i, float(i), 0, 3.7, 1.0, 25.0) for i in range(count)]
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def station_path(path: Path, count: int) -> float:
    clock = ManualClock(1_800_000_000.0)
    storage = Storage(path, clock)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=2_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = plain_executemany(Path(tmp) / "plain.db", args.samples)
        station = station_path(Path(tmp) / "station.db", args.samples)
    print(f"plain executemany, one transaction: {plain:,.0f} samples/s")
    print(
        f"Storage.handle_event -> committed:  {station:,.0f} samples/s "
        f"({station / plain:.0%} of plain; goal 500,000)"
    )


if __name__ == "__main__":
    main()

"""Storage ingest speed (issue 5 goal: >= 500,000 samples/s sustained on a 2-core machine).

Measures, on temporary file databases in WAL mode, ``synchronous=FULL`` unless stated, in the
same run:
  1. the issue's peer: plain ``sqlite3.executemany`` of 7-value sample tuples in one transaction
     into a minimal table (no key, no constraints, no triggers);
  2. the station's ingest path: ``Storage.handle_event(SampleBlock)`` for pre-built blocks of
     16 runs (one block per channel and poll, ``--block`` samples each, interleaved across the
     runs as polls arrive), from the first block queued to the last one committed by the writer
     thread (batched commits, each with the runs' progress rows);
  3. the same path with ``synchronous=NORMAL`` (the opt-in of ADR 0007);
  4. the same blocks built from ``Sample`` events inside the timed loop (``SampleBlock.of``, the
     work the engine's instrument threads do per poll), to show what building them costs;
  5. the per-sample path: ``Storage.handle_event(Sample)`` for the same data, one event a row.
Every figure is the median of ``--repeat`` rounds, each round running every case once (the
machine is shared with other work: figures are pessimistic under load, and interleaving makes a
burst of load hit the peer and the station alike). Results go to
``benchmarks/results/storage_ingest.json`` (``benchmarks/common.py`` format) and to stdout.

    python -m benchmarks.bench_storage_ingest [--samples 1000000] [--repeat 3] [--block 1000]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.common import Case, write_result
from station.cells import Cell
from station.clock import ManualClock
from station.events import Sample, SampleBlock
from station.storage import RunRecord, Storage

RUNS = 16
INGEST_GOAL_SAMPLES_PER_S = 500_000.0  # issue 5
MINIMAL_TABLE = (
    "CREATE TABLE samples (run_pk INTEGER, seq INTEGER, t_s REAL, step_index INTEGER,"
    " voltage_v REAL, current_a REAL, temperature_c REAL)"
)


def plain_minimal(path: Path, count: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(MINIMAL_TABLE)
    rows = [(i % RUNS, i // RUNS, float(i), 0, 3.7, 1.0, 25.0) for i in range(count)]
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def _storage(path: Path, synchronous: str) -> Storage:
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
        for i in range(RUNS)
    ]
    storage.add_cells(cells, who="bench")
    for i in range(RUNS):
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
            )  # fmt: skip
        )
    return storage


def _samples(count: int) -> list[list[Sample]]:
    per_run = count // RUNS
    return [
        [Sample(f"run{r}", f"ch{r}", seq, float(seq), 0, 3.7, 1.0, 25.0) for seq in range(per_run)]
        for r in range(RUNS)
    ]


def _blocks(runs: list[list[Sample]], block: int) -> list[SampleBlock]:
    """Blocks in arrival order: poll k brings block k of every run."""
    per_run = len(runs[0])
    return [
        SampleBlock.of(samples[start : start + block])
        for start in range(0, per_run, block)
        for samples in runs
    ]


def _ingest(
    path: Path,
    events: Sequence[Sample | SampleBlock],
    synchronous: str,
    polls: Sequence[Sequence[Sample]] = (),
) -> float:
    storage = _storage(path, synchronous)
    rows = sum(len(e) if isinstance(e, SampleBlock) else 1 for e in events)
    rows += sum(len(p) for p in polls)
    start = time.perf_counter()
    for event in events:
        storage.handle_event(event)
    for poll in polls:
        storage.handle_event(SampleBlock.of(poll))
    storage.flush(timeout_s=600)
    elapsed = time.perf_counter() - start
    with storage.reader() as conn:
        stored = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
    storage.close()
    if stored != rows:
        raise AssertionError(f"stored {stored} samples of {rows}")
    return rows / elapsed


def interleaved_medians(
    repeat: int, measures: dict[str, Callable[[Path], float]]
) -> dict[str, list[float]]:
    """Each measure once per round, round after round: a burst of load from other processes
    then hits every case alike instead of all repeats of one case."""
    rates: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeat):
        for name, measure in measures.items():
            with tempfile.TemporaryDirectory() as tmp:
                rates[name].append(measure(Path(tmp) / "bench.db"))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--block", type=int, default=1000, help="samples per channel and poll")
    parser.add_argument("--out", type=Path, default=None, help="result JSON path")
    args = parser.parse_args()
    n, k = args.samples, args.repeat
    runs = _samples(n)
    blocks = _blocks(runs, args.block)
    singles = [s for poll in zip(*runs, strict=True) for s in poll]
    polls = [
        samples[start : start + args.block]
        for start in range(0, len(runs[0]), args.block)
        for samples in runs
    ]
    rates = interleaved_medians(
        k,
        {
            "peer": lambda p: plain_minimal(p, n),
            "full": lambda p: _ingest(p, blocks, "FULL"),
            "normal": lambda p: _ingest(p, blocks, "NORMAL"),
            "built": lambda p: _ingest(p, [], "FULL", polls),
            "single": lambda p: _ingest(p, singles, "FULL"),
        },
    )
    peer_all, full_all, normal_all = rates["peer"], rates["full"], rates["normal"]
    built_all, single_all = rates["built"], rates["single"]
    peer, full, normal = (statistics.median(r) for r in (peer_all, full_all, normal_all))
    built, single = statistics.median(built_all), statistics.median(single_all)
    peer_name = "plain sqlite3 executemany, one transaction, minimal table (same run)"
    cases = [
        Case(
            f"sample blocks ({args.block}/channel/poll, 16 runs), synchronous=FULL",
            "samples/s",
            full,
            peer,
            peer_name,
            target=None,
            goal=INGEST_GOAL_SAMPLES_PER_S,
            repeats=k,
            notes=f"runs {[round(r) for r in full_all]}, peer runs {[round(r) for r in peer_all]}",
        ),
        Case(
            f"sample blocks ({args.block}/channel/poll, 16 runs), synchronous=NORMAL (ADR 0007)",
            "samples/s",
            normal,
            peer,
            peer_name,
            repeats=k,
            notes=f"runs {[round(r) for r in normal_all]}",
        ),
        Case(
            f"sample blocks built in the timed loop ({args.block}/channel/poll), synchronous=FULL",
            "samples/s",
            built,
            peer,
            peer_name,
            goal=INGEST_GOAL_SAMPLES_PER_S,
            repeats=k,
            notes=f"SampleBlock.of runs on the instrument threads in the station; "
            f"runs {[round(r) for r in built_all]}",
        ),
        Case(
            "single Sample events (16 runs interleaved), synchronous=FULL",
            "samples/s",
            single,
            peer,
            peer_name,
            repeats=k,
            notes=f"runs {[round(r) for r in single_all]}",
        ),
    ]
    path = write_result("storage_ingest", cases, args.out)
    print(f"{n:,} samples, median of {k}, WAL ({path})")
    print(f"peer: plain executemany, minimal table, one transaction: {peer:12,.0f} samples/s")
    for case in cases:
        print(f"{case.case}: {case.station:12,.0f} samples/s ({case.ratio:.0%} of peer)")


if __name__ == "__main__":
    main()

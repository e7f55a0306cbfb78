"""One result format for every benchmark, so `make bench` can print a single table.

Each benchmark module builds a list of :class:`Case` (the station against a peer measured in
the same run, on the same data) and calls :func:`write_result`, which writes
``benchmarks/results/<benchmark>.json``::

    {
      "benchmark": "grading",
      "machine": {"python": "3.11.7", "cpus": 2, "platform": "...", "processor": "..."},
      "started_utc": "2026-11-22T08:00:00+00:00",
      "cases": [
        {
          "case": "per-cycle summary, 2.6 M rows / 200 cycles",
          "metric": "rows/s",              # what `station` and `peer` values measure
          "higher_is_better": true,
          "station": 5.1e7,                # median of the station's repeats, in `metric`
          "peer": 6.0e7,                   # median of the peer's repeats, in `metric`
          "peer_name": "single pass over the same arrays (memory floor)",
          "ratio": 0.85,                   # station / peer (peer / station when lower is better)
          "target": 0.5,                   # the issue's target for `ratio`, or null
          "goal": null,                    # the issue's absolute goal for `station`, or null
          "met": true,                     # ratio >= target and station meets goal (null
                                           # when neither is set)
          "equal_results": true,           # both sides checked to agree, or null when n/a
          "repeats": 7,
          "notes": "free text: tolerances, what was skipped and why"
        }
      ]
    }

``ratio`` is always oriented so that bigger means the station is better than the peer. ``goal``
is for targets stated in the station's own unit (frames/s, us per query, channels): it is met
when ``station >= goal``, or ``station <= goal`` when lower is better.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Case:
    """One side-by-side measurement; ``station`` and ``peer`` are medians in ``metric``."""

    case: str
    metric: str
    station: float
    peer: float | None
    peer_name: str
    higher_is_better: bool = True
    target: float | None = None
    goal: float | None = None
    equal_results: bool | None = None
    repeats: int = 1
    notes: str = ""
    ratio: float | None = field(default=None)
    met: bool | None = field(default=None)

    def __post_init__(self) -> None:
        if self.ratio is None and self.peer is not None and self.peer > 0 and self.station > 0:
            self.ratio = (
                self.station / self.peer if self.higher_is_better else self.peer / self.station
            )
        if self.met is None:
            checks = []
            if self.target is not None and self.ratio is not None:
                checks.append(self.ratio >= self.target)
            if self.goal is not None:
                checks.append(
                    self.station >= self.goal
                    if self.higher_is_better
                    else self.station <= self.goal
                )
            self.met = all(checks) if checks else None


def machine() -> dict[str, object]:
    """Facts about the machine the figures came from."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def median_of(
    fn: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median duration of ``repeats`` calls of ``fn``, in seconds of ``clock``."""
    durations = []
    for _ in range(repeats):
        start = clock()
        fn()
        durations.append(clock() - start)
    return statistics.median(durations)


def write_result(benchmark: str, cases: Sequence[Case], out: Path | None = None) -> Path:
    """Write the benchmark's JSON document (default ``benchmarks/results/<benchmark>.json``)."""
    path = out or RESULTS_DIR / f"{benchmark}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": benchmark,
        "machine": machine(),
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "cases": [asdict(c) for c in cases],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)
    return path

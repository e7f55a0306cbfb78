"""Peer side of benchmark (b): cellpy-core's step table and cycle summary on the same data.

Runs INSIDE the peer venv (``benchmarks/.peer-venv``, Python >= 3.13 with cellpycore; see
``benchmarks/peers.md``), never in the station's venv. ``bench_grading`` starts it as a
subprocess::

    benchmarks/.peer-venv/bin/python benchmarks/peer_cellpy.py DATA.npz --repeats 5

DATA.npz holds the raw arrays the station also reads (``t_s``, ``voltage_v``, ``current_a``,
``step``, ``cycle``) plus the per-cycle cumulative charge/discharge capacity columns (Ah) that
cellpy's harmonized raw format requires from the cycler (cellpy sums no current itself). The
polars frame is built once, outside the timing; each repeat times ``make_step_table`` +
``make_summary`` (polars-native, cellpy's fastest engine) and reports CPU seconds, as the
station side does. Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import polars as pl
from cellpycore import Data, __version__, make_step_table, make_summary


def raw_frame(path: str) -> pl.DataFrame:
    """The harmonized raw frame of cellpy-core from the benchmark arrays."""
    arrays = np.load(path)
    n = len(arrays["t_s"])
    return pl.DataFrame(
        {
            "datapoint_num": np.arange(1, n + 1, dtype=np.int64),
            "test_time": arrays["t_s"],
            "step_time": arrays["step_time_s"],
            "step_num": arrays["step"].astype(np.int64),
            "cycle_num": arrays["cycle"].astype(np.int64),
            "potential": arrays["voltage_v"],
            "current": arrays["current_a"],
            "cumulative_charge_capacity": arrays["cumulative_charge_ah"],
            "cumulative_discharge_capacity": arrays["cumulative_discharge_ah"],
        }
    )


def run_once(raw: pl.DataFrame) -> Data:
    data = Data.from_raw_frame(raw, validate=False)
    data = make_step_table(data)
    return make_summary(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="benchmark arrays (.npz)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    raw = raw_frame(args.data)
    run_once(raw)  # warm-up: polars' lazy initialisation is not the engine's cost
    cpu_s = []
    wall_s = []
    data = None
    for _ in range(args.repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        data = run_once(raw)
        cpu_s.append(time.process_time() - start_cpu)
        wall_s.append(time.perf_counter() - start_wall)
    assert data is not None and data.summary is not None and data.steps is not None
    summary = data.summary.sort("cycle_num")
    print(
        json.dumps(
            {
                "engine": f"cellpycore {__version__} (polars {pl.__version__})",
                "rows": raw.height,
                "steps": data.steps.height,
                "cycles": summary.height,
                "cpu_s": cpu_s,
                "wall_s": wall_s,
                "cycle": summary["cycle_num"].to_list(),
                "charge_ah": summary["charge_capacity"].to_list(),
                "discharge_ah": summary["discharge_capacity"].to_list(),
            }
        )
    )


if __name__ == "__main__":
    main()

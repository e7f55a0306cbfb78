"""Run every benchmark, each in its own process, then write ``benchmarks/results/summary.md``.

Run: ``.venv/bin/python -m benchmarks.run_all [--only NAME ...]`` (``make bench`` installs the
optional peers first). Each benchmark writes its JSON into ``benchmarks/results/``; one that fails
is reported and the others still run, and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from benchmarks.summary import write_summary

BENCHMARKS = (
    "bench_grading",
    "bench_storage_ingest",
    "bench_neware_cabinet",
    "bench_sim_cells",
    "bench_passport",
    "bench_transport",
    "bench_channels_sustained",
    "bench_gui_frame",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="benchmark module names")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="per benchmark")
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            code = subprocess.run(
                [sys.executable, "-m", f"benchmarks.{name}"], env=env, timeout=args.timeout_s
            ).returncode
        except subprocess.TimeoutExpired:
            code = -1
        print(f"== {name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    print(write_summary().read_text())
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

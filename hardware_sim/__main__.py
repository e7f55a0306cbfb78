"""``python -m hardware_sim --bench <preset or TOML> [--speed X] [--seed S] [--cells N] [--pty]``

Starts a simulated bench, prints ONE JSON document on stdout (devices and their endpoints, the
clock parameters, the lot of cells and who holds each, the control port), then serves until
SIGINT or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence

from hardware_sim.bench import PRESETS, build_bench, load_description
from hardware_sim.launcher import RunningBench


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hardware_sim", description=__doc__)
    parser.add_argument(
        "--bench", required=True, help=f"preset ({', '.join(sorted(PRESETS))}) or TOML file"
    )
    parser.add_argument("--speed", type=float, help="simulated seconds per wall second")
    parser.add_argument("--seed", type=int, help="seed for the lot, noise and faults")
    parser.add_argument("--cells", type=int, help="number of cells in the lot")
    parser.add_argument("--pty", action="store_true", help="also serve each device on a pty")
    parser.add_argument("--control-port", type=int, default=0, help="control endpoint port")
    args = parser.parse_args(argv)

    try:
        description = load_description(args.bench)
        bench = build_bench(
            description,
            seed=args.seed,
            speed=args.speed,
            cells=args.cells,
            skip_unknown=args.bench in PRESETS,
        )
    except ValueError as err:
        print(f"hardware_sim: {err}", file=sys.stderr)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    running = RunningBench.start(bench, with_pty=args.pty, control_port=args.control_port)
    try:
        print(json.dumps(running.describe()), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

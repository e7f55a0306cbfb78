"""``python -m hardware_sim --bench <preset or TOML> [--speed X] [--seed S] [--cells N] [--start T]
[--pty]``

Starts a simulated bench, prints ONE JSON document on stdout (devices and their endpoints, the
clock parameters, the lot of cells and who holds each, the control port), then serves until
SIGINT or SIGTERM and exits 0. Bad arguments exit 2 with the problem on stderr.

The document (one line of JSON)::

    {"simulated": true, "seed": 7,
     "clock": {"t0_s": 1795322578.41, "w0_s": 1795322578.41, "speed": 60.0},
     "control": {"tcp_port": 41873},
     "devices": [
       {"name": "acir", "kind": "bt3562", "tcp_port": 36921,
        "visa": "TCPIP::127.0.0.1::36921::SOCKET",
        "visa_asrl": "ASRLsocket://127.0.0.1:36921::INSTR",
        "pyserial": "socket://127.0.0.1:36921",
        "pty": "/dev/pts/5", "visa_pty": "ASRL/dev/pts/5::INSTR",   (with --pty only)
        "model": "BT3562", "fixture": "REV0070000009", "cells": ["REV0070000009"]}, ...],
     "cells": [{"id": "REV0070000009", "held_by": "acir/1",
                "rated": {"chemistry": "nmc", "capacity_ah": 4.8, "acir_ohm": 0.016,
                          "v_min_v": 2.5, "v_max_v": 4.2, "nominal_v": 3.71}}, ...],
     "skipped_devices": []}

A station builds ``station.clock.ScaledClock(t0_s=..., w0_s=..., speed=...)`` from ``clock``.
Simulated time is Unix time: it starts at the wall clock's time of the launch (or ``--start``)
and runs ``speed`` times faster from there.
``held_by`` is ``null`` for cells on the shelf (place them with the control endpoint's
``place`` command, see ``hardware_sim.launcher``).
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
    parser.add_argument(
        "--start",
        type=float,
        help="simulated Unix time (s) at launch (default: the wall clock's, then accelerated)",
    )
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
            start_s=args.start,
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

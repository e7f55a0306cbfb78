"""``station sim``: serve a simulated bench for GUI/CLI use (runs ``python -m hardware_sim``).

The station never imports the simulator: it runs in its own process and is reached over TCP
loopback, like an instrument on the lab network.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from types import FrameType

STOP_GRACE_S = 15.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="serve a simulated bench on TCP loopback and print its endpoints as JSON",
        description=(
            "Start a simulated bench (instruments that speak the real wire protocols over TCP "
            "loopback) and print its endpoints and clock as one JSON document; stop with Ctrl-C."
        ),
    )
    parser.add_argument("--bench", default="demo", help="bench preset name or TOML file")
    parser.add_argument("--speed", type=float, help="simulated seconds per wall-clock second")
    parser.add_argument("--seed", type=int, help="seed of the simulated lot and faults")
    parser.add_argument("--cells", type=int, help="number of cells in the simulated lot")
    parser.add_argument("--pty", action="store_true", help="also serve each device on a pty")
    parser.set_defaults(handler=run)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "hardware_sim", "--bench", args.bench]
    for flag, value in (("--speed", args.speed), ("--seed", args.seed), ("--cells", args.cells)):
        if value is not None:
            command += [flag, str(value)]
    if args.pty:
        command.append("--pty")
    # A service manager stops us with SIGTERM; treat it like Ctrl-C so the simulator is stopped
    # cleanly (its own SIGINT handler closes its ports) instead of being orphaned.
    signal.signal(signal.SIGTERM, _interrupt)
    simulator = subprocess.Popen(command)
    try:
        return simulator.wait()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches the whole process group; a signal sent to this process
        # alone does not, so pass it on.
        simulator.send_signal(signal.SIGINT)
        try:
            return simulator.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            simulator.kill()
            simulator.wait()
            return 1

"""``station demo``: a simulated grading batch, end to end, on the embedded defaults."""

from __future__ import annotations

import argparse

PLAN = """\
station demo runs a simulated grading batch end to end:
  1. start a simulated bench (a 16-channel Neware cabinet, a Hioki BT3562 and a BT4560) that
     speaks the real wire protocols over TCP loopback, on an accelerated clock;
  2. generate a seeded retired-EV lot ({cells} cells, with the usual share of defective cells);
  3. run the second-life grading recipe on every cell: intake ACIR/OCV screen, CCCV charge, C/3
     discharge, HPPC pulses at 80/50/20 % SOC, EIS, charge to storage SOC;
  4. grade each cell under the second-life profile, store everything in SQLite, and write
     per-cell certificates, signed passport exports and a batch report under {out}.
The engine, grading core and reports are being built; until they land this command prints its plan.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a simulated grading batch end to end",
        description="Run a simulated grading batch end to end.",
    )
    parser.add_argument("--cells", type=int, default=16, help="number of cells in the lot")
    parser.add_argument(
        "--speed", type=float, default=3600.0, help="simulated seconds per wall-clock second"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated lot")
    parser.add_argument("--out", default="demo-out", help="output directory")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print(PLAN.format(cells=args.cells, out=args.out))
    return 0

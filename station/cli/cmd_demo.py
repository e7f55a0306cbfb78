"""``station demo``: a simulated grading batch end to end (the work is in :mod:`station.demo`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from station.demo import MAX_CELLS, DemoOptions, format_table, run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a simulated grading batch end to end",
        description=(
            "Start a simulated bench (child process over TCP loopback), run the second-life "
            "recipe on a simulated retired-EV lot, grade every cell under the second-life "
            "profile and write the database, certificates, signed SIMULATED passport exports "
            "and a batch report under --out. The defaults (16 cells at 3600x) take about 75 s on "
            "a 2-core machine."
        ),
    )
    parser.add_argument(
        "--cells", type=int, default=MAX_CELLS, help=f"number of cells to grade (1-{MAX_CELLS})"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=3600.0,
        help="simulated seconds per wall-clock second (1-20000; above about 5000 a full "
        "cabinet can fall behind and trip the recipe's run-time limit)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated lot")
    parser.add_argument(
        "--out", type=Path, default=Path("demo-out"), help="output directory (created if missing)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    options = DemoOptions(cells=args.cells, speed=args.speed, seed=args.seed, out=args.out)
    try:
        result = run_demo(options)
    except Exception as error:  # one line on stderr whatever layer failed
        print(f"station demo: {error}", file=sys.stderr)
        return 1
    print(format_table(result.rows))
    graded = sum(row.grade != "NOT GRADED" for row in result.rows)
    print(
        f"{graded}/{len(result.rows)} cells graded ({len(result.certificates)} with a "
        f"certificate) in {result.wall_s:.1f} s; database {result.db_path}, certificates and "
        f"SIMULATED passports under {options.out}"
    )
    return 0 if result.certificates else 1

"""``station analyze FILE``: per-cycle and per-pulse figures of a cycler time series."""

from __future__ import annotations

import argparse
import json
import math

from station.cli.main import CommandError
from station.grading.analysis import PULSE_COLUMNS, analyze_series
from station.grading.readers import InputFileError, read_bdf_csv

CYCLE_COLUMNS = (
    "cycle",
    "charge_ah",
    "discharge_ah",
    "charge_wh",
    "discharge_wh",
    "coulombic_efficiency",
    "energy_efficiency",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="per-cycle and per-pulse figures of a cycler time series (BDF CSV)",
        description=(
            "Read a Battery Data Format CSV (or a station export) and print per-cycle charge, "
            "energy and efficiencies, and DCIR of every pulse at 0.1 s, 1 s, 10 s and its end."
        ),
    )
    parser.add_argument("file", help="BDF CSV time series (Test Time / s, Voltage / V, ...)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--capacity-ah",
        type=float,
        default=None,
        help="rated capacity in Ah, to give each pulse its SOC (counted from the last CV end)",
    )
    parser.add_argument(
        "--flip-current",
        action="store_true",
        help="the file counts discharge current as positive; flip it to charge-positive",
    )
    parser.set_defaults(handler=run)


def _fmt(value: float | int | None, digits: int = 6) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def run(args: argparse.Namespace) -> int:
    try:
        loaded = read_bdf_csv(args.file, flip_current=args.flip_current)
    except InputFileError as error:
        raise CommandError(str(error)) from None
    result = analyze_series(loaded.series, capacity_ah=args.capacity_ah)
    doc = {"file": args.file, "columns": loaded.columns, **result.to_dict()}
    if args.json:
        print(json.dumps(doc, indent=2, allow_nan=False))
        return 0
    print(f"{args.file}: {doc['rows']} rows, {doc['steps']} steps, {len(result.cycles)} cycles")
    print("  ".join(f"{c:>20}" for c in CYCLE_COLUMNS))
    for row in result.cycles.rows():
        print("  ".join(f"{_fmt(row[c]):>20}" for c in CYCLE_COLUMNS))
    if result.pulses:
        heads = ("start_s", "current_a", *(f"dcir_{c}_ohm" for c in PULSE_COLUMNS))
        print()
        print("  ".join(f"{h:>14}" for h in heads))
        for pulse in result.pulses:
            cells = [_fmt(pulse.start_s), _fmt(pulse.current_a)]
            for label in PULSE_COLUMNS:
                fig = pulse.dcir_ohm[label]
                cells.append(_fmt(fig.value) if fig.ok else "rejected" if fig.flags else "-")
            print("  ".join(f"{c:>14}" for c in cells))
    return 0

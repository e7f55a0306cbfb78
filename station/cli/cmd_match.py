"""``station match``: matched groups for pack assembly from the cells of a lot in the database.

The lot is graded under the profile through the station's one evaluation path
(:func:`station.evaluation.grade_lot`: each cell's latest completed run, its ACIR/OCV
measurements and any self-discharge hold, with the lot statistics) before
:func:`station.grading.matching.match_cells` groups the cells.

An ``SsPp`` pack: with ``P > 1`` cells are matched into parallel groups of ``P`` (the profile's
parallel windows, tighter on resistance) and every ``S`` groups make a pack; with ``P = 1``
cells are matched into series strings of ``S``. A window whose figure no cell of the lot has
(e.g. K-value before any self-discharge follow-up) is left unconstrained, and said so. The OCV
window compares the OCV at the end of the self-discharge hold (the storage SOC) when every cell
has one, else the intake OCV; the output says which (``ocv_source`` in JSON).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from station.cli.common import default_db_path, print_json
from station.cli.main import CommandError

if TYPE_CHECKING:
    from station.grading.matching import MatchResult, MatchWindows
    from station.grading.results import CellMetrics, Grade

FIGURES_SHOWN = ("capacity_ah", "acir_ohm", "acir_25c_ohm", "ocv_v", "k_mv_per_day")
OCV_WORDS = {
    "hold end": "at the end of the self-discharge hold (storage SOC)",
    "intake": "at intake (not every cell has a self-discharge hold yet)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "match",
        help="build matched series/parallel groups from a lot's stored data and print spreads",
        description=(
            "Grade every cell of LOT from its latest completed run in the database and build "
            "matched groups for an SsPp pack; prints each group with its spread per feature."
        ),
    )
    parser.add_argument(
        "--db", type=Path, help="database file (default: $STATION_DB or the user data directory)"
    )
    parser.add_argument("--lot", required=True, help="lot name as stored with the cells")
    parser.add_argument("--series", type=int, required=True, help="cells (or groups) in series")
    parser.add_argument("--parallel", type=int, required=True, help="cells in parallel")
    parser.add_argument(
        "--profile", default="second-life", help="grading profile name or TOML file"
    )
    parser.add_argument(
        "--ignore-grades",
        action="store_true",
        help="match on the figures alone, including cells graded RETEST/QUARANTINE/REJECT",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def _positive(value: int, flag: str) -> None:
    if value < 1:
        raise CommandError(f"{flag} must be at least 1, got {value}")


def _windows(cells: list[CellMetrics], windows: MatchWindows) -> tuple[MatchWindows, list[str]]:
    """Leave unconstrained every window whose figure no cell has, naming it."""
    from station.grading.matching import MatchWindows

    dropped: list[str] = []

    def keep(window: float | None, metric: str) -> float | None:
        if window is not None and all(c.value(metric) is None for c in cells):
            dropped.append(metric)
            return None
        return window

    kept = MatchWindows(
        capacity_pct=keep(windows.capacity_pct, "capacity_ah"),
        resistance_pct=keep(windows.resistance_pct, windows.resistance_metric),
        ocv_v=keep(windows.ocv_v, "ocv_v"),
        k_mv_per_day=keep(windows.k_mv_per_day, "k_mv_per_day"),
        resistance_metric=windows.resistance_metric,
    )
    return kept, dropped


def run(args: argparse.Namespace) -> int:
    # The grading core pulls in scipy: imported here so other commands start fast.
    from station.evaluation import EvaluationError, grade_lot, matching_metrics
    from station.grading.matching import MatchWindows, match_cells
    from station.grading.profiles import ProfileError, load_profile

    _positive(args.series, "--series")
    _positive(args.parallel, "--parallel")
    db_path: Path = args.db or default_db_path()
    if not db_path.is_file():
        raise CommandError(f"database {db_path} does not exist")
    try:
        profile = load_profile(args.profile)
    except (ProfileError, OSError) as error:
        raise CommandError(f"profile {args.profile}: {error}") from None
    try:
        graded = grade_lot(db_path, profile, lot=args.lot)
    except EvaluationError as error:
        raise CommandError(str(error)) from None
    completed, grades = graded.completed()
    cells, ocv_source = matching_metrics(completed)
    without = sorted({**graded.not_graded, **graded.stopped})
    if not cells:
        raise CommandError(f"lot {args.lot!r} has no cell with a completed run in {db_path}")
    parallel = args.parallel > 1
    size = args.parallel if parallel else args.series
    windows, unconstrained = _windows(cells, MatchWindows.from_profile(profile, parallel))
    result = match_cells(
        cells,
        size,
        windows,
        None if args.ignore_grades else grades,
        kind="parallel" if parallel else "series",
    )
    packs = len(result.groups) // args.series if parallel else len(result.groups)
    if args.json:
        print_json(_as_json(args, cells, result, grades, unconstrained, without, packs, ocv_source))
    else:
        _print(args, result, grades, unconstrained, without, packs, ocv_source)
    return 0


def _as_json(
    args: argparse.Namespace,
    cells: list[CellMetrics],
    result: MatchResult,
    grades: list[Grade],
    unconstrained: list[str],
    without: list[str],
    packs: int,
    ocv_source: str,
) -> dict[str, object]:
    return {
        "lot": args.lot,
        "series": args.series,
        "parallel": args.parallel,
        "packs": packs,
        "groups": [
            {
                "index": g.index,
                "kind": g.kind,
                "cells": list(g.cell_ids),
                "spread": {
                    m: {"spread": s, "unit": u, "window": w} for m, (s, u, w) in g.spread.items()
                },
            }
            for g in result.groups
        ],
        "unmatched": {p.cell_id: p.reason for p in result.placements if p.group is None},
        "grades": {g.cell_id: g.outcome for g in grades},
        "figures": {
            c.cell_id: {m: c.value(m) for m in FIGURES_SHOWN if c.value(m) is not None}
            for c in cells
        },
        "ocv_source": ocv_source,
        "unconstrained": unconstrained,
        "without_completed_run": without,
    }


def _print(
    args: argparse.Namespace,
    result: MatchResult,
    grades: list[Grade],
    unconstrained: list[str],
    without: list[str],
    packs: int,
    ocv_source: str,
) -> None:
    grade_of = {g.cell_id: g.outcome for g in grades}
    print(
        f"lot {args.lot}: {len(result.groups)} group(s), {packs} complete "
        f"{args.series}s{args.parallel}p pack(s)"
    )
    for g in result.groups:
        cells = ", ".join(f"{c} ({grade_of.get(c, '?')})" for c in g.cell_ids)
        spreads = "; ".join(f"{m} {s:.4g} {u} (window {w:g})" for m, (s, u, w) in g.spread.items())
        print(f"  group {g.index} [{g.kind}]: {cells}")
        print(f"    spread: {spreads or 'none'}")
    for p in sorted(result.placements, key=lambda p: p.cell_id):
        if p.group is None:
            print(f"  {p.cell_id}: {p.reason}")
    print(f"OCV compared: {OCV_WORDS[ocv_source]}")
    if unconstrained:
        print(f"not constrained (no cell has it): {', '.join(unconstrained)}")
    if without:
        print(f"no completed run: {', '.join(without)}")

"""``station match``: matched groups for pack assembly from the cells of a lot in the database.

Grades are not stored in the database, so each cell's figures are computed from its latest
completed run's stored samples (:func:`station.grading.metrics.cell_metrics`, with the run's
ACIR and OCV measurements added) and graded under the profile (:func:`grade_batch`) before
:func:`station.grading.matching.match_cells` groups them.

An ``SsPp`` pack: with ``P > 1`` cells are matched into parallel groups of ``P`` (the profile's
parallel windows, tighter on resistance) and every ``S`` groups make a pack; with ``P = 1``
cells are matched into series strings of ``S``. A window whose figure no cell of the lot has
(e.g. K-value before any self-discharge follow-up) is left unconstrained, and said so.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from station.cli.common import default_db_path, print_json
from station.cli.main import CommandError

if TYPE_CHECKING:
    from station.grading.matching import MatchResult, MatchWindows
    from station.grading.results import CellMetrics, Grade

FIGURES_SHOWN = ("capacity_ah", "acir_ohm", "acir_25c_ohm", "ocv_v", "k_mv_per_day")


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


def lot_metrics(conn: sqlite3.Connection, lot: str) -> tuple[list[CellMetrics], list[str]]:
    """Figures of every cell of ``lot`` with a completed run, and the IDs of those without."""
    ids = [r[0] for r in conn.execute("SELECT cell_id FROM cells WHERE lot = ?", (lot,))]
    return stored_metrics(conn, sorted(ids))


def stored_metrics(
    conn: sqlite3.Connection, cell_ids: list[str]
) -> tuple[list[CellMetrics], list[str]]:
    """Figures of each cell from its latest completed run's stored samples and ACIR/OCV
    measurements, and the IDs of the cells without a completed run."""
    # The grading core pulls in scipy: imported here so other commands start fast.
    from station.grading.metrics import CellInputs, cell_metrics
    from station.grading.results import Figure
    from station.grading.soh import Reference
    from station.grading.timeseries import TimeSeries

    cells = [
        conn.execute(
            "SELECT cell_id, chemistry, rated_capacity_ah, bol_resistance_ohm FROM cells"
            " WHERE cell_id = ?",
            (cell_id,),
        ).fetchone()
        for cell_id in cell_ids
    ]
    metrics, without = [], []
    for cell_id, chemistry, rated_ah, bol_ohm in filter(None, cells):
        run = conn.execute(
            "SELECT run_pk FROM runs WHERE cell_id = ? AND outcome = 'completed'"
            " ORDER BY ended_t_s DESC, run_pk DESC LIMIT 1",
            (cell_id,),
        ).fetchone()
        rows = (
            conn.execute(
                "SELECT t_s, voltage_v, current_a, temperature_c, step_index FROM samples"
                " WHERE run_pk = ? ORDER BY seq",
                (run[0],),
            ).fetchall()
            if run
            else []
        )
        if len(rows) < 2 or rated_ah is None:
            without.append(cell_id)
            continue
        data = np.array([[math.nan if v is None else v for v in r] for r in rows], dtype=float)
        temperature = None if np.all(np.isnan(data[:, 3])) else data[:, 3]
        ts = TimeSeries.from_arrays(
            data[:, 0], data[:, 1], data[:, 2], temperature, step_count=data[:, 4].astype(int)
        )
        extra: dict[str, Figure] = {}
        for kind, key, name, unit in (
            ("acir", "resistance_ohm", "acir_ohm", "ohm"),
            ("ocv", "voltage_v", "ocv_v", "V"),
        ):
            found = conn.execute(
                "SELECT values_json FROM measurements WHERE run_pk = ? AND kind = ?"
                " ORDER BY id DESC LIMIT 1",
                (run[0], kind),
            ).fetchone()
            value = json.loads(found[0]).get(key) if found else None
            if isinstance(value, int | float) and math.isfinite(value):
                extra[name] = Figure(float(value), unit)
        inputs = CellInputs(
            cell_id,
            str(chemistry).lower(),
            Reference(rated_capacity_ah=float(rated_ah), bol_resistance_ohm=bol_ohm),
        )
        metrics.append(cell_metrics(inputs, ts, extra=extra or None))
    return metrics, without


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
    from station.grading.matching import MatchWindows, match_cells
    from station.grading.profiles import ProfileError, grade_batch, load_profile

    _positive(args.series, "--series")
    _positive(args.parallel, "--parallel")
    db_path: Path = args.db or default_db_path()
    if not db_path.is_file():
        raise CommandError(f"database {db_path} does not exist")
    try:
        profile = load_profile(args.profile)
    except (ProfileError, OSError) as error:
        raise CommandError(f"profile {args.profile}: {error}") from None
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        cells, without = lot_metrics(conn, args.lot)
    except sqlite3.Error as error:
        raise CommandError(f"database {db_path}: {error}") from None
    finally:
        conn.close()
    if not cells:
        raise CommandError(f"lot {args.lot!r} has no cell with a completed run in {db_path}")
    grades, _report = grade_batch(cells, profile)
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
        print_json(_as_json(args, cells, result, grades, unconstrained, without, packs))
    else:
        _print(args, result, grades, unconstrained, without, packs)
    return 0


def _as_json(
    args: argparse.Namespace,
    cells: list[CellMetrics],
    result: MatchResult,
    grades: list[Grade],
    unconstrained: list[str],
    without: list[str],
    packs: int,
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
    for p in result.placements:
        if p.group is None:
            print(f"  {p.cell_id}: {p.reason}")
    if unconstrained:
        print(f"not constrained (no cell has it): {', '.join(unconstrained)}")
    if without:
        print(f"no completed run: {', '.join(without)}")

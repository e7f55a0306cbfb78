"""Grades on the real path: a finished run graded through :mod:`station.evaluation`, stored,
and read back for the tile, the cell detail and the batch view; matching groups for the lot.

Pure Python (no Qt). Every function here reads or writes the database, so the GUI calls them in
workers (:class:`ui.workers.Workers`). What the GUI shows is always the grade as stored, so the
window, ``station grade`` and the reports show the same thing.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station.evaluation import EvaluationError, grade_entries, grade_lot, grading_run
from station.grading.matching import MatchResult, MatchWindows, match_cells
from station.grading.profiles import Profile
from station.reports.summary import neutralise
from station.storage import Storage, StoredGrade
from ui.engine_api import GradeProvider, GradeView, Reason

_PROFILE_TAG = re.compile(r"^\[[^\]]*\]\s*")
"""The grading core's "[profile vX] " prefix: the detail names the profile once, not per rule."""


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def grade_view_from_stored(stored: StoredGrade, run_id: str | None = None) -> GradeView:
    """A stored grade as the GUI shows it: every rule with value, threshold and margin (from the
    stored explanation) and every figure with its unit."""
    explanation: Mapping[str, Any] = stored.explanation or {}
    grade: Mapping[str, Any] = explanation.get("grade") or {}
    reasons = []
    for rule in grade.get("rules") or ():
        verdict = str(rule.get("verdict", ""))
        reasons.append(
            Reason(
                rule=str(rule.get("rule", "")),
                value=_float(rule.get("value")),
                threshold=_float(rule.get("threshold")) or 0.0,
                unit=str(rule.get("unit", "")),
                margin=_float(rule.get("margin")),
                passed=verdict == "pass",
                verdict=verdict,
                words=_PROFILE_TAG.sub("", str(rule.get("explanation", ""))),
            )
        )
    figures = []
    for name, figure in sorted((explanation.get("figures") or {}).items()):
        value = _float(figure.get("value")) if isinstance(figure, Mapping) else None
        if value is not None:
            figures.append((str(name), value, str(figure.get("unit", ""))))
    return GradeView(
        cell_id=stored.cell_id,
        run_id=run_id or (stored.run_ids[-1] if stored.run_ids else ""),
        grade=stored.grade,
        bin=stored.bin,
        reasons=tuple(reasons),
        figures=tuple(figures),
        summary=stored.reason or str(grade.get("summary", "")),
    )


def _run_to_grade(storage: Storage, run_id: str, cell_id: str) -> str:
    """The run a finished run's grade comes from: the run itself, unless it completed with OCV
    readings only (a self-discharge follow-up). Those readings belong to the hold after the
    cell's grading run, so that run is graded again, now with its K-value."""
    with storage.reader() as conn:
        row = conn.execute("SELECT outcome FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None or row[0] != "completed":
            return run_id
        return grading_run(conn, cell_id) or run_id


def _lot_of(storage: Storage, run_id: str) -> tuple[str, str]:
    with storage.reader() as conn:
        row = conn.execute(
            "SELECT r.cell_id, c.lot FROM runs r JOIN cells c ON c.cell_id = r.cell_id"
            " WHERE r.run_id = ?",
            (run_id,),
        ).fetchone()
    if row is None:
        raise EvaluationError(f"run {run_id} is not in the database")
    return str(row[0]), str(row[1] or "")


def make_grade_provider(storage: Storage, profile: Profile, *, operator: str) -> GradeProvider:
    """``run_id -> GradeView``: grade the finished run with its lot (so the lot-relative rules see
    the lot's statistics), store the cell's grade and return it as stored. Blocks."""

    def grade(run_id: str) -> GradeView:
        storage.flush()  # the run's last samples and its end must be committed first
        cell_id, lot = _lot_of(storage, run_id)
        graded = grade_lot(
            storage,
            profile,
            lot=lot or None,
            cell_ids=None if lot else [cell_id],
            runs={cell_id: _run_to_grade(storage, run_id, cell_id)},
        )
        if cell_id not in graded.runs:
            raise EvaluationError(f"{cell_id}: {graded.not_graded.get(cell_id, 'not graded')}")
        entries = [entry for entry in grade_entries(graded) if entry.cell_id == cell_id]
        storage.record_grades(entries, who=operator, why=f"run {run_id} completed")
        return grade_view_from_stored(storage.grades_of(cell_id)[-1], run_id)

    return grade


def stored_grade_views(storage: Storage, lot: str | None = None) -> list[GradeView]:
    """Every cell's current grade (of ``lot`` when given), as stored. Blocks."""
    return [grade_view_from_stored(g) for g in storage.latest_grades(lot).values()]


@dataclass(frozen=True)
class MatchingView:
    """Matched groups in words for the batch view."""

    lines: tuple[str, ...]
    groups: int
    unmatched: int


def matching_groups(
    storage: Storage,
    profile: Profile,
    *,
    lot: str | None,
    series: int,
    parallel: int,
) -> MatchingView:
    """Matched groups of an ``SsPp`` pack from the lot's stored data (the one evaluation path,
    then :func:`station.grading.matching.match_cells`, as ``station match`` does). Blocks."""
    graded = grade_lot(storage, profile, lot=lot)
    if not graded.metrics:
        raise EvaluationError(f"no graded cells in {'the database' if lot is None else lot}")
    size, kind = (parallel, "parallel") if parallel > 1 else (series, "series")
    windows = MatchWindows.from_profile(profile, parallel=parallel > 1)
    result = match_cells(graded.metrics, size, windows, graded.grades, kind=kind)
    return MatchingView(_describe(result), len(result.groups), len(result.unmatched))


def _describe(result: MatchResult) -> tuple[str, ...]:
    lines = []
    for group in result.groups:
        spreads = ", ".join(
            f"{metric} {spread:.3g} {unit}"
            for metric, (spread, unit, _limit) in group.spread.items()
        )
        lines.append(
            f"{group.kind} group {group.index}: {', '.join(group.cell_ids)}"
            + (f" (spread {spreads})" if spreads else "")
        )
    lines += [f"{p.cell_id}: {p.reason}" for p in result.placements if p.group is None]
    return tuple(lines)


EXPORT_COLUMNS = (
    "cell_id",
    "grade",
    "bin",
    "use",
    "reason",
    "profile",
    "profile_version",
    "run_ids",
    "operator",
    "graded_t_s",
)


def export_grades(storage: Storage, folder: str | Path) -> list[Path]:
    """Write every cell's current stored grade to ``folder``: ``grades.csv`` (one row per cell,
    figures as extra columns in their units, text made spreadsheet-safe with
    :func:`station.reports.summary.neutralise`) and ``grades.json`` (the stored grades with their
    full explanations). Returns the paths. Blocks."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stored = list(storage.latest_grades().values())
    views = [grade_view_from_stored(g) for g in stored]
    figures = sorted({(name, unit) for view in views for name, _value, unit in view.figures})
    csv_path = out / "grades.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*EXPORT_COLUMNS, *(f"{name} ({unit})" for name, unit in figures)])
        for grade, view in zip(stored, views, strict=True):
            values = {name: value for name, value, _unit in view.figures}
            text = (
                grade.cell_id,
                grade.grade,
                grade.bin,
                grade.use,
                grade.reason,
                grade.profile_name,
                grade.profile_version,
                " ".join(grade.run_ids),
                grade.operator,
            )
            writer.writerow(
                [
                    *(neutralise(t) for t in text),
                    grade.created_t_s,
                    *(values.get(name, "") for name, _unit in figures),
                ]
            )
    json_path = out / "grades.json"
    json_path.write_text(
        json.dumps([dataclasses.asdict(g) for g in stored], indent=2, allow_nan=False),
        encoding="utf-8",
    )
    return [csv_path, json_path]


def lot_names(storage: Storage) -> Sequence[str]:
    """Lots with stored cells, sorted."""
    with storage.reader() as conn:
        rows = conn.execute("SELECT DISTINCT lot FROM cells WHERE lot != '' ORDER BY lot")
        return [str(row[0]) for row in rows]

"""``station grade``: re-grade stored data under a profile version and store the grades.

Every cell of the lot (every stored cell without ``--lot``) is graded from its latest completed
run through the station's one evaluation path (:func:`station.evaluation.grade_lot`, with the lot
statistics), and the grades are appended to the database: earlier grades, e.g. under an older
profile version, stay and each new grade names the one it supersedes (ADR 0009). A cell whose
last run stopped early (refused at the OCV probe, tripped, faulted) is graded from what that run
measured; only a cell never measured is NOT GRADED. The open follow-ups of the graded cells are
listed with their due dates.

Grades are stamped with the station clock: the wall clock (UTC), never earlier than the
database's latest record (a simulated bench's clock runs ahead of the wall clock), so a grade
never predates the data it grades (:class:`station.clock.NotBeforeClock`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from station.cli.cmd_followups import followup_json, utc
from station.cli.common import default_db_path, print_json
from station.cli.main import CommandError

if TYPE_CHECKING:
    from station.evaluation import LotGrades


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grade",
        help="re-grade a lot's stored data under a grading profile and store the grades",
        description=(
            "Grade every cell of LOT (every stored cell without --lot) from its latest completed "
            "run under the profile; the grades are added to the database, earlier grades stay."
        ),
    )
    parser.add_argument(
        "--db", type=Path, help="database file (default: $STATION_DB or the user data directory)"
    )
    parser.add_argument(
        "--profile", default="second-life", help="grading profile name or TOML file"
    )
    parser.add_argument("--lot", help="lot name as stored with the cells (default: every cell)")
    parser.add_argument(
        "--operator",
        default=os.environ.get("STATION_OPERATOR", "station"),
        help="who grades, for the audit trail (default: $STATION_OPERATOR or 'station')",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # The grading core pulls in scipy: imported here so other commands start fast.
    from station.clock import NotBeforeClock, SystemClock
    from station.evaluation import EvaluationError, connection, grade_entries, grade_lot
    from station.grading.profiles import ProfileError, load_profile
    from station.storage import Storage, StorageError, latest_record_t_s

    db_path: Path = args.db or default_db_path()
    if not db_path.is_file():
        raise CommandError(f"database {db_path} does not exist")
    if not args.operator.strip():
        raise CommandError("--operator must name who grades")
    try:
        profile = load_profile(args.profile)
    except (ProfileError, OSError) as error:
        raise CommandError(f"profile {args.profile}: {error}") from None
    try:
        graded = grade_lot(db_path, profile, lot=args.lot)
        with connection(db_path) as conn:
            latest = latest_record_t_s(conn)
    except EvaluationError as error:
        raise CommandError(str(error)) from None
    if not graded.grades:
        where = "the database" if args.lot is None else f"lot {args.lot!r}"
        raise CommandError(f"{where} has no cell with a completed run to grade in {db_path}")
    entries = grade_entries(graded)
    why = f"re-grade under {profile.name} {profile.version}"
    try:
        clock = NotBeforeClock(SystemClock(), latest or 0.0)
        with Storage(db_path, clock) as storage:
            ids = storage.record_grades(entries, who=args.operator, why=why)
            stored = storage.latest_grades(args.lot)
    except StorageError as error:
        raise CommandError(f"database {db_path}: {error}") from None
    superseded = {cell: stored[cell].supersedes_id for cell in graded.runs if cell in stored}
    if args.json:
        print_json(_as_json(args, graded, ids, superseded))
    else:
        _print(args, graded, superseded)
    return 0


def _as_json(
    args: argparse.Namespace,
    graded: LotGrades,
    ids: list[int],
    superseded: dict[str, int | None],
) -> dict[str, object]:
    from station.evaluation import main_reason

    profile = graded.profile
    return {
        "lot": args.lot,
        "profile": {"name": profile.name, "version": profile.version, "sha256": profile.sha256},
        "grades": [
            {
                "cell_id": g.cell_id,
                "grade": g.outcome,
                "use": g.use,
                "reason": main_reason(g, profile),
                "run_ids": [graded.runs[g.cell_id]],
                "grade_id": grade_id,
                "supersedes_id": superseded.get(g.cell_id),
            }
            for g, grade_id in zip(graded.grades, ids, strict=True)
        ],
        "counts": graded.counts(),
        "not_graded": graded.not_graded,
        "open_followups": [followup_json(f) for f in graded.followups],
        "lot_flags": list(graded.report.flags),
    }


def _print(args: argparse.Namespace, graded: LotGrades, superseded: dict[str, int | None]) -> None:
    from station.evaluation import main_reason

    profile = graded.profile
    where = "every cell" if args.lot is None else f"lot {args.lot!r}"
    print(f"{where} graded under {profile.name} {profile.version} ({profile.sha256[:12]})")
    rows = [("cell", "grade", "reason")]
    rows += [(g.cell_id, g.outcome, main_reason(g, profile)) for g in graded.grades]
    rows += [(cell, "NOT GRADED", why) for cell, why in sorted(graded.not_graded.items())]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for cell, grade, reason in rows:
        print(f"{cell.ljust(widths[0])}  {grade.ljust(widths[1])}  {reason}")
    counts = ", ".join(f"{outcome} {n}" for outcome, n in graded.counts().items())
    print(f"{len(graded.grades)} graded ({counts}); {len(graded.not_graded)} not graded")
    again = sum(1 for v in superseded.values() if v is not None)
    if again:
        print(f"{again} earlier grade(s) kept and superseded")
    for flag in graded.report.flags:
        print(f"lot: {flag}")
    for f in graded.followups:
        print(
            f"open follow-up: {f.cell_id} {f.kind} due {utc(f.due_t_s)} (scheduled by {f.run_id})"
        )

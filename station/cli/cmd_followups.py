"""``station followups``: the scheduled re-measurements not done yet (e.g. a self-discharge OCV
7 days after the first), with their due dates.

A follow-up is scheduled by a recipe's ``follow_up`` step and closed by the first OCV of the cell
taken by a later run at or after its due time (``station.storage``). "Now" is the station clock
as ``station grade`` uses it: the wall clock, never earlier than the database's latest record.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from station.cli.common import default_db_path, print_json
from station.cli.main import CommandError

if TYPE_CHECKING:
    from station.storage import FollowUp


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "followups",
        help="list the open follow-ups (self-discharge re-measurements) with their due dates",
        description=(
            "List the follow-ups not done yet, earliest due first: cell, kind, due date (UTC), "
            "the run that scheduled it and whether it is due now."
        ),
    )
    parser.add_argument(
        "--db", type=Path, help="database file (default: $STATION_DB or the user data directory)"
    )
    parser.add_argument("--due", action="store_true", help="only the follow-ups due now")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(handler=run)


def utc(t_s: float) -> str:
    """A station time (Unix s) as an ISO 8601 UTC date and time to the second."""
    return dt.datetime.fromtimestamp(t_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def followup_json(followup: FollowUp) -> dict[str, object]:
    return {
        "cell_id": followup.cell_id,
        "kind": followup.kind,
        "due_t_s": followup.due_t_s,
        "due_utc": utc(followup.due_t_s),
        "scheduled_by_run": followup.run_id,
    }


def run(args: argparse.Namespace) -> int:
    from station.clock import NotBeforeClock, SystemClock
    from station.evaluation import EvaluationError, connection
    from station.storage import latest_record_t_s, open_followups

    db_path: Path = args.db or default_db_path()
    try:
        with connection(db_path) as conn:
            followups = open_followups(conn)
            now = NotBeforeClock(SystemClock(), latest_record_t_s(conn) or 0.0).now()
    except EvaluationError as error:
        raise CommandError(str(error)) from None
    if args.due:
        followups = [f for f in followups if f.due_t_s <= now]
    if args.json:
        print_json(
            {
                "now_utc": utc(now),
                "followups": [{**followup_json(f), "due_now": f.due_t_s <= now} for f in followups],
            }
        )
        return 0
    if not followups:
        print("no open follow-ups" + (" due now" if args.due else ""))
        return 0
    rows = [("cell", "kind", "due (UTC)", "", "scheduled by run")]
    rows += [
        (f.cell_id, f.kind, utc(f.due_t_s), "DUE" if f.due_t_s <= now else "", f.run_id)
        for f in followups
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return 0

"""``station import``: attach cycler data exported elsewhere (Battery Data Format CSV, or the
station's own CSV export) to a cell as a completed run, so it is graded like a measured one.

The whole file is read and checked (:func:`station.grading.readers.read_bdf_csv`, which names
the missing or bad column) before the database is opened. The run is stored through the same
events as a station-measured run (channel ``import``, recipe ``import``, instrument
``import:<file name>``), with the file's SHA-256 as the recipe hash so a re-import is visible.
"""

from __future__ import annotations

import argparse
import hashlib
import uuid
from pathlib import Path

import numpy as np

from station.cells import Cell, CellDataError, cell_from_mapping
from station.cli.common import default_db_path
from station.cli.main import CommandError
from station.clock import SystemClock
from station.events import RunEnded, RunOutcome, RunStarted, Sample, StepEnded, StepStarted
from station.grading.readers import InputFileError, read_bdf_csv
from station.grading.timeseries import TimeSeries
from station.storage import RunRecord, Storage, StorageError

IMPORT_CHANNEL = "import"
IMPORT_RECIPE = "import"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import a Battery Data Format CSV and attach it to a cell as a run",
        description=(
            "Import cycler data exported by another system as Battery Data Format CSV (or the "
            "station's own CSV export) and store it as a completed run of the cell, so it can "
            "be graded and matched. Errors name the column and line."
        ),
    )
    parser.add_argument("file", type=Path, help="BDF CSV file (Test Time / s, Voltage / V, ...)")
    parser.add_argument("--cell", required=True, help="cell ID the data belongs to")
    parser.add_argument(
        "--db", type=Path, help="database file (default: $STATION_DB or the user data directory)"
    )
    parser.add_argument(
        "--flip-current",
        action="store_true",
        help="the file counts discharge current as positive; negate it",
    )
    parser.add_argument(
        "--chemistry", help="chemistry of a cell not yet stored (creates it with --capacity-ah)"
    )
    parser.add_argument(
        "--capacity-ah", type=float, help="rated capacity of a cell not yet stored (Ah)"
    )
    parser.add_argument("--lot", default="", help="lot of a cell not yet stored")
    parser.add_argument("--operator", default="station", help="operator name for the audit trail")
    parser.set_defaults(handler=run)


def _new_cell(args: argparse.Namespace) -> Cell | None:
    if args.chemistry is None and args.capacity_ah is None:
        return None
    if args.chemistry is None or args.capacity_ah is None:
        raise CommandError("a new cell needs both --chemistry and --capacity-ah")
    try:
        return cell_from_mapping(
            {
                "cell_id": args.cell,
                "lot": args.lot,
                "chemistry": args.chemistry,
                "rated_capacity_ah": args.capacity_ah,
            }
        )
    except CellDataError as error:
        raise CommandError(str(error)) from None


def _store(
    storage: Storage, cell_id: str, ts: TimeSeries, path: Path, digest: str, who: str
) -> str:
    run_id = uuid.uuid4().hex
    t0 = float(ts.t_s[0])
    storage.begin_run(
        RunRecord(
            run_id=run_id,
            channel_id=IMPORT_CHANNEL,
            cell_id=cell_id,
            recipe_name=IMPORT_RECIPE,
            recipe_version=0,
            recipe_hash=digest,
            recipe_toml="",
            instrument=f"import:{path.name}",
            instrument_serial="",
            calibration_due=None,
            simulated=False,
            production=False,
            operator=who,
            started_t_s=t0,
        )
    )
    steps = ts.step_count if ts.step_count is not None else np.zeros(len(ts.t_s), dtype=np.int64)
    # Step indices are renumbered 0, 1, 2... at each change of the file's step column.
    index = np.concatenate([[0], np.cumsum(np.diff(steps) != 0)]).astype(int)
    publish = storage.handle_event
    publish(RunStarted(run_id, IMPORT_CHANNEL, cell_id, IMPORT_RECIPE, t0))
    for k in range(len(ts.t_s)):
        t = float(ts.t_s[k])
        if k == 0 or index[k] != index[k - 1]:
            if k:
                publish(StepEnded(run_id, IMPORT_CHANNEL, int(index[k - 1]), "imported", "", t))
            publish(
                StepStarted(
                    run_id, IMPORT_CHANNEL, int(index[k]), "imported", f"file step {steps[k]}", t
                )
            )
        temperature = None if ts.temperature_c is None else float(ts.temperature_c[k])
        publish(
            Sample(
                run_id,
                IMPORT_CHANNEL,
                k,
                t,
                int(index[k]),
                float(ts.voltage_v[k]),
                float(ts.current_a[k]),
                temperature,
            )
        )
    t_end = float(ts.t_s[-1])
    publish(StepEnded(run_id, IMPORT_CHANNEL, int(index[-1]), "imported", "", t_end))
    publish(
        RunEnded(run_id, IMPORT_CHANNEL, RunOutcome.COMPLETED, f"imported from {path.name}", t_end)
    )
    storage.flush()
    return run_id


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise CommandError(f"{path} does not exist")
    try:
        loaded = read_bdf_csv(path, flip_current=args.flip_current)
    except InputFileError as error:
        raise CommandError(f"{error}; nothing was stored") from None
    new_cell = _new_cell(args)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    db_path: Path = args.db or default_db_path()
    if new_cell is None and not db_path.exists():
        raise CommandError(
            f"database {db_path} does not exist; import the lot first or give --chemistry and "
            "--capacity-ah"
        )
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        storage = Storage(db_path, SystemClock())
    except (OSError, StorageError) as error:
        raise CommandError(f"database {db_path}: {error}") from None
    try:
        if storage.get_cell(args.cell) is None:
            if new_cell is None:
                raise CommandError(
                    f"cell {args.cell!r} is not stored; import its lot first or give "
                    "--chemistry and --capacity-ah"
                )
            storage.add_cells([new_cell], who=args.operator, why=f"import of {path.name}")
        run_id = _store(storage, args.cell, loaded.series, path, digest, args.operator)
    finally:
        storage.close()
    columns = ", ".join(f"{ours}<-{theirs!r}" for ours, theirs in loaded.columns.items())
    print(f"{args.cell}: run {run_id} ({len(loaded.series.t_s)} samples; {columns})")
    return 0

"""The database schema as numbered migrations (applied in order, each in one transaction).

Raw data (samples, step events, measurements, limit trips, faults, audit) and grades are
append-only: triggers refuse UPDATE and DELETE. Corrections are new measurement rows whose
``corrects_id`` names the original. ``runs`` may only gain its end once; ``run_progress`` is the
mutable per-run checkpoint written in the same transaction as each sample batch.
"""

from __future__ import annotations

APPEND_ONLY_TABLES = (
    "samples",
    "step_events",
    "measurements",
    "limit_trips",
    "faults",
    "audit",
    "reference_checks",
    "calibrations",
)


def _append_only(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: add a correcting row instead'); END;
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are never deleted'); END;
"""


_V1 = """
CREATE TABLE cells (
    cell_id TEXT PRIMARY KEY,
    lot TEXT NOT NULL DEFAULT '',
    source_pack TEXT NOT NULL DEFAULT '',
    source_module TEXT NOT NULL DEFAULT '',
    chemistry TEXT NOT NULL DEFAULT '',
    format TEXT NOT NULL DEFAULT '',
    rated_capacity_ah REAL,
    rated_energy_wh REAL,
    nominal_voltage_v REAL,
    voltage_min_v REAL,
    voltage_max_v REAL,
    max_charge_current_a REAL,
    max_discharge_current_a REAL,
    bol_resistance_ohm REAL,
    manufacturer TEXT NOT NULL DEFAULT '',
    production_date TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT '',
    carbon_footprint_kg_co2e REAL,
    due_diligence_refs TEXT NOT NULL DEFAULT '',
    created_t_s REAL NOT NULL
);
CREATE INDEX cells_lot ON cells(lot);

CREATE TABLE instruments (
    name TEXT NOT NULL,
    driver TEXT NOT NULL,
    address TEXT NOT NULL,
    make TEXT NOT NULL,
    model TEXT NOT NULL,
    serial TEXT NOT NULL,
    firmware TEXT NOT NULL,
    simulated INTEGER NOT NULL,
    seen_t_s REAL NOT NULL,
    PRIMARY KEY (name, serial)
);

CREATE TABLE calibrations (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL,
    due_date TEXT NOT NULL,
    certificate TEXT NOT NULL DEFAULT '',
    recorded_t_s REAL NOT NULL
);
CREATE INDEX calibrations_serial ON calibrations(serial, id);

CREATE TABLE reference_checks (
    id INTEGER PRIMARY KEY,
    t_s REAL NOT NULL,
    instrument_serial TEXT NOT NULL,
    reference_cell_id TEXT NOT NULL,
    quantity TEXT NOT NULL,
    measured REAL NOT NULL,
    expected REAL NOT NULL,
    tolerance REAL NOT NULL,
    passed INTEGER NOT NULL,
    operator TEXT NOT NULL
);

CREATE TABLE runs (
    run_pk INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    channel_id TEXT NOT NULL,
    cell_id TEXT NOT NULL REFERENCES cells(cell_id),
    recipe_name TEXT NOT NULL,
    recipe_version INTEGER NOT NULL,
    recipe_hash TEXT NOT NULL,
    recipe_toml TEXT NOT NULL,
    instrument TEXT NOT NULL,
    instrument_serial TEXT NOT NULL,
    calibration_due TEXT,
    simulated INTEGER NOT NULL,
    production INTEGER NOT NULL,
    operator TEXT NOT NULL,
    started_t_s REAL NOT NULL,
    ended_t_s REAL,
    outcome TEXT,
    reason TEXT,
    out_of_calibration INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_cell ON runs(cell_id);
CREATE TRIGGER runs_end_once BEFORE UPDATE ON runs
WHEN OLD.outcome IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'runs: a closed run is never changed'); END;
CREATE TRIGGER runs_identity_fixed BEFORE UPDATE ON runs
WHEN NEW.run_id IS NOT OLD.run_id OR NEW.cell_id IS NOT OLD.cell_id
    OR NEW.recipe_hash IS NOT OLD.recipe_hash OR NEW.started_t_s IS NOT OLD.started_t_s
    OR NEW.channel_id IS NOT OLD.channel_id
BEGIN SELECT RAISE(ABORT, 'runs: identity columns are fixed'); END;
CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
BEGIN SELECT RAISE(ABORT, 'runs are never deleted'); END;

CREATE TABLE run_progress (
    run_pk INTEGER PRIMARY KEY REFERENCES runs(run_pk),
    state TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    step_start_t_s REAL,
    resume_token TEXT NOT NULL DEFAULT '',
    cum_ah REAL NOT NULL DEFAULT 0,
    cum_wh REAL NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT -1,
    last_t_s REAL,
    last_voltage_v REAL,
    last_current_a REAL,
    updated_t_s REAL NOT NULL
);

CREATE TABLE samples (
    run_pk INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    t_s REAL NOT NULL,
    step_index INTEGER NOT NULL,
    voltage_v REAL NOT NULL,
    current_a REAL NOT NULL,
    temperature_c REAL,
    PRIMARY KEY (run_pk, seq)
) WITHOUT ROWID;

CREATE TABLE step_events (
    id INTEGER PRIMARY KEY,
    run_pk INTEGER NOT NULL,
    step_index INTEGER NOT NULL,
    event TEXT NOT NULL,
    step_kind TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    capacity_ah REAL,
    energy_wh REAL,
    t_s REAL NOT NULL
);
CREATE INDEX step_events_run ON step_events(run_pk, step_index);

CREATE TABLE measurements (
    id INTEGER PRIMARY KEY,
    run_pk INTEGER,
    cell_id TEXT NOT NULL,
    step_index INTEGER,
    kind TEXT NOT NULL,
    values_json TEXT NOT NULL,
    instrument TEXT NOT NULL,
    out_of_calibration INTEGER NOT NULL DEFAULT 0,
    corrects_id INTEGER REFERENCES measurements(id),
    operator TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    t_s REAL NOT NULL
);
CREATE INDEX measurements_cell ON measurements(cell_id, kind);

CREATE TABLE followups (
    id INTEGER PRIMARY KEY,
    cell_id TEXT NOT NULL,
    run_pk INTEGER NOT NULL,
    kind TEXT NOT NULL,
    due_t_s REAL NOT NULL,
    created_t_s REAL NOT NULL,
    done_run_pk INTEGER
);

CREATE TABLE limit_trips (
    id INTEGER PRIMARY KEY,
    run_pk INTEGER NOT NULL,
    limit_name TEXT NOT NULL,
    value REAL,  -- NULL when the instrument's own protection tripped without a value
    threshold REAL,
    unit TEXT NOT NULL,
    t_s REAL NOT NULL
);

CREATE TABLE faults (
    id INTEGER PRIMARY KEY,
    run_pk INTEGER NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    t_s REAL NOT NULL
);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    t_s REAL NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    why TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""

# Ingest speed (ADR 0007): the WITHOUT ROWID (run_pk, seq) table cost a wide composite-key
# b-tree per row. Samples now live in a rowid table keyed by one integer,
# ``sample_key = (run_pk << 32) | seq``, so the key is unique exactly when (run_pk, seq) is and
# no second index is kept; ``run_pk`` and ``seq`` remain queryable as virtual columns.
SEQ_BITS = 32
SEQ_LIMIT = 1 << SEQ_BITS

_V2 = f"""
CREATE TABLE samples_v2 (
    sample_key INTEGER PRIMARY KEY,
    t_s REAL NOT NULL,
    step_index INTEGER NOT NULL,
    voltage_v REAL NOT NULL,
    current_a REAL NOT NULL,
    temperature_c REAL,
    run_pk INTEGER GENERATED ALWAYS AS (sample_key >> {SEQ_BITS}) VIRTUAL,
    seq INTEGER GENERATED ALWAYS AS (sample_key & {SEQ_LIMIT - 1}) VIRTUAL
);
INSERT INTO samples_v2 (sample_key, t_s, step_index, voltage_v, current_a, temperature_c)
SELECT (run_pk << {SEQ_BITS}) | seq, t_s, step_index, voltage_v, current_a, temperature_c
FROM samples ORDER BY run_pk, seq;
DROP TABLE samples;
ALTER TABLE samples_v2 RENAME TO samples;
"""

# Stored grades (ADR 0009): one row per cell per grading, never changed. Re-grading (a new
# profile version, a corrected measurement) adds a row whose ``supersedes_id`` names the cell's
# previous grade, so every grade ever issued stays readable with the profile that gave it.
_V3 = """
CREATE TABLE grades (
    id INTEGER PRIMARY KEY,
    cell_id TEXT NOT NULL REFERENCES cells(cell_id),
    run_ids TEXT NOT NULL,
    profile_name TEXT NOT NULL,
    profile_version TEXT NOT NULL,
    profile_sha256 TEXT NOT NULL,
    grade TEXT NOT NULL,
    bin TEXT NOT NULL DEFAULT '',
    use TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL,
    explanation_json TEXT NOT NULL,
    operator TEXT NOT NULL,
    created_t_s REAL NOT NULL,
    supersedes_id INTEGER REFERENCES grades(id)
);
CREATE INDEX grades_cell ON grades(cell_id, id);
"""

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "initial schema", _V1 + "".join(_append_only(t) for t in APPEND_ONLY_TABLES)),
    (2, "samples keyed by one integer", _V2 + _append_only("samples")),
    (3, "stored grades", _V3 + _append_only("grades")),
)

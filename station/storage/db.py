"""SQLite storage: one writer thread, batched commits, append-only raw data, resumable runs.

``Storage(path, clock)`` opens (creating and migrating) the database and starts its writer
thread. The writer owns the only write connection (WAL, ``synchronous=FULL``); everything else
reads through :meth:`Storage.reader` / :meth:`Storage.view` connections of its own.

- :meth:`handle_event` is the engine's event subscriber: it only queues. Samples come one by
  one (:class:`~station.events.Sample`) or as a column block per channel and poll
  (:class:`~station.events.SampleBlock`, the engine's ingest path, inserted from its columns).
  The writer commits queued events about once per ``batch_interval_s`` of wall time, in one
  transaction per batch, together with each touched run's progress row (step, step start,
  cumulative Ah/Wh, last seq), so after a crash the committed samples and the checkpoint
  always agree.
- :meth:`call` runs a function on the write connection inside the writer thread, in its own
  transaction, and returns its result (used for cells, runs, calibration, audit).
- A self-discharge follow-up (``followups``) is closed by the first OCV measurement of the cell
  by a later run at or after its due time: ``done_run_pk`` names that run, set once.
- ``on_commit(last_seqs)`` (optional) hears, after each commit, the last committed sample seq
  of every run in the batch: the acknowledgement a kill-9 supervisor checks against.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

from station.cells import CELL_FIELDS, Cell, CellDataError, check_cell_id
from station.clock import Clock
from station.events import (
    Event,
    Fault,
    LimitTripped,
    MeasurementTaken,
    RunEnded,
    RunStarted,
    Sample,
    SampleBlock,
    StepEnded,
    StepStarted,
)
from station.storage.schema import MIGRATIONS, SEQ_BITS, SEQ_LIMIT

T = TypeVar("T")
log = logging.getLogger(__name__)
GENESIS_HASH = "0" * 64
MAX_BATCH_ROWS = 200_000
# Page cache of the writer connection (KiB). A batch's dirty pages must fit: when they spill,
# SQLite writes them to the WAL mid-transaction and rewrites them at commit (ADR 0007).
WRITER_CACHE_KIB = 65_536
SYNCHRONOUS_MODES = ("FULL", "NORMAL")
DRAIN_CHECK_EVERY = 1024
SELF_DISCHARGE = "self-discharge"  # follow-up kind closed by a later OCV measurement


class StorageError(RuntimeError):
    """The database refused or failed an operation; the message says which and why."""


@dataclass(frozen=True)
class RunRecord:
    """What is fixed about a run when it starts (stored before any output is turned on)."""

    run_id: str
    channel_id: str
    cell_id: str
    recipe_name: str
    recipe_version: int
    recipe_hash: str
    recipe_toml: str
    instrument: str
    instrument_serial: str
    calibration_due: str | None
    simulated: bool
    production: bool
    operator: str
    started_t_s: float


@dataclass(frozen=True)
class RunProgress:
    """A run's committed checkpoint (what a restart resumes from)."""

    run_id: str
    channel_id: str
    cell_id: str
    recipe_name: str
    state: str
    step_index: int
    step_start_t_s: float | None
    resume_token: str
    cum_ah: float
    cum_wh: float
    last_seq: int
    last_t_s: float | None


@dataclass(frozen=True)
class ReferenceCheck:
    """One stored reference-cell check: ``measured`` and ``expected`` in the quantity's unit
    (V for ocv_v, ohm for acir_ohm), ``t_s`` station-clock seconds."""

    t_s: float
    instrument_serial: str
    reference_cell_id: str
    quantity: str
    measured: float
    expected: float
    tolerance: float
    passed: bool
    operator: str


class _Stop:
    pass


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


class _Call:
    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        self.future: Future[Any] = Future()


@dataclass
class _RunState:
    run_pk: int
    cell_id: str
    step_index: int
    step_start_t_s: float | None
    resume_token: str
    cum_ah: float
    cum_wh: float
    last_seq: int
    last_t_s: float | None
    last_v: float | None
    last_i: float | None
    state: str


NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph", "glusterfs"}
)


def filesystem_type(path: str | Path, mounts_text: str | None = None) -> str | None:
    """The filesystem type holding ``path`` from the Linux mount table (None if unknown)."""
    if mounts_text is None:
        try:
            mounts_text = Path("/proc/mounts").read_text(encoding="utf-8")
        except OSError:
            return None
    target = Path(path).resolve()
    best: tuple[int, str] | None = None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = Path(fields[1].replace("\\040", " "))
        if target == mount_point or mount_point in target.parents:
            depth = len(mount_point.parts)
            if best is None or depth > best[0]:
                best = (depth, fields[2])
    return None if best is None else best[1]


def _connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"file:{Path(path).resolve()}?mode=ro", uri=True, check_same_thread=True, timeout=30
        )
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def audit_hash(
    prev_hash: str, t_s: float, who: str, action: str, subject: str, detail: str, why: str
) -> str:
    payload = json.dumps([prev_hash, t_s, who, action, subject, detail, why], ensure_ascii=True)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def _append_audit(
    conn: sqlite3.Connection, t_s: float, who: str, action: str, subject: str, detail: str, why: str
) -> None:
    row = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    prev = row[0] if row else GENESIS_HASH
    digest = audit_hash(prev, t_s, who, action, subject, detail, why)
    conn.execute(
        "INSERT INTO audit (t_s, who, action, subject, detail, why, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (t_s, who, action, subject, detail, why, prev, digest),
    )


class Storage:
    """The station database (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        clock: Clock,
        *,
        batch_interval_s: float = 1.0,
        on_commit: Callable[[dict[str, int]], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        synchronous: str = "FULL",
    ) -> None:
        if synchronous not in SYNCHRONOUS_MODES:
            raise StorageError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}"
            )
        self.path = str(path)
        # FULL survives power loss; NORMAL (in WAL) survives application crashes and kill -9 but
        # may lose the last commits on power loss (ADR 0007).
        self.synchronous = synchronous
        self.clock = clock
        self.batch_interval_s = batch_interval_s
        self.on_commit = on_commit
        self.on_error = on_error
        self.last_error: str | None = None
        self._pending: list[Event | SampleBlock] = []
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._runs: dict[str, _RunState] = {}
        self._error: BaseException | None = None
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._writer_main, name="storage-writer", daemon=True
        )
        self._thread.start()
        self._ready.result()

    # --- writer thread ----------------------------------------------------------------------

    def _writer_main(self) -> None:
        try:
            conn = _connect(self.path)
            self._open(conn)
        except BaseException as error:
            self._ready.set_exception(error)
            return
        self._ready.set_result(None)
        try:
            self._loop(conn)
        except BaseException as error:
            self._error = error
            raise
        finally:
            conn.close()

    def _open(self, conn: sqlite3.Connection) -> None:
        fs_type = filesystem_type(self.path)
        if fs_type in NETWORK_FILESYSTEMS:
            # WAL needs shared memory on one host; network filesystems corrupt WAL databases.
            raise StorageError(
                f"{self.path} is on a network filesystem ({fs_type}); use a local disk"
            )
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        conn.execute("PRAGMA foreign_keys = ON")
        if str(mode).lower() != "wal":
            raise StorageError(f"{self.path}: the database refused WAL mode (got {mode!r})")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise StorageError(f"{self.path}: quick_check failed: {check}")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_t_s REAL NOT NULL)"
        )
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        newest = max(version for version, _, _ in MIGRATIONS)
        if applied and max(applied) > newest:
            raise StorageError(
                f"{self.path}: schema version {max(applied)} is newer than this station ({newest})"
            )
        if applied and 2 not in applied:
            bad = conn.execute(
                "SELECT run_pk, seq FROM samples WHERE seq < 0 OR seq >= ? LIMIT 1", (SEQ_LIMIT,)
            ).fetchone()
            if bad is not None:
                raise StorageError(
                    f"{self.path}: samples row run_pk={bad[0]} seq={bad[1]} is outside "
                    f"0..{SEQ_LIMIT - 1}; migration 2 cannot key it"
                )
        for version, name, script in MIGRATIONS:
            if version in applied:
                continue
            conn.executescript(
                "BEGIN IMMEDIATE;\n"
                + script
                + f"\nINSERT INTO schema_migrations VALUES ({version}, '{name}', "
                f"{self.clock.now()!r});\nCOMMIT;"
            )
        for row in conn.execute(
            "SELECT r.run_id, r.run_pk, r.cell_id, p.step_index, p.step_start_t_s, p.resume_token,"
            " p.cum_ah, p.cum_wh, p.last_seq, p.last_t_s, p.last_voltage_v, p.last_current_a,"
            " p.state FROM runs r JOIN run_progress p USING (run_pk) WHERE r.outcome IS NULL"
        ):
            self._runs[row[0]] = _RunState(*row[1:])

    def _loop(self, conn: sqlite3.Connection) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.batch_interval_s if self._pending else None)
            except queue.Empty:
                self._commit_events(conn, [])
                continue
            batch: list[Event | SampleBlock] = []
            rows = 0
            specials: list[Any] = []
            get_nowait = self._queue.get_nowait
            deadline = time.monotonic() + self.batch_interval_s
            stop = False
            while True:
                if isinstance(item, _Stop):
                    stop = True
                elif isinstance(item, _Flush | _Call):
                    specials.append(item)
                else:
                    batch.append(item)
                    rows += len(item) if type(item) is SampleBlock else 1
                if stop or specials or rows >= MAX_BATCH_ROWS:
                    break
                # Ingest hot path: take what is already queued without a timed wait, reading
                # the clock only every DRAIN_CHECK_EVERY events (ADR 0007).
                if len(batch) % DRAIN_CHECK_EVERY:
                    try:
                        item = get_nowait()
                        continue
                    except queue.Empty:
                        pass
                # Batch by wall time: commit cadence is about disk durability, not test time.
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if batch or self._pending:
                self._commit_events(conn, batch)
            for special in specials:
                if isinstance(special, _Call):
                    self._run_call(conn, special)
                else:
                    special.done.set()
            if stop:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        return
                    if isinstance(item, _Call):
                        item.future.set_exception(StorageError("storage is closed"))
                    elif isinstance(item, _Flush):
                        item.done.set()

    def _run_call(self, conn: sqlite3.Connection, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = call.fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except BaseException as error:
            call.future.set_exception(error)
        else:
            call.future.set_result(result)

    def _commit_events(
        self, conn: sqlite3.Connection, events: Sequence[Event | SampleBlock]
    ) -> None:
        """Commit a batch; on a database error keep it (and the run states) for the next try."""
        batch = [*self._pending, *events]
        saved = {run_id: replace(state) for run_id, state in self._runs.items()}
        try:
            self._commit_batch(conn, batch)
        except sqlite3.IntegrityError as error:
            # Not transient: retrying the same batch would block every later event. Commit
            # event by event and report (never silently drop) the ones the schema refuses.
            self._runs = saved
            self._pending = []
            self._report(error)
            for event in batch:
                saved_one = {run_id: replace(state) for run_id, state in self._runs.items()}
                try:
                    self._commit_batch(conn, [event])
                except sqlite3.IntegrityError as refused:
                    self._runs = saved_one
                    self._report(refused, event)
        except sqlite3.Error as error:
            self._runs = saved
            self._pending = batch
            self._report(error)
        else:
            self._pending = []
            self.last_error = None

    def _report(self, error: sqlite3.Error, event: Event | SampleBlock | None = None) -> None:
        self.last_error = f"{type(error).__name__}: {error}" + (
            f" (refused {event!r})" if event is not None else ""
        )
        log.error("storage: %s", self.last_error)
        if self.on_error is not None:
            self.on_error(self.last_error)

    def _commit_batch(
        self, conn: sqlite3.Connection, events: Sequence[Event | SampleBlock]
    ) -> None:
        # Sample rows are inserted at the end of the transaction in key order: each run's rows
        # of the batch go into the b-tree together instead of SQLite moving between the runs'
        # places at every poll, a few percent faster (ADR 0013). Blocks are kept as runs of
        # consecutive keys, single samples as rows (one more object per row costs more in
        # garbage collection than the order saves). No other event reads or writes samples,
        # and the batch commits or rolls back as one transaction, so the order inside it
        # changes nothing that is stored.
        segments: list[tuple[int, Iterable[tuple[Any, ...]]]] = []
        sample_rows: list[tuple[Any, ...]] = []
        touched: set[str] = set()
        conn.execute("BEGIN IMMEDIATE")
        try:
            runs = self._runs
            append = sample_rows.append
            for event in events:
                state = runs.get(event.run_id)
                if state is None:
                    continue  # a run this database never began (e.g. an event after close)
                # The sample path is the hot loop of ingest: kept inline on purpose.
                if type(event) is Sample:
                    seq = event.seq
                    if seq <= state.last_seq or seq >= SEQ_LIMIT:
                        conn.execute(
                            "INSERT INTO faults (run_pk, kind, message, t_s) VALUES (?, ?, ?, ?)",
                            (
                                state.run_pk,
                                "duplicate_sample",
                                f"sample seq {seq} is not after {state.last_seq}"
                                f" or not below {SEQ_LIMIT}; dropped",
                                event.t_s,
                            ),
                        )
                        continue
                    t_s, voltage, current = event.t_s, event.voltage_v, event.current_a
                    last_t = state.last_t_s
                    if last_t is not None:
                        dt_h = (t_s - last_t) / 3600.0 if t_s > last_t else 0.0
                        last_i = state.last_i or 0.0
                        state.cum_ah += 0.5 * (current + last_i) * dt_h
                        state.cum_wh += (
                            0.5 * (current * voltage + last_i * (state.last_v or 0.0)) * dt_h
                        )
                    state.last_seq = seq
                    state.last_t_s = t_s
                    state.last_v = voltage
                    state.last_i = current
                    state.state = "running"
                    append(
                        (
                            (state.run_pk << SEQ_BITS) | seq,
                            t_s,
                            event.step_index,
                            voltage,
                            current,
                            event.temperature_c,
                        )
                    )
                    touched.add(event.run_id)
                elif type(event) is SampleBlock:
                    segment = self._take_block(conn, state, event)
                    if segment is not None:
                        segments.append(segment)
                    touched.add(event.run_id)
                else:
                    assert not isinstance(event, SampleBlock)
                    self._apply_event(conn, state, event)
                    touched.add(event.run_id)
            if segments:
                segments.sort(key=itemgetter(0))
                self._insert_samples(conn, chain.from_iterable(rows for _, rows in segments))
            if sample_rows:
                sample_rows.sort(key=itemgetter(0))
                self._insert_samples(conn, sample_rows)
            now = self.clock.now()
            conn.executemany(
                "UPDATE run_progress SET state = ?, step_index = ?, step_start_t_s = ?,"
                " resume_token = ?, cum_ah = ?, cum_wh = ?, last_seq = ?, last_t_s = ?,"
                " last_voltage_v = ?, last_current_a = ?, updated_t_s = ? WHERE run_pk = ?",
                [
                    (
                        s.state,
                        s.step_index,
                        s.step_start_t_s,
                        s.resume_token,
                        s.cum_ah,
                        s.cum_wh,
                        s.last_seq,
                        s.last_t_s,
                        s.last_v,
                        s.last_i,
                        now,
                        s.run_pk,
                    )
                    for s in (self._runs[r] for r in touched)
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        acks = {run_id: self._runs[run_id].last_seq for run_id in touched}
        for run_id in touched:
            if self._runs[run_id].state == "closed":
                del self._runs[run_id]
        if self.on_commit is not None:
            self.on_commit(acks)

    @staticmethod
    def _take_block(
        conn: sqlite3.Connection, state: _RunState, block: SampleBlock
    ) -> tuple[int, Iterable[tuple[Any, ...]]] | None:
        """A block's first sample key and its rows (straight from its columns) to insert, None
        when none is new; its progress goes into ``state``."""
        n = len(block)
        skip = max(state.last_seq + 1 - block.first_seq, 0)
        if skip or block.first_seq + n > SEQ_LIMIT:
            # Rows at or below the committed seq were stored before (a replay); rows beyond the
            # key range cannot be keyed. Neither is stored twice nor silently.
            last = block.first_seq + n - 1
            conn.execute(
                "INSERT INTO faults (run_pk, kind, message, t_s) VALUES (?, ?, ?, ?)",
                (
                    state.run_pk,
                    "duplicate_sample",
                    f"sample block seq {block.first_seq}..{last} overlaps {state.last_seq}"
                    f" or is not below {SEQ_LIMIT}; those samples dropped",
                    block.t_s[0],
                ),
            )
            if skip >= n or block.first_seq + n > SEQ_LIMIT:
                return None
            block = SampleBlock.of(block.samples()[skip:])
            n -= skip
        t_s, voltage, current = block.t_s, block.voltage_v, block.current_a
        last_t = state.last_t_s
        if last_t is not None and t_s[0] > last_t:
            # The gap from the previous committed sample to the block's first one.
            dt_h = (t_s[0] - last_t) / 3600.0
            last_i = state.last_i or 0.0
            state.cum_ah += 0.5 * (current[0] + last_i) * dt_h
            state.cum_wh += 0.5 * (current[0] * voltage[0] + last_i * (state.last_v or 0.0)) * dt_h
        state.cum_ah += block.charge_ah
        state.cum_wh += block.energy_wh
        state.last_seq = block.first_seq + n - 1
        state.last_t_s, state.last_v, state.last_i = t_s[-1], voltage[-1], current[-1]
        state.state = "running"
        base = (state.run_pk << SEQ_BITS) | block.first_seq
        rows = zip(
            range(base, base + n),
            t_s,
            block.step_index,
            voltage,
            current,
            block.temperature_c,
            strict=True,
        )
        return base, rows

    @staticmethod
    def _insert_samples(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
        conn.executemany(
            "INSERT INTO samples (sample_key, t_s, step_index, voltage_v, current_a,"
            " temperature_c) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _apply_event(self, conn: sqlite3.Connection, state: _RunState, event: Event) -> None:
        pk = state.run_pk
        if isinstance(event, RunStarted):
            state.state = "running"
        elif isinstance(event, StepStarted):
            conn.execute(
                "INSERT INTO step_events (run_pk, step_index, event, step_kind, label, t_s)"
                " VALUES (?, ?, 'started', ?, ?, ?)",
                (pk, event.step_index, event.step_kind, event.label, event.t_s),
            )
            state.step_index = event.step_index
            state.step_start_t_s = event.t_s
            state.resume_token = event.resume_token
            state.state = "running"
        elif isinstance(event, StepEnded):
            conn.execute(
                "INSERT INTO step_events (run_pk, step_index, event, step_kind, reason,"
                " capacity_ah, energy_wh, t_s) VALUES (?, ?, 'ended', ?, ?, ?, ?, ?)",
                (
                    pk,
                    event.step_index,
                    event.step_kind,
                    event.reason,
                    event.capacity_ah,
                    event.energy_wh,
                    event.t_s,
                ),
            )
        elif isinstance(event, LimitTripped):
            conn.execute(
                "INSERT INTO limit_trips (run_pk, limit_name, value, threshold, unit, t_s)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (pk, event.limit, event.value, event.threshold, event.unit, event.t_s),
            )
        elif isinstance(event, Fault):
            conn.execute(
                "INSERT INTO faults (run_pk, kind, message, t_s) VALUES (?, ?, ?, ?)",
                (pk, event.kind, event.message, event.t_s),
            )
        elif isinstance(event, MeasurementTaken):
            self._insert_measurement(conn, state, event)
        elif isinstance(event, RunEnded):
            due = conn.execute(
                "SELECT calibration_due FROM runs WHERE run_pk = ?", (pk,)
            ).fetchone()[0]
            late = due is not None and _date_of(event.t_s) > due
            conn.execute(
                "UPDATE runs SET ended_t_s = ?, outcome = ?, reason = ?,"
                " out_of_calibration = MAX(out_of_calibration, ?) WHERE run_pk = ?",
                (event.t_s, event.outcome.value, event.reason, int(late), pk),
            )
            state.state = "closed"

    def _insert_measurement(
        self, conn: sqlite3.Connection, state: _RunState, event: MeasurementTaken
    ) -> None:
        serial = _serial_of(event.instrument)
        due_row = conn.execute(
            "SELECT due_date FROM calibrations WHERE serial = ? ORDER BY id DESC LIMIT 1",
            (serial,),
        ).fetchone()
        late = due_row is not None and _date_of(event.t_s) > due_row[0]
        conn.execute(
            "INSERT INTO measurements (run_pk, cell_id, step_index, kind, values_json, instrument,"
            " out_of_calibration, t_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                state.run_pk,
                state.cell_id,
                event.step_index,
                event.kind,
                event.values_json,
                event.instrument,
                int(late),
                event.t_s,
            ),
        )
        if event.kind == "ocv":
            # The re-measurement a self-discharge follow-up waits for: an OCV of the cell by a
            # later run at or after the due time closes it (never one taken too early).
            conn.execute(
                "UPDATE followups SET done_run_pk = ? WHERE cell_id = ? AND kind = ?"
                " AND done_run_pk IS NULL AND run_pk != ? AND due_t_s <= ?",
                (state.run_pk, state.cell_id, SELF_DISCHARGE, state.run_pk, event.t_s),
            )
        if event.kind == "follow_up":
            values = json.loads(event.values_json)
            closed = conn.execute(
                "SELECT 1 FROM followups WHERE done_run_pk = ? AND kind = ?",
                (state.run_pk, values["kind"]),
            ).fetchone()
            if closed is None:
                # A run that was itself the re-measurement schedules no new one.
                conn.execute(
                    "INSERT INTO followups (cell_id, run_pk, kind, due_t_s, created_t_s)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (state.cell_id, state.run_pk, values["kind"], values["due_t_s"], event.t_s),
                )

    # --- public API (any thread) --------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._error is not None:
            raise StorageError(f"the storage writer stopped: {self._error!r}") from self._error
        if not self._thread.is_alive():
            raise StorageError("storage is closed")

    def handle_event(self, event: Event | SampleBlock) -> None:
        """Event subscriber: queue the event for the next batch (never blocks on the disk)."""
        self._queue.put(event)

    def call(self, fn: Callable[[sqlite3.Connection], T], timeout_s: float | None = 60.0) -> T:
        """Run ``fn(conn)`` on the writer connection in one transaction; return its result."""
        self._check_alive()
        call = _Call(fn)
        self._queue.put(call)
        return call.future.result(timeout=timeout_s)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every event queued before this call is committed."""
        self._check_alive()
        flush = _Flush()
        self._queue.put(flush)
        if not flush.done.wait(timeout_s):
            raise StorageError(f"storage flush did not finish within {timeout_s} s")
        self._check_alive()

    def close(self, timeout_s: float = 60.0) -> None:
        if self._thread.is_alive():
            self._queue.put(_Stop())
            self._thread.join(timeout_s)

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """``with storage.reader() as conn``: a read-only connection of the calling thread,
        closed on exit (readers never share the writer's connection)."""
        conn = _connect(self.path, readonly=True)
        try:
            yield conn
        finally:
            conn.close()

    def view(self) -> Any:
        """A read-only sqlite-utils database for views and reports (call ``.close()`` on it)."""
        # Imported here: sqlite-utils pulls in numpy, which the writer never needs.
        import sqlite_utils

        return sqlite_utils.Database(_connect(self.path, readonly=True))

    # --- cells --------------------------------------------------------------------------------

    def add_cells(self, cells: Sequence[Cell], *, who: str, why: str = "lot import") -> int:
        """Insert new cells all-or-nothing; an ID already stored is an error naming it."""
        now = self.clock.now()
        rows = [tuple(getattr(c, name) for name in CELL_FIELDS) + (now,) for c in cells]
        placeholders = ", ".join("?" * (len(CELL_FIELDS) + 1))
        columns = ", ".join((*CELL_FIELDS, "created_t_s"))

        def insert(conn: sqlite3.Connection) -> int:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_ids (cell_id TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM incoming_ids")
            conn.executemany("INSERT INTO incoming_ids VALUES (?)", ((c.cell_id,) for c in cells))
            clashes = [
                row[0]
                for row in conn.execute(
                    "SELECT cell_id FROM cells WHERE cell_id IN (SELECT cell_id FROM incoming_ids)"
                    " LIMIT 20"
                )
            ]
            conn.execute("DELETE FROM incoming_ids")
            if clashes:
                raise CellDataError(
                    [(None, "cell_id", f"{cid!r} is already stored") for cid in clashes]
                )
            conn.executemany(f"INSERT INTO cells ({columns}) VALUES ({placeholders})", rows)
            lots = sorted({c.lot for c in cells})
            _append_audit(conn, now, who, "import cells", ",".join(lots), f"{len(rows)} cells", why)
            return len(rows)

        return self.call(insert)

    def get_cell(self, cell_id: str) -> Cell | None:
        with self.reader() as conn:
            row = conn.execute(
                f"SELECT {', '.join(CELL_FIELDS)} FROM cells WHERE cell_id = ?", (cell_id,)
            ).fetchone()
        return None if row is None else Cell(*row)

    def find_or_create_cell(
        self, barcode: str, *, who: str, template: Cell | None = None
    ) -> tuple[Cell, bool]:
        """A scanned barcode: the stored cell, or a new one (from ``template``'s lot and rated
        values when given). Returns ``(cell, created)``."""
        check_cell_id(barcode)
        existing = self.get_cell(barcode)
        if existing is not None:
            return existing, False
        values = template.as_row() if template is not None else {}
        values["cell_id"] = barcode
        cell = Cell(**values)
        try:
            self.add_cells([cell], who=who, why="barcode scan")
        except CellDataError:
            found = self.get_cell(barcode)
            if found is None:
                raise
            return found, False
        return cell, True

    # --- instruments, calibration, reference checks, audit -------------------------------------

    def record_instrument(
        self, name: str, driver: str, address: str, identity: Any, calibration_due: str | None
    ) -> None:
        now = self.clock.now()

        def record(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO instruments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name, serial) DO UPDATE SET address = excluded.address,"
                " firmware = excluded.firmware, seen_t_s = excluded.seen_t_s",
                (
                    name,
                    driver,
                    address,
                    identity.make,
                    identity.model,
                    identity.serial,
                    identity.firmware,
                    int(identity.simulated),
                    now,
                ),
            )
            if calibration_due is not None:
                last = conn.execute(
                    "SELECT due_date FROM calibrations WHERE serial = ? ORDER BY id DESC LIMIT 1",
                    (identity.serial,),
                ).fetchone()
                if last is None or last[0] != calibration_due:
                    conn.execute(
                        "INSERT INTO calibrations (serial, due_date, recorded_t_s)"
                        " VALUES (?, ?, ?)",
                        (identity.serial, calibration_due, now),
                    )

        self.call(record)

    def record_reference_check(
        self,
        *,
        instrument_serial: str,
        reference_cell_id: str,
        quantity: str,
        measured: float,
        expected: float,
        tolerance: float,
        operator: str,
    ) -> bool:
        passed = abs(measured - expected) <= tolerance
        now = self.clock.now()

        def record(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO reference_checks (t_s, instrument_serial, reference_cell_id, quantity,"
                " measured, expected, tolerance, passed, operator) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    now,
                    instrument_serial,
                    reference_cell_id,
                    quantity,
                    measured,
                    expected,
                    tolerance,
                    int(passed),
                    operator,
                ),
            )

        self.call(record)
        return passed

    def reference_check_passed_on(self, instrument_serial: str, day: dt.date) -> bool:
        with self.reader() as conn:
            rows = conn.execute(
                "SELECT t_s, passed FROM reference_checks WHERE instrument_serial = ?",
                (instrument_serial,),
            ).fetchall()
        return any(passed and _date_of(t_s) == day.isoformat() for t_s, passed in rows)

    def last_reference_checks(self, limit: int = 50) -> list[ReferenceCheck]:
        """The newest ``limit`` reference-cell checks, newest first."""
        with self.reader() as conn:
            rows = conn.execute(
                "SELECT t_s, instrument_serial, reference_cell_id, quantity, measured, expected,"
                " tolerance, passed, operator FROM reference_checks ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        checks = []
        for t_s, serial, cell_id, quantity, measured, expected, tol, passed, who in rows:
            checks.append(
                ReferenceCheck(
                    t_s, serial, cell_id, quantity, measured, expected, tol, bool(passed), who
                )
            )
        return checks

    def audit(self, who: str, action: str, subject: str, detail: str, why: str) -> None:
        now = self.clock.now()
        self.call(lambda conn: _append_audit(conn, now, who, action, subject, detail, why))

    def verify_audit(self) -> int | None:
        """Recompute the audit hash chain; return the first bad row id, or None if intact."""
        prev = GENESIS_HASH
        with self.reader() as conn:
            for row in conn.execute(
                "SELECT id, t_s, who, action, subject, detail, why, prev_hash, hash FROM audit"
                " ORDER BY id"
            ):
                rid, t_s, who, action, subject, detail, why, prev_hash, digest = row
                if (
                    prev_hash != prev
                    or audit_hash(prev, t_s, who, action, subject, detail, why) != digest
                ):
                    return int(rid)
                prev = digest
        return None

    def correct_measurement(
        self, original_id: int, values: dict[str, Any], *, who: str, why: str
    ) -> int:
        """Store a correction as a new row linked to the original (which stays unchanged)."""
        if not why.strip():
            raise StorageError("a correction needs a reason")
        now = self.clock.now()

        def correct(conn: sqlite3.Connection) -> int:
            original = conn.execute(
                "SELECT run_pk, cell_id, step_index, kind, instrument FROM measurements"
                " WHERE id = ?",
                (original_id,),
            ).fetchone()
            if original is None:
                raise StorageError(f"measurement {original_id} does not exist")
            cursor = conn.execute(
                "INSERT INTO measurements (run_pk, cell_id, step_index, kind, values_json,"
                " instrument, corrects_id, operator, reason, t_s) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    *original[:4],
                    json.dumps(values, sort_keys=True),
                    original[4],
                    original_id,
                    who,
                    why,
                    now,
                ),
            )
            new_id = int(cursor.lastrowid or 0)
            _append_audit(
                conn,
                now,
                who,
                "correct measurement",
                str(original_id),
                json.dumps({"new_id": new_id, "values": values}, sort_keys=True),
                why,
            )
            return new_id

        return self.call(correct)

    # --- runs ---------------------------------------------------------------------------------

    def begin_run(self, record: RunRecord) -> None:
        """Store a run and its first checkpoint before any output is turned on."""

        def begin(conn: sqlite3.Connection) -> int:
            if (
                conn.execute("SELECT 1 FROM cells WHERE cell_id = ?", (record.cell_id,)).fetchone()
                is None
            ):
                raise StorageError(f"cell {record.cell_id!r} is not stored; import it first")
            cursor = conn.execute(
                "INSERT INTO runs (run_id, channel_id, cell_id, recipe_name, recipe_version,"
                " recipe_hash, recipe_toml, instrument, instrument_serial, calibration_due,"
                " simulated, production, operator, started_t_s)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.run_id,
                    record.channel_id,
                    record.cell_id,
                    record.recipe_name,
                    record.recipe_version,
                    record.recipe_hash,
                    record.recipe_toml,
                    record.instrument,
                    record.instrument_serial,
                    record.calibration_due,
                    int(record.simulated),
                    int(record.production),
                    record.operator,
                    record.started_t_s,
                ),
            )
            pk = int(cursor.lastrowid or 0)
            conn.execute(
                "INSERT INTO run_progress (run_pk, state, step_index, updated_t_s)"
                " VALUES (?, 'starting', -1, ?)",
                (pk, record.started_t_s),
            )
            _append_audit(
                conn,
                record.started_t_s,
                record.operator,
                "start run",
                record.run_id,
                json.dumps(
                    {
                        "cell": record.cell_id,
                        "channel": record.channel_id,
                        "recipe": record.recipe_name,
                    },
                    sort_keys=True,
                ),
                "operator started a run",
            )
            # Runs in the writer thread, so the writer's run table needs no lock.
            self._runs[record.run_id] = _RunState(
                pk, record.cell_id, -1, None, "", 0.0, 0.0, -1, None, None, None, "starting"
            )
            return pk

        self.call(begin)

    def interrupted_runs(self) -> list[RunProgress]:
        """Runs without an end (a crash interrupted them), with their committed checkpoint."""
        with self.reader() as conn:
            rows = conn.execute(
                "SELECT r.run_id, r.channel_id, r.cell_id, r.recipe_name, p.state, p.step_index,"
                " p.step_start_t_s, p.resume_token, p.cum_ah, p.cum_wh, p.last_seq, p.last_t_s"
                " FROM runs r JOIN run_progress p USING (run_pk) WHERE r.outcome IS NULL"
                " ORDER BY r.run_pk"
            ).fetchall()
        return [RunProgress(*row) for row in rows]

    def run_progress(self, run_id: str) -> RunProgress | None:
        with self.reader() as conn:
            row = conn.execute(
                "SELECT r.run_id, r.channel_id, r.cell_id, r.recipe_name, p.state, p.step_index,"
                " p.step_start_t_s, p.resume_token, p.cum_ah, p.cum_wh, p.last_seq, p.last_t_s"
                " FROM runs r JOIN run_progress p USING (run_pk) WHERE r.run_id = ?",
                (run_id,),
            ).fetchone()
        return None if row is None else RunProgress(*row)

    def set_run_state(self, run_id: str, state: str, *, who: str, why: str) -> None:
        """Hold or release a run's checkpoint state (e.g. ``held`` after a crash), audited."""
        now = self.clock.now()

        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE run_progress SET state = ?, updated_t_s = ? WHERE run_pk ="
                " (SELECT run_pk FROM runs WHERE run_id = ?)",
                (state, now, run_id),
            )
            run = self._runs.get(run_id)
            if run is not None:
                run.state = state
            _append_audit(conn, now, who, f"run {state}", run_id, "", why)

        self.call(update)

    def samples(self, run_id: str) -> list[tuple[int, float, int, float, float, float | None]]:
        """All samples of a run: ``(seq, t_s, step_index, voltage_v, current_a, temperature_c)``."""
        with self.reader() as conn:
            row = conn.execute("SELECT run_pk FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return []
            first = row[0] << SEQ_BITS
            # A key range, not ``run_pk = ?``: the virtual column has no index.
            return conn.execute(
                "SELECT seq, t_s, step_index, voltage_v, current_a, temperature_c FROM samples"
                " WHERE sample_key BETWEEN ? AND ? ORDER BY sample_key",
                (first, first + SEQ_LIMIT - 1),
            ).fetchall()

    def open_followups(self) -> list[FollowUp]:
        """Follow-ups not done yet, earliest due first."""
        with self.reader() as conn:
            return open_followups(conn)

    def followups_due(self, before_t_s: float | None = None) -> list[tuple[str, str, float]]:
        """Open follow-ups ``(cell_id, kind, due_t_s)``, optionally only those due before a time."""
        with self.reader() as conn:
            rows = conn.execute(
                "SELECT cell_id, kind, due_t_s FROM followups WHERE done_run_pk IS NULL"
                " ORDER BY due_t_s"
            ).fetchall()
        return [r for r in rows if before_t_s is None or r[2] <= before_t_s]

    # --- intake checklist and grades (ADR 0009) -----------------------------------------------

    def record_intake(self, cell_id: str, facts: dict[str, bool], *, who: str, why: str) -> int:
        """Store the intake checklist answers of a cell (damage seen, traceable, calendar
        expired...) as a measurement row the grading gates read; audited."""
        now = self.clock.now()
        values = json.dumps(dict(sorted(facts.items())))

        def record(conn: sqlite3.Connection) -> int:
            if conn.execute("SELECT 1 FROM cells WHERE cell_id = ?", (cell_id,)).fetchone() is None:
                raise StorageError(f"cell {cell_id!r} is not stored; import it first")
            cursor = conn.execute(
                "INSERT INTO measurements (cell_id, kind, values_json, instrument, operator,"
                " reason, t_s) VALUES (?, 'intake_checklist', ?, 'operator', ?, ?, ?)",
                (cell_id, values, who, why, now),
            )
            _append_audit(conn, now, who, "intake checklist", cell_id, values, why)
            return int(cursor.lastrowid or 0)

        return self.call(record)

    def record_grade(self, grade: GradeEntry, *, who: str, why: str) -> int:
        """Store one grade (see :meth:`record_grades`); returns its row ID."""
        return self.record_grades([grade], who=who, why=why)[0]

    def record_grades(self, grades: Sequence[GradeEntry], *, who: str, why: str) -> list[int]:
        """Store grades in one transaction, one audit row each; each new row supersedes the
        cell's previous grade (which stays). Returns the new row IDs."""
        now = self.clock.now()

        def record(conn: sqlite3.Connection) -> list[int]:
            ids: list[int] = []
            for entry in grades:
                if (
                    conn.execute(
                        "SELECT 1 FROM cells WHERE cell_id = ?", (entry.cell_id,)
                    ).fetchone()
                    is None
                ):
                    raise StorageError(f"cell {entry.cell_id!r} is not stored; cannot grade it")
                previous = conn.execute(
                    "SELECT id FROM grades WHERE cell_id = ? ORDER BY id DESC LIMIT 1",
                    (entry.cell_id,),
                ).fetchone()
                cursor = conn.execute(
                    "INSERT INTO grades (cell_id, run_ids, profile_name, profile_version,"
                    " profile_sha256, grade, bin, use, reason, explanation_json, operator,"
                    " created_t_s, supersedes_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        entry.cell_id,
                        json.dumps(list(entry.run_ids)),
                        entry.profile_name,
                        entry.profile_version,
                        entry.profile_sha256,
                        entry.grade,
                        entry.bin,
                        entry.use,
                        entry.reason,
                        json.dumps(entry.explanation, sort_keys=True, allow_nan=False),
                        who,
                        now,
                        None if previous is None else previous[0],
                    ),
                )
                grade_id = int(cursor.lastrowid or 0)
                ids.append(grade_id)
                _append_audit(
                    conn,
                    now,
                    who,
                    "grade cell",
                    entry.cell_id,
                    json.dumps(
                        {
                            "grade_id": grade_id,
                            "grade": entry.grade,
                            "profile": f"{entry.profile_name} {entry.profile_version}",
                            "profile_sha256": entry.profile_sha256,
                            "runs": list(entry.run_ids),
                        },
                        sort_keys=True,
                    ),
                    why,
                )
            return ids

        return self.call(record)

    def grades_of(self, cell_id: str) -> list[StoredGrade]:
        """Every grade the cell was ever given, oldest first."""
        with self.reader() as conn:
            rows = conn.execute(
                f"SELECT {_GRADE_COLUMNS} FROM grades WHERE cell_id = ? ORDER BY id", (cell_id,)
            ).fetchall()
        return [_stored_grade(row) for row in rows]

    def latest_grades(self, lot: str | None = None) -> dict[str, StoredGrade]:
        """The current (latest) grade of each graded cell, of ``lot`` when given."""
        query = (
            f"SELECT {_GRADE_COLUMNS} FROM grades WHERE id IN"
            " (SELECT max(id) FROM grades GROUP BY cell_id)"
        )
        params: tuple[str, ...] = ()
        if lot is not None:
            query += " AND cell_id IN (SELECT cell_id FROM cells WHERE lot = ?)"
            params = (lot,)
        with self.reader() as conn:
            rows = conn.execute(query + " ORDER BY cell_id", params).fetchall()
        return {row[1]: _stored_grade(row) for row in rows}


@dataclass(frozen=True)
class GradeEntry:
    """A grade to store: ``grade`` is the outcome (bin name, REJECT, QUARANTINE, RETEST), ``bin``
    the bin name when a bin was confirmed ('' when a gate decided), ``explanation`` a JSON object
    (every rule with value, threshold, margin and verdict, and the figures)."""

    cell_id: str
    run_ids: tuple[str, ...]
    profile_name: str
    profile_version: str
    profile_sha256: str
    grade: str
    bin: str
    use: str
    reason: str
    explanation: dict[str, Any]


@dataclass(frozen=True)
class StoredGrade(GradeEntry):
    """A grade as stored: its row ID, who graded, when (station clock s) and the grade it
    superseded (None for the cell's first)."""

    id: int = 0
    operator: str = ""
    created_t_s: float = 0.0
    supersedes_id: int | None = None


_GRADE_COLUMNS = (
    "id, cell_id, run_ids, profile_name, profile_version, profile_sha256, grade, bin, use,"
    " reason, explanation_json, operator, created_t_s, supersedes_id"
)


def _stored_grade(row: Sequence[Any]) -> StoredGrade:
    return StoredGrade(
        cell_id=row[1],
        run_ids=tuple(json.loads(row[2])),
        profile_name=row[3],
        profile_version=row[4],
        profile_sha256=row[5],
        grade=row[6],
        bin=row[7],
        use=row[8],
        reason=row[9],
        explanation=json.loads(row[10]),
        id=int(row[0]),
        operator=row[11],
        created_t_s=float(row[12]),
        supersedes_id=None if row[13] is None else int(row[13]),
    )


def _date_of(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s, dt.UTC).date().isoformat()


def _serial_of(instrument: str) -> str:
    """The serial from an identity description ``make model s/n SERIAL fw ...``."""
    parts = instrument.split()
    if "s/n" in parts:
        index = parts.index("s/n")
        if index + 1 < len(parts):
            return parts[index + 1]
    return instrument


@dataclass(frozen=True)
class FollowUp:
    """A scheduled re-measurement: ``due_t_s`` and ``created_t_s`` on the station clock (s)."""

    cell_id: str
    kind: str
    due_t_s: float
    created_t_s: float
    run_id: str  # the run that scheduled it


def open_followups(
    conn: sqlite3.Connection, cell_ids: Sequence[str] | None = None
) -> list[FollowUp]:
    """Follow-ups not done yet (of ``cell_ids`` when given), earliest due first."""
    rows = conn.execute(
        "SELECT f.cell_id, f.kind, f.due_t_s, f.created_t_s, r.run_id FROM followups f"
        " JOIN runs r ON r.run_pk = f.run_pk WHERE f.done_run_pk IS NULL"
        " ORDER BY f.due_t_s, f.id"
    ).fetchall()
    wanted = None if cell_ids is None else set(cell_ids)
    return [
        FollowUp(str(c), str(k), float(d), float(t), str(r))
        for c, k, d, t, r in rows
        if wanted is None or c in wanted
    ]


def latest_record_t_s(conn: sqlite3.Connection) -> float | None:
    """The time of the database's latest record (run start or end, measurement, audit row, on
    the clock that wrote them), None for an empty database."""
    row = conn.execute(
        "SELECT MAX(t) FROM (SELECT MAX(COALESCE(ended_t_s, started_t_s)) AS t FROM runs"
        " UNION ALL SELECT MAX(t_s) FROM measurements UNION ALL SELECT MAX(t_s) FROM audit)"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def integrity_check(path: str | Path) -> str:
    conn = _connect(str(path))
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()

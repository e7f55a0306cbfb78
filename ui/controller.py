"""The GUI's side of the engine: events in, commands out, all blocking work in workers.

:class:`StationController` owns the :class:`~ui.bridge.EventBridge`, the worker pool and the
:class:`~ui.state.BenchState`. Windows listen to its signals and call its methods; none of its
methods block the GUI thread.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6 import QtCore

from station.cells import Cell, CellDataError, read_lot_file
from station.events import Event, RunEnded, RunStarted, Sample
from station.storage import FollowUp
from ui.batch_export import Outcome, PassportRequest
from ui.bridge import EventBridge
from ui.engine_api import (
    EngineLike,
    FollowUpsLoader,
    GateResult,
    GradeProvider,
    GradeView,
    HistoryLoader,
    Screener,
)
from ui.followups import FOLLOW_UP_RECIPE, FollowUpRow
from ui.grading import MatchingView
from ui.refcheck import RefCheckResult, ReferenceChecker
from ui.state import BenchState, ChannelState
from ui.workers import Workers

FOLLOWUPS_REFRESH_MS = 60_000
"""How often the open follow-ups are re-read (ms): "due in" is shown to the hour."""


def _identity_text(identity: Any) -> str:
    """``make model serial firmware`` of a drivers.identity.InstrumentIdentity, or its str()."""
    parts = [getattr(identity, key, "") for key in ("make", "model", "serial", "firmware")]
    return " ".join(str(p) for p in parts if p) or str(identity)


class StationController(QtCore.QObject):
    channels_changed = QtCore.Signal(list)
    """Channel IDs whose view changed since the last signal (GUI thread, at most ~10 Hz)."""
    samples_arrived = QtCore.Signal(str, list)
    run_started = QtCore.Signal(str)
    run_ended = QtCore.Signal(str, str)
    """(channel_id, cell_id) of a run that ended, whatever its outcome."""
    alarm = QtCore.Signal(str)
    grade_ready = QtCore.Signal(object)
    history_ready = QtCore.Signal(str, list)
    status = QtCore.Signal(str)
    intake_result = QtCore.Signal(str, bool)
    stop_all_finished = QtCore.Signal(bool, str)
    instrument_result = QtCore.Signal(str, str)
    reference_checked = QtCore.Signal(object)
    """A :class:`ui.refcheck.RefCheckResult`."""
    reference_failed = QtCore.Signal(str)
    reference_history = QtCore.Signal(list, str)
    """(stored checks newest first, when the next check is due in words)."""
    stored_grades = QtCore.Signal(list)
    """Every cell's current grade as stored (list of GradeView)."""
    matching_ready = QtCore.Signal(list, int, int)
    """(lines in words, number of groups, number of cells not matched)."""
    exported = QtCore.Signal(str)
    """What the export wrote, or why it failed, in words."""
    lots_ready = QtCore.Signal(list)
    """Names of the lots with stored cells."""
    batch_exported = QtCore.Signal(object)
    """The :class:`ui.batch_export.Outcome` of a passport export or lot report."""
    followups_ready = QtCore.Signal(list)
    """Open follow-ups (list of :class:`ui.followups.FollowUpRow`), earliest due first."""
    remeasure_failed = QtCore.Signal(str, str)
    """(cell_id, why) when a follow-up re-measurement did not start."""
    connected = QtCore.Signal(dict)
    """instrument name -> identity text, once the engine has opened and identified them."""

    def __init__(
        self,
        engine: EngineLike | None,
        channel_ids: list[str],
        *,
        recipe: Any = None,
        grade_provider: GradeProvider | None = None,
        history_loader: HistoryLoader | None = None,
        screener: Screener | None = None,
        store_cells: Callable[[list[Cell]], object] | None = None,
        estimate_s: Callable[[str, str], float | None] | None = None,
        instrument_test: Callable[[str], str] | None = None,
        reference_checker: ReferenceChecker | None = None,
        grades_loader: Callable[[], list[GradeView]] | None = None,
        matcher: Callable[[int, int], MatchingView] | None = None,
        exporter: Callable[[str], list[Path]] | None = None,
        lots_loader: Callable[[], list[str]] | None = None,
        passport_exporter: Callable[[PassportRequest], Outcome] | None = None,
        lot_reporter: Callable[[str, str], Outcome] | None = None,
        record_intake: Callable[[str, dict[str, bool]], object] | None = None,
        followups_loader: FollowUpsLoader | None = None,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self.recipe = recipe
        self.grade_provider = grade_provider
        self.history_loader = history_loader
        self.screener = screener
        self.store_cells = store_cells
        self.estimate_s = estimate_s
        """(cell_id, recipe_name) -> estimated run time in seconds (blocking; in a worker)."""
        self.instrument_test = instrument_test
        """instrument name -> result in words (opens, identifies, reads; blocking; in a worker)."""
        self.reference_checker = reference_checker
        """Measures and stores the daily reference-cell check (blocking; in a worker)."""
        self.grades_loader = grades_loader
        """Reads every cell's current stored grade (blocking; in a worker)."""
        self.matcher = matcher
        """(series, parallel) -> matched groups of the bench's lot (blocking; in a worker)."""
        self.record_intake = record_intake
        """(cell_id, checklist answers) -> stored (blocking; in a worker, after the screen)."""
        self.exporter = exporter
        """folder -> files written with every stored grade (blocking; in a worker)."""
        self.lots_loader = lots_loader
        """-> names of the lots with stored cells (blocking; in a worker)."""
        self.passport_exporter = passport_exporter
        """request -> signed passport files written, in words (blocking; in a worker)."""
        self.lot_reporter = lot_reporter
        """(lot, folder) -> batch report and certificates written, in words (blocking; in a
        worker)."""
        self.followups_loader = followups_loader
        """-> (open follow-ups, station clock now in s) (blocking; in a worker)."""
        self._followups_loading = False
        self._followups_stale = False
        self.lot: dict[str, Cell] = {}
        """Cells of the imported lot(s) by ID; a scan of one of them shows its lot and rating."""
        self.state = BenchState(channel_ids)
        self.bridge = EventBridge(self)
        self.workers = Workers(parent=self)
        self.assigned: dict[str, str] = {}
        """channel_id -> cell_id scanned and waiting to start."""
        self.quarantine: list[str] = []
        self.screening: dict[str, str] = {}
        """channel_id -> cell_id being screened there (reserved until the gate result)."""
        self.positions: dict[str, str] = {}
        """cell_id -> channel_id whose fixture already holds it (a placed lot)."""
        self._dirty: set[str] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self.bridge.events_arrived.connect(self._on_events)
        self._refresh = QtCore.QTimer(self)
        self._refresh.setInterval(100)
        self._refresh.timeout.connect(self._emit_dirty)
        self._refresh.start()
        self.followups_timer = QtCore.QTimer(self)
        """Re-reads the follow-ups: their due status changes with time, not only with runs."""
        self.followups_timer.setInterval(FOLLOWUPS_REFRESH_MS)
        self.followups_timer.timeout.connect(self.load_followups)
        if followups_loader is not None:
            self.followups_timer.start()
        if engine is not None:
            self._unsubscribe = engine.subscribe(self.bridge.post)

    @QtCore.Slot(list)
    def _on_events(self, batch: list[Event]) -> None:
        samples: dict[str, list[Sample]] = defaultdict(list)
        for event in batch:
            if isinstance(event, Sample):
                if self.state.channel(event.channel_id).run_id == event.run_id:
                    samples[event.channel_id].append(event)
                self.state.apply(event)
                self._dirty.add(event.channel_id)
                continue
            if samples.get(event.channel_id):
                self.samples_arrived.emit(event.channel_id, samples.pop(event.channel_id))
            alarms_before = len(self.state.alarms)
            self.state.apply(event)
            self._dirty.add(event.channel_id)
            for message in self.state.alarms[alarms_before:]:
                self.alarm.emit(message)
            if isinstance(event, RunStarted):
                self.assigned.pop(event.channel_id, None)
                self.run_started.emit(event.channel_id)
                self._request_estimate(event)
                self.load_followups()
            elif isinstance(event, RunEnded):
                # A run that stopped early is graded too (QUARANTINE or RETEST with its reason,
                # station.evaluation.stopped_grade), so every measured cell shows a decision.
                self.request_grade(event.run_id)
                cell_id = self.state.channel(event.channel_id).cell_id
                self.run_ended.emit(event.channel_id, cell_id)
                self.load_followups()
        for channel_id, channel_samples in samples.items():
            self.samples_arrived.emit(channel_id, channel_samples)

    @QtCore.Slot()
    def _emit_dirty(self) -> None:
        if self._dirty:
            changed = sorted(self._dirty)
            self._dirty.clear()
            self.channels_changed.emit(changed)

    def request_grade(self, run_id: str) -> None:
        if self.grade_provider is None:
            return
        if self.workers.closed:
            # The window is closing and its runs end as the engine stops: the run stays stored
            # and `station grade` grades it later.
            return
        self.workers.submit(
            self.grade_provider,
            run_id,
            on_done=self._on_grade,
            on_error=lambda exc: self.status.emit(f"Grading {run_id} failed: {exc}"),
        )

    def _on_grade(self, grade: GradeView | None) -> None:
        if grade is None:
            return
        view = self.state.set_grade(grade)
        if view is not None:
            self._dirty.add(view.channel_id)
        self.grade_ready.emit(grade)

    def connect_bench(self, timeout_s: float = 60.0) -> None:
        """Open and identify every instrument in a worker; ``connected`` reports the identities."""
        connect = getattr(self.engine, "connect", None)
        if connect is None:
            return
        self.status.emit("Connecting instruments…")

        def done(identities: dict[str, Any]) -> None:
            texts = {name: _identity_text(identity) for name, identity in identities.items()}
            self.status.emit(f"Connected: {', '.join(sorted(texts))}")
            self.connected.emit(texts)

        def failed(exc: BaseException) -> None:
            message = f"Connecting the bench failed: {exc}"
            self.status.emit(message)
            self.alarm.emit(message)

        self.workers.submit(connect, timeout_s, on_done=done, on_error=failed)

    def _request_estimate(self, event: RunStarted) -> None:
        if self.estimate_s is None:
            return

        def done(seconds: float | None) -> None:
            view = self.state.channel(event.channel_id)
            if view.run_id == event.run_id and seconds is not None:
                view.estimated_duration_s = seconds
                self._dirty.add(event.channel_id)

        self.workers.submit(
            self.estimate_s,
            event.cell_id,
            event.recipe_name,
            on_done=done,
            on_error=lambda _e: None,
        )

    def test_instrument(self, name: str) -> None:
        if self.instrument_test is None:
            self.instrument_result.emit(name, "no connection test configured")
            return
        self.workers.submit(
            self.instrument_test,
            name,
            on_done=lambda text: self.instrument_result.emit(name, str(text)),
            on_error=lambda exc: self.instrument_result.emit(name, f"FAILED: {exc}"),
        )

    def load_stored_grades(self) -> None:
        if self.grades_loader is None:
            return
        self.workers.submit(
            self.grades_loader,
            on_done=self.stored_grades.emit,
            on_error=lambda exc: self.status.emit(f"Reading stored grades failed: {exc}"),
        )
        if self.lots_loader is not None:
            self.workers.submit(
                self.lots_loader,
                on_done=self.lots_ready.emit,
                on_error=lambda exc: self.status.emit(f"Reading lots failed: {exc}"),
            )

    def match(self, series: int, parallel: int) -> None:
        """Matched groups for an SsPp pack, computed in a worker."""
        if self.matcher is None:
            self.matching_ready.emit(["no storage attached: nothing to match"], 0, 0)
            return
        self.workers.submit(
            self.matcher,
            series,
            parallel,
            on_done=lambda view: self.matching_ready.emit(
                list(view.lines), view.groups, view.unmatched
            ),
            on_error=lambda exc: self.matching_ready.emit([f"Matching failed: {exc}"], 0, 0),
        )

    def export(self, folder: str) -> None:
        """Write the stored grades to ``folder`` in a worker."""
        if self.exporter is None:
            self.exported.emit("no storage attached: nothing to export")
            return
        self.workers.submit(
            self.exporter,
            folder,
            on_done=lambda paths: self.exported.emit(
                "Exported: " + ", ".join(str(p) for p in paths)
            ),
            on_error=lambda exc: self.exported.emit(f"Export failed: {exc}"),
        )

    def export_passports(self, request: PassportRequest) -> None:
        """Write the signed passport exports of ``request`` in a worker."""
        self._batch_job(self.passport_exporter, "passport export", request)

    def report_lot(self, lot: str, folder: str) -> None:
        """Write the lot's batch report, certificates and signed records in a worker."""
        self._batch_job(self.lot_reporter, "lot report", lot, folder)

    def _batch_job(self, job: Callable[..., Outcome] | None, what: str, *args: Any) -> None:
        if job is None:
            self.batch_exported.emit(Outcome(False, f"no storage attached: no {what}"))
            return
        self.workers.submit(
            job,
            *args,
            on_done=self.batch_exported.emit,
            # The jobs turn expected failures into an Outcome; this is for the unexpected.
            on_error=lambda exc: self.batch_exported.emit(
                Outcome(False, f"{what} failed: {type(exc).__name__}: {exc}")
            ),
        )

    def run_reference_check(self, cell_id: str) -> None:
        """Measure reference cell ``cell_id`` in a worker, store it, then refresh the history."""
        checker = self.reference_checker
        if checker is None:
            self.reference_failed.emit("no reference cells configured")
            return
        self.status.emit(f"Reference check of {cell_id}…")

        def done(result: RefCheckResult) -> None:
            self.reference_checked.emit(result)
            self.status.emit(result.summary())
            self.refresh_reference_history()

        self.workers.submit(
            checker.check,
            cell_id,
            on_done=done,
            on_error=lambda exc: self.reference_failed.emit(f"Reference check failed: {exc}"),
        )

    def refresh_reference_history(self) -> None:
        checker = self.reference_checker
        if checker is None:
            return
        self.workers.submit(
            checker.history,
            on_done=lambda pair: self.reference_history.emit(*pair),
            on_error=lambda exc: self.status.emit(f"Reading reference checks failed: {exc}"),
        )

    def load_history(self, channel_id: str) -> None:
        view = self.state.channel(channel_id)
        if self.history_loader is None or not view.run_id:
            self.status.emit("No stored history for this channel")
            return
        run_id = view.run_id
        self.status.emit(f"Loading history of {run_id}…")
        self.workers.submit(
            self.history_loader,
            run_id,
            channel_id,
            on_done=lambda samples: self.history_ready.emit(channel_id, list(samples)),
            on_error=lambda exc: self.status.emit(f"Loading history failed: {exc}"),
        )

    def where_is(self, cell_id: str) -> str | None:
        """Where a scanned cell already is (re-scan guard), or None when it is new."""
        for channel_id, assigned in self.assigned.items():
            if assigned == cell_id:
                return f"assigned to {channel_id}"
        for channel_id, screened in self.screening.items():
            if screened == cell_id:
                return f"being screened on {channel_id}"
        for view in self.state.channels.values():
            if view.cell_id == cell_id and view.state is not ChannelState.IDLE:
                return f"on {view.channel_id} ({view.state.value})"
        if cell_id in self.quarantine:
            return "in quarantine"
        return None

    def intake(self, cell_id: str, facts: dict[str, bool] | None = None) -> None:
        """Screen a scanned cell on the channel it goes to (worker), then assign it there or send
        it to quarantine. The channel is the one already holding the cell (a placed lot), else
        the first free one; it is reserved while the screen runs so a second scan cannot take it.
        ``facts`` (the intake checklist) are stored after the screen has found the cell.
        """
        channel_id = self._channel_for(cell_id)
        if channel_id is None:
            self.intake_result.emit(f"{cell_id}: no free channel, set aside", False)
            return
        if self.screener is None:
            self._place(cell_id, channel_id, GateResult(True, "no intake screen configured"))
            return
        self.screening[channel_id] = cell_id
        self.status.emit(f"Screening {cell_id} on {channel_id}…")

        def failed(exc: BaseException) -> None:
            self.screening.pop(channel_id, None)
            self.intake_result.emit(f"{cell_id}: screen on {channel_id} failed: {exc}", False)

        screener, record = self.screener, self.record_intake

        def screen() -> GateResult:
            result = screener(cell_id, channel_id)
            if record is not None and facts is not None:
                record(cell_id, facts)
            return result

        self.workers.submit(
            screen,
            on_done=lambda result: self._place(cell_id, channel_id, result),
            on_error=failed,
        )

    def _channel_for(self, cell_id: str) -> str | None:
        taken = set(self.assigned) | set(self.screening)
        free = [c for c in self.state.free_channels() if c not in taken]
        placed = self.positions.get(cell_id)
        if placed in free:
            return placed
        return free[0] if free else None

    def import_lot(self, path: str) -> None:
        """Read (and store, when storage is attached) a lot file in a worker; all or nothing."""

        def load() -> list[Cell]:
            cells = read_lot_file(path)
            if self.store_cells is not None:
                self.store_cells(cells)
            return cells

        def done(cells: list[Cell]) -> None:
            self.lot.update((cell.cell_id, cell) for cell in cells)
            self.intake_result.emit(f"Lot imported: {len(cells)} cells from {path}", True)

        def failed(exc: BaseException) -> None:
            known = isinstance(exc, CellDataError | OSError | ValueError)
            self.intake_result.emit(f"Lot not imported: {exc if known else repr(exc)}", False)

        self.workers.submit(load, on_done=done, on_error=failed)

    def place_lot(self, placed: list[tuple[Cell, str | None]], *, assign: bool = True) -> int:
        """Cells already sitting in channels (a simulated bench's lot): remember them and where
        they sit and, with ``assign``, assign each to its channel, ready for Enter to start
        (without, each waits for its scan and screen). Returns how many sit in a channel."""
        count = 0
        for cell, channel_id in placed:
            self.lot[cell.cell_id] = cell
            if channel_id is None or channel_id not in self.state.channels:
                continue
            self.positions[cell.cell_id] = channel_id
            if not assign:
                count += 1
                continue
            self.assigned[channel_id] = cell.cell_id
            self.state.channel(channel_id).cell_id = cell.cell_id
            self._dirty.add(channel_id)
            count += 1
        return count

    def describe_cell(self, cell_id: str) -> str:
        cell = self.lot.get(cell_id)
        if cell is None:
            return "not in an imported lot"
        rating = f"{cell.rated_capacity_ah:g} Ah" if cell.rated_capacity_ah else "no rating"
        return f"lot {cell.lot or '?'}, {cell.chemistry or '?'} {rating}"

    def _place(self, cell_id: str, channel_id: str, gate: GateResult) -> None:
        self.screening.pop(channel_id, None)
        if gate.cell is not None and gate.cell.lot:
            self.lot[cell_id] = gate.cell
        if not gate.passed:
            self.quarantine.append(cell_id)
            self.intake_result.emit(f"{cell_id}: {gate.summary} -> QUARANTINE", False)
            return
        if channel_id in self.assigned or channel_id not in self.state.free_channels():
            self.intake_result.emit(f"{cell_id}: {gate.summary}; {channel_id} is taken", False)
            return
        self.assigned[channel_id] = cell_id
        view = self.state.channel(channel_id)
        view.cell_id = cell_id
        self._dirty.add(channel_id)
        self.intake_result.emit(
            f"{cell_id} ({self.describe_cell(cell_id)}): {gate.summary} -> {channel_id}", True
        )
        # A scanned cell with an open follow-up can now be re-measured on this channel.
        self.load_followups()

    def start_assigned(self) -> None:
        if not self.assigned:
            self.status.emit("No cells assigned; scan a cell first")
            return
        for channel_id, cell_id in list(self.assigned.items()):
            self.start_run(channel_id, cell_id)

    def start_run(
        self,
        channel_id: str,
        cell_id: str,
        recipe: Any = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Start ``recipe`` (default: the recipe chosen for new runs) on ``cell_id`` in
        ``channel_id`` in a worker; ``on_error`` also hears a refused start."""
        if self.engine is None:
            self.status.emit("No bench connected")
            return
        self.status.emit(f"Starting {cell_id} on {channel_id}…")

        def failed(exc: BaseException) -> None:
            self._command_failed(f"start on {channel_id}", exc)
            if on_error is not None:
                on_error(exc)

        self.workers.submit(
            self.engine.start_run,
            channel_id,
            cell_id,
            self.recipe if recipe is None else recipe,
            on_done=lambda run_id: self.status.emit(f"Run {run_id} started on {channel_id}"),
            on_error=failed,
        )

    def channel_of(self, cell_id: str) -> str | None:
        """The channel whose fixture holds ``cell_id`` (placed, assigned or last run there)."""
        for channel_id, assigned in self.assigned.items():
            if assigned == cell_id:
                return channel_id
        placed = self.positions.get(cell_id)
        if placed is not None:
            return placed
        for view in self.state.channels.values():
            if view.cell_id == cell_id:
                return view.channel_id
        return None

    def load_followups(self) -> None:
        """Read the open follow-ups in a worker; ``followups_ready`` shows them with the channel
        holding each cell (resolved here, in the GUI thread, from the bench state). One read at
        a time: asks while one is under way (a burst of run starts) make one more read after it."""
        if self.followups_loader is None or self.workers.closed:
            return
        if self._followups_loading:
            self._followups_stale = True
            return
        self._followups_loading = True

        def finished() -> None:
            self._followups_loading = False
            if self._followups_stale:
                self._followups_stale = False
                self.load_followups()

        def done(result: tuple[Sequence[FollowUp], float]) -> None:
            followups, now_t_s = result
            free = set(self.state.free_channels())
            rows = []
            for followup in followups:
                channel_id = self.channel_of(followup.cell_id) or ""
                busy = ""
                if channel_id and channel_id not in free:
                    busy = self.state.channel(channel_id).state.value
                rows.append(
                    FollowUpRow(
                        followup.cell_id,
                        followup.kind,
                        followup.run_id,
                        followup.due_t_s,
                        now_t_s,
                        channel_id,
                        busy,
                    )
                )
            self.followups_ready.emit(rows)
            finished()

        def failed(exc: BaseException) -> None:
            self.status.emit(f"Reading follow-ups failed: {exc}")
            finished()

        self.workers.submit(self.followups_loader, on_done=done, on_error=failed)

    def remeasure(self, cell_id: str, channel_id: str) -> None:
        """Start the follow-up recipe on ``cell_id`` in ``channel_id`` (the channel view's start
        path); its run's OCV closes the due follow-up and the run's end refreshes the list."""
        self.start_run(
            channel_id,
            cell_id,
            FOLLOW_UP_RECIPE,
            on_error=lambda exc: self.remeasure_failed.emit(
                cell_id, f"Re-measure of {cell_id} on {channel_id} failed: {exc}"
            ),
        )

    def pause(self, channel_id: str) -> None:
        self._channel_command("pause", channel_id, paused=True)

    def resume(self, channel_id: str) -> None:
        self._channel_command("resume", channel_id, paused=False)

    def abort(self, channel_id: str) -> None:
        self._channel_command("abort", channel_id, paused=None)

    def _channel_command(self, name: str, channel_id: str, *, paused: bool | None) -> None:
        if self.engine is None:
            return

        def done(_result: Any) -> None:
            if paused is not None:
                self.state.set_paused(channel_id, paused)
                self._dirty.add(channel_id)
            self.status.emit(f"{name} {channel_id}: done")

        self.workers.submit(
            getattr(self.engine, name),
            channel_id,
            on_done=done,
            on_error=lambda exc: self._command_failed(f"{name} {channel_id}", exc),
        )

    def _command_failed(self, what: str, exc: BaseException) -> None:
        self.status.emit(f"{what} failed: {exc}")
        self.intake_result.emit(f"{what} failed: {exc}", False)

    def stop_all(self) -> None:
        """Emergency stop: every channel, every output off, on the reserved worker thread."""
        if self.engine is None:
            self.stop_all_finished.emit(False, "no bench connected")
            return
        self.status.emit("STOP ALL sent…")
        self.workers.submit(
            self.engine.stop_all,
            urgent=True,
            on_done=lambda _r: self.stop_all_finished.emit(
                True, "All channels stopped, outputs off"
            ),
            on_error=lambda exc: self.stop_all_finished.emit(False, f"STOP ALL FAILED: {exc}"),
        )

    def shutdown(self, *, stop_runs: bool, timeout_s: float = 10.0) -> bool:
        """Stop taking events, optionally stop all runs, and end every worker; True if clean.

        Called while the window closes; it may block up to ``timeout_s`` because the window is
        going away anyway and leaving threads running would be worse. A second call (a window
        closed again) finds everything shut and returns True.
        """
        if self.workers.closed:
            return True
        self._refresh.stop()
        self.followups_timer.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        clean = True
        if stop_runs and self.engine is not None:
            future = self.workers.submit(self.engine.stop_all, urgent=True)
            try:
                future.result(timeout=timeout_s)
            except Exception as exc:  # noqa: BLE001 - reported, shutdown goes on
                self.status.emit(f"stop all during shutdown failed: {exc}")
                clean = False
        engine_shutdown = getattr(self.engine, "shutdown", None)
        if engine_shutdown is not None:
            future = self.workers.submit(engine_shutdown, timeout_s)
            try:
                future.result(timeout=timeout_s + 1)
            except Exception as exc:  # noqa: BLE001 - reported, shutdown goes on
                self.status.emit(f"engine shutdown failed: {exc}")
                clean = False
        return self.workers.shutdown(timeout_s) and clean

"""The station engine: instrument worker threads, runs, and an event fan-out.

One engine serves the GUI, the headless CLI and simulator mode. Public API (thread-safe; every
call may come from any thread, e.g. the GUI thread, and never blocks on an instrument)::

    engine = Engine(bench, storage, clock, connector=None, production=False, operator="op")
    engine.connect() -> dict[str, InstrumentIdentity]   # opens + identifies every instrument
    unsubscribe = engine.subscribe(callback)            # callback(event) from worker threads
    unsubscribe = engine.subscribe_blocks(callback)     # callback(SampleBlock), one per poll
    run_id = engine.start_run(channel_id, cell_id, recipe)   # Recipe or shipped recipe name
    results = engine.start_runs([(channel_id, cell_id, recipe), ...])  # many, queued together
    engine.pause(channel_id); engine.resume(channel_id); engine.abort(channel_id, reason)
    engine.stop_all(reason)                             # abort every run: outputs off
    engine.snapshot() -> dict[str, ChannelSnapshot]     # latest state per channel
    engine.measure_screen(channel_id, timeout_s) -> ScreenReading   # ACIR + OCV (blocks)
    engine.resume_after_crash() -> list[RunProgress]    # hold interrupted runs (outputs off)
    engine.continue_run(run_id) / engine.close_run(run_id, reason)   # the operator's decision
    engine.shutdown(timeout_s)                          # stop everything, join, close

``measure_screen`` is the one call that blocks its caller: it waits (up to a timeout) for the
channel's impedance meter to answer, so a GUI calls it from a background thread.

Threads: one worker per instrument connection. All channels of a cabinet share their cabinet's
worker, which polls each active channel once per poll period (:class:`Sequencer.tick`); ACIR and
EIS meters each have their own worker serving measurement requests (a sequencer waits for the
reading without blocking its cabinet). Commands (start, pause, abort) are queued to the owning
worker and executed between ticks, so no two threads ever talk to one instrument. A meter that
several channels share reaches a channel's cell through that channel's switch route
(``acir_route``/``eis_route``): the meter's worker has the switch's worker close the route, measures
and has it open every relay again, holding the switch's lock throughout; a shared meter without a
route is refused at pre-start.

Events (``station.events``) go to every subscriber in the worker thread that produced them;
callbacks must be quick and must not raise (a raising subscriber is logged and kept). Storage
sees every event before any subscriber does. The samples of one poll of a channel reach storage
as one :class:`~station.events.SampleBlock` (the ingest path: the writer inserts from columns),
then block subscribers get the block and event subscribers each :class:`Sample`; a poll's
samples are delivered before any other event of the same poll, so order is kept.

``start_run`` runs the static pre-start checks synchronously and raises
:class:`~station.sequencer.PrestartRefused` naming every cause; the OCV/temperature probe runs
in the worker and a refusal there ends the run with outcome ABORTED and reason ``refused: ...``.

Instruments are opened through a :class:`Connector`; the default uses ``drivers.registry``
(``open_instrument(driver, address, settings, clock=clock)``). A cabinet object provides
``channel(hw_channel)``; a single-channel source (Keithley) is itself the CyclerChannel.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from drivers.identity import InstrumentIdentity
from drivers.readings import AcirReading, EisSweep, ReadingStatus
from station.cells import Cell, CellDataError
from station.clock import Clock, ScaledClock, SystemClock
from station.config import SWITCH_DRIVERS, BenchConfig, InstrumentConfig
from station.events import (
    Event,
    Fault,
    LimitTripped,
    MeasurementTaken,
    RunEnded,
    RunOutcome,
    RunStarted,
    Sample,
    SampleBlock,
    StepStarted,
)
from station.instruments import CyclerChannel, RoundPrefetcher
from station.recipes import (
    MeasureOp,
    Recipe,
    RunContext,
    expand_step,
    loads_recipe,
    shipped_recipe,
)
from station.sequencer import (
    PrestartRefused,
    ResumePoint,
    Sequencer,
    derive_limits,
    prestart_checks,
)
from station.storage import RunProgress, RunRecord, Storage

log = logging.getLogger(__name__)
_SWITCH_TIMEOUT_S = 60.0  # wall s for one route close/open (its driver has its own read timeout)
T = TypeVar("T")
E = TypeVar("E")


class EngineError(RuntimeError):
    """A request the engine cannot carry out (unknown channel, channel busy, not connected)."""


class Connector(Protocol):
    """Opens one configured instrument (in the worker thread that will own it)."""

    def open(self, config: InstrumentConfig) -> Any: ...


class RegistryConnector:
    """Opens instruments through ``drivers.registry.open_instrument`` (with the station clock)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def open(self, config: InstrumentConfig) -> Any:
        registry = importlib.import_module("drivers.registry")
        return registry.open_instrument(
            config.driver, config.address, dict(config.settings), clock=self.clock
        )


@dataclass(frozen=True)
class ChannelSnapshot:
    """What a live view shows for one channel (latest values, no history)."""

    channel_id: str
    state: str = "idle"  # idle, running, paused, held, tripped, faulted, aborted, completed
    run_id: str | None = None
    cell_id: str | None = None
    recipe_name: str | None = None
    step_index: int | None = None
    step_label: str = ""
    voltage_v: float | None = None
    current_a: float | None = None
    temperature_c: float | None = None
    t_s: float | None = None
    samples: int = 0
    message: str = ""


@dataclass(frozen=True)
class ScreenReading:
    """An intake screen of the cell on a channel's fixture: ACIR at ``frequency_hz`` and OCV.

    ``acir_ohm`` (ohm) and ``ocv_v`` (V) are ``None`` unless the meter gave a number (``status``
    says why not: over range, no contact, reversed). ``t_s`` is the station clock time (s) of the
    reading; ``instrument`` names the meter (``make model serial firmware``).
    """

    channel_id: str
    status: ReadingStatus
    acir_ohm: float | None
    ocv_v: float | None
    frequency_hz: float
    t_s: float
    instrument: str


class EventBus(Generic[E]):
    """Thread-safe fan-out: ``publish`` calls every subscriber in the publishing thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[Callable[[E], None], ...] = ()

    def subscribe(self, callback: Callable[[E], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def publish(self, event: E) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %r", callback, event)


class _Emitter:
    """A sequencer's event sink: the samples of one tick are held, then go to storage as one
    :class:`SampleBlock` and to subscribers; any other event first delivers the held samples."""

    def __init__(
        self,
        store: Callable[[Event | SampleBlock], None],
        bus: EventBus[Event],
        blocks: EventBus[SampleBlock],
    ) -> None:
        self._store = store
        self._bus = bus
        self._blocks = blocks
        self._held: list[Sample] = []

    def __call__(self, event: Event) -> None:
        if type(event) is Sample:
            self._held.append(event)
            return
        self.flush()
        self._store(event)
        self._bus.publish(event)

    def flush(self) -> None:
        if not self._held:
            return
        samples, self._held = self._held, []
        block = SampleBlock.of(samples)
        self._store(block)
        self._blocks.publish(block)
        for sample in samples:
            self._bus.publish(sample)


class _Worker:
    """A thread owning one instrument connection; runs queued commands and ticks sequencers."""

    def __init__(self, name: str, clock: Clock, poll_period_s: float) -> None:
        self.name = name
        self.clock = clock
        self.poll_period_s = poll_period_s
        self.instrument: Any = None
        self.sequencers: dict[str, Sequencer] = {}
        self.emitters: dict[str, _Emitter] = {}
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name=f"instrument-{name}", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        if self._stopping and not self._thread.is_alive():
            future.set_exception(EngineError(f"worker {self.name} has stopped"))
            return future
        self._commands.put((fn, future))
        self._wake.set()
        return future

    def _drain(self) -> None:
        while True:
            try:
                fn, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as error:
                future.set_exception(error)

    def _main(self) -> None:
        while True:
            self._drain()
            self._flush_all()
            if self._stopping:
                self._drain()
                self._flush_all()
                return
            round_start = time.monotonic()
            if self.sequencers and isinstance(self.instrument, RoundPrefetcher):
                self._prefetch(self.instrument)
            for channel_id, seq in list(self.sequencers.items()):
                alive = seq.tick()
                self.emitters[channel_id].flush()
                if not alive:
                    del self.sequencers[channel_id]
                    del self.emitters[channel_id]
            spent_s = time.monotonic() - round_start
            self._wait(self.poll_period_s if self.sequencers else 3600.0, spent_s)

    def _prefetch(self, instrument: RoundPrefetcher) -> None:
        """One request for every polled channel's state instead of one per channel. A failure
        must not end this thread (it owns the outputs): the channels then read one by one."""
        try:
            instrument.prefetch_round([seq.channel for seq in self.sequencers.values()])
        except Exception:
            log.exception("%s: batched poll failed; channels are polled one by one", self.name)

    def _flush_all(self) -> None:
        for emitter in self.emitters.values():
            emitter.flush()

    def _wait(self, clock_s: float, spent_wall_s: float = 0.0) -> None:
        """Sleep until one poll period of the station clock after the round started (the round
        took ``spent_wall_s``), waking early for a command. Polls keep a fixed rate: a slow
        round (16 channels over one link) does not push every channel's next poll later."""
        if isinstance(self.clock, SystemClock):
            wall = clock_s
        elif isinstance(self.clock, ScaledClock):
            wall = clock_s / self.clock.speed
        else:
            # A clock the engine cannot map to wall time (tests): let it advance itself.
            if self.sequencers:
                self.clock.sleep(clock_s)
            wall = 0.0 if self.sequencers else 0.05
        self._wake.wait(max(wall - spent_wall_s, 0.0))
        self._wake.clear()

    def stop(self, timeout_s: float) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)


class _RouteUse:
    """One channel's switch route for a shared meter: closed around each of the channel's
    measurements, on the meter's worker, under the switch's lock (two channels never share the
    meter's leads); the switch itself is driven by its own worker."""

    def __init__(self, name: str, switch: _Worker, route: int, lock: threading.Lock) -> None:
        self.name = name
        self.switch = switch
        self.route = route
        self.lock = lock

    def around(self, measure: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            with self.lock:
                try:
                    self._do(lambda: self.switch.instrument.close_route(self.route), "close")
                    return measure()
                finally:
                    # Also after a failed close: a relay may have half-switched.
                    self._do(self.switch.instrument.open_all, "open")

        return run

    def _do(self, action: Callable[[], None], verb: str) -> None:
        try:
            self.switch.submit(action).result(timeout=_SWITCH_TIMEOUT_S)
        except Exception as error:
            raise EngineError(f"route {self.name}: could not {verb} it: {error}") from error


class _Meters:
    """A sequencer's view of its channel's meters: requests go to the meters' workers, each
    through the channel's route when the meter is shared."""

    def __init__(
        self,
        acir: _Worker | None,
        eis: _Worker | None,
        routes: dict[str, _RouteUse] | None = None,
    ) -> None:
        self._acir = acir
        self._eis = eis
        self._routes = routes or {}

    def _routed(self, kind: str, measure: Callable[[], T]) -> Callable[[], T]:
        route = self._routes.get(kind)
        return measure if route is None else route.around(measure)

    def acir(self) -> Future[AcirReading] | None:
        worker = self._acir
        if worker is None:
            return None
        return worker.submit(self._routed("acir", lambda: worker.instrument.measure()))

    def eis(self, frequencies_hz: Sequence[float]) -> Future[EisSweep] | None:
        worker = self._eis
        if worker is None:
            return None
        freqs = list(frequencies_hz)
        return worker.submit(self._routed("eis", lambda: worker.instrument.sweep(freqs)))


def _recipe_meter_kinds(recipe: Recipe, cell: Cell) -> set[str]:
    """Which meters (``acir``, ``eis``) a recipe's measurement steps need."""
    kinds: set[str] = set()
    ctx = RunContext(cell, soc=0.5)
    for step in recipe.steps:
        for op in expand_step(step, ctx):
            if isinstance(op, MeasureOp):
                kinds.add(op.kind)
    return kinds


class Engine:
    """See the module docstring for the API and threading model."""

    def __init__(
        self,
        bench: BenchConfig,
        storage: Storage,
        clock: Clock,
        *,
        connector: Connector | None = None,
        production: bool = False,
        operator: str = "operator",
    ) -> None:
        self.bench = bench
        self.storage = storage
        self.clock = clock
        self.connector = connector or RegistryConnector(clock)
        self.production = production
        self.operator = operator
        self.bus: EventBus[Event] = EventBus()
        self.blocks: EventBus[SampleBlock] = EventBus()
        self.bus.subscribe(self._track)
        self._lock = threading.Lock()
        self._snapshots = {cid: ChannelSnapshot(cid) for cid in bench.channels}
        self._workers: dict[str, _Worker] = {}
        self._switch_locks = {
            name: threading.Lock()
            for name, config in bench.instruments.items()
            if config.driver in SWITCH_DRIVERS
        }
        # Shutdown may be asked from two threads at once (GUI close and a signal): the second
        # waits for the first instead of iterating workers the first is clearing.
        self._shutdown_lock = threading.Lock()
        self._identities: dict[str, InstrumentIdentity] = {}
        self._channels: dict[str, CyclerChannel] = {}
        self._active: dict[str, str] = {}  # channel_id -> run_id
        self._connected = False

    # --- connection -----------------------------------------------------------------------------

    def connect(self, timeout_s: float = 60.0) -> dict[str, InstrumentIdentity]:
        """Open and identify every instrument, each in its own worker thread."""
        if self._connected:
            return dict(self._identities)
        futures: dict[str, Future[Any]] = {}
        for name, config in self.bench.instruments.items():
            worker = _Worker(name, self.clock, self.bench.poll_period_s)
            self._workers[name] = worker
            futures[name] = worker.submit(functools.partial(self._open, worker, config))
        for name, future in futures.items():
            self._identities[name] = future.result(timeout=timeout_s)
        for channel_id, chan in self.bench.channels.items():
            worker = self._workers[chan.instrument]
            self._channels[channel_id] = worker.submit(
                functools.partial(_channel_of, worker, chan.hw_channel)
            ).result(timeout=timeout_s)
        for name, config in self.bench.instruments.items():
            due = config.calibration_due.isoformat() if config.calibration_due else None
            self.storage.record_instrument(
                name, config.driver, config.address, self._identities[name], due
            )
        self._connected = True
        return dict(self._identities)

    def _open(self, worker: _Worker, config: InstrumentConfig) -> InstrumentIdentity:
        worker.instrument = instrument = self.connector.open(config)
        identity: InstrumentIdentity = instrument.identity
        return identity

    # --- events ---------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Add an event subscriber; returns a function that removes it."""
        return self.bus.subscribe(callback)

    def subscribe_blocks(self, callback: Callable[[SampleBlock], None]) -> Callable[[], None]:
        """Add a subscriber for each poll's samples as one block (e.g. a plot appending columns;
        the same samples also reach event subscribers one by one); returns its remover."""
        return self.blocks.subscribe(callback)

    def _publish(self, event: Event) -> None:
        self.storage.handle_event(event)
        self.bus.publish(event)

    def _track(self, event: Event) -> None:
        with self._lock:
            snap = self._snapshots.get(event.channel_id)
            if snap is None:
                return
            if isinstance(event, Sample):
                snap = replace(
                    snap,
                    voltage_v=event.voltage_v,
                    current_a=event.current_a,
                    temperature_c=event.temperature_c,
                    t_s=event.t_s,
                    samples=snap.samples + 1,
                    step_index=event.step_index,
                )
            elif isinstance(event, RunStarted):
                snap = ChannelSnapshot(
                    event.channel_id,
                    "running",
                    event.run_id,
                    event.cell_id,
                    event.recipe_name,
                    t_s=event.t_s,
                )
            elif isinstance(event, StepStarted):
                snap = replace(
                    snap,
                    state="running",
                    run_id=event.run_id,
                    step_index=event.step_index,
                    step_label=event.label,
                )
            elif isinstance(event, LimitTripped):
                snap = replace(snap, message=f"{event.limit} {event.value:g} {event.unit}")
            elif isinstance(event, Fault):
                snap = replace(snap, message=f"{event.kind}: {event.message}")
            elif isinstance(event, RunEnded):
                snap = replace(snap, state=event.outcome.value, message=event.reason)
                if self._active.get(event.channel_id) == event.run_id:
                    del self._active[event.channel_id]
            elif isinstance(event, MeasurementTaken):
                return
            self._snapshots[event.channel_id] = snap

    def snapshot(self) -> dict[str, ChannelSnapshot]:
        with self._lock:
            return dict(self._snapshots)

    # --- screening ------------------------------------------------------------------------------

    def measure_screen(self, channel_id: str, timeout_s: float = 30.0) -> ScreenReading:
        """Measure ACIR (ohm, 1 kHz) and OCV (V) of the cell in the channel's meter's fixture.

        Every switch route is open then (in-run measurements close and open theirs in one
        command on the same worker), so this is the intake screen of a placed cell.

        The measurement runs on the meter's own worker thread (queued behind any measurement a
        run asked for), and this call blocks until it is done; raises :class:`EngineError` when
        the channel has no ACIR meter or the meter does not answer within ``timeout_s`` (wall s).
        """
        self._require(channel_id)
        meter = self.bench.channels[channel_id].acir_meter
        if meter is None:
            raise EngineError(f"channel {channel_id} has no ACIR meter")
        worker = self._workers[meter]
        future = worker.submit(lambda: worker.instrument.measure())
        try:
            reading: AcirReading = future.result(timeout=timeout_s)
        except TimeoutError as error:
            future.cancel()
            raise EngineError(
                f"ACIR meter {meter} did not answer within {timeout_s:g} s"
            ) from error
        return ScreenReading(
            channel_id=channel_id,
            status=reading.status,
            acir_ohm=reading.resistance_ohm,
            ocv_v=reading.voltage_v,
            frequency_hz=reading.frequency_hz,
            t_s=reading.t_s,
            instrument=reading.identity.describe(),
        )

    # --- runs -----------------------------------------------------------------------------------

    def _require(self, channel_id: str) -> _Worker:
        if not self._connected:
            raise EngineError("the engine is not connected; call connect() first")
        if channel_id not in self.bench.channels:
            raise EngineError(f"unknown channel {channel_id!r}")
        return self._workers[self.bench.channels[channel_id].instrument]

    def start_run(self, channel_id: str, cell_id: str, recipe: Recipe | str) -> str:
        """Check, store and start a run; returns its run ID (raises PrestartRefused)."""
        worker, seq = self._prepare(channel_id, cell_id, recipe)
        self._await_launch(seq, worker.submit(lambda: self._launch(worker, seq)))
        return seq.run_id

    def start_runs(self, starts: Sequence[tuple[str, str, Recipe | str]]) -> list[str | Exception]:
        """Start many runs ``(channel_id, cell_id, recipe)`` at once; per start, in order, its
        run ID or the exception that refused it (as :meth:`start_run` would raise).

        Every start is checked and stored first, then all are queued to their workers before
        any is awaited, so a cabinet's worker sends its starts back to back in one batch of
        commands instead of finishing a poll round between one start and the next.
        """
        results: list[str | Exception] = []
        queued: list[tuple[int, Sequencer, Future[None]]] = []
        for channel_id, cell_id, recipe in starts:
            try:
                worker, seq = self._prepare(channel_id, cell_id, recipe)
            except Exception as error:
                results.append(error)
                continue
            future = worker.submit(functools.partial(self._launch, worker, seq))
            queued.append((len(results), seq, future))
            results.append(seq.run_id)
        for index, seq, future in queued:
            try:
                self._await_launch(seq, future)
            except Exception as error:
                results[index] = error
        return results

    def _prepare(
        self, channel_id: str, cell_id: str, recipe: Recipe | str
    ) -> tuple[_Worker, Sequencer]:
        """Static checks, the stored run and the channel marked busy (raises if refused)."""
        worker = self._require(channel_id)
        if isinstance(recipe, str):
            recipe = shipped_recipe(recipe)
        with self._lock:
            if channel_id in self._active:
                raise EngineError(
                    f"channel {channel_id} is busy with run {self._active[channel_id]}"
                )
            snap = self._snapshots[channel_id]
            if snap.state == "held":
                raise EngineError(
                    f"channel {channel_id} holds run {snap.run_id} interrupted by a restart; "
                    "continue or close it first"
                )
        cell = self.storage.get_cell(cell_id)
        if cell is None:
            raise EngineError(f"cell {cell_id!r} is not stored; scan or import it first")
        seq = self._build(channel_id, cell_id, recipe, run_id=uuid.uuid4().hex, resume=None)
        with self._lock:
            if channel_id in self._active:
                raise EngineError(f"channel {channel_id} became busy")
            self._active[channel_id] = seq.run_id
        return worker, seq

    def _await_launch(self, seq: Sequencer, future: Future[None]) -> None:
        try:
            future.result(timeout=60)
        except BaseException:
            with self._lock:
                self._active.pop(seq.channel_id, None)
            raise

    def _build(
        self,
        channel_id: str,
        cell_id: str,
        recipe: Recipe,
        *,
        run_id: str,
        resume: ResumePoint | None,
    ) -> Sequencer:
        chan_cfg = self.bench.channels[channel_id]
        inst_cfg = self.bench.instruments[chan_cfg.instrument]
        cell = self.storage.get_cell(cell_id)
        if cell is None:
            raise EngineError(f"cell {cell_id!r} is not stored")
        try:
            limits = derive_limits(cell, recipe.limits, self.bench.envelope)
        except CellDataError as error:
            raise PrestartRefused([f"cell data: {error}"]) from error
        identity = self._identities[chan_cfg.instrument]
        kinds = _recipe_meter_kinds(recipe, cell)
        meters = []
        missing = []
        for kind, name in (("acir", chan_cfg.acir_meter), ("eis", chan_cfg.eis_meter)):
            if kind not in kinds:
                continue
            if name is None:
                missing.append(
                    f"the recipe measures {kind.upper()} and channel {channel_id} has no such meter"
                )
                continue
            sharing = self.bench.meter_users(name)
            if chan_cfg.route_for(kind) is None and len(sharing) > 1:
                missing.append(
                    f"the recipe measures {kind.upper()} with meter {name!r}, shared by channels "
                    f"{', '.join(sharing)}, and channel {channel_id} has no {kind}_route to put "
                    "its cell on the meter (it would measure another cell)"
                )
                continue
            cfg = self.bench.instruments[name]
            meters.append((name, self._identities[name], cfg.serial, cfg.calibration_due))
        causes = missing + prestart_checks(
            cell=cell,
            limits=limits,
            envelope=self.bench.envelope,
            identity=identity,
            expected_serial=inst_cfg.serial,
            calibration_due=inst_cfg.calibration_due,
            today=dt.datetime.fromtimestamp(self.clock.now(), dt.UTC).date(),
            has_temperature_sensor=chan_cfg.temperature_sensor is not None,
            production=self.production,
            meters=meters,
        )
        if causes:
            raise PrestartRefused(causes)
        if resume is None:
            self.storage.begin_run(
                RunRecord(
                    run_id=run_id,
                    channel_id=channel_id,
                    cell_id=cell_id,
                    recipe_name=recipe.name,
                    recipe_version=recipe.version,
                    recipe_hash=recipe.content_hash,
                    recipe_toml=recipe.source_text,
                    instrument=chan_cfg.instrument,
                    instrument_serial=identity.serial,
                    calibration_due=inst_cfg.calibration_due.isoformat()
                    if inst_cfg.calibration_due
                    else None,
                    simulated=identity.simulated,
                    production=self.production,
                    operator=self.operator,
                    started_t_s=self.clock.now(),
                )
            )
        acir = self._workers.get(chan_cfg.acir_meter) if chan_cfg.acir_meter else None
        eis = self._workers.get(chan_cfg.eis_meter) if chan_cfg.eis_meter else None
        routes = {}
        for kind in ("acir", "eis"):
            route = chan_cfg.route_for(kind)
            if route is not None:
                routes[kind] = _RouteUse(
                    str(route),
                    self._workers[route.switch],
                    route.route,
                    self._switch_locks[route.switch],
                )
        return Sequencer(
            run_id=run_id,
            channel_id=channel_id,
            channel=self._channels[channel_id],
            cell=cell,
            recipe=recipe,
            limits=limits,
            envelope=self.bench.envelope,
            clock=self.clock,
            emit=_Emitter(self.storage.handle_event, self.bus, self.blocks),
            poll_period_s=self.bench.poll_period_s,
            meters=_Meters(acir, eis, routes),
            require_temperature=True,
            simulated=identity.simulated,
            resume=resume,
        )

    @staticmethod
    def _launch(worker: _Worker, seq: Sequencer) -> None:
        emitter = seq.emit
        assert isinstance(emitter, _Emitter)
        worker.sequencers[seq.channel_id] = seq
        worker.emitters[seq.channel_id] = emitter
        seq.start()
        emitter.flush()

    def _on_channel(self, channel_id: str, action: Callable[[Sequencer], None]) -> None:
        worker = self._require(channel_id)

        def run() -> None:
            seq = worker.sequencers.get(channel_id)
            if seq is not None:
                action(seq)

        worker.submit(run).result(timeout=60)

    def pause(self, channel_id: str) -> None:
        """Stop the channel's output and hold its run (a measurement in progress finishes)."""
        self._on_channel(channel_id, Sequencer.pause)
        self._set_state(channel_id, "paused", only_if="running")

    def resume(self, channel_id: str) -> None:
        """Restart the held step with what is left of its time and capacity ends."""
        self._on_channel(channel_id, Sequencer.resume)
        self._set_state(channel_id, "running", only_if="paused")

    def _set_state(self, channel_id: str, state: str, *, only_if: str) -> None:
        with self._lock:
            snap = self._snapshots[channel_id]
            if snap.state == only_if:
                self._snapshots[channel_id] = replace(snap, state=state)

    def abort(self, channel_id: str, reason: str = "aborted by operator") -> None:
        self._on_channel(channel_id, lambda seq: seq.abort(reason))

    def stop_all(self, reason: str = "stop all") -> None:
        """Abort every run on every channel (outputs off), all workers in parallel."""
        futures = []
        for worker in self._workers.values():

            def stop(w: _Worker = worker) -> None:
                for seq in list(w.sequencers.values()):
                    seq.abort(reason)

            futures.append(worker.submit(stop))
        for future in futures:
            future.result(timeout=60)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block until no run is active (CLI, tests); False on timeout."""
        deadline = None if timeout_s is None else SystemClock().now() + timeout_s
        while True:
            with self._lock:
                if not self._active:
                    return True
            if deadline is not None and SystemClock().now() > deadline:
                return False
            threading.Event().wait(0.05)

    # --- crash recovery -------------------------------------------------------------------------

    def resume_after_crash(self) -> list[RunProgress]:
        """Hold every run a crash interrupted: read the channel, keep its output off, mark the
        run ``held`` (audited). Nothing restarts until :meth:`continue_run` or :meth:`close_run`."""
        held = []
        for progress in self.storage.interrupted_runs():
            if progress.channel_id in self._channels:
                worker = self._require(progress.channel_id)
                channel = self._channels[progress.channel_id]

                def secure(channel: CyclerChannel = channel) -> None:
                    channel.poll()  # read the instrument's state before sending anything
                    channel.stop()

                worker.submit(secure).result(timeout=60)
            self.storage.set_run_state(
                progress.run_id,
                "held",
                who="station",
                why="process restarted; the run waits for an operator",
            )
            with self._lock:
                self._snapshots[progress.channel_id] = ChannelSnapshot(
                    progress.channel_id,
                    "held",
                    progress.run_id,
                    progress.cell_id,
                    progress.recipe_name,
                    progress.step_index,
                    message="interrupted by a restart: continue or close",
                )
            held.append(progress)
        return held

    def continue_run(
        self, run_id: str, *, reason: str = "operator continued after restart"
    ) -> None:
        """The operator's decision to resume a held run: the interrupted step continues with
        what is left of its time and capacity ends (after the open-circuit probe)."""
        progress = self.storage.run_progress(run_id)
        if progress is None or progress.state != "held":
            raise EngineError(f"run {run_id} is not held")
        worker = self._require(progress.channel_id)
        with self._lock:
            if progress.channel_id in self._active:
                raise EngineError(f"channel {progress.channel_id} is busy")
            self._active[progress.channel_id] = run_id
        try:
            recipe = self._stored_recipe(run_id)
            seq = self._build(
                progress.channel_id,
                progress.cell_id,
                recipe,
                run_id=run_id,
                resume=ResumePoint(
                    progress.resume_token,
                    progress.last_seq,
                    progress.step_index,
                    *self._interrupted_segment(progress),
                ),
            )
            self.storage.set_run_state(run_id, "running", who=self.operator, why=reason)
            worker.submit(lambda: self._launch(worker, seq)).result(timeout=60)
        except BaseException:
            with self._lock:
                self._active.pop(progress.channel_id, None)
            raise

    def _interrupted_segment(self, progress: RunProgress) -> tuple[float, float, float]:
        """(elapsed s, signed Ah, Wh) the interrupted step did since it (re)started, from its
        committed samples: trapezoids of current and power over the step's sample times."""
        with self.storage.reader() as conn:
            row = conn.execute(
                "SELECT e.step_kind FROM step_events e JOIN runs r USING (run_pk)"
                " WHERE r.run_id = ? AND e.step_index = ? AND e.event = 'started'",
                (progress.run_id, progress.step_index),
            ).fetchone()
        if row is None or row[0] == "probe" or progress.step_start_t_s is None:
            return 0.0, 0.0, 0.0  # not a recipe step with output: nothing to carry
        points = [
            (t_s, v, i)
            for _, t_s, step, v, i, _ in self.storage.samples(progress.run_id)
            if step == progress.step_index
        ]
        if not points:
            return 0.0, 0.0, 0.0
        moved_ah = energy_wh = 0.0
        for (t0, v0, i0), (t1, v1, i1) in zip(points, points[1:], strict=False):
            dt_h = max(t1 - t0, 0.0) / 3600.0
            moved_ah += 0.5 * (i0 + i1) * dt_h
            energy_wh += 0.5 * (i0 * v0 + i1 * v1) * dt_h
        return max(points[-1][0] - progress.step_start_t_s, 0.0), moved_ah, energy_wh

    def close_run(self, run_id: str, reason: str) -> None:
        """The operator's decision to end a held run without more output."""
        progress = self.storage.run_progress(run_id)
        if progress is None or progress.state != "held":
            raise EngineError(f"run {run_id} is not held")
        self.storage.audit(self.operator, "close run", run_id, "", reason)
        self._publish(
            RunEnded(
                run_id,
                progress.channel_id,
                RunOutcome.ABORTED,
                f"closed after restart: {reason}",
                self.clock.now(),
            )
        )

    def _stored_recipe(self, run_id: str) -> Recipe:
        with self.storage.reader() as conn:
            row = conn.execute(
                "SELECT recipe_toml FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        return loads_recipe(row[0], source=f"run {run_id}")

    # --- shutdown -------------------------------------------------------------------------------

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Abort every run (outputs off), stop the workers, close instruments, flush storage."""
        with self._shutdown_lock:
            self._shutdown(timeout_s)

    def _shutdown(self, timeout_s: float) -> None:
        if self._workers:
            try:
                self.stop_all("station shutdown")
            except Exception:
                log.exception("stop_all failed during shutdown")
            for worker in self._workers.values():
                instrument = worker.instrument
                if instrument is not None and hasattr(instrument, "close"):
                    try:
                        worker.submit(instrument.close).result(timeout=timeout_s)
                    except Exception:
                        log.exception("closing %s failed", worker.name)
            for worker in self._workers.values():
                worker.stop(timeout_s)
        self._workers.clear()
        self._connected = False
        self.storage.flush(timeout_s)


def _channel_of(worker: _Worker, hw_channel: str) -> CyclerChannel:
    instrument = worker.instrument
    if hasattr(instrument, "channel"):
        channel: CyclerChannel = instrument.channel(hw_channel)
        return channel
    if isinstance(instrument, CyclerChannel):
        return instrument
    raise EngineError(f"{instrument!r} is neither a cabinet nor a cycler channel")

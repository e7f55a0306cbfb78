"""Runs a recipe on one cycler channel: pre-start checks, protection, limits, events.

A :class:`Sequencer` is a state machine driven by :meth:`Sequencer.tick`, one poll of its
channel per call, so one worker thread can drive every channel of a cabinet (the engine does)
and a test can drive one channel on a :class:`~station.clock.ManualClock`
(:meth:`Sequencer.run_to_end`). Every method is called from the thread that owns the channel.

Safety, in order (``../shared/reference/reliability.md`` sections 1.3 and 6, S1-S8):

1. Static pre-start checks (:func:`prestart_checks`) refuse, naming every cause: limits
   missing/NaN/inverted/outside the station envelope, no temperature sensor, a simulated
   instrument for a production run, an identity mismatch, an overdue calibration, a cell
   without chemistry or rated values.
2. On start the instrument's own protection is written and read back
   (:meth:`CyclerChannel.arm_protection`) before any output step; a read-back that is looser
   than asked refuses the run.
3. An open-circuit probe step reads OCV and temperature: reversed polarity, OCV outside the
   envelope or the cell's window, or a missing temperature reading refuse the run.
4. Every sample is checked against per-step and run limits (V, I, T, dT/dt, step Ah, step
   time, run time); a trip stops the output in the same tick, before anything else happens,
   and is recorded with the limit, the value and the threshold (:class:`LimitTripped`).
5. Garbage readings (NaN, inf, absurd values) and a channel with no fresh sample for three
   watch periods (``3 x max(poll period, record interval)``, in wall time, see
   :func:`stall_timer`) are faults: the output is stopped and the run ends FAULTED; a
   channel never sits RUNNING on stale data.
6. Pause stops the output; resume restarts the interrupted step with what is left of its
   time and capacity ends; abort stops the output. Any exception ends with the output off.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, Protocol

from drivers.errors import InstrumentError
from drivers.identity import InstrumentIdentity
from drivers.readings import (
    AcirReading,
    ChannelState,
    ChannelStatus,
    CyclerSample,
    CyclerStep,
    EisSweep,
    EndConditions,
    ProtectionLimits,
    ReadingStatus,
    StepMode,
)
from station.cells import Cell, CellDataError, check_ready_for_test
from station.clock import Clock, ScaledClock, SystemClock
from station.config import SafetyEnvelope
from station.events import (
    Event,
    Fault,
    LimitTripped,
    MeasurementTaken,
    RunEnded,
    RunOutcome,
    RunStarted,
    Sample,
    StepEnded,
    StepStarted,
)
from station.instruments import CyclerChannel
from station.recipes import (
    CyclerOp,
    LimitRules,
    MeasureOp,
    Op,
    Recipe,
    RunContext,
    apply_op_to_context,
    expand_step,
)

STALE_POLL_PERIODS = 3
PROBE_TIME_S = 5.0
DTDT_WINDOW_S = 60.0
# Readings outside these are instrument garbage, never data (S7).
SANE_VOLTAGE_V = 100.0
SANE_CURRENT_A = 10_000.0
SANE_TEMPERATURE_C = (-60.0, 250.0)


def stall_timer(clock: Clock) -> tuple[Callable[[], float], float]:
    """What stuck-instrument detection measures time with: ``(timer, wall_per_clock_s)``.

    On a system or scaled clock it is the monotonic wall clock (s), and ``wall_per_clock_s``
    (wall seconds per clock second, ``1 / speed``) converts a record interval into wall time.
    Simulated time would count a driver timeout of 2 wall s as 7,200 s of silence at speed 3600.
    A clock with no wall meaning (a test's manual clock) is its own timer.
    """
    if isinstance(clock, SystemClock):
        return time.monotonic, 1.0
    if isinstance(clock, ScaledClock):
        return time.monotonic, 1.0 / clock.speed
    return clock.now, 1.0


class PrestartRefused(RuntimeError):
    """The run may not start; ``causes`` names every reason."""

    def __init__(self, causes: Sequence[str]) -> None:
        self.causes = list(causes)
        super().__init__("pre-start checks refused the run: " + "; ".join(self.causes))


@dataclass(frozen=True)
class RunLimits:
    """Per-test software limits (the second layer; the instrument's protection is the first)."""

    voltage_min_v: float
    voltage_max_v: float
    current_max_a: float
    temperature_min_c: float
    temperature_max_c: float
    dtdt_max_c_per_min: float
    step_capacity_max_ah: float
    step_time_factor: float
    run_time_max_s: float

    def protection(self) -> ProtectionLimits:
        return ProtectionLimits(
            voltage_min_v=self.voltage_min_v,
            voltage_max_v=self.voltage_max_v,
            current_max_a=self.current_max_a,
            temperature_max_c=self.temperature_max_c,
            capacity_max_ah=self.step_capacity_max_ah,
        )


def derive_limits(cell: Cell, rules: LimitRules, envelope: SafetyEnvelope) -> RunLimits:
    """Run limits from the cell's rated values and the recipe's rules (checked separately)."""
    check_ready_for_test(cell)
    assert cell.voltage_min_v is not None and cell.voltage_max_v is not None
    assert cell.max_charge_current_a is not None and cell.max_discharge_current_a is not None
    assert cell.rated_capacity_ah is not None
    return RunLimits(
        voltage_min_v=cell.voltage_min_v - rules.voltage_margin_v,
        voltage_max_v=cell.voltage_max_v + rules.voltage_margin_v,
        current_max_a=max(cell.max_charge_current_a, cell.max_discharge_current_a)
        * rules.current_factor,
        temperature_min_c=envelope.temperature_min_c,
        temperature_max_c=rules.temperature_max_c,
        dtdt_max_c_per_min=rules.dtdt_max_c_per_min,
        step_capacity_max_ah=cell.rated_capacity_ah * rules.capacity_factor,
        step_time_factor=rules.step_time_factor,
        run_time_max_s=rules.run_time_max_s,
    )


def check_limits(limits: RunLimits | None, envelope: SafetyEnvelope) -> list[str]:
    """Why a limit set is unusable: missing, non-finite, inverted or outside the envelope."""
    if limits is None:
        return ["limits are missing"]
    causes: list[str] = []
    for name, value in vars(limits).items():
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            causes.append(f"limit {name} is not a finite number ({value!r})")
    if causes:
        return causes
    if limits.voltage_min_v >= limits.voltage_max_v:
        causes.append(
            f"limits inverted: voltage_min_v {limits.voltage_min_v} >= voltage_max_v "
            f"{limits.voltage_max_v}"
        )
    if limits.temperature_min_c >= limits.temperature_max_c:
        causes.append("limits inverted: temperature_min_c >= temperature_max_c")
    for name in ("current_max_a", "dtdt_max_c_per_min", "step_capacity_max_ah", "run_time_max_s"):
        if getattr(limits, name) <= 0:
            causes.append(f"limit {name} must be positive ({getattr(limits, name)})")
    if limits.step_time_factor < 1:
        causes.append("limit step_time_factor must be >= 1")
    checks = (
        ("voltage_min_v", limits.voltage_min_v < envelope.voltage_min_v, envelope.voltage_min_v),
        ("voltage_max_v", limits.voltage_max_v > envelope.voltage_max_v, envelope.voltage_max_v),
        ("current_max_a", limits.current_max_a > envelope.current_max_a, envelope.current_max_a),
        (
            "temperature_min_c",
            limits.temperature_min_c < envelope.temperature_min_c,
            envelope.temperature_min_c,
        ),
        (
            "temperature_max_c",
            limits.temperature_max_c > envelope.temperature_max_c,
            envelope.temperature_max_c,
        ),
        (
            "dtdt_max_c_per_min",
            limits.dtdt_max_c_per_min > envelope.dtdt_max_c_per_min,
            envelope.dtdt_max_c_per_min,
        ),
    )
    for name, outside, bound in checks:
        if outside:
            causes.append(
                f"limit {name} {getattr(limits, name)} is outside the station envelope ({bound})"
            )
    return causes


def prestart_checks(
    *,
    cell: Cell,
    limits: RunLimits | None,
    envelope: SafetyEnvelope,
    identity: InstrumentIdentity,
    expected_serial: str | None,
    calibration_due: dt.date | None,
    today: dt.date,
    has_temperature_sensor: bool,
    production: bool,
    meters: Sequence[tuple[str, InstrumentIdentity, str | None, dt.date | None]] = (),
) -> list[str]:
    """Every static reason not to start (empty list: go). ``meters`` holds ``(name, identity,
    expected_serial, calibration_due)`` of the ACIR/EIS meters the recipe uses."""
    causes: list[str] = []
    try:
        check_ready_for_test(cell)
    except CellDataError as error:
        causes.append(f"cell data: {error}")
    causes.extend(check_limits(limits, envelope))
    if not has_temperature_sensor:
        causes.append("no temperature sensor is configured for this channel")
    instruments = [("cycler", identity, expected_serial, calibration_due), *meters]
    for name, ident, serial, due in instruments:
        if production and ident.simulated:
            causes.append(f"{name} {ident.describe()} is simulated; production runs need real ones")
        if serial is not None and ident.serial != serial:
            causes.append(
                f"{name} identity mismatch: configured serial {serial!r}, instrument answered "
                f"{ident.serial!r}"
            )
        if due is not None and due < today:
            causes.append(f"{name} {ident.serial} calibration overdue since {due.isoformat()}")
        if production and due is None:
            causes.append(f"{name} {ident.serial} has no calibration due date")
    return causes


class MeterGateway(Protocol):
    """How a sequencer asks for ACIR/EIS readings without owning the meters (the engine routes
    these to the meter's own worker thread). ``None`` means the bench has no such meter."""

    def acir(self) -> Future[AcirReading] | None: ...

    def eis(self, frequencies_hz: Sequence[float]) -> Future[EisSweep] | None: ...


class DirectMeters:
    """A gateway that calls the meters in the calling thread (tests, single-thread use)."""

    def __init__(self, acir: Any | None = None, eis: Any | None = None) -> None:
        self._acir = acir
        self._eis = eis

    def acir(self) -> Future[AcirReading] | None:
        return None if self._acir is None else _call_now(self._acir.measure)

    def eis(self, frequencies_hz: Sequence[float]) -> Future[EisSweep] | None:
        meter = self._eis
        return None if meter is None else _call_now(lambda: meter.sweep(frequencies_hz))


def _call_now(fn: Callable[[], Any]) -> Future[Any]:
    future: Future[Any] = Future()
    try:
        future.set_result(fn())
    except Exception as error:  # the sequencer turns it into a Fault
        future.set_exception(error)
    return future


class SeqState(enum.Enum):
    PENDING = "pending"
    PROBING = "probing"
    RUNNING = "running"
    MEASURING = "measuring"
    PAUSED = "paused"
    DONE = "done"


@dataclass(frozen=True)
class ResumePoint:
    """Where a crashed run continues: the committed checkpoint read back from storage.

    ``elapsed_s`` (clock s), ``moved_ah`` (signed Ah) and ``energy_wh`` are what the interrupted
    step's last segment did according to the committed samples; with what earlier segments did
    (kept in the resume token) the step continues with the rest of its time and capacity ends.
    """

    resume_token: str
    last_seq: int
    step_index: int
    elapsed_s: float = 0.0
    moved_ah: float = 0.0
    energy_wh: float = 0.0


@dataclass
class _StepTrack:
    op: CyclerOp
    step: CyclerStep
    index: int
    start_t_s: float
    elapsed_before_s: float = 0.0
    moved_before_ah: float = 0.0
    energy_before_wh: float = 0.0
    capacity_ah: float = 0.0
    energy_wh: float = 0.0
    last_step_time_s: float = -1.0
    last_t_s: float | None = None
    last_v: float | None = None
    last_i: float | None = None
    last_instrument_ah: float | None = None


class Sequencer:
    """Runs one recipe on one channel. Construct, call :meth:`start`, then :meth:`tick` every
    poll period until it returns False (or call :meth:`run_to_end`)."""

    def __init__(
        self,
        *,
        run_id: str,
        channel_id: str,
        channel: CyclerChannel,
        cell: Cell,
        recipe: Recipe,
        limits: RunLimits,
        envelope: SafetyEnvelope,
        clock: Clock,
        emit: Callable[[Event], None],
        poll_period_s: float,
        meters: MeterGateway | None = None,
        require_temperature: bool = True,
        simulated: bool = False,
        resume: ResumePoint | None = None,
    ) -> None:
        self.run_id = run_id
        self.channel_id = channel_id
        self.channel = channel
        self.cell = cell
        self.recipe = recipe
        self.limits = limits
        self.envelope = envelope
        self.clock = clock
        self._emit = emit
        self.poll_period_s = poll_period_s
        self.meters = meters or DirectMeters()
        self.require_temperature = require_temperature
        self.simulated = simulated
        self.state = SeqState.PENDING
        self.outcome: RunOutcome | None = None
        self.end_reason = ""
        self.ctx = RunContext(cell)
        self._top = -1
        self._ctx_at_top: dict[str, Any] = self.ctx.to_json()
        self._ops: list[Op] = []
        self._op_pos = -1
        self._pause_requested = False
        self._seq = -1
        self._step_counter = -1
        self._track: _StepTrack | None = None
        self._paused_track: _StepTrack | None = None
        self._ended: _StepTrack | None = None  # the step that ended last (its tail rows)
        self._pending: Future[Any] | None = None
        self._pending_op: MeasureOp | None = None
        self._stall_timer, self._wall_per_clock_s = stall_timer(clock)
        self._last_fresh_wall_s = 0.0  # on the stall timer
        self._temps: deque[tuple[float, float]] = deque()
        self._volts: deque[tuple[float, float]] = deque()
        self._run_start_t_s = 0.0
        self._resume = resume
        # (elapsed s, signed Ah, Wh) of the step a crashed run resumes in, applied to its op.
        self._carry: tuple[float, float, float] | None = None
        self.stop_t_s: float | None = None  # clock time the output was last commanded off

    # --- public controls --------------------------------------------------------------------

    @property
    def emit(self) -> Callable[[Event], None]:
        """Where this sequencer's events go (the engine flushes its per-poll sample blocks)."""
        return self._emit

    @property
    def active(self) -> bool:
        return self.state is not SeqState.DONE

    def start(self) -> None:
        """Arm protection (write + read back), then probe OCV/temperature with the output open."""
        now = self.clock.now()
        self._run_start_t_s = now
        if self._resume is not None:
            self._restore(self._resume)
        else:
            self._emit(
                RunStarted(
                    self.run_id,
                    self.channel_id,
                    self.cell.cell_id,
                    self.recipe.name,
                    now,
                    self.simulated,
                )
            )
        try:
            asked = self.limits.protection()
            held = self.channel.arm_protection(asked)
            looser = _looser_protection(asked, held)
            if looser:
                self._refuse(f"instrument protection read-back is looser than asked: {looser}")
                return
            probe = CyclerStep(
                StepMode.REST,
                end=EndConditions(time_s=PROBE_TIME_S),
                record_interval_s=min(1.0, self.poll_period_s),
                label="pre-start OCV probe",
            )
            self._begin_cycler_step(CyclerOp(probe, "probe"), now)
            self.state = SeqState.PROBING
        except Exception as error:
            self._fail("exception", f"start failed: {error!r}")

    def tick(self) -> bool:
        """One poll of the channel; returns False once the run has ended."""
        if self.state is SeqState.DONE:
            return False
        try:
            if self.state in (SeqState.RUNNING, SeqState.PROBING):
                self._tick_cycler()
            elif self.state is SeqState.MEASURING:
                self._tick_measuring()
            if self.state is not SeqState.DONE and self.state is not SeqState.PAUSED:
                now = self.clock.now()
                if now - self._run_start_t_s > self.limits.run_time_max_s:
                    self._trip(
                        "run_time", now - self._run_start_t_s, self.limits.run_time_max_s, "s", now
                    )
        except Exception as error:
            self._fail("exception", f"{type(error).__name__}: {error}")
        return self.state is not SeqState.DONE

    def pause(self) -> None:
        """Stop the output and hold. The open-circuit probe or a measurement in progress finishes
        first (the output is off during both) and the run holds before its next step."""
        if self.state in (SeqState.PENDING, SeqState.PROBING, SeqState.MEASURING):
            self._pause_requested = True
            return
        if self.state is not SeqState.RUNNING:
            return
        self._stop_output()
        if self.state is SeqState.RUNNING and self._track is not None:
            track = self._track
            track.elapsed_before_s += max(track.last_step_time_s, 0.0)
            track.moved_before_ah = track.capacity_ah
            track.energy_before_wh = track.energy_wh
            self._paused_track = self._ended = track
            self._emit(
                StepEnded(
                    self.run_id,
                    self.channel_id,
                    track.index,
                    track.op.kind,
                    "paused",
                    self.clock.now(),
                    track.capacity_ah,
                    track.energy_wh,
                )
            )
        self.state = SeqState.PAUSED

    def resume(self) -> None:
        """Continue a held run: the held step restarts with what is left of its time and
        capacity ends. A pause still waiting for a probe or measurement to finish is dropped."""
        if self._pause_requested:
            self._pause_requested = False
            return
        if self.state is not SeqState.PAUSED:
            return
        now = self.clock.now()
        track = self._paused_track
        self._paused_track = None
        if track is None:
            self._next_op(now)
            return
        self._begin_remaining(track.op, now, track)
        self.state = SeqState.RUNNING

    def abort(self, reason: str = "aborted by operator") -> None:
        if self.state is SeqState.DONE:
            return
        self._stop_output()
        self._end(RunOutcome.ABORTED, reason)

    def run_to_end(self, *, max_ticks: int | None = None) -> RunOutcome:
        """Drive the run on this thread: tick, then sleep one poll period of the clock."""
        if self.state is SeqState.PENDING:
            self.start()
        ticks = 0
        while self.tick():
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                self.abort(f"stopped after {max_ticks} ticks")
                break
            self.clock.sleep(self.poll_period_s)
        assert self.outcome is not None
        return self.outcome

    # --- cycler steps ---------------------------------------------------------------------------

    def _begin_remaining(self, op: CyclerOp, now: float, carry: _StepTrack) -> None:
        """Start ``op`` for what is left of its time and capacity ends after ``carry``."""
        end = op.step.end
        remaining = replace(
            end,
            time_s=None if end.time_s is None else max(end.time_s - carry.elapsed_before_s, 0.0),
            capacity_ah=None
            if end.capacity_ah is None
            else max(end.capacity_ah - abs(carry.moved_before_ah), 0.0),
        )
        self._begin_cycler_step(op, now, step=replace(op.step, end=remaining), carry=carry)

    def _begin_cycler_step(
        self,
        op: CyclerOp,
        now: float,
        *,
        step: CyclerStep | None = None,
        carry: _StepTrack | None = None,
    ) -> None:
        step = step or op.step
        self._step_counter += 1
        if op.kind == "probe":
            # The probe is not a recipe position: keep the checkpoint the run resumes from.
            token = self._resume.resume_token if self._resume is not None else ""
        else:
            token = self._token(carry)
        self._emit(
            StepStarted(
                self.run_id, self.channel_id, self._step_counter, op.kind, step.label, now, token
            )
        )
        track = _StepTrack(op, step, self._step_counter, now)
        if carry is not None:
            track.elapsed_before_s = carry.elapsed_before_s
            track.moved_before_ah = carry.moved_before_ah
            track.energy_before_wh = carry.energy_before_wh
            track.capacity_ah = carry.capacity_ah
            track.energy_wh = carry.energy_wh
        self._track = track
        self._last_fresh_wall_s = self._stall_timer()
        self.channel.start_step(step)

    def _tick_cycler(self) -> None:
        track = self._track
        assert track is not None
        now = self.clock.now()
        try:
            status = self.channel.poll()
        except InstrumentError as error:
            self._check_stale(track, f"poll failed: {error}")
            return
        fresh = False
        samples = status.samples
        for n, sample in enumerate(samples):
            if sample.step_index != status.step_index:
                # Recorded by the step that ended last, after its end condition (the cabinet
                # kept recording until it was told to stop or start the next step).
                if self._on_tail(sample):
                    return
                continue
            if sample.step_time_s <= track.last_step_time_s:
                continue  # a repeated or stale reading is not fresh data
            garbage = _garbage(sample)
            if garbage:
                self._fail("garbage_reading", garbage)
                return
            fresh = True
            if self._on_sample(track, sample, samples[n + 1 :]):
                return
        if fresh:
            self._last_fresh_wall_s = self._stall_timer()
        else:
            self._check_stale(track, "no fresh sample")
            if self.state is SeqState.DONE:
                return
        self._on_status(track, status, now)

    def _check_stale(self, track: _StepTrack, why: str) -> None:
        """Fault when no fresh sample came for 3 poll periods (or record intervals, if longer)
        of wall time: the poll period is a wall-time promise, the record interval is converted
        from clock time."""
        watch = max(self.poll_period_s, track.step.record_interval_s * self._wall_per_clock_s)
        silent = self._stall_timer() - self._last_fresh_wall_s
        if silent > STALE_POLL_PERIODS * watch + 1e-9:
            self._fail(
                "stuck_instrument",
                f"{why}; no fresh sample for {silent:.3g} s (> {STALE_POLL_PERIODS} x {watch:g} s)",
            )

    def _on_sample(
        self, track: _StepTrack, sample: CyclerSample, later: Sequence[CyclerSample] = ()
    ) -> bool:
        """Record and check one sample; True if the run or step ended on it. ``later`` are the
        rows of the same poll after it: if the step ends here they are its tail."""
        t_s = track.start_t_s + sample.step_time_s
        if track.last_t_s is not None and track.last_i is not None and track.last_v is not None:
            dt_h = (t_s - track.last_t_s) / 3600.0
            track.capacity_ah += 0.5 * (sample.current_a + track.last_i) * dt_h
            track.energy_wh += (
                0.5 * (sample.current_a * sample.voltage_v + track.last_i * track.last_v) * dt_h
            )
        if sample.step_capacity_ah is not None:
            track.capacity_ah = track.moved_before_ah + sample.step_capacity_ah
            if sample.step_energy_wh is not None:
                track.energy_wh = track.energy_before_wh + sample.step_energy_wh
        track.last_t_s, track.last_v, track.last_i = t_s, sample.voltage_v, sample.current_a
        track.last_step_time_s = sample.step_time_s
        self._seq += 1
        self._emit(
            Sample(
                self.run_id,
                self.channel_id,
                self._seq,
                t_s,
                track.index,
                sample.voltage_v,
                sample.current_a,
                sample.temperature_c,
            )
        )
        if self._check_sample_limits(track, sample, t_s):
            return True
        if self.state is SeqState.PROBING:
            return self._check_probe(sample, t_s, later)
        reason = self._software_end(track, sample, t_s)
        if reason:
            self._finish_step(track, reason, t_s, later)
            return True
        return False

    def _check_sample_limits(self, track: _StepTrack, sample: CyclerSample, t_s: float) -> bool:
        lim = self.limits
        v, i, temp = sample.voltage_v, sample.current_a, sample.temperature_c
        # The open-circuit probe judges the voltage itself (a refusal, not a trip).
        probing = self.state is SeqState.PROBING
        if v > lim.voltage_max_v and not probing:
            return self._trip("voltage_max", v, lim.voltage_max_v, "V", t_s)
        if v < lim.voltage_min_v and not probing:
            return self._trip("voltage_min", v, lim.voltage_min_v, "V", t_s)
        if abs(i) > lim.current_max_a:
            return self._trip("current_max", abs(i), lim.current_max_a, "A", t_s)
        if temp is None:
            if self.require_temperature and not probing:
                self._fail("temperature_sensor", "the cell temperature reading is missing")
                return True
        else:
            if temp > lim.temperature_max_c:
                return self._trip("temperature_max", temp, lim.temperature_max_c, "degC", t_s)
            if temp < lim.temperature_min_c:
                return self._trip("temperature_min", temp, lim.temperature_min_c, "degC", t_s)
            self._temps.append((t_s, temp))
            while self._temps and t_s - self._temps[0][0] > DTDT_WINDOW_S:
                self._temps.popleft()
            t0, temp0 = self._temps[0]
            # A slope needs a span; over at least 10 s the reading noise averages out.
            if t_s - t0 >= 10.0:
                rate = (temp - temp0) / (t_s - t0) * 60.0
                if rate > lim.dtdt_max_c_per_min:
                    return self._trip("dtdt_max", rate, lim.dtdt_max_c_per_min, "degC/min", t_s)
        if abs(track.capacity_ah) > lim.step_capacity_max_ah:
            return self._trip(
                "step_capacity", abs(track.capacity_ah), lim.step_capacity_max_ah, "Ah", t_s
            )
        step_limit = self._step_time_limit_s(track)
        step_time = track.elapsed_before_s + sample.step_time_s
        if step_limit is not None and step_time > step_limit:
            return self._trip("step_time", step_time, step_limit, "s", t_s)
        return False

    def _step_time_limit_s(self, track: _StepTrack) -> float | None:
        step = track.op.step
        factor = self.limits.step_time_factor
        if step.end.time_s is not None:
            return factor * step.end.time_s + self.poll_period_s
        if step.mode is StepMode.REST or step.current_a == 0:
            return None
        # Without a time end: the time to move the whole step-capacity limit at the set current.
        return factor * self.limits.step_capacity_max_ah / abs(step.current_a) * 3600.0

    def _check_probe(
        self, sample: CyclerSample, t_s: float, later: Sequence[CyclerSample] = ()
    ) -> bool:
        v = sample.voltage_v
        cell = self.cell
        assert cell.voltage_min_v is not None and cell.voltage_max_v is not None
        cause = ""
        if v < 0:
            cause = f"OCV {v:.4f} V is negative: reversed polarity"
        elif not self.envelope.voltage_min_v <= v <= self.envelope.voltage_max_v:
            cause = (
                f"OCV {v:.4f} V is outside the station envelope "
                f"{self.envelope.voltage_min_v:g}..{self.envelope.voltage_max_v:g} V"
            )
        elif v > self.limits.voltage_max_v:
            cause = f"OCV {v:.4f} V is above the cell's maximum {cell.voltage_max_v:g} V"
        elif v < self.limits.voltage_min_v:
            cause = (
                f"OCV {v:.4f} V is below the cell's minimum {cell.voltage_min_v:g} V "
                "(over-discharged; a supervisor decides)"
            )
        elif self.require_temperature and sample.temperature_c is None:
            cause = "no temperature reading: the temperature sensor is missing"
        if cause:
            self._refuse(cause)
            return True
        self._stop_output()
        self.state = SeqState.RUNNING
        assert self._track is not None
        self._emit(
            StepEnded(self.run_id, self.channel_id, self._track.index, "probe", "probe ok", t_s)
        )
        self._ended, self._track = self._track, None
        if self._resume is None:
            self._emit(
                MeasurementTaken(
                    self.run_id,
                    self.channel_id,
                    self._step_counter,
                    "ocv_probe",
                    json.dumps({"voltage_v": v, "temperature_c": sample.temperature_c}),
                    self.channel.identity.describe(),
                    t_s,
                )
            )
        self._resume = None
        if not self._on_tails(later):
            self._hold_or_next(t_s)
        return True

    def _software_end(self, track: _StepTrack, sample: CyclerSample, t_s: float) -> str:
        end = track.step.end
        step_time = sample.step_time_s
        if end.time_s is not None and step_time >= end.time_s - 1e-9:
            return "time"
        # A CCCV step reaches its voltage and then holds it: only its current ends it.
        if (
            end.voltage_above_v is not None
            and sample.voltage_v >= end.voltage_above_v
            and track.step.mode is not StepMode.CCCV
        ):
            return "voltage_above"
        if end.voltage_below_v is not None and sample.voltage_v <= end.voltage_below_v:
            return "voltage_below"
        if (
            end.current_below_a is not None
            and track.step.mode in (StepMode.CCCV, StepMode.CV)
            and step_time > 0
            and abs(sample.current_a) < end.current_below_a
        ):
            return "current_below"
        moved = abs(track.capacity_ah - track.moved_before_ah)
        if end.capacity_ah is not None and moved >= end.capacity_ah - 1e-12:
            return "capacity"
        if end.dvdt_below_v_per_s is not None:
            self._volts.append((t_s, sample.voltage_v))
            while self._volts and t_s - self._volts[0][0] > DTDT_WINDOW_S:
                self._volts.popleft()
            t0, v0 = self._volts[0]
            span = t_s - t0
            if span >= DTDT_WINDOW_S * 0.9 and abs(sample.voltage_v - v0) / span < (
                end.dvdt_below_v_per_s
            ):
                return "dvdt_below"
        return ""

    def _on_status(self, track: _StepTrack, status: ChannelStatus, now: float) -> None:
        if status.state is ChannelState.PROTECTED:
            self._stop_output()
            self._emit(
                LimitTripped(
                    self.run_id,
                    self.channel_id,
                    f"instrument_protection:{status.protect_code or ''}",
                    math.nan,
                    math.nan,
                    "",
                    now,
                )
            )
            self._end(
                RunOutcome.TRIPPED,
                f"instrument protection tripped ({status.protect_code}: {status.message})",
            )
        elif status.state is ChannelState.FAULT:
            self._fail("instrument_fault", status.message or "the instrument reported a fault")
        elif status.state is ChannelState.FINISHED and self.state is SeqState.RUNNING:
            self._finish_step(track, "instrument end", track.last_t_s or now)
        elif status.state is ChannelState.IDLE and self.state is SeqState.RUNNING:
            self._fail("instrument_idle", "the channel stopped its output without being told to")

    def _finish_step(
        self, track: _StepTrack, reason: str, t_s: float, later: Sequence[CyclerSample] = ()
    ) -> None:
        self._emit(
            StepEnded(
                self.run_id,
                self.channel_id,
                track.index,
                track.op.kind,
                reason,
                t_s,
                track.capacity_ah,
                track.energy_wh,
            )
        )
        apply_op_to_context(track.op, self.ctx, moved_ah=track.capacity_ah)
        if track.op.role == "ocv" and track.last_v is not None:
            self._emit(
                MeasurementTaken(
                    self.run_id,
                    self.channel_id,
                    track.index,
                    "ocv",
                    json.dumps({"voltage_v": track.last_v}),
                    self.channel.identity.describe(),
                    t_s,
                )
            )
        self._ended, self._track = track, None
        self._volts.clear()
        if not self._on_tails(later):
            self._next_op(t_s)

    def _on_tails(self, rows: Sequence[CyclerSample]) -> bool:
        """Store rows the step that just ended recorded after its end; True if one ended the run."""
        return any(self._on_tail(row) for row in rows)

    def _on_tail(self, sample: CyclerSample) -> bool:
        """Store one row recorded after the last step's end (a sample like any other, checked
        against the safety limits, but no longer judged by the ended step's end conditions).
        True if it ended the run."""
        ended = self._ended
        if ended is None or sample.step_time_s <= ended.last_step_time_s:
            return False  # nothing to attach it to, or a repeated reading
        garbage = _garbage(sample)
        if garbage:
            self._fail("garbage_reading", garbage)
            return True
        t_s = ended.start_t_s + sample.step_time_s
        ended.last_step_time_s = sample.step_time_s
        ended.last_t_s, ended.last_v, ended.last_i = t_s, sample.voltage_v, sample.current_a
        self._seq += 1
        self._emit(
            Sample(
                self.run_id,
                self.channel_id,
                self._seq,
                t_s,
                ended.index,
                sample.voltage_v,
                sample.current_a,
                sample.temperature_c,
            )
        )
        return self._check_sample_limits(ended, sample, t_s)

    # --- operations -----------------------------------------------------------------------------

    def _next_op(self, now: float) -> None:
        """Start the next operation, expanding the next top-level recipe step when needed."""
        while self._op_pos + 1 >= len(self._ops):
            self._top += 1
            if self._top >= len(self.recipe.steps):
                self._stop_output()
                self._end(RunOutcome.COMPLETED, "recipe completed")
                return
            self._ctx_at_top = self.ctx.to_json()
            self._ops = expand_step(self.recipe.steps[self._top], self.ctx)
            self._op_pos = -1
        self._op_pos += 1
        self._start_op(self._ops[self._op_pos], now)

    def _start_op(self, op: Op, now: float) -> None:
        carry, self._carry = self._carry, None
        if isinstance(op, CyclerOp):
            if carry is None:
                self._begin_cycler_step(op, now)
            else:
                elapsed_s, moved_ah, energy_wh = carry
                track = _StepTrack(op, op.step, -1, now, elapsed_s, moved_ah, energy_wh)
                track.capacity_ah, track.energy_wh = moved_ah, energy_wh
                self._begin_remaining(op, now, track)
            self.state = SeqState.RUNNING
        elif isinstance(op, MeasureOp):
            self._stop_output()
            future = self.meters.acir() if op.kind == "acir" else self.meters.eis(op.frequencies_hz)
            if future is None:
                self._fail(
                    "missing_meter",
                    f"the recipe needs an {op.kind.upper()} meter on "
                    f"channel {self.channel_id} and the bench has none",
                )
                return
            self._step_counter += 1
            self._emit(
                StepStarted(
                    self.run_id,
                    self.channel_id,
                    self._step_counter,
                    op.kind,
                    op.label,
                    now,
                    self._token(),
                )
            )
            self._pending = future
            self._pending_op = op
            self.state = SeqState.MEASURING
        else:
            self._step_counter += 1
            values = {"kind": op.kind, "due_t_s": now + op.after_s, "after_s": op.after_s}
            self._emit(
                MeasurementTaken(
                    self.run_id,
                    self.channel_id,
                    self._step_counter,
                    "follow_up",
                    json.dumps(values, sort_keys=True),
                    "",
                    now,
                )
            )
            self._next_op(now)

    def _token(self, carry: _StepTrack | None = None) -> str:
        token: dict[str, Any] = {"top": self._top, "op": self._op_pos, "ctx": self._ctx_at_top}
        if carry is not None:
            # What earlier segments of this op did (before a pause or a crash).
            token["done"] = [carry.elapsed_before_s, carry.moved_before_ah, carry.energy_before_wh]
        return json.dumps(token, sort_keys=True)

    def _tick_measuring(self) -> None:
        future, op = self._pending, self._pending_op
        assert future is not None and op is not None
        if not future.done():
            return
        self._pending = None
        self._pending_op = None
        now = self.clock.now()
        try:
            result = future.result()
        except Exception as error:
            self._fail("meter_error", f"{op.kind} measurement failed: {error}")
            return
        if isinstance(result, AcirReading):
            values: dict[str, Any] = {
                "status": result.status.value,
                "resistance_ohm": result.resistance_ohm,
                "voltage_v": result.voltage_v,
                "frequency_hz": result.frequency_hz,
            }
            identity, t_s = result.identity, result.t_s
            if result.status is ReadingStatus.REVERSED:
                self._emit_measurement(op.kind, values, identity, t_s)
                self._fail("reversed_polarity", "the ACIR meter reads reversed polarity")
                return
        else:
            values = {
                "points": [
                    [p.frequency_hz, p.z_real_ohm, p.z_imag_ohm, p.voltage_v, p.status.value]
                    for p in result.points
                ],
                "t_start_s": result.t_start_s,
                "t_end_s": result.t_end_s,
            }
            identity, t_s = result.identity, result.t_end_s
        self._emit_measurement(op.kind, values, identity, t_s)
        self._emit(
            StepEnded(self.run_id, self.channel_id, self._step_counter, op.kind, "measured", now)
        )
        self._hold_or_next(now)

    def _hold_or_next(self, now: float) -> None:
        """After a probe or measurement: hold if a pause is waiting, else start the next op."""
        if self._pause_requested:
            self._pause_requested = False
            self.state = SeqState.PAUSED
        else:
            self._next_op(now)

    def _emit_measurement(
        self, kind: str, values: dict[str, Any], identity: InstrumentIdentity, t_s: float
    ) -> None:
        self._emit(
            MeasurementTaken(
                self.run_id,
                self.channel_id,
                self._step_counter,
                kind,
                json.dumps(values, sort_keys=True),
                identity.describe(),
                t_s,
            )
        )

    # --- resume ---------------------------------------------------------------------------------

    def _restore(self, point: ResumePoint) -> None:
        """Continue a crashed run at the step its checkpoint names, with what is left of it."""
        self._seq = point.last_seq
        self._step_counter = point.step_index
        if not point.resume_token:
            return  # it crashed before its first step: start from the top
        token = json.loads(point.resume_token)
        self._top = int(token["top"])
        self.ctx.update(token["ctx"])
        self._ctx_at_top = dict(token["ctx"])
        # Re-expanding from the context saved at the top step's start reproduces its ops (and
        # the context changes their expansion made); _next_op then advances onto the op to redo.
        self._ops = expand_step(self.recipe.steps[self._top], self.ctx)
        self._op_pos = int(token["op"]) - 1
        done_s, done_ah, done_wh = token.get("done", (0.0, 0.0, 0.0))
        carry = (done_s + point.elapsed_s, done_ah + point.moved_ah, done_wh + point.energy_wh)
        if any(carry):
            self._carry = carry

    # --- ending ---------------------------------------------------------------------------------

    def _stop_output(self) -> None:
        self.stop_t_s = self.clock.now()
        self.channel.stop()

    def _trip(self, limit: str, value: float, threshold: float, unit: str, t_s: float) -> bool:
        self._stop_output()
        self._emit(
            LimitTripped(
                self.run_id, self.channel_id, limit, value, threshold, unit, self.clock.now()
            )
        )
        self._end(RunOutcome.TRIPPED, f"{limit}: {value:.6g} {unit} beyond {threshold:.6g} {unit}")
        return True

    def _refuse(self, cause: str) -> None:
        self._stop_output()
        self._end(RunOutcome.ABORTED, f"refused: {cause}")

    def _fail(self, kind: str, message: str) -> None:
        try:
            self._stop_output()
        except Exception as error:
            message += f"; stopping the output also failed: {error!r}"
        self._emit(Fault(self.run_id, self.channel_id, kind, message, self.clock.now()))
        self._end(RunOutcome.FAULTED, f"{kind}: {message}")

    def _end(self, outcome: RunOutcome, reason: str) -> None:
        if self.state is SeqState.DONE:
            return
        if self._track is not None:
            track = self._track
            self._emit(
                StepEnded(
                    self.run_id,
                    self.channel_id,
                    track.index,
                    track.op.kind,
                    outcome.value,
                    self.clock.now(),
                    track.capacity_ah,
                    track.energy_wh,
                )
            )
            self._track = None
        self.state = SeqState.DONE
        self.outcome = outcome
        self.end_reason = reason
        self._emit(RunEnded(self.run_id, self.channel_id, outcome, reason, self.clock.now()))


def _garbage(sample: CyclerSample) -> str:
    values = {
        "voltage_v": sample.voltage_v,
        "current_a": sample.current_a,
        "step_time_s": sample.step_time_s,
    }
    for name, value in values.items():
        if not math.isfinite(value):
            return f"{name} is {value!r}"
    if abs(sample.voltage_v) > SANE_VOLTAGE_V:
        return f"voltage {sample.voltage_v!r} V is not a plausible cell voltage"
    if abs(sample.current_a) > SANE_CURRENT_A:
        return f"current {sample.current_a!r} A is not plausible"
    if sample.step_time_s < 0:
        return f"negative step time {sample.step_time_s!r} s"
    temp = sample.temperature_c
    if temp is not None and (
        not math.isfinite(temp) or not SANE_TEMPERATURE_C[0] <= temp <= SANE_TEMPERATURE_C[1]
    ):
        return f"temperature {temp!r} degC is not plausible"
    return ""


def _looser_protection(asked: ProtectionLimits, held: ProtectionLimits) -> str:
    """What the instrument holds that is looser than asked (beyond 0.5 % / 1 mV rounding)."""
    problems = []
    tol_v = 0.001
    if held.voltage_max_v > asked.voltage_max_v + tol_v:
        problems.append(f"voltage_max {held.voltage_max_v} > {asked.voltage_max_v}")
    if held.voltage_min_v < asked.voltage_min_v - tol_v:
        problems.append(f"voltage_min {held.voltage_min_v} < {asked.voltage_min_v}")
    if held.current_max_a > asked.current_max_a * 1.005:
        problems.append(f"current_max {held.current_max_a} > {asked.current_max_a}")
    if asked.temperature_max_c is not None and (
        held.temperature_max_c is None or held.temperature_max_c > asked.temperature_max_c + 0.5
    ):
        problems.append(f"temperature_max {held.temperature_max_c} vs {asked.temperature_max_c}")
    return ", ".join(problems)

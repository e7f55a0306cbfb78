"""Keithley 2450 / 2460 / 2461 SourceMeter as a single-channel cycler (SCPI, LF terminated).

Satisfies ``station.instruments.CyclerChannel``. Wire contract: ``docs/instrument-protocols.md``
(Keithley section); background in ``../shared/reference/instruments.md`` section 2.1 and the
safety rules of ``../shared/reference/reliability.md`` section 6 (S4-S7):

- the output-off state is ``HIMP`` (the default ``NORM`` off state is a 0 V source that drains
  the cell); it is set at connect and read back before every output on;
- ``arm_protection`` writes the over-voltage protection level and reads it back; every step is
  checked against the armed limits before anything is sent, and its compliance limit (VLIM or
  ILIM) is read back before the output goes on;
- a CC discharge is sent as CV at the voltage floor with ILIM = |I|, so a late host never
  over-discharges the cell; CCCV is CV at the end voltage with ILIM = I;
- readings carry the instrument's own time: a ``SimpleLoop`` trigger model fills
  ``defbuffer1`` and ``poll`` reads ``READ,SOUR,REL`` triplets from the last index seen;
- a host-side watchdog turns the output off when the owning worker stops polling;
- after a reconnect nothing that moves the output is re-sent: an interrupted ``start_step`` turns
  the output off and reports LinkDown, ``poll`` simply reads again.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from drivers.errors import (
    InstrumentError,
    InstrumentReportedError,
    InterlockOpen,
    LinkDown,
    ProtocolError,
    SettingError,
    TransportTimeout,
)
from drivers.identity import InstrumentIdentity
from drivers.readings import (
    ChannelState,
    ChannelStatus,
    CyclerSample,
    CyclerStep,
    ProtectionLimits,
    StepMode,
)
from drivers.scpi import (
    Setting,
    format_number,
    in_range,
    on_off,
    parse_int,
    parse_number,
    parse_on_off,
)
from drivers.session import Backoff, Session, log_fault
from drivers.timebase import Clock, WallClock
from drivers.transport import Transport

log = logging.getLogger("drivers.keithley_24xx")

TERMINATION = "\n"
BUFFER = '"defbuffer1"'
OVERFLOW = 9.9e37
# Continuous (DC) ratings per model: (max |V|, max |I|).
RATINGS = {"2450": (200.0, 1.05), "2460": (100.0, 7.0), "2461": (100.0, 7.0)}
# Over-voltage protection levels the SourceMeters accept (V); the driver picks the lowest level at
# or above the armed maximum so the instrument clamps close to the cell's limit.
PROTECTION_LEVELS_V = (2, 5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180)
_MAX_ERRORS_READ = 10
# Read-only queries are asked again after a lost or garbled reply (a fault may hit the retry).
_QUERY_ATTEMPTS = 3
_MAX_READINGS_PER_QUERY = 1000
# The reading buffer holds 100,000 readings; the loop stops when it is full (27 h at 1 s).
_TRIGGER_COUNT = 100_000
# A CC discharge sent as CV at its floor approaches the floor from above; within this much the
# floor counts as reached (V).
_FLOOR_TOLERANCE_V = 0.001
_ERROR_REPLY = re.compile(r'\s*([+-]?\d{1,6})\s*,\s*"(.*)"\s*')


def parse_error_reply(reply: str, *, address: str = "") -> tuple[int, str]:
    """Parse ``:SYST:ERR?`` -> (code, message)."""
    match = _ERROR_REPLY.fullmatch(reply)
    if match is None:
        raise ProtocolError(
            f":SYST:ERR? reply is not 'code,\"message\"': {reply!r}", address=address
        )
    return int(match.group(1)), match.group(2)


@dataclass(frozen=True)
class RawReading:
    """One ``READ,SOUR,REL`` triplet from the reading buffer."""

    read: float
    source: float
    relative_s: float


def parse_trace_data(reply: str, count: int, *, address: str = "") -> list[RawReading]:
    """Parse ``:TRAC:DATA?`` flattened triplets; exactly ``count`` readings, exponents required."""
    fields = reply.split(",")
    if len(fields) != 3 * count:
        raise ProtocolError(
            f":TRAC:DATA? returned {len(fields)} fields, expected {3 * count}: {reply[:80]!r}",
            address=address,
        )
    values = [
        parse_number(f, what=":TRAC:DATA? field", address=address, require_exponent=True)
        for f in fields
    ]
    readings = [RawReading(*values[i : i + 3]) for i in range(0, len(values), 3)]
    for reading in readings:
        if reading.relative_s < 0 or reading.relative_s >= OVERFLOW / 10:
            raise ProtocolError(
                f"reading time {reading.relative_s!r} s is invalid", address=address
            )
    return readings


@dataclass
class _StepPlan:
    """How a step is put on the wire and read back."""

    mode: StepMode
    source_function: str  # "CURR" or "VOLT"
    level: float  # A or V
    limit: float  # VLIM (V) or ILIM (A)
    output_on: bool
    floor_v: float | None = None  # CC discharge as CV at a floor


class Keithley24xx:
    """One SourceMeter channel with a cell attached."""

    MODELS = tuple(f"MODEL {m}" for m in RATINGS)

    nplc = Setting(
        ":SENS:VOLT:NPLC {}",
        ":SENS:VOLT:NPLC?",
        "Voltage integration time in power-line cycles (0.01 to 10).",
        to_wire=in_range(0.01, 10.0),
        from_wire=lambda text: parse_number(text, what="NPLC"),
    )
    remote_sense = Setting(
        ":SENS:VOLT:RSEN {}",
        ":SENS:VOLT:RSEN?",
        "4-wire (remote) voltage sense, bool.",
        to_wire=on_off,
        from_wire=parse_on_off,
    )

    def __init__(
        self,
        transport: Transport,
        *,
        nplc: float = 1.0,
        remote_sense: bool = True,
        watchdog_s: float = 10.0,
        watchdog_thread: bool = True,
        channel_id: str = "1",
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config: dict[str, Any] = {"nplc": nplc, "remote_sense": remote_sense}
        for name, value in self._config.items():
            self._setting(name).command_for(value)
        if watchdog_s <= 0:
            raise SettingError(f"watchdog_s must be positive, got {watchdog_s}")
        self.watchdog_s = watchdog_s
        self._watchdog_enabled = watchdog_thread
        self._channel_id = channel_id
        self._clock: Clock = clock or WallClock()
        self._monotonic = monotonic
        self._limits: ProtectionLimits | None = None
        self._protection_level_v: float | None = None
        self._plan: _StepPlan | None = None
        self._step: CyclerStep | None = None
        self._step_index = -1
        self._step_offset_s = 0.0
        self._programme_t0_s: float | None = None
        self._last_index = 0
        self._previous: CyclerSample | None = None
        self._capacity_ah = 0.0
        self._energy_wh = 0.0
        self._finished = False
        self._stopped = False
        self._last_poll_s = monotonic()
        self._watchdog_stop = threading.Event()
        self._watchdog_thread: threading.Thread | None = None
        self.watchdog_tripped = False
        self.faults: dict[str, int] = {}
        self._session = Session(
            transport, identify=self._identify, setup=self._setup, backoff=backoff, sleep=sleep
        )
        self._session.connect()
        self._rating_v, self._rating_a = RATINGS[self.identity.model.split()[-1]]

    # -- CyclerChannel --------------------------------------------------------------------------

    @property
    def identity(self) -> InstrumentIdentity:
        return self._session.identity

    @property
    def channel_id(self) -> str:
        return self._channel_id

    @property
    def address(self) -> str:
        return self._session.transport.address

    @property
    def protection_level_v(self) -> float | None:
        """The over-voltage protection level the instrument holds (V), once armed."""
        return self._protection_level_v

    def arm_protection(self, limits: ProtectionLimits) -> ProtectionLimits:
        """Write OVP and the HIMP off state, read both back; return what the instrument enforces.

        The instrument holds the OVP level (``voltage_max_v`` of the result); the voltage floor
        and current maximum are enforced through every step's compliance limit. Temperature and
        capacity protection are not instrument-side here (``None`` in the result).
        """
        self._check_limits(limits)
        level = next(v for v in PROTECTION_LEVELS_V if v >= limits.voltage_max_v)

        def exchange(transport: Transport) -> None:
            transport.write(f":SOUR:VOLT:PROT PROT{level}")
            held = transport.query(":SOUR:VOLT:PROT?").strip().upper()
            if held != f"PROT{level}":
                raise InstrumentReportedError(
                    f"OVP written as PROT{level} but the instrument holds {held!r}",
                    address=transport.address,
                )
            self._verify_off_state(transport)
            self._check_errors(transport, after="arm_protection")

        self._run_idempotent(exchange)
        self._limits = limits
        self._protection_level_v = float(level)
        return ProtectionLimits(
            voltage_min_v=limits.voltage_min_v,
            voltage_max_v=float(level),
            current_max_a=limits.current_max_a,
        )

    def start_step(self, step: CyclerStep) -> None:
        """Put one step on the output; compliance read back and interlock checked before ON."""
        plan = self._plan_step(step)
        try:
            self._session.run(
                lambda transport: self._start(transport, plan, step.record_interval_s)
            )
        except (LinkDown, TransportTimeout, ProtocolError) as exc:
            # The output state is unknown: make it safe, never re-send the step.
            log_fault(self.address, "step start interrupted; turning the output off", exc)
            self._emergency_off(resync=not isinstance(exc, LinkDown))
            raise
        self._step = step
        self._plan = plan
        self._step_index += 1
        now_s = self._clock.now()
        if self._programme_t0_s is None:
            self._programme_t0_s = now_s
        self._step_offset_s = now_s - self._programme_t0_s
        self._last_index = 0
        self._previous = None
        self._capacity_ah = 0.0
        self._energy_wh = 0.0
        self._finished = False
        self._stopped = False
        self._kick_watchdog()
        if plan.output_on:
            self._start_watchdog()
        else:
            self._stop_watchdog()

    def poll(self) -> ChannelStatus:
        """Read every buffered reading since the last poll and the output state."""
        self._kick_watchdog()
        if self.watchdog_tripped:
            return ChannelStatus(
                ChannelState.FAULT,
                step_index=max(self._step_index, 0),
                message="host watchdog turned the output off (polling stopped)",
            )
        if self._plan is None:
            return ChannelStatus(ChannelState.IDLE)
        raw, output_on = self._session.run(self._read_new, recover=self._read_new)
        status = self._status(raw, output_on)
        if self._stopped:
            return ChannelStatus(ChannelState.IDLE, status.samples, self._step_index)
        return status

    def stop(self) -> None:
        """Output off (HIMP) and verified off, trigger model aborted. Idempotent."""
        self._stop_watchdog()

        def exchange(transport: Transport) -> None:
            transport.write(":OUTP OFF")
            transport.write(":ABOR")
            if parse_on_off(transport.query(":OUTP?")):
                raise InstrumentReportedError(
                    "output still on after :OUTP OFF", address=self.address
                )

        self._run_idempotent(exchange)
        # The plan stays so the next poll still delivers readings taken before the stop.
        self._stopped = True

    def close(self) -> None:
        """Stop the watchdog and close the link (the output stays as it is: call stop() first)."""
        self._stop_watchdog()
        self._session.close()

    # -- steps ----------------------------------------------------------------------------------

    def _check_limits(self, limits: ProtectionLimits) -> None:
        values = (limits.voltage_min_v, limits.voltage_max_v, limits.current_max_a)
        if not all(math.isfinite(v) for v in values):
            raise SettingError(f"protection limits must be finite: {limits}")
        if not 0 <= limits.voltage_min_v < limits.voltage_max_v:
            raise SettingError(
                f"voltage_min_v {limits.voltage_min_v} must be >= 0 and below voltage_max_v "
                f"{limits.voltage_max_v}"
            )
        if limits.voltage_max_v > min(self._rating_v, PROTECTION_LEVELS_V[-1]):
            raise SettingError(
                f"voltage_max_v {limits.voltage_max_v} V exceeds the {self.identity.model} rating"
            )
        if not 0 < limits.current_max_a <= self._rating_a:
            raise SettingError(
                f"current_max_a {limits.current_max_a} A must be in (0, {self._rating_a}] for the "
                f"{self.identity.model}"
            )

    def _plan_step(self, step: CyclerStep) -> _StepPlan:
        limits = self._limits
        if limits is None:
            raise SettingError("arm_protection() must succeed before start_step()")
        if step.record_interval_s <= 0 or not math.isfinite(step.record_interval_s):
            raise SettingError(f"record_interval_s must be positive, got {step.record_interval_s}")
        if step.mode is StepMode.REST:
            return _StepPlan(StepMode.REST, "CURR", 0.0, limits.voltage_max_v, output_on=False)
        current = step.current_a
        if not math.isfinite(current) or current == 0 or abs(current) > limits.current_max_a:
            raise SettingError(
                f"step current_a {current} A must be non-zero and within +-{limits.current_max_a} A"
            )

        def within(v: float, what: str) -> float:
            if not limits.voltage_min_v <= v <= limits.voltage_max_v:
                raise SettingError(
                    f"step {what} {v} V is outside {limits.voltage_min_v}-{limits.voltage_max_v} V"
                )
            return v

        if step.mode is StepMode.CC:
            if current > 0:
                clamp = step.voltage_v or step.end.voltage_above_v or limits.voltage_max_v
                return _StepPlan(StepMode.CC, "CURR", current, within(clamp, "voltage clamp"), True)
            floor = step.voltage_v or step.end.voltage_below_v or limits.voltage_min_v
            floor = within(floor, "voltage floor")
            return _StepPlan(StepMode.CC, "VOLT", floor, abs(current), True, floor_v=floor)
        if step.voltage_v is None:
            raise SettingError(f"a {step.mode.value} step needs voltage_v")
        level = within(step.voltage_v, "voltage_v")
        return _StepPlan(step.mode, "VOLT", level, abs(current), True)

    def step_commands(self, plan: _StepPlan) -> list[str]:
        """Set-point commands for a plan, compliance limit before level."""
        if plan.source_function == "CURR":
            commands = [
                ":SOUR:FUNC CURR",
                ':SENS:FUNC "VOLT"',
                f":SOUR:CURR:VLIM {format_number(plan.limit)}",
                f":SOUR:CURR {format_number(plan.level)}",
            ]
        else:
            commands = [
                ":SOUR:FUNC VOLT",
                ':SENS:FUNC "CURR"',
                f":SOUR:VOLT:ILIM {format_number(plan.limit)}",
                f":SOUR:VOLT {format_number(plan.level)}",
            ]
        return commands

    def _start(self, transport: Transport, plan: _StepPlan, interval_s: float) -> None:
        transport.write(":ABOR")
        if not plan.output_on:
            transport.write(":OUTP OFF")
        for command in self.step_commands(plan):
            transport.write(command)
        limit_query = ":SOUR:CURR:VLIM?" if plan.source_function == "CURR" else ":SOUR:VOLT:ILIM?"
        held = parse_number(transport.query(limit_query), what=limit_query, address=self.address)
        if abs(held - plan.limit) > 1e-6 * max(abs(plan.limit), 1e-9):
            raise InstrumentReportedError(
                f"compliance limit written as {plan.limit:g} but the instrument holds {held:g}",
                address=self.address,
            )
        self._check_errors(transport, after="step set-points")
        transport.write(":TRAC:CLE")
        transport.write(f':TRIG:LOAD "SimpleLoop",{_TRIGGER_COUNT},{format_number(interval_s)}')
        if plan.output_on:
            self._verify_off_state(transport)
            if not parse_on_off(transport.query(":OUTP:INT:TRIP?")):
                raise InterlockOpen(
                    "interlock open: output not turned on", address=transport.address
                )
            transport.write(":OUTP ON")
            self._check_errors(transport, after=":OUTP ON")
        transport.write(":INIT")

    # -- reading --------------------------------------------------------------------------------

    def _read_new(self, transport: Transport) -> tuple[list[RawReading], bool]:
        end = self._query_with_retry(transport, f":TRAC:ACT:END? {BUFFER}")
        end_index = parse_int(end, what=":TRAC:ACT:END?", address=self.address)
        if end_index < self._last_index:
            self._count_fault("buffer_restarted")
            log_fault(self.address, f"reading buffer went back to {end_index}; reading it all")
            self._last_index = 0
        readings: list[RawReading] = []
        while self._last_index < end_index:
            first = self._last_index + 1
            last = min(end_index, self._last_index + _MAX_READINGS_PER_QUERY)
            count = last - first + 1
            query = f":TRAC:DATA? {first},{last},{BUFFER},READ,SOUR,REL"

            def check(reply: str, count: int = count) -> object:
                return parse_trace_data(reply, count, address=self.address)

            reply = self._query_with_retry(transport, query, check=check)
            readings += parse_trace_data(reply, count, address=self.address)
            self._last_index = last
        output_on = parse_on_off(self._query_with_retry(transport, ":OUTP?"))
        return readings, output_on

    def _run_idempotent(self, exchange: Callable[[Transport], None]) -> None:
        """Run an exchange that is safe to repeat (write-and-read-back), retrying line faults."""
        for attempt in range(1, _QUERY_ATTEMPTS + 1):
            try:
                self._session.run(exchange, recover=exchange)
                return
            except (TransportTimeout, ProtocolError) as exc:
                log_fault(self.address, "retrying an idempotent exchange", exc)
                if attempt == _QUERY_ATTEMPTS:
                    raise
                try:
                    self._session.resync(self._session.transport)
                except (TransportTimeout, ProtocolError) as again:
                    log_fault(self.address, "resync failed", again)

    def _query_with_retry(
        self,
        transport: Transport,
        query: str,
        check: Callable[[str], object] | None = None,
    ) -> str:
        """A read-only query, asked again (after a resync) when a reply is lost or garbled."""
        failure: TransportTimeout | ProtocolError | None = None
        for _ in range(_QUERY_ATTEMPTS):
            try:
                if failure is not None:
                    self._session.resync(transport)
                reply = transport.query(query)
                if check is not None:
                    check(reply)
                elif reply.strip() == "":
                    raise ProtocolError(f"empty reply to {query}", address=self.address)
                return reply
            except (TransportTimeout, ProtocolError) as exc:
                kind = "reply_lost" if isinstance(exc, TransportTimeout) else "garbage"
                self._count_fault(kind)
                log_fault(self.address, f"{kind} on {query}", exc)
                failure = exc
        assert failure is not None
        raise failure

    def _status(self, raw: list[RawReading], output_on: bool) -> ChannelStatus:
        plan = self._plan
        step = self._step
        assert plan is not None and step is not None
        samples: list[CyclerSample] = []
        fault = ""
        for reading in raw:
            if max(abs(reading.read), abs(reading.source)) >= OVERFLOW / 10:
                self._count_fault("overflow")
                log_fault(self.address, f"overflow reading {reading}")
                fault = "overflow reading (9.9E+37): measurement out of range"
                continue
            sample = self._to_sample(reading, plan)
            if sample is None:
                fault = "reading outside the instrument's ratings"
                continue
            samples.append(sample)
        if fault:
            return ChannelStatus(
                ChannelState.FAULT, tuple(samples), self._step_index, message=fault
            )
        if plan.output_on and not output_on:
            return ChannelStatus(
                ChannelState.PROTECTED,
                tuple(samples),
                self._step_index,
                protect_code="output_off",
                message="the instrument turned the output off",
            )
        if not self._finished and any(self._ended(s, step, plan) for s in samples):
            self._finished = True
        state = ChannelState.FINISHED if self._finished else ChannelState.RUNNING
        return ChannelStatus(state, tuple(samples), self._step_index)

    def _to_sample(self, reading: RawReading, plan: _StepPlan) -> CyclerSample | None:
        if plan.source_function == "CURR":
            voltage_v, current_a = reading.read, reading.source
        else:
            voltage_v, current_a = reading.source, reading.read
        if not plan.output_on:
            current_a = 0.0
        if abs(voltage_v) > 1.05 * self._rating_v or abs(current_a) > 1.05 * self._rating_a:
            self._count_fault("out_of_rating")
            log_fault(self.address, f"reading outside ratings: {reading}")
            return None
        previous = self._previous
        if previous is None:
            # The output came on at REL 0 with this step's set-point; the first interval counts at
            # the first reading's values (rectangle), the rest by the trapezoid rule.
            self._capacity_ah += current_a * reading.relative_s / 3600.0
            self._energy_wh += voltage_v * current_a * reading.relative_s / 3600.0
        else:
            dt_s = reading.relative_s - previous.step_time_s
            if dt_s < 0:
                self._count_fault("time_backwards")
                log_fault(self.address, f"reading time went backwards: {reading}")
                return None
            self._capacity_ah += 0.5 * (previous.current_a + current_a) * dt_s / 3600.0
            self._energy_wh += (
                0.5 * (previous.voltage_v * previous.current_a + voltage_v * current_a) * dt_s
            ) / 3600.0
        sample = CyclerSample(
            t_s=self._step_offset_s + reading.relative_s,
            step_index=self._step_index,
            step_time_s=reading.relative_s,
            voltage_v=voltage_v,
            current_a=current_a,
            step_capacity_ah=self._capacity_ah,
            step_energy_wh=self._energy_wh,
        )
        self._previous = sample
        return sample

    def _ended(self, sample: CyclerSample, step: CyclerStep, plan: _StepPlan) -> bool:
        end = step.end
        if end.time_s is not None and sample.step_time_s >= end.time_s:
            return True
        if end.voltage_above_v is not None and sample.voltage_v >= end.voltage_above_v:
            return True
        if end.voltage_below_v is not None:
            margin = _FLOOR_TOLERANCE_V if plan.floor_v is not None else 0.0
            if sample.voltage_v <= end.voltage_below_v + margin:
                return True
        if (
            end.current_below_a is not None
            and sample.step_time_s > 0
            and abs(sample.current_a) < end.current_below_a
        ):
            return True
        return end.capacity_ah is not None and abs(self._capacity_ah) >= end.capacity_ah

    # -- connection, settings, safety -----------------------------------------------------------

    def _identify(self, transport: Transport) -> InstrumentIdentity:
        identity = InstrumentIdentity.from_idn(transport.query("*IDN?"), address=transport.address)
        if identity.make.upper() != "KEITHLEY INSTRUMENTS" or identity.model not in self.MODELS:
            raise ProtocolError(
                f"expected a Keithley 2450/2460/2461, got {identity.describe()}",
                address=transport.address,
            )
        language = transport.query("*LANG?").strip().upper()
        if language != "SCPI":
            raise InstrumentReportedError(
                f"command set is {language!r}, not SCPI: switch it on the front panel",
                address=transport.address,
                code=language,
            )
        return identity

    def setup_commands(self) -> list[str]:
        return [
            "*CLS",
            ":OUTP:CURR:SMOD HIMP",
            self._setting("remote_sense").command_for(self._config["remote_sense"]),
            ":SENS:CURR:RSEN " + ("ON" if self._config["remote_sense"] else "OFF"),
            self._setting("nplc").command_for(self._config["nplc"]),
            f":SENS:CURR:NPLC {format_number(self._config['nplc'])}",
        ]

    def _setup(self, transport: Transport) -> None:
        for command in self.setup_commands():
            transport.write(command)
        self._check_errors(transport, after="set-up")

    def _verify_off_state(self, transport: Transport) -> None:
        held = transport.query(":OUTP:CURR:SMOD?").strip().upper()
        if held != "HIMP":
            raise InstrumentReportedError(
                f"output-off state is {held!r}, not HIMP: refusing to turn the output on",
                address=transport.address,
            )

    def _check_errors(self, transport: Transport, *, after: str) -> None:
        errors: list[tuple[int, str]] = []
        for _ in range(_MAX_ERRORS_READ):
            code, message = parse_error_reply(transport.query(":SYST:ERR?"), address=self.address)
            if code == 0:
                break
            errors.append((code, message))
        if not errors:
            return
        text = "; ".join(f"{code},{message}" for code, message in errors)
        if any("interlock" in message.lower() for _, message in errors):
            raise InterlockOpen(f"after {after}: {text}", address=self.address, code=errors[0][0])
        raise InstrumentReportedError(
            f"after {after}: {text}", address=self.address, code=errors[0][0]
        )

    def _setting(self, name: str) -> Setting:
        setting = getattr(type(self), name)
        assert isinstance(setting, Setting)
        return setting

    def _change_setting(self, name: str, command: str, value: Any) -> None:
        def exchange(transport: Transport) -> None:
            transport.write(command)
            if name == "nplc":
                transport.write(f":SENS:CURR:NPLC {format_number(value)}")
            if name == "remote_sense":
                transport.write(":SENS:CURR:RSEN " + ("ON" if value else "OFF"))
            self._check_errors(transport, after=command)

        previous = self._config[name]
        self._config[name] = value
        try:
            self._session.run(exchange, recover=lambda transport: None)
        except Exception:
            self._config[name] = previous
            raise

    def _query_setting(self, command: str) -> str:
        return self._session.run(
            lambda transport: transport.query(command),
            recover=lambda transport: transport.query(command),
        )

    def _count_fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def _emergency_off(self, *, resync: bool = False) -> None:
        """Best effort output off after a failed start (safe to repeat)."""
        transport = self._session.transport
        try:
            with transport.lock:
                if resync:
                    self._session.resync(transport)
                transport.write(":OUTP OFF")
        except InstrumentError as exc:
            log.error("%s could not turn the output off: %s", self.address, exc)

    # -- watchdog -------------------------------------------------------------------------------

    def _kick_watchdog(self) -> None:
        self._last_poll_s = self._monotonic()

    def _start_watchdog(self) -> None:
        self.watchdog_tripped = False
        if not self._watchdog_enabled:
            return
        if self._watchdog_thread is not None and self._watchdog_thread.is_alive():
            return
        self._watchdog_stop.clear()
        self._watchdog_thread = threading.Thread(
            target=self._watchdog_loop, name=f"watchdog {self.address}", daemon=True
        )
        self._watchdog_thread.start()

    def _stop_watchdog(self) -> None:
        self._watchdog_stop.set()
        thread = self._watchdog_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        self._watchdog_thread = None

    def _watchdog_loop(self) -> None:
        period_s = min(self.watchdog_s / 4.0, 1.0)
        while not self._watchdog_stop.wait(period_s):
            if self._monotonic() - self._last_poll_s > self.watchdog_s:
                self.check_watchdog()
                return

    def check_watchdog(self) -> bool:
        """Turn the output off if nobody polled for ``watchdog_s``; True when it tripped."""
        if self._monotonic() - self._last_poll_s <= self.watchdog_s:
            return False
        log.error(
            "%s host watchdog: no poll for %.1f s; turning the output off",
            self.address,
            self.watchdog_s,
        )
        self.watchdog_tripped = True
        self._emergency_off()
        return True


def open_keithley(address: str, settings: Mapping[str, Any], **objects: Any) -> Keithley24xx:
    """Open ``address`` (LF both ways; raw socket port 5025 or USB/GPIB) and connect."""
    from drivers.transport import open_transport

    options = dict(settings)
    timeout_s = float(options.pop("timeout_s", 2.0))
    baud_rate = options.pop("baud_rate", None)
    transport = open_transport(
        address,
        read_termination=TERMINATION,
        write_termination=TERMINATION,
        timeout_s=timeout_s,
        baud_rate=baud_rate,
    )
    try:
        return Keithley24xx(transport, **options, **objects)
    except BaseException:
        transport.close()
        raise

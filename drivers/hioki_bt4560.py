"""Hioki BT4560: impedance at selectable frequencies (0.1-1050 Hz), an EIS sweep by points.

Wire contract: ``docs/instrument-protocols.md`` (BT4560 section); background in
``../shared/reference/instruments.md`` section 1.2. One point is ``:FREQ <Hz>`` (read back with
``:FREQ?``), an optional host-side settling wait, then ``*TRG;*WAI;:FETC?`` whose reply comes
after ``max(0.5 s, 2/f)`` plus one wave, so the read timeout is computed per frequency.

A lost reply is recovered with ``:FETC?`` (no new trigger). After a reconnect the set-up (which
starts with ``*RST``) is re-sent, so the frequency is set again and the point measured again:
measuring has no effect on the cell.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from drivers.errors import InstrumentReportedError, ProtocolError, SettingError, TransportTimeout
from drivers.hioki_bt356x import parse_esr
from drivers.identity import InstrumentIdentity
from drivers.readings import EisSweep, ImpedancePoint, ReadingStatus
from drivers.scpi import (
    Setting,
    choice,
    format_number,
    parse_choice_number,
    parse_int,
    parse_number,
    parse_token,
    split_fields,
)
from drivers.session import Backoff, Session, log_fault
from drivers.timebase import Clock, WallClock
from drivers.transport import Transport

log = logging.getLogger("drivers.hioki_bt4560")

TERMINATION = "\r\n"
FREQUENCY_MIN_HZ = 0.1
FREQUENCY_MAX_HZ = 1050.0
RESISTANCE_RANGES_OHM = (3e-3, 30e-3, 300e-3, 3.0)
_RANGE_WIRE = {3e-3: "3E-3", 30e-3: "30E-3", 300e-3: "300E-3", 3.0: "3"}
SPEEDS = ("FAST", "MED", "SLOW")
# V above 1E+8 means the H/L leads are not connected properly (TBMEIS); R or X that large is an
# over-range sentinel, not an impedance.
_BAD_CONNECTION_V = 1e8
_OVER_RANGE_OHM = 1e8
_ZERO_ADJUST_TIMEOUT_S = 60.0
_FREQ_READBACK_REL = 1e-4
_RECOVERY_ATTEMPTS = 3


def measurement_time_s(frequency_hz: float) -> float:
    """Documented instrument time for one point: max(0.5 s, 2 / f) plus one wave of settling."""
    return max(0.5, 2.0 / frequency_hz) + 1.0 / frequency_hz


def parse_impedance_reply(reply: str, *, frequency_hz: float, address: str = "") -> ImpedancePoint:
    """Parse ``R,X,V`` (ohm, ohm, V). Bad connection and reversed polarity become statuses.

    Values of a point that is not VALID are NaN: they were not measured.
    """
    fields = split_fields(reply, 3, what="*TRG;*WAI;:FETC?", address=address)
    r_ohm, x_ohm, v_v = (
        parse_number(text, what=name, address=address, require_exponent=True)
        for text, name in zip(fields, ("R", "X", "V"), strict=True)
    )
    nan = math.nan
    if v_v > _BAD_CONNECTION_V:
        return ImpedancePoint(frequency_hz, nan, nan, nan, ReadingStatus.NO_CONTACT)
    if v_v < 0:
        return ImpedancePoint(frequency_hz, nan, nan, v_v, ReadingStatus.REVERSED)
    if abs(r_ohm) >= _OVER_RANGE_OHM or abs(x_ohm) >= _OVER_RANGE_OHM:
        return ImpedancePoint(frequency_hz, nan, nan, v_v, ReadingStatus.OVER_RANGE)
    return ImpedancePoint(frequency_hz, r_ohm, x_ohm, v_v)


class HiokiBT4560:
    """Hioki BT4560 EIS meter; satisfies ``station.instruments.EisMeter``."""

    MODELS = ("BT4560",)

    resistance_range_ohm = Setting(
        ":RES:RANG {}",
        ":RES:RANG?",
        "Impedance range in ohm: 3E-3, 30E-3, 300E-3 or 3.",
        to_wire=choice(_RANGE_WIRE),
        from_wire=parse_choice_number(RESISTANCE_RANGES_OHM),
    )
    speed = Setting(
        ":SAMP:RATE Z,{}",
        ":SAMP:RATE? Z",
        "Impedance integration speed: 'FAST', 'MED' or 'SLOW'.",
        to_wire=choice({s: s for s in SPEEDS}),
        from_wire=parse_token({"FAST": "FAST", "MED": "MED", "MEDIUM": "MED", "SLOW": "SLOW"}),
    )

    def __init__(
        self,
        transport: Transport,
        *,
        resistance_range_ohm: float = 30e-3,
        speed: str = "MED",
        settle_waves: float = 0.0,
        timeout_margin: float = 3.0,
        base_timeout_s: float = 5.0,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config: dict[str, Any] = {
            "resistance_range_ohm": resistance_range_ohm,
            "speed": speed,
        }
        for name, value in self._config.items():
            self._setting(name).command_for(value)
        if settle_waves < 0:
            raise SettingError(f"settle_waves must be >= 0, got {settle_waves}")
        if timeout_margin < 1 or base_timeout_s <= 0:
            raise SettingError("timeout_margin must be >= 1 and base_timeout_s positive")
        self.settle_waves = settle_waves
        self.timeout_margin = timeout_margin
        self.base_timeout_s = base_timeout_s
        self._clock: Clock = clock or WallClock()
        self._last_raw: str | None = None
        self.faults: dict[str, int] = {}
        self._session = Session(
            transport, identify=self._identify, setup=self._setup, backoff=backoff, sleep=sleep
        )
        self._session.connect()

    @property
    def identity(self) -> InstrumentIdentity:
        return self._session.identity

    @property
    def address(self) -> str:
        return self._session.transport.address

    def point_timeout_s(self, frequency_hz: float) -> float:
        """Read timeout for one point: base + margin x documented measurement time."""
        return self.base_timeout_s + self.timeout_margin * measurement_time_s(frequency_hz)

    def sweep(self, frequencies_hz: Sequence[float]) -> EisSweep:
        """Measure Z at each frequency, in the order given."""
        checked = [self._check_frequency(f) for f in frequencies_hz]
        if not checked:
            raise SettingError("sweep needs at least one frequency")
        t_start_s = self._clock.now()
        points = tuple(self._measure_point(f) for f in checked)
        return EisSweep(
            points=points, t_start_s=t_start_s, t_end_s=self._clock.now(), identity=self.identity
        )

    def zero_adjust(self) -> None:
        """Spot zero adjustment (``:ADJ? SPOT`` replies 0 after about 13.5 s)."""

        def exchange(transport: Transport) -> None:
            reply = transport.query(":ADJ? SPOT", timeout_s=_ZERO_ADJUST_TIMEOUT_S)
            if parse_int(reply, what=":ADJ? SPOT", address=self.address) != 0:
                raise InstrumentReportedError(
                    "zero adjustment failed", address=self.address, code=reply.strip()
                )

        self._session.run(exchange)

    def close(self) -> None:
        self._session.close()

    # -- points ---------------------------------------------------------------------------------

    def _check_frequency(self, frequency_hz: float) -> float:
        if isinstance(frequency_hz, bool) or not isinstance(frequency_hz, int | float):
            raise SettingError(f"frequency {frequency_hz!r} is not a number")
        if not FREQUENCY_MIN_HZ <= frequency_hz <= FREQUENCY_MAX_HZ:
            raise SettingError(
                f"frequency {frequency_hz!r} Hz is outside {FREQUENCY_MIN_HZ:g}-"
                f"{FREQUENCY_MAX_HZ:g} Hz"
            )
        return float(frequency_hz)

    def _measure_point(self, frequency_hz: float) -> ImpedancePoint:
        def exchange(transport: Transport) -> str:
            self._set_frequency(transport, frequency_hz)
            if self.settle_waves:
                self._clock.sleep(self.settle_waves / frequency_hz)
            return self._trigger_and_fetch(transport, frequency_hz)

        raw = self._session.run(exchange, recover=exchange)
        self._last_raw = raw
        return parse_impedance_reply(raw, frequency_hz=frequency_hz, address=self.address)

    def _set_frequency(self, transport: Transport, frequency_hz: float) -> None:
        """Set and read back the frequency; setting it again is harmless, so faults just retry."""
        failure: TransportTimeout | ProtocolError | None = None
        for _ in range(_RECOVERY_ATTEMPTS):
            try:
                if failure is not None:
                    self._session.resync(transport)
                transport.write(f":FREQ {format_number(frequency_hz)}")
                reply = transport.query(":FREQ?")
                held = parse_number(reply, what=":FREQ?", address=transport.address)
                break
            except (TransportTimeout, ProtocolError) as exc:
                self.faults["frequency_retry"] = self.faults.get("frequency_retry", 0) + 1
                log_fault(self.address, "frequency read-back failed; setting it again", exc)
                failure = exc
        else:
            assert failure is not None
            raise failure
        if abs(held - frequency_hz) > _FREQ_READBACK_REL * frequency_hz:
            raise InstrumentReportedError(
                f"frequency set to {frequency_hz:g} Hz but the meter holds {held:g} Hz",
                address=transport.address,
            )

    def _trigger_and_fetch(self, transport: Transport, frequency_hz: float) -> str:
        timeout_s = self.point_timeout_s(frequency_hz)
        try:
            reply = transport.query("*TRG;*WAI;:FETC?", timeout_s=timeout_s)
            parse_impedance_reply(reply, frequency_hz=frequency_hz, address=transport.address)
            return reply
        except (TransportTimeout, ProtocolError) as exc:
            failure: TransportTimeout | ProtocolError = exc
        for _ in range(_RECOVERY_ATTEMPTS):
            kind = "reply_lost" if isinstance(failure, TransportTimeout) else "garbage"
            self.faults[kind] = self.faults.get(kind, 0) + 1
            log_fault(self.address, f"eis {kind}; recovering with :FETC?", failure)
            try:
                return self._recover(transport, frequency_hz, timeout_s)
            except (TransportTimeout, ProtocolError) as exc:
                failure = exc
        raise failure

    def _recover(self, transport: Transport, frequency_hz: float, timeout_s: float) -> str:
        self._session.resync(transport)
        try:
            reply = transport.query(":FETC?", timeout_s=timeout_s)
        except TransportTimeout as exc:
            # No reading to fetch (the trigger never arrived): measure the point afresh.
            log_fault(self.address, ":FETC? got no reply; triggering again", exc)
            self._session.resync(transport)
            reply = transport.query("*TRG;*WAI;:FETC?", timeout_s=timeout_s)
        if reply == self._last_raw:
            self.faults["stale_fetch"] = self.faults.get("stale_fetch", 0) + 1
            log_fault(self.address, ":FETC? returned the previous point; measuring again")
            reply = transport.query("*TRG;*WAI;:FETC?", timeout_s=timeout_s)
        parse_impedance_reply(reply, frequency_hz=frequency_hz, address=transport.address)
        return reply

    # -- connection and settings ----------------------------------------------------------------

    def _setting(self, name: str) -> Setting:
        setting = getattr(type(self), name)
        assert isinstance(setting, Setting)
        return setting

    def _identify(self, transport: Transport) -> InstrumentIdentity:
        identity = InstrumentIdentity.from_idn(transport.query("*IDN?"), address=transport.address)
        if identity.make.upper() != "HIOKI" or identity.model.upper() not in self.MODELS:
            raise ProtocolError(
                f"expected HIOKI BT4560, got {identity.describe()}", address=transport.address
            )
        return identity

    def setup_commands(self) -> list[str]:
        return [
            "*RST",
            "*CLS",
            ":FUNC RV",
            ":TRIG:SOUR IMM",
            ":INIT:CONT OFF",
            ":AUT OFF",
            self._setting("resistance_range_ohm").command_for(self._config["resistance_range_ohm"]),
            self._setting("speed").command_for(self._config["speed"]),
        ]

    def _setup(self, transport: Transport) -> None:
        for command in self.setup_commands():
            transport.write(command)
        self._check_esr(transport, after="set-up")

    def _check_esr(self, transport: Transport, *, after: str) -> None:
        esr = parse_esr(transport.query("*ESR?"), address=transport.address)
        if esr:
            raise InstrumentReportedError(
                f"*ESR? = {esr} after {after}", address=transport.address, code=esr
            )

    def _change_setting(self, name: str, command: str, value: Any) -> None:
        def exchange(transport: Transport) -> None:
            transport.write(command)
            self._check_esr(transport, after=command)

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


def open_bt4560(address: str, settings: Mapping[str, Any], **objects: Any) -> HiokiBT4560:
    """Open ``address`` (CR+LF both ways) and connect a BT4560 with ``settings``."""
    from drivers.transport import open_transport

    options = dict(settings)
    timeout_s = float(options.pop("timeout_s", 5.0))
    baud_rate = options.pop("baud_rate", None)
    transport = open_transport(
        address,
        read_termination=TERMINATION,
        write_termination=TERMINATION,
        timeout_s=timeout_s,
        baud_rate=baud_rate,
    )
    try:
        return HiokiBT4560(transport, **options, **objects)
    except BaseException:
        transport.close()
        raise

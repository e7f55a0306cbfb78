"""Hioki BT3562 / BT3563 (and the ...A LAN variants): 1 kHz AC resistance + DC voltage.

Wire contract: ``docs/instrument-protocols.md`` (Hioki BT3562 section); background in
``../shared/reference/instruments.md`` section 1.1. Setting commands never reply, so every change
is followed by ``*ESR?`` (read-and-clear; 0 means accepted).

A lost or corrupted ``:READ?`` reply is recovered with ``:FETC?`` (the last reading, measured
again by nobody). If that reply equals the last reading already accepted, the lost ``:READ?`` may
never have measured, so the driver measures again rather than return a stale value. Measuring has
no effect on the cell, which is what makes the second ``:READ?`` safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from drivers.errors import InstrumentReportedError, ProtocolError, SettingError, TransportTimeout
from drivers.identity import InstrumentIdentity
from drivers.readings import AcirReading, ReadingStatus
from drivers.scpi import (
    Setting,
    choice,
    number_exponent,
    on_off,
    parse_choice_number,
    parse_int,
    parse_number,
    parse_on_off,
    parse_token,
    split_fields,
)
from drivers.session import Backoff, Session, log_fault
from drivers.timebase import Clock, WallClock
from drivers.transport import Transport

log = logging.getLogger("drivers.hioki_bt356x")

TERMINATION = "\r\n"

RESISTANCE_RANGES_OHM = (3e-3, 30e-3, 300e-3, 3.0, 30.0, 300.0, 3000.0)
_RESISTANCE_WIRE = {
    3e-3: "3E-3",
    30e-3: "30E-3",
    300e-3: "300E-3",
    3.0: "3",
    30.0: "30",
    300.0: "300",
    3000.0: "3000",
}
SAMPLE_RATES = ("EXF", "FAST", "MED", "SLOW")
_SAMPLE_RATE_TOKENS = {"EXF": "EXF", "EXFAST": "EXF", "FAST": "FAST", "MED": "MED"}
_SAMPLE_RATE_TOKENS |= {"MEDIUM": "MED", "SLOW": "SLOW"}
# Hioki writes over-range (+-OF) as 1E+9 and a contact fault as 1E+10; any exponent >= 5 is not a
# reading (instrument-protocols.md). Readings within 10 % above full scale are still on-scale.
_NO_CONTACT_OHM = 1e10
_MIN_INVALID_EXPONENT = 5
_FULL_SCALE_MARGIN = 1.1
# Zero-adjusted readings at the bottom of a range may be slightly negative; beyond this fraction of
# the range a negative resistance is not a measurement.
_NEGATIVE_TOLERANCE = 0.01
_ZERO_ADJUST_TIMEOUT_S = 30.0
# A fault can hit the recovery exchange itself; a few rounds make double faults a non-event.
_RECOVERY_ATTEMPTS = 3


def _classify(text: str, *, what: str, address: str) -> tuple[float, str]:
    """Return (value, kind) with kind 'ok', 'over' or 'no_contact'."""
    value = parse_number(text, what=what, address=address, require_exponent=True)
    if number_exponent(text) >= _MIN_INVALID_EXPONENT or abs(value) >= 1e8:
        if abs(value) >= 0.5 * _NO_CONTACT_OHM:
            return value, "no_contact"
        return value, "over"
    return value, "ok"


def parse_acir_reply(
    reply: str, *, resistance_range_ohm: float, voltage_range_v: float, address: str = ""
) -> tuple[ReadingStatus, float | None, float | None]:
    """Parse ``<R>,<V>`` into (status, resistance_ohm, voltage_v); ProtocolError if malformed.

    Over-range and no-contact are statuses, never numbers. A negative voltage means the probes
    are reversed. On-scale numbers beyond the selected range are refused as garbage.
    """
    r_text, v_text = split_fields(reply, 2, what=":READ?", address=address)
    r_value, r_kind = _classify(r_text, what="resistance", address=address)
    v_value, v_kind = _classify(v_text, what="voltage", address=address)
    if "no_contact" in (r_kind, v_kind):
        return ReadingStatus.NO_CONTACT, None, None
    if v_kind == "over":
        return ReadingStatus.OVER_RANGE, None, None
    if abs(v_value) > _FULL_SCALE_MARGIN * voltage_range_v:
        raise ProtocolError(
            f"voltage {v_value!r} V is outside the {voltage_range_v:g} V range", address=address
        )
    if v_value < 0:
        return ReadingStatus.REVERSED, None, None
    if r_kind == "over":
        return ReadingStatus.OVER_RANGE, None, v_value
    if not -_NEGATIVE_TOLERANCE * resistance_range_ohm <= r_value:
        raise ProtocolError(f"negative resistance {r_value!r} ohm", address=address)
    if r_value > _FULL_SCALE_MARGIN * resistance_range_ohm:
        raise ProtocolError(
            f"resistance {r_value!r} ohm is outside the {resistance_range_ohm:g} ohm range",
            address=address,
        )
    return ReadingStatus.VALID, r_value, v_value


def parse_esr(reply: str, *, address: str = "") -> int:
    value = parse_int(reply, what="*ESR?", address=address)
    if not 0 <= value <= 255:
        raise ProtocolError(f"*ESR? value {value} is not a register byte", address=address)
    return value


class HiokiBT3562:
    """Hioki BT3562 / BT3562A ACIR meter; satisfies ``station.instruments.AcirMeter``.

    The constructor connects: it reads ``*IDN?``, checks the model, sends the set-up sequence and
    checks ``*ESR?``. Settings are validated properties; assigning one sends it and checks
    ``*ESR?``; the value is re-sent after a reconnect.
    """

    MODELS: ClassVar[tuple[str, ...]] = ("BT3562", "BT3562A")
    VOLTAGE_RANGES_V: ClassVar[tuple[float, ...]] = (6.0, 60.0)

    resistance_range_ohm = Setting(
        ":RES:RANG {}",
        ":RES:RANG?",
        "Resistance range in ohm: 3E-3, 30E-3, 300E-3, 3, 30, 300 or 3000 (autorange is off).",
        to_wire=choice(_RESISTANCE_WIRE),
        from_wire=parse_choice_number(RESISTANCE_RANGES_OHM),
    )
    voltage_range_v = Setting(
        ":VOLT:RANG {}",
        ":VOLT:RANG?",
        "DC voltage range in V: 6 or 60.",
        to_wire=choice({6.0: "6", 60.0: "60"}),
        from_wire=parse_choice_number((6.0, 60.0)),
    )
    sample_rate = Setting(
        ":SAMP:RATE {}",
        ":SAMP:RATE?",
        "Integration speed: 'EXF' (2 ms), 'FAST' (12 ms), 'MED' (35 ms) or 'SLOW' (150 ms).",
        to_wire=choice({rate: rate for rate in SAMPLE_RATES}),
        from_wire=parse_token(_SAMPLE_RATE_TOKENS),
    )
    trigger_source = Setting(
        ":TRIG:SOUR {}",
        ":TRIG:SOUR?",
        "Trigger source: 'IMM' (internal, host-triggered) or 'EXT' (key / EXT I/O).",
        to_wire=choice({"IMM": "IMM", "EXT": "EXT"}),
        from_wire=parse_token({"IMM": "IMM", "IMMEDIATE": "IMM", "EXT": "EXT", "EXTERNAL": "EXT"}),
    )
    continuous = Setting(
        ":INIT:CONT {}",
        ":INIT:CONT?",
        "Free-run measuring (bool). Must be False for host-triggered :READ?.",
        to_wire=on_off,
        from_wire=parse_on_off,
    )

    def __init__(
        self,
        transport: Transport,
        *,
        resistance_range_ohm: float = 0.3,
        voltage_range_v: float = 6.0,
        sample_rate: str = "MED",
        read_timeout_s: float = 2.0,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config: dict[str, Any] = {
            "resistance_range_ohm": resistance_range_ohm,
            "voltage_range_v": voltage_range_v,
            "sample_rate": sample_rate,
        }
        for name, value in self._config.items():
            self._setting(name).command_for(value)
        if read_timeout_s <= 0:
            raise SettingError(f"read_timeout_s must be positive, got {read_timeout_s}")
        self.read_timeout_s = read_timeout_s
        self._clock: Clock = clock or WallClock()
        self._last_raw: str | None = None
        self.faults: dict[str, int] = {}
        self._session = Session(
            transport, identify=self._identify, setup=self._setup, backoff=backoff, sleep=sleep
        )
        self._session.connect()

    # -- AcirMeter ------------------------------------------------------------------------------

    @property
    def identity(self) -> InstrumentIdentity:
        return self._session.identity

    @property
    def address(self) -> str:
        return self._session.transport.address

    def measure(self) -> AcirReading:
        """Trigger one reading (``:READ?``); statuses for over-range, no contact and reversal."""
        raw = self._session.run(
            self._read_once, recover=lambda transport: self._recover(transport, resync=False)
        )
        status, resistance_ohm, voltage_v = self._parse(raw)
        self._last_raw = raw
        return AcirReading(
            status=status,
            resistance_ohm=resistance_ohm,
            voltage_v=voltage_v,
            t_s=self._clock.now(),
            identity=self.identity,
        )

    def zero_adjust(self) -> None:
        """Zero-adjust with the probes shorted (``:ADJ?`` replies 0 on success)."""

        def exchange(transport: Transport) -> None:
            reply = transport.query(":ADJ?", timeout_s=_ZERO_ADJUST_TIMEOUT_S)
            if parse_int(reply, what=":ADJ?", address=self.address) != 0:
                raise InstrumentReportedError(
                    "zero adjustment failed (are the probes shorted?)",
                    address=self.address,
                    code=reply.strip(),
                )

        self._session.run(exchange)

    def close(self) -> None:
        self._session.close()

    # -- settings plumbing ----------------------------------------------------------------------

    def _setting(self, name: str) -> Setting:
        setting = getattr(type(self), name)
        assert isinstance(setting, Setting)
        return setting

    def _change_setting(self, name: str, command: str, value: Any) -> None:
        def exchange(transport: Transport) -> None:
            transport.write(command)
            self._check_esr(transport, after=command)

        if name not in self._config:
            self._session.run(exchange, recover=lambda transport: None)
            return
        # Remembered first: a reconnect in the middle re-sends the whole set-up with the new value.
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

    # -- connection -----------------------------------------------------------------------------

    def _identify(self, transport: Transport) -> InstrumentIdentity:
        identity = InstrumentIdentity.from_idn(transport.query("*IDN?"), address=transport.address)
        if identity.make.upper() != "HIOKI" or identity.model.upper() not in self.MODELS:
            raise ProtocolError(
                f"expected HIOKI {'/'.join(self.MODELS)}, got {identity.describe()}",
                address=transport.address,
            )
        return identity

    def setup_commands(self) -> list[str]:
        """The set-up sequence for the current settings (instrument-protocols.md)."""
        return [
            "*CLS",
            ":ESE0 1",
            ":SYST:HEAD OFF",
            ":FUNC RV",
            ":AUT OFF",
            self._setting("resistance_range_ohm").command_for(self._config["resistance_range_ohm"]),
            self._setting("voltage_range_v").command_for(self._config["voltage_range_v"]),
            self._setting("sample_rate").command_for(self._config["sample_rate"]),
            ":TRIG:SOUR IMM",
            ":INIT:CONT OFF",
        ]

    def _setup(self, transport: Transport) -> None:
        for command in self.setup_commands():
            transport.write(command)
        self._check_esr(transport, after="set-up")

    def _check_esr(self, transport: Transport, *, after: str) -> None:
        esr = parse_esr(transport.query("*ESR?"), address=transport.address)
        if esr:
            raise InstrumentReportedError(
                f"*ESR? = {esr} after {after} ({_describe_esr(esr)})",
                address=transport.address,
                code=esr,
            )

    # -- measuring ------------------------------------------------------------------------------

    def _read_once(self, transport: Transport) -> str:
        try:
            reply = transport.query(":READ?", timeout_s=self.read_timeout_s)
            self._parse(reply)
            return reply
        except (TransportTimeout, ProtocolError) as exc:
            failure: TransportTimeout | ProtocolError = exc
        for _ in range(_RECOVERY_ATTEMPTS):
            kind = "reply_lost" if isinstance(failure, TransportTimeout) else "garbage"
            self._count_fault(kind)
            log_fault(self.address, f"acir {kind}; recovering with :FETC?", failure)
            try:
                return self._recover(transport)
            except (TransportTimeout, ProtocolError) as exc:
                failure = exc
        raise failure

    def _recover(self, transport: Transport, *, resync: bool = True) -> str:
        """Get the reading whose reply was lost without trusting a stale one.

        ``resync`` re-aligns replies first (not needed on a link that was just reopened).
        """
        if resync:
            self._session.resync(transport)
        try:
            reply = transport.query(":FETC?", timeout_s=self.read_timeout_s)
        except TransportTimeout as exc:
            log_fault(self.address, ":FETC? got no reply; measuring again", exc)
            self._session.resync(transport)
            reply = transport.query(":READ?", timeout_s=self.read_timeout_s)
        if reply == self._last_raw:
            self._count_fault("stale_fetch")
            log_fault(self.address, ":FETC? returned the previous reading; measuring again")
            reply = transport.query(":READ?", timeout_s=self.read_timeout_s)
        self._parse(reply)
        return reply

    def _parse(self, reply: str) -> tuple[ReadingStatus, float | None, float | None]:
        return parse_acir_reply(
            reply,
            resistance_range_ohm=float(self._config["resistance_range_ohm"]),
            voltage_range_v=float(self._config["voltage_range_v"]),
            address=self.address,
        )

    def _count_fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1


class HiokiBT3563(HiokiBT3562):
    """Hioki BT3563 / BT3563A: as the BT3562 with a 300 V range."""

    MODELS: ClassVar[tuple[str, ...]] = ("BT3563", "BT3563A")
    VOLTAGE_RANGES_V: ClassVar[tuple[float, ...]] = (6.0, 60.0, 300.0)

    voltage_range_v = Setting(
        ":VOLT:RANG {}",
        ":VOLT:RANG?",
        "DC voltage range in V: 6, 60 or 300.",
        to_wire=choice({6.0: "6", 60.0: "60", 300.0: "300"}),
        from_wire=parse_choice_number((6.0, 60.0, 300.0)),
    )


_ESR_BITS = {128: "power on", 32: "command error", 16: "execution error", 8: "device error"}
_ESR_BITS |= {4: "query error"}


def _describe_esr(esr: int) -> str:
    names = [name for bit, name in _ESR_BITS.items() if esr & bit]
    return ", ".join(names) or "other bits"


def open_bt356x(
    cls: type[HiokiBT3562], address: str, settings: Mapping[str, Any], **kwargs: Any
) -> HiokiBT3562:
    """Open ``address`` (CR+LF both ways) and connect a BT356x with ``settings``."""
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
        return cls(transport, read_timeout_s=timeout_s, **options, **kwargs)
    except BaseException:
        transport.close()
        raise

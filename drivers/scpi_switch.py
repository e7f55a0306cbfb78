"""A SCPI relay scanner / multiplexer that routes one shared meter to one cell at a time.

Wire contract: ``docs/instrument-protocols.md`` (SCPI switch section). The command set is the
common ``ROUTe`` subsystem of switch mainframes (Keysight 34980A, Keithley 7001 class): routes are
numbered channels in a SCPI channel list ``(@n)``; ``ROUT:CLOS (@n)`` closes one,
``ROUT:OPEN:ALL`` opens every relay, ``ROUT:CLOS? (@n)`` reads the relay state back (``1``
closed, ``0`` open) and ``SYST:ERR?`` pops the error queue (``+0,"No error"`` when empty).

Routing a meter is break-before-make: every relay is opened before the wanted one closes, so at
most one cell is ever on the meter's leads. A close is read back and a mismatch is refused (the
meter would otherwise measure whatever cell is connected, or none). Closing and opening are
idempotent, so a link lost mid-exchange is recovered by doing the whole exchange again after the
session's reconnect (whose set-up ``*RST`` opens every relay first).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from drivers.errors import InstrumentReportedError, ProtocolError, SettingError
from drivers.identity import InstrumentIdentity
from drivers.scpi import parse_int
from drivers.session import Backoff, Session
from drivers.timebase import Clock, WallClock
from drivers.transport import Transport

TERMINATION = "\n"
MAX_ROUTE = 9999  # a 34980A channel number is slot * 1000 + channel: four digits at most


def parse_error_queue(reply: str, *, address: str = "") -> tuple[int, str]:
    """Parse a ``SYST:ERR?`` reply ``<code>,"<message>"`` (code 0: the queue is empty)."""
    code_text, comma, message = reply.partition(",")
    if not comma:
        raise ProtocolError(
            f"SYST:ERR? reply is not 'code,\"message\"': {reply!r}", address=address
        )
    code = parse_int(code_text, what="SYST:ERR? code", address=address)
    return code, message.strip().strip('"')


class ScpiSwitch:
    """A SCPI switch: :meth:`close_route` connects route ``n`` alone, :meth:`open_all` none.

    ``channels`` (optional, 0 = not checked) is the number of routes the switch has; a route
    outside ``1..channels`` is refused before anything is sent. ``settle_s`` (s, station clock)
    is waited after a close is read back, for the relay contacts to stop bouncing before the
    meter measures through them.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        channels: int = 0,
        settle_s: float = 0.0,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 0:
            raise SettingError(f"channels must be a whole number >= 0, got {channels!r}")
        if isinstance(settle_s, bool) or not isinstance(settle_s, int | float) or settle_s < 0:
            raise SettingError(f"settle_s must be a number of seconds >= 0, got {settle_s!r}")
        self.channels = channels
        self.settle_s = float(settle_s)
        self._clock: Clock = clock or WallClock()
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

    def close_route(self, route: int) -> None:
        """Open every relay, close ``route``, read it back; raise unless it reads closed."""
        self._check_route(route)

        def exchange(transport: Transport) -> None:
            transport.write("ROUT:OPEN:ALL")
            transport.write(f"ROUT:CLOS (@{route})")
            state = transport.query(f"ROUT:CLOS? (@{route})").strip()
            self._check_errors(transport, after=f"ROUT:CLOS (@{route})")
            if state != "1":
                raise InstrumentReportedError(
                    f"route {route} did not close: ROUT:CLOS? (@{route}) reads {state!r}",
                    address=transport.address,
                    code=state,
                )

        self._session.run(exchange, recover=exchange)
        if self.settle_s:
            self._clock.sleep(self.settle_s)

    def open_all(self) -> None:
        """Open every relay (no cell on the meter's leads)."""

        def exchange(transport: Transport) -> None:
            transport.write("ROUT:OPEN:ALL")
            self._check_errors(transport, after="ROUT:OPEN:ALL")

        self._session.run(exchange, recover=exchange)

    def is_closed(self, route: int) -> bool:
        """Read the relay state of ``route`` (True: closed)."""
        self._check_route(route)

        def exchange(transport: Transport) -> bool:
            reply = transport.query(f"ROUT:CLOS? (@{route})").strip()
            if reply not in ("0", "1"):
                raise ProtocolError(
                    f"ROUT:CLOS? (@{route}) reply is not 0 or 1: {reply!r}",
                    address=transport.address,
                )
            return reply == "1"

        return self._session.run(exchange, recover=exchange)

    def close(self) -> None:
        self._session.close()

    def _check_route(self, route: int) -> None:
        top = self.channels or MAX_ROUTE
        if isinstance(route, bool) or not isinstance(route, int) or not 1 <= route <= top:
            raise SettingError(f"route {route!r} is not a channel 1 to {top}")

    def _identify(self, transport: Transport) -> InstrumentIdentity:
        return InstrumentIdentity.from_idn(transport.query("*IDN?"), address=transport.address)

    def _setup(self, transport: Transport) -> None:
        transport.write("*RST")
        transport.write("*CLS")
        self._check_errors(transport, after="set-up")

    def _check_errors(self, transport: Transport, *, after: str) -> None:
        code, message = parse_error_queue(transport.query("SYST:ERR?"), address=transport.address)
        if code != 0:
            raise InstrumentReportedError(
                f"SYST:ERR? = {code} {message!r} after {after}",
                address=transport.address,
                code=code,
            )


def open_switch(address: str, settings: Mapping[str, Any], **objects: Any) -> ScpiSwitch:
    """Open ``address`` (LF both ways) and connect a SCPI switch with ``settings``."""
    from drivers.transport import connect_over_transport

    return connect_over_transport(
        address,
        settings,
        lambda transport, _timeout_s, options: ScpiSwitch(transport, **options, **objects),
        termination=TERMINATION,
        default_timeout_s=5.0,
    )

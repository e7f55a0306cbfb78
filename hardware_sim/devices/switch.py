"""A SCPI relay multiplexer that connects one meter's leads to one cabinet channel's cell.

Follows ``docs/instrument-protocols.md`` (SCPI switch section): the ``ROUTe`` subsystem of switch
mainframes (Keysight 34980A, Keithley 7001 class), routes numbered ``1..channels`` in a channel
list ``(@n)``, ``(@a,b)`` or ``(@a:b)``:

- ``ROUT:CLOS <list>`` closes relays; ``ROUT:CLOS? <list>`` answers ``1``/``0`` per channel,
  ``,``-joined; ``ROUT:OPEN <list>`` and ``ROUT:OPEN:ALL`` open them (``*RST`` too);
- ``SYST:ERR?`` pops the error queue (``+0,"No error"`` when empty); a channel outside the switch
  is ``-222,"Data out of range"`` and the command is not applied;
- ``*IDN?`` is ``HARDWARE_SIM,MUX<channels>,SIMULATED-<seed>,1.0``.

Route ``n`` is cabinet channel ``n`` (1-based, in the cabinet's channel order). While exactly one
route is closed the meter measures that channel's cell (the same cell object the cabinet drives,
read under the cabinet's lock); with none closed it measures its own fixture again, so intake
placement (``place``) works as before. Closing a second route would short two cells together
through the meter's leads: the simulated meter then reads no contact (nothing meaningful is on
its leads). ``stuck_open`` (fault injection, tests) holds routes whose relay never closes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from hardware_sim.cell import Cell
from hardware_sim.clock import SimClock
from hardware_sim.devices.base import MeterInput, Personality, RoutedCell
from hardware_sim.devices.neware_bts import NewareCabinet
from hardware_sim.devices.scpi_device import ScpiPersonality
from hardware_sim.registry import BuildContext, register_device_kind
from hardware_sim.scpi import DATA_OUT_OF_RANGE, Command, ScpiError, one_arg

FIRMWARE = "1.0"
MAX_ERRORS = 10  # SCPI error queue depth; further errors replace the last with -350


class Switch(ScpiPersonality):
    """A multiplexer between ``meter`` and a cabinet: one route (``RoutedCell``) per channel."""

    kind = "switch"
    write_termination = b"\n"

    def __init__(
        self,
        clock: SimClock,
        *,
        meter: MeterInput,
        meter_lock: threading.RLock,
        routes: list[RoutedCell],
        seed: int = 0,
    ) -> None:
        self.meter = meter
        self.meter_lock = meter_lock
        self.routes = dict(enumerate(routes, start=1))
        self.closed: set[int] = set()
        self.stuck_open: set[int] = set()
        self.errors: deque[tuple[int, str]] = deque()
        super().__init__(clock, seed=seed)

    # ---- state ---------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"routes": len(self.routes), "closed": sorted(self.closed)}

    def fault_cells(self) -> list[Cell]:
        return []  # the cells belong to the cabinet; a switch heats nothing

    def record_error(self, error: ScpiError) -> None:
        if len(self.errors) >= MAX_ERRORS:
            self.errors[-1] = (-350, "Queue overflow")
            return
        self.errors.append((error.code, error.message))

    def _apply(self) -> None:
        """Put the closed route's cell on the meter's leads (none closed: the fixture again)."""
        routed = self.routes[next(iter(self.closed))] if len(self.closed) == 1 else None
        with self.meter_lock:
            self.meter.routed = routed
            self.meter.shorted = len(self.closed) > 1

    # ---- commands ------------------------------------------------------------------------------

    def build_table(self) -> None:
        t = self.table
        t.add("*IDN", self._idn)
        t.add("*RST", self._rst)
        t.add("*CLS", self._cls)
        t.add("*OPC", lambda c, now: "1" if c.query else None)
        t.add(":SYSTem:ERRor[:NEXT]", self._error_next)
        t.add(":ROUTe:CLOSe", self._close)
        t.add(":ROUTe:OPEN:ALL", self._open_all)
        t.add(":ROUTe:OPEN", self._open)

    def _idn(self, c: Command, now: float) -> str:
        if not c.query:
            raise ScpiError(-113, "Undefined header")
        return f"HARDWARE_SIM,MUX{len(self.routes)},{self.serial_number},{FIRMWARE}"

    def _rst(self, c: Command, now: float) -> None:
        self.closed.clear()
        self._apply()

    def _cls(self, c: Command, now: float) -> None:
        self.errors.clear()

    def _error_next(self, c: Command, now: float) -> str:
        if not c.query:
            raise ScpiError(-113, "Undefined header")
        if not self.errors:
            return '+0,"No error"'
        code, message = self.errors.popleft()
        return f'{code:+d},"{message}"'

    def _close(self, c: Command, now: float) -> str | None:
        routes = self._channel_list(c)
        if c.query:
            return ",".join("1" if n in self.closed else "0" for n in routes)
        self.closed.update(n for n in routes if n not in self.stuck_open)
        self._apply()
        return None

    def _open(self, c: Command, now: float) -> None:
        if c.query:
            raise ScpiError(-113, "Undefined header")
        self.closed.difference_update(self._channel_list(c))
        self._apply()

    def _open_all(self, c: Command, now: float) -> None:
        if c.query:
            raise ScpiError(-113, "Undefined header")
        self.closed.clear()
        self._apply()

    def _channel_list(self, c: Command) -> list[int]:
        """``(@3)``, ``(@1,4)`` (split by the parser into arguments) or ``(@1:4)``."""
        text = ",".join(c.args) if c.args else one_arg(c)
        text = text.replace(" ", "")
        if not (text.startswith("(@") and text.endswith(")")):
            raise ScpiError(-104, "Data type error")
        routes: list[int] = []
        for item in text[2:-1].split(","):
            first, _, last = item.partition(":")
            try:
                low, high = int(first), int(last or first)
            except ValueError:
                raise ScpiError(-104, "Data type error") from None
            if not (1 <= low <= high <= len(self.routes)):
                raise ScpiError(*DATA_OUT_OF_RANGE)
            routes.extend(range(low, high + 1))
        return routes


def build(spec: Mapping[str, Any], ctx: BuildContext) -> Switch:
    """Registry factory: ``meter`` and ``cabinet`` name devices listed before this one."""
    meter = ctx.device(spec.get("meter"))
    cabinet = ctx.device(spec.get("cabinet"))
    if not isinstance(meter, MeterInput):
        raise ValueError(f"switch: meter {spec.get('meter')!r} is not a fixture meter")
    if not isinstance(cabinet, NewareCabinet):
        raise ValueError(f"switch: cabinet {spec.get('cabinet')!r} is not a neware-bts cabinet")
    assert isinstance(meter, Personality)
    routes: list[RoutedCell] = []
    for channel in cabinet.channels.values():
        if not isinstance(channel.cell, Cell):
            raise ValueError(f"switch: channel {channel.pipeline} holds no simulated cell")
        routes.append(RoutedCell(channel.cell, cabinet.lock, channel.advance))
    return Switch(ctx.clock, meter=meter, meter_lock=meter.lock, routes=routes, seed=ctx.seed)


register_device_kind("switch", build)

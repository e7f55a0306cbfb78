"""Hioki BT4560 battery impedance meter: R, X and V at a selectable frequency (0.1-1050 Hz).

Follows ``docs/instrument-protocols.md`` (BT4560 section) and ``shared/reference/instruments.md``
section 1.2. ``*TRG`` starts a measurement that takes ``max(0.5 s, 2 / f) + 1 / f`` of simulated
time (two periods or half a second, plus one period of settling); a ``:FETC?`` (or ``:READ?``)
while it runs answers when it ends, so ``*TRG;*WAI;:FETC?`` replies after the measurement time.
``:ADJ? SPOT`` answers ``0`` after 13.5 s. Reply numbers are ``+d.ddddE+dd``.

R and X are the real and imaginary parts of the cell model's Z(f) at the fixture, or at the
cabinet cell a closed switch route puts on the leads (``hardware_sim.devices.switch``) (seeded noise
of 0.05 %); V the terminal voltage, negative when reversed. No contact reads 1E+10 for all three
(V above 1E+8 is how a client sees a bad H/L connection); over-range reads 1E+9 for R and X.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from hardware_sim.cell import Cell, Contact
from hardware_sim.clock import SimClock
from hardware_sim.devices.base import MeterInput
from hardware_sim.devices.scpi_device import ScpiPersonality
from hardware_sim.registry import BuildContext, register_device_kind
from hardware_sim.scpi import Command, ScpiError, one_arg, parse_bool, parse_choice, parse_float

PON = 128
RANGES_OHM = (3e-3, 30e-3, 300e-3, 3.0)
MIN_FREQUENCY_HZ = 0.1
MAX_FREQUENCY_HZ = 1050.0
ZERO_ADJUST_S = 13.5
NOISE_RELATIVE = 5e-4
NO_CONTACT_VALUE = 1e10
OVER_RANGE_VALUE = 1e9


def measurement_time_s(frequency_hz: float) -> float:
    """Simulated seconds one impedance point takes at ``frequency_hz``."""
    return max(0.5, 2.0 / frequency_hz) + 1.0 / frequency_hz


def sci(value: float) -> str:
    """``+d.ddddE+dd``."""
    mantissa, exponent = f"{value:+.4E}".split("E")
    return f"{mantissa}E{int(exponent):+03d}"


class Bt4560(MeterInput, ScpiPersonality):
    kind = "bt4560"
    model = "BT4560"
    firmware = "V1.10"

    def __init__(self, clock: SimClock, *, seed: int = 0, cell: Cell | None = None) -> None:
        self.cell = cell
        self.forced: str | None = None  # "over_range" | "no_contact" (fault injection)
        self.noise_relative = NOISE_RELATIVE
        self._rng = random.Random(f"bt4560/{seed}")
        self.esr = PON
        self.measurements = 0
        super().__init__(clock, seed=seed)
        self.reset()

    def place_cell(self, cell: Cell | None) -> None:
        with self.lock:
            if cell is not None:
                cell.advance_to(self.clock.now())
            self.cell = cell

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "fixture": self.cell.cell_id if self.cell else None}

    def reset(self) -> None:
        self.function = "RV"
        self.frequency_hz = 1000.0
        self.trigger = "IMM"
        self.continuous = True
        self.autorange = True
        self.range_ohm = 3.0
        self.rate_z = "MED"
        self.rate_v = "MED"
        self.options: dict[str, str] = {}
        self.last: tuple[float, float, float] | None = None
        self.ready_at_s = -math.inf

    def record_error(self, error: ScpiError) -> None:
        self.esr |= error.esr_bit

    def build_table(self) -> None:
        t = self.table
        t.add("*IDN", self._idn)
        t.add("*RST", self._rst)
        t.add("*CLS", self._cls)
        t.add("*ESR", self._esr_q)
        t.add("*OPC", lambda c, now: "1" if c.query else None)
        t.add("*TRG", self._trg)
        t.add("*WAI", self._wai)
        t.add(":SYSTem:BEEPer[:STATe]", self._option("BEEP"))
        t.add(":FUNCtion", self._function)
        t.add(":FREQuency", self._frequency)
        t.add(":TRIGger:SOURce", self._trigger)
        t.add(":INITiate:CONTinuous", self._continuous)
        t.add(":AUTorange", self._autorange)
        t.add("[:RESistance]:RANGe", self._range)
        t.add(":SAMPle:RATE", self._rate)
        t.add(":SAMPle:DELay:MODE", self._option("DELAY:MODE"))
        t.add(":SAMPle:DELay:WAVE", self._option("DELAY:WAVE"))
        t.add(":LIMiter", self._option("LIMITER"))
        t.add(":ZERO:CROSs", self._option("ZERO:CROSS"))
        t.add(":CALCulate:AVERage", self._option("AVERAGE"))
        t.add(":ADJust:SLOPe", self._option("SLOPE"))
        t.add(":MEASure:VALid", self._option("MEASURE:VALID"))
        t.add(":FETCh", self._fetch)
        t.add(":READ", self._read)
        t.add(":ADJust", self._adjust)

    @staticmethod
    def _query_only(c: Command) -> None:
        if not c.query:
            raise ScpiError(-113, "Undefined header")

    def _idn(self, c: Command, now: float) -> str:
        self._query_only(c)
        return f"HIOKI,{self.model},{self.serial_number},{self.firmware}"

    def _rst(self, c: Command, now: float) -> None:
        self.reset()

    def _cls(self, c: Command, now: float) -> None:
        self.esr = 0

    def _esr_q(self, c: Command, now: float) -> str:
        self._query_only(c)
        value, self.esr = self.esr, 0
        return str(value)

    def _option(self, name: str) -> Any:
        def handler(c: Command, now: float) -> str | None:
            if c.query:
                return self.options.get(name, "OFF")
            self.options[name] = one_arg(c).upper()
            return None

        return handler

    def _function(self, c: Command, now: float) -> str | None:
        if c.query:
            return self.function
        self.function = parse_choice(
            one_arg(c), {"RV": "RV", "ZV": "ZV", "R": "R", "Z": "Z", "V": "V"}
        )
        return None

    def _frequency(self, c: Command, now: float) -> str | None:
        if c.query:
            mantissa, exponent = f"{self.frequency_hz:.5E}".split("E")
            return f"{mantissa}E{int(exponent):+d}"  # 1.00000E+3, as the meter writes it
        self.frequency_hz = parse_float(one_arg(c), low=MIN_FREQUENCY_HZ, high=MAX_FREQUENCY_HZ)
        return None

    def _trigger(self, c: Command, now: float) -> str | None:
        if c.query:
            return self.trigger
        self.trigger = parse_choice(one_arg(c), {"IMMediate": "IMM", "EXTernal": "EXT"})
        return None

    def _continuous(self, c: Command, now: float) -> str | None:
        if c.query:
            return "ON" if self.continuous else "OFF"
        self.continuous = parse_bool(one_arg(c))
        return None

    def _autorange(self, c: Command, now: float) -> str | None:
        if c.query:
            return "ON" if self.autorange else "OFF"
        self.autorange = parse_bool(one_arg(c))
        return None

    def _range(self, c: Command, now: float) -> str | None:
        if c.query:
            return sci(self.range_ohm)
        value = parse_float(one_arg(c), low=0.0, high=3.0)
        self.range_ohm = next(r for r in RANGES_OHM if value <= r)
        self.autorange = False
        return None

    def _rate(self, c: Command, now: float) -> str | None:
        """``:SAMP:RATE Z,SLOW`` / ``:SAMP:RATE V,FAST``; query ``:SAMP:RATE? Z``."""
        speeds = {"FAST": "FAST", "MEDium": "MED", "SLOW": "SLOW"}
        which = parse_choice(one_arg(c), {"Z": "Z", "V": "V"})
        if c.query:
            return self.rate_z if which == "Z" else self.rate_v
        if len(c.args) < 2:
            raise ScpiError(-109, "Missing parameter")
        speed = parse_choice(c.args[1], speeds)
        if which == "Z":
            self.rate_z = speed
        else:
            self.rate_v = speed
        return None

    def _trg(self, c: Command, now: float) -> None:
        self._start(now)

    def _wai(self, c: Command, now: float) -> None:
        self.wait_until(self.ready_at_s)

    def _start(self, now: float) -> None:
        start = max(now, self.ready_at_s)
        self.ready_at_s = start + measurement_time_s(self.frequency_hz)
        self.last = self._sample(now)
        self.measurements += 1

    def _sample(self, now: float) -> tuple[float, float, float]:
        with self.input_cell(now) as cell:
            if self.forced == "no_contact" or cell is None or cell.contact is Contact.OPEN:
                return (NO_CONTACT_VALUE, NO_CONTACT_VALUE, NO_CONTACT_VALUE)
            z = complex(cell.impedance(self.frequency_hz))
            voltage = cell.terminal_voltage_v
            if cell.contact is Contact.REVERSED:
                voltage = -voltage
        limit = (3.0 if self.autorange else self.range_ohm) * 1.05
        if self.forced == "over_range" or abs(z) > limit:
            return (OVER_RANGE_VALUE, OVER_RANGE_VALUE, voltage)
        noise = 1.0 + self._rng.gauss(0.0, self.noise_relative)
        return (z.real * noise, z.imag * noise, voltage)

    def _fetch(self, c: Command, now: float) -> str:
        self._query_only(c)
        self.wait_until(self.ready_at_s)
        if self.last is None:
            raise ScpiError(-230, "Data corrupt or stale")
        return self._format(self.last)

    def _read(self, c: Command, now: float) -> str:
        self._query_only(c)
        self._start(now)
        self.wait_until(self.ready_at_s)
        assert self.last is not None
        return self._format(self.last)

    def _format(self, reading: tuple[float, float, float]) -> str:
        r, x, v = reading
        if r >= OVER_RANGE_VALUE:
            z, theta = r, 0.0
        else:
            z, theta = math.hypot(r, x), math.degrees(math.atan2(x, r))
        fields = {
            "RV": (r, x, v),
            "ZV": (z, theta, v),
            "R": (r, x),
            "Z": (z, theta),
            "V": (v,),
        }[self.function]
        return ",".join(sci(f) for f in fields)

    def _adjust(self, c: Command, now: float) -> str | None:
        """``:ADJ? SPOT``: zero adjustment, ``0`` (success) after 13.5 s."""
        self._query_only(c)
        parse_choice(one_arg(c), {"SPOT": "SPOT"})
        self.ready_at_s = max(now, self.ready_at_s) + ZERO_ADJUST_S
        self.wait_until(self.ready_at_s)
        return "0"


def _build(spec: Mapping[str, Any], ctx: BuildContext) -> Bt4560:
    cells = ctx.take_cells(1 if spec.get("fixture_cell", True) else 0)
    return Bt4560(ctx.clock, seed=ctx.seed, cell=cells[0] if cells else None)


register_device_kind("bt4560", _build)

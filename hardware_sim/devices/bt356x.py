"""Hioki BT3562 / BT3563 battery HiTester: 1 kHz AC resistance + DC voltage.

Follows ``docs/instrument-protocols.md`` (Hioki BT3562 section) and the command table of
``shared/reference/instruments.md`` section 1.1. Quirks kept on purpose:

- setting commands never reply; errors only set ``*ESR?`` bits (CME 32, EXE 16), read-and-clear;
- ``:READ?`` with ``:INIT:CONT ON`` (the power-on default) is an execution error and sends nothing;
- replies are fixed width per range: the sign position is a space when positive and leading zeros
  are spaces; over-range is 1E+9 and no contact 1E+10, written with the range's mantissa;
- ``*IDN?`` carries ``SIMULATED-<seed>`` in the serial field (the real meter sends ``0``).

The meter measures whichever cell is in its fixture (:meth:`Bt356x.place_cell`), or while a switch
route is closed the cabinet cell the switch put on its leads (``hardware_sim.devices.switch``):
R is Re Z(1 kHz) of the cell model plus a seeded noise of a few counts, V its terminal voltage
(negative when the cell sits reversed); an empty fixture or an open tab reads "no contact".
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from hardware_sim.cell import Cell, Contact
from hardware_sim.clock import SimClock
from hardware_sim.devices.base import MeterInput
from hardware_sim.devices.scpi_device import ScpiPersonality
from hardware_sim.registry import BuildContext, register_device_kind
from hardware_sim.scpi import Command, ScpiError, one_arg, parse_bool, parse_choice, parse_float

CME, EXE = 32, 16
EOM, INDEX, ERR = 1, 2, 32
PON = 128
# resistance range (ohm) -> (integer digits, decimals, exponent) of the fixed-width reply
RESISTANCE_FORMATS: dict[float, tuple[int, int, int]] = {
    3e-3: (2, 4, -3),
    30e-3: (3, 3, -3),
    300e-3: (4, 2, -3),
    3.0: (2, 4, 0),
    30.0: (3, 3, 0),
    300.0: (4, 2, 0),
    3000.0: (2, 4, 3),
}
VOLTAGE_FORMATS: dict[float, tuple[int, int]] = {6.0: (1, 5), 60.0: (2, 4), 300.0: (3, 3)}
MODEL_VOLTAGE_RANGES = {"BT3562": (6.0, 60.0), "BT3563": (6.0, 60.0, 300.0)}
#: simulated seconds per reading (docs/instrument-protocols.md)
MEASUREMENT_TIME_S = {"EXF": 0.002, "FAST": 0.012, "MED": 0.035, "SLOW": 0.150}
OVER_RANGE = 9
NO_CONTACT = 10
RANGE_HEADROOM = 31 / 30  # a range reads up to 3.1000 on the 3 mOhm range, etc.
NOISE_COUNTS = 2.0  # reading noise, in counts of the last digit (one standard deviation)


def fixed_width(value: float, integer_digits: int, decimals: int) -> str:
    """Sign position (space if positive) + integer part with leading zeros as spaces + fraction."""
    body = f"{abs(value):0{integer_digits + 1 + decimals}.{decimals}f}"
    integer, _, fraction = body.partition(".")
    integer = (integer.lstrip("0") or "0").rjust(integer_digits)
    return f"{'-' if value < 0 else ' '}{integer}.{fraction}"


def sentinel(integer_digits: int, decimals: int, power: int, sign: str) -> str:
    """1E+<power> written with the range's mantissa, e.g. ``+1000.00E+7`` for 300 mOhm."""
    mantissa = "1" + "0" * (integer_digits - 1) + "." + "0" * decimals
    return f"{sign}{mantissa}E+{power - (integer_digits - 1)}"


class Bt356x(MeterInput, ScpiPersonality):
    """A BT3562 (6/60 V) or BT3563 (6/60/300 V) meter with a fixture holding zero or one cell."""

    kind = "bt3562"
    firmware = "V2.03"

    def __init__(
        self, clock: SimClock, *, seed: int = 0, model: str = "BT3562", cell: Cell | None = None
    ) -> None:
        if model not in MODEL_VOLTAGE_RANGES:
            raise ValueError(f"model must be one of {', '.join(MODEL_VOLTAGE_RANGES)}: {model!r}")
        self.model = model
        self.kind = model.lower()
        self.voltage_ranges = MODEL_VOLTAGE_RANGES[model]
        self.cell = cell
        self.forced: str | None = None  # "over_range" | "no_contact" (fault injection)
        self.noise_counts = NOISE_COUNTS
        self._rng = random.Random(f"{model}/{seed}")
        self.esr = PON
        self.esr0 = 0
        self.ese = 0
        self.ese0 = 0
        self.measurements = 0
        super().__init__(clock, seed=seed)
        self.reset()

    # ---- bench API -----------------------------------------------------------------------------

    def place_cell(self, cell: Cell | None) -> None:
        """Put ``cell`` into the fixture (``None`` empties it)."""
        with self.lock:
            if cell is not None:
                cell.advance_to(self.clock.now())
            self.cell = cell

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "fixture": self.cell.cell_id if self.cell else None}

    # ---- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Factory defaults (also ``*RST``): continuous measurement ON, autorange ON, SLOW."""
        self.header = False
        self.function = "RV"
        self.autorange = True
        self.resistance_range = 3e-3
        self.voltage_range = 6.0
        self.rate = "SLOW"
        self.trigger = "IMM"
        self.continuous = True
        self.error_timing = "ASYN"
        self.last: tuple[str, str] | None = None
        self.memory_on = False
        self.memory: list[str] = []

    def record_error(self, error: ScpiError) -> None:
        self.esr |= error.esr_bit

    def build_table(self) -> None:
        t = self.table
        t.add("*IDN", self._idn)
        t.add("*RST", self._rst)
        t.add("*CLS", self._cls)
        t.add("*ESR", self._esr_q)
        t.add("*ESE", self._ese)
        t.add("*STB", self._stb)
        t.add("*OPC", lambda c, now: "1" if c.query else None)
        t.add("*TRG", self._trg)
        t.add("*WAI", lambda c, now: None)
        t.add(":ESR0", self._esr0)
        t.add(":ESE0", self._ese0)
        t.add(":SYSTem:HEADer", self._header)
        t.add(":SYSTem:ERRor", self._error_timing)
        t.add(":SYSTem:LOCal", self._local)
        t.add(":FUNCtion", self._function)
        t.add(":AUTorange", self._autorange)
        t.add(":RESistance:RANGe", self._res_range)
        t.add(":VOLTage:RANGe", self._volt_range)
        t.add(":SAMPle:RATE", self._rate)
        t.add(":TRIGger:SOURce", self._trigger)
        t.add(":INITiate:CONTinuous", self._continuous)
        t.add(":INITiate[:IMMediate]", self._initiate)
        t.add(":READ", self._read)
        t.add(":FETCh", self._fetch)
        t.add(":MEMory:STATe", self._memory_state)
        t.add(":MEMory:DATA", self._memory_data)
        t.add(":MEMory:CLEAr", self._memory_clear)

    # ---- helpers -------------------------------------------------------------------------------

    def _answer(self, long_header: str, value: str) -> str:
        return f":{long_header} {value}" if self.header else value

    @staticmethod
    def _query_only(c: Command) -> None:
        if not c.query:
            raise ScpiError(-113, "Undefined header")

    @staticmethod
    def _command_only(c: Command) -> None:
        if c.query:
            raise ScpiError(-113, "Undefined header")

    # ---- common commands -----------------------------------------------------------------------

    def _idn(self, c: Command, now: float) -> str:
        self._query_only(c)
        return f"HIOKI,{self.model},{self.serial_number},{self.firmware}"

    def _rst(self, c: Command, now: float) -> None:
        self._command_only(c)
        self.reset()

    def _cls(self, c: Command, now: float) -> None:
        self._command_only(c)
        self.esr = 0
        self.esr0 = 0

    def _esr_q(self, c: Command, now: float) -> str:
        self._query_only(c)
        value, self.esr = self.esr, 0
        return str(value)

    def _ese(self, c: Command, now: float) -> str | None:
        if c.query:
            return str(self.ese)
        self.ese = int(parse_float(one_arg(c), low=0, high=255))
        return None

    def _stb(self, c: Command, now: float) -> str:
        self._query_only(c)
        summary = (1 if self.esr0 & self.ese0 else 0) | (32 if self.esr & self.ese else 0)
        return str(summary | 16)  # MAV: the reply being sent is in the output queue

    def _esr0(self, c: Command, now: float) -> str:
        self._query_only(c)
        value, self.esr0 = self.esr0, 0
        return self._answer("ESR0", str(value))

    def _ese0(self, c: Command, now: float) -> str | None:
        if c.query:
            return self._answer("ESE0", str(self.ese0))
        self.ese0 = int(parse_float(one_arg(c), low=0, high=255))
        return None

    # ---- settings ------------------------------------------------------------------------------

    def _header(self, c: Command, now: float) -> str | None:
        if c.query:
            return ":SYSTEM:HEADER ON" if self.header else "OFF"
        self.header = parse_bool(one_arg(c))
        return None

    def _error_timing(self, c: Command, now: float) -> str | None:
        """Not an error queue on this meter: the EXT I/O ERR output timing."""
        if c.query:
            return self._answer("SYSTEM:ERROR", "SYNC" if self.error_timing == "SYNC" else "ASYN")
        self.error_timing = parse_choice(
            one_arg(c), {"SYNChronous": "SYNC", "ASYNchronous": "ASYN"}
        )
        return None

    def _local(self, c: Command, now: float) -> None:
        self._command_only(c)
        self.continuous = True  # back to the panel: free-run resumes, as on the real meter

    def _function(self, c: Command, now: float) -> str | None:
        if c.query:
            names = {"RV": "RV", "RES": "RESISTANCE", "VOLT": "VOLTAGE"}
            return self._answer("FUNCTION", names[self.function])
        self.function = parse_choice(
            one_arg(c), {"RV": "RV", "RESistance": "RES", "VOLTage": "VOLT"}
        )
        return None

    def _autorange(self, c: Command, now: float) -> str | None:
        if c.query:
            return self._answer("AUTORANGE", "ON" if self.autorange else "OFF")
        self.autorange = parse_bool(one_arg(c))
        return None

    def _res_range(self, c: Command, now: float) -> str | None:
        if c.query:
            _digits, decimals, power = RESISTANCE_FORMATS[self.resistance_range]
            mantissa = self.resistance_range / 10**power
            return self._answer("RESISTANCE:RANGE", f"{mantissa:.{decimals}f}E{power:+d}")
        value = parse_float(one_arg(c), low=0.0, high=3100.0)
        # the smallest range that holds the value (:RES:RANG 120E-3 picks 300 mOhm)
        self.resistance_range = next(
            (r for r in RESISTANCE_FORMATS if value <= r * RANGE_HEADROOM), 3000.0
        )
        self.autorange = False
        return None

    def _volt_range(self, c: Command, now: float) -> str | None:
        if c.query:
            _digits, decimals = VOLTAGE_FORMATS[self.voltage_range]
            return self._answer("VOLTAGE:RANGE", f"{self.voltage_range:.{decimals}f}E+0")
        top = self.voltage_ranges[-1]
        value = abs(parse_float(one_arg(c), low=-top, high=top))
        self.voltage_range = next(r for r in self.voltage_ranges if value <= r)
        return None

    def _rate(self, c: Command, now: float) -> str | None:
        if c.query:
            return self._answer("SAMPLE:RATE", self.rate)
        self.rate = parse_choice(
            one_arg(c), {"EXFast": "EXF", "FAST": "FAST", "MEDium": "MED", "SLOW": "SLOW"}
        )
        return None

    def _trigger(self, c: Command, now: float) -> str | None:
        if c.query:
            return self._answer("TRIGGER:SOURCE", self.trigger)
        self.trigger = parse_choice(one_arg(c), {"IMMediate": "IMM", "EXTernal": "EXT"})
        return None

    def _continuous(self, c: Command, now: float) -> str | None:
        if c.query:
            return self._answer("INITIATE:CONTINUOUS", "ON" if self.continuous else "OFF")
        self.continuous = parse_bool(one_arg(c))
        return None

    # ---- measuring -----------------------------------------------------------------------------

    def _initiate(self, c: Command, now: float) -> None:
        self._command_only(c)
        if self.continuous:
            raise ScpiError(-200, "Execution error; continuous measurement is on")
        if self.trigger == "IMM":
            self._measure(now)

    def _trg(self, c: Command, now: float) -> None:
        self._command_only(c)
        if self.continuous:
            raise ScpiError(-200, "Execution error; continuous measurement is on")
        self._measure(now)

    def _read(self, c: Command, now: float) -> str | None:
        self._query_only(c)
        if self.continuous:
            # the documented quirk: an execution error and no reply at all
            raise ScpiError(-200, "Execution error; continuous measurement is on")
        self._measure(now)
        return self._reading()

    def _fetch(self, c: Command, now: float) -> str:
        self._query_only(c)
        return self._reading()

    def _memory_state(self, c: Command, now: float) -> str | None:
        if c.query:
            return self._answer("MEMORY:STATE", "ON" if self.memory_on else "OFF")
        self.memory_on = parse_bool(one_arg(c))
        return None

    def _memory_data(self, c: Command, now: float) -> str:
        """Every stored reading, oldest first, on one line (fields and readings ``,``-joined)."""
        self._query_only(c)
        return ",".join(self.memory)

    def _memory_clear(self, c: Command, now: float) -> None:
        self._command_only(c)
        self.memory.clear()

    def _reading(self) -> str:
        if self.last is None:
            r = self._resistance_text(None, NO_CONTACT)
            v = self._voltage_text(None, NO_CONTACT)
        else:
            r, v = self.last
        return {"RV": f"{r},{v}", "RES": r, "VOLT": v}[self.function]

    def _measure(self, now: float) -> None:
        self.wait_until(now + MEASUREMENT_TIME_S[self.rate])
        status: int | None = None
        resistance = voltage = 0.0
        with self.input_cell(now) as cell:
            if self.forced == "no_contact" or cell is None or cell.contact is Contact.OPEN:
                status = NO_CONTACT
            else:
                resistance = float(cell.impedance(1000.0).real)
                voltage = cell.terminal_voltage_v
                if cell.contact is Contact.REVERSED:
                    voltage = -voltage
                if self.forced == "over_range":
                    status = OVER_RANGE
        self.last = (
            self._resistance_text(resistance, status),
            self._voltage_text(voltage, status),
        )
        self.esr0 |= EOM | INDEX | (ERR if status == NO_CONTACT else 0)
        self.measurements += 1
        if self.memory_on:
            self.memory.append(self._reading())

    def _resistance_text(self, value: float | None, status: int | None) -> str:
        if self.autorange and value is not None and status is None:
            self.resistance_range = next(
                (r for r in RESISTANCE_FORMATS if abs(value) <= r * RANGE_HEADROOM), 3000.0
            )
        digits, decimals, power = RESISTANCE_FORMATS[self.resistance_range]
        if status == NO_CONTACT or value is None:
            return sentinel(digits, decimals, NO_CONTACT, "+")
        if status == OVER_RANGE or abs(value) > self.resistance_range * RANGE_HEADROOM:
            return sentinel(digits, decimals, OVER_RANGE, " ")
        count = 10.0 ** (power - decimals)
        noisy = value + self._rng.gauss(0.0, self.noise_counts * count)
        return f"{fixed_width(noisy / 10**power, digits, decimals)}E{power:+d}"

    def _voltage_text(self, value: float | None, status: int | None) -> str:
        if self.autorange and value is not None and status is None:
            self.voltage_range = next(
                (r for r in self.voltage_ranges if abs(value) <= r), self.voltage_ranges[-1]
            )
        digits, decimals = VOLTAGE_FORMATS[self.voltage_range]
        if status == NO_CONTACT or value is None:
            return sentinel(digits, decimals, NO_CONTACT, "+")
        if abs(value) > self.voltage_range:
            return sentinel(digits, decimals, OVER_RANGE, "-" if value < 0 else " ")
        return f"{fixed_width(value, digits, decimals)}E+0"


def _build(model: str) -> Any:
    def build(spec: Mapping[str, Any], ctx: BuildContext) -> Bt356x:
        cells = ctx.take_cells(1 if spec.get("fixture_cell", True) else 0)
        return Bt356x(ctx.clock, seed=ctx.seed, model=model, cell=cells[0] if cells else None)

    return build


register_device_kind("bt3562", _build("BT3562"))
register_device_kind("bt3563", _build("BT3563"))

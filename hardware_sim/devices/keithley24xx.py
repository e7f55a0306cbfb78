"""Keithley 2450 / 2460 SourceMeter (SCPI) used as a one-channel cycler on one cell.

Follows ``docs/instrument-protocols.md`` (Keithley section) and ``shared/reference/instruments.md``
section 2.1. The output drives the cell model:

- output ON, ``:SOUR:FUNC CURR``: constant current (negative discharges); the voltage limit
  ``VLIM`` clamps the terminal voltage when charging (CC -> CV, "in compliance");
- output ON, ``:SOUR:FUNC VOLT``: constant voltage with ``|I| <= ILIM`` (CCCV when the cell is
  below the set voltage, a floor-limited discharge when above);
- output OFF: ``HIMP`` leaves the cell open; ``NORM``/``ZERO`` (the default) are a 0 V source
  with the present current limit, which drains a cell (the documented hazard); ``GUARd`` open.

Readings: the sense function's value (terminal V or current), or 9.9E+37 for overflow (no cell at
the terminals, or beyond the 2450's 210 V / 1.05 A measure ranges). The SimpleLoop trigger model
measures every ``delay_s`` of simulated time into ``defbuffer1`` (readings are produced lazily in
time order whenever the instrument is spoken to, so sources changed between readings apply from
the instant of the command). ``REL`` is seconds since ``:INIT``. The error queue holds SCPI codes;
``*ESR?`` gets the matching bits.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hardware_sim.cell import Cell, Contact
from hardware_sim.clock import SimClock
from hardware_sim.devices.scpi_device import ScpiPersonality
from hardware_sim.registry import BuildContext, register_device_kind
from hardware_sim.scpi import (
    DATA_OUT_OF_RANGE,
    Command,
    ScpiError,
    one_arg,
    parse_bool,
    parse_choice,
    parse_float,
)

OVERFLOW = 9.9e37
ERROR_QUEUE_SIZE = 32
LINE_FREQUENCY_HZ = 50.0
BUFFER_CAPACITY = 100_000
INTERLOCK_OPEN = (-200, "Execution error; interlock open")
OVER_TEMPERATURE = (5051, "Output disabled: instrument over temperature")
PROTECTION_LEVELS = {
    "PROT2": 2.0,
    "PROT5": 5.0,
    "PROT10": 10.0,
    "PROT20": 20.0,
    "PROT40": 40.0,
    "PROT60": 60.0,
    "PROT80": 80.0,
    "PROT100": 100.0,
    "PROT120": 120.0,
    "PROT140": 140.0,
    "PROT160": 160.0,
    "PROT180": 180.0,
    "NONE": math.inf,
}


@dataclass(frozen=True)
class ModelLimits:
    max_current_a: float
    max_voltage_v: float


MODELS = {
    "2450": ModelLimits(1.05, 210.0),
    "2460": ModelLimits(7.35, 105.0),
    "2461": ModelLimits(10.5, 105.0),
}


def num(value: float) -> str:
    return f"{value:.6E}"


@dataclass(frozen=True)
class BufferEntry:
    reading: float
    source: float
    t_s: float


class Keithley24xx(ScpiPersonality):
    write_termination = b"\n"
    firmware = "1.7.12b"

    def __init__(
        self, clock: SimClock, *, seed: int = 0, model: str = "2450", cell: Cell | None = None
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}: {model!r}")
        self.model = model
        self.kind = f"keithley{model}"
        self.limits = MODELS[model]
        self.cell = cell
        self.esr = 0
        self.errors: deque[tuple[int, str]] = deque()
        self.interlock_closed = True
        self.forced: str | None = None  # "over_range" (fault injection)
        super().__init__(clock, seed=seed)
        self.reset()

    def describe(self) -> dict[str, Any]:
        return {"model": f"MODEL {self.model}", "cell": self.cell.cell_id if self.cell else None}

    # ---- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        self.output = False
        self.off_mode = "NORM"
        self.source_function = "VOLT"
        self.source_current_a = 0.0
        self.source_voltage_v = 0.0
        self.voltage_limit_v = 21.0
        self.current_limit_a = 0.105
        self.protection = "NONE"
        self.sense_function = "CURR"
        self.rsense = {"VOLT": False, "CURR": False}
        self.nplc = {"VOLT": 1.0, "CURR": 1.0}
        self.buffer: list[BufferEntry] = []
        self.rel_zero_s = 0.0
        self.trigger_loaded: tuple[int, float] | None = None
        self.trigger_running = False
        self.trigger_next_s = 0.0
        self.trigger_left = 0
        self.trigger_delay_s = 0.0
        self._apply(self.clock.now())

    def push_error(self, code: int, message: str) -> None:
        if len(self.errors) >= ERROR_QUEUE_SIZE:
            self.errors[-1] = (-350, "Queue overflow")
            return
        self.errors.append((code, message))

    def record_error(self, error: ScpiError) -> None:
        self.esr |= error.esr_bit
        self.push_error(error.code, error.message)

    # ---- fault hooks ---------------------------------------------------------------------------

    def set_interlock(self, closed: bool) -> None:
        """Open or close the safety interlock; opening it turns the output off."""
        with self.lock:
            now = self.clock.now()
            self._catch_up(now)
            self.interlock_closed = closed
            if not closed and self.output:
                self.output = False
                self._apply(now)

    def trip_over_temperature(self) -> None:
        """The instrument overheats: output off and an error in the queue."""
        with self.lock:
            now = self.clock.now()
            self._catch_up(now)
            if self.output:
                self.output = False
                self._apply(now)
            self.push_error(*OVER_TEMPERATURE)
            self.esr |= 8

    # ---- table ---------------------------------------------------------------------------------

    def build_table(self) -> None:
        t = self.table
        t.add("*IDN", self._idn)
        t.add("*LANG", self._lang)
        t.add("*RST", self._rst)
        t.add("*CLS", self._cls)
        t.add("*ESR", self._esr_q)
        t.add("*OPC", lambda c, now: "1" if c.query else None)
        t.add("*WAI", lambda c, now: None)
        t.add(":SYSTem:ERRor[:NEXT]", self._error_next)
        t.add(":SYSTem:ERRor:COUNt", self._error_count)
        t.add(":SYSTem:CLEar", self._error_clear)
        t.add(":OUTPut[:STATe]", self._output)
        t.add(":OUTPut:CURRent:SMODe", self._off_mode)
        t.add(":OUTPut:VOLTage:SMODe", self._off_mode)
        t.add(":OUTPut:INTerlock:TRIPped", self._interlock)
        t.add(":SOURce:FUNCtion[:MODE]", self._source_function)
        t.add(":SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]", self._source_current)
        t.add(":SOURce:CURRent:VLIMit[:LEVel]", self._vlim)
        t.add(":SOURce:CURRent:VLIMit:TRIPped", self._vlim_tripped)
        t.add(":SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]", self._source_voltage)
        t.add(":SOURce:VOLTage:ILIMit[:LEVel]", self._ilim)
        t.add(":SOURce:VOLTage:ILIMit:TRIPped", self._ilim_tripped)
        t.add(":SOURce:VOLTage:PROTection[:LEVel]", self._protection)
        t.add(":SOURce:VOLTage:PROTection:TRIPped", lambda c, now: "0" if c.query else None)
        t.add("[:SENSe]:FUNCtion[:ON]", self._sense_function)
        t.add("[:SENSe]:VOLTage:RSENse", self._rsense("VOLT"))
        t.add("[:SENSe]:CURRent:RSENse", self._rsense("CURR"))
        t.add("[:SENSe]:VOLTage:NPLCycles", self._nplc("VOLT"))
        t.add("[:SENSe]:CURRent:NPLCycles", self._nplc("CURR"))
        t.add(":MEASure:VOLTage[:DC]", self._measure("VOLT"))
        t.add(":MEASure:CURRent[:DC]", self._measure("CURR"))
        t.add(":MEASure", self._measure(None))
        t.add(":READ", self._read)
        t.add(":TRIGger:LOAD", self._trigger_load)
        t.add(":INITiate[:IMMediate]", self._init)
        t.add(":ABORt", self._abort)
        t.add(":TRACe:ACTual:END", self._trace_end)
        t.add(":TRACe:ACTual:STARt", self._trace_start)
        t.add(":TRACe:ACTual", self._trace_count)
        t.add(":TRACe:DATA", self._trace_data)
        t.add(":TRACe:CLEar", self._trace_clear)

    def handle_line(self, line: str, now_s: float) -> list[Any]:
        self._catch_up(now_s)
        return super().handle_line(line, now_s)

    # ---- common --------------------------------------------------------------------------------

    @staticmethod
    def _query_only(c: Command) -> None:
        if not c.query:
            raise ScpiError(-113, "Undefined header")

    def _idn(self, c: Command, now: float) -> str:
        self._query_only(c)
        return f"KEITHLEY INSTRUMENTS,MODEL {self.model},{self.serial_number},{self.firmware}"

    def _lang(self, c: Command, now: float) -> str | None:
        if c.query:
            return "SCPI"
        raise ScpiError(-200, "Execution error; language change needs a reboot")

    def _rst(self, c: Command, now: float) -> None:
        self.reset()

    def _cls(self, c: Command, now: float) -> None:
        self.esr = 0
        self.errors.clear()

    def _esr_q(self, c: Command, now: float) -> str:
        self._query_only(c)
        value, self.esr = self.esr, 0
        return str(value)

    def _error_next(self, c: Command, now: float) -> str:
        self._query_only(c)
        if not self.errors:
            return '0,"No error"'
        code, message = self.errors.popleft()
        return f'{code},"{message}"'

    def _error_count(self, c: Command, now: float) -> str:
        self._query_only(c)
        return str(len(self.errors))

    def _error_clear(self, c: Command, now: float) -> None:
        self.errors.clear()

    # ---- output and source ---------------------------------------------------------------------

    def _output(self, c: Command, now: float) -> str | None:
        if c.query:
            return "1" if self.output else "0"
        on = parse_bool(one_arg(c))
        if on and not self.interlock_closed:
            raise ScpiError(*INTERLOCK_OPEN)
        self.output = on
        self._apply(now)
        return None

    def _off_mode(self, c: Command, now: float) -> str | None:
        if c.query:
            return self.off_mode
        self.off_mode = parse_choice(
            one_arg(c), {"HIMPedance": "HIMP", "NORMal": "NORM", "ZERO": "ZERO", "GUARd": "GUAR"}
        )
        self._apply(now)
        return None

    def _interlock(self, c: Command, now: float) -> str:
        self._query_only(c)
        return "1" if self.interlock_closed else "0"

    def _source_function(self, c: Command, now: float) -> str | None:
        if c.query:
            return self.source_function
        self.source_function = parse_choice(one_arg(c), {"CURRent": "CURR", "VOLTage": "VOLT"})
        self._apply(now)
        return None

    def _source_current(self, c: Command, now: float) -> str | None:
        if c.query:
            return num(self.source_current_a)
        top = self.limits.max_current_a
        self.source_current_a = parse_float(one_arg(c), low=-top, high=top)
        self._apply(now)
        return None

    def _vlim(self, c: Command, now: float) -> str | None:
        if c.query:
            return num(self.voltage_limit_v)
        self.voltage_limit_v = parse_float(one_arg(c), low=0.02, high=self.limits.max_voltage_v)
        self._apply(now)
        return None

    def _source_voltage(self, c: Command, now: float) -> str | None:
        if c.query:
            return num(self.source_voltage_v)
        top = self.limits.max_voltage_v
        value = parse_float(one_arg(c), low=-top, high=top)
        if abs(value) > PROTECTION_LEVELS[self.protection]:
            raise ScpiError(*DATA_OUT_OF_RANGE)
        self.source_voltage_v = value
        self._apply(now)
        return None

    def _ilim(self, c: Command, now: float) -> str | None:
        if c.query:
            return num(self.current_limit_a)
        self.current_limit_a = parse_float(one_arg(c), low=1e-9, high=self.limits.max_current_a)
        self._apply(now)
        return None

    def _vlim_tripped(self, c: Command, now: float) -> str:
        self._query_only(c)
        cell = self.cell
        active = self.output and self.source_function == "CURR" and cell is not None
        tripped = active and cell is not None and abs(cell.current_a) < abs(self.source_current_a)
        return "1" if tripped else "0"

    def _ilim_tripped(self, c: Command, now: float) -> str:
        self._query_only(c)
        cell = self.cell
        active = self.output and self.source_function == "VOLT" and cell is not None
        tripped = (
            active and cell is not None and abs(cell.current_a) >= self.current_limit_a * 0.9999
        )
        return "1" if tripped else "0"

    def _protection(self, c: Command, now: float) -> str | None:
        if c.query:
            return self.protection
        word = one_arg(c).strip().upper()
        if word not in PROTECTION_LEVELS:
            raise ScpiError(-224, "Illegal parameter value")
        self.protection = word
        return None

    def _apply(self, now: float) -> None:
        """Set the cell's drive from the output state (after catching the model up to ``now``)."""
        cell = self.cell
        if cell is None:
            return
        cell.advance_to(now)
        if cell.contact is Contact.OPEN:
            cell.set_open_circuit()
            return
        polarity = -1.0 if cell.contact is Contact.REVERSED else 1.0
        if not self.output:
            if self.off_mode in ("NORM", "ZERO"):
                cell.set_voltage(0.0, current_limit_a=self.current_limit_a)
            else:
                cell.set_open_circuit()
        elif self.source_function == "CURR":
            current = polarity * self.source_current_a
            limit = self.voltage_limit_v if current > 0 else None
            cell.set_current(current, voltage_limit_v=limit)
        else:
            cell.set_voltage(polarity * self.source_voltage_v, current_limit_a=self.current_limit_a)

    # ---- sense ---------------------------------------------------------------------------------

    def _sense_function(self, c: Command, now: float) -> str | None:
        if c.query:
            return f'"{self.sense_function}:DC"'
        self.sense_function = parse_choice(
            one_arg(c), {"VOLTage[:DC]": "VOLT", "CURRent[:DC]": "CURR"}
        )
        return None

    def _rsense(self, which: str) -> Any:
        def handler(c: Command, now: float) -> str | None:
            if c.query:
                return "1" if self.rsense[which] else "0"
            self.rsense[which] = parse_bool(one_arg(c))
            return None

        return handler

    def _nplc(self, which: str) -> Any:
        def handler(c: Command, now: float) -> str | None:
            if c.query:
                return num(self.nplc[which])
            self.nplc[which] = parse_float(one_arg(c), low=0.01, high=10.0)
            return None

        return handler

    def _value(self, function: str, t_s: float) -> float:
        """One measurement of ``function`` at ``t_s`` (the cell is advanced there)."""
        cell = self.cell
        if cell is None or cell.contact is Contact.OPEN or self.forced == "over_range":
            return OVERFLOW
        cell.advance_to(t_s)
        polarity = -1.0 if cell.contact is Contact.REVERSED else 1.0
        if function == "VOLT":
            value = polarity * cell.terminal_voltage_v
            return OVERFLOW if abs(value) > self.limits.max_voltage_v else value
        value = polarity * cell.current_a
        return OVERFLOW if abs(value) > self.limits.max_current_a * 1.05 else value

    def _source_value(self) -> float:
        return self.source_current_a if self.source_function == "CURR" else self.source_voltage_v

    def _measure_time(self, function: str) -> float:
        return self.nplc[function] / LINE_FREQUENCY_HZ

    def _measure(self, function: str | None) -> Any:
        def handler(c: Command, now: float) -> str:
            self._query_only(c)
            f = function or self.sense_function
            done = now + self._measure_time(f)
            self.wait_until(done)
            return num(self._value(f, now))

        return handler

    def _read(self, c: Command, now: float) -> str:
        """``:READ? ["defbuffer1"[,elements]]``: one reading now, appended to the buffer."""
        self._query_only(c)
        buffer_name = c.args[0].strip('"').lower() if c.args else "defbuffer1"
        if buffer_name != "defbuffer1":
            raise ScpiError(-224, "Illegal parameter value")
        elements = self._elements(c.args[1:]) if len(c.args) > 1 else ("READ",)
        if not self.buffer:
            self.rel_zero_s = now
        entry = BufferEntry(self._value(self.sense_function, now), self._source_value(), now)
        self._append(entry)
        self.wait_until(now + self._measure_time(self.sense_function))
        return ",".join(self._element(entry, e) for e in elements)

    # ---- trigger model and buffer --------------------------------------------------------------

    def _trigger_load(self, c: Command, now: float) -> None:
        if len(c.args) != 3 or c.args[0].strip("\"'").upper() != "SIMPLELOOP":
            raise ScpiError(-224, "Illegal parameter value")
        count = int(parse_float(c.args[1], low=1, high=BUFFER_CAPACITY))
        delay = parse_float(c.args[2], low=0.0, high=1e4)
        self.trigger_loaded = (count, delay)
        return

    def _init(self, c: Command, now: float) -> None:
        if self.trigger_loaded is None:
            raise ScpiError(-200, "Execution error; no trigger model loaded")
        count, delay = self.trigger_loaded
        self.trigger_running = True
        self.trigger_left = count
        self.rel_zero_s = now
        self.trigger_delay_s = max(delay, self._measure_time(self.sense_function))
        self.trigger_next_s = now + self.trigger_delay_s

    def _abort(self, c: Command, now: float) -> None:
        self.trigger_running = False

    def _catch_up(self, now: float) -> None:
        """Produce the trigger model's readings due up to ``now``, in time order."""
        while self.trigger_running and self.trigger_left > 0 and self.trigger_next_s <= now:
            t = self.trigger_next_s
            self._append(BufferEntry(self._value(self.sense_function, t), self._source_value(), t))
            self.trigger_left -= 1
            self.trigger_next_s = t + self.trigger_delay_s
        if self.trigger_left <= 0:
            self.trigger_running = False
        if self.cell is not None:
            self.cell.advance_to(now)

    def _append(self, entry: BufferEntry) -> None:
        if len(self.buffer) >= BUFFER_CAPACITY:
            del self.buffer[0]
        self.buffer.append(entry)

    @staticmethod
    def _buffer_arg(args: tuple[str, ...]) -> None:
        if args and args[0].strip("\"'").lower() != "defbuffer1":
            raise ScpiError(-224, "Illegal parameter value")

    def _trace_end(self, c: Command, now: float) -> str:
        self._query_only(c)
        self._buffer_arg(c.args)
        return str(len(self.buffer))

    def _trace_start(self, c: Command, now: float) -> str:
        self._query_only(c)
        self._buffer_arg(c.args)
        return "1" if self.buffer else "0"

    def _trace_count(self, c: Command, now: float) -> str:
        self._query_only(c)
        self._buffer_arg(c.args)
        return str(len(self.buffer))

    def _trace_clear(self, c: Command, now: float) -> None:
        self._buffer_arg(c.args)
        self.buffer.clear()

    @staticmethod
    def _elements(args: tuple[str, ...]) -> tuple[str, ...]:
        allowed = {
            "READ": "READ",
            "READING": "READ",
            "SOUR": "SOUR",
            "SOURCE": "SOUR",
            "REL": "REL",
            "RELATIVE": "REL",
        }
        out = []
        for a in args:
            key = a.strip().upper()
            if key not in allowed:
                raise ScpiError(-224, "Illegal parameter value")
            out.append(allowed[key])
        return tuple(out) or ("READ",)

    def _element(self, entry: BufferEntry, element: str) -> str:
        if element == "READ":
            return num(entry.reading)
        if element == "SOUR":
            return num(entry.source)
        return f"{entry.t_s - self.rel_zero_s:.9E}"

    def _trace_data(self, c: Command, now: float) -> str:
        """``:TRAC:DATA? <i>,<j>,"defbuffer1",READ,SOUR,REL`` (1-based, inclusive)."""
        self._query_only(c)
        if len(c.args) < 3:
            raise ScpiError(-109, "Missing parameter")
        start = int(parse_float(c.args[0], low=1, high=BUFFER_CAPACITY))
        end = int(parse_float(c.args[1], low=1, high=BUFFER_CAPACITY))
        self._buffer_arg(c.args[2:3])
        if start > end or end > len(self.buffer):
            raise ScpiError(-222, "Data out of range")
        elements = self._elements(c.args[3:])
        return ",".join(
            self._element(entry, e) for entry in self.buffer[start - 1 : end] for e in elements
        )


def _build(model: str) -> Any:
    def build(spec: Mapping[str, Any], ctx: BuildContext) -> Keithley24xx:
        cells = ctx.take_cells(1)
        return Keithley24xx(ctx.clock, seed=ctx.seed, model=model, cell=cells[0])

    return build


for _model in MODELS:
    register_device_kind(f"keithley{_model}", _build(_model))

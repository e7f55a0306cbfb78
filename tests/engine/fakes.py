"""A deterministic test cycler channel and meters at the Protocol boundary.

:class:`FakeChannel` satisfies :class:`station.instruments.CyclerChannel` with a simple physical
cell: OCV linear in SOC (``2.45 + 1.7 * soc`` V), a series resistance, coulomb counting and a
first-order thermal model, integrated at the step's record interval whenever it is polled, on the
clock the test gives it. Faults are injected by parameters (sensor drift, heater, stuck readings,
garbage, reversed leads, missing sensor, looser protection read-back). Every command is logged
with the clock time so tests can check ordering (protection armed before output) and latency
(output off within one poll period of a limit crossing).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from drivers.errors import InstrumentReportedError
from drivers.identity import InstrumentIdentity
from drivers.readings import (
    AcirReading,
    ChannelState,
    ChannelStatus,
    CyclerSample,
    CyclerStep,
    EisSweep,
    ImpedancePoint,
    ProtectionLimits,
    ReadingStatus,
    StepMode,
)
from station.cells import Cell
from station.clock import Clock

T0 = 1_800_000_000.0  # 2027-01-15, a fixed epoch so calibration dates are deterministic
OCV0_V = 2.45
OCV_SLOPE_V = 1.7


def make_cell(cell_id: str = "CELL-1", capacity_ah: float = 3.0) -> Cell:
    """A rated NMC cell (3 Ah, 2.5-4.2 V, 1C charge, 2C discharge)."""
    return Cell(
        cell_id,
        lot="LOT-1",
        chemistry="NMC",
        format="cylindrical",
        rated_capacity_ah=capacity_ah,
        voltage_min_v=2.5,
        voltage_max_v=4.2,
        max_charge_current_a=capacity_ah,
        max_discharge_current_a=2 * capacity_ah,
    )


def ocv_v(soc: float) -> float:
    return OCV0_V + OCV_SLOPE_V * soc


@dataclass
class CellModel:
    capacity_ah: float = 3.0
    soc: float = 0.3
    resistance_ohm: float = 0.05
    temperature_c: float = 25.0
    ambient_c: float = 25.0
    heat_capacity_j_per_k: float = 50.0
    cooling_w_per_k: float = 0.05
    joule_heating: bool = True


@dataclass
class Faults:
    """Injected faults; times are clock seconds (absolute)."""

    voltage_drift_v_per_s: float = 0.0
    heater_c_per_s: float = 0.0
    current_gain: float = 1.0
    fault_from_t_s: float = math.inf
    stuck_from_t_s: float = math.inf
    garbage_at_t_s: float = math.inf
    reversed: bool = False
    no_temperature: bool = False
    protection_slack: float = 0.0


@dataclass
class FakeChannel:
    """A one-cell cycler channel (see the module docstring)."""

    clock: Clock
    channel_id: str = "ch01"
    cell: CellModel = field(default_factory=CellModel)
    faults: Faults = field(default_factory=Faults)
    serial: str = "TC-0001"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.log: list[tuple[str, float]] = []
        self.protection: ProtectionLimits | None = None
        self._step: CyclerStep | None = None
        self._state = ChannelState.IDLE
        self._step_index = -1
        self._step_t0 = 0.0
        self._t = self.clock.now()
        self._step_time = 0.0
        self._next_record = 0.0
        self._step_ah = 0.0
        self._step_wh = 0.0
        self._pending: list[CyclerSample] = []
        self._cv = False

    @property
    def identity(self) -> InstrumentIdentity:
        return InstrumentIdentity("TEST", "CYCLER", self.serial, "1.0")

    # --- Protocol -------------------------------------------------------------------------------

    def arm_protection(self, limits: ProtectionLimits) -> ProtectionLimits:
        with self._lock:
            self.log.append(("arm", self.clock.now()))
            slack = self.faults.protection_slack
            self.protection = ProtectionLimits(
                voltage_min_v=limits.voltage_min_v - slack,
                voltage_max_v=limits.voltage_max_v + slack,
                current_max_a=limits.current_max_a * (1 + slack),
                temperature_max_c=limits.temperature_max_c,
                capacity_max_ah=limits.capacity_max_ah,
            )
            return self.protection

    def start_step(self, step: CyclerStep) -> None:
        with self._lock:
            self._advance(self.clock.now())
            self.log.append((f"start:{step.mode.value}", self.clock.now()))
            self._step = step
            self._state = ChannelState.RUNNING
            self._step_index += 1
            self._step_t0 = self._t
            self._step_time = 0.0
            self._next_record = 0.0
            self._step_ah = 0.0
            self._step_wh = 0.0
            self._cv = False
            self._record()

    def poll(self) -> ChannelStatus:
        with self._lock:
            now = self.clock.now()
            self._advance(now)
            if now >= self.faults.stuck_from_t_s:
                self._pending.clear()
            samples = tuple(self._pending)
            self._pending.clear()
            return ChannelStatus(self._state, samples, self._step_index)

    def stop(self) -> None:
        with self._lock:
            self._advance(self.clock.now())
            self.log.append(("stop", self.clock.now()))
            self._step = None
            if self._state is ChannelState.RUNNING:
                self._state = ChannelState.IDLE

    def close(self) -> None:
        self.stop()

    # --- physics --------------------------------------------------------------------------------

    @property
    def output_on(self) -> bool:
        return self._step is not None and self._step.mode is not StepMode.REST

    def _current_a(self) -> float:
        step = self._step
        cell = self.cell
        if step is None or step.mode is StepMode.REST:
            return 0.0
        ocv = ocv_v(cell.soc)
        if step.mode in (StepMode.CCCV, StepMode.CV) and step.voltage_v is not None:
            limit = abs(step.current_a)
            if self._cv or ocv + limit * cell.resistance_ohm >= step.voltage_v:
                self._cv = True
                return max(min((step.voltage_v - ocv) / cell.resistance_ohm, limit), 0.0)
            return limit
        return step.current_a

    def _advance(self, now: float) -> None:
        """Integrate from the last update to ``now`` in record-interval steps."""
        while self._step is not None and self._state is ChannelState.RUNNING:
            interval = self._step.record_interval_s
            t_next = self._step_t0 + self._next_record + interval
            if t_next > now + 1e-9:
                break
            self._integrate(t_next - self._t)
            self._t = t_next
            self._step_time = t_next - self._step_t0
            self._next_record += interval
            self._record()
            if self._check_end():
                self._state = ChannelState.FINISHED
                self._step = None
        if self._step is None or self._state is not ChannelState.RUNNING:
            self._integrate(max(now - self._t, 0.0))
            self._t = max(now, self._t)

    def _integrate(self, dt_s: float) -> None:
        if dt_s <= 0:
            return
        cell = self.cell
        current = self._current_a()
        voltage = ocv_v(cell.soc) + current * cell.resistance_ohm
        cell.soc += current * dt_s / 3600.0 / cell.capacity_ah
        self._step_ah += current * dt_s / 3600.0
        self._step_wh += current * voltage * dt_s / 3600.0
        heat = current * current * cell.resistance_ohm if cell.joule_heating else 0.0
        cool = cell.cooling_w_per_k * (cell.temperature_c - cell.ambient_c)
        cell.temperature_c += (heat - cool) * dt_s / cell.heat_capacity_j_per_k

    def reported(self, t_s: float) -> tuple[float, float, float | None]:
        """The (voltage, current, temperature) the instrument reports at clock time ``t_s``."""
        faults = self.faults
        current = self._current_a()
        voltage = ocv_v(self.cell.soc) + current * self.cell.resistance_ohm
        temperature: float | None = self.cell.temperature_c
        since = t_s - faults.fault_from_t_s
        if since >= 0:
            voltage += faults.voltage_drift_v_per_s * since
            assert temperature is not None
            temperature += faults.heater_c_per_s * since
            current *= faults.current_gain
        if faults.reversed:
            voltage = -voltage
        if faults.no_temperature:
            temperature = None
        if t_s >= faults.garbage_at_t_s:
            voltage = math.nan
        return voltage, current, temperature

    def _record(self) -> None:
        voltage, current, temperature = self.reported(self._t)
        self._pending.append(
            CyclerSample(
                t_s=self._t,
                step_index=self._step_index,
                step_time_s=self._step_time,
                voltage_v=voltage,
                current_a=current,
                temperature_c=temperature,
                step_capacity_ah=self._step_ah,
                step_energy_wh=self._step_wh,
            )
        )

    def _check_end(self) -> bool:
        step = self._step
        assert step is not None
        end = step.end
        voltage, current, _ = self.reported(self._t)
        if end.time_s is not None and self._step_time >= end.time_s - 1e-9:
            return True
        if end.capacity_ah is not None and abs(self._step_ah) >= end.capacity_ah:
            return True
        if end.voltage_below_v is not None and voltage <= end.voltage_below_v:
            return True
        if (
            end.voltage_above_v is not None
            and step.mode is not StepMode.CCCV
            and voltage >= end.voltage_above_v
        ):
            return True
        return bool(
            end.current_below_a is not None and self._cv and abs(current) < end.current_below_a
        )


class FakeAcirMeter:
    """An ACIR meter reading the cell's series resistance and OCV through a channel's model."""

    def __init__(self, channel: FakeChannel, clock: Clock) -> None:
        self.channel = channel
        self.clock = clock

    @property
    def identity(self) -> InstrumentIdentity:
        return InstrumentIdentity("TEST", "ACIR", "AC-0001", "1.0")

    def measure(self) -> AcirReading:
        cell = self.channel.cell
        return AcirReading(
            ReadingStatus.VALID,
            cell.resistance_ohm,
            ocv_v(cell.soc),
            self.clock.now(),
            self.identity,
        )


class FakeEisMeter:
    """An impedance meter: a series R plus one R||C arc (R1 = R0, C1 = 1 F), and it takes
    ``max(0.5, 2 / f)`` clock seconds per point like the BT4560."""

    def __init__(self, channel: FakeChannel, clock: Clock) -> None:
        self.channel = channel
        self.clock = clock

    @property
    def identity(self) -> InstrumentIdentity:
        return InstrumentIdentity("TEST", "EIS", "EI-0001", "1.0")

    def sweep(self, frequencies_hz: list[float] | tuple[float, ...]) -> EisSweep:
        start = self.clock.now()
        points = []
        r0 = self.channel.cell.resistance_ohm
        for f in frequencies_hz:
            self.clock.sleep(max(0.5, 2.0 / f))
            z = r0 + r0 / (1 + 1j * 2 * math.pi * f * r0 * 1.0)
            points.append(ImpedancePoint(f, z.real, z.imag, ocv_v(self.channel.cell.soc)))
        return EisSweep(tuple(points), start, self.clock.now(), self.identity)


@dataclass
class LotCell:
    """One simulated cell of a seeded lot: its true capacity, resistance and starting SOC."""

    cell_id: str
    capacity_ah: float
    resistance_ohm: float
    soc: float


def seeded_lot(count: int, seed: int) -> list[LotCell]:
    import random

    rng = random.Random(seed)
    return [
        LotCell(
            f"LOT{seed}-{i:03d}",
            capacity_ah=rng.uniform(2.2, 3.0),
            resistance_ohm=rng.uniform(0.03, 0.08),
            soc=rng.uniform(0.2, 0.5),
        )
        for i in range(count)
    ]


class FakeCabinet:
    """A multi-channel cycler: ``channel(hw_channel)`` returns that channel's FakeChannel."""

    def __init__(self, clock: Clock, cells: dict[str, CellModel], serial: str = "CAB-0001") -> None:
        self.clock = clock
        self.channels = {
            hw: FakeChannel(clock, hw, model, serial=serial) for hw, model in cells.items()
        }
        self.serial = serial
        self.closed = False

    @property
    def identity(self) -> InstrumentIdentity:
        return InstrumentIdentity("TEST", "CABINET", self.serial, "1.0")

    def channel(self, hw_channel: str) -> FakeChannel:
        return self.channels[hw_channel]

    def close(self) -> None:
        self.closed = True
        for channel in self.channels.values():
            channel.stop()


class FakeBenchAcir:
    """A bench ACIR meter (not wired to a particular cell): a fixed 25 mOhm / 3.7 V reading."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    @property
    def identity(self) -> InstrumentIdentity:
        return InstrumentIdentity("TEST", "ACIR", "AC-0001", "1.0")

    def measure(self) -> AcirReading:
        return AcirReading(ReadingStatus.VALID, 0.025, 3.7, self.clock.now(), self.identity)

    def close(self) -> None:
        pass


class FakeBenchEis(FakeEisMeter):
    def close(self) -> None:
        pass


class FakeSwitch:
    """A SCPI switch double: records route closes/opens; ``stuck`` routes fail their read-back
    as the real driver does (InstrumentReportedError naming the route)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed: int | None = None
        self.log: list[str] = []
        self.stuck: set[int] = set()

    @property
    def identity(self) -> InstrumentIdentity:
        return InstrumentIdentity("TEST", "MUX", f"MUX-{self.name}", "1.0")

    def close_route(self, route: int) -> None:
        self.log.append(f"close {route}")
        if route in self.stuck:
            raise InstrumentReportedError(f"route {route} did not close: reads '0'")
        self.closed = route

    def open_all(self) -> None:
        self.log.append("open all")
        self.closed = None

    def close(self) -> None:
        pass


def bench_models(**cell: float) -> dict[str, CellModel]:
    """One fresh CellModel per channel of the sim-demo preset, keyed by hardware channel."""
    from station.config import load_preset

    return {c.hw_channel: CellModel(**cell) for c in load_preset("sim-demo").channels.values()}


class FakeConnector:
    """Opens the sim-demo bench's instruments as fakes (cabinet channels ``27-1-<n>``)."""

    def __init__(self, clock: Clock, models: dict[str, CellModel]) -> None:
        self.clock = clock
        self.models = models
        self.opened: dict[str, object] = {}

    def open(self, config) -> object:  # type: ignore[no-untyped-def]
        if config.driver == "neware-bts":
            instrument: object = FakeCabinet(self.clock, self.models)
        elif config.driver == "hioki-bt3562":
            instrument = FakeBenchAcir(self.clock)
        elif config.driver == "scpi-switch":
            instrument = FakeSwitch(config.name)
        else:
            first = next(iter(self.models.values()))
            instrument = FakeBenchEis(FakeChannel(self.clock, cell=first), self.clock)
        self.opened[config.name] = instrument
        return instrument

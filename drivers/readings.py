"""Readings and the cycler command vocabulary shared by drivers and the station.

These types live in the lowest layer so that drivers can produce them and the station can consume
them without either importing the other's classes. Units are in the field names; current is
positive when it charges the cell.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from drivers.identity import InstrumentIdentity


class ReadingStatus(enum.Enum):
    """Whether a meter reading holds numbers. Over-range and no-contact are results, not numbers."""

    VALID = "valid"
    OVER_RANGE = "over_range"
    NO_CONTACT = "no_contact"
    REVERSED = "reversed"


@dataclass(frozen=True)
class AcirReading:
    """One AC internal resistance (1 kHz) and DC voltage reading.

    ``resistance_ohm`` and ``voltage_v`` are ``None`` unless ``status`` is VALID (the voltage may
    still be given with an over-range resistance). ``t_s`` is the station clock time of the reading.
    """

    status: ReadingStatus
    resistance_ohm: float | None
    voltage_v: float | None
    t_s: float
    identity: InstrumentIdentity
    frequency_hz: float = 1000.0


@dataclass(frozen=True)
class ImpedancePoint:
    """Complex impedance at one frequency: Z = z_real_ohm + j * z_imag_ohm (X is the reactance)."""

    frequency_hz: float
    z_real_ohm: float
    z_imag_ohm: float
    voltage_v: float
    status: ReadingStatus = ReadingStatus.VALID


@dataclass(frozen=True)
class EisSweep:
    """An impedance spectrum measured point by point, in the order the frequencies were given."""

    points: tuple[ImpedancePoint, ...]
    t_start_s: float
    t_end_s: float
    identity: InstrumentIdentity


class StepMode(enum.Enum):
    """What the cycler output does during a step."""

    REST = "rest"  # output open (high impedance), no current
    CC = "cc"  # constant current (sign gives direction), voltage clamp at the end voltage
    CCCV = "cccv"  # constant current until voltage_v, then hold voltage_v until current decays
    CV = "cv"  # hold voltage_v with |current| limited to |current_a|


@dataclass(frozen=True)
class EndConditions:
    """A step ends when any given condition holds (``None`` = not used).

    Voltages in V, currents in A (magnitude), time in s since the step start, capacity in Ah moved
    during the step (magnitude), dV/dt in V/s (magnitude, for rests).
    """

    time_s: float | None = None
    voltage_above_v: float | None = None
    voltage_below_v: float | None = None
    current_below_a: float | None = None
    capacity_ah: float | None = None
    dvdt_below_v_per_s: float | None = None


@dataclass(frozen=True)
class CyclerStep:
    """One primitive step a cycler channel executes: output mode, set-points, end, record rate."""

    mode: StepMode
    current_a: float = 0.0
    voltage_v: float | None = None
    end: EndConditions = field(default_factory=EndConditions)
    record_interval_s: float = 1.0
    record_delta_v: float | None = None
    label: str = ""


@dataclass(frozen=True)
class ProtectionLimits:
    """Instrument-side protection written (and read back) before any output is turned on."""

    voltage_min_v: float
    voltage_max_v: float
    current_max_a: float
    temperature_max_c: float | None = None
    capacity_max_ah: float | None = None


@dataclass(frozen=True)
class CyclerSample:
    """One recorded point of a channel, as the instrument timestamped it.

    ``t_s`` is the instrument's test time (s since the channel's programme started); ``step_index``
    counts steps started on this channel (0-based); ``step_time_s`` is the time since that step
    started; capacity/energy are cumulative within the step (Ah, Wh, positive when charging).
    """

    t_s: float
    step_index: int
    step_time_s: float
    voltage_v: float
    current_a: float
    temperature_c: float | None = None
    step_capacity_ah: float | None = None
    step_energy_wh: float | None = None


class ChannelState(enum.Enum):
    """A cycler channel's state as the instrument reports it."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"  # the current step reached one of its end conditions
    PROTECTED = "protected"  # an instrument-side protection tripped; output is off
    FAULT = "fault"


@dataclass(frozen=True)
class ChannelStatus:
    """What one poll of a channel returned: its state and every sample recorded since last poll."""

    state: ChannelState
    samples: tuple[CyclerSample, ...] = ()
    step_index: int = 0
    protect_code: str | None = None
    message: str = ""

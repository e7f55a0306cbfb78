"""What the station needs from instruments, as ``typing.Protocol`` s.

Drivers satisfy these by shape; the engine never imports a driver class by name (a registry maps a
bench-config name such as ``hioki-bt3562`` to a driver). All methods block and are called only from
the worker thread that owns the instrument connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from drivers.identity import InstrumentIdentity
from drivers.readings import (
    AcirReading,
    ChannelStatus,
    CyclerStep,
    EisSweep,
    ProtectionLimits,
)


@runtime_checkable
class Instrument(Protocol):
    """Anything with a connection: opened, identified and closed by its owner thread."""

    @property
    def identity(self) -> InstrumentIdentity: ...

    def close(self) -> None: ...


@runtime_checkable
class CyclerChannel(Protocol):
    """One channel of a cycler (or a single-channel source/sink) with a cell attached."""

    @property
    def identity(self) -> InstrumentIdentity: ...

    @property
    def channel_id(self) -> str: ...

    def arm_protection(self, limits: ProtectionLimits) -> ProtectionLimits:
        """Write instrument-side protection, read it back and return what the instrument holds."""
        ...

    def start_step(self, step: CyclerStep) -> None:
        """Start one step; the instrument enforces its set-points and, where it can, its end."""
        ...

    def poll(self) -> ChannelStatus:
        """Return the state and every sample recorded since the previous poll."""
        ...

    def stop(self) -> None:
        """Turn the output off (high impedance, never a 0 V source). Idempotent."""
        ...


@runtime_checkable
class RoundPrefetcher(Protocol):
    """A multi-channel instrument that reads many channels' states in one exchange.

    The engine calls ``prefetch_round`` once at the start of each poll round with the channels
    it is about to poll; each channel's next ``poll`` in that round then uses the batched read.
    """

    def prefetch_round(self, channels: Sequence[object]) -> None: ...


@runtime_checkable
class AcirMeter(Protocol):
    """A 1 kHz AC resistance + DC voltage meter (Hioki BT3562 class)."""

    @property
    def identity(self) -> InstrumentIdentity: ...

    def measure(self) -> AcirReading:
        """Trigger one reading; over-range and no-contact come back as statuses, not numbers."""
        ...


@runtime_checkable
class EisMeter(Protocol):
    """An impedance meter measuring at a list of frequencies (Hioki BT4560 class)."""

    @property
    def identity(self) -> InstrumentIdentity: ...

    def sweep(self, frequencies_hz: Sequence[float]) -> EisSweep:
        """Measure Z at each frequency in order (low frequencies take tens of seconds)."""
        ...


@runtime_checkable
class RouteSwitch(Protocol):
    """A relay multiplexer putting one channel's cell on a shared meter's leads (SCPI switch)."""

    @property
    def identity(self) -> InstrumentIdentity: ...

    def close_route(self, route: int) -> None:
        """Open every relay, close ``route`` alone and read it back (raise on a mismatch)."""
        ...

    def open_all(self) -> None:
        """Open every relay: no cell on the meter's leads."""
        ...


@runtime_checkable
class Thermometer(Protocol):
    """A cell or ambient temperature sensor."""

    def read_celsius(self) -> float: ...

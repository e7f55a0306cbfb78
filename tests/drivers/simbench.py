"""Simulated instruments behind real transports (TCP, pty, ``sim://``) for driver tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

from hardware_sim.clock import SimClock
from hardware_sim.devices.base import Personality
from hardware_sim.devices.bt356x import Bt356x
from hardware_sim.devices.bt4560 import Bt4560
from hardware_sim.devices.keithley24xx import Keithley24xx
from hardware_sim.population import generate_lot
from hardware_sim.serial_handlers import attach, detach
from hardware_sim.transports.pty import PtyServer
from hardware_sim.transports.tcp import TcpServer

SPEED = 10_000.0
_names = itertools.count()


def make_clock(speed: float = SPEED) -> SimClock:
    return SimClock(0.0, speed)


def make_bt3562(clock: SimClock, seed: int = 7) -> Bt356x:
    cell = generate_lot("new-cells", 1, seed=seed)[0].cell
    return Bt356x(clock, seed=seed, model="BT3562", cell=cell)


def make_bt4560(clock: SimClock, seed: int = 7) -> Bt4560:
    cell = generate_lot("new-cells", 1, seed=seed)[0].cell
    return Bt4560(clock, seed=seed, cell=cell)


def make_keithley(clock: SimClock, seed: int = 7) -> Keithley24xx:
    cell = generate_lot("new-cells", 1, seed=seed)[0].cell
    return Keithley24xx(clock, seed=seed, model="2450", cell=cell)


@contextmanager
def served(personality: Personality, how: str) -> Iterator[str]:
    """Serve ``personality`` and yield the address a driver opens.

    ``how``: tcp, visa (TCPIP SOCKET), socket (pyserial URL), pty, visa_pty (ASRL on the pty), sim.
    """
    if how in ("tcp", "visa", "socket"):
        with TcpServer(personality) as server:
            yield {
                "tcp": f"tcp://127.0.0.1:{server.port}",
                "visa": f"TCPIP::127.0.0.1::{server.port}::SOCKET",
                "socket": f"socket://127.0.0.1:{server.port}",
            }[how]
    elif how in ("pty", "visa_pty"):
        with PtyServer(personality) as server:
            yield server.path if how == "pty" else f"ASRL{server.path}::INSTR"
    elif how == "sim":
        name = f"drv{next(_names)}"
        url = attach(name, personality)
        try:
            yield url
        finally:
            detach(name)
    else:
        raise ValueError(how)

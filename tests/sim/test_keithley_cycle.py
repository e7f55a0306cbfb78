"""End to end over sim:// with raw pyserial: a host cycles a cell on a Keithley 2460 with the
SimpleLoop buffer and integrates the current itself; the capacity must be the configured one."""

from __future__ import annotations

import serial

from hardware_sim.cell import Cell
from hardware_sim.chemistry import chemistry
from hardware_sim.clock import SimClock
from hardware_sim.devices.keithley24xx import Keithley24xx
from hardware_sim.serial_handlers import attach, detach


class Host:
    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self.read_upto = 0

    def send(self, line: str) -> None:
        self.port.write(line.encode() + b"\n")

    def query(self, line: str) -> str:
        self.send(line)
        return self.port.read_until(b"\n").decode().strip()

    def new_samples(self) -> list[tuple[float, float]]:
        """(REL s, current A) pairs recorded since the last call."""
        end = int(self.query(':TRAC:ACT:END? "defbuffer1"'))
        if end <= self.read_upto:
            return []
        fields = self.query(f':TRAC:DATA? {self.read_upto + 1},{end},"defbuffer1",READ,REL')
        self.read_upto = end
        values = [float(x) for x in fields.split(",")]
        return [(values[i + 1], values[i]) for i in range(0, len(values), 2)]


def run_step(host: Host, clock: SimClock, voltage: float, limit: float, stop: str) -> float:
    """CV at ``voltage`` with ILIM ``limit``, sampled every 10 s; returns the Ah integrated by
    the trapezoid rule up to the first sample meeting ``stop`` (taper or knee)."""
    for line in (
        ":TRAC:CLE",
        f":SOUR:VOLT {voltage}",
        f":SOUR:VOLT:ILIM {limit}",
        ":OUTP ON",
        ':TRIG:LOAD "SimpleLoop",100000,10',
        ":INIT",
    ):
        host.send(line)
    host.read_upto = 0
    ah = 0.0
    last: tuple[float, float] | None = (0.0, limit if voltage > 3.5 else -limit)
    while True:
        clock.advance(60.0)
        for t, i in host.new_samples():
            assert last is not None
            ah += (t - last[0]) * (i + last[1]) / 2 / 3600.0
            last = (t, i)
            done = abs(i) < limit / 20 if stop == "taper" else abs(i) < limit * 0.999
            if done:
                host.send(":ABOR")
                host.send(":OUTP OFF")
                return ah


def test_cccv_then_c3_discharge_through_the_sourcemeter_gives_the_capacity() -> None:
    clock = SimClock(manual=True)
    cell = Cell(chemistry("nmc").params(3.0, acir_ohm=0.02), soc=0.0)
    smu = Keithley24xx(clock, seed=2, model="2460", cell=cell)
    url = attach("cycle-smu", smu)
    port = serial.serial_for_url(url, timeout=1.0)
    try:
        host = Host(port)
        for line in (":OUTP:CURR:SMOD HIMP", ":SOUR:FUNC VOLT", ':SENS:FUNC "CURR"'):
            host.send(line)
        assert host.query(":SYST:ERR?") == '0,"No error"'
        charged = run_step(host, clock, 4.2, 3.0, "taper")
        clock.advance(1800.0)
        discharged = -run_step(host, clock, 2.5, 1.0, "knee")
        assert host.query(":SYST:ERR?") == '0,"No error"'
    finally:
        port.close()
        detach("cycle-smu")
    # configured 3.0 Ah within the brief's 0.5 %; the host's 10 s trapezoid adds < 0.1 %
    assert abs(discharged - 3.0) / 3.0 < 5e-3
    # coulomb count of the host vs the cell's own counter over the whole run: within 0.2 %
    assert charged > discharged
    assert abs((charged - discharged) - cell.charge_ah) < 0.002 * 3.0

# ruff: noqa: E501  (fault and step literals are kept on one line)
"""Wire and state faults from the simulator's own injector (hardware_sim.faults) over real TCP.

Each fault must end in the documented recovery: the driver reconnects, re-reads the cabinet, and
the next readings are right (every row once, nothing re-started), or the channel reports the
protection the fault caused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.neware_bts import NewareBtsCabinet, open_neware_bts
from drivers.readings import (
    ChannelState,
    CyclerSample,
    CyclerStep,
    EndConditions,
    ProtectionLimits,
    StepMode,
)
from hardware_sim.cell import Cell
from hardware_sim.chemistry import NMC
from hardware_sim.clock import SimClock
from hardware_sim.devices.neware_bts import NewareCabinet
from hardware_sim.faults import Fault, FaultInjector, FaultKind
from hardware_sim.transports.tcp import TcpServer

SPEED = 500.0
LIMITS = ProtectionLimits(
    voltage_min_v=2.5, voltage_max_v=4.2, current_max_a=3.0, temperature_max_c=60.0
)
STEP = CyclerStep(
    StepMode.CC, current_a=-1.0, end=EndConditions(time_s=300.0), record_interval_s=2.0
)


@dataclass
class Rig:
    sim: NewareCabinet
    injector: FaultInjector
    cab: NewareBtsCabinet
    server: TcpServer


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = SimClock(1_800_000_000.0, speed=SPEED)
    cells = [Cell(NMC.params(2.0), soc=0.6, t_s=clock.now()) for _ in range(2)]
    sim = NewareCabinet(clock, cells, seed=21)
    injector = FaultInjector(seed=21).attach(sim)
    with TcpServer(sim) as server:
        cab = open_neware_bts(
            f"tcp://127.0.0.1:{server.port}",
            step_dir=tmp_path,
            timeout_s=0.5,
            reconnect_backoff_s=0.1,
            reconnect_attempts=8,
        )
        try:
            yield Rig(sim, injector, cab, server)
        finally:
            cab.close()


def run_to_end(
    rig: Rig, inject_after_first: Fault | None = None
) -> tuple[list[CyclerSample], ChannelState]:
    channel = rig.cab.channel("27-1-1")
    samples: list[CyclerSample] = []
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        status = channel.poll()
        samples += status.samples
        if status.state is not ChannelState.RUNNING:
            return samples, status.state
        if inject_after_first is not None and samples:
            rig.injector.inject(inject_after_first)
            inject_after_first = None
        time.sleep(0.02)
    raise AssertionError("channel never finished")


def expected_times() -> list[float]:
    return [2.0 * i for i in range(151)]


def test_dropped_reply_to_start_is_found_by_barcode(rig: Rig) -> None:
    channel = rig.cab.channel("27-1-1")
    channel.arm_protection(LIMITS)
    rig.injector.inject(Fault(FaultKind.DROP_REPLY))
    channel.start_step(STEP)
    assert [e["fault"] for e in rig.injector.log] == ["drop_reply"]
    assert rig.cab.reconnects == 1
    assert rig.sim.channel("27-1-1").testid == 1, "started exactly once"
    samples, state = run_to_end(rig)
    assert state is ChannelState.FINISHED
    assert [s.step_time_s for s in samples] == expected_times()


@pytest.mark.parametrize(
    "fault",
    [
        Fault(FaultKind.DISCONNECT, offline_s=0.3),
        Fault(FaultKind.GARBAGE),
        Fault(FaultKind.TRUNCATE),
        Fault(FaultKind.DROP_REPLY),
        Fault(FaultKind.DELAY, delay_s=2.0 * SPEED),
    ],
    ids=lambda f: f.kind.value,
)
def test_reply_faults_while_polling_lose_and_duplicate_nothing(rig: Rig, fault: Fault) -> None:
    channel = rig.cab.channel("27-1-1")
    channel.arm_protection(LIMITS)
    channel.start_step(STEP)
    samples, state = run_to_end(rig, inject_after_first=fault)
    assert state is ChannelState.FINISHED
    assert [e["fault"] for e in rig.injector.log] == [fault.kind.value]
    assert rig.cab.reconnects >= 1
    assert [s.step_time_s for s in samples] == expected_times()
    assert samples[-1].step_capacity_ah == pytest.approx(-300.0 / 3600.0, abs=1e-6)


def test_over_temperature_fault_protects_the_channel(rig: Rig) -> None:
    channel = rig.cab.channel("27-1-1")
    channel.arm_protection(LIMITS)
    channel.start_step(STEP)
    samples, state = run_to_end(
        rig, inject_after_first=Fault(FaultKind.OVER_TEMPERATURE, temperature_c=85.0)
    )
    assert state is ChannelState.PROTECTED
    status = channel.poll()
    assert status.protect_code == "200104"
    assert samples[-1].temperature_c is not None and samples[-1].temperature_c > 60.0
    assert rig.sim.cells[0].current_a == 0.0

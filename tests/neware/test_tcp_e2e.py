# ruff: noqa: E501  (step literals are kept on one line)
"""End to end: the Neware driver over real TCP to a 16-channel simulated cabinet with real cells.

The bench clock runs 2000x faster than wall time, so a 10-minute discharge takes 0.3 s of wall
time. The server drops the client once mid-step; the driver reconnects and keeps its position.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drivers.neware_bts import open_neware_bts
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
from hardware_sim.transports.tcp import TcpServer
from station.clock import SystemClock
from station.instruments import CyclerChannel

LIMITS = ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.2, current_max_a=3.0)


def test_driver_and_cabinet_over_tcp_with_a_dropped_link(tmp_path: Path) -> None:
    clock = SimClock(1_800_000_000.0, speed=2000.0)
    cells = [Cell(NMC.params(2.0), soc=0.6, t_s=clock.now()) for _ in range(16)]
    sim = NewareCabinet(clock, cells, seed=11)
    with TcpServer(sim) as server:
        cab = open_neware_bts(
            f"tcp://127.0.0.1:{server.port}",
            step_dir=tmp_path,
            timeout_s=2.0,
            reconnect_backoff_s=0.05,
        )
        try:
            assert len(cab.pipeline_ids()) == 16
            assert cab.identity.simulated and cab.identity.serial == "SIMULATED-11"
            channel = cab.channel("27-2-8")
            cell = cells[15]
            channel.arm_protection(LIMITS)
            charge0 = cell.charge_ah
            step = CyclerStep(
                StepMode.CC, current_a=-1.0, end=EndConditions(time_s=600.0, voltage_below_v=2.5)
            )
            channel.start_step(step)
            samples: list[CyclerSample] = []
            dropped = False
            wall_limit = time.monotonic() + 30.0
            while time.monotonic() < wall_limit:
                status = channel.poll()
                samples += status.samples
                if status.state is not ChannelState.RUNNING:
                    break
                if samples and not dropped:
                    server.drop_client()
                    dropped = True
                time.sleep(0.03)
            assert status.state is ChannelState.FINISHED
            assert dropped and cab.reconnects >= 1
            # One row at t = 0 and one per second up to the 600 s limit, each exactly once.
            assert [s.step_time_s for s in samples] == [float(i) for i in range(601)]
            # Capacity: the cabinet's trapezoid count vs -I*t, and vs the cell's own coulomb count
            # (1e-6 Ah: the cell's self-discharge is off and the current is constant).
            assert abs(samples[-1].step_capacity_ah - (-600.0 / 3600.0)) <= 1e-6
            assert abs(samples[-1].step_capacity_ah - (cell.charge_ah - charge0)) <= 1e-6
            assert all(2.5 < s.voltage_v < 4.2 for s in samples)
            # Aux temperature: I^2 R heating warms the cell from ambient, never beyond the
            # steady-state rise I^2 * R_dc * R_thermal (rows carry 0.01 degC).
            p = cell.params
            rise_max = 1.0**2 * p.dc_resistance_ohm * p.thermal_resistance_k_per_w
            temps = [s.temperature_c for s in samples]
            assert temps[0] == pytest.approx(p.ambient_c, abs=0.005)
            assert all(t is not None for t in temps)
            assert p.ambient_c < temps[-1] <= p.ambient_c + rise_max + 0.005  # type: ignore[operator]
            assert cells[0].charge_ah == 0.0
        finally:
            cab.close()


def test_registry_opens_the_cabinet_by_config_name(tmp_path: Path) -> None:
    from drivers import registry
    from drivers.errors import SettingError

    clock = SimClock(1_800_000_000.0, speed=100.0)
    sim = NewareCabinet(clock, [Cell(NMC.params(2.0), t_s=clock.now()) for _ in range(2)], seed=4)
    with TcpServer(sim) as server:
        address = f"tcp://127.0.0.1:{server.port}"
        with pytest.raises(SettingError, match="stepdir"):
            registry.open_instrument("neware-bts", address, {"stepdir": "x"})
        with pytest.raises(SettingError, match="devid"):
            registry.open_instrument(
                "neware-bts", address, {"devid": 99, "step_dir": str(tmp_path)}
            )
        cab = registry.open_instrument(
            "neware-bts",
            address,
            {"step_dir": str(tmp_path), "timeout_s": 2.0, "devid": 27},
            clock=SystemClock(),
        )
        try:
            assert cab.pipeline_ids() == ["27-1-1", "27-1-2"]
            assert isinstance(cab.channel("27-1-2"), CyclerChannel)
            assert cab.identity.simulated
        finally:
            cab.close()


@pytest.mark.parametrize(
    "form",
    ["tcp://127.0.0.1:{port}", "TCPIP::127.0.0.1::{port}::SOCKET", "socket://127.0.0.1:{port}"],
    ids=["raw-tcp", "visa-socket", "pyserial-socket"],
)
def test_same_driver_test_over_each_transport(tmp_path: Path, form: str) -> None:
    clock = SimClock(1_800_000_000.0, speed=1000.0)
    cells = [Cell(NMC.params(2.0), soc=0.5, t_s=clock.now()) for _ in range(2)]
    with TcpServer(NewareCabinet(clock, cells, seed=2)) as server:
        cab = open_neware_bts(form.format(port=server.port), step_dir=tmp_path, timeout_s=2.0)
        try:
            channel = cab.channel("27-1-2")
            channel.arm_protection(LIMITS)
            channel.start_step(
                CyclerStep(StepMode.REST, end=EndConditions(time_s=60.0), record_interval_s=1.0)
            )
            samples: list[CyclerSample] = []
            deadline = time.monotonic() + 20.0
            while time.monotonic() < deadline:
                status = channel.poll()
                samples += status.samples
                if status.state is not ChannelState.RUNNING:
                    break
                time.sleep(0.02)
            assert status.state is ChannelState.FINISHED
            assert [s.step_time_s for s in samples] == [float(i) for i in range(61)]
            # At rest the terminal voltage equals the OCV at SOC 0.5 (no current, no leak).
            assert samples[-1].voltage_v == pytest.approx(cells[1].ocv_v, abs=1e-6)
        finally:
            cab.close()

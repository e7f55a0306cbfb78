# ruff: noqa: E501  (step literals are kept on one line)
"""The Neware driver against the simulated cabinet, in process, with wire faults injected."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from drivers.errors import InstrumentError
from drivers.neware_bts import NewareBtsCabinet
from drivers.readings import (
    ChannelState,
    CyclerSample,
    CyclerStep,
    EndConditions,
    ProtectionLimits,
    StepMode,
)
from hardware_sim.clock import SimClock
from hardware_sim.devices.neware_bts import NewareCabinet
from tests.neware.linear_cell import LinearCell
from tests.neware.loopback import Fault, LoopbackTransport

LIMITS = ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.3, current_max_a=3.0)
CCCV = CyclerStep(
    StepMode.CCCV,
    current_a=1.0,
    voltage_v=4.1,
    end=EndConditions(current_below_a=0.1),
    record_interval_s=5.0,
)
REST = CyclerStep(StepMode.REST, end=EndConditions(time_s=600.0), record_interval_s=10.0)


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = SimClock(1_800_000_000.0, manual=True)
        self.cells = [LinearCell(t_s=self.clock.now()) for _ in range(4)]
        self.sim = NewareCabinet(self.clock, self.cells, seed=3, devid=5, channels_per_unit=2)
        self.link = LoopbackTransport(self.sim, self.clock)
        self.cab = NewareBtsCabinet(self.link, step_dir=tmp_path, run_id="lot9").connect()

    def run(self, channel_id: str, step_s: float = 300.0, limit: int = 200) -> list:
        channel = self.cab.channel(channel_id)
        statuses = []
        for _ in range(limit):
            self.clock.advance(step_s)
            status = channel.poll()
            statuses.append(status)
            if status.state is not ChannelState.RUNNING:
                return statuses
        raise AssertionError("channel never left RUNNING")


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def samples_of(statuses: list) -> list[CyclerSample]:
    return [s for status in statuses for s in status.samples]


def test_channels_and_identity(rig: Rig) -> None:
    assert rig.cab.pipeline_ids() == ["5-1-1", "5-1-2", "5-2-1", "5-2-2"]
    assert rig.cab.identity.simulated and rig.cab.identity.serial == "SIMULATED-3"


def test_cccv_run_delivers_every_row_once_and_the_cells_charge(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    channel = rig.cab.channel("5-2-1")
    cell = rig.cells[2]
    channel.arm_protection(LIMITS)
    with caplog.at_level(logging.WARNING):
        channel.start_step(CCCV)
        statuses = rig.run("5-2-1")
    assert not caplog.records, "a clean run needs no recovery"
    assert statuses[-1].state is ChannelState.FINISHED
    samples = samples_of(statuses)
    rows = rig.sim.channel("5-2-1").rows
    assert len(samples) == len(rows)
    assert [s.step_time_s for s in samples] == [round(r.t_test_s, 3) for r in rows]
    # The last sample's capacity is the cabinet's count; the analytic cell's own count agrees
    # within 1e-6 Ah (trapezoid error of the tick where the CV phase began).
    assert abs(samples[-1].step_capacity_ah - cell.charge_ah) <= 1e-6
    assert all(s.step_index == 0 for s in samples)
    assert rig.cells[0].charge_ah == 0.0


def test_consecutive_steps_continue_programme_time(rig: Rig) -> None:
    channel = rig.cab.channel("5-1-1")
    channel.arm_protection(LIMITS)
    channel.start_step(REST)
    first = samples_of(rig.run("5-1-1"))
    channel.start_step(
        CyclerStep(
            StepMode.CC, current_a=-0.5, end=EndConditions(time_s=120.0), record_interval_s=10.0
        )
    )
    second = samples_of(rig.run("5-1-1", step_s=50.0))
    assert first[-1].t_s == pytest.approx(600.0, abs=1e-3)
    assert [s.step_index for s in second] == [1] * len(second)
    assert second[0].t_s == pytest.approx(600.0, abs=1e-3)
    assert second[-1].t_s == pytest.approx(720.0, abs=1e-3)
    assert second[-1].step_capacity_ah == pytest.approx(-0.5 * 120 / 3600, abs=1e-9)
    assert sum("<cmd>start</cmd>" in t for t in rig.link.sent) == 2


def test_dropped_reply_to_start_is_found_by_barcode_not_resent(rig: Rig) -> None:
    channel = rig.cab.channel("5-1-2")
    channel.arm_protection(LIMITS)
    rig.link.faults.append(Fault("drop", "start"))
    channel.start_step(CCCV)
    assert rig.link.injected == ["drop:start"]
    assert sum("<cmd>start</cmd>" in t for t in rig.link.sent) == 1
    assert rig.cab.reconnects == 1
    assert rig.sim.channel("5-1-2").barcode == "lot9/0"
    assert rig.run("5-1-2")[-1].state is ChannelState.FINISHED


def test_refused_start_after_lost_reply_is_reported(rig: Rig) -> None:
    channel = rig.cab.channel("5-1-2")
    channel.arm_protection(LIMITS)
    channel.start_step(CCCV)
    rig.link.faults.append(Fault("drop", "start"))
    with pytest.raises(InstrumentError, match="unconfirmed"):
        channel.start_step(CCCV)  # refused: the channel is still working on lot9/0
    assert sum("<cmd>start</cmd>" in t for t in rig.link.sent) == 2


@pytest.mark.parametrize("kind", ["disconnect", "garbage", "drop"])
@pytest.mark.parametrize("cmd", ["download", "inquire"])
def test_faults_during_polling_lose_and_duplicate_nothing(rig: Rig, kind: str, cmd: str) -> None:
    channel = rig.cab.channel("5-1-1")
    channel.arm_protection(LIMITS)
    channel.start_step(CCCV)
    rig.clock.advance(1000.0)
    before = list(channel.poll().samples)
    rig.link.faults.append(Fault(kind, cmd))
    statuses = rig.run("5-1-1")
    assert rig.link.injected == [f"{kind}:{cmd}"]
    assert rig.cab.reconnects == 1
    samples = before + samples_of(statuses)
    rows = rig.sim.channel("5-1-1").rows
    assert [s.step_time_s for s in samples] == [round(r.t_test_s, 3) for r in rows]
    assert statuses[-1].state is ChannelState.FINISHED


def test_protect_state_carries_the_log_code(rig: Rig) -> None:
    channel = rig.cab.channel("5-2-2")
    channel.arm_protection(
        ProtectionLimits(voltage_min_v=2.5, voltage_max_v=3.9, current_max_a=3.0)
    )
    channel.start_step(CCCV)
    last = rig.run("5-2-2")[-1]
    assert last.state is ChannelState.PROTECTED
    assert last.protect_code == "200101"
    assert rig.cells[3].current_a == 0.0


def test_stop_is_idempotent_and_opens_the_output(rig: Rig) -> None:
    channel = rig.cab.channel("5-1-1")
    channel.arm_protection(LIMITS)
    channel.start_step(CCCV)
    rig.clock.advance(100.0)
    channel.stop()
    channel.stop()
    assert channel.poll().state is ChannelState.IDLE
    assert rig.cells[0].current_a == 0.0

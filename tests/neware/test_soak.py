"""Soak: the driver polls a busy cabinet while a seeded fault hits about every 100th message.

Checks over the whole run: no unhandled exception, every row of every test delivered exactly once
and in order, every start issued exactly once, every injected fault logged. The short form runs in
CI; ``-m slow`` runs >= 10,000 messages.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from drivers.neware_bts import NewareBtsCabinet
from drivers.readings import ChannelState, CyclerStep, EndConditions, ProtectionLimits, StepMode
from hardware_sim.clock import SimClock
from hardware_sim.devices.neware_bts import NewareCabinet
from tests.neware.linear_cell import LinearCell
from tests.neware.loopback import Fault, LoopbackTransport

LIMITS = ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.3, current_max_a=3.0)
PROGRAMME = [
    CyclerStep(StepMode.CC, current_a=-0.5, end=EndConditions(time_s=900.0), record_interval_s=5.0),
    CyclerStep(StepMode.REST, end=EndConditions(time_s=300.0), record_interval_s=10.0),
    CyclerStep(
        StepMode.CCCV,
        current_a=1.0,
        voltage_v=4.0,
        end=EndConditions(current_below_a=0.2, time_s=7200.0),
        record_interval_s=5.0,
    ),
]


def soak(tmp_path: Path, messages: int, seed: int, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(seed)
    clock = SimClock(1_900_000_000.0, manual=True)
    cells = [LinearCell(t_s=clock.now(), soc=0.5) for _ in range(4)]
    sim = NewareCabinet(clock, cells, seed=seed)
    link = LoopbackTransport(sim, clock)
    cab = NewareBtsCabinet(link, step_dir=tmp_path, run_id="soak").connect()
    channels = cab.channels()
    delivered: dict[tuple[str, int], list[float]] = {}
    recorded: dict[tuple[str, int], list[float]] = {}
    next_step = dict.fromkeys(range(len(channels)), 0)
    for channel in channels:
        channel.arm_protection(LIMITS)
    caplog.set_level(logging.WARNING, logger="drivers")
    next_fault = rng.randint(50, 150)
    while len(link.sent) < messages:
        if len(link.sent) >= next_fault and not link.faults:
            kind = rng.choice(["drop", "garbage", "disconnect"])
            cmd = rng.choice(["inquire", "download", "start"])
            link.faults.append(Fault(kind, cmd))
            next_fault = len(link.sent) + rng.randint(50, 150)
        for i, channel in enumerate(channels):
            status = channel.poll()
            for sample in status.samples:
                delivered.setdefault((channel.channel_id, sample.step_index), []).append(
                    sample.step_time_s
                )
            if status.state is not ChannelState.RUNNING:
                sim_channel = sim.channel(channel.channel_id)
                if next_step[i] > 0:
                    recorded[(channel.channel_id, next_step[i] - 1)] = [
                        round(r.t_test_s, 3) for r in sim_channel.rows
                    ]
                channel.start_step(PROGRAMME[next_step[i] % len(PROGRAMME)])
                next_step[i] += 1
        clock.advance(rng.uniform(5.0, 400.0))
    # Finished tests: every row exactly once, in order.
    assert recorded, "the soak completed no step"
    for key, times in recorded.items():
        assert delivered.get(key, []) == times, key
    starts = sum("<cmd>start</cmd>" in text for text in link.sent)
    assert starts == sum(next_step.values()), "a start was re-sent or lost"
    logged = sum("fault" in record.getMessage() for record in caplog.records)
    assert len(link.injected) > 0
    assert logged >= len(link.injected), "every injected fault is logged"


def test_soak_short(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    soak(tmp_path, messages=1500, seed=5, caplog=caplog)


@pytest.mark.slow
def test_soak_long(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    soak(tmp_path, messages=12000, seed=6, caplog=caplog)

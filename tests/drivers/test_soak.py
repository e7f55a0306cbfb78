"""Fault-injection soak over the simulator (reliability.md R3/R4, scaled to one instrument each).

A fault hits about one query in a hundred (drop, busy, garbage, truncated line, late reply,
disconnect). Pass: no exception escapes the drivers, every accepted reading equals what the
simulated instrument itself measured (for the SourceMeter: every buffered reading delivered once,
in order, none invented), and every injected fault left a warning in the log.
The short form runs in CI; ``-m slow`` runs >= 10,000 messages per instrument.
"""

from __future__ import annotations

import logging

import pytest

from drivers import registry
from drivers.readings import CyclerStep, EndConditions, ProtectionLimits, ReadingStatus, StepMode
from drivers.session import Backoff
from tests.drivers.sim_faults import FaultInjector
from tests.drivers.simbench import make_bt3562, make_clock, make_keithley, served

BACKOFF = Backoff(attempts=10, initial_s=0.02, max_s=0.2)
FAULT_RATE = 0.01


def _fault_warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        1 for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("drivers")
    )


def soak_acir(messages: int, seed: int, caplog: pytest.LogCaptureFixture) -> FaultInjector:
    caplog.set_level(logging.WARNING, logger="drivers")
    clock = make_clock()
    personality = make_bt3562(clock, seed=seed)
    faults = FaultInjector(delay_wall_s=0.3, rate=FAULT_RATE, seed=seed)
    with served(personality, "tcp") as address:
        meter = registry.open_instrument(
            "hioki-bt3562", address, {"timeout_s": 0.2}, clock=clock, backoff=BACKOFF
        )
        personality.faults = faults
        readings = 0
        try:
            while faults.messages < messages:
                reading = meter.measure()
                r_text, v_text = personality.last
                assert reading.status is ReadingStatus.VALID
                assert (reading.resistance_ohm, reading.voltage_v) == (
                    float(r_text),
                    float(v_text),
                ), f"wrong reading accepted after faults {faults.injected[-3:]}"
                readings += 1
        finally:
            personality.faults = None
            meter.close()
    assert readings >= messages * 0.9
    assert _fault_warnings(caplog) >= len(faults.injected)
    return faults


def soak_keithley(messages: int, seed: int, caplog: pytest.LogCaptureFixture) -> FaultInjector:
    caplog.set_level(logging.WARNING, logger="drivers")
    # 100x keeps the SourceMeter's reading stream (one per 5 simulated s) within what the
    # simulated instrument computes in real time while faults add backlog.
    clock = make_clock(100.0)
    personality = make_keithley(clock, seed=seed)
    faults = FaultInjector(delay_wall_s=0.3, rate=FAULT_RATE, seed=seed)
    limits = ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.2, current_max_a=1.0)
    step = CyclerStep(
        StepMode.CC, current_a=0.1, end=EndConditions(voltage_above_v=4.2), record_interval_s=5.0
    )
    samples = []
    with served(personality, "tcp") as address:
        channel = registry.open_instrument(
            "keithley-2450",
            address,
            {"timeout_s": 0.2, "watchdog_s": 120.0},
            clock=clock,
            backoff=BACKOFF,
        )
        try:
            channel.arm_protection(limits)
            channel.start_step(step)
            personality.faults = faults
            while faults.messages < messages:
                samples += channel.poll().samples
                assert personality.output, "a fault must never switch the output"
            personality.faults = None
            channel.stop()
            samples += channel.poll().samples
        finally:
            personality.faults = None
            channel.close()
    buffer = personality.buffer
    assert len(buffer) < 100_000, "the soak must not wrap the instrument buffer"
    assert len(samples) == len(buffer)
    for sample, entry in zip(samples, buffer, strict=True):
        assert sample.voltage_v == float(f"{entry.reading:.6E}")
        assert sample.current_a == float(f"{entry.source:.6E}")
    assert _fault_warnings(caplog) >= len(faults.injected)
    return faults


def test_acir_soak_short(caplog: pytest.LogCaptureFixture) -> None:
    faults = soak_acir(1_000, seed=4, caplog=caplog)
    assert len(faults.injected) >= 5


def test_keithley_soak_short(caplog: pytest.LogCaptureFixture) -> None:
    faults = soak_keithley(1_000, seed=9, caplog=caplog)
    assert len(faults.injected) >= 5


@pytest.mark.slow
def test_acir_soak_10k(caplog: pytest.LogCaptureFixture) -> None:
    faults = soak_acir(10_000, seed=21, caplog=caplog)
    assert len(faults.injected) >= 60
    assert set(faults.injected) == {"drop", "busy", "garbage", "truncate", "delay", "disconnect"}


@pytest.mark.slow
def test_keithley_soak_10k(caplog: pytest.LogCaptureFixture) -> None:
    faults = soak_keithley(10_000, seed=22, caplog=caplog)
    assert len(faults.injected) >= 60

"""Drivers against the simulator's own fault injector (``hardware_sim.faults``).

Reply faults over TCP, pty and ``sim://``; the state faults the injector documents: ``busy``
(settings refused with an execution error), ``over_range`` / ``no_contact``, ``interlock_open``
and ``over_temperature`` (the SourceMeter turns its output off). Each ends in the documented
error class or status, and the next reading is the instrument's own.
"""

from __future__ import annotations

import pytest

from drivers import registry
from drivers.errors import InstrumentReportedError, InterlockOpen
from drivers.readings import (
    ChannelState,
    CyclerStep,
    EndConditions,
    ProtectionLimits,
    ReadingStatus,
    StepMode,
)
from drivers.session import Backoff
from hardware_sim.faults import Fault, FaultInjector, FaultKind
from tests.drivers.simbench import SPEED, make_bt3562, make_clock, make_keithley, served

BACKOFF = Backoff(attempts=10, initial_s=0.05, max_s=0.3)
LIMITS = ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.2, current_max_a=1.0)
CHARGE = CyclerStep(
    StepMode.CC, current_a=0.5, end=EndConditions(voltage_above_v=4.2), record_interval_s=10.0
)
REPLY_FAULTS = [
    Fault(FaultKind.DELAY, delay_s=0.4 * SPEED),
    Fault(FaultKind.DROP_REPLY),
    Fault(FaultKind.GARBAGE),
    Fault(FaultKind.TRUNCATE),
    Fault(FaultKind.DISCONNECT, offline_s=0.3),
]


def _is_instruments(reading, personality) -> bool:
    r_text, v_text = personality.last
    return reading.status is ReadingStatus.VALID and (
        reading.resistance_ohm,
        reading.voltage_v,
    ) == (float(r_text), float(v_text))


@pytest.mark.parametrize("how", ["tcp", "pty", "sim"])
@pytest.mark.parametrize("fault", REPLY_FAULTS, ids=lambda f: f.kind.value)
def test_reply_fault_then_the_instruments_reading(how: str, fault: Fault) -> None:
    clock = make_clock()
    personality = make_bt3562(clock)
    injector = FaultInjector(seed=3)
    with served(personality, how) as address:
        meter = registry.open_instrument(
            "hioki-bt3562", address, {"timeout_s": 0.25}, clock=clock, backoff=BACKOFF
        )
        try:
            injector.attach(personality)
            injector.inject(fault)
            assert _is_instruments(meter.measure(), personality)
            assert [entry["fault"] for entry in injector.log] == [fault.kind.value]
            assert _is_instruments(meter.measure(), personality)
        finally:
            meter.close()


def test_busy_meter_refuses_a_setting_then_accepts_it() -> None:
    clock = make_clock()
    personality = make_bt3562(clock)
    injector = FaultInjector()
    with served(personality, "sim") as address:
        meter = registry.open_instrument("hioki-bt3562", address, {"timeout_s": 0.25}, clock=clock)
        try:
            injector.attach(personality)
            injector.inject(Fault(FaultKind.BUSY))
            with pytest.raises(InstrumentReportedError, match="execution error") as info:
                meter.sample_rate = "FAST"
            assert info.value.code == 16
            assert meter.setup_commands()[7] == ":SAMP:RATE MED"
            assert _is_instruments(meter.measure(), personality)
            injector.clear()
            meter.sample_rate = "FAST"
            assert meter.sample_rate == "FAST"
        finally:
            meter.close()


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (FaultKind.OVER_RANGE, ReadingStatus.OVER_RANGE),
        (FaultKind.NO_CONTACT, ReadingStatus.NO_CONTACT),
    ],
)
def test_sentinel_faults_are_statuses(kind: FaultKind, status: ReadingStatus) -> None:
    clock = make_clock()
    personality = make_bt3562(clock)
    injector = FaultInjector()
    with served(personality, "tcp") as address:
        meter = registry.open_instrument("hioki-bt3562", address, {"timeout_s": 0.25}, clock=clock)
        try:
            injector.attach(personality)
            injector.inject(Fault(kind))
            assert meter.measure().status is status
            injector.clear()
            assert _is_instruments(meter.measure(), personality)
        finally:
            meter.close()


def _channel(address: str, clock):
    return registry.open_instrument(
        "keithley-2450",
        address,
        {"timeout_s": 0.25, "watchdog_s": 60.0},
        clock=clock,
        backoff=BACKOFF,
    )


def test_busy_source_meter_refuses_the_step_and_keeps_the_output_off() -> None:
    clock = make_clock()
    personality = make_keithley(clock)
    injector = FaultInjector()
    with served(personality, "sim") as address:
        channel = _channel(address, clock)
        try:
            channel.arm_protection(LIMITS)
            injector.attach(personality)
            injector.inject(Fault(FaultKind.BUSY))
            with pytest.raises(InstrumentReportedError, match="busy") as info:
                channel.start_step(CHARGE)
            assert not isinstance(info.value, InterlockOpen)
            assert not personality.output
            injector.clear()
            channel.start_step(CHARGE)
            assert personality.output
            channel.stop()
        finally:
            channel.close()


def test_interlock_opening_mid_step_is_protected_and_blocks_restart() -> None:
    clock = make_clock()
    personality = make_keithley(clock)
    injector = FaultInjector()
    with served(personality, "tcp") as address:
        channel = _channel(address, clock)
        try:
            channel.arm_protection(LIMITS)
            channel.start_step(CHARGE)
            injector.attach(personality)
            injector.inject(Fault(FaultKind.INTERLOCK_OPEN))
            assert not personality.output
            assert channel.poll().state is ChannelState.PROTECTED
            with pytest.raises(InterlockOpen):
                channel.start_step(CHARGE)
            assert not personality.output
            injector.clear()
            channel.start_step(CHARGE)
            assert personality.output
            channel.stop()
        finally:
            channel.close()


def test_over_temperature_trip_is_protected() -> None:
    clock = make_clock()
    personality = make_keithley(clock)
    injector = FaultInjector()
    with served(personality, "sim") as address:
        channel = _channel(address, clock)
        try:
            channel.arm_protection(LIMITS)
            channel.start_step(CHARGE)
            injector.attach(personality)
            injector.inject(Fault(FaultKind.OVER_TEMPERATURE))
            status = channel.poll()
            assert status.state is ChannelState.PROTECTED
            assert not personality.output
        finally:
            channel.stop()
            channel.close()


@pytest.mark.parametrize("fault", REPLY_FAULTS, ids=lambda f: f.kind.value)
def test_source_meter_reply_fault_keeps_output_and_samples(fault: Fault) -> None:
    clock = make_clock()
    personality = make_keithley(clock)
    injector = FaultInjector(seed=5)
    with served(personality, "pty") as address:
        channel = _channel(address, clock)
        try:
            channel.arm_protection(LIMITS)
            channel.start_step(CHARGE)
            clock.sleep(50.0)
            injector.attach(personality)
            injector.inject(fault)
            samples = list(channel.poll().samples)
            assert personality.output
            personality.faults = None
            channel.stop()
            samples += channel.poll().samples
        finally:
            channel.close()
    assert len(samples) == len(personality.buffer)
    for sample, entry in zip(samples, personality.buffer, strict=True):
        assert sample.voltage_v == float(f"{entry.reading:.6E}")

"""Drivers against the simulator over real transports (TCP, VISA TCPIP, pty, ``sim://``).

Each fault kind must end in the documented error class or in a recovery after which the next
reading is correct. "Correct" is checked against the simulated instrument's own record of what it
measured (``Bt356x.last``, the Keithley reading buffer), an independent source of truth.
"""

from __future__ import annotations

import logging

import pytest

from drivers import registry
from drivers.errors import InterlockOpen, SettingError
from drivers.readings import (
    ChannelState,
    CyclerStep,
    EndConditions,
    ProtectionLimits,
    ReadingStatus,
    StepMode,
)
from drivers.session import Backoff
from tests.drivers.sim_faults import KINDS, FaultInjector
from tests.drivers.simbench import (
    make_bt3562,
    make_bt4560,
    make_clock,
    make_keithley,
    served,
)

FAST = {"timeout_s": 0.25}
BACKOFF = Backoff(attempts=8, initial_s=0.05, max_s=0.2)


def truth_of(meter) -> tuple[float, float]:
    r_text, v_text = meter.last
    return float(r_text), float(v_text)


def assert_reading_is_the_instruments(reading, personality) -> None:
    resistance_ohm, voltage_v = truth_of(personality)
    assert reading.status is ReadingStatus.VALID
    assert reading.resistance_ohm == resistance_ohm
    assert reading.voltage_v == voltage_v


@pytest.mark.parametrize("how", ["tcp", "visa", "socket", "pty", "visa_pty", "sim"])
def test_bt3562_reads_over_every_transport(how: str) -> None:
    clock = make_clock()
    personality = make_bt3562(clock)
    with served(personality, how) as address:
        meter = registry.open_instrument("hioki-bt3562", address, FAST, clock=clock)
        try:
            assert meter.identity.simulated
            reading = meter.measure()
            assert_reading_is_the_instruments(reading, personality)
        finally:
            meter.close()


@pytest.mark.parametrize("how", ["tcp", "pty", "visa_pty", "sim"])
@pytest.mark.parametrize("kind", KINDS)
def test_bt3562_fault_then_correct_reading(how: str, kind: str, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="drivers")
    clock = make_clock()
    personality = make_bt3562(clock)
    faults = FaultInjector(delay_wall_s=0.4)
    with served(personality, how) as address:
        meter = registry.open_instrument(
            "hioki-bt3562", address, FAST, clock=clock, backoff=BACKOFF
        )
        try:
            before = meter.measure()
            personality.faults = faults
            faults.arm(kind)
            recovered = meter.measure()
            assert faults.injected == [kind]
            assert_reading_is_the_instruments(recovered, personality)
            following = meter.measure()
            assert_reading_is_the_instruments(following, personality)
            assert before.identity == following.identity
        finally:
            meter.close()
    assert any(r.levelno >= logging.WARNING for r in caplog.records), "fault was not logged"


@pytest.mark.parametrize(
    ("forced", "status"),
    [("over_range", ReadingStatus.OVER_RANGE), ("no_contact", ReadingStatus.NO_CONTACT)],
)
def test_bt3562_over_range_and_no_contact(forced: str, status: ReadingStatus) -> None:
    clock = make_clock()
    personality = make_bt3562(clock)
    with served(personality, "sim") as address:
        meter = registry.open_instrument("hioki-bt3562", address, FAST, clock=clock)
        try:
            personality.forced = forced
            reading = meter.measure()
            assert reading.status is status
            assert reading.resistance_ohm is None
            personality.forced = None
            assert_reading_is_the_instruments(meter.measure(), personality)
        finally:
            meter.close()


@pytest.mark.parametrize("how", ["tcp", "pty", "visa_pty", "sim"])
def test_bt4560_sweep_over_transports(how: str) -> None:
    clock = make_clock()
    personality = make_bt4560(clock)
    with served(personality, how) as address:
        meter = registry.open_instrument("hioki-bt4560", address, {"timeout_s": 1.0}, clock=clock)
        try:
            sweep = meter.sweep([1000.0, 10.0, 0.1])
        finally:
            meter.close()
    assert [p.frequency_hz for p in sweep.points] == [1000.0, 10.0, 0.1]
    assert all(p.status is ReadingStatus.VALID for p in sweep.points)
    # Independent reference: the simulated cell's own impedance model at each frequency, within
    # the meter's simulated noise (a few tenths of a percent) and display resolution.
    cell = personality.cell
    for p in sweep.points:
        z = complex(cell.impedance(p.frequency_hz))
        assert p.z_real_ohm == pytest.approx(z.real, rel=0.02)


@pytest.mark.parametrize("kind", ["drop", "garbage", "truncate", "delay", "disconnect", "busy"])
def test_bt4560_fault_then_correct_point(kind: str) -> None:
    clock = make_clock()
    personality = make_bt4560(clock)
    faults = FaultInjector(delay_wall_s=0.4)
    with served(personality, "tcp") as address:
        meter = registry.open_instrument(
            "hioki-bt4560",
            address,
            {"timeout_s": 0.25, "base_timeout_s": 0.3, "timeout_margin": 1.0},
            clock=clock,
            backoff=BACKOFF,
        )
        try:
            personality.faults = faults
            faults.arm(kind)
            sweep = meter.sweep([1000.0, 100.0])
        finally:
            meter.close()
    assert faults.injected == [kind]
    cell = personality.cell
    for p in sweep.points:
        assert p.status is ReadingStatus.VALID
        assert p.z_real_ohm == pytest.approx(complex(cell.impedance(p.frequency_hz)).real, rel=0.02)


LIMITS = ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.2, current_max_a=1.0)
CHARGE = CyclerStep(
    StepMode.CC, current_a=0.5, end=EndConditions(voltage_above_v=4.2), record_interval_s=10.0
)


def assert_samples_match_buffer(samples, personality) -> None:
    """Every sample equals the instrument buffer entry at the same index, none lost or doubled."""
    buffer = personality.buffer
    assert len(samples) == len(buffer)
    for sample, entry in zip(samples, buffer, strict=True):
        assert sample.voltage_v == float(f"{entry.reading:.6E}")
        assert sample.current_a == float(f"{entry.source:.6E}")
        assert sample.step_time_s == pytest.approx(entry.t_s - personality.rel_zero_s, abs=1e-6)


def _poll_until(channel, clock, personality, count: int) -> list:
    samples: list = []
    for _ in range(200):
        status = channel.poll()
        samples += status.samples
        if len(samples) >= count:
            break
        clock.sleep(10.0)
    return samples


@pytest.mark.parametrize("how", ["tcp", "visa", "sim"])
def test_keithley_cc_charge_samples_match_the_instrument_buffer(how: str) -> None:
    clock = make_clock()
    personality = make_keithley(clock)
    with served(personality, how) as address:
        channel = registry.open_instrument(
            "keithley-2450", address, {"timeout_s": 0.5, "watchdog_s": 60.0}, clock=clock
        )
        try:
            assert personality.off_mode == "HIMP"
            channel.arm_protection(LIMITS)
            channel.start_step(CHARGE)
            assert personality.output
            samples = _poll_until(channel, clock, personality, 5)
            channel.stop()
            assert not personality.output
            assert personality.off_mode == "HIMP"
            assert_samples_match_buffer(samples + list(channel.poll().samples), personality)
        finally:
            channel.close()


@pytest.mark.parametrize("kind", KINDS)
def test_keithley_poll_fault_then_correct_samples(kind: str) -> None:
    clock = make_clock()
    personality = make_keithley(clock)
    faults = FaultInjector(delay_wall_s=0.4)
    with served(personality, "tcp") as address:
        channel = registry.open_instrument(
            "keithley-2450",
            address,
            {"timeout_s": 0.25, "watchdog_s": 60.0},
            clock=clock,
            backoff=BACKOFF,
        )
        try:
            channel.arm_protection(LIMITS)
            channel.start_step(CHARGE)
            samples = _poll_until(channel, clock, personality, 2)
            personality.faults = faults
            faults.arm(kind)
            samples += channel.poll().samples
            clock.sleep(30.0)
            personality.faults = None
            samples += channel.poll().samples
            assert faults.injected == [kind]
            assert personality.output, "a poll fault must not change the output"
            channel.stop()
            samples += channel.poll().samples
            assert_samples_match_buffer(samples, personality)
        finally:
            channel.close()


def test_keithley_open_interlock_keeps_the_output_off() -> None:
    clock = make_clock()
    personality = make_keithley(clock)
    with served(personality, "sim") as address:
        channel = registry.open_instrument(
            "keithley-2450", address, {"timeout_s": 0.5, "watchdog_s": 60.0}, clock=clock
        )
        try:
            channel.arm_protection(LIMITS)
            personality.interlock_closed = False
            with pytest.raises(InterlockOpen):
                channel.start_step(CHARGE)
            assert not personality.output
            personality.interlock_closed = True
            channel.start_step(CHARGE)
            assert personality.output
            channel.stop()
        finally:
            channel.close()


def test_keithley_rest_keeps_the_cell_open_and_reads_ocv() -> None:
    clock = make_clock()
    personality = make_keithley(clock)
    rest = CyclerStep(StepMode.REST, end=EndConditions(time_s=60.0), record_interval_s=10.0)
    with served(personality, "sim") as address:
        channel = registry.open_instrument(
            "keithley-2450", address, {"timeout_s": 0.5, "watchdog_s": 60.0}, clock=clock
        )
        try:
            channel.arm_protection(LIMITS)
            channel.start_step(rest)
            assert not personality.output and personality.off_mode == "HIMP"
            samples = _poll_until(channel, clock, personality, 7)
            assert all(s.current_a == 0.0 for s in samples)
            # Open circuit under HIMP: the reading is the cell's OCV (no current flows).
            assert samples[-1].voltage_v == pytest.approx(personality.cell.ocv_v, abs=2e-3)
            assert channel.poll().state in (ChannelState.FINISHED, ChannelState.RUNNING)
        finally:
            channel.close()


def test_bt3563_registry_name_over_sim() -> None:
    from hardware_sim.devices.bt356x import Bt356x
    from hardware_sim.population import generate_lot

    clock = make_clock()
    personality = Bt356x(
        clock, seed=4, model="BT3563", cell=generate_lot("new-cells", 1, seed=4)[0].cell
    )
    with served(personality, "sim") as address:
        meter = registry.open_instrument(
            "hioki-bt3563", address, {"voltage_range_v": 300.0}, clock=clock
        )
        try:
            assert meter.identity.model == "BT3563"
            reading = meter.measure()
            assert reading.status is ReadingStatus.VALID
            assert reading.voltage_v == float(personality.last[1])
        finally:
            meter.close()


@pytest.mark.parametrize("model", ["2460", "2461"])
def test_keithley_models_by_registry_name(model: str) -> None:
    from hardware_sim.devices.keithley24xx import Keithley24xx as SimKeithley
    from hardware_sim.population import generate_lot

    clock = make_clock()
    cell = generate_lot("new-cells", 1, seed=5)[0].cell
    personality = SimKeithley(clock, seed=5, model=model, cell=cell)
    with served(personality, "sim") as address:
        channel = registry.open_instrument(
            f"keithley-{model}", address, {"watchdog_s": 60.0}, clock=clock
        )
        try:
            assert channel.identity.model == f"MODEL {model}"
            # The 2460/2461 take up to 7 A; the armed limit is accepted and OVP read back.
            held = channel.arm_protection(ProtectionLimits(2.5, 4.2, 5.0))
            assert held.voltage_max_v == 5.0
        finally:
            channel.close()
        with pytest.raises(SettingError, match="is KEITHLEY INSTRUMENTS MODEL"):
            registry.open_instrument("keithley-2450", address, clock=clock)

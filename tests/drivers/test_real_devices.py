"""Real-instrument checks, skipped unless an address is given on the pytest command line.

Run for example:
    .venv/bin/python -m pytest -m hardware tests/drivers/test_real_devices.py \\
        --bt3562-address TCPIP::192.168.1.1::23::SOCKET

The Keithley test needs a cell (or a resistor) on the terminals and the interlock closed; it
sources at most 10 mA for 2 s inside 0-5 V.
"""

from __future__ import annotations

import pytest

from drivers import registry
from drivers.readings import (
    ChannelState,
    CyclerStep,
    EndConditions,
    ProtectionLimits,
    ReadingStatus,
    StepMode,
)

pytestmark = pytest.mark.hardware


def _address(request: pytest.FixtureRequest, option: str) -> str:
    address = request.config.getoption(option)
    if not address:
        pytest.skip(f"no {option} given")
    return str(address)


def test_bt3562_identity_settings_and_reading(request: pytest.FixtureRequest) -> None:
    meter = registry.open_instrument("hioki-bt3562", _address(request, "--bt3562-address"))
    try:
        assert meter.identity.make.upper() == "HIOKI"
        assert meter.sample_rate == "MED"
        assert meter.resistance_range_ohm == 0.3
        assert meter.continuous is False
        reading = meter.measure()
        assert reading.status in set(ReadingStatus)
        assert reading.identity == meter.identity
    finally:
        meter.close()


def test_bt4560_one_point(request: pytest.FixtureRequest) -> None:
    meter = registry.open_instrument("hioki-bt4560", _address(request, "--bt4560-address"))
    try:
        sweep = meter.sweep([1000.0])
        assert len(sweep.points) == 1
        assert sweep.points[0].frequency_hz == 1000.0
    finally:
        meter.close()


def test_keithley_protection_short_cc_and_stop(request: pytest.FixtureRequest) -> None:
    channel = registry.open_instrument("keithley-2450", _address(request, "--keithley-address"))
    try:
        held = channel.arm_protection(ProtectionLimits(0.0, 4.9, 0.01))
        assert held.voltage_max_v == 5.0
        channel.start_step(CyclerStep(StepMode.CC, current_a=0.01, end=EndConditions(time_s=2.0)))
        status = channel.poll()
        assert status.state in (ChannelState.RUNNING, ChannelState.FINISHED)
    finally:
        channel.stop()
        channel.close()

"""Shared contract types: identity parsing and the SIMULATED marker, clocks."""

from __future__ import annotations

import pytest

from drivers.errors import ProtocolError
from drivers.identity import InstrumentIdentity
from station.clock import ManualClock, ScaledClock


def test_idn_reply_is_parsed_into_identity() -> None:
    identity = InstrumentIdentity.from_idn("HIOKI,BT3562,0,V2.03\r\n", address="COM3")
    assert (identity.make, identity.model, identity.serial, identity.firmware) == (
        "HIOKI",
        "BT3562",
        "0",
        "V2.03",
    )
    assert identity.address == "COM3"
    assert not identity.simulated


def test_simulated_marker_is_detected_in_any_field() -> None:
    assert InstrumentIdentity.from_idn("HIOKI,BT3562,SIMULATED-7,V2.03").simulated
    assert InstrumentIdentity("NEWARE", "BTS", "x", "simulated 8.0").simulated


@pytest.mark.parametrize("reply", ["", "HIOKI", "HIOKI,BT3562,0", ",BT3562,0,V1", "a,b,c,d,e"])
def test_malformed_idn_is_a_protocol_error(reply: str) -> None:
    with pytest.raises(ProtocolError):
        InstrumentIdentity.from_idn(reply)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(100.0)
    clock.sleep(5.0)
    clock.advance(2.5)
    assert clock.now() == 107.5
    with pytest.raises(ValueError):
        clock.advance(-1.0)


def test_scaled_clock_runs_at_its_speed() -> None:
    import time

    wall = time.time()
    clock = ScaledClock(t0_s=1000.0, w0_s=wall, speed=3600.0)
    # One wall second later the simulated clock has moved 3600 s (allow the test's own delay).
    elapsed_sim = clock.now() - 1000.0
    elapsed_wall = time.time() - wall
    assert 0.0 <= elapsed_sim <= 3600.0 * elapsed_wall + 1e-6
    with pytest.raises(ValueError):
        ScaledClock(t0_s=0.0, w0_s=0.0, speed=0.0)

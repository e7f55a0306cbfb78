"""Expected-protocol tests for the SCPI switch (route one meter to one cell)."""

from __future__ import annotations

import pytest

from drivers import registry
from drivers.errors import InstrumentReportedError, ProtocolError, SettingError
from drivers.scpi_switch import ScpiSwitch, parse_error_queue
from drivers.session import Backoff
from station.clock import ManualClock
from station.instruments import RouteSwitch
from tests.drivers.protocol import DISCONNECT, REOPEN, expected_protocol

IDN = "HARDWARE_SIM,MUX16,SIMULATED-7,1.0"
NO_ERROR = '+0,"No error"'
CONNECT = [("*IDN?", IDN), ("*RST", None), ("*CLS", None), ("SYST:ERR?", NO_ERROR)]


def close3(state: str = "1") -> list[tuple[str, object]]:
    return [
        ("ROUT:OPEN:ALL", None),
        ("ROUT:CLOS (@3)", None),
        ("ROUT:CLOS? (@3)", state),
        ("SYST:ERR?", NO_ERROR),
    ]


def switch(exchanges, **kwargs):
    kwargs.setdefault("clock", ManualClock(0.0))
    kwargs.setdefault("sleep", lambda _s: None)
    kwargs.setdefault("backoff", Backoff(attempts=2, initial_s=0.0))
    return expected_protocol(
        ScpiSwitch, exchanges, read_termination="\n", write_termination="\n", **kwargs
    )


def test_connect_resets_and_checks_the_error_queue() -> None:
    with switch(CONNECT) as s:
        assert isinstance(s, RouteSwitch)
        assert s.identity.model == "MUX16" and s.identity.simulated


def test_close_route_is_break_before_make_and_read_back() -> None:
    with switch([*CONNECT, *close3()]) as s:
        s.close_route(3)


def test_a_route_that_reads_open_after_closing_is_refused_naming_it() -> None:
    with switch([*CONNECT, *close3("0")]) as s, pytest.raises(InstrumentReportedError) as info:
        s.close_route(3)
    assert "route 3 did not close" in str(info.value)


def test_an_error_in_the_queue_after_closing_is_refused() -> None:
    exchanges = [
        *CONNECT,
        ("ROUT:OPEN:ALL", None),
        ("ROUT:CLOS (@3)", None),
        ("ROUT:CLOS? (@3)", "0"),
        ("SYST:ERR?", '-222,"Data out of range"'),
    ]
    with switch(exchanges) as s, pytest.raises(InstrumentReportedError) as info:
        s.close_route(3)
    assert info.value.code == -222


def test_open_all_and_state_query() -> None:
    exchanges = [
        *CONNECT,
        ("ROUT:OPEN:ALL", None),
        ("SYST:ERR?", NO_ERROR),
        ("ROUT:CLOS? (@3)", "0"),
    ]
    with switch(exchanges) as s:
        s.open_all()
        assert s.is_closed(3) is False


def test_garbage_state_reply_is_a_protocol_error() -> None:
    with switch([*CONNECT, ("ROUT:CLOS? (@3)", "ON")]) as s, pytest.raises(ProtocolError):
        s.is_closed(3)


def test_a_route_outside_the_switch_is_refused_before_sending() -> None:
    with switch(CONNECT, channels=16) as s:
        for bad in (0, 17, True, 2.0):
            with pytest.raises(SettingError):
                s.close_route(bad)  # type: ignore[arg-type]


def test_settle_time_waits_on_the_station_clock_after_the_readback() -> None:
    clock = ManualClock(10.0)
    with switch([*CONNECT, *close3()], clock=clock, settle_s=0.02) as s:
        s.close_route(3)
    assert clock.now() == pytest.approx(10.02, abs=1e-12)


def test_a_link_lost_mid_close_reconnects_and_closes_again() -> None:
    exchanges = [
        *CONNECT,
        ("ROUT:OPEN:ALL", None),
        ("ROUT:CLOS (@3)", None),
        ("ROUT:CLOS? (@3)", DISCONNECT),
        REOPEN,
        *CONNECT,
        *close3(),
    ]
    with switch(exchanges) as s:
        s.close_route(3)


def test_error_queue_parsing() -> None:
    assert parse_error_queue('+0,"No error"') == (0, "No error")
    assert parse_error_queue('-113,"Undefined header"') == (-113, "Undefined header")
    with pytest.raises(ProtocolError):
        parse_error_queue("garbage")


def test_registered_and_unknown_settings_refused() -> None:
    assert "scpi-switch" in registry.names()
    with pytest.raises(SettingError, match="bogus"):
        registry.open_instrument("scpi-switch", "tcp://127.0.0.1:9", {"bogus": 1})

"""Expected-protocol tests for the Hioki BT4560 EIS driver."""

from __future__ import annotations

import math

import pytest

from drivers.errors import InstrumentReportedError, ProtocolError, SettingError
from drivers.hioki_bt4560 import HiokiBT4560, measurement_time_s, parse_impedance_reply
from drivers.readings import ReadingStatus
from drivers.session import Backoff
from station.clock import ManualClock
from station.instruments import EisMeter
from tests.drivers.protocol import DISCONNECT, REOPEN, TIMEOUT, ExpectedProtocol, expected_protocol

IDN = "HIOKI,BT4560,SIMULATED-7,V1.10"
SETUP = [
    ("*RST", None),
    ("*CLS", None),
    (":FUNC RV", None),
    (":TRIG:SOUR IMM", None),
    (":INIT:CONT OFF", None),
    (":AUT OFF", None),
    (":RES:RANG 30E-3", None),
    (":SAMP:RATE Z,MED", None),
    ("*ESR?", "0"),
]
CONNECT = [("*IDN?", IDN), *SETUP]
P1K = "+1.2345E-02,-1.0000E-04,+3.7012E+00"
P1 = "+1.5000E-02,-2.5000E-03,+3.7011E+00"


def meter(exchanges, **kwargs):
    kwargs.setdefault("clock", ManualClock(50.0))
    kwargs.setdefault("sleep", lambda _s: None)
    kwargs.setdefault("backoff", Backoff(attempts=2, initial_s=0.0))
    return expected_protocol(
        HiokiBT4560, exchanges, read_termination="\r\n", write_termination="\r\n", **kwargs
    )


def point(freq: str, held: str, reply: object) -> list[tuple[str, object]]:
    return [(f":FREQ {freq}", None), (":FREQ?", held), ("*TRG;*WAI;:FETC?", reply)]


def test_connect_and_protocol_shape() -> None:
    with meter(CONNECT) as m:
        assert isinstance(m, EisMeter)
        assert m.identity.simulated


def test_sweep_sets_each_frequency_and_parses_points_in_order() -> None:
    exchanges = [*CONNECT, *point("1000", "1.00000E+3", P1K), *point("0.1", "1.00000E-1", P1)]
    with meter(exchanges) as m:
        sweep = m.sweep([1000, 0.1])
    assert [p.frequency_hz for p in sweep.points] == [1000.0, 0.1]
    first = sweep.points[0]
    # Values as written on the wire (float parse, 1e-12 relative).
    assert first.z_real_ohm == pytest.approx(0.012345, rel=1e-12)
    assert first.z_imag_ohm == pytest.approx(-1.0e-4, rel=1e-12)
    assert first.voltage_v == pytest.approx(3.7012, rel=1e-12)
    assert first.status is ReadingStatus.VALID
    assert sweep.identity.model == "BT4560"


def test_settling_waits_settle_waves_of_the_frequency_on_the_clock() -> None:
    clock = ManualClock(0.0)
    exchanges = [*CONNECT, *point("0.5", "5.00000E-1", P1)]
    with meter(exchanges, clock=clock, settle_waves=2.0) as m:
        sweep = m.sweep([0.5])
    # Two waves at 0.5 Hz = 4 s of clock time between start and end (nothing else advances it).
    assert sweep.t_end_s - sweep.t_start_s == pytest.approx(4.0, abs=1e-12)


def test_low_frequency_gets_a_long_timeout() -> None:
    # Documented time at 0.1 Hz: max(0.5, 20) + 10 = 30 s; at 1 kHz: 0.5 + 0.001 s.
    assert measurement_time_s(0.1) == pytest.approx(30.0, rel=1e-12)
    assert measurement_time_s(1000.0) == pytest.approx(0.501, rel=1e-12)
    with meter(CONNECT) as m:
        assert m.point_timeout_s(0.1) == pytest.approx(5.0 + 3.0 * 30.0, rel=1e-12)


def test_the_point_read_uses_the_per_frequency_timeout() -> None:
    exchanges = [*CONNECT, *point("0.1", "1.00000E-1", TIMEOUT), ("*IDN?", IDN), (":FETC?", P1)]
    with meter(exchanges) as m:
        transport = m._session.transport
        assert isinstance(transport, ExpectedProtocol)
        before = transport._now_s
        m.sweep([0.1])
        # The double's clock only moves while waiting: 95 s for the point, then the resync's quiet
        # wait of one default timeout (1 s).
        assert transport._now_s - before == pytest.approx(96.0, abs=0.01)


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("+1.2345E-02,-1.0000E-04,+1.0000E+09", ReadingStatus.NO_CONTACT),
        ("+1.2345E-02,-1.0000E-04,-3.7012E+00", ReadingStatus.REVERSED),
        ("+1.0000E+09,-1.0000E-04,+3.7012E+00", ReadingStatus.OVER_RANGE),
    ],
)
def test_bad_connection_and_reversed_polarity(reply: str, status: ReadingStatus) -> None:
    with meter([*CONNECT, *point("1000", "1.00000E+3", reply)]) as m:
        p = m.sweep([1000]).points[0]
    assert p.status is status
    assert math.isnan(p.z_real_ohm) and math.isnan(p.z_imag_ohm)


def test_frequency_readback_mismatch_is_reported() -> None:
    exchanges = [*CONNECT, (":FREQ 1000", None), (":FREQ?", "1.00000E+2")]
    with meter(exchanges) as m, pytest.raises(InstrumentReportedError, match="holds 100 Hz"):
        m.sweep([1000])


@pytest.mark.parametrize("bad", [0.05, 2000, "1k", True])
def test_bad_frequency_refused_before_sending(bad) -> None:
    with meter(CONNECT) as m, pytest.raises(SettingError, match="frequency"):
        m.sweep([1000, bad])


def test_empty_sweep_refused() -> None:
    with meter(CONNECT) as m, pytest.raises(SettingError, match="at least one"):
        m.sweep([])


def test_garbage_point_recovered_with_fetch() -> None:
    exchanges = [
        *CONNECT,
        *point("1000", "1.00000E+3", b"+1.2\xff\r\n"),
        ("*IDN?", IDN),
        (":FETC?", P1K),
    ]
    with meter(exchanges) as m:
        assert m.sweep([1000]).points[0].status is ReadingStatus.VALID
        assert m.faults == {"garbage": 1}


def test_disconnect_mid_point_resets_and_measures_the_point_again() -> None:
    exchanges = [
        *CONNECT,
        *point("1000", "1.00000E+3", DISCONNECT),
        REOPEN,
        *CONNECT,
        *point("1000", "1.00000E+3", P1K),
    ]
    with meter(exchanges) as m:
        assert m.sweep([1000]).points[0].z_real_ohm == pytest.approx(0.012345, rel=1e-12)


def test_settings_and_readback() -> None:
    exchanges = [
        *CONNECT,
        (":RES:RANG 3", None),
        ("*ESR?", "0"),
        (":SAMP:RATE Z,SLOW", None),
        ("*ESR?", "0"),
        (":RES:RANG?", "3.0000E+0"),
        (":SAMP:RATE? Z", "SLOW"),
    ]
    with meter(exchanges) as m:
        m.resistance_range_ohm = 3.0
        m.speed = "SLOW"
        assert m.resistance_range_ohm == 3.0
        assert m.speed == "SLOW"


def test_zero_adjust_uses_long_timeout() -> None:
    with meter([*CONNECT, (":ADJ? SPOT", "0"), (":ADJ? SPOT", "2")]) as m:
        m.zero_adjust()
        with pytest.raises(InstrumentReportedError):
            m.zero_adjust()


@pytest.mark.parametrize(
    "reply", ["+1.2345E-02,-1.0000E-04", "nan,1E+0,3E+0", "+1.2345E-02,-1.0E-04,+3.70", ""]
)
def test_parser_refuses_malformed(reply: str) -> None:
    with pytest.raises(ProtocolError):
        parse_impedance_reply(reply, frequency_hz=1000.0)

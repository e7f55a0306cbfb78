"""Expected-protocol tests for the Hioki BT3562/BT3563 driver: exact bytes, nothing left over."""

from __future__ import annotations

import pytest

from drivers.errors import InstrumentReportedError, ProtocolError, SettingError
from drivers.hioki_bt356x import HiokiBT3562, HiokiBT3563, parse_acir_reply
from drivers.readings import ReadingStatus
from drivers.session import Backoff, IdentityMismatch
from station.clock import ManualClock
from station.instruments import AcirMeter
from tests.drivers.protocol import DISCONNECT, REOPEN, TIMEOUT, expected_protocol

IDN = "HIOKI,BT3562,0,V2.03"
SETUP = [
    ("*CLS", None),
    (":ESE0 1", None),
    (":SYST:HEAD OFF", None),
    (":FUNC RV", None),
    (":AUT OFF", None),
    (":RES:RANG 300E-3", None),
    (":VOLT:RANG 6", None),
    (":SAMP:RATE MED", None),
    (":TRIG:SOUR IMM", None),
    (":INIT:CONT OFF", None),
    ("*ESR?", "0"),
]
CONNECT = [("*IDN?", IDN), *SETUP]
GOOD = "  12.345E-3, 3.70123E+0"
OTHER = "  12.346E-3, 3.70120E+0"


def meter(exchanges, cls=HiokiBT3562, **kwargs):
    kwargs.setdefault("clock", ManualClock(1000.0))
    kwargs.setdefault("sleep", lambda _s: None)
    kwargs.setdefault("backoff", Backoff(attempts=2, initial_s=0.0))
    return expected_protocol(
        cls, exchanges, read_termination="\r\n", write_termination="\r\n", **kwargs
    )


def test_connect_sends_setup_and_keeps_identity() -> None:
    with meter(CONNECT) as m:
        assert m.identity.model == "BT3562"
        assert m.identity.serial == "0"
        assert not m.identity.simulated
        assert isinstance(m, AcirMeter)


def test_setup_uses_the_configured_ranges() -> None:
    setup = [
        ("*IDN?", "HIOKI,BT3563,SIMULATED-3,V2.03"),
        *SETUP[:5],
        (":RES:RANG 3", None),
        (":VOLT:RANG 60", None),
        (":SAMP:RATE SLOW", None),
        *SETUP[8:],
    ]
    with meter(
        setup, cls=HiokiBT3563, resistance_range_ohm=3.0, voltage_range_v=60.0, sample_rate="SLOW"
    ) as m:
        assert m.identity.simulated


def test_measure_valid_reading_with_clock_time_and_identity() -> None:
    clock = ManualClock(1234.5)
    with meter([*CONNECT, (":READ?", GOOD)], clock=clock) as m:
        reading = m.measure()
    assert reading.status is ReadingStatus.VALID
    # 12.345E-3 ohm and 3.70123 V exactly as written on the wire (float parse, 1e-12 relative).
    assert reading.resistance_ohm == pytest.approx(0.012345, rel=1e-12)
    assert reading.voltage_v == pytest.approx(3.70123, rel=1e-12)
    assert reading.t_s == 1234.5
    assert reading.identity.model == "BT3562"


@pytest.mark.parametrize(
    ("reply", "status", "resistance", "voltage"),
    [
        (" 1000.00E+6, 3.70123E+0", ReadingStatus.OVER_RANGE, None, 3.70123),
        ("+1000.00E+7, 3.70123E+0", ReadingStatus.NO_CONTACT, None, None),
        ("  12.345E-3, 1000.00E+7", ReadingStatus.NO_CONTACT, None, None),
        ("  12.345E-3, 1000.00E+6", ReadingStatus.OVER_RANGE, None, None),
        ("  12.345E-3,-3.70123E+0", ReadingStatus.REVERSED, None, None),
    ],
)
def test_sentinels_are_statuses_not_numbers(reply, status, resistance, voltage) -> None:
    with meter([*CONNECT, (":READ?", reply)]) as m:
        reading = m.measure()
    assert reading.status is status
    assert reading.resistance_ohm == resistance
    assert reading.voltage_v == voltage


@pytest.mark.parametrize(
    ("name", "value", "command"),
    [
        ("resistance_range_ohm", 3e-3, ":RES:RANG 3E-3"),
        ("resistance_range_ohm", 3000.0, ":RES:RANG 3000"),
        ("voltage_range_v", 60.0, ":VOLT:RANG 60"),
        ("sample_rate", "EXF", ":SAMP:RATE EXF"),
        ("trigger_source", "EXT", ":TRIG:SOUR EXT"),
        ("continuous", False, ":INIT:CONT OFF"),
    ],
)
def test_each_setting_sends_its_command_then_checks_esr(name, value, command) -> None:
    with meter([*CONNECT, (command, None), ("*ESR?", "0")]) as m:
        setattr(m, name, value)


@pytest.mark.parametrize(
    ("name", "reply", "value"),
    [
        ("resistance_range_ohm", "300.00E-3", 0.3),
        ("voltage_range_v", "6.0000E+0", 6.0),
        ("sample_rate", "MED", "MED"),
        ("trigger_source", "IMM", "IMM"),
        ("continuous", "OFF", False),
    ],
)
def test_each_setting_reads_back(name, reply, value) -> None:
    query = {
        "resistance_range_ohm": ":RES:RANG?",
        "voltage_range_v": ":VOLT:RANG?",
        "sample_rate": ":SAMP:RATE?",
        "trigger_source": ":TRIG:SOUR?",
        "continuous": ":INIT:CONT?",
    }[name]
    with meter([*CONNECT, (query, reply)]) as m:
        assert getattr(m, name) == value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("resistance_range_ohm", 0.5),
        ("voltage_range_v", 300.0),
        ("sample_rate", "TURBO"),
        ("continuous", "yes"),
    ],
)
def test_bad_setting_is_refused_before_anything_is_sent(name, value) -> None:
    with meter(CONNECT) as m, pytest.raises(SettingError, match=name):
        setattr(m, name, value)


def test_bt3563_accepts_300_v_range() -> None:
    setup = [("*IDN?", "HIOKI,BT3563,0,V2.03"), *SETUP, (":VOLT:RANG 300", None), ("*ESR?", "0")]
    with meter(setup, cls=HiokiBT3563) as m:
        m.voltage_range_v = 300.0


def test_rejected_setting_raises_with_esr_code_and_is_not_remembered() -> None:
    exchanges = [
        *CONNECT,
        (":SAMP:RATE FAST", None),
        ("*ESR?", "16"),
        (":READ?", GOOD),
    ]
    with meter(exchanges) as m:
        with pytest.raises(InstrumentReportedError, match="execution error") as info:
            m.sample_rate = "FAST"
        assert info.value.code == 16
        assert m.setup_commands()[7] == ":SAMP:RATE MED"
        m.measure()


def test_setup_esr_error_fails_connect() -> None:
    exchanges = [("*IDN?", IDN), *SETUP[:-1], ("*ESR?", "32")]
    with pytest.raises(InstrumentReportedError, match="command error"), meter(exchanges):
        pass


def test_wrong_instrument_is_refused() -> None:
    exchanges = [("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,1,1.7.12b")]
    with pytest.raises(ProtocolError, match="expected HIOKI"), meter(exchanges):
        pass


def test_lost_reply_is_recovered_with_fetch() -> None:
    with meter([*CONNECT, (":READ?", TIMEOUT), ("*IDN?", IDN), (":FETC?", GOOD)]) as m:
        reading = m.measure()
        assert reading.resistance_ohm == pytest.approx(0.012345, rel=1e-12)
        assert m.faults == {"reply_lost": 1}


def test_garbage_reply_is_recovered_with_fetch() -> None:
    with meter([*CONNECT, (":READ?", b"\xff\x81\x00\r\n"), ("*IDN?", IDN), (":FETC?", GOOD)]) as m:
        assert m.measure().status is ReadingStatus.VALID
        assert m.faults == {"garbage": 1}


def test_truncated_reply_is_never_read_as_a_smaller_value() -> None:
    with meter(
        [*CONNECT, (":READ?", b"  12.345E-3, 3.70\r\n"), ("*IDN?", IDN), (":FETC?", GOOD)]
    ) as m:
        assert m.measure().voltage_v == pytest.approx(3.70123, rel=1e-12)


def test_unterminated_reply_is_cleared_before_fetch() -> None:
    with meter([*CONNECT, (":READ?", b"  12.345E-3, 3.7"), ("*IDN?", IDN), (":FETC?", OTHER)]) as m:
        assert m.measure().voltage_v == pytest.approx(3.70120, rel=1e-12)


def test_late_reply_is_discarded_by_the_resync() -> None:
    late_then_idn = (GOOD + "\r\n" + IDN + "\r\n").encode("ascii")
    exchanges = [*CONNECT, (":READ?", TIMEOUT), ("*IDN?", late_then_idn), (":FETC?", OTHER)]
    with meter(exchanges) as m:
        assert m.measure().resistance_ohm == pytest.approx(0.012346, rel=1e-12)


def test_a_late_resync_reply_is_waited_for() -> None:
    two_idn = (IDN + "\r\n" + IDN + "\r\n").encode("ascii")
    exchanges = [
        *CONNECT,
        (":READ?", TIMEOUT),
        ("*IDN?", TIMEOUT),
        ("*IDN?", two_idn),
        (":FETC?", GOOD),
    ]
    with meter(exchanges) as m:
        assert m.measure().resistance_ohm == pytest.approx(0.012345, rel=1e-12)


def test_stale_fetch_measures_again() -> None:
    exchanges = [
        *CONNECT,
        (":READ?", GOOD),
        (":READ?", TIMEOUT),
        ("*IDN?", IDN),
        (":FETC?", GOOD),
        (":READ?", OTHER),
    ]
    with meter(exchanges) as m:
        m.measure()
        second = m.measure()
        assert second.resistance_ohm == pytest.approx(0.012346, rel=1e-12)
        assert m.faults == {"reply_lost": 1, "stale_fetch": 1}


def test_disconnect_reconnects_resends_setup_and_fetches() -> None:
    exchanges = [*CONNECT, (":READ?", DISCONNECT), REOPEN, *CONNECT, (":FETC?", GOOD)]
    with meter(exchanges) as m:
        assert m.measure().status is ReadingStatus.VALID


def test_changed_setting_survives_a_reconnect() -> None:
    resent = [c if c[0] != ":SAMP:RATE MED" else (":SAMP:RATE SLOW", None) for c in CONNECT]
    exchanges = [
        *CONNECT,
        (":SAMP:RATE SLOW", None),
        ("*ESR?", "0"),
        (":READ?", DISCONNECT),
        REOPEN,
        *resent,
        (":FETC?", GOOD),
    ]
    with meter(exchanges) as m:
        m.sample_rate = "SLOW"
        m.measure()


def test_a_different_meter_after_reconnect_is_refused() -> None:
    exchanges = [*CONNECT, (":READ?", DISCONNECT), REOPEN, ("*IDN?", "HIOKI,BT3562,0,V9.99")]
    with meter(exchanges) as m, pytest.raises(IdentityMismatch):
        m.measure()


def test_zero_adjust() -> None:
    with meter([*CONNECT, (":ADJ?", "0"), (":ADJ?", "1")]) as m:
        m.zero_adjust()
        with pytest.raises(InstrumentReportedError, match="zero adjustment failed"):
            m.zero_adjust()


@pytest.mark.parametrize(
    "reply",
    [
        "nan, 3.70123E+0",
        "  12.345E-3, inf",
        "  12.345E-3",
        "  12.345E-3, 3.70123E+0, 1",
        "  12.345E-3, 3.70123",
        "  99.999E+0, 3.70123E+0",
        "  12.345E-3, 9.00000E+1",
        " -12.345E-3, 3.70123E+0",
        "",
    ],
)
def test_parser_refuses_malformed_and_out_of_range(reply: str) -> None:
    with pytest.raises(ProtocolError):
        parse_acir_reply(reply, resistance_range_ohm=0.3, voltage_range_v=6.0)

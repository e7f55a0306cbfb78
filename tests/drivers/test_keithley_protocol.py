"""Expected-protocol tests for the Keithley 2450/2460/2461 single-channel cycler driver."""

from __future__ import annotations

import threading

import pytest

from drivers.errors import (
    InstrumentReportedError,
    InterlockOpen,
    LinkDown,
    ProtocolError,
    SettingError,
)
from drivers.keithley_24xx import Keithley24xx, parse_error_reply, parse_trace_data
from drivers.readings import (
    ChannelState,
    CyclerStep,
    EndConditions,
    ProtectionLimits,
    StepMode,
)
from drivers.session import Backoff
from station.clock import ManualClock
from station.instruments import CyclerChannel
from tests.drivers.protocol import DISCONNECT, REOPEN, TIMEOUT, expected_protocol

NOERR = '0,"No error"'
IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04123456,1.7.12b"
CONNECT = [
    ("*IDN?", IDN),
    ("*LANG?", "SCPI"),
    ("*CLS", None),
    (":OUTP:CURR:SMOD HIMP", None),
    (":SENS:VOLT:RSEN ON", None),
    (":SENS:CURR:RSEN ON", None),
    (":SENS:VOLT:NPLC 1", None),
    (":SENS:CURR:NPLC 1", None),
    (":SYST:ERR?", NOERR),
]
LIMITS = ProtectionLimits(voltage_min_v=2.5, voltage_max_v=4.2, current_max_a=1.0)
ARM = [
    (":SOUR:VOLT:PROT PROT5", None),
    (":SOUR:VOLT:PROT?", "PROT5"),
    (":OUTP:CURR:SMOD?", "HIMP"),
    (":SYST:ERR?", NOERR),
]
OUTPUT_ON = [
    (":TRAC:CLE", None),
    (':TRIG:LOAD "SimpleLoop",100000,1', None),
    (":OUTP:CURR:SMOD?", "HIMP"),
    (":OUTP:INT:TRIP?", "1"),
    (":OUTP ON", None),
    (":SYST:ERR?", NOERR),
    (":INIT", None),
]
CC_CHARGE = [
    (":ABOR", None),
    (":SOUR:FUNC CURR", None),
    (':SENS:FUNC "VOLT"', None),
    (":SOUR:CURR:VLIM 4.2", None),
    (":SOUR:CURR 0.5", None),
    (":SOUR:CURR:VLIM?", "4.200000E+00"),
    (":SYST:ERR?", NOERR),
    *OUTPUT_ON,
]
CHARGE = CyclerStep(StepMode.CC, current_a=0.5, end=EndConditions(voltage_above_v=4.2))
END = ':TRAC:ACT:END? "defbuffer1"'
DATA_1_3 = ':TRAC:DATA? 1,3,"defbuffer1",READ,SOUR,REL'
THREE = (
    "3.600000E+00,5.000000E-01,0.000000E+00,"
    "3.610000E+00,5.000000E-01,1.000000E+00,"
    "3.620000E+00,5.000000E-01,2.000000E+00"
)


def smu(exchanges, **kwargs):
    kwargs.setdefault("clock", ManualClock(0.0))
    kwargs.setdefault("sleep", lambda _s: None)
    kwargs.setdefault("backoff", Backoff(attempts=2, initial_s=0.0))
    kwargs.setdefault("watchdog_thread", False)
    return expected_protocol(
        Keithley24xx, exchanges, read_termination="\n", write_termination="\n", **kwargs
    )


def test_connect_sets_himp_and_checks_language() -> None:
    with smu(CONNECT) as k:
        assert isinstance(k, CyclerChannel)
        assert k.identity.model == "MODEL 2450"
        assert k.channel_id == "1"


def test_tsp_language_is_refused() -> None:
    exchanges = [("*IDN?", IDN), ("*LANG?", "TSP")]
    with pytest.raises(InstrumentReportedError, match="not SCPI"), smu(exchanges):
        pass


def test_arm_protection_writes_and_reads_back() -> None:
    with smu([*CONNECT, *ARM]) as k:
        held = k.arm_protection(LIMITS)
    assert held.voltage_max_v == 5.0
    assert held.current_max_a == 1.0
    assert held.voltage_min_v == 2.5
    assert held.temperature_max_c is None


def test_arm_protection_readback_mismatch_is_refused() -> None:
    exchanges = [*CONNECT, (":SOUR:VOLT:PROT PROT5", None), (":SOUR:VOLT:PROT?", "PROT20")]
    with smu(exchanges) as k, pytest.raises(InstrumentReportedError, match="PROT20"):
        k.arm_protection(LIMITS)


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (ProtectionLimits(4.2, 2.5, 1.0), "voltage_min_v"),
        (ProtectionLimits(2.5, float("nan"), 1.0), "finite"),
        (ProtectionLimits(2.5, 4.2, 2.0), "current_max_a"),
        (ProtectionLimits(2.5, 4.2, 0.0), "current_max_a"),
        (ProtectionLimits(2.5, 250.0, 1.0), "voltage_max_v"),
    ],
)
def test_invalid_limits_refused_before_sending(limits, field) -> None:
    with smu(CONNECT) as k, pytest.raises(SettingError, match=field):
        k.arm_protection(limits)


def test_step_before_arming_is_refused() -> None:
    with smu(CONNECT) as k, pytest.raises(SettingError, match="arm_protection"):
        k.start_step(CHARGE)


def test_cc_charge_sequence_compliance_read_back_before_output_on() -> None:
    with smu([*CONNECT, *ARM, *CC_CHARGE]) as k:
        k.arm_protection(LIMITS)
        k.start_step(CHARGE)


def test_cc_discharge_is_cv_at_the_floor_with_ilim() -> None:
    step = CyclerStep(StepMode.CC, current_a=-0.8, end=EndConditions(voltage_below_v=2.75))
    exchanges = [
        *CONNECT,
        *ARM,
        (":ABOR", None),
        (":SOUR:FUNC VOLT", None),
        (':SENS:FUNC "CURR"', None),
        (":SOUR:VOLT:ILIM 0.8", None),
        (":SOUR:VOLT 2.75", None),
        (":SOUR:VOLT:ILIM?", "8.000000E-01"),
        (":SYST:ERR?", NOERR),
        *OUTPUT_ON,
    ]
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        k.start_step(step)


def test_cccv_is_cv_at_end_voltage_with_ilim_and_record_interval() -> None:
    step = CyclerStep(StepMode.CCCV, current_a=1.0, voltage_v=4.2, record_interval_s=0.5)
    on = [
        c if not c[0].startswith(":TRIG") else (':TRIG:LOAD "SimpleLoop",100000,0.5', None)
        for c in OUTPUT_ON
    ]
    exchanges = [
        *CONNECT,
        *ARM,
        (":ABOR", None),
        (":SOUR:FUNC VOLT", None),
        (':SENS:FUNC "CURR"', None),
        (":SOUR:VOLT:ILIM 1", None),
        (":SOUR:VOLT 4.2", None),
        (":SOUR:VOLT:ILIM?", "1.000000E+00"),
        (":SYST:ERR?", NOERR),
        *on,
    ]
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        k.start_step(step)


def test_rest_turns_output_off_and_never_on() -> None:
    step = CyclerStep(StepMode.REST, end=EndConditions(time_s=600))
    exchanges = [
        *CONNECT,
        *ARM,
        (":ABOR", None),
        (":OUTP OFF", None),
        (":SOUR:FUNC CURR", None),
        (':SENS:FUNC "VOLT"', None),
        (":SOUR:CURR:VLIM 4.2", None),
        (":SOUR:CURR 0", None),
        (":SOUR:CURR:VLIM?", "4.200000E+00"),
        (":SYST:ERR?", NOERR),
        (":TRAC:CLE", None),
        (':TRIG:LOAD "SimpleLoop",100000,1', None),
        (":INIT", None),
        (END, "1"),
        (':TRAC:DATA? 1,1,"defbuffer1",READ,SOUR,REL', "3.700000E+00,0.000000E+00,0.000000E+00"),
        (":OUTP?", "0"),
    ]
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        k.start_step(step)
        status = k.poll()
    assert status.state is ChannelState.RUNNING
    assert status.samples[0].voltage_v == 3.7
    assert status.samples[0].current_a == 0.0


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (CyclerStep(StepMode.CC, current_a=1.5), "current_a"),
        (CyclerStep(StepMode.CC, current_a=0.0), "current_a"),
        (CyclerStep(StepMode.CCCV, current_a=0.5, voltage_v=4.4), "voltage_v"),
        (CyclerStep(StepMode.CV, current_a=0.5), "needs voltage_v"),
        (CyclerStep(StepMode.CC, current_a=-0.5, voltage_v=2.0), "floor"),
        (CyclerStep(StepMode.CC, current_a=0.5, record_interval_s=0), "record_interval_s"),
    ],
)
def test_steps_outside_the_armed_limits_are_refused(step, field) -> None:
    with smu([*CONNECT, *ARM]) as k:
        k.arm_protection(LIMITS)
        with pytest.raises(SettingError, match=field):
            k.start_step(step)


def test_open_interlock_prevents_output_on() -> None:
    exchanges = [*CONNECT, *ARM, *CC_CHARGE[:-3]]
    exchanges[-1] = (":OUTP:INT:TRIP?", "0")
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        with pytest.raises(InterlockOpen):
            k.start_step(CHARGE)


def test_interlock_refusal_in_error_queue_is_interlock_open() -> None:
    exchanges = [*CONNECT, *ARM, *CC_CHARGE[:-1]]
    exchanges[-1] = (":SYST:ERR?", '-200,"Execution error; interlock open"')
    exchanges.append((":SYST:ERR?", NOERR))
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        with pytest.raises(InterlockOpen) as info:
            k.start_step(CHARGE)
    assert info.value.code == -200


def test_normal_off_state_prevents_output_on() -> None:
    exchanges = [*CONNECT, *ARM, *CC_CHARGE[:-4]]
    exchanges[-1] = (":OUTP:CURR:SMOD?", "NORM")
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        with pytest.raises(InstrumentReportedError, match="not HIMP"):
            k.start_step(CHARGE)


def test_poll_returns_instrument_timed_samples_with_capacity() -> None:
    exchanges = [*CONNECT, *ARM, *CC_CHARGE, (END, "3"), (DATA_1_3, THREE), (":OUTP?", "1")]
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        k.start_step(CHARGE)
        status = k.poll()
    assert status.state is ChannelState.RUNNING
    assert [s.step_time_s for s in status.samples] == [0.0, 1.0, 2.0]
    assert [s.voltage_v for s in status.samples] == [3.6, 3.61, 3.62]
    last = status.samples[-1]
    # 0.5 A for 2 s = 1/3600 Ah; energy by the trapezoid rule on (V*I): 0.5*(3.605+3.615) W*s.
    assert last.step_capacity_ah == pytest.approx(1.0 / 3600.0, rel=1e-12)
    assert last.step_energy_wh == pytest.approx(0.5 * (3.605 + 3.615) / 3600.0, rel=1e-12)


def test_capacity_counts_from_the_step_start() -> None:
    reply = "3.600000E+00,5.000000E-01,1.000000E+01,3.610000E+00,5.000000E-01,2.000000E+01"
    data = ':TRAC:DATA? 1,2,"defbuffer1",READ,SOUR,REL'
    exchanges = [*CONNECT, *ARM, *CC_CHARGE, (END, "2"), (data, reply), (":OUTP?", "1")]
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        k.start_step(CHARGE)
        last = k.poll().samples[-1]
    # Constant 0.5 A from REL 0 to 20 s: exactly 0.5 * 20 / 3600 Ah.
    assert last.step_capacity_ah == pytest.approx(0.5 * 20 / 3600, rel=1e-12)
    # Energy: 0.5 A * 3.6 V for the first 10 s, then the trapezoid 0.5 * (3.6 + 3.61) / 2 * 10.
    expected_wh = (0.5 * 3.6 * 10 + 0.5 * (3.6 + 3.61) / 2 * 10) / 3600
    assert last.step_energy_wh == pytest.approx(expected_wh, rel=1e-12)


def test_poll_continues_from_the_last_index_and_finishes_at_end_voltage() -> None:
    exchanges = [
        *CONNECT,
        *ARM,
        *CC_CHARGE,
        (END, "3"),
        (DATA_1_3, THREE),
        (":OUTP?", "1"),
        (END, "4"),
        (':TRAC:DATA? 4,4,"defbuffer1",READ,SOUR,REL', "4.200100E+00,5.000000E-01,3.000000E+00"),
        (":OUTP?", "1"),
        (END, "4"),
        (":OUTP?", "1"),
    ]
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        k.start_step(CHARGE)
        assert k.poll().state is ChannelState.RUNNING
        assert k.poll().state is ChannelState.FINISHED
        again = k.poll()
    assert again.state is ChannelState.FINISHED
    assert again.samples == ()


def test_overflow_reading_is_a_fault_not_a_sample() -> None:
    reply = "9.900000E+37,5.000000E-01,0.000000E+00"
    exchanges = [
        *CONNECT,
        *ARM,
        *CC_CHARGE,
        (END, "1"),
        (':TRAC:DATA? 1,1,"defbuffer1",READ,SOUR,REL', reply),
        (":OUTP?", "1"),
    ]
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        k.start_step(CHARGE)
        status = k.poll()
    assert status.state is ChannelState.FAULT
    assert status.samples == ()


def test_output_turned_off_by_instrument_is_protected() -> None:
    exchanges = [*CONNECT, *ARM, *CC_CHARGE, (END, "0"), (":OUTP?", "0")]
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        k.start_step(CHARGE)
        assert k.poll().state is ChannelState.PROTECTED


def test_garbled_and_lost_poll_replies_are_asked_again() -> None:
    exchanges = [
        *CONNECT,
        *ARM,
        *CC_CHARGE,
        (END, TIMEOUT),
        ("*IDN?", IDN),
        (END, "3"),
        (DATA_1_3, THREE[:-6] + "\n"),
        ("*IDN?", IDN),
        (DATA_1_3, THREE),
        (":OUTP?", "1"),
    ]
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        k.start_step(CHARGE)
        assert len(k.poll().samples) == 3
        assert k.faults == {"reply_lost": 1, "garbage": 1}


def test_poll_after_disconnect_reconnects_and_reads_on_without_resending_set_points() -> None:
    exchanges = [
        *CONNECT,
        *ARM,
        *CC_CHARGE,
        (END, DISCONNECT),
        REOPEN,
        *CONNECT,
        (END, "3"),
        (DATA_1_3, THREE),
        (":OUTP?", "1"),
    ]
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        k.start_step(CHARGE)
        assert len(k.poll().samples) == 3


def test_start_interrupted_by_link_loss_turns_output_off_and_is_not_resent() -> None:
    exchanges = [*CONNECT, *ARM, *CC_CHARGE[:5], (":SOUR:CURR:VLIM?", DISCONNECT)]
    exchanges += [REOPEN, *CONNECT, (":OUTP OFF", None)]
    with smu(exchanges) as k:
        k.arm_protection(LIMITS)
        with pytest.raises(LinkDown, match="not re-sent"):
            k.start_step(CHARGE)


def test_stop_turns_output_off_and_verifies() -> None:
    exchanges = [*CONNECT, (":OUTP OFF", None), (":ABOR", None), (":OUTP?", "0")]
    exchanges += [(":OUTP OFF", None), (":ABOR", None), (":OUTP?", "1")]
    with smu(exchanges) as k:
        k.stop()
        with pytest.raises(InstrumentReportedError, match="still on"):
            k.stop()


def test_error_queue_is_drained_and_reported() -> None:
    exchanges = [
        *CONNECT,
        (":SENS:VOLT:NPLC 0.5", None),
        (":SENS:CURR:NPLC 0.5", None),
        (":SYST:ERR?", '-222,"Data out of range"'),
        (":SYST:ERR?", '-113,"Undefined header"'),
        (":SYST:ERR?", NOERR),
    ]
    with smu(exchanges) as k:
        with pytest.raises(InstrumentReportedError, match="-222,Data out of range; -113") as info:
            k.nplc = 0.5
        assert info.value.code == -222


def test_settings_send_both_sense_functions_and_read_back() -> None:
    exchanges = [
        *CONNECT,
        (":SENS:VOLT:RSEN OFF", None),
        (":SENS:CURR:RSEN OFF", None),
        (":SYST:ERR?", NOERR),
        (":SENS:VOLT:NPLC?", "1.000000E+00"),
        (":SENS:VOLT:RSEN?", "0"),
    ]
    with smu(exchanges) as k:
        k.remote_sense = False
        assert k.nplc == 1.0
        assert k.remote_sense is False


def test_bad_setting_refused() -> None:
    with smu(CONNECT) as k, pytest.raises(SettingError, match="nplc"):
        k.nplc = 50


def test_watchdog_turns_output_off_when_polling_stops() -> None:
    now = [0.0]
    exchanges = [*CONNECT, *ARM, *CC_CHARGE, (":OUTP OFF", None)]
    with smu(exchanges, monotonic=lambda: now[0], watchdog_s=5.0) as k:
        k.arm_protection(LIMITS)
        k.start_step(CHARGE)
        now[0] = 4.0
        assert not k.check_watchdog()
        now[0] = 5.5
        assert k.check_watchdog()
        assert k.poll().state is ChannelState.FAULT


def test_watchdog_thread_trips_on_its_own() -> None:
    exchanges = [*CONNECT, *ARM, *CC_CHARGE, (":OUTP OFF", None)]
    with smu(exchanges, watchdog_s=0.05, watchdog_thread=True) as k:
        k.arm_protection(LIMITS)
        k.start_step(CHARGE)
        tripped = threading.Event()
        for _ in range(200):
            if k.watchdog_tripped:
                tripped.set()
                break
            threading.Event().wait(0.025)
        assert tripped.is_set()
        k.close()


@pytest.mark.parametrize(
    "reply",
    ["1,2", "1E+0,2E+0,3", "1E+0,2E+0,-1E+0", "nan,1E+0,1E+0", "1E+0,2E+0,3E+0,4E+0"],
)
def test_trace_parser_refuses_malformed(reply: str) -> None:
    with pytest.raises(ProtocolError):
        parse_trace_data(reply, 1)


def test_error_parser() -> None:
    assert parse_error_reply('-222,"Data out of range"') == (-222, "Data out of range")
    with pytest.raises(ProtocolError):
        parse_error_reply("-222 Data out of range")

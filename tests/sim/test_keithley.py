"""Keithley 2450/2460 personality: source/limit/compliance, HIMP, errors, trigger model, buffer."""

from __future__ import annotations

import pytest

from hardware_sim.cell import Cell, CellParams, Contact
from hardware_sim.clock import SimClock
from hardware_sim.devices.keithley24xx import Keithley24xx
from tests.sim.helpers import Wire

SOC = (0.0, 0.01, 0.5, 0.99, 1.0)
OCV = (2.5, 3.0, 3.7, 4.15, 4.2)


def cell(soc: float = 0.5, r0: float = 0.05) -> Cell:
    p = CellParams("t", 1.0, SOC, OCV, 2.5, 4.2, r0_ohm=r0, r1_ohm=0, r2_ohm=0, warburg_ohm=0)
    return Cell(p, soc=soc)


def smu(c: Cell | None = None, model: str = "2450") -> tuple[Keithley24xx, Wire]:
    k = Keithley24xx(SimClock(manual=True), seed=7, model=model, cell=c or cell())
    return k, Wire(k)


def ask(w: Wire, text: str) -> bytes:
    return w.ask(text, b"\n")


def send(w: Wire, text: str) -> None:
    w.send(text, b"\n")


def test_identity_language_and_line_feed_terminator() -> None:
    _, w = smu()
    assert ask(w, "*IDN?") == b"KEITHLEY INSTRUMENTS,MODEL 2450,SIMULATED-7,1.7.12b\n"
    assert ask(w, "*LANG?") == b"SCPI\n"
    _, w60 = smu(model="2460")
    assert ask(w60, "*IDN?").startswith(b"KEITHLEY INSTRUMENTS,MODEL 2460,")


def test_error_queue_order_codes_and_esr() -> None:
    _, w = smu()
    assert ask(w, ":SYST:ERR?") == b'0,"No error"\n'
    send(w, ":BOGUS")
    send(w, ":SOUR:CURR 5")  # beyond the 2450's 1.05 A
    assert ask(w, ":SYST:ERR:COUN?") == b"2\n"
    assert ask(w, "*ESR?") == b"48\n"  # CME (32) + EXE (16)
    assert ask(w, ":SYST:ERR?") == b'-113,"Undefined header"\n'
    assert ask(w, ":SYST:ERR:NEXT?") == b'-222,"Data out of range"\n'
    assert ask(w, ":SYST:ERR?") == b'0,"No error"\n'
    send(w, ":BOGUS")
    send(w, "*CLS")
    assert ask(w, ":SYST:ERR?") == b'0,"No error"\n'


def test_default_norm_off_state_drains_and_himp_does_not() -> None:
    c = cell(0.5)
    k, w = smu(c)
    v0 = c.ocv_v
    w.clock.advance(600.0)
    ask(w, "*OPC?")
    assert c.charge_ah < 0  # NORM: a 0 V source behind the 105 mA limit discharges the cell
    send(w, ":OUTP:CURR:SMOD HIMP")
    assert ask(w, ":OUTP:CURR:SMOD?") == b"HIMP\n"
    before = c.charge_ah
    w.clock.advance(600.0)
    ask(w, "*OPC?")
    assert c.charge_ah == before
    assert c.ocv_v < v0


def test_cc_charge_reads_voltage_with_ir_rise_and_clamps_at_vlim() -> None:
    c = cell(0.5, r0=0.05)
    k, w = smu(c)
    for line in (
        ":OUTP:CURR:SMOD HIMP",
        ":SOUR:FUNC CURR",
        ":SOUR:CURR 0.5",
        ":SOUR:CURR:VLIM 4.0",
        ':SENS:FUNC "VOLT"',
        ":SENS:VOLT:RSEN ON",
        ":SENS:VOLT:NPLC 1",
        ":OUTP ON",
    ):
        send(w, line)
    assert ask(w, ":OUTP?") == b"1\n"
    # analytic: OCV(0.5) + I R0 = 3.7 + 0.025 V
    assert float(ask(w, ":READ?")) == pytest.approx(3.725, abs=1e-4)
    assert ask(w, ":SOUR:CURR:VLIM:TRIP?") == b"0\n"
    w.clock.advance(3 * 3600.0)
    assert float(ask(w, ":MEAS:VOLT?")) == pytest.approx(4.0, abs=1e-6)
    assert ask(w, ":SOUR:CURR:VLIM:TRIP?") == b"1\n"
    assert float(ask(w, ":MEAS:CURR?")) < 0.5


def test_cv_with_current_limit_is_cccv() -> None:
    c = cell(0.2)
    _, w = smu(c)
    for line in (
        ":OUTP:CURR:SMOD HIMP",
        ":SOUR:FUNC VOLT",
        ":SOUR:VOLT 4.2",
        ":SOUR:VOLT:ILIM 0.8",
        ':SENS:FUNC "CURR"',
        ":OUTP ON",
    ):
        send(w, line)
    assert float(ask(w, ":READ?")) == pytest.approx(0.8)
    assert ask(w, ":SOUR:VOLT:ILIM:TRIP?") == b"1\n"
    w.clock.advance(6 * 3600.0)
    assert float(ask(w, ":READ?")) < 0.05
    assert float(ask(w, ":MEAS:VOLT?")) == pytest.approx(4.2, abs=1e-6)


def test_discharge_sent_as_cv_at_the_floor_never_over_discharges() -> None:
    c = cell(0.3)
    _, w = smu(c)
    for line in (
        ":OUTP:CURR:SMOD HIMP",
        ":SOUR:FUNC VOLT",
        ":SOUR:VOLT 3.0",
        ":SOUR:VOLT:ILIM 1.0",
        ':SENS:FUNC "CURR"',
        ":OUTP ON",
    ):
        send(w, line)
    assert float(ask(w, ":READ?")) == pytest.approx(-1.0)
    w.clock.advance(10 * 3600.0)
    assert float(ask(w, ":MEAS:VOLT?")) == pytest.approx(3.0, abs=1e-6)
    assert c.ocv_v >= 3.0 - 1e-6


def test_source_settings_read_back() -> None:
    _, w = smu()
    for line in (
        ":SOUR:FUNC CURR",
        ":SOUR:CURR -0.25",
        ":SOUR:CURR:VLIM 4.1",
        ":SOUR:VOLT:PROT PROT20",
        ":SOUR:VOLT:ILIM 0.5",
        ':SENS:FUNC "VOLT"',
        ":SENS:CURR:RSEN ON",
        ":SENS:CURR:NPLC 0.5",
    ):
        send(w, line)
    assert ask(w, ":SOUR:FUNC?") == b"CURR\n"
    assert ask(w, ":SOUR:CURR?") == b"-2.500000E-01\n"
    assert ask(w, ":SOUR:CURR:VLIM?") == b"4.100000E+00\n"
    assert ask(w, ":SOUR:VOLT:PROT?") == b"PROT20\n"
    assert ask(w, ":SOUR:VOLT:ILIM?") == b"5.000000E-01\n"
    assert ask(w, ":SENS:FUNC?") == b'"VOLT:DC"\n'
    assert ask(w, ":SENS:CURR:RSEN?") == b"1\n"
    assert ask(w, ":SENS:CURR:NPLC?") == b"5.000000E-01\n"
    send(w, ":SOUR:VOLT 30")  # above PROT20
    assert ask(w, ":SYST:ERR?") == b'-222,"Data out of range"\n'
    send(w, ":SOUR:VOLT:PROT PROT7")
    assert ask(w, ":SYST:ERR?") == b'-224,"Illegal parameter value"\n'


def test_2460_accepts_higher_current() -> None:
    _, w = smu(model="2460")
    send(w, ":SOUR:CURR 5")
    assert ask(w, ":SYST:ERR?") == b'0,"No error"\n'


def test_interlock_open_refuses_output_on() -> None:
    k, w = smu()
    assert ask(w, ":OUTP:INT:TRIP?") == b"1\n"
    k.set_interlock(False)
    assert ask(w, ":OUTP:INT:TRIP?") == b"0\n"
    send(w, ":OUTP ON")
    assert ask(w, ":OUTP?") == b"0\n"
    assert ask(w, ":SYST:ERR?") == b'-200,"Execution error; interlock open"\n'
    k.set_interlock(True)
    send(w, ":OUTP ON")
    assert ask(w, ":OUTP?") == b"1\n"
    k.set_interlock(False)  # opening it while on turns the output off
    assert ask(w, ":OUTP?") == b"0\n"


def test_overflow_reads_9_9e37_without_contact() -> None:
    c = cell()
    _, w = smu(c)
    send(w, ':SENS:FUNC "VOLT"')
    c.contact = Contact.OPEN
    assert ask(w, ":READ?") == b"9.900000E+37\n"
    c.contact = Contact.REVERSED
    assert float(ask(w, ":MEAS:VOLT?")) < 0


def test_simpleloop_fills_defbuffer1_with_rel_timestamps_in_simulated_time() -> None:
    c = cell(0.5, r0=0.05)
    _, w = smu(c)
    for line in (
        ":OUTP:CURR:SMOD HIMP",
        ":SOUR:FUNC CURR",
        ":SOUR:CURR -0.5",
        ":SOUR:CURR:VLIM 5",
        ':SENS:FUNC "VOLT"',
        ":TRAC:CLE",
        ":OUTP ON",
        ':TRIG:LOAD "SimpleLoop",10,2.0',
        ":INIT",
    ):
        send(w, line)
    w.clock.advance(7.0)
    assert ask(w, ':TRAC:ACT:END? "defbuffer1"') == b"3\n"
    w.clock.advance(100.0)
    assert ask(w, ':TRAC:ACT:END? "defbuffer1"') == b"10\n"  # count reached: model stopped
    fields = ask(w, ':TRAC:DATA? 1,10,"defbuffer1",READ,SOUR,REL').strip().split(b",")
    assert len(fields) == 30
    rel = [float(x) for x in fields[2::3]]
    assert rel == pytest.approx([2.0 * (i + 1) for i in range(10)])
    sour = {float(x) for x in fields[1::3]}
    assert sour == {-0.5}
    volts = [float(x) for x in fields[0::3]]
    # analytic first reading: OCV(soc after 2 s at 0.5 A) - I R0; the OCV slope is 1.43 V/soc
    soc_2s = 0.5 - 0.5 * 2.0 / 3600.0
    ocv = 3.0 + (3.7 - 3.0) * (soc_2s - 0.01) / (0.5 - 0.01)
    assert volts[0] == pytest.approx(ocv - 0.025, abs=1e-6)
    assert all(b < a for a, b in zip(volts, volts[1:], strict=False))


def test_abort_stops_and_trace_clear_empties() -> None:
    _, w = smu()
    for line in (':TRIG:LOAD "SimpleLoop",100,1.0', ":INIT"):
        send(w, line)
    w.clock.advance(3.5)
    send(w, ":ABOR")
    w.clock.advance(10.0)
    assert ask(w, ':TRAC:ACT:END? "defbuffer1"') == b"3\n"
    send(w, ':TRAC:CLE "defbuffer1"')
    assert ask(w, ':TRAC:ACT? "defbuffer1"') == b"0\n"
    assert ask(w, ':TRAC:DATA? 1,1,"defbuffer1",READ') == b""
    assert ask(w, ":SYST:ERR?") == b'-222,"Data out of range"\n'


def test_read_with_buffer_elements_takes_one_reading_now() -> None:
    _, w = smu()
    send(w, ':SENS:FUNC "VOLT"')
    send(w, ":SOUR:FUNC CURR")
    t0 = w.clock.now()
    first = ask(w, ':READ? "defbuffer1",READ,SOUR,REL').strip().split(b",")
    assert len(first) == 3 and float(first[2]) == 0.0
    assert w.clock.now() - t0 == pytest.approx(1 / 50)  # 1 PLC at 50 Hz
    w.clock.advance(5.0)
    second = ask(w, ':READ? "defbuffer1",READ,SOUR,REL').strip().split(b",")
    assert float(second[2]) == pytest.approx(5.0 + 1 / 50)
    assert ask(w, ':TRAC:ACT:END? "defbuffer1"') == b"2\n"


def test_init_without_a_loaded_model_and_bad_buffer_names_are_errors() -> None:
    _, w = smu()
    send(w, ":INIT")
    assert ask(w, ":SYST:ERR?").startswith(b"-200,")
    assert ask(w, ':TRAC:ACT:END? "mybuf"') == b""
    assert ask(w, ":SYST:ERR?") == b'-224,"Illegal parameter value"\n'


def test_over_temperature_trip_turns_output_off_with_an_error() -> None:
    k, w = smu()
    send(w, ":OUTP ON")
    k.trip_over_temperature()
    assert ask(w, ":OUTP?") == b"0\n"
    assert ask(w, ":SYST:ERR?") == b'5051,"Output disabled: instrument over temperature"\n'


def test_rst_restores_defaults_and_output_off() -> None:
    k, w = smu()
    for line in (":OUTP:CURR:SMOD HIMP", ":SOUR:FUNC CURR", ":SOUR:CURR 0.3", ":OUTP ON"):
        send(w, line)
    send(w, "*RST")
    assert ask(w, ":OUTP?") == b"0\n"
    assert ask(w, ":OUTP:CURR:SMOD?") == b"NORM\n"
    assert ask(w, ":SOUR:FUNC?") == b"VOLT\n"
    assert ask(w, ":SOUR:CURR?") == b"0.000000E+00\n"
    assert ask(w, ":SENS:FUNC?") == b'"CURR:DC"\n'
    assert ask(w, "*OPC?") == b"1\n"

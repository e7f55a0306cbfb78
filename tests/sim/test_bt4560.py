"""Hioki BT4560 personality: commands, R,X,V replies, measurement time per frequency, sentinels."""

from __future__ import annotations

import pytest

from hardware_sim.cell import Cell, CellParams, Contact
from hardware_sim.clock import SimClock
from hardware_sim.devices.bt4560 import Bt4560, sci
from tests.sim.helpers import Wire

SOC = (0.0, 0.5, 1.0)
OCV = (3.0, 3.7, 4.2)


def rc_cell() -> Cell:
    """R0 10 mOhm + one RC (10 mOhm, tau 1/(2 pi 10) s): at 10 Hz Z = 15 - 5j mOhm exactly."""
    tau = 1 / (2 * 3.141592653589793 * 10.0)
    p = CellParams(
        "t",
        3.0,
        SOC,
        OCV,
        3.0,
        4.2,
        r0_ohm=0.010,
        r1_ohm=0.010,
        tau1_s=tau,
        r2_ohm=0.0,
        warburg_ohm=0.0,
        inductance_h=0.0,
    )
    return Cell(p, soc=0.5)


def meter(cell: Cell | None = None) -> tuple[Bt4560, Wire]:
    m = Bt4560(SimClock(manual=True), seed=7, cell=cell)
    m.noise_relative = 0.0
    return m, Wire(m)


def setup(w: Wire) -> None:
    for line in (
        "*RST",
        "*CLS",
        ":FUNC RV",
        ":TRIG:SOUR IMM",
        ":INIT:CONT OFF",
        ":AUT OFF",
        ":RES:RANG 30E-3",
        ":SAMP:RATE Z,MED",
    ):
        w.send(line)
    assert w.ask("*ESR?") == b"0\r\n"


def test_sci_format() -> None:
    assert sci(0.015) == "+1.5000E-02"
    assert sci(-0.005) == "-5.0000E-03"
    assert sci(3.7) == "+3.7000E+00"
    assert sci(1e10) == "+1.0000E+10"


def test_idn() -> None:
    _, w = meter()
    assert w.ask("*IDN?") == b"HIOKI,BT4560,SIMULATED-7,V1.10\r\n"


def test_trg_wai_fetch_gives_r_x_v_of_the_analytic_rc() -> None:
    _, w = meter(rc_cell())
    setup(w)
    w.send(":FREQ 10")
    assert w.ask(":FREQ?") == b"1.00000E+1\r\n"
    # analytic: R0 + R/(1 + j) = 10 + 5 - 5j mOhm, plus the OCV capacitor -j slope/(w 3600 Q)
    # with slope 1.0 V/soc above soc 0.5; V = OCV(0.5) = 3.7 V
    x_ref = -0.005 - 1.0 / (2 * 3.141592653589793 * 10.0 * 3600 * 3.0)
    reply = w.ask("*TRG;*WAI;:FETC?")
    assert reply == f"+1.5000E-02,{sci(x_ref)},+3.7000E+00\r\n".encode()


@pytest.mark.parametrize("freq,seconds", [(1000.0, 0.501), (1.0, 3.0), (0.1, 30.0), (4.0, 0.75)])
def test_measurement_time_is_max_half_second_two_periods_plus_one_period(
    freq: float, seconds: float
) -> None:
    _, w = meter(rc_cell())
    setup(w)
    w.send(f":FREQ {freq}")
    t0 = w.clock.now()
    w.ask("*TRG;*WAI;:FETC?")
    assert w.clock.now() - t0 == pytest.approx(seconds)


def test_zv_mode_and_other_functions() -> None:
    _, w = meter(rc_cell())
    setup(w)
    w.send(":FREQ 10")
    w.send(":FUNC ZV")
    z, theta, v = (float(x) for x in w.ask("*TRG;*WAI;:FETC?").split(b","))
    assert z == pytest.approx((0.015**2 + 0.005**2) ** 0.5, rel=1e-4)
    assert theta == pytest.approx(-18.435, abs=0.01)  # atan(-5/15) in degrees, 5 digits
    w.send(":FUNC V")
    assert w.ask(":READ?") == b"+3.7000E+00\r\n"
    assert w.ask(":FUNC?") == b"V\r\n"


def test_frequency_outside_range_is_an_execution_error() -> None:
    m, w = meter()
    w.ask("*ESR?")
    w.send(":FREQ 2000")
    assert w.ask("*ESR?") == b"16\r\n"
    assert m.frequency_hz == 1000.0
    w.send(":FREQ 0.05")
    assert w.ask("*ESR?") == b"16\r\n"


def test_no_contact_over_range_and_reversed() -> None:
    cell = rc_cell()
    m, w = meter(cell)
    setup(w)
    w.send(":FREQ 10")
    cell.contact = Contact.OPEN
    r, x, v = (float(f) for f in w.ask("*TRG;*WAI;:FETC?").split(b","))
    assert v > 1e8 and r > 1e8
    cell.contact = Contact.REVERSED
    r, x, v = (float(f) for f in w.ask("*TRG;*WAI;:FETC?").split(b","))
    assert v == pytest.approx(-3.7) and r == pytest.approx(0.015)
    cell.contact = Contact.OK
    w.send(":RES:RANG 3E-3")  # 15.8 mOhm does not fit 3 mOhm
    assert w.ask("*TRG;*WAI;:FETC?") == b"+1.0000E+09,+1.0000E+09,+3.7000E+00\r\n"
    m.place_cell(None)
    assert w.ask(":READ?") == b"+1.0000E+10,+1.0000E+10,+1.0000E+10\r\n"


def test_zero_adjust_takes_13_5_seconds_and_replies_zero() -> None:
    _, w = meter()
    t0 = w.clock.now()
    assert w.ask(":ADJ? SPOT") == b"0\r\n"
    assert w.clock.now() - t0 == pytest.approx(13.5)


def test_settings_and_options_round_trip() -> None:
    m, w = meter()
    w.send(":SAMP:RATE Z,SLOW")
    w.send(":SAMP:RATE V,FAST")
    assert w.ask(":SAMP:RATE? Z") == b"SLOW\r\n"
    assert w.ask(":SAMP:RATE? V") == b"FAST\r\n"
    for line in (
        ":SYST:BEEP OFF",
        ":SAMP:DEL:MODE WAVE",
        ":SAMP:DEL:WAVE 0.5",
        ":LIM OFF",
        ":ZERO:CROS ON",
        ":CALC:AVER 1",
        ":ADJ:SLOP ON",
        ":RANG 300E-3",
    ):
        w.send(line)
    assert w.ask("*ESR?") == b"128\r\n"  # only the power-on bit: everything accepted
    assert m.range_ohm == 0.3
    assert w.ask(":TRIG:SOUR?;:INIT:CONT?;:AUT?") == b"IMM;ON;OFF\r\n"


def test_fetch_before_any_measurement_is_an_error_without_reply() -> None:
    _, w = meter()
    w.ask("*ESR?")
    assert w.ask(":FETC?") == b""
    assert w.ask("*ESR?") == b"16\r\n"

"""Hioki BT3562/BT3563 personality: every command of the reference table, replies and quirks."""

from __future__ import annotations

import pytest

from hardware_sim.cell import Cell, CellParams, Contact
from hardware_sim.clock import SimClock
from hardware_sim.devices.bt356x import Bt356x, fixed_width, sentinel
from tests.sim.helpers import Wire

SOC = (0.0, 0.5, 1.0)
OCV = (3.0, 3.70123, 4.2)


def exact_cell(r_ohm: float = 0.01234, soc: float = 0.5) -> Cell:
    """A cell whose Re Z(1 kHz) is exactly R0 (no arcs) and whose OCV at soc 0.5 is 3.70123 V."""
    p = CellParams("t", 3.0, SOC, OCV, 3.0, 4.2, r0_ohm=r_ohm, r1_ohm=0, r2_ohm=0, warburg_ohm=0)
    return Cell(p, soc=soc)


def meter(cell: Cell | None = None, model: str = "BT3562") -> tuple[Bt356x, Wire]:
    m = Bt356x(SimClock(manual=True), seed=7, model=model, cell=cell)
    m.noise_counts = 0.0
    return m, Wire(m)


SETUP = [
    "*CLS",
    ":ESE0 1",
    ":SYST:HEAD OFF",
    ":FUNC RV",
    ":AUT OFF",
    ":RES:RANG 300E-3",
    ":VOLT:RANG 6",
    ":SAMP:RATE MED",
    ":TRIG:SOUR IMM",
    ":INIT:CONT OFF",
]


def setup(w: Wire) -> None:
    for line in SETUP:
        w.send(line)
    assert w.ask("*ESR?") == b"0\r\n"


def test_fixed_width_formats_of_the_manual() -> None:
    assert fixed_width(12.345, 3, 3) == "  12.345"  # 30 mOhm range
    assert fixed_width(12.34, 4, 2) == "   12.34"  # 300 mOhm range
    assert fixed_width(3.70123, 1, 5) == " 3.70123"
    assert fixed_width(-3.70123, 1, 5) == "-3.70123"
    assert fixed_width(0.5, 2, 4) == "  0.5000"
    assert sentinel(4, 2, 9, " ") == " 1000.00E+6"
    assert sentinel(4, 2, 10, "+") == "+1000.00E+7"
    assert sentinel(1, 5, 10, "+") == "+1.00000E+10"


def test_idn_carries_the_simulated_serial() -> None:
    _, w = meter()
    assert w.ask("*IDN?") == b"HIOKI,BT3562,SIMULATED-7,V2.03\r\n"
    _, w3 = meter(model="BT3563")
    assert w3.ask("*idn?") == b"HIOKI,BT3563,SIMULATED-7,V2.03\r\n"


def test_power_on_esr_has_pon_and_is_read_and_clear() -> None:
    _, w = meter()
    assert w.ask("*ESR?") == b"128\r\n"
    assert w.ask("*ESR?") == b"0\r\n"


def test_setup_sequence_is_silent_and_leaves_esr_zero() -> None:
    m, w = meter(exact_cell())
    setup(w)
    assert (m.function, m.autorange, m.resistance_range, m.voltage_range) == ("RV", False, 0.3, 6.0)
    assert (m.rate, m.trigger, m.continuous) == ("MED", "IMM", False)


def test_read_with_cont_off_measures_with_fixed_width_reply() -> None:
    m, w = meter(exact_cell())
    setup(w)
    t0 = w.clock.now()
    assert w.ask(":READ?") == b"   12.34E-3, 3.70123E+0\r\n"
    # MED takes 35 ms of simulated time
    assert w.clock.now() - t0 == pytest.approx(0.035)
    w.send(":RES:RANG 30E-3")
    assert w.ask(":READ?") == b"  12.340E-3, 3.70123E+0\r\n"
    w.send(":RES:RANG 3E-3")  # 12.3 mOhm on the 3 mOhm range: over-range
    assert w.ask(":READ?") == b" 10.0000E+8, 3.70123E+0\r\n"


def test_read_with_cont_on_is_silent_and_sets_the_execution_bit() -> None:
    m, w = meter(exact_cell())
    w.ask("*ESR?")
    assert m.continuous  # power-on default
    assert w.ask(":READ?") == b""
    assert w.ask("*ESR?") == b"16\r\n"
    assert m.measurements == 0


def test_fetch_returns_the_last_reading_without_measuring() -> None:
    m, w = meter(exact_cell())
    setup(w)
    w.send(":RES:RANG 30E-3")
    first = w.ask(":READ?")
    t = w.clock.now()
    assert w.ask(":FETC?") == first
    assert m.measurements == 1
    assert w.clock.now() == t


def test_no_contact_and_reversed_and_empty_fixture() -> None:
    cell = exact_cell()
    m, w = meter(cell)
    setup(w)
    cell.contact = Contact.OPEN
    assert w.ask(":READ?") == b"+1000.00E+7,+1.00000E+10\r\n"
    assert w.ask(":ESR0?") == b"35\r\n"  # EOM + INDEX + ERR, read-and-clear
    assert w.ask(":ESR0?") == b"0\r\n"
    cell.contact = Contact.REVERSED
    w.send(":RES:RANG 30E-3")
    assert w.ask(":READ?") == b"  12.340E-3,-3.70123E+0\r\n"
    m.place_cell(None)
    assert w.ask(":READ?") == b"+100.000E+8,+1.00000E+10\r\n"


def test_place_cell_switches_what_is_measured() -> None:
    m, w = meter()
    setup(w)
    w.send(":RES:RANG 30E-3")
    m.place_cell(exact_cell(0.02))
    assert w.ask(":READ?").startswith(b"  20.000E-3,")
    m.place_cell(exact_cell(0.005))
    assert w.ask(":READ?").startswith(b"   5.000E-3,")


def test_unknown_command_sets_command_error_bit() -> None:
    _, w = meter()
    w.ask("*ESR?")
    assert w.ask(":BOGUS 1") == b""
    assert w.ask("*ESR?") == b"32\r\n"
    assert w.ask(":FUNC WATTS") == b""
    assert w.ask("*ESR?") == b"16\r\n"  # -224 illegal parameter value: an execution error
    assert w.ask(b"\xff\xfe") == b""
    assert w.ask("*ESR?") == b"32\r\n"


def test_setting_queries_return_short_upper_forms() -> None:
    _, w = meter(exact_cell())
    setup(w)
    assert w.ask(":FUNC?") == b"RV\r\n"
    assert w.ask(":SAMP:RATE?") == b"MED\r\n"
    assert w.ask(":RES:RANG?") == b"300.00E-3\r\n"
    assert w.ask(":VOLT:RANG?") == b"6.00000E+0\r\n"
    assert w.ask(":INIT:CONT?") == b"OFF\r\n"
    assert w.ask(":TRIG:SOUR?") == b"IMM\r\n"
    assert w.ask(":AUT?") == b"OFF\r\n"
    w.send(":FUNCTION RESISTANCE")
    assert w.ask(":FUNC?") == b"RESISTANCE\r\n"
    w.send(":SYST:HEAD ON")
    assert w.ask(":FUNC?") == b":FUNCTION RESISTANCE\r\n"
    assert w.ask(":SYST:HEAD?") == b":SYSTEM:HEADER ON\r\n"


def test_function_selects_reply_fields() -> None:
    _, w = meter(exact_cell())
    setup(w)
    w.send(":RES:RANG 30E-3")
    w.send(":FUNC RES")
    assert w.ask(":READ?") == b"  12.340E-3\r\n"
    w.send(":FUNC VOLT")
    assert w.ask(":READ?") == b" 3.70123E+0\r\n"


@pytest.mark.parametrize("rate,seconds", [("EXF", 0.002), ("FAST", 0.012), ("SLOW", 0.150)])
def test_measurement_time_per_rate(rate: str, seconds: float) -> None:
    _, w = meter(exact_cell())
    setup(w)
    w.send(f":SAMP:RATE {rate}")
    t0 = w.clock.now()
    w.ask(":READ?")
    assert w.clock.now() - t0 == pytest.approx(seconds)


def test_autorange_picks_the_smallest_range_that_fits() -> None:
    m, w = meter(exact_cell(0.2))
    setup(w)
    w.send(":AUT ON")
    assert w.ask(":READ?") == b"  200.00E-3, 3.70123E+0\r\n"
    assert m.resistance_range == 0.3


def test_range_setting_rounds_up_and_turns_autorange_off() -> None:
    m, w = meter()
    w.send(":AUT ON")
    w.send(":RES:RANG 120E-3")
    assert m.resistance_range == 0.3 and not m.autorange
    w.ask("*ESR?")
    w.send(":VOLT:RANG 100")  # BT3562 has no 100 V range: data out of range
    assert w.ask("*ESR?") == b"16\r\n"


def test_rst_restores_factory_defaults_and_local_restores_free_run() -> None:
    m, w = meter()
    setup(w)
    w.send("*RST")
    assert (m.continuous, m.autorange, m.rate) == (True, True, "SLOW")
    w.send(":INIT:CONT OFF")
    w.send(":SYST:LOC")
    assert m.continuous


def test_stb_summarises_esr0_with_ese0() -> None:
    _, w = meter(exact_cell())
    setup(w)
    assert int(w.ask("*STB?")) & 1 == 0
    w.ask(":READ?")
    assert int(w.ask("*STB?")) & 1 == 1
    w.send("*CLS")
    assert int(w.ask("*STB?")) & 1 == 0


def test_trg_and_init_measure_for_fetch() -> None:
    m, w = meter(exact_cell())
    setup(w)
    w.send(":RES:RANG 30E-3")
    w.send("*TRG")
    assert m.measurements == 1
    w.send(":INIT")
    assert m.measurements == 2
    assert w.ask(":FETC?") == b"  12.340E-3, 3.70123E+0\r\n"


def test_system_error_is_not_an_error_queue() -> None:
    _, w = meter()
    w.send(":SYST:ERR SYNC")
    assert w.ask(":SYST:ERR?") == b"SYNC\r\n"


def test_reading_noise_is_seeded_and_reproducible() -> None:
    replies = []
    for _ in range(2):
        m = Bt356x(SimClock(manual=True), seed=3, cell=exact_cell())
        w = Wire(m)
        setup(w)
        w.send(":RES:RANG 30E-3")
        replies.append([w.ask(":READ?") for _ in range(5)])
    assert replies[0] == replies[1]
    values = [float(r.split(b",")[0]) for r in replies[0]]
    assert len(set(values)) > 1
    # 2 counts (2 uOhm) of noise on 12.34 mOhm: every reading within 10 uOhm
    assert all(abs(v - 12.34e-3) < 10e-6 for v in values)


def test_memory_stores_triggered_readings_until_cleared() -> None:
    m, w = meter(exact_cell())
    setup(w)
    w.send(":RES:RANG 30E-3")
    w.send(":MEM:STAT ON")
    assert w.ask(":MEM:STAT?") == b"ON\r\n"
    w.send("*TRG")
    w.send("*TRG")
    one = "  12.340E-3, 3.70123E+0"
    assert w.ask(":MEM:DATA?") == f"{one},{one}\r\n".encode()
    w.send(":MEM:CLEA")
    assert w.ask(":MEM:DATA?") == b"\r\n"
    w.send(":MEM:STAT OFF")
    w.send("*TRG")
    assert w.ask(":MEM:DATA?") == b"\r\n"

"""Robustness: arbitrary bytes never crash a personality, and replies stay ASCII lines."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware_sim.cell import Cell, CellParams
from hardware_sim.clock import SimClock
from hardware_sim.devices.base import Personality
from hardware_sim.devices.bt356x import Bt356x
from hardware_sim.devices.bt4560 import Bt4560
from hardware_sim.devices.keithley24xx import Keithley24xx

WORDS = [
    "*IDN?",
    "*RST",
    "*CLS",
    "*ESR?",
    ":READ?",
    ":FETC?",
    ":INIT:CONT OFF",
    ":INIT:CONT ON",
    ":FUNC RV",
    ":FREQ 0.1",
    ":FREQ 1000",
    "*TRG",
    "*WAI",
    ":OUTP ON",
    ":OUTP OFF",
    ":SOUR:FUNC CURR",
    ":SOUR:CURR -0.5",
    ":SOUR:CURR 0.5",
    ":SOUR:FUNC VOLT",
    ":SOUR:VOLT 4.2",
    ':TRIG:LOAD "SimpleLoop",5,1',
    ":INIT",
    ":ABOR",
    ':TRAC:DATA? 1,2,"defbuffer1",READ,REL',
    ":SYST:ERR?",
    ":RES:RANG 3E-3",
    ":AUT ON",
    ":BOGUS",
    ";;",
    "?",
    ":SAMP:RATE Z,SLOW",
]


def make(kind: str) -> Personality:
    p = CellParams("t", 1.0, (0.0, 1.0), (3.0, 4.2), 3.0, 4.2)
    cell = Cell(p, soc=0.5)
    clock = SimClock(manual=True)
    if kind == "bt3562":
        return Bt356x(clock, cell=cell)
    if kind == "bt4560":
        return Bt4560(clock, cell=cell)
    return Keithley24xx(clock, cell=cell)


CHUNKS = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(
            lambda ws: (";".join(ws) + "\n").encode()
        ),
    ),
    max_size=12,
)
GAPS = st.lists(st.floats(min_value=0, max_value=500), min_size=12, max_size=12)


def check_replies(kind: str, chunks: list[bytes], gaps: list[float]) -> None:
    p = make(kind)
    p.on_connect()
    last_due = -1.0
    for chunk, gap in zip(chunks, gaps, strict=False):
        p.clock.advance(gap)
        for reply in p.receive(chunk):
            reply.data.decode("ascii")
            assert reply.data.endswith(p.write_termination)
            assert reply.due_s >= last_due  # replies never overtake each other
            last_due = reply.due_s


@pytest.mark.parametrize("kind", ["bt3562", "bt4560", "keithley2450"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=CHUNKS, gaps=GAPS)
def test_any_input_gives_ascii_replies_and_no_exception(
    kind: str, chunks: list[bytes], gaps: list[float]
) -> None:
    check_replies(kind, chunks, gaps)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bt3562", "bt4560", "keithley2450"])
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=CHUNKS, gaps=GAPS)
def test_any_input_soak(kind: str, chunks: list[bytes], gaps: list[float]) -> None:
    check_replies(kind, chunks, gaps)

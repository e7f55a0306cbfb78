"""The shared SCPI parser."""

from __future__ import annotations

import pytest

from hardware_sim.scpi import (
    Command,
    CommandTable,
    ScpiError,
    parse_bool,
    parse_choice,
    parse_float,
    parse_line,
)


def test_line_splits_on_semicolons_outside_quotes_and_parses_args() -> None:
    cmds = parse_line('*TRG;*WAI;:FETC?; :TRAC:DATA? 1,5,"def;buffer1",READ')
    assert cmds == [
        Command("*TRG", False, ()),
        Command("*WAI", False, ()),
        Command(":FETC", True, ()),
        Command(":TRAC:DATA", True, ("1", "5", '"def;buffer1"', "READ")),
    ]


@pytest.mark.parametrize(
    "header",
    [":SOUR:CURR:VLIM", "SOURCE:CURRENT:VLIMIT", ":sour:curr:vlimit", ":Source:Curr:VLim"],
)
def test_short_and_long_forms_any_case(header: str) -> None:
    table: CommandTable[str] = CommandTable()
    table.add(":SOURce:CURRent[:LEVel]", "level")
    table.add(":SOURce:CURRent:VLIMit[:LEVel]", "vlim")
    assert table.lookup(header) == "vlim"
    assert table.lookup(":SOUR:CURR:LEV") == "level"
    assert table.lookup(":SOUR:CURR") == "level"


def test_partial_words_and_unknown_headers_are_undefined() -> None:
    table: CommandTable[str] = CommandTable()
    table.add(":FUNCtion", "f")
    for bad in (":FUN", ":FUNCT", ":FUNC:X", ":NOPE"):
        with pytest.raises(ScpiError) as info:
            table.lookup(bad)
        assert info.value.code == -113
        assert info.value.esr_bit == 32


def test_parameter_helpers() -> None:
    assert parse_float("1.5E-3") == 0.0015
    assert parse_float("MAX", low=0, high=7) == 7
    with pytest.raises(ScpiError) as info:
        parse_float("9", high=5)
    assert info.value.code == -222 and info.value.esr_bit == 16
    with pytest.raises(ScpiError):
        parse_float("abc")
    assert parse_bool("on") is True and parse_bool("0") is False
    assert parse_choice("med", {"MEDium": "MED", "SLOW": "SLOW"}) == "MED"
    assert parse_choice('"VOLT"', {"VOLTage[:DC]": "VOLT"}) == "VOLT"
    assert parse_choice("volt:dc", {"VOLTage[:DC]": "VOLT"}) == "VOLT"
    with pytest.raises(ScpiError):
        parse_choice("MEDI", {"MEDium": "MED"})

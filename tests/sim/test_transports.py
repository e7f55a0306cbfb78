"""One client-facing conversation, with raw pyserial and pyvisa, over TCP, pty and sim://."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
import pyvisa
import serial

from hardware_sim.clock import SimClock
from hardware_sim.devices.bt356x import Bt356x
from hardware_sim.population import generate_lot
from hardware_sim.serial_handlers import attach, detach, register
from hardware_sim.transports.pty import PtyServer
from hardware_sim.transports.tcp import TcpServer

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="pty needs POSIX")


def make_meter() -> Bt356x:
    cell = generate_lot("new-cells", 1, seed=5, defect_share=0.0)[0].cell
    return Bt356x(SimClock(speed=1000.0), seed=5, cell=cell)


@contextmanager
def over_tcp(meter: Bt356x) -> Iterator[dict[str, str]]:
    with TcpServer(meter) as server:
        a = server.addresses()
        yield {"pyserial": str(a["pyserial"]), "visa": str(a["visa"])}


@contextmanager
def over_tcp_as_serial_visa(meter: Bt356x) -> Iterator[dict[str, str]]:
    """The same TCP server reached as VISA ``ASRLsocket://...::INSTR`` (serial-VISA path)."""
    with TcpServer(meter) as server:
        a = server.addresses()
        yield {"pyserial": str(a["pyserial"]), "visa": str(a["visa_asrl"])}


@contextmanager
def over_pty(meter: Bt356x) -> Iterator[dict[str, str]]:
    with PtyServer(meter) as pty:
        yield {"pyserial": pty.path, "visa": f"ASRL{pty.path}::INSTR"}


@contextmanager
def over_sim(meter: Bt356x) -> Iterator[dict[str, str]]:
    register()
    attach("bench-acir", meter)
    try:
        yield {"pyserial": "sim://bench-acir", "visa": "ASRLsim://bench-acir::INSTR"}
    finally:
        detach("bench-acir")


TRANSPORTS: list[Callable[[Bt356x], AbstractContextManager[dict[str, str]]]] = [
    over_tcp,
    over_tcp_as_serial_visa,
    pytest.param(over_pty, marks=posix_only),  # type: ignore[list-item]
    over_sim,
]

SETUP = (
    "*CLS",
    ":ESE0 1",
    ":SYST:HEAD OFF",
    ":FUNC RV",
    ":AUT OFF",
    ":RES:RANG 300E-3",
    ":VOLT:RANG 6",
    ":SAMP:RATE MED",
    ":TRIG:SOUR IMM",
)


def check_conversation(
    query: Callable[[str], str | None], write: Callable[[str], None], meter: Bt356x
) -> None:
    assert query("*IDN?") == "HIOKI,BT3562,SIMULATED-5,V2.03"
    for line in SETUP:
        write(line)
    # CONT is still ON (power-on default): :READ? is silent and flags an execution error
    assert query(":READ?") is None
    assert query("*ESR?") == "16"
    write(":INIT:CONT OFF")
    assert query("*ESR?") == "0"
    reply = query(":READ?")
    assert reply is not None
    r_text, v_text = reply.split(",")
    assert meter.cell is not None
    expected_r = float(meter.cell.impedance(1000.0).real)
    # 300 mOhm range: 10 uOhm counts, 2 counts of noise -> within 0.05 mOhm
    assert float(r_text) == pytest.approx(expected_r, abs=5e-5)
    assert len(r_text) == len("   12.34E-3") and r_text.endswith("E-3")
    assert float(v_text) == pytest.approx(meter.cell.terminal_voltage_v, abs=2e-5)
    assert query(":FETC?") == reply


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pyserial_conversation(
    transport: Callable[[Bt356x], AbstractContextManager[dict[str, str]]],
) -> None:
    meter = make_meter()
    with transport(meter) as addr:
        port = serial.serial_for_url(addr["pyserial"], timeout=0.4, baudrate=9600)
        try:

            def write(line: str) -> None:
                port.write(line.encode() + b"\r\n")

            def query(line: str) -> str | None:
                write(line)
                raw = port.read_until(b"\r\n")
                if not raw:
                    return None
                assert raw.endswith(b"\r\n")
                return raw[:-2].decode("ascii")

            check_conversation(query, write, meter)
        finally:
            port.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pyvisa_conversation(
    transport: Callable[[Bt356x], AbstractContextManager[dict[str, str]]],
) -> None:
    meter = make_meter()
    rm = pyvisa.ResourceManager("@py")
    with transport(meter) as addr:
        inst = rm.open_resource(
            addr["visa"], read_termination="\r\n", write_termination="\r\n", timeout=400
        )
        try:

            def write(line: str) -> None:
                inst.write(line)  # type: ignore[attr-defined]

            def query(line: str) -> str | None:
                try:
                    return str(inst.query(line))  # type: ignore[attr-defined]
                except pyvisa.errors.VisaIOError as err:
                    assert err.error_code == pyvisa.constants.StatusCode.error_timeout
                    return None

            check_conversation(query, write, meter)
        finally:
            inst.close()
    rm.close()

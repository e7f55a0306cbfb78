"""Each fault kind and its effect on the wire; schedules are seeded and replayable."""

from __future__ import annotations

import socket
import time

import pytest

from hardware_sim.cell import Cell, CellParams
from hardware_sim.clock import SimClock
from hardware_sim.devices.bt356x import Bt356x
from hardware_sim.devices.bt4560 import Bt4560
from hardware_sim.devices.keithley24xx import Keithley24xx
from hardware_sim.faults import Fault, FaultInjector, FaultKind, random_schedule
from hardware_sim.transports.tcp import TcpServer
from tests.sim.helpers import Wire


def cell() -> Cell:
    p = CellParams(
        "t",
        1.0,
        (0.0, 1.0),
        (3.0, 4.2),
        3.0,
        4.2,
        r0_ohm=0.02,
        r1_ohm=0.0,
        r2_ohm=0.0,
        warburg_ohm=0.0,
    )
    return Cell(p, soc=0.5)


def hioki(clock: SimClock | None = None) -> tuple[Bt356x, FaultInjector, Wire]:
    m = Bt356x(clock or SimClock(manual=True), seed=1, cell=cell())
    m.noise_counts = 0.0
    inj = FaultInjector(seed=1).attach(m)
    w = Wire(m)
    for line in (":INIT:CONT OFF", ":AUT OFF", ":RES:RANG 30E-3", "*CLS"):
        w.send(line)
    return m, inj, w


def test_delay_holds_the_reply_by_simulated_seconds() -> None:
    _, inj, w = hioki()
    inj.inject(Fault(FaultKind.DELAY, delay_s=4.0))
    t0 = w.clock.now()
    assert w.ask("*IDN?").startswith(b"HIOKI")
    assert w.clock.now() - t0 == pytest.approx(4.0)
    t1 = w.clock.now()
    w.ask("*IDN?")  # count 1: the next reply is on time
    assert w.clock.now() == t1


def test_dropped_reply_still_applies_the_command_and_fetch_recovers() -> None:
    m, inj, w = hioki()
    inj.inject(Fault(FaultKind.DROP_REPLY))
    assert w.ask(":READ?") == b""
    assert m.measurements == 1
    assert w.ask(":FETC?") == b"  20.000E-3, 3.60000E+0\r\n"
    assert m.measurements == 1
    assert inj.log[0]["fault"] == "drop_reply"


def test_garbage_is_non_ascii_with_a_terminator() -> None:
    _, inj, w = hioki()
    inj.inject(Fault(FaultKind.GARBAGE, n_bytes=8))
    reply = w.ask("*IDN?")
    assert reply.endswith(b"\r\n") and len(reply) == 10
    assert all(b >= 0x80 for b in reply[:-2])
    with pytest.raises(UnicodeDecodeError):
        reply.decode("ascii")


def test_truncated_line_has_no_terminator() -> None:
    _, inj, w = hioki()
    inj.inject(Fault(FaultKind.TRUNCATE))
    reply = w.ask("*IDN?")
    assert b"HIOKI,BT3562,SIMULATED-1,V2.03\r\n".startswith(reply)
    assert not reply.endswith(b"\n")


def test_busy_refuses_settings_with_execution_error_until_cleared() -> None:
    m, inj, w = hioki()
    inj.inject(Fault(FaultKind.BUSY))
    w.send(":SAMP:RATE FAST")
    assert w.ask("*ESR?") == b"16\r\n"
    assert m.rate == "SLOW"
    inj.clear()
    w.send(":SAMP:RATE FAST")
    assert w.ask("*ESR?") == b"0\r\n"
    assert m.rate == "FAST"


def test_busy_with_a_duration_ends_by_itself() -> None:
    m, inj, w = hioki()
    inj.inject(Fault(FaultKind.BUSY, duration_s=10.0))
    w.send(":SAMP:RATE FAST")
    assert m.rate == "SLOW"
    w.clock.advance(11.0)
    w.send(":SAMP:RATE FAST")
    assert m.rate == "FAST"


def test_over_range_and_no_contact_readings() -> None:
    _, inj, w = hioki()
    inj.inject(Fault(FaultKind.OVER_RANGE))
    assert w.ask(":READ?") == b" 100.000E+7, 3.60000E+0\r\n"
    inj.clear()
    inj.inject(Fault(FaultKind.NO_CONTACT))
    assert w.ask(":READ?") == b"+100.000E+8,+1.00000E+10\r\n"
    inj.clear()
    assert w.ask(":READ?") == b"  20.000E-3, 3.60000E+0\r\n"


def test_no_contact_on_the_impedance_meter_reads_v_above_1e8() -> None:
    m = Bt4560(SimClock(manual=True), seed=1, cell=cell())
    inj = FaultInjector().attach(m)
    w = Wire(m)
    inj.inject(Fault(FaultKind.NO_CONTACT))
    v = float(w.ask("*TRG;*WAI;:FETC?").split(b",")[2])
    assert v > 1e8


def test_over_temperature_heats_the_cell_and_trips_the_sourcemeter() -> None:
    c = cell()
    k = Keithley24xx(SimClock(manual=True), seed=1, cell=c)
    inj = FaultInjector().attach(k)
    w = Wire(k)
    w.send(":OUTP:CURR:SMOD HIMP", b"\n")
    w.send(":OUTP ON", b"\n")
    inj.inject(Fault(FaultKind.OVER_TEMPERATURE, temperature_c=90.0))
    assert c.temperature_c == 90.0
    assert w.ask(":OUTP?", b"\n") == b"0\n"
    assert w.ask(":SYST:ERR?", b"\n").startswith(b"5051,")


def test_interlock_open_fault_refuses_output_and_clears() -> None:
    k = Keithley24xx(SimClock(manual=True), seed=1, cell=cell())
    inj = FaultInjector().attach(k)
    w = Wire(k)
    inj.inject(Fault(FaultKind.INTERLOCK_OPEN))
    assert w.ask(":OUTP:INT:TRIP?", b"\n") == b"0\n"
    w.send(":OUTP ON", b"\n")
    assert w.ask(":SYST:ERR?", b"\n") == b'-200,"Execution error; interlock open"\n'
    inj.clear()
    assert w.ask(":OUTP:INT:TRIP?", b"\n") == b"1\n"


def test_interlock_fault_on_a_meter_is_refused_by_name() -> None:
    m, inj, _ = hioki()
    with pytest.raises(ValueError, match="interlock"):
        inj.inject(Fault(FaultKind.INTERLOCK_OPEN))


def test_scheduled_fault_fires_at_its_simulated_time() -> None:
    m, inj, w = hioki()
    inj.inject(Fault(FaultKind.DROP_REPLY, at_s=100.0))
    assert w.ask("*IDN?") != b""
    w.clock.advance(150.0)
    assert w.ask("*IDN?") == b""
    assert w.ask("*IDN?") != b""


def test_disconnect_over_tcp_then_back_on_the_same_port() -> None:
    m = Bt356x(SimClock(speed=1.0), seed=1, cell=cell())
    inj = FaultInjector().attach(m)
    with TcpServer(m) as server:
        port = server.port
        sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
        inj.inject(Fault(FaultKind.DISCONNECT, offline_s=0.4))
        sock.sendall(b"*IDN?\r\n")
        assert sock.recv(100) == b""  # closed instead of a reply
        sock.close()
        time.sleep(0.1)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        deadline = time.monotonic() + 5.0
        while True:
            try:
                again = socket.create_connection(("127.0.0.1", port), timeout=2.0)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with again:
            again.sendall(b"*IDN?\r\n")
            assert again.recv(100) == b"HIOKI,BT3562,SIMULATED-1,V2.03\r\n"


def test_random_schedule_is_seeded_and_a_run_replays_identically() -> None:
    a = random_schedule(42, duration_s=3600.0, mean_interval_s=300.0)
    assert a == random_schedule(42, duration_s=3600.0, mean_interval_s=300.0)
    assert a != random_schedule(43, duration_s=3600.0, mean_interval_s=300.0)
    assert 3 <= len(a) <= 30

    def run() -> tuple[list[bytes], list[dict[str, object]]]:
        m, inj, w = hioki()
        inj.log.clear()
        for f in a:
            inj.inject(f)
        replies = []
        for _ in range(120):
            w.clock.advance(30.0)
            replies.append(w.ask("*IDN?"))
        return replies, inj.log

    first, second = run(), run()
    assert first == second
    assert any(r == b"" for r in first[0]) or any(not r.endswith(b"\r\n") for r in first[0])


def test_fault_from_json_names_bad_fields() -> None:
    assert Fault.from_dict({"fault": "delay", "delay_s": 2}).delay_s == 2.0
    with pytest.raises(ValueError, match="unknown fault 'melt'"):
        Fault.from_dict({"fault": "melt"})
    with pytest.raises(ValueError, match="colour"):
        Fault.from_dict({"fault": "delay", "colour": 1})

"""The simulated multiplexer: a closed route puts a cabinet channel's cell on the meter's leads."""

from __future__ import annotations

import pytest

from drivers import registry
from drivers.errors import InstrumentReportedError
from hardware_sim.bench import build_bench, load_description
from hardware_sim.cell import Cell as SimCell
from hardware_sim.devices.bt356x import Bt356x
from hardware_sim.devices.neware_bts import NewareCabinet
from hardware_sim.devices.switch import Switch
from hardware_sim.transports.tcp import TcpServer
from tests.sim.helpers import Wire


def demo():
    bench = build_bench(load_description("demo"), seed=7, manual=True)
    meter = bench.device("acir").personality
    cabinet = bench.device("cabinet").personality
    switch = bench.device("acir-mux").personality
    assert isinstance(meter, Bt356x) and isinstance(cabinet, NewareCabinet)
    assert isinstance(switch, Switch)
    meter.noise_counts = 0.0  # compare with the cell model exactly (a count of rounding remains)
    return meter, cabinet, switch


def bench_shelf_cell() -> SimCell:
    """A lot cell no device holds (as the intake station would place it)."""
    bench = build_bench(load_description("demo"), seed=7, manual=True)
    held = {c.cell_id for d in bench.devices for c in d.cells}
    return next(lc.cell for lc in bench.lot if lc.cell_id not in held)


def resistance(wire: Wire) -> float:
    r_text, _v = wire.ask(":READ?").decode().strip().split(",")
    return float(r_text.replace(" ", ""))


def test_route_n_measures_cabinet_channel_n_and_open_all_returns_the_fixture() -> None:
    meter, cabinet, switch = demo()
    mwire, swire = Wire(meter), Wire(switch)
    mwire.send(":INIT:CONT OFF")
    cells = [ch.cell for ch in cabinet.channels.values()]
    fixture = meter.cell
    assert fixture is not None and all(fixture is not c for c in cells)
    for n in (1, 5, 16):
        swire.send("ROUT:OPEN:ALL", b"\n")
        swire.send(f"ROUT:CLOS (@{n})", b"\n")
        assert swire.ask(f"ROUT:CLOS? (@{n})", b"\n") == b"1\n"
        assert swire.ask("ROUT:CLOS? (@1:3)", b"\n").count(b"1") == (1 if n <= 3 else 0)
        expected = float(cells[n - 1].impedance(1000.0).real)  # type: ignore[attr-defined]
        # The 30 mOhm range writes 1 uOhm counts: within one count of the model's Re Z(1 kHz).
        assert resistance(mwire) == pytest.approx(expected, abs=1.5e-6)
    swire.send("ROUT:OPEN:ALL", b"\n")
    assert resistance(mwire) == pytest.approx(float(fixture.impedance(1000.0).real), abs=1.5e-6)
    assert swire.ask("SYST:ERR?", b"\n") == b'+0,"No error"\n'
    # Intake placement (the launcher's ``place``) still reaches the fixture with every route open.
    spare = bench_shelf_cell()
    meter.place_cell(spare)
    assert resistance(mwire) == pytest.approx(float(spare.impedance(1000.0).real), abs=1.5e-6)


def test_out_of_range_route_is_an_error_and_two_closed_routes_read_no_contact() -> None:
    meter, _cabinet, switch = demo()
    mwire, swire = Wire(meter), Wire(switch)
    mwire.send(":INIT:CONT OFF")
    swire.send("ROUT:CLOS (@17)", b"\n")
    assert swire.ask("SYST:ERR?", b"\n") == b'-222,"Data out of range"\n'
    swire.send("ROUT:CLOS (@2,3)", b"\n")
    assert resistance(mwire) == pytest.approx(1e10, rel=1e-9)  # no contact sentinel
    swire.send("*RST", b"\n")
    assert swire.ask("ROUT:CLOS? (@2,3)", b"\n") == b"0,0\n"


def test_a_stuck_relay_reads_open_after_closing() -> None:
    _meter, _cabinet, switch = demo()
    switch.stuck_open.add(4)
    swire = Wire(switch)
    swire.send("ROUT:CLOS (@4)", b"\n")
    assert swire.ask("ROUT:CLOS? (@4)", b"\n") == b"0\n"


def test_the_driver_routes_the_meter_over_tcp_and_refuses_a_stuck_relay() -> None:
    bench = build_bench(load_description("demo"), seed=7)
    switch = bench.device("acir-mux").personality
    meter = bench.device("acir").personality
    cabinet = bench.device("cabinet").personality
    assert isinstance(switch, Switch) and isinstance(meter, Bt356x)
    assert isinstance(cabinet, NewareCabinet)
    switch.stuck_open.add(9)
    with TcpServer(switch) as server:
        driver = registry.open_instrument(
            "scpi-switch", f"tcp://127.0.0.1:{server.port}", {"channels": 16}
        )
        try:
            assert driver.identity.model == "MUX16"
            driver.close_route(6)
            cell6 = list(cabinet.channels.values())[5].cell
            assert meter.routed is not None and meter.routed.cell is cell6
            with pytest.raises(InstrumentReportedError, match="route 9 did not close"):
                driver.close_route(9)
            driver.open_all()
            assert meter.routed is None and not switch.closed
        finally:
            driver.close()

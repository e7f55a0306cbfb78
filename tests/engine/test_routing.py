"""A shared ACIR meter reaches each channel's own cell through the switch (over the simulator).

``python -m hardware_sim --bench demo`` serves the cabinet, the BT3562 and its 16-route
multiplexer over TCP; the engine runs a short recipe with a MeasureACIR step on several channels
at once. Independent reference: the simulator's own cell model, rebuilt in this process from the
same seed (``hardware_sim.bench``), gives each channel's Re Z(1 kHz) before anything ran; a
minute of open circuit moves it far less than the 1 % tolerance.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from drivers.readings import AcirReading
from hardware_sim.bench import build_bench, load_description
from hardware_sim.cell import Cell as SimCell
from hardware_sim.cell import Contact
from hardware_sim.devices.neware_bts import NewareCabinet
from station.clock import ScaledClock
from station.config import BenchConfig, ConfigError, load_preset, loads_bench, preset_text, sim_lot
from station.engine import Engine
from station.events import RunEnded, RunOutcome
from station.recipes import loads_recipe
from station.sequencer import PrestartRefused
from station.simbench import SimulatedBench
from station.storage import Storage

from .conftest import make_cell
from .fakes import FakeConnector, FakeSwitch, bench_models

SEED = 7
RECIPE = loads_recipe(
    """
[recipe]
name = "route-check"
version = 1
description = "ACIR and EIS through the switches, then a short rest"

[[steps]]
type = "measure_acir"

[[steps]]
type = "measure_eis"
frequencies_hz = [1000, 10]

[[steps]]
type = "rest"
duration_s = 30
"""
)


def reference_z_ohm(frequency_hz: float = 1000.0) -> dict[str, float]:
    """Re Z(f) (ohm) of the cell on each cabinet channel, by hw channel address; cells mounted
    badly (reversed, open tab) are left out (the probe refuses them)."""
    bench = build_bench(load_description("demo"), seed=SEED, manual=True)
    cabinet = bench.device("cabinet").personality
    assert isinstance(cabinet, NewareCabinet)
    out = {}
    for channel in cabinet.channels.values():
        cell = channel.cell
        assert isinstance(cell, SimCell)
        if cell.contact is Contact.OK:
            out[channel.pipeline] = float(cell.impedance(frequency_hz).real)
    return out


def test_each_channel_acir_and_eis_are_its_own_cells(tmp_path: Path) -> None:
    reference = reference_z_ohm()
    reference_10hz = reference_z_ohm(10.0)
    with SimulatedBench(speed=600, seed=SEED) as sim:
        by_hw = {c.hw_channel: c.channel_id for c in sim.bench.channels.values()}
        # Four well-mounted cells whose ACIR differ from each other by more than 3 %.
        picked: list[str] = []
        for hw, ohm in sorted(reference.items()):
            if all(abs(ohm / reference[p] - 1) > 0.03 for p in picked):
                picked.append(hw)
        picked = picked[:4]
        assert len(picked) >= 3, reference
        # A channel whose shared meter has no route is refused before anything is sent.
        unrouted = next(hw for hw in sorted(by_hw) if hw not in picked)
        channels = dict(sim.bench.channels)
        channels[by_hw[unrouted]] = replace(channels[by_hw[unrouted]], acir_route=None)
        bench = replace(sim.bench, channels=channels)

        storage = Storage(tmp_path / "route.db", sim.clock)
        engine = Engine(bench, storage, sim.clock)
        ended: dict[str, RunEnded] = {}
        engine.subscribe(
            lambda e: ended.__setitem__(e.run_id, e) if isinstance(e, RunEnded) else None
        )
        try:
            engine.connect()
            lot = {channel: cell for cell, channel in sim_lot(sim.launch, bench) if channel}
            storage.add_cells(list(lot.values()), who="test", why="simulated lot")
            with pytest.raises(PrestartRefused) as refused:
                engine.start_run(by_hw[unrouted], lot[by_hw[unrouted]].cell_id, RECIPE)
            assert "acir_route" in str(refused.value) and "another cell" in str(refused.value)
            runs = {
                hw: engine.start_run(by_hw[hw], lot[by_hw[hw]].cell_id, RECIPE) for hw in picked
            }
            assert engine.wait_idle(120)
        finally:
            engine.shutdown()
            storage.close()

    assert {ended[r].outcome for r in runs.values()} == {RunOutcome.COMPLETED}, ended
    conn = sqlite3.connect(f"file:{tmp_path / 'route.db'}?mode=ro", uri=True)
    try:
        measured = {}
        for hw, run_id in runs.items():
            stored = {
                kind: json.loads(values)
                for kind, values in conn.execute(
                    "SELECT m.kind, m.values_json FROM measurements m JOIN runs r USING (run_pk)"
                    " WHERE r.run_id = ?",
                    (run_id,),
                )
            }
            assert stored["acir"]["status"] == "valid"
            measured[hw] = stored["acir"]["resistance_ohm"]
            # EIS point rows: [f_hz, Re Z, Im Z, V, status]; the BT4560's own noise is 0.05 %.
            (f1k, re1k, *_), (f10, re10, *_) = stored["eis"]["points"]
            assert (f1k, f10) == (1000, 10)
            assert re1k == pytest.approx(reference[hw], rel=0.01)
            assert re10 == pytest.approx(reference_10hz[hw], rel=0.01)
    finally:
        conn.close()
    for hw, ohm in measured.items():
        assert ohm == pytest.approx(reference[hw], rel=0.01), (hw, measured, reference)
    # Each matches its own cell and no other picked one (they differ by more than 3 %).
    for hw, ohm in measured.items():
        for other in picked:
            if other != hw:
                assert ohm != pytest.approx(reference[other], rel=0.01)


def test_route_config_is_validated_naming_the_key() -> None:
    text = preset_text("sim-demo")
    with pytest.raises(ConfigError, match=r"channels\.ch02\.acir_route: unknown switch 'nope'"):
        loads_bench(text.replace('acir_route = "acir-mux:2"', 'acir_route = "nope:2"'))
    with pytest.raises(ConfigError, match=r"channels\.ch02\.acir_route: 'acir-mux' is not"):
        loads_bench(text.replace('acir_route = "acir-mux:2"', 'acir_route = "acir-mux"'))
    with pytest.raises(ConfigError, match=r"channels\.ch02\.acir_route: instrument 'acir' is not"):
        loads_bench(text.replace('acir_route = "acir-mux:2"', 'acir_route = "acir:2"'))
    with pytest.raises(ConfigError, match=r"channels\.ch02\.acir_route: route acir-mux:1 is"):
        loads_bench(text.replace('acir_route = "acir-mux:2"', 'acir_route = "acir-mux:1"'))
    with pytest.raises(
        ConfigError, match=r"channels\.ch02\.acir_route: the channel has no acir_meter"
    ):
        loads_bench(
            text.replace(
                'acir_meter = "acir"\neis_meter = "eis"\nacir_route = "acir-mux:2"',
                'eis_meter = "eis"\nacir_route = "acir-mux:2"',
            )
        )
    routes = loads_bench(text).channels["ch07"]
    assert (str(routes.acir_route), str(routes.eis_route)) == ("acir-mux:7", "eis-mux:7")


def fake_engine(
    tmp_path: Path, bench: BenchConfig | None = None
) -> tuple[Engine, Storage, FakeConnector]:
    clock = ScaledClock(t0_s=1_800_000_000.0, w0_s=time.time(), speed=3600.0)
    storage = Storage(tmp_path / "fake.db", clock)
    connector = FakeConnector(clock, bench_models())
    engine = Engine(bench or load_preset("sim-demo"), storage, clock, connector=connector)
    storage.add_cells([make_cell("A"), make_cell("B")], who="ci")
    engine.connect()
    return engine, storage, connector


def test_the_route_is_closed_exactly_around_each_measurement(tmp_path: Path) -> None:
    engine, storage, connector = fake_engine(tmp_path)
    switch = connector.opened["acir-mux"]
    meter = connector.opened["acir"]
    assert isinstance(switch, FakeSwitch)
    seen: list[int | None] = []
    measure = meter.measure  # type: ignore[attr-defined]

    def measure_seeing_the_route() -> AcirReading:
        seen.append(switch.closed)
        reading: AcirReading = measure()
        return reading

    meter.measure = measure_seeing_the_route  # type: ignore[attr-defined]
    try:
        runs = [engine.start_run("ch03", "A", RECIPE), engine.start_run("ch11", "B", RECIPE)]
        assert engine.wait_idle(60)
        # Intake screening measures the fixture: no route is closed then.
        engine.measure_screen("ch03")
    finally:
        engine.shutdown()
        storage.close()
    assert sorted(seen[:2]) == [3, 11] and seen[2] is None
    assert sorted(switch.log) == sorted(["close 3", "open all", "close 11", "open all"])
    assert [switch.log[i].startswith("close") for i in range(4)] == [True, False, True, False]
    assert len(runs) == 2


def test_a_route_that_does_not_close_faults_the_run_naming_it(tmp_path: Path) -> None:
    engine, storage, connector = fake_engine(tmp_path)
    switch = connector.opened["acir-mux"]
    assert isinstance(switch, FakeSwitch)
    switch.stuck.add(5)
    ended: list[RunEnded] = []
    engine.subscribe(lambda e: ended.append(e) if isinstance(e, RunEnded) else None)
    try:
        engine.start_run("ch05", "A", RECIPE)
        assert engine.wait_idle(60)
    finally:
        engine.shutdown()
        storage.close()
    (end,) = ended
    assert end.outcome is not RunOutcome.COMPLETED
    assert "route acir-mux:5" in end.reason, end.reason
    assert switch.log == ["close 5", "open all"]


def test_a_meter_only_one_channel_uses_needs_no_route(tmp_path: Path) -> None:
    preset = load_preset("sim-demo")
    channels = {
        cid: replace(c, acir_route=None, eis_route=None)
        if cid == "ch03"
        else replace(c, acir_meter=None, eis_meter=None, acir_route=None, eis_route=None)
        for cid, c in preset.channels.items()
    }
    engine, storage, connector = fake_engine(tmp_path, replace(preset, channels=channels))
    ended: list[RunEnded] = []
    engine.subscribe(lambda e: ended.append(e) if isinstance(e, RunEnded) else None)
    try:
        engine.start_run("ch03", "A", RECIPE)
        assert engine.wait_idle(60)
    finally:
        engine.shutdown()
        storage.close()
    assert [e.outcome for e in ended] == [RunOutcome.COMPLETED], ended
    switch = connector.opened["acir-mux"]
    assert isinstance(switch, FakeSwitch) and switch.log == []

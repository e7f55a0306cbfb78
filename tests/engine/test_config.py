"""Bench configuration: the shipped preset loads, the launcher JSON fills it, bad input names
the key and the problem."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from station.config import (
    ConfigError,
    bench_from_sim_launch,
    load_preset,
    loads_bench,
    parse_sim_launch,
    preset_text,
    sim_lot,
)

MINIMAL = """
[station]
name = "b1"
poll_period_s = 0.5

[envelope]
voltage_min_v = 2.0
voltage_max_v = 4.4
current_max_a = 10.0
temperature_min_c = 0.0
temperature_max_c = 60.0
dtdt_max_c_per_min = 2.0

[instruments.k1]
driver = "keithley-2450"
address = "TCPIP::10.0.0.5::5025::SOCKET"
serial = "04512345"
calibration_due = 2027-03-01
settings = { nplc = 1 }

[instruments.acir]
driver = "hioki-bt3562"
address = "COM3"

[sensors.t1]
source = "cycler-aux"

[fixtures.f1]
description = "holder"

[channels.a]
instrument = "k1"
hw_channel = "1"
fixture = "f1"
temperature_sensor = "t1"
acir_meter = "acir"
"""

CABINET_CHANNELS = [f"27-{box}-{n}" for box in (1, 2) for n in range(1, 9)]
LAUNCH = {
    "clock": {"t0_s": 1000.0, "w0_s": 2000.0, "speed": 3600},
    "devices": [
        {"name": "cabinet", "kind": "neware-bts", "tcp_port": 40502, "channels": CABINET_CHANNELS},
        {"name": "acir", "kind": "bt3562", "tcp_port": 40025},
        {"name": "eis", "kind": "bt4560", "tcp_port": 40026},
        {"name": "acir-mux", "kind": "switch", "tcp_port": 40027},
        {"name": "eis-mux", "kind": "switch", "tcp_port": 40028},
    ],
    "cells": [
        {
            "id": "C1",
            "held_by": "cabinet/9",
            "rated": {"chemistry": "nmc", "capacity_ah": 4.8, "v_min_v": 2.5, "v_max_v": 4.2},
        },
        {
            "id": "C3",
            "held_by": "cabinet/27-1-4",
            "rated": {"chemistry": "nmc", "capacity_ah": 4.8},
        },
        {
            "id": "C2",
            "held_by": None,
            "rated": {"chemistry": "lfp", "capacity_ah": 100.0, "v_min_v": 2.0, "v_max_v": 3.65},
        },
    ],
}


def test_minimal_bench_loads_every_field() -> None:
    bench = loads_bench(MINIMAL)
    assert bench.poll_period_s == 0.5
    k1 = bench.instruments["k1"]
    assert (k1.driver, k1.address, k1.serial) == (
        "keithley-2450",
        "TCPIP::10.0.0.5::5025::SOCKET",
        "04512345",
    )
    assert k1.calibration_due == dt.date(2027, 3, 1)
    assert k1.settings == {"nplc": 1}
    channel = bench.channels["a"]
    assert (channel.fixture, channel.temperature_sensor, channel.acir_meter) == ("f1", "t1", "acir")
    assert bench.instrument_of("a") is k1
    assert bench.envelope.voltage_max_v == 4.4


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('name = "b1"', 'name = "b1"\ncolour = "red"', "station: unknown key(s) 'colour'"),
        ("voltage_max_v = 4.4", "voltage_max_v = 1.0", "envelope.voltage_min_v: must be below"),
        (
            "current_max_a = 10.0",
            "current_max_a = -1.0",
            "envelope.current_max_a: must be positive",
        ),
        ('address = "COM3"', 'address = "over there"', "instruments.acir.address"),
        ('instrument = "k1"', 'instrument = "k9"', "channels.a.instrument: unknown instrument"),
        ('fixture = "f1"', 'fixture = "nope"', "channels.a.fixture: unknown fixture"),
        ("calibration_due = 2027-03-01", 'calibration_due = "soon"', "calibration_due"),
        ('driver = "hioki-bt3562"', "", "instruments.acir.driver: required key is missing"),
        ('source = "cycler-aux"', 'source = "guess"', "sensors.t1.source"),
        ("[fixtures.f1]", "[fixtures.f1]\nwidth_mm = 3", "fixtures.f1: unknown key(s) 'width_mm'"),
        ("poll_period_s = 0.5", "poll_period_s = nan", "station.poll_period_s: must be finite"),
        ("[station]", "[stations]\n[station]", "top level: unknown key(s) 'stations'"),
    ],
)
def test_bad_bench_names_the_key(old: str, new: str, message: str) -> None:
    assert old in MINIMAL
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        loads_bench(MINIMAL.replace(old, new, 1))


def test_malformed_toml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="malformed TOML"):
        loads_bench(MINIMAL + "\n[channels.b\n")


def test_shipped_sim_preset_has_16_channels_on_one_cabinet() -> None:
    bench = load_preset("sim-demo")
    assert len(bench.channels) == 16
    assert {c.instrument for c in bench.channels.values()} == {"cabinet"}
    assert len({c.hw_channel for c in bench.channels.values()}) == 16
    assert all(c.temperature_sensor for c in bench.channels.values())
    assert "@sim:cabinet" in preset_text("sim-demo")


def test_launcher_json_fills_sim_addresses_clock_and_lot() -> None:
    bench = bench_from_sim_launch(json.dumps(LAUNCH))
    assert bench.instruments["cabinet"].address == "tcp://127.0.0.1:40502"
    assert bench.instruments["acir"].address == "tcp://127.0.0.1:40025"
    assert bench.instruments["eis"].address == "tcp://127.0.0.1:40026"
    launch = parse_sim_launch(json.dumps(LAUNCH))
    clock = launch.clock()
    assert (clock.t0_s, clock.w0_s, clock.speed) == (1000.0, 2000.0, 3600.0)
    (c1, ch), (c3, ch3), (c2, none) = sim_lot(launch, bench)
    assert (c3.cell_id, ch3) == ("C3", "ch04")  # held_by names the channel address
    assert (c1.cell_id, ch, none) == ("C1", "ch09", None)  # cabinet/9 is 27-2-1, channel ch09
    assert (c1.chemistry, c1.rated_capacity_ah, c1.max_discharge_current_a) == ("NMC", 4.8, 9.6)
    assert c2.voltage_max_v == 3.65


def test_launcher_json_missing_endpoint_names_it() -> None:
    launch = dict(LAUNCH, devices=[{"name": "cabinet", "tcp_port": 1}])
    with pytest.raises(ConfigError, match=r"instruments\.acir\.address: .*'acir'"):
        bench_from_sim_launch(json.dumps(launch))
    other = dict(
        LAUNCH, devices=[dict(LAUNCH["devices"][0], channels=["27-1-1"])] + LAUNCH["devices"][1:]
    )
    with pytest.raises(ConfigError, match=r"channels\.ch02\.hw_channel: '27-1-2'"):
        bench_from_sim_launch(json.dumps(other))
    with pytest.raises(ConfigError, match="malformed"):
        parse_sim_launch("{not json")

"""Bench configuration: which instruments, channels, fixtures and sensors a bench has, and its
safety envelope.

A bench is a TOML file (shipped presets under ``station/data/benches/``)::

    [station]
    name = "bench-1"
    poll_period_s = 1.0          # how often each channel is polled (station clock seconds)

    [envelope]                   # the station's own safety envelope (supervisor-only)
    voltage_min_v = 2.0
    voltage_max_v = 4.4
    current_max_a = 20.0
    temperature_min_c = 0.0
    temperature_max_c = 60.0
    dtdt_max_c_per_min = 2.0

    [instruments.cab1]
    driver = "neware-bts"        # a name from drivers.registry
    address = "TCPIP::10.0.0.5::502::SOCKET"
    serial = "NW-1234"           # optional: identity check at connect
    calibration_due = 2027-06-30 # optional TOML date; overdue instruments refuse runs
    settings = { devid = 27 }    # passed to the driver factory as-is

    [channels.ch01]
    instrument = "cab1"
    hw_channel = "27-1-1"        # the instrument's own channel address
    fixture = "fx01"
    temperature_sensor = "t01"
    acir_meter = "acir"          # optional: an instrument with driver hioki-bt3562 ...
    eis_meter = "eis"            # optional
    acir_route = "acir-mux:1"    # optional: "<switch instrument>:<route>" that puts this
    eis_route = "eis-mux:1"      #   channel's cell on the shared meter's leads

    [instruments.acir-mux]       # the switch a route names
    driver = "scpi-switch"
    address = "TCPIP::10.0.0.9::5025::SOCKET"

    [fixtures.fx01]
    description = "18650 holder, 4-wire"

    [sensors.t01]
    source = "cycler-aux"        # read through the cycler channel's auxiliary input

Every table is checked on load; unknown keys are rejected and every error names the key path and
the problem (:class:`ConfigError`). A meter several channels share reaches each channel's cell
only through its route: the engine refuses such a run without one (no wrong-cell readings).
Simulated presets use ``@sim:<endpoint>`` addresses that
:func:`bench_from_sim_launch` fills from the simulator launcher's JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from station.cells import Cell
from station.clock import ScaledClock

SIM_ADDRESS_PREFIX = "@sim:"
SWITCH_DRIVERS = ("scpi-switch",)
_ROUTE = re.compile(r"^(?P<switch>[^:\s]+):(?P<route>[1-9][0-9]{0,3})$")
SENSOR_SOURCES = ("cycler-aux", "thermometer")
_ADDRESS_PATTERNS = (
    re.compile(r"^COM\d+$", re.IGNORECASE),
    re.compile(r"^/dev/\S+$"),
    re.compile(r"^(TCPIP\d*|ASRL\d*|USB\d*|GPIB\d*)::\S+$", re.IGNORECASE),
    re.compile(r"^socket://[^:/]+:\d+$"),
    re.compile(r"^tcp://[^:/]+:\d+$"),
    re.compile(r"^sim://\S+$"),
    re.compile(r"^@sim:[A-Za-z0-9_.-]+$"),
)


class ConfigError(ValueError):
    """A bench configuration problem; the message names the key path and what is wrong."""


@dataclass(frozen=True)
class SafetyEnvelope:
    """The station's outer limits; every run's limits must lie inside them."""

    voltage_min_v: float
    voltage_max_v: float
    current_max_a: float
    temperature_min_c: float
    temperature_max_c: float
    dtdt_max_c_per_min: float


@dataclass(frozen=True)
class InstrumentConfig:
    name: str
    driver: str
    address: str
    serial: str | None = None
    calibration_due: dt.date | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """A switch route (``switch`` names the switch instrument; ``route`` its channel, 1-based)
    that connects a shared meter's leads to one channel's cell."""

    switch: str
    route: int

    def __str__(self) -> str:
        return f"{self.switch}:{self.route}"


@dataclass(frozen=True)
class ChannelConfig:
    channel_id: str
    instrument: str
    hw_channel: str
    fixture: str | None = None
    temperature_sensor: str | None = None
    acir_meter: str | None = None
    eis_meter: str | None = None
    acir_route: Route | None = None
    eis_route: Route | None = None

    def route_for(self, kind: str) -> Route | None:
        """The route of the ``acir`` or ``eis`` meter to this channel's cell (None: direct)."""
        return self.acir_route if kind == "acir" else self.eis_route


@dataclass(frozen=True)
class FixtureConfig:
    name: str
    description: str = ""


@dataclass(frozen=True)
class SensorConfig:
    name: str
    source: str
    instrument: str | None = None


@dataclass(frozen=True)
class BenchConfig:
    name: str
    poll_period_s: float
    envelope: SafetyEnvelope
    instruments: Mapping[str, InstrumentConfig]
    channels: Mapping[str, ChannelConfig]
    fixtures: Mapping[str, FixtureConfig] = field(default_factory=dict)
    sensors: Mapping[str, SensorConfig] = field(default_factory=dict)

    def instrument_of(self, channel_id: str) -> InstrumentConfig:
        return self.instruments[self.channels[channel_id].instrument]

    def meter_users(self, meter: str) -> list[str]:
        """The channels naming ``meter`` as their ACIR or EIS meter (more than one: shared)."""
        return [
            c.channel_id for c in self.channels.values() if meter in (c.acir_meter, c.eis_meter)
        ]


class _Table:
    """One TOML table being read: typed getters that name the key path, and leftover detection."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a table, got {type(data).__name__}")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str, required: bool) -> Any:
        self.used.add(name)
        if name not in self.data:
            if required:
                raise ConfigError(f"{self.key(name)}: required key is missing")
            return None
        return self.data[name]

    def string(self, name: str, required: bool = True) -> str | None:
        value = self.raw(name, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self.key(name)}: expected a non-empty string, got {value!r}")
        return value

    def number(
        self,
        name: str,
        required: bool = True,
        *,
        positive: bool = False,
        default: float | None = None,
    ) -> float | None:
        value = self.raw(name, required and default is None)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self.key(name)}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{self.key(name)}: must be finite, got {value!r}")
        if positive and value <= 0:
            raise ConfigError(f"{self.key(name)}: must be positive, got {value!r}")
        return float(value)

    def req_number(self, name: str, *, positive: bool = False) -> float:
        value = self.number(name, True, positive=positive)
        assert value is not None
        return value

    def table(self, name: str, required: bool = False) -> _Table:
        value = self.raw(name, required)
        return _Table({} if value is None else value, self.key(name))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            where = self.path or "top level"
            raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")


def _check_address(address: str, key: str) -> str:
    if not any(pattern.match(address) for pattern in _ADDRESS_PATTERNS):
        raise ConfigError(
            f"{key}: address {address!r} is not COMn, /dev/..., a VISA resource "
            "(TCPIP::host::port::SOCKET, ASRL..., USB...), socket://host:port, sim://... "
            "or @sim:name"
        )
    return address


def _parse_instrument(name: str, table: _Table) -> InstrumentConfig:
    driver = table.string("driver")
    address = table.string("address")
    assert driver is not None and address is not None
    _check_address(address, table.key("address"))
    serial = table.string("serial", required=False)
    due = table.raw("calibration_due", required=False)
    if due is not None and not (isinstance(due, dt.date) and not isinstance(due, dt.datetime)):
        raise ConfigError(f"{table.key('calibration_due')}: expected a TOML date, got {due!r}")
    settings = table.raw("settings", required=False)
    if settings is not None and not isinstance(settings, dict):
        raise ConfigError(f"{table.key('settings')}: expected a table, got {settings!r}")
    table.done()
    return InstrumentConfig(name, driver, address, serial, due, dict(settings or {}))


def _parse_route(
    table: _Table, name: str, instruments: Mapping[str, InstrumentConfig]
) -> Route | None:
    text = table.string(name, required=False)
    if text is None:
        return None
    match = _ROUTE.match(text)
    if match is None:
        raise ConfigError(
            f"{table.key(name)}: {text!r} is not '<switch>:<route>' (route 1 to 9999)"
        )
    switch = match["switch"]
    if switch not in instruments:
        raise ConfigError(f"{table.key(name)}: unknown switch {switch!r}")
    if instruments[switch].driver not in SWITCH_DRIVERS:
        raise ConfigError(
            f"{table.key(name)}: instrument {switch!r} is not a switch "
            f"(driver {instruments[switch].driver!r}; switches: {', '.join(SWITCH_DRIVERS)})"
        )
    return Route(switch, int(match["route"]))


def parse_bench(data: Mapping[str, Any], *, source: str = "bench") -> BenchConfig:
    """Validate a decoded bench TOML document and build the :class:`BenchConfig`."""
    top = _Table(dict(data), "")
    station = top.table("station", required=True)
    name = station.string("name")
    poll = station.number("poll_period_s", positive=True, default=1.0)
    station.done()

    env = top.table("envelope", required=True)
    envelope = SafetyEnvelope(
        voltage_min_v=env.req_number("voltage_min_v"),
        voltage_max_v=env.req_number("voltage_max_v"),
        current_max_a=env.req_number("current_max_a", positive=True),
        temperature_min_c=env.req_number("temperature_min_c"),
        temperature_max_c=env.req_number("temperature_max_c"),
        dtdt_max_c_per_min=env.req_number("dtdt_max_c_per_min", positive=True),
    )
    env.done()
    if envelope.voltage_min_v >= envelope.voltage_max_v:
        raise ConfigError("envelope.voltage_min_v: must be below envelope.voltage_max_v")
    if envelope.temperature_min_c >= envelope.temperature_max_c:
        raise ConfigError("envelope.temperature_min_c: must be below envelope.temperature_max_c")

    instruments: dict[str, InstrumentConfig] = {}
    inst_tables = top.table("instruments", required=True)
    for key in inst_tables.data:
        instruments[key] = _parse_instrument(key, inst_tables.table(key))
    inst_tables.done()
    if not instruments:
        raise ConfigError("instruments: at least one instrument is required")

    fixtures: dict[str, FixtureConfig] = {}
    fix_tables = top.table("fixtures")
    for key in fix_tables.data:
        fixture = fix_tables.table(key)
        fixtures[key] = FixtureConfig(key, fixture.string("description", required=False) or "")
        fixture.done()
    fix_tables.done()

    sensors: dict[str, SensorConfig] = {}
    sensor_tables = top.table("sensors")
    for key in sensor_tables.data:
        sensor = sensor_tables.table(key)
        source_kind = sensor.string("source")
        if source_kind not in SENSOR_SOURCES:
            raise ConfigError(
                f"{sensor.key('source')}: {source_kind!r} is not one of {', '.join(SENSOR_SOURCES)}"
            )
        instrument = sensor.string("instrument", required=source_kind == "thermometer")
        if instrument is not None and instrument not in instruments:
            raise ConfigError(f"{sensor.key('instrument')}: unknown instrument {instrument!r}")
        sensor.done()
        assert source_kind is not None
        sensors[key] = SensorConfig(key, source_kind, instrument)
    sensor_tables.done()

    channels: dict[str, ChannelConfig] = {}
    chan_tables = top.table("channels", required=True)
    seen_hw: dict[tuple[str, str], str] = {}
    seen_routes: dict[tuple[str, int], str] = {}
    for key in chan_tables.data:
        chan = chan_tables.table(key)
        instrument = chan.string("instrument")
        hw_channel = chan.string("hw_channel")
        assert instrument is not None and hw_channel is not None
        if instrument not in instruments:
            raise ConfigError(f"{chan.key('instrument')}: unknown instrument {instrument!r}")
        if (instrument, hw_channel) in seen_hw:
            raise ConfigError(
                f"{chan.key('hw_channel')}: {hw_channel!r} on {instrument!r} is already used by "
                f"channel {seen_hw[(instrument, hw_channel)]!r}"
            )
        seen_hw[(instrument, hw_channel)] = key
        fixture_name = chan.string("fixture", required=False)
        if fixture_name is not None and fixture_name not in fixtures:
            raise ConfigError(f"{chan.key('fixture')}: unknown fixture {fixture_name!r}")
        sensor_name = chan.string("temperature_sensor", required=False)
        if sensor_name is not None and sensor_name not in sensors:
            raise ConfigError(f"{chan.key('temperature_sensor')}: unknown sensor {sensor_name!r}")
        meters: dict[str, str | None] = {}
        for meter_key in ("acir_meter", "eis_meter"):
            meter = chan.string(meter_key, required=False)
            if meter is not None and meter not in instruments:
                raise ConfigError(f"{chan.key(meter_key)}: unknown instrument {meter!r}")
            meters[meter_key] = meter
        routes: dict[str, Route | None] = {}
        for kind in ("acir", "eis"):
            route = _parse_route(chan, f"{kind}_route", instruments)
            if route is not None and meters[f"{kind}_meter"] is None:
                raise ConfigError(f"{chan.key(f'{kind}_route')}: the channel has no {kind}_meter")
            if route is not None:
                owner = seen_routes.setdefault((route.switch, route.route), key)
                if owner != key:
                    raise ConfigError(
                        f"{chan.key(f'{kind}_route')}: route {route} is already channel {owner!r}'s"
                    )
            routes[kind] = route
        chan.done()
        channels[key] = ChannelConfig(
            key,
            instrument,
            hw_channel,
            fixture_name,
            sensor_name,
            meters["acir_meter"],
            meters["eis_meter"],
            routes["acir"],
            routes["eis"],
        )
    chan_tables.done()
    if not channels:
        raise ConfigError("channels: at least one channel is required")
    top.done()
    assert name is not None and poll is not None
    return BenchConfig(name, poll, envelope, instruments, channels, fixtures, sensors)


def loads_bench(text: str, *, source: str = "bench") -> BenchConfig:
    """Parse bench TOML text; malformed TOML is reported as a :class:`ConfigError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: malformed TOML: {error}") from error
    return parse_bench(data, source=source)


def load_bench(path: str | Path) -> BenchConfig:
    path = Path(path)
    return loads_bench(path.read_text(encoding="utf-8"), source=str(path))


def preset_text(name: str) -> str:
    """The TOML text of a shipped bench preset (``station/data/benches/<name>.toml``)."""
    resource = resources.files("station") / "data" / "benches" / f"{name}.toml"
    if not resource.is_file():
        raise ConfigError(f"bench preset {name!r} does not exist")
    return resource.read_text(encoding="utf-8")


def load_preset(name: str) -> BenchConfig:
    return loads_bench(preset_text(name), source=f"preset {name}")


@dataclass(frozen=True)
class SimLaunch:
    """What the simulator launcher printed: device name -> address, each device's channel list,
    the simulated lot, and the clock parameters."""

    endpoints: Mapping[str, str]
    t0_s: float
    w0_s: float
    speed: float
    channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cells: tuple[Mapping[str, Any], ...] = ()
    control_port: int | None = None  # the launcher's JSON-lines control endpoint (faults)

    def clock(self) -> ScaledClock:
        return ScaledClock(t0_s=self.t0_s, w0_s=self.w0_s, speed=self.speed)


def parse_sim_launch(text: str) -> SimLaunch:
    """Read the launcher's JSON document (``python -m hardware_sim --bench demo``).

    Devices come as ``{"devices": [{"name", "tcp_port" | "address", "channels"?}, ...]}``
    (each reached over raw TCP on 127.0.0.1) or as ``{"endpoints": {name: address}}``; the clock
    as ``{"clock": {"t0_s", "w0_s", "speed"}}``; the lot as ``{"cells": [...]}``.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"simulator launch JSON is malformed: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError("simulator launch JSON: expected an object")
    endpoints: dict[str, str] = {}
    channels: dict[str, tuple[str, ...]] = {}
    if isinstance(data.get("devices"), list):
        for device in data["devices"]:
            if not isinstance(device, dict) or not isinstance(device.get("name"), str):
                raise ConfigError(f"simulator launch JSON: bad device entry {device!r}")
            name = device["name"]
            if isinstance(device.get("address"), str):
                endpoints[name] = device["address"]
            elif isinstance(device.get("tcp_port"), int):
                endpoints[name] = f"tcp://127.0.0.1:{device['tcp_port']}"
            else:
                raise ConfigError(f"simulator launch JSON: device {name!r} has no address")
            if isinstance(device.get("channels"), list):
                channels[name] = tuple(str(c) for c in device["channels"])
    elif isinstance(data.get("endpoints"), dict):
        for name, address in data["endpoints"].items():
            if not isinstance(address, str):
                raise ConfigError(f"simulator launch JSON: endpoint {name!r} has no address")
            endpoints[str(name)] = address
    else:
        raise ConfigError("simulator launch JSON: neither 'devices' nor 'endpoints' is given")
    clock = data.get("clock")
    if not isinstance(clock, dict):
        raise ConfigError("simulator launch JSON: 'clock' is missing")
    try:
        t0, w0, speed = (float(clock[key]) for key in ("t0_s", "w0_s", "speed"))
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            f"simulator launch JSON: clock needs t0_s, w0_s, speed ({error})"
        ) from error
    cells = data.get("cells") or []
    if not isinstance(cells, list):
        raise ConfigError("simulator launch JSON: 'cells' must be a list")
    control = data.get("control")
    port = control.get("tcp_port") if isinstance(control, dict) else None
    return SimLaunch(
        endpoints,
        t0,
        w0,
        speed,
        channels,
        tuple(c for c in cells if isinstance(c, dict)),
        port if isinstance(port, int) else None,
    )


def bench_from_sim_launch(launch: SimLaunch | str, preset: str = "sim-demo") -> BenchConfig:
    """Fill a simulated preset's ``@sim:<device>`` addresses from the launcher's output, and
    check every configured channel exists on its simulated device."""
    if isinstance(launch, str):
        launch = parse_sim_launch(launch)
    bench = load_preset(preset)
    filled: dict[str, InstrumentConfig] = {}
    for name, instrument in bench.instruments.items():
        address = instrument.address
        if address.startswith(SIM_ADDRESS_PREFIX):
            endpoint = address[len(SIM_ADDRESS_PREFIX) :]
            if endpoint not in launch.endpoints:
                raise ConfigError(
                    f"instruments.{name}.address: the simulator printed no endpoint {endpoint!r} "
                    f"(it has {', '.join(sorted(launch.endpoints)) or 'none'})"
                )
            address = launch.endpoints[endpoint]
            listed = launch.channels.get(endpoint)
            for channel in bench.channels.values():
                if channel.instrument == name and listed and channel.hw_channel not in listed:
                    raise ConfigError(
                        f"channels.{channel.channel_id}.hw_channel: {channel.hw_channel!r} is not "
                        f"a channel of the simulated {endpoint!r}"
                    )
        filled[name] = replace(instrument, address=address)
    return replace(bench, instruments=filled)


def sim_lot(
    launch: SimLaunch, bench: BenchConfig, *, lot: str = "SIM-LOT"
) -> list[tuple[Cell, str | None]]:
    """The simulated lot as cells, each with the bench channel holding it (or None).

    The simulator publishes chemistry, capacity, voltage window and ACIR but no current ratings;
    a simulated cell is rated 1C charge / 2C discharge here (stated, not guessed per cell).
    """
    device_of = {address: device for device, address in launch.endpoints.items()}
    by_hw: dict[tuple[str, str], str] = {}
    for channel in bench.channels.values():
        device = device_of.get(bench.instruments[channel.instrument].address)
        if device is not None:
            by_hw[(device, channel.hw_channel)] = channel.channel_id
    cells: list[tuple[Cell, str | None]] = []
    for entry in launch.cells:
        rated = entry.get("rated") or {}
        capacity = float(rated["capacity_ah"])
        cell = Cell(
            cell_id=str(entry["id"]),
            lot=lot,
            chemistry=str(rated.get("chemistry", "")).upper(),
            rated_capacity_ah=capacity,
            nominal_voltage_v=rated.get("nominal_v"),
            voltage_min_v=rated.get("v_min_v"),
            voltage_max_v=rated.get("v_max_v"),
            max_charge_current_a=capacity,
            max_discharge_current_a=2 * capacity,
            bol_resistance_ohm=rated.get("acir_ohm"),
            manufacturer="hardware_sim",
        )
        channel_id = None
        holder = entry.get("held_by")
        if isinstance(holder, str) and "/" in holder:
            device, where = holder.split("/", 1)
            listed = launch.channels.get(device, ())
            if where in listed:  # "cabinet/27-1-3": the device's own channel address
                channel_id = by_hw.get((device, where))
            elif where.isdigit() and 1 <= int(where) <= len(listed):  # "cabinet/3": 1-based
                channel_id = by_hw.get((device, listed[int(where) - 1]))
        cells.append((cell, channel_id))
    return cells

"""A simulated bench: one clock, one lot of cells, devices built from a description.

A bench description is a mapping (a TOML file or a built-in preset)::

    [bench]
    seed = 7          # default 0; the launcher's --seed overrides it
    speed = 60.0      # default 1.0; the launcher's --speed overrides it

    [lot]
    preset = "retired-ev"     # a population preset (hardware_sim.population.LOT_PRESETS)
    chemistry = "nmc"         # optional: nmc, lfp, na-ion, lto
    cells = 40                # optional: at least as many as the devices take
    defect_share = 0.1        # optional

    [[device]]
    kind = "bt3562"           # a registered device kind (hardware_sim.registry)
    name = "acir"             # unique; defaults to kind-N
    # ...kind-specific keys, e.g. channels = 16 for neware-bts

    [[device]]
    kind = "switch"           # a multiplexer: route n puts cabinet channel n's cell on the
    meter = "acir"            #   meter's leads; meter and cabinet name devices listed before it
    cabinet = "cabinet"

Devices take their cells from the lot in order; cells no device takes stay "on the shelf" (the
intake station places them in a meter's fixture).
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardware_sim.cell import Cell
from hardware_sim.clock import SimClock
from hardware_sim.devices.base import Personality
from hardware_sim.population import LotCell, generate_lot
from hardware_sim.registry import BuildContext, device_factory, device_kinds

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        "bench": {"seed": 7, "speed": 60.0},
        "lot": {"preset": "retired-ev"},
        "device": [
            {"kind": "neware-bts", "name": "cabinet", "channels": 16},
            {"kind": "bt3562", "name": "acir"},
            {"kind": "bt4560", "name": "eis"},
            {"kind": "keithley2450", "name": "smu"},
            # Each meter reaches any cabinet channel's cell through its own multiplexer.
            {"kind": "switch", "name": "acir-mux", "meter": "acir", "cabinet": "cabinet"},
            {"kind": "switch", "name": "eis-mux", "meter": "eis", "cabinet": "cabinet"},
        ],
    },
    "acir": {
        "bench": {"seed": 1, "speed": 1.0},
        "lot": {"preset": "new-cells"},
        "device": [{"kind": "bt3562", "name": "acir"}],
    },
}

LOT_SPARE_CELLS = 8


@dataclass
class BenchDevice:
    """One device of a bench: its name, kind, personality and the spec it was built from."""

    name: str
    kind: str
    personality: Personality
    spec: dict[str, Any]
    cells: list[Cell] = field(default_factory=list)


@dataclass
class Bench:
    clock: SimClock
    seed: int
    lot: list[LotCell]
    devices: list[BenchDevice]
    skipped: list[str] = field(default_factory=list)

    def device(self, name: str) -> BenchDevice:
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(f"no device named {name!r} on this bench")

    def describe_lot(self) -> list[dict[str, Any]]:
        holder: dict[str, str] = {}
        for d in self.devices:
            with d.personality.lock:
                locations = d.personality.cell_locations()
            for cell_id, location in locations.items():
                holder[cell_id] = f"{d.name}/{location}"
        return [
            {
                "id": lc.cell_id,
                "held_by": holder.get(lc.cell_id),
                "rated": dict(lc.cell.rated),
            }
            for lc in self.lot
        ]


def load_description(source: str | Path) -> dict[str, Any]:
    """A preset name or a TOML file path -> description mapping (errors name the problem)."""
    text = str(source)
    if text in PRESETS:
        return _copy(PRESETS[text])
    path = Path(text)
    if not path.is_file():
        known = ", ".join(sorted(PRESETS))
        raise ValueError(f"bench {text!r} is neither a preset ({known}) nor a TOML file")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def build_bench(
    description: Mapping[str, Any],
    *,
    seed: int | None = None,
    speed: float | None = None,
    cells: int | None = None,
    manual: bool = False,
    skip_unknown: bool = False,
) -> Bench:
    """Build every device of ``description`` on one clock and one lot.

    ``seed``/``speed``/``cells`` override the description. ``skip_unknown`` leaves out devices of
    kinds not registered (a preset may name a kind from a branch not merged yet); they are listed
    in ``Bench.skipped``.
    """
    bench_cfg = _table(description, "bench")
    lot_cfg = _table(description, "lot")
    devices_cfg = description.get("device", [])
    if not isinstance(devices_cfg, list) or not all(isinstance(d, dict) for d in devices_cfg):
        raise ValueError("'device' must be an array of tables ([[device]])")
    seed = int(bench_cfg.get("seed", 0)) if seed is None else seed
    speed = float(bench_cfg.get("speed", 1.0)) if speed is None else speed
    clock = SimClock(0.0, speed, manual=manual)

    known = set(device_kinds())
    wanted = []
    skipped = []
    names: set[str] = set()
    for index, spec in enumerate(devices_cfg):
        kind = spec.get("kind")
        if not isinstance(kind, str):
            raise ValueError(f"device #{index + 1}: 'kind' is missing or not a string")
        name = str(spec.get("name", f"{kind}-{index + 1}"))
        if name in names:
            raise ValueError(f"device #{index + 1}: name {name!r} is used twice")
        names.add(name)
        if kind not in known:
            if skip_unknown:
                skipped.append(f"{name} ({kind})")
                continue
            device_factory(kind)  # raises, naming the known kinds
        wanted.append((name, kind, dict(spec)))

    n_cells = cells if cells is not None else lot_cfg.get("cells")
    lot_size = int(n_cells) if n_cells is not None else 64 + LOT_SPARE_CELLS
    lot = generate_lot(
        str(lot_cfg.get("preset", "new-cells")),
        lot_size,
        seed=seed,
        chemistry_name=lot_cfg.get("chemistry"),
        defect_share=lot_cfg.get("defect_share"),
        t_s=clock.now(),
    )
    shelf = list(lot)

    def take(n: int) -> list[Cell]:
        if n > len(shelf):
            raise ValueError(f"the lot has {len(lot)} cells, too few for the devices (--cells)")
        taken = [lc.cell for lc in shelf[:n]]
        del shelf[:n]
        return taken

    devices: list[BenchDevice] = []
    for index, (name, kind, spec) in enumerate(wanted):
        built = {d.name: d.personality for d in devices}
        ctx = BuildContext(clock, seed, take, random.Random(f"{seed}/{name}/{index}"), built=built)
        try:
            personality = device_factory(kind)(spec, ctx)
        except ValueError as err:
            raise ValueError(f"device {name!r} ({kind}): {err}") from None
        devices.append(BenchDevice(name, kind, personality, spec, list(ctx.taken)))
    return Bench(clock, seed, lot, devices, skipped)


def _table(description: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = description.get(key, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"'{key}' must be a table")
    return value


def single_device(
    kind: str, *, seed: int = 0, speed: float = 1.0, manual: bool = False, **spec: Any
) -> Bench:
    """A bench of one device (the ``sim://`` handler and quick tests)."""
    return build_bench(
        {"lot": {"preset": "new-cells", "defect_share": 0.0}, "device": [{"kind": kind, **spec}]},
        seed=seed,
        speed=speed,
        manual=manual,
        cells=int(spec.get("channels", 1)) + 1,
    )

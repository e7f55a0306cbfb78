"""Device kinds: how a bench description's ``[[device]]`` entry becomes a personality.

A device module registers its kind at import time::

    from hardware_sim.registry import BuildContext, register_device_kind

    def build(spec: Mapping[str, Any], ctx: BuildContext) -> Personality:
        cells = ctx.take_cells(int(spec.get("channels", 16)))
        return NewareCabinet(ctx.clock, cells, seed=ctx.seed)

    register_device_kind("neware-bts", build)

Every module in ``hardware_sim.devices`` is imported by :func:`load_device_modules`, so a new
kind needs only its own module. ``spec`` is the device's table from the bench description (its
``kind`` and ``name`` plus kind-specific keys); the factory should raise ``ValueError`` naming
the key for bad values.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hardware_sim.cell import Cell
from hardware_sim.clock import SimClock
from hardware_sim.devices.base import Personality


@dataclass
class BuildContext:
    """What a device factory gets: the bench clock and seed, and the lot to take cells from.

    ``take_cells(n)`` hands out the next ``n`` cells of the bench's lot (each cell goes to one
    device only). ``rng`` is seeded per device, for device-level randomness. ``built`` holds the
    devices listed earlier in the description, by name (a switch wires itself to a meter and a
    cabinet built before it); :meth:`device` looks one up.
    """

    clock: SimClock
    seed: int
    cell_source: Callable[[int], list[Cell]]
    rng: random.Random = field(default_factory=random.Random)
    taken: list[Cell] = field(default_factory=list)
    built: Mapping[str, Personality] = field(default_factory=dict)

    def device(self, name: Any) -> Personality:
        """An earlier device of the bench by name (ValueError naming the known ones if none)."""
        if name not in self.built:
            known = ", ".join(sorted(self.built)) or "none"
            raise ValueError(f"no earlier device named {name!r} (known: {known})")
        return self.built[name]

    def take_cells(self, n: int) -> list[Cell]:
        if n < 0:
            raise ValueError(f"cannot take {n} cells")
        cells = self.cell_source(n)
        self.taken.extend(cells)
        return cells


DeviceFactory = Callable[[Mapping[str, Any], BuildContext], Personality]

_KINDS: dict[str, DeviceFactory] = {}


def register_device_kind(kind: str, factory: DeviceFactory) -> None:
    """Make ``kind`` available to bench descriptions (re-registering the same kind replaces it)."""
    if not kind or kind != kind.strip().lower():
        raise ValueError(f"device kind must be a non-empty lower-case name, got {kind!r}")
    _KINDS[kind] = factory


def device_factory(kind: str) -> DeviceFactory:
    load_device_modules()
    try:
        return _KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(_KINDS)) or "none"
        raise ValueError(f"unknown device kind {kind!r} (known: {known})") from None


def device_kinds() -> list[str]:
    load_device_modules()
    return sorted(_KINDS)


def load_device_modules() -> None:
    """Import every module of ``hardware_sim.devices`` so each registers its kind."""
    package = importlib.import_module("hardware_sim.devices")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"hardware_sim.devices.{info.name}")

"""The exchange models the station needs at run time, shipped in the package (``data/``; where
each file comes from and its CC BY 4.0 attribution: ``data/SOURCES.md``).

The files are byte-identical copies of ``shared/passport-models`` (a test checks it) and are read
through :mod:`importlib.resources`, so an installed station needs no checkout of that folder.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from jsonschema import Draft4Validator, FormatChecker

from station.passport.aas import AasTemplates

DATA: Traversable = files("station.passport") / "data"

SCHEMA_FILES: dict[str, str] = {
    "idta-02035-5": "idta-samm/io.admin-shell.idta.batterypass.product_condition/1.0.1/gen/"
    "ProductConditionBattery-schema.json",
    "idta-02035-4": "idta-samm/io.admin-shell.idta.batterypass.technical_data/1.0.1/gen/"
    "TechnicalDataBattery-schema.json",
    "idta-02035-1": "idta-samm/io.admin-shell.idta.batterypass.digital_nameplate/1.0.0/gen/"
    "NameplateBattery-schema.json",
    "catenax-6.1.0-full": "catenax/io.catenax.battery.battery_pass/6.1.0/gen/"
    "BatteryPass-schema.json",
}
"""Export target -> schema file under ``data/``. The Catena-X ``performance.dynamic`` block is
checked against the ``DynamicPerformanceCharacteristic`` component of the full schema."""

AAS_TEMPLATE_DIR = "idta-aas"


def resource(relative: str) -> Traversable:
    """A shipped model file by its path under ``data/`` (``/``-separated)."""
    node = DATA
    for part in relative.split("/"):
        node = node / part
    return node


@cache
def schema(target: str) -> dict[str, Any]:
    """The draft-04 JSON schema of an export target (see :data:`SCHEMA_FILES`)."""
    if target == "catenax-6.1.0-performance-dynamic":
        full = schema("catenax-6.1.0-full")
        return {
            "$schema": full["$schema"],
            "$ref": "#/components/schemas/DynamicPerformanceCharacteristic",
            "components": full["components"],
        }
    if target not in SCHEMA_FILES:
        raise KeyError(f"no shipped schema for export target {target!r}")
    loaded: dict[str, Any] = json.loads(resource(SCHEMA_FILES[target]).read_text(encoding="utf-8"))
    return loaded


def schema_errors(target: str, payload: Any) -> list[str]:
    """Every way ``payload`` breaks the target's schema, as ``json/pointer: message`` lines
    (empty when it validates)."""
    validator = Draft4Validator(schema(target), format_checker=FormatChecker())
    return sorted(
        f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(payload)
    )


def aas_templates() -> AasTemplates:
    """The IDTA 02035 AAS submodel templates shipped with the station."""
    return AasTemplates.in_dir(resource(AAS_TEMPLATE_DIR))

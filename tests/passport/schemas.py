"""The shipped draft-04 schemas of shared/passport-models, loaded by path (SOURCES.md there)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft4Validator, FormatChecker

from tests.conftest import SHARED_DIR

MODELS = SHARED_DIR / "passport-models"
SCHEMA_PATHS = {
    "idta-02035-5": MODELS
    / "idta-samm/io.admin-shell.idta.batterypass.product_condition/1.0.1/gen"
    / "ProductConditionBattery-schema.json",
    "idta-02035-4": MODELS
    / "idta-samm/io.admin-shell.idta.batterypass.technical_data/1.0.1/gen"
    / "TechnicalDataBattery-schema.json",
    "idta-02035-1": MODELS
    / "idta-samm/io.admin-shell.idta.batterypass.digital_nameplate/1.0.0/gen"
    / "NameplateBattery-schema.json",
    "catenax-6.1.0-full": MODELS
    / "catenax/io.catenax.battery.battery_pass/6.1.0/gen/BatteryPass-schema.json",
}
CX_EXAMPLE = MODELS / "catenax/io.catenax.battery.battery_pass/6.1.0/gen/BatteryPass.json"


@cache
def schema(target: str) -> dict[str, Any]:
    if target == "catenax-6.1.0-performance-dynamic":
        full = schema("catenax-6.1.0-full")
        return {
            "$schema": full["$schema"],
            "$ref": "#/components/schemas/DynamicPerformanceCharacteristic",
            "components": full["components"],
        }
    return json.loads(SCHEMA_PATHS[target].read_text(encoding="utf-8"))


def validator(target: str) -> Draft4Validator:
    return Draft4Validator(schema(target), format_checker=FormatChecker())


def errors(target: str, payload: Any) -> list[str]:
    return sorted(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(target).iter_errors(payload)
    )

"""Schema checks of the exports against the models the station ships (station/passport/data;
tests/passport/test_models.py checks they are the shared/passport-models files unchanged), plus
the shared folder's upstream example payload."""

from __future__ import annotations

from typing import Any

from station.passport.models import SCHEMA_FILES, schema, schema_errors
from tests.conftest import SHARED_DIR

MODELS = SHARED_DIR / "passport-models"
SCHEMA_PATHS = dict(SCHEMA_FILES)
CX_EXAMPLE = MODELS / "catenax/io.catenax.battery.battery_pass/6.1.0/gen/BatteryPass.json"


def errors(target: str, payload: Any) -> list[str]:
    return schema_errors(target, payload)


__all__ = ["CX_EXAMPLE", "MODELS", "SCHEMA_PATHS", "errors", "schema"]

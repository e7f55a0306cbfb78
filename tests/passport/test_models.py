"""The exchange models shipped in the package are the shared copies, unchanged, and the station
finds them without a checkout of shared/."""

from __future__ import annotations

import pytest

from station.passport import models
from tests.conftest import SHARED_DIR

SHARED_MODELS = SHARED_DIR / "passport-models"
SHIPPED = [
    *models.SCHEMA_FILES.values(),
    *(
        f"{models.AAS_TEMPLATE_DIR}/{path}"
        for path in (
            "02035-5_ProductCondition/1.0.1/IDTA_02035-5_DBP-Part-5_ProductCondition.json",
            "02035-4_TechnicalData/1.0.1/IDTA_02035-4_DBP-Part-4_TechnicalData.json",
            "02035-1_DigitalNameplate/1.0/IDTA_02035-1_DBP-Part-1_DigitalNameplate.json",
        )
    ),
]


@pytest.mark.skipif(
    not SHARED_MODELS.is_dir(), reason=f"{SHARED_MODELS} is absent (a clone without shared/)"
)
@pytest.mark.parametrize("relative", SHIPPED)
def test_shipped_model_is_byte_identical_to_the_shared_copy(relative: str) -> None:
    assert models.resource(relative).read_bytes() == (SHARED_MODELS / relative).read_bytes()


def test_every_shipped_file_is_listed_in_sources() -> None:
    sources = models.resource("SOURCES.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in sources
    for relative in SHIPPED:
        assert f"`{relative}`" in sources, relative


def test_aas_templates_resolve_to_shipped_files() -> None:
    templates = models.aas_templates()
    for template in (templates.product_condition, templates.technical_data, templates.nameplate):
        assert template.is_file()
        assert template.name.startswith("IDTA_02035-")


def test_schema_errors_name_the_pointer() -> None:
    assert models.schema_errors("idta-02035-5", {"remainingEnergy": "x"})  # not an object
    errors = models.schema_errors("catenax-6.1.0-performance-dynamic", {"stateOfCharge": 1})
    assert errors and all(e.startswith("/") for e in errors)
    with pytest.raises(KeyError, match="no shipped schema"):
        models.schema("no-such-target")

"""AAS JSON and AASX built from the IDTA 02035 templates: read back strictly, values from the record
only, units stated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from basyx.aas import model
from basyx.aas.adapter.aasx import AASXReader, DictSupplementaryFileContainer
from basyx.aas.adapter.json import read_aas_json_file

from station.passport.aas import build_environment, write_aas_json, write_aasx
from station.passport.models import aas_templates
from station.passport.record import BatteryStatus
from tests.passport.batch import GradedCell, graded_cell

TEMPLATES = aas_templates()


@pytest.fixture(scope="module")
def cell() -> GradedCell:
    return graded_cell(1)


def _elements(submodel: model.Submodel) -> dict[str, Any]:
    """Every element keyed by its idShort path; list items as ``name[i]``."""
    out: dict[str, Any] = {}

    def walk(elements: Any, prefix: str) -> None:
        for index, element in enumerate(elements):
            name = element.id_short if element.id_short else f"[{index}]"
            path = f"{prefix}{'/' if prefix and not name.startswith('[') else ''}{name}"
            out[path] = element
            if isinstance(element, model.SubmodelElementCollection | model.SubmodelElementList):
                walk(element.value, path)

    walk(submodel.submodel_element, "")
    return out


def _submodels(store: model.DictIdentifiableStore[model.Identifiable]) -> dict[str, model.Submodel]:
    return {obj.id_short: obj for obj in store if isinstance(obj, model.Submodel)}


def test_aas_json_reads_back_strictly_with_the_record_values(
    cell: GradedCell, tmp_path: Path
) -> None:
    path = write_aas_json(cell.record, TEMPLATES, tmp_path / "passport.aas.json")
    with path.open(encoding="utf-8") as handle:
        store = read_aas_json_file(handle, failsafe=False)
    record = cell.record
    submodels = _submodels(store)
    assert set(submodels) == {"ProductCondition", "TechnicalData", "BatteryNameplate"}
    p5 = _elements(submodels["ProductCondition"])
    capacity = p5["RemainingCapacity/RemainingCapacityValue"]
    assert capacity.value == pytest.approx(record.number("6.7.2.3"), rel=1e-12)
    assert {e.name: e.value for e in capacity.extension} == {
        "station:unit": "Ah",
        "station:source": "measured",
    }
    assert p5["NumberOfFullCycles/NumberOfFullCyclesValue"].value == record.number("6.7.6.4")
    assert len(submodels["ProductCondition"].extension) == 1
    events = p5["NegativeEvents"].value
    assert [
        e.value
        for e in _elements(submodels["ProductCondition"]).values()
        if getattr(e, "id_short", "") == "NegativeEventValue"
    ] == list(
        record.require("6.7.8.5").value  # type: ignore[arg-type]
    )
    assert len(events) == len(record.require("6.7.8.5").value)  # type: ignore[arg-type]

    p4 = _elements(submodels["TechnicalData"])
    assert p4[
        "TechnicalPropertyAreas/Resistance/InitialInternalResistanceOnBatteryCellLevel"
    ].value == pytest.approx(record.number("6.7.5.2#method=dcir"))
    # Values the record does not hold are cleared, not left at the template's example.
    assert (
        p4["TechnicalPropertyAreas/Resistance/InitialInternalResistanceOnBatteryPackLevel"].value
        is None
    )
    assert len(p4["TechnicalPropertyAreas/PowerCapability/OriginalPowerCapability"].value) == 2

    p1 = _elements(submodels["BatteryNameplate"])
    assert p1["SerialNumber"].value == record.cell.serial_number
    assert p1["LifeCycleStage"].value == "repurposed"
    assert dict(p1["AddressInformation/CityTown"].value) == {"en": "Stuttgart"}

    shells = [obj for obj in store if isinstance(obj, model.AssetAdministrationShell)]
    assert len(shells) == 1
    assert shells[0].asset_information.global_asset_id == record.cell.passport_id
    assert {e.name: e.value for e in shells[0].extension} == {
        "station:original-passport": record.original_passport_id
    }
    assert len(shells[0].submodel) == 3

    # The 1.0.1 template's property points at ...:1.0.1#remainingCapacityValue while its concept
    # description is ...:1.0.0#remainingCapacityValue; match by idShort.
    concept = next(
        cd
        for cd in store
        if isinstance(cd, model.ConceptDescription) and cd.id_short == "remainingCapacityValue"
    )
    units = [s.data_specification_content.unit for s in concept.embedded_data_specifications]
    assert units == ["Ah"]


def test_no_template_example_value_leaks_into_the_passport(
    cell: GradedCell, tmp_path: Path
) -> None:
    text = write_aas_json(cell.record, TEMPLATES, tmp_path / "p.aas.json").read_text()
    data = json.loads(text)
    values = json.dumps(data["submodels"])
    # Example values printed in the shipped templates.
    for example in (
        "Muster AG",
        "A12345-X75EN",
        "XF90-884",
        "987654321",
        "KEMA99IECEX1105/128",
        "overcharged",
        "Example Company",
    ):
        assert example not in values


def test_status_spelling_matches_the_template_value_list(cell: GradedCell) -> None:
    with TEMPLATES.nameplate.open(encoding="utf-8-sig") as handle:
        data = json.load(handle)
    allowed = set()
    for cd in data["conceptDescriptions"]:
        for spec in cd.get("embeddedDataSpecifications", []):
            content = spec["dataSpecificationContent"]
            if content.get("shortName", [{}])[0].get("text") == "batteryStatus":
                allowed = {pair["value"] for pair in content["valueList"]["valueReferencePairs"]}
    assert allowed == {"original", "repurposed", "re-used", "remanufactured", "waste"}
    from dataclasses import replace

    for status in BatteryStatus:
        store = build_environment(replace(cell.record, status=status), TEMPLATES)
        p1 = _elements(_submodels(store)["BatteryNameplate"])
        assert p1["LifeCycleStage"].value in allowed


def test_aasx_package_reads_back(cell: GradedCell, tmp_path: Path) -> None:
    path = write_aasx(cell.record, TEMPLATES, tmp_path / "passport.aasx")
    store: model.DictIdentifiableStore[model.Identifiable] = model.DictIdentifiableStore()
    with AASXReader(str(path)) as reader:
        reader.read_into(store, DictSupplementaryFileContainer())
    p5 = _elements(_submodels(store)["ProductCondition"])
    assert p5["RemainingCapacity/RemainingCapacityValue"].value == pytest.approx(
        cell.record.number("6.7.2.3"), rel=1e-12
    )
    assert not list(tmp_path.glob("*.part"))

"""Every exported payload validates against the shipped draft-04 schema; broken ones do not."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from station.passport.exports import (
    P5_URN,
    STATUS_SPELLING,
    all_exports,
    catenax_dynamic,
    catenax_full,
    idta_nameplate,
    idta_product_condition,
)
from station.passport.record import BatteryStatus, RecordError
from tests.passport.batch import GradedCell, graded_batch
from tests.passport.schemas import CX_EXAMPLE, errors, schema

TARGETS = (
    "idta-02035-5",
    "idta-02035-4",
    "idta-02035-1",
    "catenax-6.1.0-performance-dynamic",
)


@pytest.fixture(scope="module")
def batch() -> list[GradedCell]:
    return graded_batch(12)


@pytest.fixture(scope="module")
def upstream() -> dict[str, Any]:
    return json.loads(CX_EXAMPLE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("target", TARGETS)
def test_every_payload_of_the_batch_validates(batch: list[GradedCell], target: str) -> None:
    statuses = set()
    for cell in batch:
        export = all_exports(cell.record)[target]
        assert export["metadata"]["target"] == target
        assert errors(target, export["payload"]) == []
        statuses.add(cell.record.status)
    # The batch holds passes (repurposed) and rejects (waste).
    assert statuses == {BatteryStatus.REPURPOSED, BatteryStatus.WASTE}


def test_full_catenax_payload_merged_with_upstream_validates(
    batch: list[GradedCell], upstream: dict[str, Any]
) -> None:
    for cell in batch:
        export = catenax_full(cell.record, upstream)
        payload = export["payload"]
        assert errors("catenax-6.1.0-full", payload) == []
        assert payload["sustainability"]["status"] == cell.record.status.value
        assert payload["performance"]["dynamic"]["capacity"]["capacity"]["value"] == (
            cell.record.number("6.7.2.3")
        )
        # Sections the station cannot supply come from the upstream passport unchanged.
        assert payload["materials"] == upstream["materials"]
        assert payload["performance"]["rated"] == upstream["performance"]["rated"]
    assert upstream["sustainability"]["status"] != "waste"  # the input was not modified


def _drop(payload: dict[str, Any], pointer: str) -> dict[str, Any]:
    broken = copy.deepcopy(payload)
    *parents, last = pointer.strip("/").split("/")
    node = broken
    for part in parents:
        node = node[part]
    del node[last]
    return broken


@pytest.mark.parametrize(
    ("target", "pointer"),
    [
        ("idta-02035-5", "/NumberOfFullCycles"),
        ("idta-02035-5", "/StateOfCharge/LastUpdate"),
        ("idta-02035-5", "/InformationOnAccidents"),
        ("idta-02035-4", "/TechnicalPropertyAreas/CapacityEnergyVoltage/RatedCapacity"),
        ("idta-02035-4", "/GeneralInformation/BatteryMass"),
        ("idta-02035-1", "/LifeCycleStage"),
        ("idta-02035-1", "/AddressInformation/ZipCode"),
        ("catenax-6.1.0-performance-dynamic", "/capacity/fade"),
        ("catenax-6.1.0-performance-dynamic", "/resistance/remaining/pack"),
    ],
)
def test_dropping_a_required_field_fails_validation(
    batch: list[GradedCell], target: str, pointer: str
) -> None:
    payload = all_exports(batch[0].record)[target]["payload"]
    assert errors(target, payload) == []
    problems = errors(target, _drop(payload, pointer))
    missing = pointer.rsplit("/", 1)[1]
    assert any(f"'{missing}' is a required property" in p for p in problems), problems


def test_wrong_types_and_spellings_fail_validation(batch: list[GradedCell]) -> None:
    p5 = idta_product_condition(batch[0].record)["payload"]
    p5["RemainingCapacity"]["RemainingCapacityValue"] = "3.9 Ah"
    assert any("is not of type 'number'" in p for p in errors("idta-02035-5", p5))
    p1 = idta_nameplate(batch[0].record)["payload"]
    p1["LifeCycleStage"] = "reused"
    assert any("is not one of" in p for p in errors("idta-02035-1", p1))
    p5 = idta_product_condition(batch[0].record)["payload"]
    p5["StateOfCharge"]["LastUpdate"] = "20/11/2026"
    assert any("does not match" in p for p in errors("idta-02035-5", p5))


@pytest.mark.parametrize(
    ("target", "enum_path"),
    [
        ("idta-02035-1", "BatteryStatusEnumeration"),
        ("catenax-6.1.0-full", "StateEnumeration"),
    ],
)
def test_status_spelling_matches_each_model(target: str, enum_path: str) -> None:
    allowed = schema(target)["components"]["schemas"][enum_path]["enum"]
    spelled = STATUS_SPELLING[target.replace("-full", "")]
    assert sorted(spelled.values()) == sorted(allowed)
    assert spelled[BatteryStatus.REUSED] == "re-used"
    assert STATUS_SPELLING["batterypass-1.2.0"][BatteryStatus.REUSED] == "Reused"


@pytest.mark.parametrize("status", list(BatteryStatus))
def test_each_status_exports_and_validates(batch: list[GradedCell], status: BatteryStatus) -> None:
    record = replace(batch[1].record, status=status)
    assert errors("idta-02035-1", idta_nameplate(record)["payload"]) == []


def test_metadata_states_units_sources_and_workarounds(batch: list[GradedCell]) -> None:
    record = batch[0].record
    export = idta_product_condition(record)
    meta = export["metadata"]
    assert meta["aspect_model_urn"] == P5_URN
    assert meta["aspect_model_urn"].endswith("product_condition:1.0.2#ProductCondition")
    assert meta["units"]["/RemainingCapacity/RemainingCapacityValue"] == "Ah"
    assert (
        meta["units"]["/RemainingPowerCapability/RemainingPowerCapabilityValue/PowerCapabilityAt"]
        == "W"
    )
    assert meta["sources"]["/NumberOfFullCycles/NumberOfFullCyclesValue"] == "bms_readout"
    assert meta["sources"]["/RemainingCapacity/RemainingCapacityValue"] == "measured"
    assert any("Ah" in w and "1.0.2" in w for w in meta["workarounds"])
    assert any("bench-derived" in w for w in meta["workarounds"])
    assert meta["original_passport_id"] == record.original_passport_id
    payload = export["payload"]
    assert payload["RemainingCapacity"]["RemainingCapacityValue"] == record.number("6.7.2.3")
    assert payload["RemainingPowerCapability"]["RemainingPowerCapabilityValue"]["AtSoC"] == 20.0
    # Lifetime throughput from the BMS plus this test's own Ah (the read-out predates the test).
    assert payload["CapacityThroughput"]["CapacityThroughputValue"] == pytest.approx(
        record.number("6.7.6.8") + record.number("6.7.6.8#scope=station-test"), rel=1e-12
    )
    cx = catenax_dynamic(record)["metadata"]
    assert set(cx["power_points_w"]) == {"soc=20", "soc=80"}


def test_missing_required_values_are_named(batch: list[GradedCell]) -> None:
    record = batch[0].record
    stripped = replace(
        record, values=tuple(v for v in record.values if v.clause not in ("6.7.6.4", "6.7.2.8"))
    )
    with pytest.raises(RecordError, match=r"6.7.2.8 \(state of charge\), 6.7.6.4 \(number of"):
        idta_product_condition(stripped)
    with pytest.raises(RecordError, match="performance.dynamic needs .*6.7.6.4"):
        catenax_dynamic(stripped)
    with pytest.raises(RecordError, match="needs 'performance' and 'sustainability'"):
        catenax_full(record, {"materials": {}})

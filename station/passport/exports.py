"""Exchange payloads built from a :class:`GradingRecord`.

- IDTA-02035 SAMM JSON: Part 5 Product Condition, Part 4 Technical Data, Part 1 Nameplate.
- Catena-X ``io.catenax.battery.battery_pass`` 6.1.0: the ``performance.dynamic`` block, and a
  full payload merged into an upstream passport.

Every export is an envelope ``{"metadata": {...}, "payload": {...}}``. ``payload`` is exactly what
the model's JSON schema describes; ``metadata`` names the aspect model URN, the units of every
number (the schemas carry none), the source of every value, and each deliberate deviation from a
defective upstream model (passport.md §4.3, §4.4). Timestamps are the time of the underlying
observation, not the export time (passport.md §3 recipe 8).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from station.passport.record import (
    CLAUSES,
    BatteryStatus,
    GradingRecord,
    PassportValue,
    RecordError,
    format_utc,
)

EXPORT_FORMAT = "station-export/1"

P5_URN = "urn:samm:io.admin-shell.idta.batterypass.product_condition:1.0.2#ProductCondition"
P5_SCHEMA_URN = "urn:samm:io.admin-shell.idta.batterypass.product_condition:1.0.1#ProductCondition"
P4_URN = "urn:samm:io.admin-shell.idta.batterypass.technical_data:1.0.1#TechnicalData"
P1_URN = "urn:samm:io.admin-shell.idta.batterypass.digital_nameplate:1.0.0#BatteryNameplate"
CX_URN = "urn:samm:io.catenax.battery.battery_pass:6.1.0#BatteryPass"

P5_POWER_SOC = 20
"""IDTA Part 5 holds one remaining-power point; 20 % SoC is the limiting case (passport.md §7).
Both points stay in the record and in the Catena-X metadata."""

STATUS_SPELLING: Mapping[str, Mapping[BatteryStatus, str]] = {
    # Values of BatteryStatusEnumeration in NameplateBattery-schema.json 1.0.0 (the enum's
    # description text says 'reused', the SAMM value is 're-used').
    "idta-02035-1": {s: s.value for s in BatteryStatus},
    # StateEnumeration of io.catenax.battery.battery_pass 6.1.0.
    "catenax-6.1.0": {s: s.value for s in BatteryStatus},
    # Battery Pass GeneralProductInformation 1.2.0 (capitalised), for reference only.
    "batterypass-1.2.0": {
        BatteryStatus.ORIGINAL: "Original",
        BatteryStatus.REPURPOSED: "Repurposed",
        BatteryStatus.REUSED: "Reused",
        BatteryStatus.REMANUFACTURED: "Remanufactured",
        BatteryStatus.WASTE: "Waste",
    },
}


class _Payload:
    """Builds a payload while recording the unit and source of every value it places."""

    def __init__(self, record: GradingRecord) -> None:
        self.record = record
        self.units: dict[str, str] = {}
        self.sources: dict[str, str] = {}
        self.missing: list[str] = []

    def value(self, key: str) -> PassportValue | None:
        value = self.record.get(key)
        if value is None:
            self.missing.append(key)
        return value

    def note(self, path: str, value: PassportValue) -> None:
        self.units[path] = value.unit
        self.sources[path] = value.source.value

    def fail_if_missing(self, target: str) -> None:
        if self.missing:
            names = ", ".join(f"{k} ({CLAUSES[k.split('#')[0]].name})" for k in self.missing)
            raise RecordError(
                f"record {self.record.record_id}: {target} needs values missing from the "
                f"record: {names}"
            )


def _envelope(
    record: GradingRecord,
    target: str,
    urn: str,
    payload: dict[str, Any],
    builder: _Payload,
    workarounds: list[str],
    **extra: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "target": target,
        "aspect_model_urn": urn,
        "record_id": record.record_id,
        "test_id": record.test_id,
        "passport_id": record.cell.passport_id,
        "original_passport_id": record.original_passport_id,
        "battery_status": record.status.value,
        "station_id": record.station_id,
        "raw_data_sha256": record.raw_data_sha256,
        "grading_profile": f"{record.grade.profile_name} {record.grade.profile_version}",
        "units": dict(sorted(builder.units.items())),
        "sources": dict(sorted(builder.sources.items())),
        "workarounds": workarounds,
    }
    if any(instrument.simulated for instrument in record.instruments):
        # Data from a simulated bench must never pass for a production passport.
        metadata["simulated"] = True
    metadata.update(extra)
    return {"metadata": metadata, "payload": payload}


def _dynamic(b: _Payload, path: str, key: str, value_name: str) -> dict[str, Any] | None:
    value = b.value(key)
    if value is None:
        return None
    b.note(f"{path}/{value_name}", value)
    return {value_name: value.value, "LastUpdate": format_utc(value.observed_at)}


def _throughput(record: GradingRecord, clause: str) -> tuple[PassportValue | None, float | None]:
    """The lifetime throughput (BMS or earlier passport) plus the station's own test share."""
    lifetime = record.get(clause)
    station = record.get(f"{clause}#scope=station-test")
    if lifetime is None:
        return None, None
    total = float(lifetime.value)  # type: ignore[arg-type]
    if station is not None and station.observed_at > lifetime.observed_at:
        total += float(station.value)  # type: ignore[arg-type]
    return lifetime, total


def idta_product_condition(record: GradingRecord) -> dict[str, Any]:
    """IDTA-02035 Part 5 Product Condition payload (the dynamic state-of-health values)."""
    b = _Payload(record)
    payload: dict[str, Any] = {}
    workarounds = [
        "RemainingCapacity.RemainingCapacityValue is in Ah as product_condition 1.0.2 defines it; "
        "the 1.0.1 model (whose schema validates this payload; the structure is identical) "
        "types it kWh",
        "RemainingPowerCapability.RemainingPowerCapabilityValue.PowerCapabilityAt is in W "
        "(DIN DKE SPEC 99100 6.7.3.3); the model types it percent in 1.0.1 and 1.0.2",
        "CurrentSelfDischargingRate is in %/month (DIN 6.7.4.7); the model types it percent",
        f"RemainingPowerCapability holds one SoC point ({P5_POWER_SOC} %, the limiting case); "
        "the record keeps 20 % and 80 %",
    ]
    for entity, key, name in (
        ("RemainingCapacity", "6.7.2.3", "RemainingCapacityValue"),
        ("RemainingEnergy", "6.7.2.6", "RemainingEnergyValue"),
        ("StateOfCertifiedEnergy", "6.7.2.7", "StateOfCertifiedEnergyValue"),
        (
            "RemainingRoundTripEnergyEfficiency",
            "6.7.4.4",
            "RemainingRoundTripEnergyEfficiencyValue",
        ),
        ("CurrentSelfDischargingRate", "6.7.4.7", "CurrentSelfDischargingRateValue"),
        ("EvolutionOfSelfDischarge", "6.7.4.8", "EvolutionOfSelfDischargeValue"),
        ("StateOfCharge", "6.7.2.8", "StateOfChargeValue"),
        ("NumberOfFullCycles", "6.7.6.4", "NumberOfFullCyclesValue"),
    ):
        block = _dynamic(b, f"/{entity}", key, name)
        if block is not None:
            payload[entity] = block
    soce = record.get("6.7.2.7")
    if soce is not None and soce.source.value == "derived":
        workarounds.append(
            "StateOfCertifiedEnergy is bench-derived (measured energy / certified usable "
            "energy), not the UN GTR No 22 vehicle procedure"
        )
    for entity, clause, name in (
        ("EnergyThroughput", "6.7.6.7", "EnergyThroughputValue"),
        ("CapacityThroughput", "6.7.6.8", "CapacityThroughputValue"),
    ):
        lifetime, total = _throughput(record, clause)
        if lifetime is not None and total is not None:
            payload[entity] = {name: total, "LastUpdate": format_utc(lifetime.observed_at)}
            b.note(f"/{entity}/{name}", lifetime)
            if total != lifetime.value:
                workarounds.append(
                    f"{entity} is the {lifetime.source.value} lifetime value plus this "
                    "station's test throughput"
                )
    power = b.value(f"6.7.3.3#soc={P5_POWER_SOC}")
    if power is not None:
        stamp = format_utc(power.observed_at)
        payload["RemainingPowerCapability"] = {
            "RemainingPowerCapabilityValue": {
                "RPCLastUpdated": stamp,
                "AtSoC": float(P5_POWER_SOC),
                "PowerCapabilityAt": power.value,
            },
            "LastUpdate": stamp,
        }
        b.note("/RemainingPowerCapability/RemainingPowerCapabilityValue/PowerCapabilityAt", power)
        b.units["/RemainingPowerCapability/RemainingPowerCapabilityValue/AtSoC"] = "%"
    temperature = b.value("6.7.7.2")
    if temperature is not None:
        info: dict[str, Any] = {
            "MeasuredTemp": temperature.value,
            "LastUpdate": format_utc(temperature.observed_at),
        }
        b.note("/TemperatureInformation/MeasuredTemp", temperature)
        for name, clause in (
            ("TimeExtremeHighTemp", "6.7.7.5"),
            ("TimeExtremeLowTemp", "6.7.7.6"),
            ("TimeExtremeHighTempCharging", "6.7.7.7"),
            ("TimeExtremeLowTempCharging", "6.7.7.8"),
        ):
            value = record.get(clause)
            if value is not None:
                info[name] = value.value
                b.note(f"/TemperatureInformation/{name}", value)
        payload["TemperatureInformation"] = info
    events: list[dict[str, Any]] = []
    texts = record.get("6.7.8.5")
    if texts is not None:
        events.extend(
            {"NegativeEventValue": text, "LastUpdate": format_utc(texts.observed_at)}
            for text in texts.value  # type: ignore[union-attr]
        )
    for clause, label in (("6.7.8.2", "deep discharge events"), ("6.7.8.3", "overcharge events")):
        count = record.get(clause)
        if count is not None and count.value:
            events.append(
                {
                    "NegativeEventValue": f"{label}: {count.value} ({count.source.value})",
                    "LastUpdate": format_utc(count.observed_at),
                }
            )
    if events:
        payload["NegativeEvents"] = events
    accidents = b.value("6.7.8.4")
    if accidents is not None:
        payload["InformationOnAccidents"] = list(accidents.value)  # type: ignore[arg-type]
        b.sources["/InformationOnAccidents"] = accidents.source.value
    b.missing = [k for k in b.missing if k in ("6.7.6.4", "6.7.2.8", "6.7.7.2", "6.7.8.4")]
    b.fail_if_missing("IDTA-02035-5 Product Condition")
    return _envelope(
        record,
        "idta-02035-5",
        P5_URN,
        payload,
        b,
        workarounds,
        schema_validated_against=P5_SCHEMA_URN,
    )


def _resistance_method(record: GradingRecord) -> str | None:
    for method in ("dcir", "acir_1khz", "eis_r0"):
        if record.get(f"6.7.5.2#method={method}") is not None:
            return method
    return None


def idta_technical_data(record: GradingRecord) -> dict[str, Any]:
    """IDTA-02035 Part 4 Technical Data: the datasheet values plus the fades and increases the
    station measured (refreshed at a status change, passport.md §2 note under the table)."""
    b = _Payload(record)
    level = record.cell.component.capitalize()
    if level not in ("Cell", "Module", "Pack"):
        raise RecordError(f"cell.component {record.cell.component!r}: expected cell/module/pack")

    def number(path: str, key: str) -> float | int | None:
        value = b.value(key)
        if value is None:
            return None
        b.note(path, value)
        return value.value  # type: ignore[return-value]

    area = "/TechnicalPropertyAreas"
    method = _resistance_method(record)
    if method is None:
        b.missing.append("6.7.5.2#method=dcir")
    initial_r = number(
        f"{area}/Resistance/InitialInternalResistanceAtBattery{level}Level",
        f"6.7.5.2#method={method}",
    )
    increase_r = number(
        f"{area}/Resistance/InternalResistanceIncreaseAtBattery{level}Level",
        f"6.7.5.3#method={method}",
    )
    resistance: dict[str, Any] = {}
    workarounds: list[str] = []
    # The schema requires cell and pack levels; the graded item's values fill the level it is
    # and stand in for the other required one, which is stated in the metadata.
    for other in sorted({level, "Cell", "Pack"}):
        resistance[f"InitialInternalResistanceAtBattery{other}Level"] = initial_r
        resistance[f"InternalResistanceIncreaseAtBattery{other}Level"] = increase_r
        if other != level:
            workarounds.append(
                f"Resistance ...AtBattery{other}Level repeats the {level.lower()} values: the "
                f"model requires a {other.lower()} entry and the graded item is a "
                f"{level.lower()}"
            )
            for name in ("InitialInternalResistance", "InternalResistanceIncrease"):
                path = f"{area}/Resistance/{name}AtBattery"
                if f"{path}{level}Level" in b.units:
                    b.units[f"{path}{other}Level"] = b.units[f"{path}{level}Level"]
                    b.sources[f"{path}{other}Level"] = b.sources[f"{path}{level}Level"]
    if method is not None:
        workarounds.append(f"resistance values use the {method} method")
    original_power = []
    for value in record.values:
        if value.clause == "6.7.3.2" and value.conditions.soc_pct is not None:
            original_power.append(
                {"atSoC": value.conditions.soc_pct, "powerCapabilityAt": value.value}
            )
            b.note(
                f"{area}/PowerCapability/OriginalPowerCapability/{len(original_power) - 1}", value
            )
    if not original_power:
        b.missing.append("6.7.3.2")
    mass = b.value("6.1.3.6")
    payload: dict[str, Any] = {
        "GeneralInformation": {
            "ManufacturerName": record.cell.manufacturer_name,
            "ManufacturerIdentifier": record.cell.manufacturer_identifier,
            "WarrantyInformation": {"WarrantyPeriod": record.cell.warranty_period},
            "BatteryCategory": record.cell.category,
            "BatteryMass": None if mass is None else mass.value,
        },
        "TechnicalPropertyAreas": {
            "CapacityEnergyVoltage": {
                "NominalVoltage": number(
                    f"{area}/CapacityEnergyVoltage/NominalVoltage", "6.7.2.11"
                ),
                "MinVoltage": number(f"{area}/CapacityEnergyVoltage/MinVoltage", "6.7.2.9"),
                "MaxVoltage": number(f"{area}/CapacityEnergyVoltage/MaxVoltage", "6.7.2.10"),
                "RatedCapacity": number(f"{area}/CapacityEnergyVoltage/RatedCapacity", "6.7.2.2"),
                "CapacityFade": number(f"{area}/CapacityEnergyVoltage/CapacityFade", "6.7.2.4"),
                "CertifiedUsableBatteryEnergy": number(
                    f"{area}/CapacityEnergyVoltage/CertifiedUsableBatteryEnergy", "6.7.2.5"
                ),
            },
            "RoundTripEnergyEfficiency": {
                "InitialRoundTripEnergyEfficiency": number(
                    f"{area}/RoundTripEnergyEfficiency/InitialRoundTripEnergyEfficiency", "6.7.4.2"
                ),
                "RoundTripEnergyEfficiencyAt50PercentOfCycleLife": number(
                    f"{area}/RoundTripEnergyEfficiency/"
                    "RoundTripEnergyEfficiencyAt50PercentOfCycleLife",
                    "6.7.4.3",
                ),
                "EnergyRoundTripEfficiencyFade": number(
                    f"{area}/RoundTripEnergyEfficiency/EnergyRoundTripEfficiencyFade", "6.7.4.5"
                ),
                "InitialSelfDischargingRate": number(
                    f"{area}/RoundTripEnergyEfficiency/InitialSelfDischargingRate", "6.7.4.6"
                ),
            },
            "Resistance": resistance,
            "PowerCapability": {
                "MaximumPermittedBatteryPower": number(
                    f"{area}/PowerCapability/MaximumPermittedBatteryPower", "6.7.3.5"
                ),
                "PowerFade": number(
                    f"{area}/PowerCapability/PowerFade", f"6.7.3.4#soc={P5_POWER_SOC}"
                ),
                "RatioNominalBatteryPowerAndBatteryEnergy": number(
                    f"{area}/PowerCapability/RatioNominalBatteryPowerAndBatteryEnergy", "6.7.3.6"
                ),
                "OriginalPowerCapability": original_power,
            },
            "Temperature": {
                "TemperatureRangeIdleState_LowerBoundary": number(
                    f"{area}/Temperature/TemperatureRangeIdleState_LowerBoundary", "6.7.7.3"
                ),
                "TemperatureRangeIdleState_UpperBoundary": number(
                    f"{area}/Temperature/TemperatureRangeIdleState_UpperBoundary", "6.7.7.4"
                ),
            },
            "Lifetime": {
                "ExpectedLifetimeInCalendarYears": number(
                    f"{area}/Lifetime/ExpectedLifetimeInCalendarYears", "6.7.6.2"
                ),
                "ExpectedNumberOfCycles": number(
                    f"{area}/Lifetime/ExpectedNumberOfCycles", "6.7.6.3"
                ),
                "CapacityThresholdExhaustion": number(
                    f"{area}/Lifetime/CapacityThresholdExhaustion", "6.7.6.9"
                ),
                "CycleLifeReferenceTest": None,
                "CrateOfRelevantCycleLifeTest": number(
                    f"{area}/Lifetime/CrateOfRelevantCycleLifeTest", "6.7.6.6"
                ),
            },
        },
    }
    reference = b.value("6.7.6.5")
    if reference is not None:
        payload["TechnicalPropertyAreas"]["Lifetime"]["CycleLifeReferenceTest"] = list(
            reference.value  # type: ignore[arg-type]
        )
    if mass is not None:
        b.note("/GeneralInformation/BatteryMass", mass)
    b.fail_if_missing("IDTA-02035-4 Technical Data")
    if not record.cell.warranty_period:
        raise RecordError(f"record {record.record_id}: cell.warranty_period is empty")
    _drop_none(payload)
    reason = (
        "placement on the market"
        if record.status is BatteryStatus.ORIGINAL
        else f"status change to {record.status.value}"
    )
    return _envelope(
        record,
        "idta-02035-4",
        P4_URN,
        payload,
        b,
        [
            *workarounds,
            "PowerFade is the fade at "
            f"{P5_POWER_SOC} % SoC; the record keeps the fade at every measured SoC",
            "InitialSelfDischargingRate is in %/month (DIN 6.7.4.6); the model types it percent",
        ],
        refresh_reason=reason,
    )


def _drop_none(data: dict[str, Any]) -> None:
    for key in list(data):
        if data[key] is None:
            del data[key]
        elif isinstance(data[key], dict):
            _drop_none(data[key])


def _texts(text: str) -> list[dict[str, str]]:
    return [{"en": text}]


def idta_nameplate(record: GradingRecord) -> dict[str, Any]:
    """IDTA-02035 Part 1 Digital Nameplate: identity plus ``LifeCycleStage``, the battery status
    (the field the regulation calls battery status, DIN 6.1.3.7)."""
    b = _Payload(record)
    cell = record.cell
    missing = [
        name
        for name, text in (
            ("cell.manufacturer_name", cell.manufacturer_name),
            ("cell.address_street", cell.address_street),
            ("cell.address_zip", cell.address_zip),
            ("cell.address_city", cell.address_city),
            ("cell.address_country", cell.address_country),
            ("cell.facility_identifier", cell.facility_identifier),
        )
        if not text
    ]
    if cell.date_of_manufacture is None:
        missing.append("cell.date_of_manufacture")
    if missing:
        raise RecordError(
            f"record {record.record_id}: IDTA-02035-1 Nameplate needs {', '.join(missing)}"
        )
    payload: dict[str, Any] = {
        "URIOfTheProduct": cell.passport_id,
        "ManufacturerName": _texts(cell.manufacturer_name),
        "AddressInformation": {
            "Street": _texts(cell.address_street),
            "ZipCode": _texts(cell.address_zip),
            "CityTown": _texts(cell.address_city),
            "NationalCode": _texts(cell.address_country),
        },
        "SerialNumber": cell.serial_number,
        "DateOfManufacture": cell.date_of_manufacture.isoformat(),  # type: ignore[union-attr]
        "UniqueFacilityIdentifier": cell.facility_identifier,
        "LifeCycleStage": STATUS_SPELLING["idta-02035-1"][record.status],
        "ManufacturerIdentifier": cell.manufacturer_identifier,
        "OperatorIdentifier": record.station_id,
        "Markings": [
            {"MarkingName": name, "MarkingFile": {"value": uri, "contentType": "application/pdf"}}
            for name, uri in cell.markings
        ],
        "EUDeclarationOfConformity": list(cell.declarations_of_conformity),
        "ResultsOfTestReportsProvingCompliance": list(cell.compliance_test_reports),
    }
    if cell.date_of_putting_into_service is not None:
        payload["DateOfPuttingIntoService"] = cell.date_of_putting_into_service.isoformat()
    return _envelope(
        record,
        "idta-02035-1",
        P1_URN,
        payload,
        b,
        [
            "LifeCycleStage carries the battery status, spelled as BatteryStatusEnumeration "
            "requires ('re-used')",
            "OperatorIdentifier is this grading station's id",
        ],
    )


def _record(value: PassportValue) -> dict[str, Any]:
    return {"value": value.value, "time": format_utc(value.observed_at)}


def catenax_dynamic(record: GradingRecord) -> dict[str, Any]:
    """Catena-X battery_pass 6.1.0 ``performance.dynamic`` block (units fixed by the model:
    Ah, kWh, W, Ohm, %)."""
    b = _Payload(record)
    method = _resistance_method(record) or "dcir"
    workarounds: list[str] = []

    def rec(path: str, key: str) -> dict[str, Any] | None:
        value = b.value(key)
        if value is None:
            return None
        b.note(f"{path}/value", value)
        return _record(value)

    capacity_lifetime, capacity_total = _throughput(record, "6.7.6.8")
    energy_lifetime, energy_total = _throughput(record, "6.7.6.7")
    if capacity_lifetime is None:
        b.missing.append("6.7.6.8")
    resistance_now = rec("/resistance/remaining/cell", f"6.7.5#method={method}")
    resistance_increase = rec("/resistance/increase/cell", f"6.7.5.3#method={method}")
    if record.cell.component == "cell":
        # CX 6.1.0 requires pack values; a single graded cell is reported as its own pack.
        workarounds.append(
            "resistance.remaining.pack and resistance.increase.pack repeat the cell values: the "
            "model requires a pack entry and the graded item is a single cell"
        )
    workarounds.append(
        f"power.remaining and power.fade are at {P5_POWER_SOC} % SoC (the model holds one "
        "point); all points are listed in metadata.power_points_w"
    )
    workarounds.append(f"resistance values use the {method} method")
    dynamic: dict[str, Any] = {
        "stateOfCharge": rec("/stateOfCharge", "6.7.2.8"),
        "fullCycles": rec("/fullCycles", "6.7.6.4"),
        "selfDischargingRate": None,
        "power": {
            "remaining": rec("/power/remaining", f"6.7.3.3#soc={P5_POWER_SOC}"),
            "fade": rec("/power/fade", f"6.7.3.4#soc={P5_POWER_SOC}"),
        },
        "capacity": {
            "capacity": rec("/capacity/capacity", "6.7.2.3"),
            "fade": rec("/capacity/fade", "6.7.2.4"),
            "throughput": None
            if capacity_lifetime is None
            else {"value": capacity_total, "time": format_utc(capacity_lifetime.observed_at)},
        },
        "roundTripEfficiency": {
            "remaining": rec("/roundTripEfficiency/remaining", "6.7.4.4"),
            "fade": rec("/roundTripEfficiency/fade", "6.7.4.5"),
        },
        "resistance": {
            "remaining": {"cell": resistance_now, "pack": resistance_now},
            "increase": {"cell": resistance_increase, "pack": resistance_increase},
        },
        "energy": {
            "remaining": rec("/energy/remaining", "6.7.2.6"),
            "soce": rec("/energy/soce", "6.7.2.7"),
        },
    }
    if energy_lifetime is not None:
        dynamic["energy"]["throughput"] = {
            "value": energy_total,
            "time": format_utc(energy_lifetime.observed_at),
        }
        b.note("/energy/throughput/value", energy_lifetime)
    if capacity_lifetime is not None:
        b.note("/capacity/throughput/value", capacity_lifetime)
    sdr = b.value("6.7.4.7")
    if sdr is not None:
        dynamic["selfDischargingRate"] = sdr.value
        b.note("/selfDischargingRate", sdr)
        workarounds.append("selfDischargingRate is in %/month (DIN 6.7.4.7); the model says %")
    texts = record.get("6.7.8.5")
    if texts is not None and texts.value:
        dynamic["negativeEvents"] = [
            {"contentType": "text/plain", "header": "negative event", "content": text}
            for text in texts.value  # type: ignore[union-attr]
        ]
    b.fail_if_missing("Catena-X battery_pass 6.1.0 performance.dynamic")
    power_points = {
        v.qualifier: v.value for v in record.values if v.clause == "6.7.3.3" and v.qualifier
    }
    return _envelope(
        record,
        "catenax-6.1.0-performance-dynamic",
        CX_URN,
        dynamic,
        b,
        workarounds,
        power_points_w=power_points,
    )


def catenax_full(record: GradingRecord, upstream: Mapping[str, Any]) -> dict[str, Any]:
    """A full Catena-X 6.1.0 payload: the upstream passport with this record's
    ``performance.dynamic`` and ``sustainability.status`` replaced. The upstream passport supplies
    the sections a grading station cannot (materials, carbon footprint, conformity ...)."""
    dynamic = catenax_dynamic(record)
    if "performance" not in upstream or "sustainability" not in upstream:
        raise RecordError("upstream passport: needs 'performance' and 'sustainability' sections")
    payload = copy.deepcopy(dict(upstream))
    payload["performance"]["dynamic"] = dynamic["payload"]
    payload["sustainability"]["status"] = STATUS_SPELLING["catenax-6.1.0"][record.status]
    metadata = dict(dynamic["metadata"])
    metadata["target"] = "catenax-6.1.0-full"
    metadata["units"] = {f"/performance/dynamic{k}": u for k, u in metadata["units"].items()}
    metadata["sources"] = {f"/performance/dynamic{k}": s for k, s in metadata["sources"].items()}
    metadata["merged_from_upstream"] = sorted(k for k in upstream if k != "performance")
    return {"metadata": metadata, "payload": payload}


def all_exports(record: GradingRecord) -> dict[str, dict[str, Any]]:
    """Every export a record supports on its own (no upstream passport), keyed by target."""
    return {
        "idta-02035-5": idta_product_condition(record),
        "idta-02035-4": idta_technical_data(record),
        "idta-02035-1": idta_nameplate(record),
        "catenax-6.1.0-performance-dynamic": catenax_dynamic(record),
    }

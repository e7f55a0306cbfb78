"""The passport content as an Asset Administration Shell (AAS JSON and AASX), built from the IDTA
02035 submodel templates with basyx-python-sdk (passport.md §0.3, §6).

Each template is read strictly, every example value in it is cleared, and only values from the
record are set, by the template's own idShorts (which differ from the SAMM payload names, e.g.
``InitialInternalResistanceOnBatteryCellLevel``, ``RatioNorminal...``; passport.md §4.3). Every
property the station sets carries two extensions, ``station:unit`` and ``station:source``. The
Product Condition 1.0.1 template's concept description types ``RemainingCapacityValue`` in kWh;
the station writes Ah (as 1.0.2 does), rewrites that concept description's unit and says so in
the ``station:unit-workaround`` extension of the submodel.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from basyx.aas import model
from basyx.aas.adapter.aasx import AASXWriter, DictSupplementaryFileContainer
from basyx.aas.adapter.json import read_aas_json_file, write_aas_json_file

from station.passport.exports import P5_POWER_SOC, STATUS_SPELLING
from station.passport.record import GradingRecord, PassportValue, RecordError

P5_SEMANTIC_ID_102 = (
    "urn:samm:io.admin-shell.idta.batterypass.product_condition:1.0.2#ProductCondition"
)


@dataclass(frozen=True)
class AasTemplates:
    """The IDTA 02035 AAS template files (Parts 5, 4 and 1): paths, or package resources
    (:func:`station.passport.models.aas_templates`)."""

    product_condition: Traversable
    technical_data: Traversable
    nameplate: Traversable

    @classmethod
    def in_dir(cls, root: Traversable) -> AasTemplates:
        """The layout of ``passport-models/idta-aas`` (see its SOURCES.md)."""
        return cls(
            product_condition=root
            / "02035-5_ProductCondition/1.0.1/IDTA_02035-5_DBP-Part-5_ProductCondition.json",
            technical_data=root
            / "02035-4_TechnicalData/1.0.1/IDTA_02035-4_DBP-Part-4_TechnicalData.json",
            nameplate=root
            / "02035-1_DigitalNameplate/1.0/IDTA_02035-1_DBP-Part-1_DigitalNameplate.json",
        )


@dataclass(frozen=True)
class Slot:
    """A value for one template element: the value, its unit and its source."""

    value: Any
    unit: str = ""
    source: str = ""


Item = Mapping[str, Slot] | Slot


def _read(path: Traversable) -> model.DictIdentifiableStore[model.Identifiable]:
    try:
        with path.open(encoding="utf-8-sig") as handle:
            return read_aas_json_file(handle, failsafe=False)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RecordError(f"{path}: cannot read the AAS template: {error}") from error


def _submodel(store: model.DictIdentifiableStore[model.Identifiable]) -> model.Submodel:
    submodels = [obj for obj in store if isinstance(obj, model.Submodel)]
    if len(submodels) != 1:
        raise RecordError(f"AAS template holds {len(submodels)} submodels, expected one")
    return submodels[0]


def _convert(prop: model.Property, value: Any, path: str) -> Any:
    kind: Any = prop.value_type
    try:
        if kind is model.datatypes.Date and isinstance(value, date):
            return model.datatypes.Date(value.year, value.month, value.day)
        if kind is model.datatypes.DateTime and isinstance(value, datetime):
            return value
        return kind(value)
    except (TypeError, ValueError) as error:
        raise RecordError(f"AAS {path}: {value!r} does not fit {kind.__name__}") from error


def _annotate(element: model.SubmodelElement, slot: Slot) -> None:
    for name, text in (("station:unit", slot.unit), ("station:source", slot.source)):
        if text:
            element.extension.add(model.Extension(name=name, value_type=str, value=text))


TEMPLATE_QUALIFIERS = ("SMT/Cardinality", "Cardinality", "ExampleValue")
"""Qualifiers that describe the template, not the instance; the ExampleValue one carries an
example manufacturer name."""


def _fill(
    element: model.SubmodelElement, path: str, slots: Mapping[str, Item], used: set[str]
) -> None:
    for qualifier in list(element.qualifier):
        if qualifier.type in TEMPLATE_QUALIFIERS:
            element.qualifier.remove(qualifier)
    item = slots.get(path)
    if item is not None:
        used.add(path)
    if isinstance(element, model.Property):
        slot = item if isinstance(item, Slot) else None
        element.value = None if slot is None else _convert(element, slot.value, path)
        if slot is not None:
            _annotate(element, slot)
    elif isinstance(element, model.MultiLanguageProperty):
        slot = item if isinstance(item, Slot) else None
        # An identity text the station does not know ("") stays unset: AAS text has no empty form.
        element.value = (
            model.MultiLanguageTextType({"en": slot.value})
            if slot is not None and slot.value != ""
            else None
        )
    elif isinstance(element, model.File):
        slot = item if isinstance(item, Slot) else None
        element.value = None if slot is None else str(slot.value)
        if slot is not None and slot.unit:
            element.content_type = slot.unit
    elif isinstance(element, model.SubmodelElementCollection):
        for child in list(element.value):
            _fill(child, f"{path}/{child.id_short}", slots, used)
    elif isinstance(element, model.SubmodelElementList):
        _fill_list(element, path, slots, used)


def _fill_list(
    element: model.SubmodelElementList, path: str, slots: Mapping[str, Item], used: set[str]
) -> None:
    """Rebuild a list from its template's first element, one copy per value given for it."""
    prototypes = list(element.value)
    for child in prototypes:
        element.value.remove(child)
    items = slots.get(f"{path}[]")
    if items is not None:
        used.add(f"{path}[]")
    if not prototypes or not isinstance(items, _ListSlot):
        return
    prototype = prototypes[0]
    for index, entry in enumerate(items.entries):
        clone = copy.deepcopy(prototype)
        clone.id_short = None
        if isinstance(entry, Slot):
            _fill(clone, f"{path}[{index}]", {f"{path}[{index}]": entry}, set())
        else:
            prefixed = {f"{path}[{index}]/{k}": v for k, v in entry.items()}
            inner: set[str] = set()
            _fill(clone, f"{path}[{index}]", prefixed, inner)
            if set(prefixed) - inner:
                raise RecordError(
                    f"AAS template list {path} has no element for "
                    f"{', '.join(sorted(set(prefixed) - inner))}"
                )
        element.value.add(clone)


@dataclass(frozen=True)
class _ListSlot:
    entries: tuple[Item, ...]


def _slot(value: PassportValue, unit: str | None = None) -> Slot:
    return Slot(value.value, unit if unit is not None else value.unit, value.source.value)


def _p5_slots(record: GradingRecord) -> dict[str, Any]:
    slots: dict[str, Any] = {}

    def put(entity: str, key: str, name: str) -> None:
        value = record.get(key)
        if value is not None:
            slots[f"{entity}/{name}"] = _slot(value)
            slots[f"{entity}/LastUpdate"] = Slot(value.observed_at)

    put("RemainingCapacity", "6.7.2.3", "RemainingCapacityValue")
    put("RemainingEnergy", "6.7.2.6", "RemainingEnergyValue")
    put("StateOfCertifiedEnergy", "6.7.2.7", "StateOfCertifiedEnergyValue")
    put("RemainingRoundTripEnergyEfficiency", "6.7.4.4", "RemainingRoundTripEnergyEfficiencyValue")
    put("CurrentSelfDischargingRate", "6.7.4.7", "CurrentSelfDischargingRateValue")
    put("EvolutionOfSelfDischarge", "6.7.4.8", "EvolutionOfSelfDischargeValue")
    put("NumberOfFullCycles", "6.7.6.4", "NumberOfFullCyclesValue")
    put("EnergyThroughput", "6.7.6.7", "EnergyThroughputValue")
    put("CapacityThroughput", "6.7.6.8", "CapacityThroughputValue")
    power = record.get(f"6.7.3.3#soc={P5_POWER_SOC}")
    if power is not None:
        base = "RemainingPowerCapability/RemainingPowerCapabilityDynamicAt"
        slots[f"{base}/PowerCapabilityAt"] = _slot(power)
        slots[f"{base}/AtSoC"] = Slot(float(P5_POWER_SOC), "%")
        slots[f"{base}/RPCLastUpdated"] = Slot(power.observed_at)
        slots["RemainingPowerCapability/LastUpdate"] = Slot(power.observed_at)
    temperature = record.get("6.7.7.2")
    if temperature is not None:
        slots["TemperatureInformation/MeasuredTemp"] = _slot(temperature)
        slots["TemperatureInformation/LastUpdate"] = Slot(temperature.observed_at)
    for name, clause in (
        ("TimeExtremeHighTemp", "6.7.7.5"),
        ("TimeExtremeLowTemp", "6.7.7.6"),
        ("TimeExtremeHighTempCharging", "6.7.7.7"),
        ("TimeExtremeLowTempCharging", "6.7.7.8"),
    ):
        value = record.get(clause)
        if value is not None:
            slots[f"TemperatureInformation/{name}"] = _slot(value)
    events = record.get("6.7.8.5")
    if events is not None:
        slots["NegativeEvents[]"] = _ListSlot(
            tuple(
                {
                    "NegativeEventValue": Slot(text, "text", events.source.value),
                    "LastUpdate": Slot(events.observed_at),
                }
                for text in events.value  # type: ignore[union-attr]
            )
        )
    accidents = record.get("6.7.8.4")
    if accidents is not None:
        slots["InformationOnAccidents[]"] = _ListSlot(
            tuple(Slot(doc, "", accidents.source.value) for doc in accidents.value)  # type: ignore[union-attr]
        )
    return slots


def _p4_slots(record: GradingRecord) -> dict[str, Any]:
    slots: dict[str, Any] = {}
    level = record.cell.component.capitalize()
    area = "TechnicalPropertyAreas"

    def put(path: str, key: str) -> None:
        value = record.get(key)
        if value is not None:
            slots[path] = _slot(value)

    slots["GeneralInformation/ManufacturerName"] = Slot(record.cell.manufacturer_name)
    slots["GeneralInformation/ManufacturerIdentifier"] = Slot(record.cell.manufacturer_identifier)
    slots["GeneralInformation/BatteryCategory"] = Slot(record.cell.category)
    if record.cell.warranty_period:
        slots["GeneralInformation/WarrantyInformation/WarrantyPeriod"] = Slot(
            record.cell.warranty_period
        )
    put("GeneralInformation/BatteryMass", "6.1.3.6")
    for name, key in (
        ("NominalVoltage", "6.7.2.11"),
        ("MinVoltage", "6.7.2.9"),
        ("MaxVoltage", "6.7.2.10"),
        ("RatedCapacity", "6.7.2.2"),
        ("CapacityFade", "6.7.2.4"),
        ("CertifiedUsableBatteryEnergy", "6.7.2.5"),
    ):
        put(f"{area}/CapacityEnergyVoltage/{name}", key)
    for name, key in (
        ("InitialRoundTripEnergyEfficiency", "6.7.4.2"),
        ("RoundTripEnergyEfficiencyAt50PercentOfCycleLife", "6.7.4.3"),
        ("EnergyRoundTripEfficiencyFade", "6.7.4.5"),
        ("InitialSelfDischargingRate", "6.7.4.6"),
    ):
        put(f"{area}/RoundTripEnergyEfficiency/{name}", key)
    for method in ("dcir", "acir_1khz", "eis_r0"):
        if record.get(f"6.7.5.2#method={method}") is not None:
            put(
                f"{area}/Resistance/InitialInternalResistanceOnBattery{level}Level",
                f"6.7.5.2#method={method}",
            )
            put(
                f"{area}/Resistance/InternalResistanceIncreaseOfBattery{level}Level",
                f"6.7.5.3#method={method}",
            )
            break
    put(f"{area}/PowerCapability/MaximumPermittedBatteryPower", "6.7.3.5")
    put(f"{area}/PowerCapability/PowerFade", f"6.7.3.4#soc={P5_POWER_SOC}")
    put(f"{area}/PowerCapability/RatioNorminalBatteryPowerAndBatteryEnergy", "6.7.3.6")
    points = [
        {"atSoc": Slot(round(v.conditions.soc_pct), "%"), "powerCapabilityAt": _slot(v)}
        for v in record.values
        if v.clause == "6.7.3.2" and v.conditions.soc_pct is not None
    ]
    slots[f"{area}/PowerCapability/OriginalPowerCapability[]"] = _ListSlot(tuple(points))
    put(f"{area}/Temperature/TemperatureRangeIdleState_LowerBoundary", "6.7.7.3")
    put(f"{area}/Temperature/TemperatureRangeIdleState_UpperBoundary", "6.7.7.4")
    put(f"{area}/Lifetime/ExpectedLifetimeInCalendarYears", "6.7.6.2")
    put(f"{area}/Lifetime/ExpectedNumberOfCycles", "6.7.6.3")
    put(f"{area}/Lifetime/CapacityThresholdExhaustion", "6.7.6.9")
    put(f"{area}/Lifetime/CRateOfRelevantCycleLifeTest", "6.7.6.6")
    return slots


def _p1_slots(record: GradingRecord) -> dict[str, Any]:
    cell = record.cell
    slots: dict[str, Any] = {
        "URIOfTheProduct": Slot(cell.passport_id),
        "ManufacturerName": Slot(cell.manufacturer_name),
        "SerialNumber": Slot(cell.serial_number),
        "UniqueFacilityIdentifier": Slot(cell.facility_identifier),
        "LifeCycleStage": Slot(STATUS_SPELLING["idta-02035-1"][record.status], "", "station"),
        "OperatorIdentifier": Slot(record.station_id),
        "ManufacturerIdentifier": Slot(cell.manufacturer_identifier),
        "AddressInformation/Street": Slot(cell.address_street),
        "AddressInformation/Zipcode": Slot(cell.address_zip),
        "AddressInformation/CityTown": Slot(cell.address_city),
        "AddressInformation/NationalCode": Slot(cell.address_country),
        "Markings[]": _ListSlot(
            tuple(
                {"MarkingName": Slot(name), "MarkingFile": Slot(uri, "application/pdf")}
                for name, uri in cell.markings
            )
        ),
        "EUDeclarationOfConformity[]": _ListSlot(
            tuple(Slot(doc) for doc in cell.declarations_of_conformity)
        ),
        "ResultsOfTestReportsProvingCompliance[]": _ListSlot(
            tuple(Slot(doc) for doc in cell.compliance_test_reports)
        ),
    }
    if cell.date_of_manufacture is not None:
        slots["DateOfManufacture"] = Slot(cell.date_of_manufacture)
    if cell.date_of_putting_into_service is not None:
        slots["DateOfPuttingIntoService"] = Slot(cell.date_of_putting_into_service)
    return slots


ADDRESS_ID_SHORTS = ("Street", "Zipcode", "CityTown", "NationalCode")


def _add_address_elements(submodel: model.Submodel) -> None:
    """The 02035-1 1.0 template leaves ``AddressInformation`` empty; add the IDTA-02002 Contact
    Information elements the schema requires (multi-language texts)."""
    for element in submodel.submodel_element:
        if (
            element.id_short == "AddressInformation"
            and isinstance(element, model.SubmodelElementCollection)
            and not element.value
        ):
            for id_short in ADDRESS_ID_SHORTS:
                element.value.add(model.MultiLanguageProperty(id_short=id_short))


def _fix_remaining_capacity_unit(store: model.DictIdentifiableStore[model.Identifiable]) -> bool:
    for obj in store:
        if isinstance(obj, model.ConceptDescription) and obj.id_short in (
            "RemainingCapacityValue",
            "remainingCapacityValue",
        ):
            for spec in obj.embedded_data_specifications:
                content = spec.data_specification_content
                if isinstance(content, model.DataSpecificationIEC61360):
                    content.unit = "Ah"
                    content.unit_id = None
                    return True
    return False


def build_environment(
    record: GradingRecord, templates: AasTemplates
) -> model.DictIdentifiableStore[model.Identifiable]:
    """An AAS environment: one shell for the passport, the three filled submodels and the
    templates' concept descriptions."""
    out: model.DictIdentifiableStore[model.Identifiable] = model.DictIdentifiableStore()
    parts: tuple[tuple[str, Traversable, Callable[[GradingRecord], dict[str, Any]]], ...] = (
        ("ProductCondition", templates.product_condition, _p5_slots),
        ("TechnicalData", templates.technical_data, _p4_slots),
        ("Nameplate", templates.nameplate, _p1_slots),
    )
    submodel_refs = set()
    for name, path, slots_of in parts:
        store = _read(path)
        template = _submodel(store)
        slots = slots_of(record)
        if name == "Nameplate":
            _add_address_elements(template)
        used: set[str] = set()
        for element in list(template.submodel_element):
            _fill(element, element.id_short or "", slots, used)
        if set(slots) - used:
            raise RecordError(
                f"{path.name}: no template element for {', '.join(sorted(set(slots) - used))}"
            )
        submodel = model.Submodel(
            id_=f"{record.cell.passport_id}/submodel/{name}/{record.record_id}",
            submodel_element=[],
            id_short=template.id_short,
            semantic_id=template.semantic_id,
            kind=model.ModellingKind.INSTANCE,
            administration=template.administration,
        )
        for element in list(template.submodel_element):
            template.submodel_element.remove(element)
            submodel.submodel_element.add(element)
        if name == "ProductCondition" and _fix_remaining_capacity_unit(store):
            submodel.extension.add(
                model.Extension(
                    name="station:unit-workaround",
                    value_type=str,
                    value="RemainingCapacityValue is in Ah as product_condition 1.0.2 "
                    f"({P5_SEMANTIC_ID_102}) defines it; the 1.0.1 template typed it kWh",
                )
            )
        for obj in list(store):
            if isinstance(obj, model.ConceptDescription) and obj.id not in out:
                store.discard(obj)
                out.add(obj)
        out.add(submodel)
        submodel_refs.add(model.ModelReference.from_referable(submodel))
    shell = model.AssetAdministrationShell(
        asset_information=model.AssetInformation(
            asset_kind=model.AssetKind.INSTANCE, global_asset_id=record.cell.passport_id
        ),
        id_=f"{record.cell.passport_id}/aas/{record.record_id}",
        id_short="BatteryPassport",
        submodel=submodel_refs,
    )
    if record.original_passport_id:
        shell.extension.add(
            model.Extension(
                name="station:original-passport", value_type=str, value=record.original_passport_id
            )
        )
    out.add(shell)
    return out


def write_aas_json(record: GradingRecord, templates: AasTemplates, path: Path) -> Path:
    store = build_environment(record, templates)
    buffer = io.StringIO()
    write_aas_json_file(buffer, store)
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(buffer.getvalue(), encoding="utf-8")
    temporary.replace(path)
    return path


def write_aasx(record: GradingRecord, templates: AasTemplates, path: Path) -> Path:
    store = build_environment(record, templates)
    shells = [obj.id for obj in store if isinstance(obj, model.AssetAdministrationShell)]
    temporary = path.with_name(path.name + ".part")
    with AASXWriter(str(temporary)) as writer:
        writer.write_aas(shells, store, DictSupplementaryFileContainer(), write_json=True)
    temporary.replace(path)
    return path

"""The grading record: builder checks, derived figures, imports, canonical bytes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from station.passport.canonical import CanonicalJsonError, canonical_bytes
from station.passport.record import (
    BatteryStatus,
    Conditions,
    RecordBuilder,
    RecordError,
    Source,
    new_passport_id,
    raw_data_sha256,
    read_bms_readout,
    read_earlier_passport,
    record_from_dict,
)
from tests.conftest import SHARED_DIR
from tests.passport.batch import INSTRUMENTS, RATED_AH, T0, graded_cell

P5_EXAMPLE = (
    SHARED_DIR
    / "passport-models/idta-samm/io.admin-shell.idta.batterypass.product_condition/1.0.1/gen"
    / "ProductConditionBattery.json"
)


def _builder(**changes: object) -> RecordBuilder:
    record = graded_cell(0).record
    args: dict[str, object] = {
        "record_id": "r",
        "test_id": "t",
        "cell": record.cell,
        "grade": record.grade,
        "operator": "op",
        "station_id": "s",
        "started_at": T0,
        "finished_at": T0 + timedelta(hours=1),
        "raw_data_sha256": "0" * 64,
    }
    args.update(changes)
    builder = RecordBuilder(**args)  # type: ignore[arg-type]
    for instrument in INSTRUMENTS:
        builder.instrument(instrument)
    return builder


def test_canonical_bytes_are_identical_for_the_same_record() -> None:
    first = graded_cell(3).record
    second = graded_cell(3).record
    assert first is not second
    assert first.canonical() == second.canonical()
    assert record_from_dict(json.loads(first.canonical())).canonical() == first.canonical()


def test_canonical_bytes_are_sorted_compact_utf8() -> None:
    assert (
        canonical_bytes({"b": 1.5, "a": ["ü", None, True]})
        == '{"a":["ü",null,true],"b":1.5}'.encode()
    )
    with pytest.raises(CanonicalJsonError, match="/x/0"):
        canonical_bytes({"x": [math.nan]})


def test_every_value_carries_clause_unit_source_and_time() -> None:
    record = graded_cell(1).record
    data = record.to_dict()
    assert data["started_at"].endswith("Z")
    for key, value in data["values"].items():
        assert key.split("#")[0] == value["clause"]
        assert value["unit"]
        assert value["observed_at"].endswith("Z")
        if value["source"] == "measured":
            assert value["instrument"] in {i.key for i in INSTRUMENTS}
            assert value["uncertainty"] is not None
        if value["source"] in ("bms_readout", "earlier_passport"):
            assert value["origin"]
    states = {i["key"]: i["calibration_state"] for i in data["instruments"]}
    # The BT3562 calibration expired on 2026-10-01, before the test on 2026-11-20.
    assert states == {"cycler": "valid", "acir": "overdue"}
    assert data["grade"]["profile_version"] == "1.2.0"
    assert data["original_passport_id"].startswith("urn:uuid:1111")


def test_derived_fades_match_their_formulas() -> None:
    cell = graded_cell(2)
    record = cell.record
    # Independent: integrate the discharge current with numpy's trapezoid over the raw arrays.
    step = cell.raw.step_index
    idx = np.flatnonzero(step == 2)
    idx = np.concatenate([[idx[0] - 1], idx])
    capacity = -np.trapezoid(cell.raw.current_a[idx], cell.raw.t_s[idx]) / 3600
    assert record.number("6.7.2.3") == pytest.approx(capacity, rel=1e-12)
    assert record.number("6.7.2.4") == pytest.approx((1 - capacity / RATED_AH) * 100, rel=1e-12)
    assert record.number("x-station.soh-capacity") == pytest.approx(capacity / RATED_AH * 100)
    r = record.number("6.7.5#method=dcir")
    assert record.number("6.7.5.3#method=dcir") == pytest.approx((r - 0.021) / 0.021 * 100)
    p20 = record.number("6.7.3.3#soc=20")
    assert record.number("6.7.3.4#soc=20") == pytest.approx((1 - p20 / 52.0) * 100)
    assert record.require("6.7.2.4").source is Source.DERIVED
    # Uncertainty propagates from the present value: u(C)/C_rated*100, tolerance 1e-12 relative.
    u = record.require("6.7.2.3").uncertainty
    assert u is not None
    assert record.require("6.7.2.4").uncertainty == pytest.approx(u / RATED_AH * 100, rel=1e-12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"started_at": datetime(2026, 1, 1)}, "no time zone"),
        ({"raw_data_sha256": "xyz"}, "raw_data_sha256"),
        ({"operator": " "}, "operator is empty"),
        ({"status": BatteryStatus.REPURPOSED}, "needs original_passport_id"),
    ],
)
def test_builder_refuses_bad_heads(change: dict[str, object], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        _builder(**change).build()


def test_builder_refuses_bad_values() -> None:
    at = T0
    with pytest.raises(RecordError, match="6.7.2.3: a measured value names its instrument"):
        _builder().measured(
            "6.7.2.3", 4.0, instrument="", method="m", observed_at=at, uncertainty=0
        )
    with pytest.raises(RecordError, match="instrument 'eis' was not added"):
        _builder().measured(
            "6.7.2.3", 4.0, instrument="eis", method="m", observed_at=at, uncertainty=0
        )
    with pytest.raises(RecordError, match="6.7.2.3: .* is not a finite number"):
        _builder().measured(
            "6.7.2.3", math.inf, instrument="cycler", method="m", observed_at=at, uncertainty=0
        )
    with pytest.raises(RecordError, match="unknown clause '9.9'"):
        _builder().derive("9.9", 1.0, method="m", observed_at=at)
    builder = _builder().derive("6.7.2.8", 50.0, method="m", observed_at=at)
    with pytest.raises(RecordError, match="6.7.2.8: value given twice"):
        builder.derive("6.7.2.8", 50.0, method="m", observed_at=at)
    with pytest.raises(RecordError, match="no time zone"):
        _builder().derive("6.7.2.8", 50.0, method="m", observed_at=datetime(2026, 1, 1))


def test_repurposed_record_links_to_the_original_passport() -> None:
    record = graded_cell(0).record
    built = _builder(status=BatteryStatus.REPURPOSED, original_passport_id="urn:uuid:orig").build()
    assert built.original_passport_id == "urn:uuid:orig"
    with pytest.raises(RecordError, match="equals this passport's id"):
        _builder(status=BatteryStatus.REUSED, original_passport_id=record.cell.passport_id).build()


def test_bms_readout_import_marks_the_source(tmp_path: Path) -> None:
    path = tmp_path / "bms.json"
    path.write_text(
        json.dumps(
            {
                "format": "station-bms-readout/1",
                "readout_id": "RO-77",
                "read_at": "2026-11-18T09:30:00+01:00",
                "values": {
                    "number_of_full_cycles": 812,
                    "energy_throughput_kwh": 14.2,
                    "time_extreme_high_temp_min": 95.5,
                    "negative_events": ["overcharge 4.35 V"],
                },
            }
        )
    )
    values = {v.clause: v for v in read_bms_readout(path)}
    assert values["6.7.6.4"].value == 812
    assert values["6.7.6.7"].unit == "kWh"
    assert values["6.7.8.5"].value == ("overcharge 4.35 V",)
    assert all(v.source is Source.BMS and v.origin == "bms-readout:RO-77" for v in values.values())
    assert values["6.7.6.4"].observed_at == datetime(2026, 11, 18, 8, 30, tzinfo=UTC)
    built = _builder().imported(values.values()).build()
    assert built.require("6.7.7.5").source is Source.BMS

    bad = json.loads(path.read_text())
    bad["values"]["cycle_count"] = 3
    path.write_text(json.dumps(bad))
    with pytest.raises(RecordError, match="unknown value key.*cycle_count"):
        read_bms_readout(path)
    bad["values"] = {"number_of_full_cycles": -2}
    path.write_text(json.dumps(bad))
    with pytest.raises(RecordError, match="values.number_of_full_cycles: expected a non-negative"):
        read_bms_readout(path)


def test_earlier_passport_import_reads_the_idta_part5_example() -> None:
    with pytest.raises(RecordError, match="LastUpdate.*has no time zone"):
        read_earlier_passport(P5_EXAMPLE, passport_id="urn:uuid:old")
    values = {
        v.clause: v
        for v in read_earlier_passport(P5_EXAMPLE, passport_id="urn:uuid:old", naive_is_utc=True)
    }
    # Figures as printed in the shipped example payload.
    assert values["6.7.6.4"].value == 600
    assert values["6.7.6.7"].value == 100000.0
    assert values["6.7.6.8"].value == 214.0
    assert values["6.7.8.5"].value == ("overcharged",)
    assert values["6.7.8.4"].value == ("P2",)
    assert all(v.source is Source.EARLIER_PASSPORT for v in values.values())
    assert {v.origin for v in values.values()} == {"urn:uuid:old"}


def test_raw_data_digest_changes_with_any_sample() -> None:
    columns = {"t_s": [0.0, 1.0], "voltage_v": [3.7, 3.6]}
    digest = raw_data_sha256(columns)
    assert digest == raw_data_sha256({"voltage_v": [3.7, 3.6], "t_s": [0.0, 1.0]})
    assert digest != raw_data_sha256({"t_s": [0.0, 1.0], "voltage_v": [3.7, 3.6000000001]})


def test_conditions_survive_the_round_trip() -> None:
    record = graded_cell(4).record
    again = record_from_dict(record.to_dict())
    assert again.require("6.7.5#method=dcir").conditions == Conditions(
        temperature_c=25.0, soc_pct=0.0, pulse_length_s=10.0, rest_s=600
    )
    assert replace(again, operator="x").canonical() != record.canonical()


@dataclass(frozen=True)
class _Figure:
    """Shaped like station.grading.results.Figure (value, unit, standard uncertainty)."""

    value: float
    unit: str
    uncertainty: float | None = None


def test_grading_figures_land_on_their_clauses_in_record_units() -> None:
    builder = _builder()
    at = T0 + timedelta(minutes=30)
    builder.measured_figure(
        "energy_wh", _Figure(14.2, "Wh", 0.1), instrument="cycler", method="m", observed_at=at
    )
    builder.measured_figure(
        "rte", _Figure(0.953, "1", 0.004), instrument="cycler", method="m", observed_at=at
    )
    builder.measured_figure(
        "dcir_10s_ohm", _Figure(0.031, "ohm"), instrument="cycler", method="m", observed_at=at
    )
    record = builder.build()
    # Wh -> kWh and ratio -> %: factors 1e-3 and 100, exact to 1e-12 relative.
    assert record.number("6.7.2.6") == pytest.approx(0.0142, rel=1e-12)
    assert record.require("6.7.2.6").uncertainty == pytest.approx(1e-4, rel=1e-12)
    assert record.number("6.7.4.4") == pytest.approx(95.3, rel=1e-12)
    assert record.require("6.7.5#method=dcir").unit == "Ohm"
    with pytest.raises(RecordError, match="unit 'mOhm', expected 'ohm'"):
        _builder().measured_figure(
            "acir_ohm", _Figure(30.0, "mOhm"), instrument="acir", method="m", observed_at=at
        )
    with pytest.raises(RecordError, match="value is nan"):
        _builder().measured_figure(
            "capacity_ah", _Figure(math.nan, "Ah"), instrument="cycler", method="m", observed_at=at
        )
    with pytest.raises(RecordError, match="no DIN clause mapped"):
        _builder().measured_figure(
            "k_mv_per_day", _Figure(1.0, "mV/day"), instrument="cycler", method="m", observed_at=at
        )


def test_canonical_bytes_refuse_non_string_keys_and_odd_types() -> None:
    with pytest.raises(CanonicalJsonError, match="/a: key 1 is not a string"):
        canonical_bytes({"a": {1: "x"}})
    with pytest.raises(CanonicalJsonError, match="/b: set is not a JSON type"):
        canonical_bytes({"b": {1, 2}})
    with pytest.raises(CanonicalJsonError, match="/c/1: inf"):
        canonical_bytes({"c": [1.0, math.inf]})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_canonical_bytes_are_a_fixed_point(value: object) -> None:
    # P2: parsing canonical bytes and serialising again gives the same bytes.
    data = canonical_bytes(value)
    assert canonical_bytes(json.loads(data)) == data


def test_earlier_passport_import_reads_this_stations_own_export(tmp_path: Path) -> None:
    from station.passport.exports import idta_product_condition

    record = graded_cell(5).record
    path = tmp_path / "p5.json"
    path.write_bytes(canonical_bytes(idta_product_condition(record)))
    values = {v.clause: v for v in read_earlier_passport(path, passport_id=record.cell.passport_id)}
    assert values["6.7.6.4"].value == record.number("6.7.6.4")
    assert values["6.7.7.5"].value == record.number("6.7.7.5")
    assert values["6.7.6.8"].value == pytest.approx(
        record.number("6.7.6.8") + record.number("6.7.6.8#scope=station-test"), rel=1e-12
    )
    repurposed = _builder(
        status=BatteryStatus.REPURPOSED,
        original_passport_id=record.cell.passport_id,
        cell=replace(record.cell, passport_id=new_passport_id()),
    )
    built = repurposed.imported(values.values()).build()
    assert built.original_passport_id == record.cell.passport_id
    assert built.cell.passport_id.startswith("urn:uuid:")
    assert built.require("6.7.6.4").source is Source.EARLIER_PASSPORT

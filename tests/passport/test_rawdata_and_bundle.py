"""Raw data exports (BDF CSV, station CSV + sidecar) and the signed bundle of one cell."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from station.passport.bundle import write_bundle
from station.passport.models import aas_templates
from station.passport.rawdata import (
    RawDataError,
    RawSeries,
    bdf_csv,
    read_bdf_csv,
    write_raw_exports,
)
from station.passport.record import raw_data_sha256
from station.passport.signing import StationKey, verify_bytes
from tests.passport.batch import graded_cell
from tests.passport.schemas import CX_EXAMPLE, errors


def test_bdf_csv_round_trips_exactly_with_preferred_labels() -> None:
    raw = graded_cell(0).raw
    text = bdf_csv(raw)
    header = text.splitlines()[0].split(",")
    assert header[:4] == ["Test Time / s", "Unix Time / s", "Voltage / V", "Current / A"]
    back = read_bdf_csv(text)
    for name, column in raw.columns().items():
        assert np.array_equal(back.columns()[name], column), name
    assert back.unix_start_s == pytest.approx(raw.unix_start_s, abs=1e-6)
    machine = text.replace("Test Time / s", "test_time_second", 1).replace(
        "Voltage / V", "voltage_volt", 1
    )
    assert np.array_equal(read_bdf_csv(machine).voltage_v, raw.voltage_v)


def test_bdf_reader_names_bad_rows_and_columns() -> None:
    with pytest.raises(RawDataError, match="required column 'Current / A'"):
        read_bdf_csv("Test Time / s,Voltage / V\n0,3.7\n")
    with pytest.raises(RawDataError, match="row 3, column 'Voltage / V'"):
        read_bdf_csv("Test Time / s,Voltage / V,Current / A\n0,3.7,0\n1,abc,0\n")
    with pytest.raises(RawDataError, match="row 2: 2 fields"):
        read_bdf_csv("Test Time / s,Voltage / V,Current / A\n0,3.7\n")
    with pytest.raises(RawDataError, match="column t_s: row 1 does not increase"):
        RawSeries(np.array([0.0, 0.0]), np.array([3.7, 3.7]), np.array([0.0, 0.0]))
    with pytest.raises(RawDataError, match="column voltage_v: row 1 is not a finite number"):
        RawSeries(np.array([0.0, 1.0]), np.array([3.7, np.nan]), np.array([0.0, 0.0]))


def test_raw_exports_carry_a_sidecar_with_digests(tmp_path: Path) -> None:
    cell = graded_cell(3)
    paths = write_raw_exports(cell.record, cell.raw, tmp_path, institution="LAB")
    assert paths["bdf"].name.endswith(".bdf.csv")
    assert paths["bdf"].name.startswith("LAB__EVM-07-0003__20261121_")
    meta = json.loads(paths["meta"].read_text())
    assert meta["raw_data_sha256"] == cell.record.raw_data_sha256
    assert meta["current_sign_convention"] == "positive current charges the cell"
    for name, digest in meta["file_sha256"].items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest
    station = paths["station"].read_text().splitlines()
    assert station[0] == "t_s,voltage_v,current_a,temperature_c,step_index"
    assert len(station) == len(cell.raw.t_s) + 1


def test_raw_export_refuses_data_that_is_not_the_records(tmp_path: Path) -> None:
    cell = graded_cell(3)
    other = replace(cell.raw, voltage_v=cell.raw.voltage_v + 1e-6)
    assert raw_data_sha256(other.columns()) != cell.record.raw_data_sha256
    with pytest.raises(RawDataError, match="differs from the record's"):
        write_raw_exports(cell.record, other, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bundle_is_signed_valid_and_complete(tmp_path: Path) -> None:
    cell = graded_cell(4)
    key = StationKey.generate()
    upstream = json.loads(CX_EXAMPLE.read_text(encoding="utf-8"))
    paths = write_bundle(
        cell.record,
        cell.raw,
        tmp_path,
        key,
        templates=aas_templates(),
        upstream=upstream,
    )
    signed = {name: path for name, path in paths.items() if path.name.endswith(".signed.json")}
    assert set(signed) == {
        "record",
        "idta-02035-5",
        "idta-02035-4",
        "idta-02035-1",
        "catenax-6.1.0-performance-dynamic",
        "catenax-6.1.0-full",
    }
    for name, path in signed.items():
        result = verify_bytes(path.read_bytes(), [key.public_key])
        assert result.ok, (name, result.problems)
        if name != "record":
            assert errors(name, result.document["payload"]) == []
    assert {"aas-json", "aasx", "raw-bdf", "raw-station", "raw-meta"} <= set(paths)
    assert not list(tmp_path.glob("*.part"))

"""``station export`` and ``station report`` on a database from a real simulated-bench run
(``station run --recipe second-life-full --profile second-life``, three cells).

The exports are checked against the schemas (tests/passport/schemas.py) and verified with the
station's public key (``station verify``); the figures in the record are checked against the
database by an independent reading of the stored samples (trapezoid Ah of the C/3 discharge,
1e-9 Ah relative to the evaluation path's figure, which uses the same rows).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from station.cells import Cell
from station.clock import ManualClock
from station.passport.signing import StationKey
from station.storage import Storage
from tests.cli.conftest import LOT_HEADER, cli, station
from tests.passport.schemas import errors

LOT = "L7"
CELLS = ("C1", "C2", "C3")
BMS = {
    "format": "station-bms-readout/1",
    "readout_id": "BMS-42",
    "read_at": "2025-03-01T10:00:00Z",
    "values": {
        "number_of_full_cycles": 812,
        "energy_throughput_kwh": 12.5,
        "capacity_throughput_ah": 3900.0,
        "time_extreme_high_temp_min": 120.0,
        "time_extreme_low_temp_min": 30.0,
        "time_extreme_high_temp_charging_min": 4.0,
        "time_extreme_low_temp_charging_min": 0.0,
        "deep_discharge_events": 0,
        "overcharge_events": 0,
        "information_on_accidents": [],
        "negative_events": [],
    },
}
DATASHEET = {
    "format": "station-datasheet/1",
    "document_id": "DS-SIM-4.8",
    "issued": "2018-01-01",
    "values": {
        "6.7.4.2": 95.0, "6.7.4.6": 2.0, "6.1.3.6": 0.07, "6.7.2.11": 3.65, "6.7.3.5": 72.0,
        "6.7.3.6": 4.0, "6.7.4.3": 95.0, "6.7.6.2": 10.0, "6.7.6.6": 0.5, "6.7.6.9": 70.0,
        "6.7.7.3": -20.0, "6.7.7.4": 45.0, "6.7.6.3": 1000, "6.7.6.5": ["DS-SIM-4.8"],
        "6.7.2.5": 0.0175, "6.7.3.2#soc=20": 80.0, "6.7.3.2#soc=80": 80.0, "6.7.4.7": 2.0,
    },
    "identity": {
        "manufacturer_identifier": "SIM-MFR", "facility_identifier": "urn:sim:facility",
        "address_street": "Simulated 1", "address_zip": "00000", "address_city": "Simulated",
        "address_country": "DE", "warranty_period": "P8Y", "date_of_manufacture": "2018-01-01",
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three cells run and graded on the simulated bench; a fourth stored without a run."""
    root = tmp_path_factory.mktemp("exported")
    lot = root / "lot.csv"
    header = LOT_HEADER + ",lot,bol_resistance_ohm,manufacturer"
    rows = [f"{c},NMC,cylindrical,4.8,2.5,4.2,4.8,9.6,{LOT},0.016,ACME" for c in CELLS]
    lot.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    bench = root / "bench.toml"
    from station.config import preset_text

    bench.write_text(preset_text("sim-demo"), encoding="utf-8")
    db = root / "st.db"
    done = station(
        "run", "--bench", bench, "--recipe", "second-life-full", "--lot", lot, "--db", db,
        "--log", root / "run.log", "--profile", "second-life", "--sim-launch", "demo",
        timeout_s=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    storage = Storage(db, ManualClock(0.0))
    try:
        storage.add_cells([Cell("C4", lot=LOT, chemistry="NMC")], who="test")
    finally:
        storage.close()
    return db


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "station.pem"
    monkeypatch.setenv("STATION_KEY_FILE", str(path))
    return path


def _public_pem(key_file: Path, tmp_path: Path) -> Path:
    pem = tmp_path / "station.pub.pem"
    pem.write_bytes(StationKey.load_or_create(key_file).public_pem())
    return pem


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_raw_exports_verify_and_say_simulated(run_db: Path, tmp_path: Path, key_file: Path) -> None:
    out = tmp_path / "out"
    for fmt in ("csv", "bdf", "aas"):
        done = cli("export", "--db", run_db, "--cell", "C2", "--format", fmt, "--out", out,
                   "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        assert document["simulated"] is True and document["grade"] == "RETEST"
    names = _files(out)
    assert "C2.record.signed.json" in names and "C2.aas.json" in names and "C2.aasx" in names
    assert any(n.endswith(".bdf.csv") for n in names)
    assert any(n.endswith(".station.csv") for n in names)
    assert not [n for n in names if n.startswith(".station-export")]  # staging removed
    record = out / "C2.record.signed.json"
    pem = _public_pem(key_file, tmp_path)
    bdf = next(out / n for n in names if n.endswith(".bdf.csv"))
    verified = cli("verify", record, "--public-key", pem, "--raw", bdf, "--json")
    assert verified.returncode == 0, verified.stdout
    assert json.loads(verified.stdout)["status"] == "valid"
    document = json.loads(record.read_text(encoding="utf-8"))["document"]
    assert "[SIMULATED]" in document["station_id"]
    assert all(i["simulated"] for i in document["instruments"])
    # The capacity in the record against an independent trapezoid over the stored C/3 discharge.
    with sqlite3.connect(f"file:{run_db}?mode=ro", uri=True) as conn:
        run_pk, step = conn.execute(
            "SELECT r.run_pk, e.step_index FROM runs r JOIN step_events e USING (run_pk)"
            " WHERE r.cell_id = 'C2' AND e.event = 'started' AND e.step_kind = 'discharge_cc'"
            " ORDER BY e.step_index LIMIT 1"
        ).fetchone()
        rows = np.array(
            conn.execute(
                "SELECT t_s, current_a, step_index FROM samples WHERE run_pk = ? ORDER BY seq",
                (run_pk,),
            ).fetchall()
        )
    inside = np.flatnonzero(rows[:, 2] == step)
    span = rows[inside[0] - 1 : inside[-1] + 1]  # the interval ending at the first row counts
    ah = -float(np.sum((span[1:, 1] + span[:-1, 1]) * np.diff(span[:, 0])) / 2.0 / 3600.0)
    assert document["values"]["6.7.2.3"]["value"] == pytest.approx(ah, rel=1e-9)


def test_idta_and_catenax_need_history_and_validate_with_it(
    run_db: Path, tmp_path: Path, key_file: Path
) -> None:
    out = tmp_path / "out"
    missing = cli("export", "--db", run_db, "--cell", "C1", "--format", "idta", "--out", out)
    assert missing.returncode == 2
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "number of full cycles" in lines[0] and "--bms-readout" in lines[0]
    assert _files(out) == []  # nothing written, not even the record
    bms, sheet = tmp_path / "bms.json", tmp_path / "sheet.json"
    bms.write_text(json.dumps(BMS), encoding="utf-8")
    sheet.write_text(json.dumps(DATASHEET), encoding="utf-8")
    extra = ("--bms-readout", bms, "--datasheet", sheet)
    for fmt in ("idta", "catenax"):
        done = cli("export", "--db", run_db, "--cell", "C1", "--format", fmt, "--out", out, *extra)
        assert done.returncode == 0, done.stderr
    pem = _public_pem(key_file, tmp_path)
    for target in (
        "idta-02035-5",
        "idta-02035-4",
        "idta-02035-1",
        "catenax-6.1.0-performance-dynamic",
    ):
        path = out / f"C1.{target}.signed.json"
        export = json.loads(path.read_text(encoding="utf-8"))["document"]
        assert errors(target, export["payload"]) == [], target
        assert export["metadata"]["simulated"] is True
        assert cli("verify", path, "--public-key", pem).returncode == 0


def test_export_errors_are_one_line_and_write_nothing(
    run_db: Path, tmp_path: Path, key_file: Path
) -> None:
    out = tmp_path / "out"
    cases = [
        (("--cell", "C9", "--format", "csv"), "'C9' is not in the database"),
        (("--cell", "C4", "--format", "csv"), "'C4' has no stored grade"),
        (("--cell", "C1", "--format", "pdf"), "invalid choice: 'pdf'"),
        (("--cell", "C1", "--format", "csv", "--bms-readout", tmp_path / "none.json"),
         "none.json does not exist"),
        (("--cell", "C1", "--format", "csv", "--earlier-passport", tmp_path / "bms.json"),
         "needs --original-passport-id"),
    ]  # fmt: skip
    (tmp_path / "bms.json").write_text(json.dumps(BMS), encoding="utf-8")
    for args, message in cases:
        done = cli("export", "--db", run_db, "--out", out, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        if "invalid choice" not in message:
            assert len(done.stderr.strip().splitlines()) == 1
        assert _files(out) == []
    no_db = cli("export", "--db", tmp_path / "none.db", "--cell", "C1", "--format", "csv")
    assert no_db.returncode == 2 and "does not exist" in no_db.stderr
    assert not (tmp_path / "none.db").exists()


def test_report_writes_certificates_and_lists_the_ungraded(
    run_db: Path, tmp_path: Path, key_file: Path
) -> None:
    out = tmp_path / "report"
    done = cli("report", "--db", run_db, "--lot", LOT, "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert sorted(document["certificates"]) == list(CELLS)
    assert list(document["left_out"]) == ["C4"] and "no stored grade" in document["left_out"]["C4"]
    assert document["simulated"] is True
    assert (out / "batch-report.pdf").read_bytes().startswith(b"%PDF")
    for cell in CELLS:
        assert (out / "certificates" / f"{cell}.pdf").read_bytes().startswith(b"%PDF")
        record = out / "records" / f"{cell}.record.signed.json"
        pem = _public_pem(key_file, tmp_path)
        assert cli("verify", record, "--public-key", pem).returncode == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".station-report")]
    if shutil.which("pdftotext"):
        import subprocess

        text = subprocess.run(
            ["pdftotext", "-layout", str(out / "certificates" / "C1.pdf"), "-"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        reasons = text.split("Why this grade", 1)[1].split("Key figures", 1)[0]
        lines = [line.strip() for line in reasons.splitlines() if line.strip()]
        assert len(lines) == len(set(lines))  # no reason printed twice
        assert "[SIMULATED]" in text
        batch = subprocess.run(
            ["pdftotext", "-layout", str(out / "batch-report.pdf"), "-"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        left_out = batch.split("not in this report", 1)[1]
        assert "C4" in left_out and "no stored grade" in left_out


def test_report_errors_write_nothing(
    run_db: Path, tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report"
    originals = tmp_path / "originals.csv"
    originals.write_text(
        "cell_id,original_passport_id\nC1,urn:x:1\nC2,\nC1,urn:x:3\n", encoding="utf-8"
    )
    bad_rows = cli("report", "--db", run_db, "--lot", LOT, "--out", out, "--originals", originals)
    assert bad_rows.returncode == 2
    line = bad_rows.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "row 2" in line and "row 3" in line and "given twice" in line
    assert not out.exists()
    originals.write_text("cell,passport\nC1,urn:x:1\n", encoding="utf-8")
    bad_header = cli("report", "--db", run_db, "--lot", LOT, "--out", out, "--originals", originals)
    assert bad_header.returncode == 2 and "header must be" in bad_header.stderr
    unknown_lot = cli("report", "--db", run_db, "--lot", "L0", "--out", out)
    assert unknown_lot.returncode == 2 and "lot 'L0' holds no cells" in unknown_lot.stderr
    assert not out.exists() or _files(out) == []
    originals.write_text("cell_id,original_passport_id\nC9,urn:x:9\n", encoding="utf-8")
    stranger = cli("report", "--db", run_db, "--lot", LOT, "--out", out, "--originals", originals)
    assert stranger.returncode == 2 and "C9" in stranger.stderr
    assert _files(out) == []
    monkeypatch.setenv("STATION_DB", str(tmp_path / "absent.db"))
    missing = cli("report", "--lot", LOT, "--out", out)
    assert missing.returncode == 2 and "absent.db does not exist" in missing.stderr


def test_several_cells_export_together_and_the_ungradable_are_listed(
    run_db: Path, tmp_path: Path
) -> None:
    """The API the GUI's batch export calls: the graded cells are written, C4 (stored without a
    grade) is left out with why; when no cell can be exported, nothing is written."""
    from station.passport.signing import verify_bytes
    from station.passport.writer import ExportError, export_cells

    key = StationKey.generate()
    out = tmp_path / "several"
    result = export_cells(run_db, [*CELLS, "C4"], "csv", out, key)
    assert list(result.files) == list(CELLS)
    assert list(result.left_out) == ["C4"] and "no stored grade" in result.left_out["C4"]
    assert sorted(p.name for p in result.paths()) == _files(out)
    for cell in CELLS:
        signed = (out / f"{cell}.record.signed.json").read_bytes()
        verified = verify_bytes(signed, [key.public_key])
        assert verified.ok, verified.problems
        assert verified.document["record_id"] == result.records[cell].record_id
    empty = tmp_path / "none"
    with pytest.raises(ExportError, match="no cell could be exported"):
        export_cells(run_db, list(CELLS), "idta", empty, key)
    assert _files(empty) == []

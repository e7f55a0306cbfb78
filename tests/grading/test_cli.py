"""``station analyze`` and ``station eis-fit`` end to end on files written by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from station.cli.main import main
from station.grading.eis import CIRCUITS
from tests.grading.cellmodel import RcCell

HEADER = "Test Time / s,Voltage / V,Current / A,Cycle Count / 1,Step Count / 1"


def write_bdf(
    path: Path, t: np.ndarray, v: np.ndarray, i: np.ndarray, step: np.ndarray, cycle: np.ndarray
) -> None:
    rows = "\n".join(
        f"{a:.4f},{b:.6f},{c:.6f},{int(d)},{int(e)}"
        for a, b, c, d, e in zip(t, v, i, cycle, step, strict=True)
    )
    path.write_text(HEADER + "\n" + rows + "\n")


def cycled_cell() -> tuple[np.ndarray, ...]:
    cell = RcCell(capacity_ah=1.0, soc=0.5)
    cycles = []
    for n in (1, 2):
        start = len(cell.t)
        cell.hold(0.0, 30.0, 1.0)
        cell.hold(-1.0, 10.0, 0.01)  # pulse sampled at 100 Hz
        cell.hold(0.0, 30.0, 1.0)
        cell.cc_until(1.0, 4.1, 5.0)
        cell.cv_hold(4.1, 0.05, 5.0)
        cell.hold(0.0, 60.0, 5.0)
        cell.cc_until(-1.0, 3.3, 5.0)
        cycles.append(np.full(len(cell.t) - start, n))
    t, v, i, step = cell.arrays()
    return t, v, i, step, np.concatenate(cycles)


def test_analyze_json_matches_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t, v, i, step, cycle = cycled_cell()
    path = tmp_path / "cell.bdf.csv"
    write_bdf(path, t, v, i, step, cycle)
    assert main(["analyze", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [c["cycle"] for c in doc["cycles"]] == [1, 2]
    for n, row in zip((1, 2), doc["cycles"], strict=True):
        sel = cycle == n
        ts, cs = t[sel], i[sel]
        # Independent reference: the model's zero-order-hold charge. Trapezoid and hold differ
        # by half a 5 s sample of current change at each edge of the CV decay: within 2e-3 Ah.
        exact_ch = float(np.sum(np.maximum(cs[:-1], 0) * np.diff(ts))) / 3600
        exact_dis = float(-np.sum(np.minimum(cs[:-1], 0) * np.diff(ts))) / 3600
        assert row["charge_ah"] == pytest.approx(exact_ch, abs=2e-3)
        assert row["discharge_ah"] == pytest.approx(exact_dis, abs=2e-3)
        # Relative error of the ratio: about 2e-3 Ah over ~0.7 Ah of charge each side.
        assert row["coulombic_efficiency"] == pytest.approx(exact_dis / exact_ch, rel=8e-3)
    assert len(doc["pulses"]) == 2
    # Pulse from rest at 100 Hz: DCIR(0.1 s) = R0 + R1 (1 - e^-0.1/20) + OCV drift.
    expected = 0.03 + 0.02 * (1 - np.exp(-0.1 / 20.0))
    assert doc["pulses"][0]["dcir_0.1_ohm"] == pytest.approx(expected, rel=0.01)
    assert doc["pulses"][0]["start_s"] == pytest.approx(30.0)


def test_analyze_text_output_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t, v, i, step, cycle = cycled_cell()
    path = tmp_path / "cell.csv"
    write_bdf(path, t, v, i, step, cycle)
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "coulombic_efficiency" in out and "dcir_0.1_ohm" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("Test Time / s,Voltage / V\n0,3.6\n1,3.6\n")
    assert main(["analyze", str(bad)]) == 2
    assert "'Current / A'" in capsys.readouterr().err
    bad.write_text(f"{HEADER}\n0,3.6,1,1,1\n1,x,1,1,1\n2,3.6,1,1,1\n")
    assert main(["analyze", str(bad)]) == 2
    assert "line 3, column 'voltage_v'" in capsys.readouterr().err
    bad.write_text(f"{HEADER}\n0,3.6,1,1,1\n2,3.6,1,1,1\n1,3.6,1,1,1\n")
    assert main(["analyze", str(bad)]) == 2
    assert "backwards at line(s) 4" in capsys.readouterr().err


def test_opposite_sign_convention_is_refused_then_flipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t, v, i, step, cycle = cycled_cell()
    path = tmp_path / "flipped.csv"
    write_bdf(path, t, v, -i, step, cycle)
    assert main(["analyze", str(path)]) == 2
    assert "--flip-current" in capsys.readouterr().err
    assert main(["analyze", str(path), "--flip-current", "--json"]) == 0
    flipped = json.loads(capsys.readouterr().out)["cycles"]
    straight = tmp_path / "straight.csv"
    write_bdf(straight, t, v, i, step, cycle)
    assert main(["analyze", str(straight), "--json"]) == 0
    # Flipping back gives the very same figures as the charge-positive file.
    assert flipped == json.loads(capsys.readouterr().out)["cycles"]


PARAMS = np.array([0.012, 0.006, 1.5, 0.8, 0.004, 10.0])


@pytest.mark.parametrize("header", ["frequency_hz,z_real_ohm,-z_imag_ohm\n", ""])
def test_eis_fit_recovers_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str
) -> None:
    f = np.geomspace(1e4, 1e-2, 50)
    z = CIRCUITS["randles"].impedance(PARAMS, f)[0]
    path = tmp_path / "spectrum.csv"
    lines = (
        f"{float(a)!r},{float(b.real)!r},{float(-b.imag)!r}" for a, b in zip(f, z, strict=True)
    )
    path.write_text(header + "\n".join(lines))
    assert main(["eis-fit", str(path), "--circuit", "randles", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    values = [p["value"] for p in doc["fit"]["parameters"]]
    # Exact synthetic data written with repr(): parameters back to 1e-6 relative.
    np.testing.assert_allclose(values, PARAMS, rtol=1e-6)
    assert doc["kramers_kronig"]["valid"] is True
    assert main(["eis-fit", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Kramers-Kronig" in out and "R0 =" in out


def test_eis_fit_bad_file_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("f,re,im\n1000,0.01,0.001\n100,abc,0.002\n")
    assert main(["eis-fit", str(path)]) == 2
    assert "line 3" in capsys.readouterr().err

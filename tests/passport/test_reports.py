"""Reports: recomputation check, certificate and batch PDFs (text extracted), safe summaries."""

from __future__ import annotations

import csv
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from station.passport.rawdata import RawSeries
from station.passport.record import BatteryStatus, GradeOutcome
from station.passport.signing import StationKey, sign_document
from station.reports.batch import matching_groups, render_batch_report, summarise
from station.reports.certificate import SignatureInfo, render_certificate
from station.reports.plots import Impedance
from station.reports.recompute import (
    StepPlan,
    check_record,
    integrate_ah,
    integrate_wh,
    pulse_resistance_ohm,
    recompute,
)
from station.reports.summary import neutralise, restore, write_csv, write_xlsx
from tests.passport.batch import GradedCell, graded_batch

PLAN = StepPlan(discharge_step=2, charge_step=5, pulse_step=4)


@pytest.fixture(scope="module")
def batch() -> list[GradedCell]:
    return graded_batch(16)


def _pdftotext(path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


# ---- recomputation helper against analytic integrals ------------------------------------------


def _series(t: np.ndarray, v: np.ndarray, i: np.ndarray, step: np.ndarray) -> RawSeries:
    return RawSeries(t_s=t, voltage_v=v, current_a=i, step_index=step.astype(float))


def test_integration_is_exact_for_a_constant_current_linear_voltage_discharge() -> None:
    # Rest row at t=0, then 2 A discharge for 1800 s with V falling linearly 4.0 -> 3.5 V.
    t = np.linspace(0.0, 1800.0, 1801)
    v = 4.0 - 0.5 * t / 1800.0
    i = np.where(t > 0, -2.0, 0.0)
    step = np.where(t > 0, 2, 1)
    raw = _series(t, v, i, step)
    # Analytic: Q = 2 A * 0.5 h = 1 Ah. E = 2 A * mean(V) * 0.5 h = 2 * 3.75 * 0.5 = 3.75 Wh.
    # The first step row (t=1 s) starts from the rest row, whose current is 0, so the first
    # trapezoid carries half a second less charge: Q = 1 - 2*0.5/3600 Ah exactly.
    q_exact = 1.0 - 1.0 / 3600.0
    assert -integrate_ah(raw, 2) == pytest.approx(q_exact, rel=1e-12)
    e_first = 0.5 * 2.0 * v[1] * 1.0 / 3600.0
    e_rest = 2.0 * (v[1] + v[-1]) / 2.0 * (1800.0 - 1.0) / 3600.0
    assert -integrate_wh(raw, 2) == pytest.approx(e_first + e_rest, rel=1e-12)


def test_integration_converges_on_a_sinusoidal_current() -> None:
    # I = sin(2*pi*t/T) over half a period: integral = T/pi A*s. Trapezoid error ~ (dt/T)^2.
    period = 3600.0
    t = np.linspace(0.0, period / 2, 18001)
    i = np.sin(2 * np.pi * t / period)
    raw = _series(t, np.full_like(t, 3.7), i, np.full_like(t, 3))
    expected_ah = period / np.pi / 3600.0
    assert integrate_ah(raw, 3) == pytest.approx(expected_ah, rel=1e-7)
    assert integrate_wh(raw, 3) == pytest.approx(3.7 * expected_ah, rel=1e-7)


def test_pulse_resistance_of_an_ideal_series_resistor() -> None:
    r_ohm = 0.0312
    t = np.arange(0.0, 20.0, 0.5)
    i = np.where((t >= 5.0) & (t < 15.0), -10.0, 0.0)
    v = 3.6 + r_ohm * i
    step = np.where((t >= 5.0) & (t < 15.0), 4, 3)
    assert pulse_resistance_ohm(_series(t, v, i, step), 4) == pytest.approx(r_ohm, rel=1e-12)


def test_every_record_figure_equals_the_recomputed_figure(batch: list[GradedCell]) -> None:
    for cell in batch:
        assert check_record(cell.record, cell.raw, PLAN, rel_tol=1e-9) == []
        figures = recompute(cell.raw, PLAN, 5.0)
        assert set(figures) >= {"6.7.2.3", "6.7.2.6", "6.7.4.4", "6.7.5#method=dcir"}
    cell = batch[0]
    tampered = replace(
        cell.record,
        values=tuple(
            replace(v, value=float(v.value) * (1 + 1e-6)) if v.key == "6.7.2.3" else v  # type: ignore[arg-type]
            for v in cell.record.values
        ),
    )
    mismatches = check_record(tampered, cell.raw, PLAN)
    assert [m.key for m in mismatches] == ["6.7.2.3"]
    assert mismatches[0].relative == pytest.approx(1e-6, rel=1e-3)


# ---- PDFs --------------------------------------------------------------------------------------


def test_certificate_pdf_carries_the_recomputed_figures(
    batch: list[GradedCell], tmp_path: Path
) -> None:
    cell = batch[2]
    key = StationKey.generate()
    signed = sign_document(cell.record.to_dict(), key)
    info = SignatureInfo.from_signed(signed)
    path = render_certificate(
        cell.record,
        cell.raw,
        tmp_path / "cert.pdf",
        signature=info,
        discharge_step=2,
        pulse_step=4,
        impedance=Impedance(cell.eis_frequency_hz, cell.eis_z, cell.eis_fit_z),
    )
    text = _pdftotext(path)
    figures = recompute(cell.raw, PLAN, 5.0)
    record = cell.record
    expected = [
        record.cell.serial_number,
        record.cell.passport_id,
        f"BIN {record.grade.bin.upper()}",
        *record.grade.reasons,
        f"{figures['6.7.2.3']:.3f}",  # Ah
        f"{figures['6.7.2.6'] * 1000:.2f}",  # Wh
        f"{figures['6.7.4.4']:.1f}",  # %
        f"{figures['6.7.5#method=dcir'] * 1000:.2f}",  # mOhm
        f"{figures['x-station.soh-capacity']:.1f}",
        f"{2 * record.require('6.7.2.3').uncertainty:.3f}",  # U = 2u
        info.key_fingerprint,
        info.signed_sha256,
        record.raw_data_sha256,
        "OVERDUE",  # the BT3562 calibration expired before the test
        "CAL-2026-0412",
    ]
    missing = [item for item in expected if item not in text]
    assert missing == []
    assert not list(tmp_path.glob("*.part"))


def test_batch_report_pdf_lists_yield_rejects_groups_and_flags(
    batch: list[GradedCell], tmp_path: Path
) -> None:
    records = [c.record for c in batch]
    summary = summarise(records, lot="LOT-7", group_size=2, capacity_tol_pct=4.0)
    assert summary.groups
    path = render_batch_report(summary, tmp_path / "batch.pdf")
    text = _pdftotext(path)
    rejects = [r for r in records if r.grade.bin == "reject"]
    assert f"{(len(records) - len(rejects)) / len(records) * 100:.1f}" in text
    for record in rejects:
        assert record.cell.serial_number in text
    assert "capacity below 65 % of rated" in text
    for group in summary.groups:
        assert f"{group.capacity_spread_pct:.2f}" in text
    assert "calibration HIOKI BT3562 s/n 230511204 (overdue)" in text


def test_yield_counts_released_cells_and_lists_held_ones(
    batch: list[GradedCell], tmp_path: Path
) -> None:
    """Reference: counting by hand. Two passing cells become RETEST and QUARANTINE (status
    original, as ``status_for_decision`` gives): they leave the yield and the matching groups
    and are listed with their reasons."""
    records = [c.record for c in batch]
    passing = [i for i, r in enumerate(records) if r.status is BatteryStatus.REPURPOSED]
    for index, decision in zip(passing[:2], ("RETEST", "QUARANTINE"), strict=True):
        record = records[index]
        grade = replace(record.grade, grade=decision, bin=decision, reasons=(f"{decision} why",))
        records[index] = replace(record, grade=grade, status=BatteryStatus.ORIGINAL)
    summary = summarise(records, lot="LOT-7", group_size=2, capacity_tol_pct=4.0)
    released = [r for r in records if r.status is BatteryStatus.REPURPOSED]
    assert summary.released == len(released) == len(passing) - 2
    assert summary.yield_pct == pytest.approx(len(released) / len(records) * 100.0, abs=1e-12)
    held = sorted(records[i].cell.serial_number for i in passing[:2])
    assert [r.cell.serial_number for r in summary.held] == held
    grouped = {s for g in summary.groups for s in g.serials}
    assert grouped.isdisjoint(held) and not set(summary.unmatched) & set(held)
    assert list(summary.unmatched) == sorted(summary.unmatched)
    text = _pdftotext(render_batch_report(summary, tmp_path / "batch.pdf"))
    assert "yield (released: a reuse bin)" in text and f"{summary.yield_pct:.1f}" in text
    assert "RETEST why" in text and "QUARANTINE why" in text


def test_matching_groups_respect_size_and_tolerance(batch: list[GradedCell]) -> None:
    records = [c.record for c in batch]
    groups, unmatched = matching_groups(records, group_size=2, capacity_tol_pct=4.0)
    grouped = [s for g in groups for s in g.serials]
    passing = [r for r in records if r.grade.bin != "reject"]
    assert sorted(grouped + unmatched) == sorted(r.cell.serial_number for r in passing)
    by_serial = {r.cell.serial_number: r for r in records}
    for group in groups:
        caps = [by_serial[s].number("6.7.2.3") for s in group.serials]
        assert len(caps) == 2
        assert {by_serial[s].grade.bin for s in group.serials} == {group.bin}
        assert (max(caps) - min(caps)) / min(caps) * 100 <= 4.0
        assert group.capacity_spread_pct == pytest.approx((max(caps) - min(caps)) / min(caps) * 100)


# ---- formula injection -------------------------------------------------------------------------

ATTACKS = [
    '=HYPERLINK("http://x","click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1",
    "\r=1",
    "\0=1",
    "'=1",
    "plain text",
    "back\\slash \x07 bell",
]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_neutralise_is_reversible_and_safe(text: str) -> None:
    cell = neutralise(text)
    assert restore(cell) == text
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r", "\0"))
    assert "\0" not in cell


def test_csv_and_xlsx_summaries_neutralise_every_attack(
    batch: list[GradedCell], tmp_path: Path
) -> None:
    records = []
    for attack, cell in zip(ATTACKS, batch, strict=False):
        grade = GradeOutcome(attack, cell.record.grade.bin, (attack,), "p", "1")
        records.append(replace(cell.record, grade=grade, operator=attack))
    csv_path = write_csv(records, tmp_path / "summary.csv")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    for row, attack, record in zip(rows[1:], ATTACKS, records, strict=True):
        for value in row:
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r", "\0"))
        assert restore(row[header.index("operator")]) == attack
        assert restore(row[header.index("reasons")]) == attack
        assert float(row[header.index("capacity_ah")]) == record.number("6.7.2.3")

    xlsx_path = write_xlsx(records, tmp_path / "summary.xlsx")
    sheet = load_workbook(xlsx_path).active
    assert sheet is not None
    cells = list(sheet.iter_rows(min_row=2))
    assert len(cells) == len(ATTACKS)
    for row, attack in zip(cells, ATTACKS, strict=True):
        for cell in row:
            assert cell.data_type != "f"
        assert restore(str(row[9].value)) == attack  # operator column
        assert isinstance(row[5].value, float)


def test_certificate_without_pulse_or_spectrum_and_with_long_reasons(
    batch: list[GradedCell], tmp_path: Path
) -> None:
    cell = batch[5]
    reasons = tuple(f"reason number {n}: a rule explanation in plain words" for n in range(6))
    record = replace(cell.record, grade=replace(cell.record.grade, reasons=reasons))
    signed = sign_document(record.to_dict(), StationKey.generate())
    path = render_certificate(
        record,
        cell.raw,
        tmp_path / "minimal.pdf",
        signature=SignatureInfo.from_signed(signed),
        discharge_step=2,
    )
    text = _pdftotext(path)
    assert all(reason in text for reason in reasons)
    assert text.count("\f") == 2  # the plots shrink to fit instead of adding a page


def test_batch_report_repeats_table_headers_on_later_pages(tmp_path: Path) -> None:
    records = [c.record for c in graded_batch(40, seed=3)]
    path = render_batch_report(summarise(records, lot="LOT-40"), tmp_path / "b.pdf")
    pages = _pdftotext(path).split("\f")
    assert len([p for p in pages if p.strip()]) >= 2
    assert all("Serial" in page for page in pages if page.strip())

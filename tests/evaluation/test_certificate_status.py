"""The certificate's battery status follows the final decision: a cell held for re-test,
quarantined or rejected is never printed as repurposed."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from station.passport.record import BatteryStatus
from station.passport.signing import StationKey, sign_document
from station.reports.certificate import SignatureInfo, render_certificate, status_for_decision
from tests.passport.batch import graded_batch


def test_status_follows_the_decision() -> None:
    assert status_for_decision("A", "mobility reuse or demanding storage") is (
        BatteryStatus.REPURPOSED
    )
    assert status_for_decision("D", "recycle") is BatteryStatus.WASTE
    assert status_for_decision("REJECT") is BatteryStatus.WASTE
    assert status_for_decision("QUARANTINE") is BatteryStatus.ORIGINAL
    assert status_for_decision("RETEST") is BatteryStatus.ORIGINAL


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        ("RETEST", "held for re-test"),
        ("QUARANTINE", "quarantined (safety hold)"),
        ("REJECT", "rejected"),
    ],
)
def test_certificate_of_an_unreleased_cell_never_says_repurposed(
    tmp_path: Path, outcome: str, words: str
) -> None:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    cell = graded_batch(3)[0]
    # A record that (wrongly) carries a market status: the certificate still must not print it.
    record = replace(
        cell.record,
        status=BatteryStatus.REPURPOSED,
        grade=replace(cell.record.grade, grade=outcome, bin=outcome),
    )
    signed = sign_document(record.to_dict(), StationKey.generate())
    path = render_certificate(
        record,
        cell.raw,
        tmp_path / "cert.pdf",
        signature=SignatureInfo.from_signed(signed),
        discharge_step=2,
        pulse_step=4,
    )
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "repurposed" not in text.lower()
    assert words in text

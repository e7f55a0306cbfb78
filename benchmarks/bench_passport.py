"""Passport speed figures: sign and verify throughput, export building, PDF rendering.

Run: ``.venv/bin/python -m benchmarks.bench_passport`` from the repository root. Goals (2-core
lab PC): verifying a signed export < 5 ms; a certificate PDF < 2 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import Case, write_result
from station.passport.exports import all_exports
from station.passport.signing import StationKey, sign_document, verify_bytes
from station.reports.certificate import SignatureInfo, render_certificate
from station.reports.plots import Impedance
from tests.passport.batch import graded_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    args = parser.parse_args()
    batch = graded_batch(40, seed=5)
    key = StationKey.generate()
    start = time.perf_counter()
    documents = []
    for cell in batch:
        documents.append(cell.record.to_dict())
        documents.extend(all_exports(cell.record).values())
    built = time.perf_counter() - start
    start = time.perf_counter()
    signed = [sign_document(d, key) for d in documents]
    sign_s = time.perf_counter() - start
    start = time.perf_counter()
    assert all(verify_bytes(s, [key.public_key]).ok for s in signed)
    verify_s = time.perf_counter() - start
    n = len(documents)
    print(f"records+exports built: {n} in {built:.2f} s ({built / len(batch) * 1e3:.1f} ms/cell)")
    print(f"sign:   {sign_s / n * 1e3:.2f} ms/document")
    print(f"verify: {verify_s / n * 1e3:.2f} ms/document")
    cell = batch[0]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        render_certificate(
            cell.record,
            cell.raw,
            Path(tmp) / "c.pdf",
            signature=SignatureInfo.from_signed(signed[0]),
            discharge_step=2,
            pulse_step=4,
            impedance=Impedance(cell.eis_frequency_hz, cell.eis_z, cell.eis_fit_z),
        )
        pdf_s = time.perf_counter() - start
        print(f"certificate PDF: {pdf_s:.2f} s")
    per_cell = f"{n} documents from {len(batch)} graded cells (records and every export)"
    cases = [
        Case(
            case="build passport records and exports",
            metric="ms/cell",
            station=round(built / len(batch) * 1e3, 2),
            peer=None,
            peer_name="",
            higher_is_better=False,
            notes=per_cell,
        ),
        Case(
            case="sign one document (Ed25519, JWS)",
            metric="ms/document",
            station=round(sign_s / n * 1e3, 3),
            peer=None,
            peer_name="",
            higher_is_better=False,
            notes=per_cell,
        ),
        Case(
            case="verify one signed export",
            metric="ms/document",
            station=round(verify_s / n * 1e3, 3),
            peer=None,
            peer_name="",
            higher_is_better=False,
            goal=5.0,
            notes=per_cell + "; goal under 5 ms",
        ),
        Case(
            case="certificate PDF",
            metric="s",
            station=round(pdf_s, 3),
            peer=None,
            peer_name="",
            higher_is_better=False,
            goal=2.0,
            notes="one certificate with plots and impedance; goal under 2 s",
        ),
    ]
    write_result("passport", cases, args.out)


if __name__ == "__main__":
    main()

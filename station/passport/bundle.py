"""Write everything the station issues for one graded cell into a directory, signed.

``<serial>.record.signed.json`` and one ``<serial>.<target>.signed.json`` per export (see
:mod:`station.passport.exports`), the AAS JSON and AASX when the templates are given, a full
Catena-X payload when an upstream passport is given, and the raw data files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from station.passport.aas import AasTemplates, write_aas_json, write_aasx
from station.passport.exports import all_exports, catenax_full
from station.passport.rawdata import RawSeries, write_raw_exports
from station.passport.record import GradingRecord
from station.passport.signing import StationKey, sign_document


def _write(path: Path, data: bytes) -> Path:
    temporary = path.with_name(path.name + ".part")
    temporary.write_bytes(data)
    temporary.replace(path)
    return path


def write_bundle(
    record: GradingRecord,
    raw: RawSeries,
    out_dir: Path,
    key: StationKey,
    *,
    templates: AasTemplates | None = None,
    upstream: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Build every export first (so a failing one leaves nothing behind), then write them."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", record.cell.serial_number).strip("-")
    documents: dict[str, Mapping[str, Any]] = {"record": record.to_dict()}
    documents.update(all_exports(record))
    if upstream is not None:
        documents["catenax-6.1.0-full"] = catenax_full(record, upstream)
    signed = {name: sign_document(document, key) for name, document in documents.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        name: _write(out_dir / f"{stem}.{name}.signed.json", data) for name, data in signed.items()
    }
    if templates is not None:
        paths["aas-json"] = write_aas_json(record, templates, out_dir / f"{stem}.aas.json")
        paths["aasx"] = write_aasx(record, templates, out_dir / f"{stem}.aasx")
    for name, path in write_raw_exports(record, raw, out_dir).items():
        paths[f"raw-{name}"] = path
    return paths

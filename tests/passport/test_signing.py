"""Signatures: 1,000 signed exports verify; 1,000 with one changed byte or field are rejected."""

from __future__ import annotations

import json
import os
import random
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from station.cli.main import main
from station.passport.canonical import canonical_bytes, leaf_paths
from station.passport.exports import all_exports
from station.passport.signing import (
    KEY_ENV,
    SigningError,
    StationKey,
    b64url,
    b64url_decode,
    sign_document,
    verify_bytes,
)
from tests.passport.batch import GradedCell, graded_batch

N = 1000


@pytest.fixture(scope="module")
def key() -> StationKey:
    return StationKey.generate()


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    """1,000 documents: the records and every export of a 40-cell batch (200 distinct), cycled."""
    batch: list[GradedCell] = graded_batch(40, seed=11)
    pool: list[dict[str, Any]] = []
    for cell in batch:
        pool.append(cell.record.to_dict())
        pool.extend(all_exports(cell.record).values())
    return [pool[i % len(pool)] for i in range(N)]


@pytest.fixture(scope="module")
def signed(documents: list[dict[str, Any]], key: StationKey) -> list[bytes]:
    return [sign_document(document, key) for document in documents]


def test_signed_files_verify(signed: list[bytes], key: StationKey) -> None:
    results = [verify_bytes(data, [key.public_key]) for data in signed]
    assert sum(r.ok for r in results) == N
    assert all(r.trusted and r.kid == key.fingerprint for r in results)
    header = json.loads(b64url_decode(json.loads(signed[0])["signature"]["protected"]))
    assert header["alg"] == "EdDSA"
    assert header["jwk"]["crv"] == "Ed25519"


def test_one_changed_byte_is_always_rejected(signed: list[bytes], key: StationKey) -> None:
    rng = random.Random(20261122)
    rejected = 0
    for data in signed:
        position = rng.randrange(len(data))
        replacement = rng.choice([b for b in range(256) if b != data[position]])
        mutated = data[:position] + bytes([replacement]) + data[position + 1 :]
        result = verify_bytes(mutated, [key.public_key])
        assert result.problems, f"undetected change at byte {position}"
        rejected += not result.ok
    assert rejected == N


def _random_leaf_change(document: dict[str, Any], rng: random.Random) -> tuple[Any, str]:
    leaves = leaf_paths(document)
    pointer = rng.choice(sorted(leaves))
    old = leaves[pointer]
    if isinstance(old, bool) or old is None:
        new: Any = "x" if old is None else not old
    elif isinstance(old, int | float):
        new = old + rng.choice([1, -1, 1e-9 * (abs(old) or 1)])
        if new == old:
            new = old + 1
    elif isinstance(old, str):
        new = old + "x" if old else "x"
    else:
        new = ["x"]
    changed = json.loads(json.dumps(document))
    node = changed
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.strip("/").split("/")]
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = new
    else:
        node[last] = new
    return changed, pointer


def test_one_changed_field_is_rejected_and_named(signed: list[bytes], key: StationKey) -> None:
    rng = random.Random(7)
    for data in signed:
        outer = json.loads(data)
        outer["document"], pointer = _random_leaf_change(outer["document"], rng)
        # A forger who re-canonicalises the file still fails the signature.
        result = verify_bytes(canonical_bytes(outer), [key.public_key])
        assert not result.ok
        assert pointer in result.changed_fields, (pointer, result.problems)


def test_foreign_and_self_asserted_keys(signed: list[bytes], key: StationKey) -> None:
    other = StationKey.generate()
    forged = sign_document(json.loads(signed[0])["document"], other)
    assert verify_bytes(forged).ok  # integrity holds for the embedded key ...
    result = verify_bytes(forged, [key.public_key])  # ... but the signer is not trusted
    assert not result.ok
    assert any("not a trusted key" in p for p in result.problems)
    # Swapping in another key's jwk without re-signing breaks the header check.
    outer = json.loads(signed[0])
    header = json.loads(b64url_decode(outer["signature"]["protected"]))
    header["jwk"] = other.jwk
    outer["signature"]["protected"] = b64url(canonical_bytes(header))
    assert not verify_bytes(canonical_bytes(outer), [key.public_key]).ok


def test_key_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "station.pem"
    first = StationKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert StationKey.load_or_create(path).fingerprint == first.fingerprint
    path.chmod(0o644)
    with pytest.raises(SigningError, match="lets others read it"):
        StationKey.load_or_create(path)
    path.chmod(0o600)
    path.write_bytes(b"not a key")
    with pytest.raises(SigningError, match="not a PEM private key"):
        StationKey.load_or_create(path)


def test_station_verify_command(
    tmp_path: Path,
    signed: list[bytes],
    key: StationKey,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "no-local-key.pem"))
    public = tmp_path / "station.pub.pem"
    public.write_bytes(key.public_pem())
    good = tmp_path / "cell.signed.json"
    good.write_bytes(signed[1])
    assert main(["verify", str(good), "--public-key", str(public)]) == 0
    assert "VALID" in capsys.readouterr().out
    assert main(["verify", str(good)]) == 3
    assert "not trusted" in capsys.readouterr().out

    outer = json.loads(signed[1])
    target = "/payload/RemainingCapacity/RemainingCapacityValue"
    assert target in leaf_paths(outer["document"])
    outer["document"]["payload"]["RemainingCapacity"]["RemainingCapacityValue"] += 0.5
    bad = tmp_path / "bad.signed.json"
    bad.write_bytes(canonical_bytes(outer))
    assert main(["verify", str(bad), "--public-key", str(public)]) == 1
    out = capsys.readouterr().out
    assert "REJECTED" in out and target in out

    assert main(["verify", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err

    # The local station key (created on first use) is trusted without --public-key.
    local = StationKey.load_or_create(tmp_path / "local.pem")
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "local.pem"))
    mine = tmp_path / "mine.signed.json"
    mine.write_bytes(sign_document({"a": 1}, local))
    assert main(["verify", str(mine)]) == 0
    assert isinstance(serialization.load_pem_public_key(local.public_pem()), Ed25519PublicKey)
    assert os.environ[KEY_ENV].endswith("local.pem")


def test_station_verify_checks_raw_data_against_the_signed_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from station.passport.rawdata import bdf_csv
    from tests.passport.batch import graded_cell

    monkeypatch.setenv(KEY_ENV, str(tmp_path / "station.pem"))
    key = StationKey.load_or_create()
    cell = graded_cell(2)
    signed = tmp_path / "cell.record.signed.json"
    signed.write_bytes(sign_document(cell.record.to_dict(), key))
    raw = tmp_path / "cell.bdf.csv"
    raw.write_text(bdf_csv(cell.raw))
    assert main(["verify", str(signed), "--raw", str(raw)]) == 0
    capsys.readouterr()
    lines = raw.read_text().splitlines()
    fields = lines[100].split(",")
    fields[2] = repr(float(fields[2]) + 0.001)  # one voltage sample
    lines[100] = ",".join(fields)
    raw.write_text("\n".join(lines) + "\n")
    assert main(["verify", str(signed), "--raw", str(raw)]) == 1
    assert "samples changed" in capsys.readouterr().out


@pytest.mark.slow
def test_ten_thousand_single_byte_changes_are_all_rejected(
    signed: list[bytes], key: StationKey
) -> None:
    rng = random.Random(99)
    for index in range(10_000):
        data = signed[index % len(signed)]
        position = rng.randrange(len(data))
        replacement = rng.choice([b for b in range(256) if b != data[position]])
        mutated = data[:position] + bytes([replacement]) + data[position + 1 :]
        assert not verify_bytes(mutated, [key.public_key]).ok, (index, position)

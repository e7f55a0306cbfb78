"""``station verify FILE``: check a signed record or export offline and say what was changed."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_UNTRUSTED = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check a signed record or export offline",
        description=(
            "Check the Ed25519 (JWS EdDSA) signature of a signed record or export and name the "
            "fields that were changed. Exit 0: valid and signed by a trusted key; 1: rejected; "
            "3: intact but the signer is not a trusted key."
        ),
    )
    parser.add_argument("file", type=Path, help="signed file (*.signed.json)")
    parser.add_argument(
        "--public-key",
        type=Path,
        action="append",
        default=[],
        help="PEM public key of a trusted station (repeatable); the local station key is "
        "trusted too when it exists",
    )
    parser.add_argument(
        "--raw",
        type=Path,
        help="BDF CSV of the raw data; checked against the raw_data_sha256 the signed file holds",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (status, kid, problems, changed fields); same exit codes",
    )
    parser.set_defaults(handler=run)


def _trusted_keys(paths: list[Path]) -> list[Ed25519PublicKey]:
    from station.cli.main import CommandError
    from station.passport.signing import SigningError, StationKey, default_key_path

    keys: list[Ed25519PublicKey] = []
    for path in paths:
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as error:
            raise CommandError(f"{path}: cannot read a PEM public key: {error}") from error
        if not isinstance(key, Ed25519PublicKey):
            raise CommandError(f"{path}: not an Ed25519 public key")
        keys.append(key)
    local = default_key_path()
    if local.exists():
        try:
            keys.append(StationKey.load_or_create(local).public_key)
        except SigningError as error:
            raise CommandError(str(error)) from error
    return keys


def run(args: argparse.Namespace) -> int:
    from station.cli.common import print_json
    from station.cli.main import CommandError
    from station.passport.signing import verify_bytes

    try:
        data = args.file.read_bytes()
    except OSError as error:
        raise CommandError(f"{args.file}: {error.strerror or error}") from error
    trusted = _trusted_keys(args.public_key)
    result = verify_bytes(data, trusted or None)
    if args.raw is not None:
        result.problems.extend(_raw_problems(args.raw, result.document))
        result.ok = result.ok and not result.problems
    if not result.ok:
        status, code = "rejected", EXIT_REJECTED
    elif not trusted:
        status, code = "untrusted", EXIT_UNTRUSTED
    else:
        status, code = "valid", EXIT_OK
    if args.json:
        print_json(
            {
                "file": str(args.file),
                "status": status,
                "signature_valid": result.signature_valid,
                "trusted": result.trusted,
                "kid": result.kid,
                "problems": result.problems,
                "changed_fields": result.changed_fields,
            }
        )
        return code
    if status == "rejected":
        print(f"{args.file}: REJECTED")
        for problem in result.problems:
            print(f"  - {problem}")
        return EXIT_REJECTED
    if status == "untrusted":
        print(
            f"{args.file}: INTACT, but signer key {result.kid} is not trusted here "
            "(pass --public-key)"
        )
        return EXIT_UNTRUSTED
    print(f"{args.file}: VALID, signed by key {result.kid}")
    return EXIT_OK


def _raw_problems(path: Path, document: object) -> list[str]:
    """Compare the raw data file with the digest in the signed record or export."""
    from station.cli.main import CommandError
    from station.passport.rawdata import RawDataError, read_bdf_csv
    from station.passport.record import raw_data_sha256

    signed_digest = None
    if isinstance(document, dict):
        signed_digest = document.get("raw_data_sha256") or document.get("metadata", {}).get(
            "raw_data_sha256"
        )
    if not isinstance(signed_digest, str):
        return ["the signed file holds no raw_data_sha256 to check the raw data against"]
    try:
        raw = read_bdf_csv(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CommandError(f"{path}: {error.strerror or error}") from error
    except RawDataError as error:
        return [f"raw data {path.name}: {error}"]
    digest = raw_data_sha256(raw.columns())
    if digest != signed_digest:
        return [f"raw data {path.name} differs from the signed raw_data_sha256 (samples changed)"]
    return []

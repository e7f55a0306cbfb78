"""Signing and offline verification of records and exports (reliability.md §3, P1, P2, D6).

A signed file is the canonical JSON of ``{"document": <record or export>, "signature":
{"protected": ..., "signature": ...}}``: a JWS (RFC 7515) with ``alg: EdDSA`` (Ed25519, RFC 8037)
over the *unencoded* canonical document (RFC 7797, ``b64: false``), so the document stays
readable. The protected header carries the signer's public key (``jwk``), its RFC 7638 thumbprint
(``kid``) and a digest of every leaf of the document, which lets :func:`verify_bytes` name the
fields that changed when a signature fails.

The station key is created on first use outside the repository (platformdirs user data dir, or
``STATION_KEY_FILE``), with owner-only permissions; a key file others can read is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from station.passport.canonical import canonical_bytes, leaf_paths

KEY_ENV = "STATION_KEY_FILE"
SIGNED_TYPE = "station-signed+json"
_DIGEST_HEX = 32  # 128-bit leaf digests: enough to tell which field changed


class SigningError(Exception):
    """The key cannot be created or loaded, or a document cannot be signed."""


def default_key_path() -> Path:
    """``$STATION_KEY_FILE`` or ``<user data dir>/cell-grading-station/station-ed25519.pem``."""
    override = os.environ.get(KEY_ENV)
    if override:
        return Path(override)
    import platformdirs

    return platformdirs.user_data_path("cell-grading-station") / "station-ed25519.pem"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url: the text must be exactly the encoding of the decoded bytes, so a
    changed padding bit cannot slip through as the same signature."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"not base64url: {error}") from error
    if b64url(data) != text:
        raise ValueError("not canonical base64url")
    return data


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}


def thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the key's fingerprint."""
    members = {name: jwk[name] for name in ("crv", "kty", "x")}
    return b64url(hashlib.sha256(canonical_bytes(members)).digest())


def public_key_from_jwk(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
        raise ValueError("jwk is not an Ed25519 OKP key")
    return Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))


@dataclass(frozen=True)
class StationKey:
    """The station's Ed25519 signing key."""

    private_key: Ed25519PrivateKey
    path: Path | None = None

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk(self.public_key)

    @property
    def fingerprint(self) -> str:
        return thumbprint(self.jwk)

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def generate(cls) -> StationKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> StationKey:
        """Load the key at ``path`` (default :func:`default_key_path`), creating it on first use
        with mode 0600 in a 0700 directory. Refuses a key file readable by group or others."""
        path = path or default_key_path()
        if not path.exists():
            return cls._create(path)
        if sys.platform != "win32":
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise SigningError(
                    f"{path}: key file mode {mode:o} lets others read it; chmod 600 it"
                )
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as error:
            raise SigningError(f"{path}: not a PEM private key: {error}") from error
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError(f"{path}: not an Ed25519 key")
        return cls(key, path)

    @classmethod
    def _create(cls, path: Path) -> StationKey:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            # Another process created it between our check and now: use theirs.
            return cls.load_or_create(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return cls(key, path)


def _leaf_digests(document: Any) -> dict[str, str]:
    return {
        pointer: hashlib.sha256(canonical_bytes(value)).hexdigest()[:_DIGEST_HEX]
        for pointer, value in leaf_paths(document).items()
    }


def sign_document(document: Mapping[str, Any], key: StationKey) -> bytes:
    """The signed file bytes for ``document`` (a record dict or an export envelope)."""
    header = {
        "alg": "EdDSA",
        "b64": False,
        "crit": ["b64"],
        "typ": SIGNED_TYPE,
        "cty": "application/json",
        "kid": key.fingerprint,
        "jwk": key.jwk,
        "fields": _leaf_digests(document),
    }
    protected = b64url(canonical_bytes(header))
    signing_input = protected.encode("ascii") + b"." + canonical_bytes(document)
    signature = b64url(key.private_key.sign(signing_input))
    return canonical_bytes(
        {"document": document, "signature": {"protected": protected, "signature": signature}}
    )


@dataclass
class Verification:
    """The outcome of :func:`verify_bytes`. ``ok`` only when the signature is valid, the file is
    byte-for-byte canonical and the signer is trusted (or no trust list was given)."""

    ok: bool = False
    signature_valid: bool = False
    trusted: bool = False
    kid: str = ""
    problems: list[str] = field(default_factory=list)
    changed_fields: list[str] = field(default_factory=list)
    document: Any = None


def _first_difference(a: bytes, b: bytes) -> int:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return min(len(a), len(b))


def verify_bytes(
    data: bytes, trusted_keys: Iterable[Ed25519PublicKey] | None = None
) -> Verification:
    """Check a signed file offline and say what is wrong with it.

    ``trusted_keys``: the public keys accepted as signers; ``None`` accepts the key embedded in
    the file (integrity only) and leaves ``trusted`` false.
    """
    result = Verification()
    try:
        outer = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        result.problems.append(f"not UTF-8 at byte {error.start}")
        return result
    except json.JSONDecodeError as error:
        result.problems.append(f"not JSON: {error.msg} at byte {error.pos}")
        return result
    if (
        not isinstance(outer, dict)
        or set(outer) != {"document", "signature"}
        or not isinstance(outer["signature"], dict)
        or set(outer["signature"]) != {"protected", "signature"}
        or not all(isinstance(v, str) for v in outer["signature"].values())
    ):
        result.problems.append(
            "structure changed: expected {document, signature: {protected, signature}}"
        )
        return result
    document = outer["document"]
    result.document = document
    try:
        canonical = canonical_bytes(outer)
    except ValueError as error:
        result.problems.append(f"document holds a value with no canonical form: {error}")
        return result
    if canonical != data:
        result.problems.append(
            f"file bytes differ from the canonical form from byte "
            f"{_first_difference(canonical, data)} (edited by hand or by a tool)"
        )
    protected = outer["signature"]["protected"]
    try:
        header = json.loads(b64url_decode(protected))
        if not isinstance(header, dict):
            raise ValueError("protected header is not a JSON object")
        signature = b64url_decode(outer["signature"]["signature"])
    except ValueError as error:
        result.problems.append(f"signature block changed: {error}")
        return result
    if header.get("alg") != "EdDSA" or header.get("b64") is not False:
        result.problems.append(f"protected header changed: alg={header.get('alg')!r}")
        return result
    try:
        embedded = public_key_from_jwk(header.get("jwk", {}))
        result.kid = str(header.get("kid", ""))
        if thumbprint(header["jwk"]) != result.kid:
            raise ValueError("kid is not the thumbprint of jwk")
    except (ValueError, KeyError) as error:
        result.problems.append(f"protected header changed: {error}")
        return result
    key = embedded
    if trusted_keys is not None:
        by_kid = {thumbprint(public_jwk(k)): k for k in trusted_keys}
        if result.kid in by_kid:
            key = by_kid[result.kid]
            result.trusted = True
        else:
            result.problems.append(f"signed by key {result.kid}, which is not a trusted key")
    signing_input = protected.encode("ascii") + b"." + canonical_bytes(document)
    try:
        key.verify(signature, signing_input)
        result.signature_valid = True
    except InvalidSignature:
        signed_fields = header.get("fields")
        changed: list[str] = []
        if isinstance(signed_fields, dict):
            now = _leaf_digests(document)
            changed = sorted(
                pointer
                for pointer in set(now) | set(signed_fields)
                if now.get(pointer) != signed_fields.get(pointer)
            )
        result.changed_fields = changed
        if changed:
            shown = ", ".join(changed[:10]) + (" ..." if len(changed) > 10 else "")
            result.problems.append(f"signature invalid; changed field(s): {shown}")
        else:
            result.problems.append(
                "signature invalid; the document matches its signed field digests, so the "
                "signature or the protected header was changed"
            )
    result.ok = not result.problems
    return result

"""Canonical JSON: the one byte form of a JSON value that records, exports and signatures use.

Keys sorted, no insignificant whitespace, UTF-8 without escaping non-ASCII text, floats in Python's
shortest round-trip form (the same on every platform), NaN and infinities refused. Serialising the
same value twice, on any machine, gives identical bytes (reliability.md P2).
"""

from __future__ import annotations

import json
import math
from typing import Any


class CanonicalJsonError(ValueError):
    """A value that has no canonical JSON form (NaN, infinity, a non-string key, an odd type)."""


def _check(value: Any, path: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalJsonError(f"{path or '/'}: {value} has no JSON form")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError(f"{path or '/'}: key {key!r} is not a string")
            _check(item, f"{path}/{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{path}/{index}")
        return
    raise CanonicalJsonError(f"{path or '/'}: {type(value).__name__} is not a JSON type")


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_bytes(value: Any) -> bytes:
    """The canonical UTF-8 bytes of ``value`` (dicts with string keys, lists, str, int, float,
    bool, None); the error names the JSON pointer of the offending value."""
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError):
        _check(value, "")
        raise
    if not _keys_are_strings(value):
        _check(value, "")
    return text.encode("utf-8")


def _keys_are_strings(value: Any) -> bool:
    # json would silently turn 1, 1.5, True or None keys into strings; a canonical form must not.
    if isinstance(value, dict):
        return all(isinstance(k, str) and _keys_are_strings(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_keys_are_strings(v) for v in value)
    return True


def leaf_paths(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every scalar (and empty container) in ``value`` keyed by its JSON pointer (RFC 6901)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            out.update(leaf_paths(item, f"{prefix}/{escaped}"))
        return out
    if isinstance(value, list | tuple) and value:
        out = {}
        for index, item in enumerate(value):
            out.update(leaf_paths(item, f"{prefix}/{index}"))
        return out
    return {prefix or "/": value}

"""Small SCPI building blocks shared by the drivers: strict number parsing and validated settings.

Parsers here raise only :class:`ProtocolError` for anything that is not the documented format;
``nan``, ``inf``, empty fields and stray characters are refused, never turned into numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from drivers.errors import ProtocolError, SettingError

# A space may stand in for the sign and leading zeros are spaces on Hioki meters (`  12.345E-3`).
_NUMBER = re.compile(r"[+-]?[ ]*(?:\d+(?:\.\d*)?|\.\d+)(?:[Ee]([+-]?\d{1,3}))?")
_INTEGER = re.compile(r"[+-]?\d{1,12}")


def parse_number(
    text: str, *, what: str = "number", address: str = "", require_exponent: bool = False
) -> float:
    """Parse one SCPI decimal (``-1.5``, ``3.70123E+0``, `` 12.345E-3``); ProtocolError if not.

    ``require_exponent`` is for instruments that always write one: a reply cut short inside the
    number then loses its exponent and is refused instead of read as a smaller value.
    """
    stripped = text.strip(" ")
    match = _NUMBER.fullmatch(stripped)
    if match is None or (require_exponent and match.group(1) is None):
        raise ProtocolError(f"{what} is not a number: {text!r}", address=address)
    return float(stripped.replace(" ", ""))


def number_exponent(text: str) -> int:
    """The written exponent of a number already accepted by :func:`parse_number` (0 if none)."""
    match = _NUMBER.fullmatch(text.strip(" "))
    assert match is not None
    return int(match.group(1) or 0)


def parse_int(text: str, *, what: str = "integer", address: str = "") -> int:
    stripped = text.strip(" ")
    if not _INTEGER.fullmatch(stripped):
        raise ProtocolError(f"{what} is not an integer: {text!r}", address=address)
    return int(stripped)


def split_fields(text: str, count: int, *, what: str, address: str = "") -> list[str]:
    """Split a comma-separated reply into exactly ``count`` fields."""
    fields = text.split(",")
    if len(fields) != count:
        raise ProtocolError(
            f"{what} reply needs {count} fields, got {len(fields)}: {text[:80]!r}", address=address
        )
    return fields


def format_number(value: float) -> str:
    """Shortest round-trip text of a number in SCPI form (``0.3``, ``1E-05``, ``4.2``)."""
    text = repr(float(value))
    if text.endswith(".0"):
        text = text[:-2]
    return text.replace("e", "E")


class SupportsSettings(Protocol):
    """What a driver offers a :class:`Setting`: send a checked set command, ask a query."""

    def _change_setting(self, name: str, command: str, value: Any) -> None: ...

    def _query_setting(self, command: str) -> str: ...


class Setting:
    """A validated instrument setting, declared on the driver class (pymeasure style).

    Assigning validates the value *before* anything is sent (:class:`SettingError` names the
    setting and the allowed values), sends ``set_command.format(wire_text)`` through the driver's
    checked path (``*ESR?`` or the error queue) and remembers it; reading sends ``get_command``
    and parses the reply. The docstring states the unit.
    """

    def __init__(
        self,
        set_command: str,
        get_command: str,
        doc: str,
        *,
        to_wire: Callable[[Any], str],
        from_wire: Callable[[str], Any],
    ) -> None:
        self.set_command = set_command
        self.get_command = get_command
        self.__doc__ = doc
        self.to_wire = to_wire
        self.from_wire = from_wire
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return self.from_wire(instance._query_setting(self.get_command))

    def __set__(self, instance: Any, value: Any) -> None:
        try:
            text = self.to_wire(value)
        except SettingError as exc:
            raise SettingError(f"{self.name}: {exc}") from None
        instance._change_setting(self.name, self.set_command.format(text), value)

    def command_for(self, value: Any) -> str:
        """The set command a value becomes (used by set-up sequences)."""
        try:
            return self.set_command.format(self.to_wire(value))
        except SettingError as exc:
            raise SettingError(f"{self.name}: {exc}") from None


def choice(options: Mapping[Any, str]) -> Callable[[Any], str]:
    """A validator accepting exactly the keys of ``options`` and sending their wire text."""

    def to_wire(value: Any) -> str:
        for key, text in options.items():
            if value == key and type(value) is not bool:
                return text
        allowed = ", ".join(repr(k) for k in options)
        raise SettingError(f"{value!r} is not one of {allowed}")

    return to_wire


def in_range(low: float, high: float) -> Callable[[Any], str]:
    """A validator for a number within [low, high]."""

    def to_wire(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingError(f"{value!r} is not a number")
        if not low <= float(value) <= high:
            raise SettingError(f"{value!r} is outside {low:g} to {high:g}")
        return format_number(value)

    return to_wire


def on_off(value: Any) -> str:
    if not isinstance(value, bool):
        raise SettingError(f"{value!r} is not True or False")
    return "ON" if value else "OFF"


def parse_on_off(text: str) -> bool:
    token = text.strip().upper()
    if token in ("ON", "1"):
        return True
    if token in ("OFF", "0"):
        return False
    raise ProtocolError(f"expected ON/OFF, got {text!r}")


def parse_token(options: Mapping[str, Any]) -> Callable[[str], Any]:
    """Parse a short upper-case token reply (``MED``) into the setting's value."""

    def from_wire(text: str) -> Any:
        token = text.strip().upper()
        if token not in options:
            raise ProtocolError(f"unexpected reply {text!r}; expected one of {sorted(options)}")
        return options[token]

    return from_wire


def parse_choice_number(values: tuple[float, ...]) -> Callable[[str], float]:
    """Parse a numeric setting reply and map it onto the nearest declared value (1e-6 relative)."""

    def from_wire(text: str) -> float:
        number = parse_number(text, what="setting")
        for value in values:
            if abs(number - value) <= 1e-6 * abs(value):
                return value
        raise ProtocolError(f"setting reply {text!r} is not one of {values}")

    return from_wire

"""A small SCPI parser shared by the simulated instruments.

- A line holds one or more commands separated by ``;`` (not inside quotes).
- A header is a path of nodes (``:SOURce:CURRent:VLIMit``) or a common command (``*IDN``); a
  trailing ``?`` makes it a query. Each node matches its short form (the capitals of the pattern)
  or its long form, case-insensitively. Nodes in brackets (``[:SENSe]``) are optional.
- Parameters follow the header after white space, separated by ``,`` (not inside quotes).

Every command is taken as absolute (a leading ``:`` is optional), which is how the station and
the instruments' own examples write compound lines such as ``*TRG;*WAI;:FETC?``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class ScpiError(Exception):
    """A command the instrument rejects. ``code`` and ``message`` follow SCPI (e.g. -113)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message

    @property
    def esr_bit(self) -> int:
        """The standard event status bit this error sets (CME 32, EXE 16, DDE 8, QYE 4)."""
        if -199 <= self.code <= -100:
            return 32
        if -299 <= self.code <= -200:
            return 16
        if -499 <= self.code <= -400:
            return 4
        return 8


UNDEFINED_HEADER = (-113, "Undefined header")
DATA_OUT_OF_RANGE = (-222, "Data out of range")
ILLEGAL_PARAMETER = (-224, "Illegal parameter value")
MISSING_PARAMETER = (-109, "Missing parameter")
DATA_TYPE_ERROR = (-104, "Data type error")


@dataclass(frozen=True)
class Command:
    """One parsed command: ``header`` as written (without ``?``), ``query``, and ``args``."""

    header: str
    query: bool
    args: tuple[str, ...]


def split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, buf, quote = [], [], ""
    for ch in text:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            buf.append(ch)
        elif ch == sep:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def parse_line(line: str) -> list[Command]:
    """Split a line into commands; empty pieces (``;;``) are skipped."""
    commands = []
    for piece in split_outside_quotes(line, ";"):
        piece = piece.strip()
        if not piece:
            continue
        head, _, rest = piece.partition(" ")
        head = head.strip()
        query = head.endswith("?")
        if query:
            head = head[:-1]
        rest = rest.strip()
        args = tuple(a.strip() for a in split_outside_quotes(rest, ",")) if rest else ()
        commands.append(Command(head, query, args))
    return commands


def _pattern_nodes(pattern: str) -> list[tuple[str, str, bool]]:
    """``[:SENSe]:FUNCtion`` -> [("SENS", "SENSE", True), ("FUNC", "FUNCTION", False)]."""
    nodes = []
    for match in re.finditer(r"\[:?[*A-Za-z0-9]+\]|:?[*A-Za-z0-9]+", pattern):
        token = match.group(0)
        optional = token.startswith("[")
        name = token.strip("[]:")
        short = "".join(ch for ch in name if ch.isupper() or ch.isdigit() or ch == "*")
        nodes.append((short.upper(), name.upper(), optional))
    return nodes


def _matches(nodes: list[tuple[str, str, bool]], parts: list[str]) -> bool:
    if not nodes:
        return not parts
    short, long, optional = nodes[0]
    if parts and parts[0] in (short, long) and _matches(nodes[1:], parts[1:]):
        return True
    return optional and _matches(nodes[1:], parts)


class CommandTable(Generic[T]):
    """Header patterns -> handlers. ``lookup`` raises ScpiError(-113) for an unknown header."""

    def __init__(self) -> None:
        self._entries: list[tuple[list[tuple[str, str, bool]], T]] = []

    def add(self, pattern: str, handler: T) -> None:
        self._entries.append((_pattern_nodes(pattern), handler))

    def lookup(self, header: str) -> T:
        parts = [p.upper() for p in header.lstrip(":").split(":") if p]
        for nodes, handler in self._entries:
            if _matches(nodes, parts):
                return handler
        raise ScpiError(*UNDEFINED_HEADER)


def parse_float(text: str, *, low: float | None = None, high: float | None = None) -> float:
    """A numeric parameter (also ``MIN``/``MAX`` when bounds are given); -222 when out of range."""
    word = text.strip().upper()
    if word in ("MIN", "MINIMUM") and low is not None:
        return low
    if word in ("MAX", "MAXIMUM") and high is not None:
        return high
    try:
        value = float(word)
    except ValueError:
        raise ScpiError(*DATA_TYPE_ERROR) from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ScpiError(*DATA_OUT_OF_RANGE)
    return value


def parse_bool(text: str) -> bool:
    word = text.strip().upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise ScpiError(*ILLEGAL_PARAMETER)


def parse_choice(text: str, choices: dict[str, str]) -> str:
    """``choices`` maps patterns like ``"MEDium"`` to the stored value; matches short or long."""
    word = text.strip().strip("\"'").upper()
    for pattern, value in choices.items():
        nodes = _pattern_nodes(pattern)
        if _matches(nodes, [p for p in word.split(":") if p]):
            return value
    raise ScpiError(*ILLEGAL_PARAMETER)


def one_arg(command: Command) -> str:
    if not command.args or not command.args[0]:
        raise ScpiError(*MISSING_PARAMETER)
    return command.args[0]


Handler = Callable[[Command, float], "str | None"]

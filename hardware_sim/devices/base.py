"""The personality interface: an instrument as a pure bytes-in -> bytes-out state machine.

A personality never touches a socket. A transport (TCP, pty, the in-process ``sim://`` handler)
hands it the bytes a client wrote through :meth:`Personality.receive` and gets back
:class:`Reply` objects, each due at a simulated time (a measurement takes time, so a reply may be
due later than the request). The transport holds each reply until the bench clock reaches its
``due_s`` and writes replies in order. A reply may also ask the transport to drop the connection
(fault injection), optionally staying offline for a while.

Personalities get the bench clock and their cell(s) at construction; they advance their cells to
``clock.now()`` whenever they need a value. All calls into one personality happen under its
``lock`` (``receive`` takes it), so a control endpoint may poke the same object from another
thread.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from hardware_sim.cell import Cell
from hardware_sim.clock import SimClock


@dataclass(frozen=True)
class Reply:
    """Bytes the instrument sends, due at simulated time ``due_s``.

    ``disconnect``: after sending (``data`` may be empty) the transport closes the client link.
    ``offline_s``: after a disconnect, wall seconds during which the endpoint does not accept a new
    client (TCP stops listening; the port is reused when it comes back).
    """

    data: bytes
    due_s: float
    disconnect: bool = False
    offline_s: float = 0.0


class ReplyFilter(Protocol):
    """What a fault injector does to one personality's traffic (``hardware_sim.faults``)."""

    def on_input(self, personality: Personality, data: bytes, now_s: float) -> bytes: ...

    def on_replies(
        self, personality: Personality, replies: list[Reply], now_s: float
    ) -> list[Reply]: ...


class Personality(ABC):
    """Base of every simulated instrument.

    ``kind``: the device kind name (registry key, e.g. ``"bt3562"``). ``seed``: the bench seed,
    shown in the identity as ``SIMULATED-<seed>``. ``faults``: optional fault injector that may
    rewrite replies (set by the bench or a test).
    """

    kind: str = ""
    #: the bytes that end one reply message (fault injection frames its garbage with them)
    write_termination: bytes = b"\r\n"

    def __init__(self, clock: SimClock, *, seed: int = 0) -> None:
        self.clock = clock
        self.seed = seed
        self.lock = threading.RLock()
        self.faults: ReplyFilter | None = None
        self._busy_until_s = -float("inf")
        self.connected = False

    @property
    def serial_number(self) -> str:
        return f"SIMULATED-{self.seed}"

    def receive(self, data: bytes) -> list[Reply]:
        """Feed bytes from the client; returns replies in sending order (due times ascending)."""
        with self.lock:
            now = self.clock.now()
            if self.faults is not None:
                data = self.faults.on_input(self, data, now)
            replies = self.feed(data, now)
            if self.faults is not None:
                replies = self.faults.on_replies(self, replies, now)
            return replies

    @abstractmethod
    def feed(self, data: bytes, now_s: float) -> list[Reply]:
        """Consume client bytes received at simulated time ``now_s``; return the replies."""

    def on_connect(self) -> None:
        """A client connected (subclasses also drop half-received input)."""
        self.connected = True

    def on_disconnect(self) -> None:
        """The client went away."""
        self.connected = False

    def describe(self) -> dict[str, Any]:
        """Kind-specific facts for the launcher's JSON (cells held, channels, ...)."""
        return {}

    def fault_cells(self) -> list[Cell]:
        """The cells an over-temperature fault heats (those at this device's terminals).

        By default the ``cells`` attribute (a list, e.g. one per cycler channel) or the ``cell``
        attribute (a fixture or a single-channel source), if the personality has one.
        """
        cells = getattr(self, "cells", None)
        if isinstance(cells, list | tuple):
            return [c for c in cells if isinstance(c, Cell)]
        cell = getattr(self, "cell", None)
        return [cell] if isinstance(cell, Cell) else []

    def cell_locations(self) -> dict[str, str]:
        """Where each held cell sits, by cell id (the launcher prints ``<device>/<location>``).

        Default: the 1-based position in :meth:`fault_cells`; a cycler may override it with its
        channel addresses.
        """
        return {cell.cell_id: str(i + 1) for i, cell in enumerate(self.fault_cells())}

    def reply_at(self, data: bytes, earliest_s: float) -> Reply:
        """A reply due no earlier than ``earliest_s`` and not before the previous reply."""
        due = max(earliest_s, self._busy_until_s)
        self._busy_until_s = due
        return Reply(data, due)


class LinePersonality(Personality):
    """A personality whose client messages are text lines.

    Input lines end in CR, LF or CR+LF (any of them, as the real meters accept); replies end in
    ``write_termination``. Subclasses implement :meth:`handle_line`.
    """

    max_line_bytes: int = 4096

    def __init__(self, clock: SimClock, *, seed: int = 0) -> None:
        super().__init__(clock, seed=seed)
        self._inbuf = bytearray()

    def feed(self, data: bytes, now_s: float) -> list[Reply]:
        self._inbuf.extend(data)
        replies: list[Reply] = []
        while True:
            cut = _first_terminator(self._inbuf)
            if cut < 0:
                if len(self._inbuf) > self.max_line_bytes:
                    self._inbuf.clear()
                    replies.extend(self.on_bad_input(now_s))
                break
            raw = bytes(self._inbuf[:cut])
            del self._inbuf[: cut + 1]
            if not raw.strip():
                continue
            try:
                line = raw.decode("ascii")
            except UnicodeDecodeError:
                replies.extend(self.on_bad_input(now_s))
                continue
            replies.extend(self.handle_line(line.strip(), now_s))
        return replies

    def on_connect(self) -> None:
        super().on_connect()
        self._inbuf.clear()

    def on_bad_input(self, now_s: float) -> Iterable[Reply]:
        """Non-ASCII or over-long input; SCPI instruments flag a command error."""
        return ()

    def line_reply(self, text: str, earliest_s: float) -> Reply:
        return self.reply_at(text.encode("ascii") + self.write_termination, earliest_s)

    @abstractmethod
    def handle_line(self, line: str, now_s: float) -> list[Reply]:
        """One complete input line (terminator stripped) received at ``now_s``."""


@dataclass(frozen=True)
class RoutedCell:
    """A cell another personality owns (a cabinet channel's), put on a meter's leads by a switch.

    ``lock`` is the owner's lock and ``advance(t_s)`` the owner's own stepping to simulated time
    ``t_s`` (so its step ends and protections see every instant); read the cell only while
    holding ``lock`` after calling ``advance``.
    """

    cell: Cell
    lock: threading.RLock
    advance: Callable[[float], None]


class MeterInput:
    """The input of a fixture meter: its fixture's ``cell``, or while a switch route is closed,
    the ``routed`` cell of a cabinet channel (the fixture is then off the meter's leads)."""

    cell: Cell | None
    routed: RoutedCell | None = None
    shorted: bool = False  # several routes closed at once: cells in parallel, read as no contact

    @contextmanager
    def input_cell(self, now_s: float) -> Iterator[Cell | None]:
        """The cell on the leads, advanced to ``now_s``, held safe from its owner for the block."""
        routed = self.routed
        if self.shorted:
            yield None
            return
        if routed is None:
            if self.cell is not None:
                self.cell.advance_to(now_s)
            yield self.cell
            return
        with routed.lock:
            routed.advance(now_s)
            yield routed.cell


def _first_terminator(buf: bytearray) -> int:
    cr = buf.find(b"\r")
    lf = buf.find(b"\n")
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)


@dataclass
class ReplyQueue:
    """Replies a transport holds until they are due (shared by every transport)."""

    clock: SimClock
    _pending: deque[Reply] = field(default_factory=deque)

    def push(self, replies: Iterable[Reply]) -> None:
        self._pending.extend(replies)

    def clear(self) -> None:
        self._pending.clear()

    def __len__(self) -> int:
        return len(self._pending)

    def wall_wait_s(self) -> float | None:
        """Wall seconds until the head reply is due (None when nothing is pending)."""
        if not self._pending:
            return None
        return self.clock.wall_seconds_until(self._pending[0].due_s)

    def pop_due(self) -> list[Reply]:
        """Every reply at the head of the queue that is due now, in order."""
        due: list[Reply] = []
        while self._pending and self.clock.wall_seconds_until(self._pending[0].due_s) <= 0:
            reply = self._pending.popleft()
            due.append(reply)
            if reply.disconnect:
                break
        return due

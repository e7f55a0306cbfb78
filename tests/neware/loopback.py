"""In-process links between the Neware driver and the simulated cabinet (no sockets).

``LoopbackTransport`` has the shape of ``drivers.transport.Transport`` that the driver uses
(text frames, terminator added on write and stripped on read) and hands the bytes to a
``NewareCabinet``. It can inject the wire faults of the fault table in
``../shared/reference/instruments.md`` section 6 at the frame level: a dropped reply (the
command is applied, the reply never comes: TransportTimeout), garbage instead of a reply
(ProtocolError) and a dropped link (LinkDown until ``reopen``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from drivers.errors import LinkDown, ProtocolError, TransportTimeout
from hardware_sim.devices.neware_bts import TERMINATOR, NewareCabinet


@dataclass
class Fault:
    kind: str  # "drop", "garbage" or "disconnect"
    cmd: str  # applies to the next request whose <cmd> is this ("" = any)


@dataclass
class LoopbackTransport:
    cabinet: NewareCabinet
    clock: object
    lock: threading.RLock = field(default_factory=threading.RLock)
    faults: list[Fault] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    opens: int = 1
    _replies: list[bytes] = field(default_factory=list)
    _down: bool = False

    def __post_init__(self) -> None:
        self.cabinet.on_connect()

    def write(self, text: str) -> None:
        if self._down:
            raise LinkDown("loopback link is down")
        self.sent.append(text)
        fault = next((f for f in self.faults if not f.cmd or f"<cmd>{f.cmd}</cmd>" in text), None)
        now = self.clock.now()  # type: ignore[attr-defined]
        replies = self.cabinet.feed_bytes(text.encode("utf-8") + TERMINATOR, now)
        if fault is not None:
            self.faults.remove(fault)
            self.injected.append(f"{fault.kind}:{fault.cmd}")
            if fault.kind == "drop":
                return
            if fault.kind == "garbage":
                self._replies.append(b"\xff\xfe<bts garbage" + TERMINATOR)
                return
            if fault.kind == "disconnect":
                self._down = True
                return
        self._replies.extend(replies)

    def read(self, *, timeout_s: float | None = None) -> str:
        if self._down:
            raise LinkDown("loopback link is down")
        if not self._replies:
            raise TransportTimeout("no reply")
        data = self._replies.pop(0)
        assert data.endswith(TERMINATOR)
        try:
            return data[: -len(TERMINATOR)].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("not UTF-8") from exc

    def reopen(self) -> None:
        self._down = False
        self._replies.clear()
        self.opens += 1
        self.cabinet.on_connect()

    def close(self) -> None:
        self._down = True

"""Talk to a personality directly (no transport): bytes in, due replies out."""

from __future__ import annotations

from hardware_sim.clock import SimClock
from hardware_sim.devices.base import Personality, ReplyQueue


class Wire:
    """A client on a manual clock: ``ask`` sends bytes and returns every reply, in order, with
    the clock moved to when the last one was due (as if the client waited for it)."""

    def __init__(self, personality: Personality) -> None:
        self.p = personality
        self.clock: SimClock = personality.clock
        self.queue = ReplyQueue(self.clock)
        self.p.on_connect()

    def ask(self, text: str | bytes, terminator: bytes = b"\r\n") -> bytes:
        data = text.encode() if isinstance(text, str) else text
        self.queue.push(self.p.receive(data + terminator))
        out = b""
        while len(self.queue):
            for reply in self.queue.pop_due():
                out += reply.data
        return out

    def send(self, text: str, terminator: bytes = b"\r\n") -> None:
        assert self.ask(text, terminator) == b"", f"{text!r} should not reply"

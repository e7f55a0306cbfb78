"""A fault injector for the simulator's personalities (a ``ReplyFilter``), used by driver tests.

It acts on messages that get a reply (queries). ``arm(kind)`` injects one fault into the next
query; ``rate`` injects faults at random (seeded) for soaks. Kinds:

- ``drop``: the reply is lost (the instrument did execute the query);
- ``busy``: the instrument ignores the query (no execution, no reply);
- ``garbage``: the reply is replaced by non-ASCII bytes;
- ``truncate``: the reply is cut in half, without terminator;
- ``delay``: the reply comes ``delay_wall_s`` wall seconds late (after the driver's timeout);
- ``disconnect``: the link drops instead of replying.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from hardware_sim.devices.base import Personality, Reply

KINDS = ("drop", "busy", "garbage", "truncate", "delay", "disconnect")


@dataclass
class FaultInjector:
    delay_wall_s: float = 0.5
    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    injected: list[str] = field(default_factory=list)
    messages: int = 0
    _armed: str | None = None
    _for_reply: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def arm(self, kind: str) -> None:
        assert kind in KINDS, kind
        with self._lock:
            self._armed = kind

    def _next_kind(self) -> str | None:
        if self._armed is not None:
            kind, self._armed = self._armed, None
            return kind
        if self.rate and self._rng.random() < self.rate:
            return self._rng.choice(self.kinds)
        return None

    def on_input(self, personality: Personality, data: bytes, now_s: float) -> bytes:
        with self._lock:
            if b"?" not in data:
                return data
            self.messages += 1
            kind = self._next_kind()
            if kind == "busy" and data.count(b"\n") > 1:
                # Only ever swallow a lone query, never set-up commands with it: try the next one.
                self._armed, kind = kind, None
            if kind == "busy":
                self.injected.append(kind)
                self._for_reply = None
                return b""
            self._for_reply = kind
            return data

    def on_replies(
        self, personality: Personality, replies: list[Reply], now_s: float
    ) -> list[Reply]:
        with self._lock:
            kind, self._for_reply = self._for_reply, None
            if kind is None or not replies:
                return replies
            self.injected.append(kind)
            first, rest = replies[0], replies[1:]
            if kind == "drop":
                return rest
            if kind == "garbage":
                return [Reply(b"\x8f\xfe#\xff garbage\r\n", first.due_s), *rest]
            if kind == "truncate":
                return [Reply(first.data[: len(first.data) // 2], first.due_s), *rest]
            if kind == "delay":
                late = first.due_s + self.delay_wall_s * personality.clock.speed
                return [Reply(first.data, late), *rest]
            return [Reply(b"", first.due_s, disconnect=True)]

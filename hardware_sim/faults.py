"""Fault injection per device, on demand or scheduled in simulated time, seeded and replayable.

A :class:`FaultInjector` is attached to one personality (``injector.attach(p)`` sets
``p.faults``) and sees its traffic: it rewrites replies (delay, drop, garbage, truncate,
disconnect) and switches device states (busy, over-range or no-contact readings,
over-temperature, interlock open) through the personality's hooks. Faults are queued on demand
with :meth:`FaultInjector.inject` or put on a schedule with ``Fault(at_s=...)``; a random
schedule comes from :func:`random_schedule` with a seed. Every injected effect is appended to
``injector.log`` with its simulated time, so a failing run can be replayed from seed + schedule.

Reply faults (each affects the next ``count`` replies):
- ``delay``: the reply comes ``delay_s`` simulated seconds late;
- ``drop_reply``: the command is applied, the reply never comes;
- ``garbage``: ``n_bytes`` random non-ASCII bytes plus the line terminator instead of the reply;
- ``truncate``: the first half of the reply, no terminator;
- ``disconnect``: the link is closed instead of replying; the endpoint is offline for
  ``offline_s`` wall seconds and then comes back on the same port / path.

State faults (last ``duration_s`` simulated seconds, or until :meth:`FaultInjector.clear`):
- ``busy``: setting commands are refused as execution errors (SCPI EXE bit / -200);
- ``over_range`` / ``no_contact``: meters read their sentinels, the SourceMeter 9.9E+37;
- ``over_temperature``: the device's cells jump to ``temperature_c``; a SourceMeter trips its
  output off with an error; a cycler protects on its temperature limit;
- ``interlock_open``: a SourceMeter's interlock opens (output off, ``:OUTP ON`` refused).
"""

from __future__ import annotations

import bisect
import enum
import random
from dataclasses import dataclass, field, replace
from typing import Any

from hardware_sim.devices.base import Personality, Reply


class FaultKind(enum.Enum):
    DELAY = "delay"
    DROP_REPLY = "drop_reply"
    GARBAGE = "garbage"
    TRUNCATE = "truncate"
    DISCONNECT = "disconnect"
    BUSY = "busy"
    OVER_RANGE = "over_range"
    NO_CONTACT = "no_contact"
    OVER_TEMPERATURE = "over_temperature"
    INTERLOCK_OPEN = "interlock_open"


REPLY_FAULTS = {
    FaultKind.DELAY,
    FaultKind.DROP_REPLY,
    FaultKind.GARBAGE,
    FaultKind.TRUNCATE,
    FaultKind.DISCONNECT,
}


@dataclass(frozen=True)
class Fault:
    """One fault. ``at_s``: simulated time it becomes active (``None`` = at once)."""

    kind: FaultKind
    count: int = 1
    at_s: float | None = None
    delay_s: float = 5.0
    n_bytes: int = 12
    offline_s: float = 0.5
    duration_s: float | None = None
    temperature_c: float = 85.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """From JSON (the control endpoint): ``{"fault": "delay", "delay_s": 3, ...}``."""
        known = {"fault", "count", "at_s", "delay_s", "n_bytes", "offline_s", "duration_s"}
        known |= {"temperature_c", "device", "cmd"}
        extra = set(data) - known
        if extra:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(extra))}")
        name = data.get("fault")
        try:
            kind = FaultKind(name)
        except ValueError:
            names = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault {name!r} (known: {names})") from None
        fields: dict[str, Any] = {"kind": kind}
        for key in ("count", "n_bytes"):
            if key in data:
                fields[key] = int(data[key])
        for key in ("at_s", "delay_s", "offline_s", "duration_s", "temperature_c"):
            if key in data and data[key] is not None:
                fields[key] = float(data[key])
        if fields.get("count", 1) < 1:
            raise ValueError("fault 'count' must be >= 1")
        return cls(**fields)


@dataclass
class _Active:
    fault: Fault
    left: int
    until_s: float | None = None


@dataclass
class FaultInjector:
    """Faults for one personality. ``seed`` drives the garbage bytes (replayable)."""

    seed: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"faults/{self.seed}")
        self._scheduled: list[Fault] = []
        self._reply_faults: list[_Active] = []
        self._state_faults: list[_Active] = []
        self._personality: Personality | None = None

    def attach(self, personality: Personality) -> FaultInjector:
        personality.faults = self
        self._personality = personality
        return self

    def inject(self, fault: Fault) -> None:
        """Queue ``fault`` (scheduled if it has ``at_s``, else active from now)."""
        p = self._personality
        if p is None:
            raise RuntimeError("attach the injector to a personality first")
        with p.lock:
            if fault.at_s is not None and fault.at_s > p.clock.now():
                # Binary insertion keeps the schedule in time order without re-sorting it per
                # fault (a soak queues thousands); equal times keep their injection order.
                bisect.insort_right(self._scheduled, fault, key=lambda f: f.at_s or 0.0)
            else:
                self._activate(p, fault, p.clock.now())

    def clear(self) -> None:
        """Drop every queued and active fault and restore the device's normal state."""
        p = self._personality
        if p is None:
            return
        with p.lock:
            self._scheduled.clear()
            self._reply_faults.clear()
            for active in list(self._state_faults):
                self._end_state(p, active.fault)
            self._state_faults.clear()

    def state(self) -> dict[str, Any]:
        return {
            "scheduled": [f.kind.value for f in self._scheduled],
            "active": [a.fault.kind.value for a in self._reply_faults + self._state_faults],
            "log": list(self.log),
        }

    # ---- ReplyFilter ---------------------------------------------------------------------------

    def on_input(self, personality: Personality, data: bytes, now_s: float) -> bytes:
        self._tick(personality, now_s)
        return data

    def on_replies(
        self, personality: Personality, replies: list[Reply], now_s: float
    ) -> list[Reply]:
        out: list[Reply] = []
        for reply in replies:
            active = self._reply_faults[0] if self._reply_faults else None
            if active is None:
                out.append(reply)
                continue
            active.left -= 1
            if active.left <= 0:
                self._reply_faults.pop(0)
            rewritten = self._rewrite(personality, active.fault, reply)
            self._note(reply.due_s, active.fault, {"original": reply.data.decode("latin-1")})
            if rewritten is not None:
                out.append(rewritten)
            if rewritten is not None and rewritten.disconnect:
                break
        return out

    # ---- internals -----------------------------------------------------------------------------

    def _tick(self, p: Personality, now_s: float) -> None:
        while self._scheduled and (self._scheduled[0].at_s or 0.0) <= now_s:
            self._activate(p, self._scheduled.pop(0), now_s)
        for active in list(self._state_faults):
            if active.until_s is not None and now_s >= active.until_s:
                self._end_state(p, active.fault)
                self._state_faults.remove(active)

    def _activate(self, p: Personality, fault: Fault, now_s: float) -> None:
        if fault.kind in REPLY_FAULTS:
            self._reply_faults.append(_Active(fault, fault.count))
            return
        until = None if fault.duration_s is None else now_s + fault.duration_s
        self._state_faults.append(_Active(fault, 0, until))
        self._start_state(p, fault)
        self._note(now_s, fault, {})

    def _start_state(self, p: Personality, fault: Fault) -> None:
        kind = fault.kind
        if kind is FaultKind.BUSY:
            _set(p, "busy", True)
        elif kind in (FaultKind.OVER_RANGE, FaultKind.NO_CONTACT):
            _set(p, "forced", kind.value)
        elif kind is FaultKind.OVER_TEMPERATURE:
            now = p.clock.now()
            for cell in p.fault_cells():
                cell.advance_to(now)
                cell.set_temperature(fault.temperature_c)
            trip = getattr(p, "trip_over_temperature", None)
            if callable(trip):
                trip()
        elif kind is FaultKind.INTERLOCK_OPEN:
            setter = getattr(p, "set_interlock", None)
            if not callable(setter):
                raise ValueError(f"{p.kind} has no interlock")
            setter(False)

    def _end_state(self, p: Personality, fault: Fault) -> None:
        kind = fault.kind
        if kind is FaultKind.BUSY:
            _set(p, "busy", False)
        elif kind in (FaultKind.OVER_RANGE, FaultKind.NO_CONTACT):
            _set(p, "forced", None)
        elif kind is FaultKind.INTERLOCK_OPEN:
            setter = getattr(p, "set_interlock", None)
            if callable(setter):
                setter(True)

    def _rewrite(self, p: Personality, fault: Fault, reply: Reply) -> Reply | None:
        kind = fault.kind
        if kind is FaultKind.DELAY:
            return replace(reply, due_s=reply.due_s + fault.delay_s)
        if kind is FaultKind.DROP_REPLY:
            return None
        if kind is FaultKind.GARBAGE:
            terminator = p.write_termination
            junk = bytes(self._rng.randrange(0x80, 0x100) for _ in range(fault.n_bytes))
            return replace(reply, data=junk + terminator)
        if kind is FaultKind.TRUNCATE:
            return replace(reply, data=reply.data[: max(1, len(reply.data) // 2)])
        return Reply(b"", reply.due_s, disconnect=True, offline_s=fault.offline_s)

    def _note(self, t_s: float, fault: Fault, extra: dict[str, Any]) -> None:
        self.log.append({"t_s": t_s, "fault": fault.kind.value, **extra})


def _set(p: Personality, name: str, value: Any) -> None:
    if not hasattr(p, name):
        raise ValueError(f"{p.kind} does not support this fault (no {name!r})")
    setattr(p, name, value)


def random_schedule(
    seed: int,
    *,
    kinds: tuple[FaultKind, ...] = (
        FaultKind.DELAY,
        FaultKind.DROP_REPLY,
        FaultKind.GARBAGE,
        FaultKind.TRUNCATE,
    ),
    duration_s: float,
    mean_interval_s: float,
    start_s: float = 0.0,
) -> list[Fault]:
    """A seeded list of faults at exponentially distributed times (same seed, same list)."""
    if mean_interval_s <= 0:
        raise ValueError("mean_interval_s must be positive")
    rng = random.Random(f"schedule/{seed}")
    faults = []
    t = start_s + rng.expovariate(1.0 / mean_interval_s)
    while t < start_s + duration_s:
        faults.append(Fault(rng.choice(kinds), at_s=t))
        t += rng.expovariate(1.0 / mean_interval_s)
    return faults

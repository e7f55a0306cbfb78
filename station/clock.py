"""Time for the station: passed in, never read from ``time.time()`` scattered through the code.

Every station time is Unix time in seconds (UTC). A real bench runs on :class:`SystemClock`. A
simulated bench runs on :class:`ScaledClock` with the simulator's parameters
(``t_sim = t0 + speed * (t_wall - w0)``; the simulator starts ``t0`` at the wall clock's time of
its launch), so the same engine code runs a 9-hour test in seconds and its records still carry
today's date. Simulated time runs ahead of the wall clock; a command that writes to a database
outside a run (``station grade``) uses :class:`NotBeforeClock`: the wall clock, but never earlier
than the database's latest record. Tests step a :class:`ManualClock`.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """A source of time in seconds (Unix epoch for real clocks, simulated seconds otherwise)."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """Wall-clock time (UTC epoch seconds)."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ScaledClock:
    """Accelerated time: ``t0 + speed * (wall - w0)``, sharing a simulator's parameters.

    ``t0_s`` is the simulated epoch at wall time ``w0_s`` (both epoch seconds); ``speed`` >= 1.
    """

    def __init__(self, *, t0_s: float, w0_s: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.t0_s = t0_s
        self.w0_s = w0_s
        self.speed = speed

    def now(self) -> float:
        return self.t0_s + self.speed * (time.time() - self.w0_s)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)

    def skip(self, seconds: float) -> None:
        """Jump ``seconds`` of simulated time ahead, as the simulator's clock does on its
        ``skip`` control command (both must skip, or they disagree on the time from then on)."""
        if seconds < 0:
            raise ValueError(f"a clock does not go backwards (skip by {seconds!r} s)")
        self.t0_s += seconds


class NotBeforeClock:
    """``max(clock.now(), floor_s)``: a stamp never earlier than ``floor_s`` (e.g. the latest
    record of a database a simulated bench wrote ahead of the wall clock), so a grade never
    predates the data it grades."""

    def __init__(self, clock: Clock, floor_s: float) -> None:
        self.clock = clock
        self.floor_s = floor_s

    def now(self) -> float:
        return max(self.clock.now(), self.floor_s)

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to (tests). ``sleep`` advances it instantly."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now = start_s
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a manual clock does not go backwards")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))

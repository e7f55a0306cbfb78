"""The bench clock: one simulated time shared by every cell and instrument of a bench.

``t_sim = t0_s + speed * (t_wall - w0_s)``. The station's ``ScaledClock`` is built from the same
three numbers (the launcher prints them), so both sides agree on simulated time without talking.
``epoch_s`` places simulated time 0 on the calendar: the launcher publishes ``t0_s + epoch_s``,
so the station's clock is Unix time while the simulator counts from 0 at full float resolution.
In manual mode the clock moves only through :meth:`SimClock.advance` (tests), and waiting for a
simulated instant jumps the clock there instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_SPEED = 1.0e6


class SimClock:
    """Simulated time in seconds.

    ``t0_s``: simulated time at the wall instant ``w0_s`` (wall epoch seconds, taken at creation).
    ``speed``: simulated seconds per wall second, 1 to >= 10,000 (any positive value is accepted up
    to ``MAX_SPEED``). ``manual=True``: time stands still until :meth:`advance` is called.
    ``wall``: the wall-time source (``time.time``); injectable for tests. ``epoch_s``: the Unix
    time simulated time 0 stands for (0: none; the bench sets the wall time of its launch).
    """

    def __init__(
        self,
        t0_s: float = 0.0,
        speed: float = 1.0,
        *,
        manual: bool = False,
        wall: Callable[[], float] = time.time,
        epoch_s: float = 0.0,
    ) -> None:
        if not 0.0 < speed <= MAX_SPEED:
            raise ValueError(f"clock speed must be in (0, {MAX_SPEED:g}], got {speed!r}")
        self._wall = wall
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.t0_s = float(t0_s)
        self.speed = float(speed)
        self.manual = manual
        self.epoch_s = float(epoch_s)
        self.w0_s = wall()
        self._manual_offset_s = 0.0

    def now(self) -> float:
        """Current simulated time (s)."""
        if self.manual:
            with self._lock:
                return self.t0_s + self._manual_offset_s
        return self.t0_s + self.speed * (self._wall() - self.w0_s)

    def advance(self, seconds: float) -> None:
        """Move a manual clock forward by ``seconds`` of simulated time (never backwards)."""
        if not self.manual:
            raise RuntimeError("advance() is only for a manual clock; this one runs on wall time")
        if seconds < 0:
            raise ValueError(f"a clock does not go backwards (advance by {seconds!r} s)")
        with self._changed:
            self._manual_offset_s += seconds
            self._changed.notify_all()

    def skip(self, seconds: float) -> None:
        """Jump simulated time forward by ``seconds`` at once (manual or running clock): a long
        open-circuit hold (a 7-day self-discharge test) passes without waiting for it. Cells
        integrate the skipped span on their next access, exactly as if it had been waited."""
        if seconds < 0:
            raise ValueError(f"a clock does not go backwards (skip by {seconds!r} s)")
        with self._changed:
            if self.manual:
                self._manual_offset_s += seconds
            else:
                self.t0_s += seconds
            self._changed.notify_all()

    def advance_to(self, t_s: float) -> None:
        """Move a manual clock to ``t_s`` if it is not there yet (no-op otherwise)."""
        with self._changed:
            now = self.t0_s + self._manual_offset_s
            if t_s > now:
                self._manual_offset_s += t_s - now
                self._changed.notify_all()

    def wall_seconds_until(self, t_s: float) -> float:
        """Wall seconds until simulated time ``t_s`` (0 if past).

        A manual clock jumps to ``t_s`` and returns 0: whoever waits for a simulated instant (a
        transport holding back a reply) then sees it come at once, as if the client had waited.
        """
        if self.manual:
            self.advance_to(t_s)
            return 0.0
        return max(0.0, (t_s - self.now()) / self.speed)

    def sleep(self, sim_seconds: float) -> None:
        """Wait ``sim_seconds`` of simulated time (a manual clock advances instead)."""
        if sim_seconds <= 0:
            return
        if self.manual:
            self.advance(sim_seconds)
            return
        time.sleep(sim_seconds / self.speed)

    def sleep_until(self, t_s: float) -> None:
        """Wait until simulated time ``t_s``."""
        wall_s = self.wall_seconds_until(t_s)
        if wall_s > 0:
            time.sleep(wall_s)

    def describe(self) -> dict[str, float | bool]:
        """The parameters a station ``ScaledClock`` needs, for the launcher's JSON: ``t0_s`` in
        Unix time (``epoch_s`` added)."""
        return {
            "t0_s": self.t0_s + self.epoch_s,
            "w0_s": self.w0_s,
            "speed": self.speed,
            "manual": self.manual,
        }

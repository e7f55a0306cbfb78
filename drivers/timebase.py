"""The clock shape drivers stamp readings with.

``station.clock`` clocks satisfy it by shape (drivers may not import the station). The default is
wall-clock time; a simulated bench passes the station's ``ScaledClock`` so reading times and
host-side settling waits follow the simulator's accelerated time.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class WallClock:
    """UTC epoch seconds; ``sleep`` blocks for real."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

"""A pseudo-terminal serving one personality (POSIX only).

``os.openpty()`` with both ends in raw mode; the slave's path (``/dev/pts/N``) is what a serial
driver opens, like a USB-serial adapter (the client's baud rate and parity settings are
accepted and ignored). The master end is pumped by a background thread. A reply carrying
``disconnect`` (fault injection) drops pending output and ignores input for ``offline_s`` wall
seconds, like an adapter that resets; the path stays the same.

With ``baud_rate`` the server emulates the wire's speed (``bits_per_byte``, default 10 for 8N1):
a reply starts only when the query's last byte would have arrived, and its bytes leave no faster
than the line carries them. Output is released in slices of about 1 ms of line time,
as a USB-serial adapter delivers received bytes in 1 ms USB frames, and the last byte of each
burst is released exactly when it would be complete, so the wire limit is what a client can
reach.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import select
import sys
import threading
import time
import tty
from types import TracebackType

from hardware_sim.devices.base import Personality, ReplyQueue

POLL_S = 0.05
_PR_SET_TIMERSLACK = 29
SLICE_S = 0.001
"""Line time of one released output slice when emulating a baud rate (s)."""


class PtyServer:
    """Serve ``personality`` on a new pty; ``baud_rate`` (bit/s) paces the line, None does not."""

    def __init__(
        self, personality: Personality, *, baud_rate: float | None = None, bits_per_byte: int = 10
    ) -> None:
        if baud_rate is not None and baud_rate <= 0:
            raise ValueError(f"baud_rate must be positive, got {baud_rate}")
        self.personality = personality
        self.byte_s = bits_per_byte / baud_rate if baud_rate else 0.0
        self._master = -1
        self._slave = -1
        self.path = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._offline_until = 0.0

    def start(self) -> PtyServer:
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._run, name=f"sim-pty-{self.path}", daemon=True)
        self._thread.start()
        return self

    def addresses(self) -> dict[str, str]:
        return {"pty": self.path, "visa_pty": f"ASRL{self.path}::INSTR"}

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> PtyServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        if self.byte_s:
            _tighten_timer_slack()
        queue = ReplyQueue(self.personality.clock)
        # Wall time at which the last byte read so far has fully arrived on the emulated line.
        # The instrument sees a query as soon as it is read (its reply does not depend on 1 ms of
        # simulated time), but the reply's first byte leaves only after the query has arrived, so
        # the line timing does not depend on how promptly this thread woke up.
        line_in_done = 0.0
        outbound = _Outbound(self.byte_s)
        with self.personality.lock:
            self.personality.on_connect()
        while not self._stop.is_set():
            waits = [POLL_S, outbound.wait_s(time.monotonic())]
            head = queue.wall_wait_s()
            if head is not None:
                waits.append(head)
            readable, _, _ = select.select([self._master], [], [], max(min(waits), 0.0))
            if readable:
                now = time.monotonic()
                try:
                    data = os.read(self._master, 65536)
                except OSError:
                    data = b""
                if data and now >= self._offline_until:
                    line_in_done = max(now, line_in_done) + len(data) * self.byte_s
                    queue.push(self.personality.receive(data))
            for reply in queue.pop_due():
                if reply.data:
                    outbound.add(reply.data, max(time.monotonic(), line_in_done))
                if reply.disconnect:
                    self._write(outbound.take(math.inf))
                    queue.clear()
                    outbound.clear()
                    self._offline_until = time.monotonic() + reply.offline_s
                    with self.personality.lock:
                        self.personality.on_disconnect()
                        self.personality.on_connect()
            self._write(outbound.take(time.monotonic()))

    def _write(self, data: bytes) -> None:
        if data:
            with contextlib.suppress(OSError):
                os.write(self._master, data)


def _tighten_timer_slack() -> None:
    """Wake this thread within ~1 us of its ``select`` timeout instead of Linux's default 50 us
    timer slack for ordinary threads: a burst's last byte is released when its line time is up,
    and oversleeping would slow the emulated line below its baud rate (``prctl(2)``
    ``PR_SET_TIMERSLACK``, per thread). Elsewhere the default slack is kept."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(1000), 0, 0, 0)


class _Outbound:
    """Reply bytes queued on an emulated line; byte ``i`` is complete at ``origin + (i+1)*byte_s``.

    Times are wall seconds on the monotonic clock.
    """

    def __init__(self, byte_s: float) -> None:
        self.byte_s = byte_s
        self._slice = max(1, round(SLICE_S / byte_s)) if byte_s else 1
        self._buffer = bytearray()
        self._origin = 0.0
        self._sent = 0

    def add(self, data: bytes, start: float) -> None:
        """Queue ``data`` to go out from ``start`` on, or right after the bytes still queued."""
        if self._sent >= len(self._buffer) and start > self._done_at(len(self._buffer) - 1):
            # The line went idle: the new burst starts at ``start``.
            self._buffer.clear()
            self._sent = 0
            self._origin = start
        self._buffer += data

    def clear(self) -> None:
        self._buffer.clear()
        self._sent = 0

    def _done_at(self, index: int) -> float:
        return self._origin + (index + 1) * self.byte_s

    def take(self, now: float) -> bytes:
        """The queued bytes complete on the line by ``now`` that were not taken yet."""
        if self.byte_s == 0 or now == math.inf:
            complete = len(self._buffer)
        else:
            complete = min(len(self._buffer), int((now - self._origin) / self.byte_s + 1e-9))
        if complete <= self._sent:
            return b""
        data = bytes(self._buffer[self._sent : complete])
        self._sent = complete
        return data

    def wait_s(self, now: float) -> float:
        """Wall seconds until the next slice (or the burst's last byte) is complete."""
        pending = len(self._buffer) - self._sent
        if pending <= 0:
            return POLL_S
        last = self._sent + min(self._slice, pending) - 1
        return self._done_at(last) - now

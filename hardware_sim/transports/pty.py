"""A pseudo-terminal serving one personality (POSIX only).

``os.openpty()`` with both ends in raw mode; the slave's path (``/dev/pts/N``) is what a serial
driver opens, like a USB-serial adapter (baud rate and parity are accepted and ignored). The
master end is pumped by a background thread. A reply carrying ``disconnect`` (fault injection)
drops pending output and ignores input for ``offline_s`` wall seconds, like an adapter that
resets; the path stays the same.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from types import TracebackType

from hardware_sim.devices.base import Personality, ReplyQueue

POLL_S = 0.05


class PtyServer:
    def __init__(self, personality: Personality) -> None:
        self.personality = personality
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
        queue = ReplyQueue(self.personality.clock)
        with self.personality.lock:
            self.personality.on_connect()
        while not self._stop.is_set():
            wait = queue.wall_wait_s()
            timeout = POLL_S if wait is None else min(POLL_S, wait)
            readable, _, _ = select.select([self._master], [], [], timeout)
            if readable:
                try:
                    data = os.read(self._master, 65536)
                except OSError:
                    data = b""
                if data and time.monotonic() >= self._offline_until:
                    queue.push(self.personality.receive(data))
            for reply in queue.pop_due():
                if reply.data:
                    with contextlib.suppress(OSError):
                        os.write(self._master, reply.data)
                if reply.disconnect:
                    queue.clear()
                    self._offline_until = time.monotonic() + reply.offline_s
                    with self.personality.lock:
                        self.personality.on_disconnect()
                        self.personality.on_connect()

"""pyserial ``sim://`` handler: a simulated instrument in the same process, no thread, no port.

Writes go straight to the personality; ``read`` returns reply bytes once the bench clock reaches
their due time (waiting in wall time on a running clock, jumping a manual one), honouring the
port's ``timeout``. A ``disconnect`` reply (fault injection) drops pending output and makes the
port deaf for ``offline_s`` wall seconds, as an adapter reset would.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from hardware_sim.devices.base import Personality, ReplyQueue
from hardware_sim.serial_handlers import attached

POLL_S = 0.01


class Serial(SerialBase):
    is_open: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.personality: Personality | None = None
        self._queue: ReplyQueue | None = None
        self._rx = bytearray()
        self._offline_until = 0.0
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        self.personality = self._personality_for(self.portstr)
        self._queue = ReplyQueue(self.personality.clock)
        with self.personality.lock:
            self.personality.on_connect()
        self.is_open = True

    def close(self) -> None:
        if self.is_open and self.personality is not None:
            with self.personality.lock:
                self.personality.on_disconnect()
        self.is_open = False
        super().close()

    @staticmethod
    def _personality_for(url: str) -> Personality:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "sim":
            raise SerialException(f"expected sim://<device>[?seed=&speed=], got {url!r}")
        name = parts.netloc or parts.path.lstrip("/")
        found = attached(name)
        if found is not None:
            return found
        options = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        unknown = set(options) - {"seed", "speed", "manual"}
        if unknown:
            raise SerialException(f"{url}: unknown option(s) {', '.join(sorted(unknown))}")
        from hardware_sim.bench import single_device

        try:
            bench = single_device(
                name.lower(),
                seed=int(options.get("seed", "0")),
                speed=float(options.get("speed", "1")),
                manual=options.get("manual", "0") in ("1", "true", "yes"),
            )
        except ValueError as err:
            raise SerialException(f"{url}: {err}") from None
        return bench.devices[0].personality

    def _reconfigure_port(self) -> None:
        """Baud rate, parity and the rest do not matter to a simulated instrument."""

    def _update_dtr_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _pump(self) -> None:
        assert self._queue is not None and self.personality is not None
        for reply in self._queue.pop_due():
            if time.monotonic() >= self._offline_until:
                self._rx.extend(reply.data)
            if reply.disconnect:
                self._queue.clear()
                self._offline_until = time.monotonic() + reply.offline_s
                with self.personality.lock:
                    self.personality.on_disconnect()
                    self.personality.on_connect()

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        self._pump()
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        assert self._queue is not None
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            self._pump()
            if len(self._rx) >= size:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            wait = self._queue.wall_wait_s()
            pause = POLL_S if wait is None else min(max(wait, 0.0), POLL_S)
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
        data = bytes(self._rx[:size])
        del self._rx[:size]
        return data

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        assert self._queue is not None and self.personality is not None
        payload = bytes(data)
        if time.monotonic() >= self._offline_until:
            self._queue.push(self.personality.receive(payload))
        return len(payload)

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        self._rx.clear()

    def reset_output_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()

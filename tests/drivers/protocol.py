"""``expected_protocol``: a transport double that asserts the exact bytes a driver sends.

A test lists the exchanges in order; each is ``(sent, reply)``:

- ``sent`` is the command text without terminator (the double adds the write terminator and
  compares bytes exactly);
- ``reply`` is ``None`` (the command has no reply), a ``str`` (delivered with the read
  terminator), ``bytes`` (delivered exactly as given: garbage, truncated lines), :data:`TIMEOUT`
  (nothing arrives; the double's clock jumps so no test waits) or :data:`DISCONNECT` (the peer
  vanishes: the read raises LinkDown).

:data:`REOPEN` as an item means the driver must reopen the connection at that point. On leaving
the block every exchange must have happened and no reply byte may be left unread (pymeasure's
``expected_protocol``, rebuilt on our Transport so the real framing code runs).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from drivers.errors import LinkDown
from drivers.transport import Transport

TIMEOUT = object()
DISCONNECT = object()
REOPEN = object()

T = TypeVar("T")


class ExpectedProtocol(Transport):
    def __init__(
        self,
        exchanges: Sequence[object],
        *,
        read_termination: str,
        write_termination: str,
        address: str = "expected://test",
    ) -> None:
        self._now_s = 0.0
        super().__init__(
            address,
            read_termination=read_termination,
            write_termination=write_termination,
            timeout_s=1.0,
            monotonic=lambda: self._now_s,
        )
        self._steps: deque[object] = deque(exchanges)
        self._pending: bytes | object = b""
        self._opened_before = False
        self.sent: list[bytes] = []

    def _open(self) -> None:
        if self._opened_before:
            step = self._steps.popleft() if self._steps else None
            assert step is REOPEN, f"driver reopened the link; next expected was {step!r}"
        self._opened_before = True
        self._pending = b""

    def _close(self) -> None:
        pass

    def _send(self, data: bytes) -> None:
        self.sent.append(data)
        assert self._pending in (b"", TIMEOUT), f"sent {data!r} with reply {self._pending!r} unread"
        assert self._steps, f"unexpected write {data!r}: no exchange left"
        step = self._steps.popleft()
        assert isinstance(step, tuple), f"wrote {data!r} but expected {step!r}"
        command, reply = step
        expected = command.encode("ascii") + self.write_termination
        assert data == expected, f"sent {data!r}, expected {expected!r}"
        if reply is None:
            self._pending = b""
        elif isinstance(reply, str):
            self._pending = reply.encode("ascii") + self.read_termination
        else:
            self._pending = reply

    def _receive(self, timeout_s: float) -> bytes:
        pending = self._pending
        if pending is DISCONNECT:
            self._pending = b""
            raise LinkDown("peer vanished (expected_protocol)", address=self.address)
        if isinstance(pending, bytes) and pending:
            self._pending = b""
            return pending
        self._now_s += max(timeout_s, 1e-3)
        return b""

    def assert_done(self) -> None:
        assert not self._steps, f"exchanges never happened: {list(self._steps)!r}"
        assert self._pending in (b"", TIMEOUT), f"reply left unread: {self._pending!r}"
        assert not self._buffer, f"bytes left in the read buffer: {bytes(self._buffer)!r}"


@contextmanager
def expected_protocol(
    factory: Callable[..., T],
    exchanges: Sequence[object],
    *,
    read_termination: str,
    write_termination: str,
    **kwargs: Any,
) -> Iterator[T]:
    """Build ``factory(transport, **kwargs)`` on an :class:`ExpectedProtocol` and check it."""
    transport = ExpectedProtocol(
        exchanges, read_termination=read_termination, write_termination=write_termination
    )
    transport.open()
    instrument = factory(transport, **kwargs)
    yield instrument
    transport.assert_done()

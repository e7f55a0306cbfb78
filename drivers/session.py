"""The reconnect policy every driver shares.

A :class:`Session` owns one transport plus the two things that make a fresh connection usable:
``identify`` (send ``*IDN?`` or the instrument's equivalent and parse it) and ``setup`` (send the
set-up sequence and check it was accepted). When an exchange fails with :class:`LinkDown` the
session closes the transport, reopens it with exponential backoff, re-identifies (the identity
must match the one read at connect: a different instrument on the same address is an error, not
a recovery) and re-sends the set-up. It then hands control back to the caller's ``recover``
function, never to the failed command: a command whose effect is unknown is not sent again (the
caller recovers the reading with ``:FETC?`` or reads the instrument's state instead).

See ``../shared/reference/reliability.md`` section 6 (S6, R4) for the behaviour this implements.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from drivers.errors import InstrumentError, LinkDown, ProtocolError, TransportTimeout
from drivers.identity import InstrumentIdentity
from drivers.transport import Transport

log = logging.getLogger("drivers.session")

T = TypeVar("T")


class IdentityMismatch(LinkDown):
    """After a reconnect a different instrument answered on the address."""


@dataclass(frozen=True)
class Backoff:
    """Reconnect attempts and the waits before them: ``initial_s * factor**k``, capped at max_s."""

    attempts: int = 6
    initial_s: float = 0.2
    factor: float = 2.0
    max_s: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"Backoff.attempts must be at least 1, got {self.attempts}")
        if self.initial_s < 0 or self.factor < 1 or self.max_s < 0:
            raise ValueError(f"Backoff waits must be non-negative and growing: {self}")

    def delays_s(self) -> Iterator[float]:
        delay = self.initial_s
        for _ in range(self.attempts):
            yield min(delay, self.max_s)
            delay *= self.factor


def same_instrument(a: InstrumentIdentity, b: InstrumentIdentity) -> bool:
    """Identity fields match (the address it answered on may differ in spelling)."""
    return (a.make, a.model, a.serial, a.firmware) == (b.make, b.model, b.serial, b.firmware)


class Session:
    """An identified connection that reconnects itself; used from one worker thread."""

    def __init__(
        self,
        transport: Transport,
        *,
        identify: Callable[[Transport], InstrumentIdentity],
        setup: Callable[[Transport], None],
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.transport = transport
        self._identify = identify
        self._setup = setup
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._identity: InstrumentIdentity | None = None
        self.reconnects = 0
        self.max_reconnects_per_call = 2

    @property
    def identity(self) -> InstrumentIdentity:
        if self._identity is None:
            raise LinkDown("not connected: call connect() first", address=self.transport.address)
        return self._identity

    def connect(self) -> InstrumentIdentity:
        """Identify and set up the instrument on the (already open) transport."""
        if not self.transport.is_open:
            self.transport.open()
        self._identity = self._identify(self.transport)
        self._setup(self.transport)
        log.info("%s connected: %s", self.transport.address, self._identity.describe())
        return self._identity

    def reconnect(self, cause: BaseException) -> None:
        """Close, reopen with backoff, re-identify and re-send the set-up; LinkDown if it cannot."""
        address = self.transport.address
        log.warning("%s link down (%s); reconnecting", address, cause)
        last: BaseException = cause
        for attempt, delay_s in enumerate(self.backoff.delays_s(), start=1):
            self.transport.close()
            self._sleep(delay_s)
            try:
                self.transport.open()
                identity = self._identify(self.transport)
                if self._identity is not None and not same_instrument(identity, self._identity):
                    self.transport.close()
                    raise IdentityMismatch(
                        f"expected {self._identity.describe()}, found {identity.describe()}",
                        address=address,
                    )
                self._setup(self.transport)
            except IdentityMismatch:
                raise
            except (LinkDown, TransportTimeout, ProtocolError) as exc:
                log.warning("%s reconnect attempt %d failed: %s", address, attempt, exc)
                last = exc
                continue
            self._identity = identity
            self.reconnects += 1
            log.warning("%s reconnected after %d attempt(s)", address, attempt)
            return
        self.transport.close()
        raise LinkDown(
            f"gave up after {self.backoff.attempts} reconnect attempts: {last}", address=address
        ) from last

    def resync(self, transport: Transport, *, max_lines: int = 32) -> None:
        """Re-align replies with questions after a timeout or a garbled reply.

        A late reply would otherwise be taken for the answer to the next question. Replies come
        back in order, so the driver asks ``*IDN?`` and discards every line up to the one ending
        in this instrument's identity (a cut-off reply may prefix it on the same line). It then
        waits for the line to stay quiet for one timeout, which swallows the reply to an earlier
        ``*IDN?`` that was itself late.
        """
        identity = self.identity
        marker = ",".join((identity.make, identity.model, identity.serial, identity.firmware))
        dropped = transport.clear()
        transport.write("*IDN?")
        for _ in range(max_lines):
            try:
                line = transport.read()
            except ProtocolError as exc:
                log.warning(
                    "%s dropped a garbled line while resynchronising: %s", transport.address, exc
                )
                continue
            if ",".join(part.strip() for part in line.split(",")).endswith(marker):
                late = transport.clear(settle_s=transport.timeout_s)
                log.info(
                    "%s resynchronised (dropped %r, then %r)",
                    transport.address,
                    dropped[:120],
                    late[:120],
                )
                return
            log.warning(
                "%s dropped stale reply %r while resynchronising", transport.address, line[:120]
            )
        raise ProtocolError(
            f"no *IDN? reply among {max_lines} lines while resynchronising",
            address=transport.address,
        )

    def run(
        self,
        exchange: Callable[[Transport], T],
        *,
        recover: Callable[[Transport], T] | None = None,
    ) -> T:
        """Run ``exchange``; on LinkDown reconnect and run ``recover`` (never ``exchange`` again).

        Without ``recover`` the LinkDown is re-raised after the reconnect: the caller did not say
        how to learn what the lost command did, so the session does not guess.
        """
        try:
            return exchange(self.transport)
        except LinkDown as exc:
            cause = exc
        for _ in range(self.max_reconnects_per_call):
            self.reconnect(cause)
            if recover is None:
                raise LinkDown(
                    f"link was down during a command with unknown effect ({cause}); "
                    "reconnected, not re-sent",
                    address=self.transport.address,
                ) from cause
            try:
                return recover(self.transport)
            except LinkDown as exc:
                cause = exc
        raise cause

    def close(self) -> None:
        self.transport.close()


def log_fault(address: str, kind: str, exc: InstrumentError | None = None) -> None:
    """Every handled fault goes through here, so a soak can count them in the log."""
    log.warning("%s fault %s: %s", address, kind, exc if exc is not None else "")

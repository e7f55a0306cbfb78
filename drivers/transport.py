"""The one transport seam every driver talks through.

``open_transport(address, ...)`` picks an implementation from the address:

- ``tcp://host:port``: a plain TCP socket (Hioki ...A models on port 23, Keithley on 5025,
  Neware BTS on 502).
- VISA resource strings (``TCPIP::host::port::SOCKET``, ``ASRL/dev/ttyUSB0::INSTR``,
  ``ASRLsocket://127.0.0.1:5025::INSTR``, ``USB0::...::INSTR``, ``GPIB0::...``): pyvisa with the
  pyvisa-py backend and one ``ResourceManager`` per process.
- anything else (``/dev/ttyUSB0``, ``COM3``, ``socket://host:port``, ``loop://``, ``sim://...``
  once a handler package is registered): pyserial ``serial_for_url``.

Every implementation shares the framing, locking, logging and error mapping of
:class:`Transport`; subclasses only move bytes. Replies are split on an explicit terminator; each
call takes a per-call timeout and optionally an overall :class:`Deadline`. Errors map to
:mod:`drivers.errors`:

- no complete reply in time -> :class:`TransportTimeout`; the ``max_consecutive_timeouts``-th
  timeout in a row raises :class:`LinkDown` instead (a peer that closed a TCP connection shows up
  only as timeouts in pyvisa-py);
- bytes that do not decode in ``encoding`` (pyvisa's ``UnicodeDecodeError`` included) or a line
  longer than ``max_line_bytes`` -> :class:`ProtocolError`;
- a closed, refused or vanished connection -> :class:`LinkDown`.

Traffic is logged at DEBUG on the ``drivers.transport`` logger. A transport is owned by one worker
thread; its lock still makes ``query`` atomic (write and read of one exchange are never
interleaved with another caller's).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from drivers.errors import LinkDown, ProtocolError, TransportTimeout

log = logging.getLogger("drivers.transport")

_DEFAULT_MAX_LINE_BYTES = 1 << 20
# How long one low-level read may block before the framing loop re-checks its deadline (s).
_POLL_SLICE_S = 0.25


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the monotonic clock (s) after which a multi-step exchange gives up."""

    at_s: float

    @classmethod
    def after(cls, seconds: float, *, monotonic: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(monotonic() + seconds)

    def remaining_s(self, *, monotonic: Callable[[], float] = time.monotonic) -> float:
        return self.at_s - monotonic()


def _as_bytes(value: bytes | str, encoding: str) -> bytes:
    return value if isinstance(value, bytes) else value.encode(encoding)


class Transport:
    """Framed, logged, locked text I/O over one connection.

    Subclasses implement ``_open``, ``_close``, ``_send(data)`` and ``_receive(timeout_s)``, which
    returns whatever bytes arrived (``b""`` when none did within ``timeout_s``) and raises
    :class:`LinkDown` when the connection is gone.
    """

    def __init__(
        self,
        address: str,
        *,
        read_termination: bytes | str,
        write_termination: bytes | str,
        timeout_s: float,
        encoding: str = "ascii",
        max_consecutive_timeouts: int = 3,
        max_line_bytes: int = _DEFAULT_MAX_LINE_BYTES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if max_consecutive_timeouts < 1:
            raise ValueError("max_consecutive_timeouts must be at least 1")
        self.address = address
        self.encoding = encoding
        self.read_termination = _as_bytes(read_termination, encoding)
        self.write_termination = _as_bytes(write_termination, encoding)
        if not self.read_termination:
            raise ValueError("read_termination must not be empty")
        self.timeout_s = timeout_s
        self.max_consecutive_timeouts = max_consecutive_timeouts
        self.max_line_bytes = max_line_bytes
        self.lock = threading.RLock()
        self._monotonic = monotonic
        self._buffer = bytearray()
        self._consecutive_timeouts = 0
        self._is_open = False

    # -- subclass hooks -------------------------------------------------------------------------

    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _receive(self, timeout_s: float) -> bytes:
        raise NotImplementedError

    # -- public API -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> None:
        """Open the connection (``open_transport`` already did); LinkDown when it cannot."""
        with self.lock:
            if self._is_open:
                return
            self._buffer.clear()
            self._consecutive_timeouts = 0
            self._open()
            self._is_open = True
            log.debug("%s opened", self.address)

    def close(self) -> None:
        """Close the connection. Idempotent; never raises for an already-broken link."""
        with self.lock:
            if not self._is_open:
                return
            self._is_open = False
            self._buffer.clear()
            try:
                self._close()
            except Exception as exc:  # a broken link may fail to close; it is closed either way
                log.debug("%s close failed: %r", self.address, exc)
            log.debug("%s closed", self.address)

    def reopen(self) -> None:
        """Close and open again (the reconnect policy's building block)."""
        with self.lock:
            self.close()
            self.open()

    def write(self, text: str) -> None:
        """Send ``text`` plus the write terminator."""
        with self.lock:
            self._require_open()
            data = text.encode(self.encoding) + self.write_termination
            log.debug("%s << %r", self.address, data)
            try:
                self._send(data)
            except LinkDown:
                self._mark_down()
                raise

    def read(self, *, timeout_s: float | None = None, deadline: Deadline | None = None) -> str:
        """Read one reply terminated by ``read_termination`` (terminator stripped)."""
        return self.read_until(self.read_termination, timeout_s=timeout_s, deadline=deadline)

    def read_until(
        self,
        terminator: bytes | str,
        *,
        timeout_s: float | None = None,
        deadline: Deadline | None = None,
    ) -> str:
        """Read up to and excluding ``terminator``; bytes after it stay buffered for the next read.

        Waits at most ``timeout_s`` (default: the transport's timeout) and never past ``deadline``.
        """
        term = _as_bytes(terminator, self.encoding)
        if not term:
            raise ValueError("terminator must not be empty")
        with self.lock:
            self._require_open()
            limit_s = self._limit_s(timeout_s, deadline)
            end_s = self._monotonic() + limit_s
            while True:
                index = self._buffer.find(term)
                if index > self.max_line_bytes:
                    del self._buffer[: index + len(term)]
                    raise ProtocolError(
                        f"reply of {index} bytes exceeds {self.max_line_bytes}",
                        address=self.address,
                    )
                if index >= 0:
                    frame = bytes(self._buffer[:index])
                    del self._buffer[: index + len(term)]
                    self._consecutive_timeouts = 0
                    log.debug("%s >> %r", self.address, frame + term)
                    return self._decode(frame)
                if len(self._buffer) > self.max_line_bytes:
                    size = len(self._buffer)
                    self._buffer.clear()
                    raise ProtocolError(
                        f"no terminator {term!r} within {size} bytes", address=self.address
                    )
                remaining_s = end_s - self._monotonic()
                if remaining_s <= 0:
                    self._timed_out(limit_s)
                chunk = self._receive_mapped(min(remaining_s, _POLL_SLICE_S))
                if chunk:
                    self._buffer += chunk

    def query(self, text: str, *, timeout_s: float | None = None) -> str:
        """Write ``text`` and read one reply, holding the lock across both."""
        with self.lock:
            self.write(text)
            return self.read(timeout_s=timeout_s)

    def clear(self, *, settle_s: float = 0.0) -> bytes:
        """Discard buffered input and anything arriving until the line is quiet for ``settle_s``.

        Used after a timeout so a late reply is not taken for the answer to the next question.
        Returns the discarded bytes (logged at DEBUG).
        """
        with self.lock:
            self._require_open()
            dropped = bytearray(self._buffer)
            self._buffer.clear()
            while True:
                chunk = self._receive_mapped(settle_s)
                if not chunk:
                    break
                dropped += chunk
            if dropped:
                log.debug("%s discarded %r", self.address, bytes(dropped))
            return bytes(dropped)

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"

    # -- helpers --------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self._is_open:
            raise LinkDown("transport is closed", address=self.address)

    def _limit_s(self, timeout_s: float | None, deadline: Deadline | None) -> float:
        limit_s = self.timeout_s if timeout_s is None else timeout_s
        if deadline is not None:
            limit_s = min(limit_s, deadline.remaining_s(monotonic=self._monotonic))
        return max(limit_s, 0.0)

    def _receive_mapped(self, timeout_s: float) -> bytes:
        try:
            return self._receive(max(timeout_s, 0.0))
        except LinkDown:
            self._mark_down()
            raise

    def _mark_down(self) -> None:
        """The link broke: release the connection so ``reopen`` starts clean."""
        self.close()

    def _timed_out(self, limit_s: float) -> None:
        self._consecutive_timeouts += 1
        partial = bytes(self._buffer)
        if self._consecutive_timeouts >= self.max_consecutive_timeouts:
            count = self._consecutive_timeouts
            self._consecutive_timeouts = 0
            self._buffer.clear()
            log.debug("%s link down after %d timeouts", self.address, count)
            raise LinkDown(f"{count} consecutive timeouts", address=self.address)
        detail = f" (partial {partial!r})" if partial else ""
        raise TransportTimeout(f"no reply within {limit_s:.3g} s{detail}", address=self.address)

    def _decode(self, frame: bytes) -> str:
        try:
            return frame.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"reply is not {self.encoding}: {frame[:80]!r}", address=self.address
            ) from exc


class TcpTransport(Transport):
    """Raw TCP (``tcp://host:port``)."""

    def __init__(self, address: str, **kwargs: Any) -> None:
        super().__init__(address, **kwargs)
        parts = urlsplit(address)
        if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
            raise ValueError(f"expected tcp://host:port, got {address!r}")
        self._host = parts.hostname
        self._port = parts.port
        self._sock: socket.socket | None = None

    def _open(self) -> None:
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self.timeout_s)
        except OSError as exc:
            raise LinkDown(f"cannot connect: {exc}", address=self.address) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def _close(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()

    def _send(self, data: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.settimeout(self.timeout_s)
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise TransportTimeout("send timed out", address=self.address) from exc
        except OSError as exc:
            raise LinkDown(f"send failed: {exc}", address=self.address) from exc

    def _receive(self, timeout_s: float) -> bytes:
        assert self._sock is not None
        try:
            if timeout_s <= 0:
                self._sock.setblocking(False)
            else:
                self._sock.settimeout(timeout_s)
            data = self._sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return b""
        except OSError as exc:
            raise LinkDown(f"receive failed: {exc}", address=self.address) from exc
        if not data:
            raise LinkDown("peer closed the connection", address=self.address)
        return data


class SerialTransport(Transport):
    """pyserial ``serial_for_url``: device names, ``socket://``, ``loop://``, ``sim://``.

    The port's timeout is set once at open and never per read: pyserial applies a new timeout by
    reconfiguring the port (``tcsetattr`` on POSIX), which on a USB-serial adapter is a control
    transfer to the device and cost ~100 us per query even on a pty. Where the port has a file
    descriptor (POSIX serial ports, ``socket://``) reads wait in ``select`` instead; other URL
    handlers get the timeout set only when it changes. Writes are not followed by ``flush()``
    (``tcdrain``): the reply cannot come before the query has left, and on USB-serial adapters
    draining adds its own polling latency. On a plain POSIX port or ``socket://`` the wait and the
    read are the ``select`` + ``os.read`` that pyserial's own ``read`` makes, taken directly:
    pyserial's ``read(1)`` + ``in_waiting`` + ``read(n)`` per wake-up cost ~30 us per chunk,
    enough to hold a 115200 baud line below 90 % of its wire rate (issue 10).
    """

    def __init__(self, address: str, *, baud_rate: int | None = None, **kwargs: Any) -> None:
        super().__init__(address, **kwargs)
        self._baud_rate = baud_rate or 9600
        self._port: Any = None
        self._fileno: int | None = None
        self._port_timeout_s: float | None = None
        self._direct_fileno: int | None = None

    def _open(self) -> None:
        import serial

        try:
            self._port = serial.serial_for_url(
                self.address, baudrate=self._baud_rate, timeout=_POLL_SLICE_S
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkDown(f"cannot open: {exc}", address=self.address) from exc
        self._port_timeout_s = _POLL_SLICE_S
        self._fileno = _fileno_of(self._port)
        self._direct_fileno = plain_descriptor(self._port)

    def _close(self) -> None:
        if self._port is not None:
            port, self._port = self._port, None
            port.close()

    def _send(self, data: bytes) -> None:
        import serial

        try:
            self._port.write(data)
        except serial.SerialTimeoutException as exc:
            raise TransportTimeout("write timed out", address=self.address) from exc
        except (serial.SerialException, OSError) as exc:
            raise LinkDown(f"write failed: {exc}", address=self.address) from exc

    def _receive(self, timeout_s: float) -> bytes:
        import serial

        if self._direct_fileno is not None:
            return self._receive_direct(self._direct_fileno, timeout_s)
        port = self._port
        try:
            waiting = port.in_waiting
            if waiting:
                return bytes(port.read(waiting))
            if self._fileno is not None:
                ready, _, _ = select.select([self._fileno], [], [], timeout_s)
                if not ready:
                    return b""
            elif self._port_timeout_s != timeout_s:
                port.timeout = self._port_timeout_s = timeout_s
            # Ready (or waiting up to the timeout): read(1) returns at once with a byte, or
            # raises when the device reported readiness but vanished (unplugged adapter).
            data = bytes(port.read(1))
            waiting = port.in_waiting if data else 0
            return data + bytes(port.read(waiting)) if waiting else data
        except (serial.SerialException, OSError) as exc:
            raise LinkDown(f"read failed: {exc}", address=self.address) from exc

    def _receive_direct(self, fileno: int, timeout_s: float) -> bytes:
        try:
            if not select.select([fileno], [], [], timeout_s)[0]:
                return b""
            return read_ready(fileno)
        except OSError as exc:
            raise LinkDown(f"read failed: {exc}", address=self.address) from exc


def plain_descriptor(port: Any) -> int | None:
    """The descriptor of a pyserial port whose ``read`` is exactly ``select`` + ``os.read`` on
    it (a plain POSIX port or ``socket://``), so a caller may wait and read there itself; None
    for handlers that log, buffer or translate (``spy://``, ``rfc2217://``, ``loop://``) and on
    Windows."""
    fileno = _fileno_of(port)
    return fileno if fileno is not None and _reads_descriptor_directly(port) else None


def read_ready(fileno: int) -> bytes:
    """What a descriptor ``select`` reported readable holds (empty on a spurious wake-up).

    Raises ``serial.SerialException`` (an ``OSError``) when the read fails, or when the
    descriptor reads ready and empty, as a vanished USB-serial adapter or a closed socket does."""
    import serial

    try:
        data = os.read(fileno, 65536)
    except (BlockingIOError, InterruptedError):
        return b""
    except OSError as exc:
        raise serial.SerialException(f"read failed: {exc}") from exc
    if not data:
        raise serial.SerialException("device reports readiness to read but returned no data")
    return data


def _reads_descriptor_directly(port: Any) -> bool:
    """Whether ``port.read`` is exactly ``select`` + ``os.read`` on ``port.fileno()``: a plain
    POSIX port or ``socket://``, not a handler that logs, buffers or translates (``spy://``,
    ``rfc2217://``)."""
    import serial.urlhandler.protocol_socket as socket_handler

    plain: list[type] = [socket_handler.Serial]
    if sys.platform != "win32":
        import serial.serialposix as posix

        plain.append(posix.Serial)
    return type(port) in plain


def _fileno_of(port: Any) -> int | None:
    """The descriptor ``select`` can wait on, or None (Windows ports, ``loop://``, ``sim://``)."""
    if sys.platform == "win32":
        return None
    try:
        fileno = port.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fileno if isinstance(fileno, int) and fileno >= 0 else None


_resource_manager: Any = None
_resource_manager_lock = threading.Lock()


def visa_resource_manager() -> Any:
    """The process's single pyvisa ``ResourceManager`` on the pyvisa-py backend."""
    global _resource_manager
    with _resource_manager_lock:
        if _resource_manager is None:
            import pyvisa

            from drivers import visa_serial

            visa_serial.install()
            _resource_manager = pyvisa.ResourceManager("@py")
        return _resource_manager


class VisaTransport(Transport):
    """pyvisa + pyvisa-py: TCPIP SOCKET, ASRL (incl. ``ASRLsocket://...::INSTR``), USB, GPIB."""

    def __init__(self, address: str, *, baud_rate: int | None = None, **kwargs: Any) -> None:
        super().__init__(address, **kwargs)
        self._baud_rate = baud_rate
        self._resource: Any = None
        self._resource_timeout_ms: int | None = None

    def _open(self) -> None:
        import pyvisa

        try:
            resource = visa_resource_manager().open_resource(
                self.address, timeout=int(self.timeout_s * 1000)
            )
        except (pyvisa.errors.VisaIOError, OSError, ValueError) as exc:
            raise LinkDown(f"cannot open: {exc}", address=self.address) from exc
        # Framing is ours: VISA only stops a read at the terminator's last byte.
        resource.read_termination = self.read_termination[-1:].decode("ascii")
        resource.write_termination = ""
        if self._baud_rate is not None and hasattr(resource, "baud_rate"):
            resource.baud_rate = self._baud_rate
        self._resource = resource
        self._resource_timeout_ms = None

    def _close(self) -> None:
        if self._resource is not None:
            resource, self._resource = self._resource, None
            resource.close()

    def _send(self, data: bytes) -> None:
        import pyvisa

        try:
            self._resource.write_raw(data)
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise TransportTimeout("write timed out", address=self.address) from exc
            raise LinkDown(f"write failed: {exc}", address=self.address) from exc
        except OSError as exc:
            raise LinkDown(f"write failed: {exc}", address=self.address) from exc

    def _receive(self, timeout_s: float) -> bytes:
        import pyvisa

        try:
            # pyvisa-py treats 0 as "no wait"; keep at least 1 ms so a ready reply is taken.
            # Set only on change: on ASRL resources pyvisa-py reconfigures the serial port.
            timeout_ms = max(1, int(timeout_s * 1000))
            if timeout_ms != self._resource_timeout_ms:
                self._resource.timeout = self._resource_timeout_ms = timeout_ms
            resource = self._resource
            # The library call itself, not ``read_raw``: its chunk loop and warning filter
            # cost ~20 us per reply, and the framing above already handles partial chunks.
            # Asking for one byte more than the longest line means a full chunk is a reply
            # the framing refuses anyway (pyvisa warns on a full chunk).
            count = self.max_line_bytes + len(self.read_termination) + 1
            data, _status = resource.visalib.read(resource.session, count)
            return bytes(data)
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                return b""
            raise LinkDown(f"read failed: {exc}", address=self.address) from exc
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"reply is not ASCII: {exc}", address=self.address) from exc
        except OSError as exc:
            raise LinkDown(f"read failed: {exc}", address=self.address) from exc


_VISA_PREFIXES = ("TCPIP", "ASRL", "USB", "GPIB", "VXI", "PXI")


def is_visa_address(address: str) -> bool:
    return "::" in address and address.upper().startswith(_VISA_PREFIXES)


def open_transport(
    address: str,
    *,
    read_termination: bytes | str,
    write_termination: bytes | str,
    timeout_s: float,
    encoding: str = "ascii",
    baud_rate: int | None = None,
    max_consecutive_timeouts: int = 3,
    max_line_bytes: int = _DEFAULT_MAX_LINE_BYTES,
) -> Transport:
    """Open ``address`` with the implementation its form names (see the module docstring).

    ``timeout_s`` is the default per-call read timeout; ``baud_rate`` applies to serial lines
    (default 9600). Raises :class:`LinkDown` when the connection cannot be made.
    """
    common: dict[str, Any] = {
        "read_termination": read_termination,
        "write_termination": write_termination,
        "timeout_s": timeout_s,
        "encoding": encoding,
        "max_consecutive_timeouts": max_consecutive_timeouts,
        "max_line_bytes": max_line_bytes,
    }
    transport: Transport
    if address.startswith("tcp://"):
        transport = TcpTransport(address, **common)
    elif is_visa_address(address):
        transport = VisaTransport(address, baud_rate=baud_rate, **common)
    else:
        transport = SerialTransport(address, baud_rate=baud_rate, **common)
    transport.open()
    return transport


_Driver = TypeVar("_Driver")


def connect_over_transport(
    address: str,
    settings: Mapping[str, Any],
    build: Callable[[Transport, float, dict[str, Any]], _Driver],
    *,
    termination: str,
    default_timeout_s: float,
) -> _Driver:
    """Open ``address`` for a line-oriented driver and build the driver on it.

    ``settings`` may hold ``timeout_s`` (default per-call read timeout) and ``baud_rate``; the
    rest is passed to ``build(transport, timeout_s, options)``. The transport is closed when
    building fails (identification or set-up refused), so a failed connect leaks no port.
    """
    options = dict(settings)
    timeout_s = float(options.pop("timeout_s", default_timeout_s))
    baud_rate = options.pop("baud_rate", None)
    transport = open_transport(
        address,
        read_termination=termination,
        write_termination=termination,
        timeout_s=timeout_s,
        baud_rate=baud_rate,
    )
    try:
        return build(transport, timeout_s, options)
    except BaseException:
        transport.close()
        raise

"""pyvisa-py serial (``ASRL...::INSTR``) session that reads what the port holds, not byte by byte.

pyvisa-py's ``SerialSession.read`` calls ``serial.read(1)`` once per byte and re-checks the end
condition after each (pyvisa-py 0.8 ``serial.py``); every byte costs a ``select``, an ``os.read``
and a round of Python bookkeeping. With pyvisa's ``read_raw`` on top, a 32-byte reply over a
115200 baud pty took ~160 us longer than raw ``os.read``, and the station reached only 85-88 %
of the line's wire rate (issue 10 asks for 90 %; ADR 0012).

:class:`BulkSerialSession` keeps pyvisa-py's semantics and takes whole chunks instead: on a
plain POSIX port or ``socket://`` (``drivers.transport.plain_descriptor``, the same rule as
``SerialTransport``) it waits in ``select`` on the port's descriptor with the session's timeout
and takes everything readable with one ``os.read`` (what pyserial's ``read`` does underneath);
through other pyserial URL handlers it waits for one byte and takes the rest from
``in_waiting``. It stops at the termination character (VISA rule 6.1.1, the end character
included) or at ``count`` bytes (rule 6.1.3). Bytes that arrived after the end of the message
are kept for the next read, as the instrument's next message, and count in ``bytes_in_buffer``;
discarding the read buffer discards them too. End modes other than "none" and "termination
character", and ``suppress_end_en``, fall back to pyvisa-py's own byte-wise read. Writes without
an end mode go to the port after one attribute lookup instead of pyvisa-py's three and its
per-call log formatting.

:func:`install` registers the class for ``(ASRL, INSTR)`` in pyvisa-py's session registry (the
mechanism pyvisa-py itself uses to add interfaces); resources opened afterwards use it.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from typing import Any

from pyvisa import constants
from pyvisa.constants import BufferOperation, ResourceAttribute, SerialTermination, StatusCode
from pyvisa_py.serial import SerialSession
from pyvisa_py.sessions import Session

from drivers.transport import plain_descriptor, read_ready

_CHUNKED_END_MODES = (SerialTermination.none, SerialTermination.termination_char)
_installed = False
_install_lock = threading.Lock()


class BulkSerialSession(SerialSession):
    """pyvisa-py's serial session with chunked reads (see the module docstring)."""

    def after_parsing(self) -> None:
        super().after_parsing()
        self._pending = bytearray()
        self._fileno = plain_descriptor(self.interface)

    def read(self, count: int) -> tuple[bytes, StatusCode]:
        """Up to ``count`` bytes: through the termination character, ``count`` bytes, or what
        arrived before the session's timeout (with ``error_timeout``)."""
        end_in, _ = self.get_attribute(ResourceAttribute.asrl_end_in)
        suppress_end, _ = self.get_attribute(ResourceAttribute.suppress_end_enabled)
        if suppress_end or end_in not in _CHUNKED_END_MODES:
            return self._read_bytewise(count)
        end_char: bytes | None = None
        if end_in == SerialTermination.termination_char:
            termchar, _ = self.get_attribute(ResourceAttribute.termchar)
            end_char = bytes([termchar])
        port = self.interface
        pending = self._pending
        finish = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            if end_char is not None:
                index = pending.find(end_char, 0, count)
                if index >= 0:
                    return self._take(index + 1), StatusCode.success
            if len(pending) >= count:
                return self._take(count), StatusCode.success_max_count_read
            if self._fileno is not None:
                wait_s = None if finish is None else max(finish - time.monotonic(), 0.0)
                if not select.select([self._fileno], [], [], wait_s)[0]:
                    return self._take(len(pending)), StatusCode.error_timeout
                pending += read_ready(self._fileno)
                continue
            waiting = port.in_waiting
            if waiting:
                pending += port.read(waiting)
                continue
            if finish is not None and time.monotonic() >= finish:
                return self._take(len(pending)), StatusCode.error_timeout
            # Blocks up to the port's timeout (the session's, set by pyvisa-py) for one byte.
            pending += port.read(1)

    def _read_bytewise(self, count: int) -> tuple[bytes, StatusCode]:
        if self._pending:
            # Bytes already taken from the port belong before anything the port still holds.
            head = self._take(min(count, len(self._pending)))
            if len(head) == count:
                return head, StatusCode.success_max_count_read
            tail, status = super().read(count - len(head))
            return head + tail, status
        return super().read(count)

    def _take(self, size: int) -> bytes:
        data = bytes(self._pending[:size])
        del self._pending[:size]
        return data

    def write(self, data: bytes) -> tuple[int, StatusCode]:
        end_out, _ = self.get_attribute(ResourceAttribute.asrl_end_out)
        if end_out != SerialTermination.none:
            return super().write(data)
        import serial

        try:
            return self.interface.write(data), StatusCode.success
        except serial.SerialTimeoutException:
            return 0, StatusCode.error_timeout

    def flush(self, mask: BufferOperation) -> StatusCode:
        if mask & BufferOperation.discard_read_buffer:
            self._pending.clear()
        return super().flush(mask)

    def _get_attribute(self, attribute: ResourceAttribute) -> tuple[Any, StatusCode]:
        if attribute == constants.VI_ATTR_ASRL_AVAIL_NUM:
            return self.interface.in_waiting + len(self._pending), StatusCode.success
        return super()._get_attribute(attribute)


class _DropOverwriteNotice(logging.Filter):
    """pyvisa-py logs a warning when a session class replaces another; this one is intended."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "already registered" not in record.getMessage()


def install() -> None:
    """Use :class:`BulkSerialSession` for ``ASRL...::INSTR`` resources opened from now on."""
    global _installed
    with _install_lock:
        if _installed:
            return
        logger = logging.getLogger("pyvisa")
        notice = _DropOverwriteNotice()
        logger.addFilter(notice)
        try:
            Session.register(constants.InterfaceType.asrl, "INSTR")(BulkSerialSession)
        finally:
            logger.removeFilter(notice)
        _installed = True

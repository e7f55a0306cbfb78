"""The chunked pyvisa-py serial session keeps VISA's read rules on a real pty.

The test owns the pty's master end and writes the instrument's bytes itself, so every expected
value is the literal byte string written (the reference), split where VISA rules 6.1.1 (stop
after the termination character) and 6.1.3 (stop at the requested count) say.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
import tty
from collections.abc import Iterator
from typing import Any

import pytest
from pyvisa import constants
from pyvisa.constants import BufferOperation, SerialTermination, StatusCode
from pyvisa.errors import VisaIOError

from drivers.errors import LinkDown
from drivers.transport import SerialTransport, open_transport, visa_resource_manager
from drivers.visa_serial import BulkSerialSession

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pty needs POSIX")


class Pty:
    """A pty whose master end the test writes as the instrument."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty() -> Iterator[Pty]:
    line = Pty()
    yield line
    line.close()


@pytest.fixture
def resource(pty: Pty) -> Iterator[Any]:
    opened = visa_resource_manager().open_resource(f"ASRL{pty.path}::INSTR", timeout=1000)
    opened.read_termination = "\n"
    yield opened
    opened.close()


def _read(resource: Any, count: int = 100) -> tuple[bytes, StatusCode]:
    with resource.ignore_warning(StatusCode.success_max_count_read):
        data, status = resource.visalib.read(resource.session, count)
    return bytes(data), status


def _settle(resource: Any, size: int) -> None:
    """Wait until ``size`` bytes written on the master are readable on the slave."""
    deadline = time.monotonic() + 2.0
    while resource.bytes_in_buffer < size and time.monotonic() < deadline:
        time.sleep(0.001)


def test_pty_resources_use_the_chunked_session(resource: Any) -> None:
    assert isinstance(resource.visalib.sessions[resource.session], BulkSerialSession)


def test_messages_in_one_chunk_are_split_after_each_end_character(pty: Pty, resource: Any) -> None:
    pty.send(b"first\nsecond\n")
    _settle(resource, 13)
    assert _read(resource) == (b"first\n", StatusCode.success)
    # What followed the first message stays for the next read and counts as waiting.
    assert resource.bytes_in_buffer == 7
    assert _read(resource) == (b"second\n", StatusCode.success)
    assert resource.bytes_in_buffer == 0


def test_a_read_stops_at_the_requested_count(pty: Pty, resource: Any) -> None:
    pty.send(b"ABCDEFG\n")
    _settle(resource, 8)
    assert _read(resource, 3) == (b"ABC", StatusCode.success_max_count_read)
    assert _read(resource, 3) == (b"DEF", StatusCode.success_max_count_read)
    assert _read(resource, 3) == (b"G\n", StatusCode.success)


def test_a_message_arriving_in_pieces_is_read_whole(pty: Pty, resource: Any) -> None:
    def instrument() -> None:
        for piece in (b"12", b"3", b"4\r\n"):
            time.sleep(0.02)
            pty.send(piece)

    writer = threading.Thread(target=instrument)
    writer.start()
    try:
        assert _read(resource) == (b"1234\r\n", StatusCode.success)
    finally:
        writer.join()


def test_no_end_character_within_the_timeout_is_a_timeout(pty: Pty, resource: Any) -> None:
    resource.timeout = 100
    pty.send(b"par")
    start = time.monotonic()
    with pytest.raises(VisaIOError) as error:
        _read(resource)
    assert error.value.error_code == StatusCode.error_timeout
    # Reference: the session's 100 ms timeout (a lower bound; the upper bound is scheduling).
    assert time.monotonic() - start >= 0.095
    pty.send(b"next\n")
    assert _read(resource) == (b"next\n", StatusCode.success)


def test_discarding_the_read_buffer_drops_bytes_already_taken(pty: Pty, resource: Any) -> None:
    pty.send(b"a\nstale\n")
    _settle(resource, 8)
    assert _read(resource) == (b"a\n", StatusCode.success)
    resource.flush(BufferOperation.discard_read_buffer)
    assert resource.bytes_in_buffer == 0
    pty.send(b"fresh\n")
    assert _read(resource) == (b"fresh\n", StatusCode.success)


def test_without_an_end_mode_a_read_takes_count_bytes(pty: Pty, resource: Any) -> None:
    resource.end_input = SerialTermination.none
    pty.send(b"ab\ncdef")
    _settle(resource, 7)
    assert _read(resource, 5) == (b"ab\ncd", StatusCode.success_max_count_read)


def test_the_bytewise_fallback_reads_kept_bytes_first(pty: Pty, resource: Any) -> None:
    pty.send(b"x\nyz\n")
    _settle(resource, 5)
    assert _read(resource) == (b"x\n", StatusCode.success)
    # With the end character suppressed pyvisa-py's own byte-wise read takes over; the bytes
    # the chunked read already took from the port come first, in order.
    resource.set_visa_attribute(constants.ResourceAttribute.suppress_end_enabled, True)
    pty.send(b"w\n")
    _settle(resource, 5)
    assert _read(resource, 5) == (b"yz\nw\n", StatusCode.success_max_count_read)


def test_writes_reach_the_line_unchanged(pty: Pty, resource: Any) -> None:
    resource.write_raw(b"*IDN?\r\n")
    assert os.read(pty.master, 100) == b"*IDN?\r\n"


def test_an_unplugged_serial_line_is_link_down_through_visa(pty: Pty) -> None:
    transport = open_transport(
        f"ASRL{pty.path}::INSTR", read_termination="\n", write_termination="\n", timeout_s=0.5
    )
    try:
        pty.send(b"ready\n")
        assert transport.read() == "ready"
        pty.close()  # the master end goes away, as a USB-serial adapter pulled out
        with pytest.raises(LinkDown):
            transport.read()
    finally:
        transport.close()


def test_logging_url_handlers_are_read_through_pyserial(
    pty: Pty, capsys: pytest.CaptureFixture[str]
) -> None:
    """``spy://`` logs (to stderr) what pyserial's ``read`` returns, so the transport must not
    read the descriptor underneath it."""
    transport = open_transport(
        f"spy://{pty.path}", read_termination="\n", write_termination="\n", timeout_s=0.5
    )
    assert isinstance(transport, SerialTransport)
    try:
        pty.send(b"seen\n")
        assert transport.read() == "seen"
    finally:
        transport.close()
    # spy's hex dump: one "RX <offset> <hex bytes> <text>" line per read pyserial returned.
    logged = re.findall(r"RX\s+[0-9A-F]{4}\s+((?:[0-9A-F]{2} )+)", capsys.readouterr().err)
    assert bytes.fromhex("".join(logged)) == b"seen\n"

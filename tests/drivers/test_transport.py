"""The transport seam against a loopback line server and pyserial ``loop://``."""

from __future__ import annotations

import logging
import threading

import pytest

from drivers.errors import LinkDown, ProtocolError, TransportTimeout
from drivers.transport import Deadline, Transport, is_visa_address, open_transport
from tests.drivers.linesrv import CLOSE, line_server

ADDRESS_FORMS = [
    "tcp://127.0.0.1:{port}",
    "socket://127.0.0.1:{port}",
    "TCPIP::127.0.0.1::{port}::SOCKET",
]
ADDRESS_FORMS.append("ASRLsocket://127.0.0.1:{port}::INSTR")


def _echo_upper(line: bytes) -> bytes | object:
    if line == b"SILENT":
        return b""
    if line == b"BYE":
        return CLOSE
    if line == b"GARBAGE":
        return b"\xff\xfe\x80\r\n"
    if line == b"TWO":
        return b"first\r\nsecond\r\n"
    if line == b"BIG":
        return b"Y" * 100
    if line == b"SPLIT":
        return b"par"
    return line.upper() + b"\r\n"


def _open(form: str, port: int, **kwargs: object) -> Transport:
    options: dict[str, object] = {
        "read_termination": "\r\n",
        "write_termination": "\n",
        "timeout_s": 0.3,
    }
    options.update(kwargs)
    return open_transport(form.format(port=port), **options)  # type: ignore[arg-type]


@pytest.fixture
def server():
    with line_server(_echo_upper) as srv:
        yield srv


@pytest.mark.parametrize("form", ADDRESS_FORMS)
def test_query_round_trip_sends_exact_bytes(server, form: str) -> None:
    with _open(form, server.port) as transport:
        assert transport.query("*idn?") == "*IDN?"
        assert transport.query("meas") == "MEAS"
    assert server.received == [b"*idn?", b"meas"]


@pytest.mark.parametrize("form", ADDRESS_FORMS)
def test_merged_replies_are_split_and_kept(server, form: str) -> None:
    with _open(form, server.port) as transport:
        assert transport.query("TWO") == "first"
        assert transport.read() == "second"


@pytest.mark.parametrize("form", ADDRESS_FORMS)
def test_timeout_then_link_down_after_n_consecutive(server, form: str) -> None:
    with _open(form, server.port, max_consecutive_timeouts=2) as transport:
        with pytest.raises(TransportTimeout):
            transport.query("SILENT")
        with pytest.raises(LinkDown):
            transport.query("SILENT")


@pytest.mark.parametrize("form", ADDRESS_FORMS)
def test_success_resets_the_timeout_count(server, form: str) -> None:
    with _open(form, server.port, max_consecutive_timeouts=2) as transport:
        with pytest.raises(TransportTimeout):
            transport.query("SILENT")
        assert transport.query("ok") == "OK"
        with pytest.raises(TransportTimeout):
            transport.query("SILENT")


@pytest.mark.parametrize("form", ADDRESS_FORMS)
def test_non_ascii_reply_is_protocol_error_and_line_stays_usable(server, form: str) -> None:
    with _open(form, server.port) as transport:
        with pytest.raises(ProtocolError):
            transport.query("GARBAGE")
        assert transport.query("after") == "AFTER"


@pytest.mark.parametrize("form", ADDRESS_FORMS)
def test_truncated_reply_times_out_and_clear_discards_it(server, form: str) -> None:
    with _open(form, server.port) as transport:
        with pytest.raises(TransportTimeout):
            transport.query("SPLIT")
        transport.clear(settle_s=0.05)
        assert transport.query("next") == "NEXT"


@pytest.mark.parametrize("form", ["tcp://127.0.0.1:{port}", "socket://127.0.0.1:{port}"])
def test_peer_close_is_link_down_and_reopen_recovers(server, form: str) -> None:
    transport = _open(form, server.port)
    try:
        transport.write("BYE")
        with pytest.raises(LinkDown):
            transport.read()
        assert not transport.is_open
        with pytest.raises(LinkDown):
            transport.write("x")
        transport.reopen()
        assert transport.query("again") == "AGAIN"
    finally:
        transport.close()


def test_visa_peer_close_becomes_link_down_after_consecutive_timeouts(server) -> None:
    # pyvisa-py reports a closed TCP peer as a timeout; N in a row must read as LinkDown.
    transport = _open("TCPIP::127.0.0.1::{port}::SOCKET", server.port, max_consecutive_timeouts=2)
    try:
        transport.write("BYE")
        with pytest.raises((TransportTimeout, LinkDown)) as first:
            transport.read()
        if first.type is TransportTimeout:
            with pytest.raises(LinkDown):
                transport.read()
        transport.reopen()
        assert transport.query("again") == "AGAIN"
    finally:
        transport.close()


@pytest.mark.parametrize(
    "form",
    ["tcp://127.0.0.1:{port}", "socket://127.0.0.1:{port}", "TCPIP::127.0.0.1::{port}::SOCKET"],
)
def test_refused_connection_is_link_down(form: str) -> None:
    with line_server(_echo_upper) as srv:
        port = srv.port
    # pyvisa-py connects a TCPIP SOCKET lazily, so the refusal may surface at the first write.
    with pytest.raises(LinkDown):
        transport = _open(form, port)
        transport.query("x")


def test_deadline_caps_the_per_call_timeout(server) -> None:
    with _open("tcp://127.0.0.1:{port}", server.port) as transport:
        transport.write("SILENT")
        with pytest.raises(TransportTimeout, match="no reply within 0 s"):
            transport.read(timeout_s=10.0, deadline=Deadline(at_s=0.0))


def test_read_until_other_terminator_keeps_the_rest(server) -> None:
    with _open("tcp://127.0.0.1:{port}", server.port) as transport:
        transport.write("a#b")
        assert transport.read_until("#") == "A"
        assert transport.read() == "B"


def test_overlong_line_is_protocol_error(server) -> None:
    transport = _open("tcp://127.0.0.1:{port}", server.port, max_line_bytes=8)
    with transport, pytest.raises(ProtocolError, match="exceeds|no terminator"):
        transport.query("X" * 40)


def test_unterminated_flood_is_protocol_error(server) -> None:
    transport = _open("tcp://127.0.0.1:{port}", server.port, max_line_bytes=8)
    with transport, pytest.raises(ProtocolError, match="no terminator"):
        transport.query("BIG")


def test_loop_url_frames_what_was_written() -> None:
    transport = open_transport(
        "loop://", read_termination=b"\n", write_termination=b"\n", timeout_s=0.2
    )
    with transport:
        transport.write("one")
        transport.write("two")
        assert transport.read() == "one"
        assert transport.read() == "two"
        with pytest.raises(TransportTimeout):
            transport.read()


def test_traffic_is_logged_at_debug(server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="drivers.transport")
    with _open("tcp://127.0.0.1:{port}", server.port) as transport:
        transport.query("hello")
    sent = [r.getMessage() for r in caplog.records if "<<" in r.getMessage()]
    got = [r.getMessage() for r in caplog.records if ">>" in r.getMessage()]
    assert sent == [f"tcp://127.0.0.1:{server.port} << b'hello\\n'"]
    assert got == [f"tcp://127.0.0.1:{server.port} >> b'HELLO\\r\\n'"]


def test_query_holds_the_lock_across_write_and_read(server) -> None:
    with _open("tcp://127.0.0.1:{port}", server.port, timeout_s=2.0) as transport:
        results: dict[int, str] = {}

        def worker(n: int) -> None:
            for k in range(20):
                results[n * 100 + k] = transport.query(f"w{n}-{k}")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == {n * 100 + k: f"W{n}-{k}" for n in range(3) for k in range(20)}


def test_address_forms_are_classified() -> None:
    assert is_visa_address("TCPIP::10.0.0.2::5025::SOCKET")
    assert is_visa_address("ASRL/dev/ttyUSB0::INSTR")
    assert not is_visa_address("/dev/ttyUSB0")
    assert not is_visa_address("socket://127.0.0.1:23")


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        open_transport("loop://", read_termination="\n", write_termination="\n", timeout_s=0)
    with pytest.raises(ValueError, match="tcp://host:port"):
        open_transport("tcp://nohost", read_termination="\n", write_termination="\n", timeout_s=1)

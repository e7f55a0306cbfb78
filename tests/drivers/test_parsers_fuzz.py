"""Property test (reliability.md R1): random bytes, split and merged frames into every reply parser.

Whatever arrives, the transport either returns a decoded frame or raises ProtocolError /
TransportTimeout, and every parser either returns a value or raises ProtocolError; nothing else.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.errors import ProtocolError, TransportTimeout
from drivers.hioki_bt356x import parse_acir_reply, parse_esr
from drivers.hioki_bt4560 import parse_impedance_reply
from drivers.identity import InstrumentIdentity
from drivers.keithley_24xx import parse_error_reply, parse_trace_data
from drivers.readings import ReadingStatus
from drivers.scpi import parse_int, parse_number
from drivers.transport import Transport

PARSERS: dict[str, Callable[[str], object]] = {
    "acir": lambda s: parse_acir_reply(s, resistance_range_ohm=0.3, voltage_range_v=6.0),
    "eis": lambda s: parse_impedance_reply(s, frequency_hz=1000.0),
    "trace": lambda s: parse_trace_data(s, 2),
    "syst_err": parse_error_reply,
    "esr": parse_esr,
    "idn": InstrumentIdentity.from_idn,
    "number": parse_number,
    "int": parse_int,
}

GOOD_FRAMES = [
    b"  12.345E-3, 3.70123E+0",
    b" 1000.00E+6, 3.70123E+0",
    b"+1.2345E-02,-1.0000E-04,+3.7012E+00",
    b"3.6E+00,5E-01,0E+00,3.61E+00,5E-01,1E+00",
    b'-222,"Data out of range"',
    b"HIOKI,BT3562,0,V2.03",
    b"0",
]


class ChunkFeed(Transport):
    """A transport fed from a fixed list of chunks, with a clock that jumps on an empty read."""

    def __init__(self, chunks: list[bytes], terminator: bytes) -> None:
        self._now_s = 0.0
        super().__init__(
            "fuzz://",
            read_termination=terminator,
            write_termination=terminator,
            timeout_s=1.0,
            max_line_bytes=4096,
            max_consecutive_timeouts=1000,
            monotonic=lambda: self._now_s,
        )
        self._chunks = list(chunks)

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _send(self, data: bytes) -> None:
        pass

    def _receive(self, timeout_s: float) -> bytes:
        if self._chunks:
            return self._chunks.pop(0)
        self._now_s += max(timeout_s, 1e-3)
        return b""


def _frames(draw_bytes: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(draw_bytes) + 1) for c in cuts})
    pieces, start = [], 0
    for p in points:
        pieces.append(draw_bytes[start:p])
        start = p
    pieces.append(draw_bytes[start:])
    return [p for p in pieces if p]


payload = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(GOOD_FRAMES), max_size=4).map(b"\r\n".join),
    st.tuples(st.sampled_from(GOOD_FRAMES), st.binary(max_size=20), st.integers(0, 40)).map(
        lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :]
    ),
    st.text(max_size=80).map(lambda s: s.encode("utf-8")),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=payload, cuts=st.lists(st.integers(0, 400), max_size=6), crlf=st.booleans())
def test_framing_and_parsers_raise_only_protocol_errors(data, cuts, crlf) -> None:
    terminator = b"\r\n" if crlf else b"\n"
    feed = ChunkFeed(_frames(data + terminator, cuts), terminator)
    feed.open()
    for _ in range(8):
        try:
            frame = feed.read()
        except ProtocolError:
            continue
        except TransportTimeout:
            break
        for parse in PARSERS.values():
            with contextlib.suppress(ProtocolError):
                parse(frame)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=120))
def test_every_parser_on_arbitrary_text(text: str) -> None:
    for parse in PARSERS.values():
        with contextlib.suppress(ProtocolError):
            parse(text)


@settings(max_examples=100, deadline=None)
@given(r=st.floats(0, 0.31), v=st.floats(0, 6.5))
def test_acir_accepted_numbers_equal_what_was_written(r: float, v: float) -> None:
    reply = f"{r:10.3E}, {v:10.5E}"
    status, resistance, voltage = parse_acir_reply(
        reply, resistance_range_ohm=0.3, voltage_range_v=6.0
    )
    assert status is ReadingStatus.VALID
    # Independent reference: Python's float() of the same text.
    assert resistance == float(reply.split(",")[0])
    assert voltage == float(reply.split(",")[1])
    assert math.isfinite(resistance) and math.isfinite(voltage)

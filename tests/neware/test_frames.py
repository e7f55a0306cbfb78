# ruff: noqa: E501  (wire-format strings are kept whole)
"""The driver's frame reader: split or merged frames parse; garbage raises only ProtocolError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import ProtocolError
from drivers.neware_bts import TERMINATOR, NewareFrameReader, parse_reply
from tests.neware.scripted import reply

TERM = TERMINATOR.encode()
FRAMES = [
    reply("<cmd>connect_resp</cmd>", "<result>ok</result>").encode() + TERM,
    reply(
        "<cmd>inquire_resp</cmd>",
        '<list count="1">',
        '  <inquire dev="27-21-1-1-0" workstatus="finish" barcode="é/0" />',
        "</list>",
    ).encode()
    + TERM,
    reply("<cmd>donwload_resp</cmd>", '<list count="0" />').encode() + TERM,
]


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


@settings(max_examples=60, deadline=None)
@given(
    order=st.lists(st.sampled_from(range(len(FRAMES))), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_split_and_merged_frames_come_out_whole_and_in_order(
    order: list[int], cuts: list[int]
) -> None:
    stream = b"".join(FRAMES[i] for i in order)
    reader = NewareFrameReader()
    got = []
    for piece in _split(stream, cuts):
        got += [r.cmd for r in reader.feed(piece)]
    expected = [["connect_resp", "inquire_resp", "donwload_resp"][i] for i in order]
    assert got == expected


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.sampled_from(
                [TERM, b"<bts>", b"</bts>", b"<cmd>", b"\xff", b"<!DOCTYPE x>", *FRAMES]
            ),
        ),
        max_size=12,
    )
)
def test_random_bytes_raise_only_protocol_error(chunks: list[bytes]) -> None:
    reader = NewareFrameReader()
    for chunk in chunks:
        with contextlib.suppress(ProtocolError):
            reader.feed(chunk)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_parse_reply_on_random_text_raises_only_protocol_error(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse_reply(text)


def test_garbage_between_frames_loses_neither_neighbour() -> None:
    reader = NewareFrameReader()
    stream = FRAMES[0] + b"\xff\xfe garbage" + TERM + FRAMES[2]
    with pytest.raises(ProtocolError, match="UTF-8"):
        reader.feed(stream)
    assert [r.cmd for r in reader.feed(b"")] == ["connect_resp", "donwload_resp"]

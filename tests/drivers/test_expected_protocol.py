"""The expected-protocol double itself fails on wrong bytes, extra writes and unread replies."""

from __future__ import annotations

import pytest

from tests.drivers.test_hioki_bt356x_protocol import CONNECT, GOOD, meter


def test_wrong_bytes_fail() -> None:
    with pytest.raises(AssertionError, match="expected"), meter([*CONNECT, (":READ? ", GOOD)]) as m:
        m.measure()


def test_exchange_left_over_fails() -> None:
    with pytest.raises(AssertionError, match="never happened"), meter([*CONNECT, (":READ?", GOOD)]):
        pass


def test_extra_write_fails() -> None:
    with pytest.raises(AssertionError, match="no exchange left"), meter(CONNECT) as m:
        m.measure()

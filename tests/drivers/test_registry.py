"""The registry maps config names to factories and names bad keys."""

from __future__ import annotations

import pytest

from drivers import registry
from drivers.errors import SettingError


def test_known_names() -> None:
    assert {"hioki-bt3562", "hioki-bt3563"} <= set(registry.names())


def test_unknown_driver_is_named() -> None:
    with pytest.raises(SettingError, match="'fluke-9000'"):
        registry.open_instrument("fluke-9000", "loop://")


def test_unknown_setting_is_named_before_anything_opens() -> None:
    with pytest.raises(SettingError, match="unknown setting 'range'"):
        registry.open_instrument("hioki-bt3562", "tcp://127.0.0.1:9", {"range": 3})


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register("hioki-bt3562", lambda address, settings: None)

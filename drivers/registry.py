"""Bench-config names -> driver factories; the engine opens instruments only through here.

A factory takes the instrument's address and its settings mapping (from the bench config) plus
optional keyword objects the station supplies (``clock``), opens the transport, connects and
returns an object satisfying the matching ``station.instruments`` Protocol. Unknown names and
unknown setting keys are refused with an error naming them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from drivers.errors import SettingError

Factory = Callable[..., Any]

_FACTORIES: dict[str, Factory] = {}
# Keys every transport-backed factory accepts on top of the driver's own keyword arguments.
TRANSPORT_KEYS = frozenset({"timeout_s", "baud_rate"})


def register(name: str, factory: Factory, *, replace: bool = False) -> None:
    """Add a driver under a config name (``neware-bts`` is registered by its own module)."""
    if name in _FACTORIES and not replace:
        raise ValueError(f"driver name {name!r} is already registered")
    _FACTORIES[name] = factory


def names() -> list[str]:
    return sorted(_FACTORIES)


def open_instrument(
    name: str, address: str, settings: Mapping[str, Any] | None = None, **objects: Any
) -> Any:
    """Open the instrument called ``name`` in the bench config at ``address``."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise SettingError(
            f"unknown instrument driver {name!r}; known: {', '.join(names())}"
        ) from None
    return factory(address, dict(settings or {}), **objects)


def check_setting_keys(name: str, settings: Mapping[str, Any], driver: Callable[..., Any]) -> None:
    """Refuse settings the driver does not take, naming the key and the accepted ones."""
    parameters = inspect.signature(driver).parameters
    accepted = {
        key
        for key, p in parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        and key not in {"clock", "sleep", "backoff", "monotonic"}
    } | TRANSPORT_KEYS
    for key in settings:
        if key not in accepted:
            raise SettingError(
                f"{name}: unknown setting {key!r}; accepted: {', '.join(sorted(accepted))}"
            )


def _hioki(cls_name: str, name: str) -> Factory:
    def factory(address: str, settings: Mapping[str, Any], **objects: Any) -> Any:
        from drivers import hioki_bt356x

        cls = getattr(hioki_bt356x, cls_name)
        check_setting_keys(name, settings, cls)
        return hioki_bt356x.open_bt356x(cls, address, settings, **objects)

    return factory


register("hioki-bt3562", _hioki("HiokiBT3562", "hioki-bt3562"))
register("hioki-bt3563", _hioki("HiokiBT3563", "hioki-bt3563"))


def _bt4560(address: str, settings: Mapping[str, Any], **objects: Any) -> Any:
    from drivers import hioki_bt4560

    check_setting_keys("hioki-bt4560", settings, hioki_bt4560.HiokiBT4560)
    return hioki_bt4560.open_bt4560(address, settings, **objects)


register("hioki-bt4560", _bt4560)


def _keithley(name: str) -> Factory:
    model = name.rsplit("-", 1)[-1]

    def factory(address: str, settings: Mapping[str, Any], **objects: Any) -> Any:
        from drivers import keithley_24xx

        check_setting_keys(name, settings, keithley_24xx.Keithley24xx)
        channel = keithley_24xx.open_keithley(address, settings, **objects)
        if not channel.identity.model.endswith(model):
            found = channel.identity.describe()
            channel.close()
            raise SettingError(f"{name}: the instrument at {address} is {found}")
        return channel

    return factory


for _model in ("2450", "2460", "2461"):
    register(f"keithley-{_model}", _keithley(f"keithley-{_model}"))


def _neware_bts(address: str, settings: Mapping[str, Any], **objects: Any) -> Any:
    from drivers import neware_bts

    return neware_bts.open_from_settings(address, settings)


register("neware-bts", _neware_bts)


def _scpi_switch(address: str, settings: Mapping[str, Any], **objects: Any) -> Any:
    from drivers import scpi_switch

    check_setting_keys("scpi-switch", settings, scpi_switch.ScpiSwitch)
    return scpi_switch.open_switch(address, settings, **objects)


register("scpi-switch", _scpi_switch)

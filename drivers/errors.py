"""Error classes the station can act on.

Every failure that crosses the driver boundary is one of these, so the engine can decide between
"retry", "recover the reading", "reconnect" and "stop the channel" without parsing messages.
"""

from __future__ import annotations


class InstrumentError(Exception):
    """Base class of every driver error; ``address`` names the instrument it came from."""

    def __init__(self, message: str, *, address: str = "") -> None:
        super().__init__(f"{address}: {message}" if address else message)
        self.address = address


class TransportTimeout(InstrumentError):
    """No complete reply within the per-call timeout or the overall deadline."""


class ProtocolError(InstrumentError):
    """The reply was garbage, not ASCII, truncated, or not in the documented format."""


class InstrumentReportedError(InstrumentError):
    """The instrument itself reported an error (``*ESR?`` bits, SCPI error queue, Neware result)."""

    def __init__(self, message: str, *, address: str = "", code: int | str | None = None) -> None:
        super().__init__(message, address=address)
        self.code = code


class LinkDown(InstrumentError):
    """The connection is gone (closed socket, unplugged adapter, repeated timeouts)."""


class InterlockOpen(InstrumentReportedError):
    """A source refused to turn its output on because its safety interlock is open."""


class SettingError(ValueError):
    """A setting value outside what the instrument accepts (checked before anything is sent)."""

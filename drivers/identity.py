"""Instrument identity, read at connect and kept with every reading."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import ProtocolError

SIMULATED_MARKER = "SIMULATED"


@dataclass(frozen=True)
class InstrumentIdentity:
    """Who answered: make, model, serial number and firmware, plus the address it answered on.

    ``simulated`` is true when any identity field carries the ``SIMULATED`` marker that every
    ``hardware_sim`` personality puts in its identity; the station refuses production grades then.
    """

    make: str
    model: str
    serial: str
    firmware: str
    address: str = ""

    @property
    def simulated(self) -> bool:
        fields = (self.make, self.model, self.serial, self.firmware)
        return any(SIMULATED_MARKER in field.upper() for field in fields)

    @classmethod
    def from_idn(cls, reply: str, *, address: str = "") -> InstrumentIdentity:
        """Parse an IEEE 488.2 ``*IDN?`` reply: ``make,model,serial,firmware``."""
        parts = [part.strip() for part in reply.strip().split(",")]
        if len(parts) != 4 or not parts[0] or not parts[1]:
            raise ProtocolError(
                f"*IDN? reply is not 'make,model,serial,firmware': {reply!r}", address=address
            )
        return cls(
            make=parts[0], model=parts[1], serial=parts[2], firmware=parts[3], address=address
        )

    def describe(self) -> str:
        tag = " [SIMULATED]" if self.simulated else ""
        return f"{self.make} {self.model} s/n {self.serial} fw {self.firmware}{tag}"

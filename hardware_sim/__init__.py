"""A simulated bench: cells, instruments that speak the real wire protocols, faults, fast time.

The station never imports this package: it reaches a simulated instrument through a transport
address (TCP loopback, a pty, or the pyserial ``sim://`` handler), exactly as it reaches hardware.
"""

from __future__ import annotations

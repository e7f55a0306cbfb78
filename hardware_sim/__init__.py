"""A simulated bench: cells, instruments that speak the real wire protocols, faults, fast time.

The station never imports this package: it reaches a simulated instrument through a transport
address (TCP loopback, a pty, or the pyserial ``sim://`` handler), exactly as it reaches hardware.

Map:
- ``clock.SimClock``: the bench clock (``t0 + speed * (wall - w0)``, or manual).
- ``cell.Cell`` / ``cell.CellParams``: equivalent-circuit cell with a consistent ``impedance(f)``.
- ``chemistry``: NMC, LFP, Na-ion, LTO presets; ``population.generate_lot``: seeded lots.
- ``devices``: personalities (``base.Personality`` interface; ``bt356x``, ``bt4560``,
  ``keithley24xx``; more kinds register themselves through ``registry``).
- ``transports``: ``tcp.TcpServer``, ``pty.PtyServer``; ``serial_handlers``: ``sim://``.
- ``faults``: per-device fault injection; ``bench`` / ``launcher`` / ``__main__``: whole benches.
"""

from __future__ import annotations

"""Instrument drivers: bytes and commands of real instruments, nothing about grading.

Every driver takes a resource address string (``COM3``, ``/dev/ttyUSB0``,
``TCPIP::10.0.0.5::5025::SOCKET``, ``socket://127.0.0.1:5025``, ``sim://bt3562``) and talks to it
through :mod:`drivers.transport`, so a real instrument and the simulator differ only in that string.
"""

from __future__ import annotations

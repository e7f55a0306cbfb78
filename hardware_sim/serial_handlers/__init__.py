"""The in-process pyserial URL handler ``sim://`` (module ``protocol_sim``).

Call :func:`register` once (tests and entry points do; the station never imports hardware_sim)::

    from hardware_sim.serial_handlers import register
    register()
    port = serial.serial_for_url("sim://bt3562?seed=7&speed=100", timeout=1.0)
    # through pyvisa-py: rm.open_resource("ASRLsim://bt3562?seed=7::INSTR")

``sim://<device>`` builds a fresh one-device bench of that kind (query options ``seed``,
``speed``, ``manual=1``). ``sim://<name>`` reaches a personality attached in-process with
:func:`attach` first (so a test can hold the bench, its clock and its fault injector).
"""

from __future__ import annotations

import threading

import serial

from hardware_sim.devices.base import Personality

PACKAGE = "hardware_sim.serial_handlers"

_attached: dict[str, Personality] = {}
_lock = threading.Lock()


def register() -> None:
    """Make ``sim://`` known to pyserial (idempotent)."""
    if PACKAGE not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(PACKAGE)


def attach(name: str, personality: Personality) -> str:
    """Serve ``personality`` as ``sim://<name>``; returns that URL."""
    register()
    with _lock:
        _attached[name.lower()] = personality
    return f"sim://{name}"


def detach(name: str) -> None:
    with _lock:
        _attached.pop(name.lower(), None)


def attached(name: str) -> Personality | None:
    with _lock:
        return _attached.get(name.lower())

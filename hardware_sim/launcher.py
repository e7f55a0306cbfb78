"""Serve a whole bench: every device on TCP (and a pty on request), plus a control endpoint.

The control endpoint is JSON lines over TCP on 127.0.0.1: one request object per line, one reply
object per line (``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``). Requests:

- ``{"cmd": "state"}``: simulated time and each device's fault state;
- ``{"cmd": "fault", "device": NAME, "fault": KIND, ...}``: inject (fields of
  :class:`hardware_sim.faults.Fault`; ``at_s`` schedules it in simulated time);
- ``{"cmd": "clear", "device": NAME}``: drop that device's faults;
- ``{"cmd": "disconnect", "device": NAME, "offline_s": S}``: close its TCP client now and stay
  offline S wall seconds;
- ``{"cmd": "place", "device": NAME, "cell": ID | null}``: put a lot cell in a meter's fixture;
- ``{"cmd": "skip", "s": S}``: jump simulated time S seconds ahead (a long open-circuit hold);
  the reply carries the new ``t_s``. A station on the same clock must skip its own clock too.
"""

from __future__ import annotations

import json
import socketserver
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hardware_sim.bench import Bench
from hardware_sim.faults import Fault, FaultInjector
from hardware_sim.transports.tcp import TcpServer

if TYPE_CHECKING:
    from hardware_sim.transports.pty import PtyServer

MAX_SKIP_S = 366 * 86400.0  # a year: longer holds are not a bench's business


@dataclass
class RunningBench:
    """A started bench. ``describe()`` is the launcher's JSON document."""

    bench: Bench
    tcp: dict[str, TcpServer] = field(default_factory=dict)
    pty: dict[str, PtyServer] = field(default_factory=dict)
    injectors: dict[str, FaultInjector] = field(default_factory=dict)
    control: _ControlServer | None = None
    _control_thread: threading.Thread | None = None

    @classmethod
    def start(cls, bench: Bench, *, with_pty: bool = False, control_port: int = 0) -> RunningBench:
        running = cls(bench)
        try:
            for index, device in enumerate(bench.devices):
                injector = FaultInjector(seed=bench.seed * 1000 + index)
                running.injectors[device.name] = injector.attach(device.personality)
                running.tcp[device.name] = TcpServer(device.personality).start()
                if with_pty:
                    # imported here: termios/tty do not exist on Windows lab PCs
                    from hardware_sim.transports.pty import PtyServer

                    running.pty[device.name] = PtyServer(device.personality).start()
            running.control = _ControlServer(("127.0.0.1", control_port), running)
            running._control_thread = threading.Thread(
                target=running.control.serve_forever, name="sim-control", daemon=True
            )
            running._control_thread.start()
        except BaseException:
            running.stop()
            raise
        return running

    def stop(self) -> None:
        if self.control is not None:
            self.control.shutdown()
            self.control.server_close()
            self.control = None
        for server in self.tcp.values():
            server.stop()
        for pty in self.pty.values():
            pty.stop()

    def describe(self) -> dict[str, Any]:
        devices = []
        for d in self.bench.devices:
            entry: dict[str, Any] = {"name": d.name, "kind": d.kind}
            entry.update(self.tcp[d.name].addresses())
            if d.name in self.pty:
                entry.update(self.pty[d.name].addresses())
            entry.update(d.personality.describe())
            entry["cells"] = [c.cell_id for c in d.cells]
            devices.append(entry)
        return {
            "simulated": True,
            "seed": self.bench.seed,
            "clock": {
                key: value
                for key, value in self.bench.clock.describe().items()
                if key in ("t0_s", "w0_s", "speed")
            },
            "control": {"tcp_port": self.control.server_address[1] if self.control else None},
            "devices": devices,
            "cells": self.bench.describe_lot(),
            "skipped_devices": list(self.bench.skipped),
        }

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd", "fault" if "fault" in request else None)
        if cmd == "state":
            return {
                "ok": True,
                "t_s": self.bench.clock.now(),
                "devices": {name: inj.state() for name, inj in self.injectors.items()},
            }
        if cmd == "skip":
            seconds = request.get("s")
            if not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_SKIP_S:
                raise ValueError(f"skip needs 's': simulated seconds, 0 to {MAX_SKIP_S:g}")
            self.bench.clock.skip(float(seconds))
            return {"ok": True, "t_s": self.bench.clock.now()}
        name = request.get("device")
        if name not in self.injectors:
            known = ", ".join(sorted(self.injectors))
            raise ValueError(f"unknown device {name!r} (known: {known})")
        if cmd == "fault":
            self.injectors[name].inject(Fault.from_dict(request))
            return {"ok": True}
        if cmd == "clear":
            self.injectors[name].clear()
            return {"ok": True}
        if cmd == "disconnect":
            self.tcp[name].drop_client(offline_s=float(request.get("offline_s", 0.0)))
            return {"ok": True}
        if cmd == "place":
            return self._place(name, request.get("cell"))
        raise ValueError(f"unknown cmd {cmd!r} (state, skip, fault, clear, disconnect, place)")

    def _place(self, name: str, cell_id: Any) -> dict[str, Any]:
        personality = self.bench.device(name).personality
        place = getattr(personality, "place_cell", None)
        if not callable(place):
            raise ValueError(f"device {name!r} has no fixture")
        if cell_id is None:
            place(None)
            return {"ok": True}
        for lot_cell in self.bench.lot:
            if lot_cell.cell_id == cell_id:
                place(lot_cell.cell)
                return {"ok": True}
        raise ValueError(f"no cell {cell_id!r} in the lot")


class _Handler(socketserver.StreamRequestHandler):
    server: _ControlServer

    def handle(self) -> None:
        for raw in self.rfile:
            line = raw.strip()
            if not line:
                continue
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("a request must be a JSON object")
                reply = self.server.running.handle(request)
            except (ValueError, KeyError, TypeError, RuntimeError) as err:
                reply = {"ok": False, "error": str(err)}
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class _ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], running: RunningBench) -> None:
        super().__init__(address, _Handler)
        self.running = running

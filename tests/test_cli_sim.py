"""``station sim`` starts the simulator in its own process and prints its endpoints."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import pytest


def test_station_sim_serves_a_bench_and_stops_on_sigint() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "station", "sim", "--bench", "demo", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        document = json.loads(proc.stdout.readline())
        assert document["simulated"] is True
        meter = next(d for d in document["devices"] if d["kind"] == "bt3562")
        with socket.create_connection(("127.0.0.1", meter["tcp_port"]), timeout=30) as link:
            link.sendall(b"*IDN?\r\n")
            reply = link.recv(256)
        assert reply.startswith(b"HIOKI,BT3562,SIMULATED-")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    # The simulator child was stopped by the SIGINT passed on to it and exited cleanly.
    assert proc.returncode == 0
    with pytest.raises(OSError):  # nothing serves the instrument's port any more
        socket.create_connection(("127.0.0.1", meter["tcp_port"]), timeout=5).close()

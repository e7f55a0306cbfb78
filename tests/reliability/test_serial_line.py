"""The emulated serial line: a paced pty is never faster than its baud rate, and the serial
transport (which waits in ``select`` rather than re-setting pyserial timeouts) still turns a
vanished port into ``LinkDown``."""

from __future__ import annotations

import sys
import time

import pytest

from drivers.errors import LinkDown, TransportTimeout
from drivers.transport import SerialTransport, open_transport
from hardware_sim.clock import SimClock
from hardware_sim.devices.bt356x import Bt356x
from hardware_sim.population import generate_lot
from hardware_sim.transports.pty import PtyServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pty needs POSIX")

BAUD = 9600  # slow enough that one exchange (~40 ms) dwarfs scheduling noise


def meter() -> Bt356x:
    cell = generate_lot("new-cells", 1, seed=5, defect_share=0.0)[0].cell
    return Bt356x(SimClock(speed=1.0), seed=5, cell=cell)


def test_paced_pty_is_never_faster_than_the_wire() -> None:
    with PtyServer(meter(), baud_rate=BAUD) as pty:
        transport = open_transport(
            pty.path, read_termination="\r\n", write_termination="\r\n", timeout_s=2.0
        )
        try:
            reference = transport.query("*IDN?")
            durations = []
            for _ in range(5):
                start = time.perf_counter()
                assert transport.query("*IDN?") == reference
                durations.append(time.perf_counter() - start)
        finally:
            transport.close()
    # Reference: 8N1 is 10 bits per byte; query "*IDN?\r\n" plus the reply and its CR LF.
    wire_s = (len("*IDN?\r\n") + len(reference) + 2) * 10 / BAUD
    print(
        f"paced pty: wire limit {wire_s * 1e3:.2f} ms, fastest exchange "
        f"{min(durations) * 1e3:.2f} ms over {len(durations)} queries"
    )
    assert min(durations) >= wire_s * 0.999


def test_serial_transport_on_a_vanished_pty_is_link_down() -> None:
    server = PtyServer(meter()).start()
    transport = open_transport(
        server.path, read_termination="\r\n", write_termination="\r\n", timeout_s=0.5
    )
    assert isinstance(transport, SerialTransport)
    assert transport.query("*IDN?").startswith("HIOKI")
    server.stop()
    with pytest.raises((LinkDown, TransportTimeout)):
        for _ in range(3):  # a pty whose master closed reports EOF/EIO; at worst it times out
            transport.query("*IDN?")
    transport.close()

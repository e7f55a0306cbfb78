"""Query/response through the station's transports against the simulator (issue 10).

Run: ``.venv/bin/python -m benchmarks.bench_transport [--queries N] [--rounds R]``.

Two measurements, each against a raw peer on the same simulated instrument in the same run:

- per-query time over a pty (pyserial), TCP loopback and VISA ``TCPIP::...::SOCKET`` (pyvisa-py)
  with an unpaced simulator; the station's overhead is its time minus the raw peer's (plain
  ``os.read``/``os.write`` on the pty, a plain socket on TCP, pyvisa's own ``query`` for VISA).
  Target: at most 150 us of overhead per query;
- throughput with the simulator emulating a 115200 baud line (:class:`PtyServer` pacing bytes),
  as a fraction of the wire limit ``(query bytes + reply bytes) * 10 bits / 115200``. Target: at
  least 90 %. The raw peer reads the same paced simulator, so the share it reaches is the
  ceiling the simulator itself allows. The simulator wakes with 1 us timer slack (ADR 0012).

The instrument is a simulated Hioki BT3562 answering ``*IDN?`` at once, so the figures are the
cost of the transports and the line, not of a measurement. Each simulator runs in its own process,
as a real instrument is its own machine: in this process its pump thread would compete with the
client for the interpreter lock and inflate both sides' figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import select
import socket
import statistics
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import pyvisa

from benchmarks.common import Case, write_result
from drivers.transport import Transport, open_transport, visa_resource_manager
from hardware_sim.clock import SimClock
from hardware_sim.devices.bt356x import Bt356x
from hardware_sim.population import generate_lot
from hardware_sim.transports.pty import PtyServer
from hardware_sim.transports.tcp import TcpServer

QUERY = "*IDN?"
TERM = b"\r\n"
BAUD = 115200
OVERHEAD_GOAL_US = 150.0
WIRE_GOAL = 0.90


def make_meter() -> Bt356x:
    cell = generate_lot("new-cells", 1, seed=5, defect_share=0.0)[0].cell
    return Bt356x(SimClock(speed=1.0), seed=5, cell=cell)


def _serve(conn: Connection, kind: str, baud: int | None) -> None:
    """Child process: serve one meter on a pty or TCP, report where, stop when told."""
    server: PtyServer | TcpServer
    server = PtyServer(make_meter(), baud_rate=baud) if kind == "pty" else TcpServer(make_meter())
    with server:
        conn.send(server.path if isinstance(server, PtyServer) else str(server.port))
        conn.recv()


@contextmanager
def simulator(kind: str, baud: int | None = None) -> Iterator[str]:
    """A meter served from its own process; yields the pty path or the TCP port."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, kind, baud), daemon=True)
    process.start()
    try:
        yield str(parent.recv())
    finally:
        parent.send("stop")
        process.join(10.0)


def station_query(address: str, baud: int | None = None) -> tuple[Callable[[], str], Transport]:
    transport = open_transport(
        address, read_termination=TERM, write_termination=TERM, timeout_s=2.0, baud_rate=baud
    )
    return (lambda: transport.query(QUERY)), transport


def raw_pty_query(path: str) -> tuple[Callable[[], str], Callable[[], None]]:
    """The floor on a pty: one write, then select + read until the terminator."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    message = QUERY.encode() + TERM

    def query() -> str:
        os.write(fd, message)
        data = b""
        while not data.endswith(TERM):
            select.select([fd], [], [], 2.0)
            data += os.read(fd, 4096)
        return data[: -len(TERM)].decode()

    return query, lambda: os.close(fd)


def raw_socket_query(port: int) -> tuple[Callable[[], str], Callable[[], None]]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = QUERY.encode() + TERM

    def query() -> str:
        sock.sendall(message)
        data = b""
        while not data.endswith(TERM):
            data += sock.recv(4096)
        return data[: -len(TERM)].decode()

    return query, sock.close


def pyvisa_query(address: str) -> tuple[Callable[[], str], Callable[[], None]]:
    resource = visa_resource_manager().open_resource(address, timeout=2000)
    resource.read_termination = "\r\n"
    resource.write_termination = "\r\n"
    return (lambda: str(resource.query(QUERY))), resource.close


def compare(
    station: Callable[[], str], peer: Callable[[], str], count: int, rounds: int
) -> tuple[float, float, bool]:
    """Median seconds per query of station and peer, and whether their replies agree.

    The two alternate query by query, so a burst of load from other processes on the machine
    hits both alike; the median of ``count * rounds`` single queries each is robust to the rest.
    """
    equal = station() == peer()
    for _ in range(20):  # warm both paths
        station()
        peer()
    s_times, p_times = [], []
    clock = time.perf_counter
    for _ in range(count * rounds):
        start = clock()
        station()
        middle = clock()
        peer()
        p_times.append(clock() - middle)
        s_times.append(middle - start)
    return statistics.median(s_times), statistics.median(p_times), equal


def overhead_case(
    name: str,
    station_s: float,
    peer_s: float,
    equal: bool,
    peer_name: str,
    count: int,
    rounds: int,
) -> Case:
    station_us, peer_us = station_s * 1e6, peer_s * 1e6
    return Case(
        case=f"{name}: {QUERY} round trip, unpaced simulator",
        metric="us/query",
        station=round(station_us, 1),
        peer=round(peer_us, 1),
        peer_name=peer_name,
        higher_is_better=False,
        goal=round(peer_us + OVERHEAD_GOAL_US, 1),
        equal_results=equal,
        repeats=rounds,
        notes=(
            f"median of {count * rounds} queries each, alternating; station overhead "
            f"{station_us - peer_us:.1f} us/query over the peer; goal: overhead <= "
            f"{OVERHEAD_GOAL_US:g} us, i.e. station <= peer + {OVERHEAD_GOAL_US:g} us"
        ),
    )


def overheads(count: int, rounds: int) -> list[Case]:
    # Each side gets its own simulator: a TCP server serves one client at a time, and two
    # readers on one pty would take each other's replies.
    cases = []
    with simulator("pty") as mine, simulator("pty") as theirs:
        station, transport = station_query(mine)
        peer, close = raw_pty_query(theirs)
        try:
            result = compare(station, peer, count, rounds)
        finally:
            transport.close()
            close()
        cases.append(overhead_case("pty, pyserial", *result, "os.write + os.read", count, rounds))
    with simulator("tcp") as mine, simulator("tcp") as theirs:
        station, transport = station_query(f"tcp://127.0.0.1:{mine}")
        peer, close = raw_socket_query(int(theirs))
        try:
            result = compare(station, peer, count, rounds)
        finally:
            transport.close()
            close()
        cases.append(overhead_case("TCP loopback", *result, "plain socket", count, rounds))
    with simulator("tcp") as mine, simulator("tcp") as theirs:
        station, transport = station_query(f"TCPIP::127.0.0.1::{mine}::SOCKET")
        peer, close = pyvisa_query(f"TCPIP::127.0.0.1::{theirs}::SOCKET")
        try:
            result = compare(station, peer, count, rounds)
        finally:
            transport.close()
            close()
        cases.append(
            overhead_case("VISA TCPIP SOCKET, pyvisa-py", *result, "pyvisa query()", count, rounds)
        )
    return cases


def wire_rate(count: int, rounds: int) -> list[Case]:
    cases = []
    reply_bytes = 0
    for name, visa in (("pty at 115200 baud, pyserial", False), ("ASRL VISA at 115200", True)):
        with simulator("pty", BAUD) as mine, simulator("pty", BAUD) as theirs:
            address = f"ASRL{mine}::INSTR" if visa else mine
            station, transport = station_query(address, BAUD)
            peer, close = raw_pty_query(theirs)
            try:
                reply_bytes = len(peer().encode()) + len(TERM)
                station_s, peer_s, equal = compare(station, peer, count, rounds)
            finally:
                transport.close()
                close()
        wire_s = (len(QUERY) + len(TERM) + reply_bytes) * 10 / BAUD
        cases.append(
            Case(
                case=f"{name}: {QUERY} ({reply_bytes} B reply), share of the wire limit",
                metric="fraction of wire rate",
                station=round(wire_s / station_s, 4),
                peer=round(wire_s / peer_s, 4),
                peer_name="os.write + os.read, same paced simulator",
                goal=WIRE_GOAL,
                equal_results=equal,
                repeats=rounds,
                notes=(
                    f"wire limit {wire_s * 1e3:.3f} ms per exchange "
                    f"({len(QUERY) + len(TERM)} B out, {reply_bytes} B back, 8N1); station "
                    f"{station_s * 1e3:.3f} ms, peer {peer_s * 1e3:.3f} ms per exchange; median "
                    f"of {count * rounds} exchanges each, alternating"
                ),
            )
        )
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=500, help="queries per round (unpaced)")
    parser.add_argument("--paced-queries", type=int, default=100, help="queries per paced round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    args = parser.parse_args()
    pyvisa.logger.disabled = True
    cases = overheads(args.queries, args.rounds) + wire_rate(args.paced_queries, args.rounds)
    for case in cases:
        print(
            f"{case.case}: station {case.station} vs peer {case.peer} {case.metric}, met {case.met}"
        )
    write_result("transport", cases, args.out)


if __name__ == "__main__":
    main()

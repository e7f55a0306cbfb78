"""The generic TCP byte-stream server, with a minimal personality defined here."""

from __future__ import annotations

import socket
import time

import pytest

from hardware_sim.clock import SimClock
from hardware_sim.devices.base import LinePersonality, Reply
from hardware_sim.transports.tcp import TcpServer


class Echo(LinePersonality):
    """Replies ``ECHO <line>``; ``SLOW`` replies after 10 simulated seconds; ``BYE`` hangs up."""

    kind = "echo"

    def handle_line(self, line: str, now_s: float) -> list[Reply]:
        if line == "SLOW":
            return [self.line_reply("LATE", now_s + 10.0)]
        if line == "BYE":
            return [Reply(b"", now_s, disconnect=True, offline_s=0.3)]
        return [self.line_reply(f"ECHO {line}", now_s)]


def _read_until(sock: socket.socket, end: bytes, timeout_s: float = 2.0) -> bytes:
    sock.settimeout(timeout_s)
    buf = b""
    while not buf.endswith(end):
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


def test_lines_split_across_packets_and_any_terminator() -> None:
    with (
        TcpServer(Echo(SimClock(speed=1.0))) as server,
        socket.create_connection(("127.0.0.1", server.port)) as sock,
    ):
        sock.sendall(b"AB")
        sock.sendall(b"C\r\nX\nY\r")
        assert _read_until(sock, b"ECHO Y\r\n") == b"ECHO ABC\r\nECHO X\r\nECHO Y\r\n"


def test_reply_is_held_until_its_simulated_due_time() -> None:
    clock = SimClock(speed=100.0)  # 10 simulated s = 0.1 wall s
    with (
        TcpServer(Echo(clock)) as server,
        socket.create_connection(("127.0.0.1", server.port)) as sock,
    ):
        t_sent = clock.now()
        sock.sendall(b"SLOW\n")
        assert _read_until(sock, b"\r\n") == b"LATE\r\n"
        assert clock.now() - t_sent >= 10.0


def test_one_client_at_a_time_second_waits_for_the_first() -> None:
    with TcpServer(Echo(SimClock())) as server:
        first = socket.create_connection(("127.0.0.1", server.port))
        second = socket.create_connection(("127.0.0.1", server.port))
        second.sendall(b"two\n")
        second.settimeout(0.3)
        with pytest.raises(TimeoutError):
            second.recv(100)
        first.close()
        assert _read_until(second, b"\r\n") == b"ECHO two\r\n"
        second.close()


def test_disconnect_then_offline_then_back_on_the_same_port() -> None:
    with TcpServer(Echo(SimClock())) as server:
        port = server.port
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"BYE\n")
        assert _read_until(sock, b"\r\n") == b""  # closed without a reply
        sock.close()
        time.sleep(0.1)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        deadline = time.monotonic() + 3.0
        while True:
            try:
                again = socket.create_connection(("127.0.0.1", port), timeout=1.0)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "server did not come back"
                time.sleep(0.05)
        with again:
            again.sendall(b"hi\n")
            assert _read_until(again, b"\r\n") == b"ECHO hi\r\n"
        assert server.connections == 2


def test_addresses_name_the_port_for_visa_and_pyserial() -> None:
    with TcpServer(Echo(SimClock())) as server:
        addr = server.addresses()
        assert addr["visa"] == f"TCPIP::127.0.0.1::{server.port}::SOCKET"
        assert addr["pyserial"] == f"socket://127.0.0.1:{server.port}"
        assert addr["visa_asrl"] == f"ASRLsocket://127.0.0.1:{server.port}::INSTR"


def test_stop_is_clean_and_frees_the_port() -> None:
    server = TcpServer(Echo(SimClock())).start()
    port = server.port
    server.stop()
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()


def test_going_offline_without_a_client_refuses_then_comes_back() -> None:
    with TcpServer(Echo(SimClock())) as server:
        port = server.port
        server.drop_client(offline_s=0.4)
        time.sleep(0.15)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"x\n")
            assert _read_until(sock, b"\r\n") == b"ECHO x\r\n"

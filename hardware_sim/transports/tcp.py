"""A TCP server on 127.0.0.1 that serves one personality as a raw byte stream.

Not line-based: whatever the client writes goes to the personality as it arrives, and its replies
go back byte for byte when due, so SCPI lines and Neware frames (ending ``\\n\\n#\\r\\n``) pass
alike. Reach it as VISA ``TCPIP::127.0.0.1::<port>::SOCKET``, pyserial
``socket://127.0.0.1:<port>`` or VISA ``ASRLsocket://127.0.0.1:<port>::INSTR``.

Like the real instruments it serves one client at a time: a second connection waits in the
listen backlog until the first client leaves. A reply carrying ``disconnect`` closes the client;
with ``offline_s`` the server also stops listening for that many wall seconds and comes back on
the same port.
"""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import threading
import time
import traceback
from types import TracebackType

from hardware_sim.devices.base import Personality, Reply, ReplyQueue

POLL_S = 0.05


class TcpServer:
    """Serve ``personality`` on ``host:port`` (port 0 picks a free port) in a background thread."""

    def __init__(self, personality: Personality, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.personality = personality
        self.host = host
        self._requested_port = port
        self._port = 0
        self._listener: socket.socket | None = None
        self._client: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._offline_until_wall = 0.0
        self.connections = 0

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the server is not started")
        return self._port

    def addresses(self) -> dict[str, str | int]:
        """Endpoint strings for the launcher's JSON."""
        return {
            "tcp_port": self.port,
            "visa": f"TCPIP::{self.host}::{self.port}::SOCKET",
            "visa_asrl": f"ASRLsocket://{self.host}:{self.port}::INSTR",
            "pyserial": f"socket://{self.host}:{self.port}",
        }

    def start(self) -> TcpServer:
        self._listener = self._listen(self._requested_port)
        self._port = self._listener.getsockname()[1]
        self._thread = threading.Thread(
            target=self._run, name=f"sim-tcp-{self.personality.kind}-{self._port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the client and the listener and wait for the thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._close_client()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def drop_client(self, *, offline_s: float = 0.0) -> None:
        """Close the current client link now (fault injection), optionally going offline."""
        self._offline_until_wall = time.monotonic() + offline_s
        self._kick.set()

    def __enter__(self) -> TcpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        sock.listen(1)
        return sock

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._listener is not None and time.monotonic() < self._offline_until_wall:
                self._listener.close()  # taken offline while no client was connected
                self._listener = None
            if self._listener is None:
                self._wait_offline_then_relisten()
                continue
            readable, _, _ = select.select([self._listener], [], [], POLL_S)
            if not readable:
                continue
            try:
                conn, _addr = self._listener.accept()
            except OSError:
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._client = conn
            self.connections += 1
            offline_s = self._serve(conn)
            self._close_client()
            if offline_s > 0 or time.monotonic() < self._offline_until_wall:
                self._offline_until_wall = max(
                    self._offline_until_wall, time.monotonic() + offline_s
                )
                self._listener.close()
                self._listener = None

    def _wait_offline_then_relisten(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._offline_until_wall:
            time.sleep(min(POLL_S, max(0.0, self._offline_until_wall - time.monotonic())))
        if self._stop.is_set():
            return
        try:
            self._listener = self._listen(self._port)
        except OSError:
            time.sleep(POLL_S)

    def _serve(self, conn: socket.socket) -> float:
        """Pump bytes until the client leaves or a reply disconnects; returns offline seconds."""
        queue = ReplyQueue(self.personality.clock)
        with self.personality.lock:
            self.personality.on_connect()
        self._kick.clear()
        try:
            while not self._stop.is_set():
                if self._kick.is_set():
                    self._kick.clear()
                    return 0.0
                wait = queue.wall_wait_s()
                timeout = POLL_S if wait is None else min(POLL_S, wait)
                readable, _, _ = select.select([conn], [], [], timeout)
                if readable:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return 0.0
                    if not data:
                        return 0.0
                    queue.push(self._receive(data))
                for reply in queue.pop_due():
                    if reply.data:
                        try:
                            conn.sendall(reply.data)
                        except OSError:
                            return 0.0
                    if reply.disconnect:
                        return reply.offline_s
            return 0.0
        finally:
            with self.personality.lock:
                self.personality.on_disconnect()

    def _receive(self, data: bytes) -> list[Reply]:
        """A personality bug must not kill the server: report it and answer nothing."""
        try:
            return self.personality.receive(data)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return []

    def _close_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.shutdown(socket.SHUT_RDWR)
            self._client.close()
            self._client = None

"""A tiny line server on 127.0.0.1 for transport tests: each received line goes to a function.

The function returns the bytes to send back (``b""`` for no reply) or :data:`CLOSE` to drop the
connection. It runs on the server's thread; tests keep it simple and deterministic.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CLOSE = object()

Responder = Callable[[bytes], "bytes | object"]


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        buffer = b""
        term = self.server.terminator
        self.request.settimeout(5.0)
        while True:
            try:
                chunk = self.request.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while term in buffer:
                line, buffer = buffer.split(term, 1)
                self.server.received.append(line)
                reply = self.server.responder(line)
                if reply is CLOSE:
                    self.request.shutdown(socket.SHUT_RDWR)
                    return
                assert isinstance(reply, bytes)
                if reply:
                    self.request.sendall(reply)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, responder: Responder, terminator: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responder = responder
        self.terminator = terminator
        self.received: list[bytes] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@contextmanager
def line_server(responder: Responder, terminator: bytes = b"\n") -> Iterator[_Server]:
    server = _Server(responder, terminator)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5.0)

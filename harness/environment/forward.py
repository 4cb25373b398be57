"""TCP forwarding from an address an event reserved for the run to where the run listens.

Servers the run did not start (a vendor's) resolve the run's names through what the event gave
them before they started: a name plan, domain -> address (a hosts file; some resolvers read it
only once, and Prosody's resolves ``.test`` names from it alone). The run's servers and peer
actors listen on the run's own addresses, which are chosen when the run starts, so the run
listens on each reserved address and port and forwards every connection, bytes unchanged (TLS
included), to its own listener there.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from typing import Any

CONNECT_TIMEOUT_S = 5.0
_CHUNK = 65536


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            upstream = socket.create_connection(self.server.upstream, timeout=CONNECT_TIMEOUT_S)
        except OSError:
            return  # nothing listens there (yet): the connecting server sees the connection close
        upstream.settimeout(None)
        with upstream:
            back = threading.Thread(target=_pipe, args=(upstream, self.request), daemon=True)
            back.start()
            _pipe(self.request, upstream)
            back.join()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then end ``sink``'s sending side."""
    with contextlib.suppress(OSError):
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        super().__init__(listen, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke is the connecting server's business, not the run's."""


class Forwarders:
    """Every forwarding of one run, ended together."""

    def __init__(self) -> None:
        self._servers: list[_Server] = []

    def add(self, listen: str, upstream: str, ports: list[int]) -> None:
        """Forward ``listen``:port to ``upstream``:port for each port (OSError: one is taken)."""
        for port in ports:
            server = _Server((listen, port), (upstream, port))
            self._servers.append(server)
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()

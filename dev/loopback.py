"""The threaded HTTP server behind every local stand-in (provider, Graph, issuer, counting proxy), and its TLS variant.

Keep-alive (HTTP/1.1 handlers), Nagle off on every accepted socket, no DNS look-up of the host's
name at bind time, quiet about clients that hang up, and a stop that also ends idle keep-alive
connections, so nothing is served after it.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    # Errors a client causes by going away: expected with faults that drop or delay answers.
    quiet_errors: tuple[type[BaseException], ...] = (ConnectionError,)

    def __init__(self, address: tuple[str, int], handler: type):
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS round trip this server never needs.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = self.wrap(connection)
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def wrap(self, connection: socket.socket) -> socket.socket:
        """Where a TLS server wraps the accepted socket."""
        return connection

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], self.quiet_errors):
            super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def serve_in_background(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()


class TlsLoopbackServer(LoopbackServer):
    """The same server over TLS (the Graph stand-in, the issuer: msal and MSAL.js need https)."""

    quiet_errors = (ConnectionError, ssl.SSLError)

    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext):
        self._context = context
        super().__init__(address, handler)

    def wrap(self, connection: socket.socket) -> socket.socket:
        # The handshake runs in the request's thread (process_request_thread), so a client that
        # never completes one cannot stall the accept loop.
        return self._context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(5)
            request.do_handshake()
            request.settimeout(None)
        except (ssl.SSLError, OSError):
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"https://{host}:{port}"

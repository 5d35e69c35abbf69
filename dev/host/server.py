"""The host's HTTP/1.1 server, with Kestrel's manners: keep-alive (one thread per connection, Kestrel's idle
timeout), `100 Continue` only once the body is wanted, bodies read up to a limit (Content-Length or chunked),
unread bodies drained or the connection closed, and a stop that finishes in-flight requests and leaves no
thread behind. What a request means is `respond`'s business (routing.py)."""

from __future__ import annotations

import contextlib
import email.utils
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from dev.host.diagnostics import warn
from dev.loopback import LoopbackServer

# Kestrel's default keep-alive timeout.
KEEP_ALIVE_TIMEOUT = 130


class HttpServer(LoopbackServer):
    """The repo's loopback server, with a thread per connection that a stop joins, and counters for tests."""

    # The stand-ins hide errors their own faults cause; the app's host shows every one.
    quiet_errors = ()

    def __init__(self, address: tuple[str, int], respond: Callable[[Handler], tuple[int, str]], access_log: bool):
        self.respond = respond
        self.access_log = access_log
        self.threads: set[threading.Thread] = set()
        self.lock = threading.Lock()
        self.accepted = 0
        self.nodelay = 0
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # One thread per connection (keep-alive), tracked so that server_close() can join them all.
        thread = threading.Thread(target=self._serve, args=(request, client_address), name="dev-host-connection")
        with self.lock:
            self.threads.add(thread)
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.lock:
                self.threads.discard(threading.current_thread())

    def server_close(self) -> None:
        super().server_close()
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()  # Nagle off, tracked until shutdown_request
        with self.lock:
            self.accepted += 1
            self.nodelay += bool(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return connection, address

    def end_idle_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)  # a blocked read returns EOF; a response in flight completes


class BodyTooLarge(Exception):
    """The request body is over the host's limit (413)."""


class Handler(BaseHTTPRequestHandler):
    """One connection: every method goes to the server's `respond`, with the body helpers it needs."""

    protocol_version = "HTTP/1.1"
    server_version = "dev.host"
    timeout = KEEP_ALIVE_TIMEOUT
    expect_continue = False
    server: HttpServer

    def handle_expect_100(self) -> bool:
        self.expect_continue = True  # answer 100 only once the body is actually wanted
        return True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        started = time.perf_counter()
        try:
            status, note = self.server.respond(self)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        finally:
            self.expect_continue = False
        if self.server.access_log:
            elapsed = (time.perf_counter() - started) * 1000
            warn(f"{self.command} {self.path} -> {status} in {elapsed:.1f} ms{note}")

    def read_body(self, limit: int) -> bytes:
        """The raw body; over `limit` raises BodyTooLarge before reading it (Content-Length) or on the way."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._continue()
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(8192).strip():
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > limit:
                    raise BodyTooLarge
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = self.content_length()
        if length > limit:
            raise BodyTooLarge
        if length == 0:
            return b""
        self._continue()
        data = self.rfile.read(length)
        if len(data) < length:
            raise ConnectionError("request body cut short")
        return data

    def content_length(self) -> int:
        value = self.headers.get("Content-Length")
        if value is None:
            return 0
        if not value.strip().isdigit():
            raise ValueError("bad Content-Length")
        return int(value)

    def skip_body(self) -> None:
        """Answering without reading the body: drain a small one to keep the connection, else close it."""
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        try:
            length = self.content_length()
        except ValueError:
            length = -1
        if chunked or length < 0 or (length and self.expect_continue) or length > 1_048_576:
            self.close_connection = True
        elif length:
            self.rfile.read(length)

    def _continue(self) -> None:
        if self.expect_continue:
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.expect_continue = False

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {email.utils.formatdate(usegmt=True)}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        bodiless = status < 200 or status in (204, 304)
        if not bodiless:
            lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if bodiless or self.command == "HEAD" else head + body)

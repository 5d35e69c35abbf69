"""A small HTTP reverse proxy that counts the requests passing through it, and can fail some.

Tests and benchmarks put one in front of Azurite's table and queue endpoints so that storage round
trips are counted at the server side, whichever process (test, dev host) sent them, and so that a
test can make storage fail at an exact step. Connections are kept alive on both sides and Nagle is
off, so the proxy adds little latency of its own.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from dev.loopback import LoopbackServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Intercept:
    """What an interceptor makes of one request (see `CountingProxy.interceptor`).

    `status`: answered with it (a storage error body), never forwarded. Otherwise forwarded unless
    `forward` is false; then `then` is called (the request has taken effect upstream, nobody has its answer
    yet: a test kills the app process here); then, with `drop`, the connection is closed without an answer.
    """

    status: int | None = None
    body: str = ""  # the error body with `status` (default: Table Storage's JSON error)
    forward: bool = True
    drop: bool = False
    then: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if self.status is None and not self.forward and not self.drop:
            raise ValueError("a request neither forwarded nor answered must be dropped")


class CountingProxy:
    """Forwards to `upstream` (http://host:port) and counts requests by (method, path)."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.counts: Counter[tuple[str, str]] = Counter()
        self._faults: list[list] = []
        # Sees every request first (method, path with query, body) and may return an `Intercept`: a test's
        # fault injector counts an operation's steps here and fails the one it aims at.
        self.interceptor: Callable[[str, str, bytes | None], Intercept | None] | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server: LoopbackServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def start(self, port: int = 0) -> CountingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                proxy._record(self.command, urlsplit(self.path).path)
                interceptor = proxy.interceptor
                intercept = interceptor(self.command, self.path, body) if interceptor is not None else None
                if intercept is not None and intercept.status is not None:
                    failure = proxy._injected(intercept.status, intercept.body)
                else:
                    failure = proxy._take_fault(self.command, self.path, body)
                if failure is not None:
                    status, reason, response_headers, data = failure
                elif intercept is None or intercept.forward:
                    status, reason, response_headers, data = proxy._send(self.command, self.path, body, headers)
                if intercept is not None and intercept.then is not None:
                    intercept.then()
                if intercept is not None and intercept.drop:
                    self.close_connection = True
                    return
                self.send_response_only(status, reason)
                for name, value in response_headers:
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_MERGE = do_OPTIONS = _forward

        self._server = LoopbackServer(("127.0.0.1", port), Handler).serve_in_background()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop()

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.counts[(method, path)] += 1

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]):
        for attempt in (1, 2):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(*self.upstream, timeout=60)
                connection.connect()
                connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._local.connection = connection
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                return response.status, response.reason, response.getheaders(), data
            except (ConnectionError, http.client.HTTPException):
                # The upstream closed an idle keep-alive connection: reconnect once.
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def fail(self, method: str, pattern: str, *, status: int = 503, times: int = 1, body: str = "") -> None:
        """Answer the next `times` requests whose method matches and whose path and query (or body)
        match the regex `pattern` with `status`, without forwarding them."""
        with self._lock:
            self._faults.append([method, re.compile(pattern), status, times, body])

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, target: str, body: bytes | None):
        with self._lock:
            for fault in self._faults:
                fault_method, pattern, status, times, text = fault
                if (
                    times > 0
                    and fault_method == method
                    and (pattern.search(target) or pattern.search((body or b"").decode("utf-8", "replace")))
                ):
                    fault[3] -= 1
                    return self._injected(status, text)
        return None

    @staticmethod
    def _injected(status: int, text: str):
        payload = (text or '{"odata.error":{"code":"ServerBusy","message":{"value":"injected"}}}').encode()
        kind = "application/xml" if payload.startswith(b"<") else "application/json;odata=minimalmetadata"
        return status, "Injected", [("Content-Type", kind)], payload

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.counts)

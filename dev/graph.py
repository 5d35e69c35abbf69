"""`GraphStandIn`: Entra ID's token endpoint and Microsoft Graph `sendMail`, over HTTPS (local only).

msal accepts only an https authority, so the stand-in serves TLS with a certificate issued by a
test CA of its own (trustme) for `127.0.0.1` and `localhost`. How a client trusts that CA:

- in-process: a `requests.Session` with `trust_env=False` and `verify=stand_in.ca_path`. Without
  `trust_env=False`, `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE` from the environment (set on the
  development machines) win over the session's `verify` for every call that passes no `verify`
  of its own, which is how msal calls;
- an app process: `REQUESTS_CA_BUNDLE=stand_in.ca_path` in that process's environment. The app's
  session is the production one, left at requests' defaults, so it reads exactly that variable;
  in Azure the variable is unset and the default CA bundle applies. Nothing in the app knows
  about the test CA, so nothing in it can weaken TLS.

Served (`{tenant}` is the tenant given to the constructor):

    GET  /{tenant}/v2.0/.well-known/openid-configuration   what msal reads first
    POST /{tenant}/oauth2/v2.0/token                        client credentials, secret or certificate
    POST /v1.0/users/{id}/sendMail                          202; the message is kept for `messages()`

Every request is logged (`request_log()`); faults (`add_fault`) answer a status (with
`Retry-After`), or drop the connection (Graph down), for matching requests, before they take effect.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from dev.loopback import LoopbackServer

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_SEND_MAIL = re.compile(r"^/v1\.0/users/([^/]+)/sendMail$")


@dataclass
class Fault:
    """A misbehaviour for matching requests: a status (optionally with Retry-After), or a dropped connection."""

    path: str | None = None  # a regular expression searched in the path
    method: str | None = None
    status: int | None = None
    retry_after: float | None = None
    drop: bool = False
    times: int | None = None  # None: until reset
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.status is None and not self.drop:
            raise ValueError("a fault needs a status or drop")
        self._pattern = re.compile(self.path) if self.path else None

    def matches(self, method: str, path: str) -> bool:
        return (
            (self.times is None or self.times > 0)
            and (self.method is None or self.method.upper() == method)
            and (self._pattern is None or self._pattern.search(path) is not None)
        )


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def json(cls, status: int, document: Any, headers: dict[str, str] | None = None) -> _Reply:
        body = json.dumps(document).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


def _graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply.json(status, {"error": {"code": code, "message": message}}, headers)


def _oauth_error(status: int, error: str, description: str) -> _Reply:
    return _Reply.json(status, {"error": error, "error_description": description})


class GraphStandIn:
    """Entra ID client credentials and Graph sendMail for one app registration in one tenant."""

    def __init__(
        self,
        *,
        tenant_id: str = "5c0c6f0e-3b6a-4a53-9d7f-2f0b8f1d6a11",
        client_id: str = "a3f1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b",
        client_secret: str | None = "local-graph-client-secret",  # noqa: S107 - a test value, not a secret
        client_certificate: str | None = None,
        token_lifetime: int = 3600,
    ):
        """`client_certificate`: PEM of a certificate whose key may sign client assertions."""
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self._certificate = x509.load_pem_x509_certificate(client_certificate.encode()) if client_certificate else None
        self.token_lifetime = token_lifetime
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._log: list[dict[str, Any]] = []
        self._messages: list[dict[str, Any]] = []
        self._tokens: dict[str, float] = {}
        self._ca = trustme.CA()
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._server: _Server | None = None

    # Life cycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        self._directory = tempfile.TemporaryDirectory(prefix="graph-stand-in-")
        self._ca.cert_pem.write_to_path(self.ca_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = _Server((host, port), self, context).serve_in_background()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        self._server = None
        self._directory.cleanup()

    def __enter__(self) -> Self:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"https://{host}:{port}"

    @property
    def ca_path(self) -> str:
        """The test CA's certificate (PEM): what a client must trust to talk to the stand-in."""
        return str(Path(self._directory.name) / "ca.pem")

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/{self.tenant_id}/oauth2/v2.0/token"

    def settings(self, sender: str, **overrides: str) -> dict[str, str]:
        """The app settings (`MAIL_*`, `GRAPH_BASE_URL`) that point the app at this stand-in."""
        values = {
            "MAIL_SENDER": sender,
            "MAIL_TENANT_ID": self.tenant_id,
            "MAIL_CLIENT_ID": self.client_id,
            "MAIL_CLIENT_SECRET": self.client_secret or "",
            "MAIL_AUTHORITY_HOST": self.url,
            "GRAPH_BASE_URL": f"{self.url}/v1.0",
        }
        return {**values, **overrides}

    # Control surface

    def request_log(self) -> list[dict[str, Any]]:
        """Every request: method, path, status (None when dropped), and its form or JSON body."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def messages(self) -> list[dict[str, Any]]:
        """What sendMail accepted: `{"mailbox", "message", "saveToSentItems"}` each, in order."""
        with self._lock:
            return [dict(entry) for entry in self._messages]

    def issued_tokens(self) -> list[str]:
        """Every access token issued so far (for tests that check none of them leaks into a log)."""
        with self._lock:
            return list(self._tokens)

    def add_fault(self, **spec: Any) -> Fault:
        fault = Fault(**spec)
        with self._lock:
            self._faults.append(fault)
        return fault

    def reset(self) -> None:
        """Forget faults, the log and the messages; tokens already issued stay valid, as Entra's do."""
        with self._lock:
            self._faults.clear()
            self._log.clear()
            self._messages.clear()

    # Serving

    def _serve(self, method: str, target: str, headers: Any, raw_body: bytes) -> _Reply:
        path = urlsplit(target).path
        entry: dict[str, Any] = {"method": method, "path": path}
        if headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            entry["form"] = dict(parse_qsl(raw_body.decode("utf-8"), keep_blank_values=True))
        elif raw_body:
            with contextlib.suppress(ValueError):
                entry["json"] = json.loads(raw_body)
        with self._lock:
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
        if fault is None:
            reply = self._answer(method, path, headers, entry)
        elif fault.drop:
            reply = _Reply(0, drop=True)
        else:
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            phrase = HTTPStatus(fault.status).phrase
            reply = _graph_error(fault.status, phrase.replace(" ", ""), f"stand-in fault: {phrase}", extra)
        with self._lock:
            self._log.append({**entry, "status": None if reply.drop else reply.status})
        return reply

    def _answer(self, method: str, path: str, headers: Any, entry: dict[str, Any]) -> _Reply:
        tenant_prefix = f"/{self.tenant_id}"
        if method == "GET" and path == f"{tenant_prefix}/v2.0/.well-known/openid-configuration":
            return _Reply.json(200, self._metadata())
        if method == "POST" and path == f"{tenant_prefix}/oauth2/v2.0/token":
            return self._token(entry.get("form") or {})
        match = _SEND_MAIL.match(path)
        if method == "POST" and match:
            return self._send_mail(unquote(match.group(1)), headers, entry.get("json"))
        return _graph_error(404, "ResourceNotFound", f"No route for {method} {path}")

    def _metadata(self) -> dict[str, Any]:
        base = f"{self.url}/{self.tenant_id}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": self.token_endpoint,
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        }

    def _token(self, form: dict[str, str]) -> _Reply:
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials is served here")
        if form.get("client_id") != self.client_id:
            return _oauth_error(400, "unauthorized_client", "AADSTS700016: application not found in the directory")
        if form.get("scope") != f"{self.url}/.default":
            return _oauth_error(400, "invalid_scope", "AADSTS1002012: the scope must be the resource's /.default")
        problem = self._client_authentication_problem(form)
        if problem:
            return _oauth_error(401, "invalid_client", problem)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.time() + self.token_lifetime
        lifetime = self.token_lifetime
        return _Reply.json(
            200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}
        )

    def _client_authentication_problem(self, form: dict[str, str]) -> str | None:
        if "client_secret" in form:
            if self.client_secret is None or not secrets.compare_digest(form["client_secret"], self.client_secret):
                return "AADSTS7000215: invalid client secret"
            return None
        if form.get("client_assertion_type") != JWT_BEARER or "client_assertion" not in form:
            return "AADSTS7000216: client_assertion or client_secret is required"
        if self._certificate is None:
            return "AADSTS700027: no certificate is registered for this application"
        assertion = form["client_assertion"]
        header = jwt.get_unverified_header(assertion)
        expected = base64.urlsafe_b64encode(self._certificate.fingerprint(hashes.SHA256())).decode().rstrip("=")
        # msal pads its base64url (JOSE's has no padding); Entra accepts either.
        if str(header.get("x5t#S256", "")).rstrip("=") != expected:
            return "AADSTS700027: the assertion names a certificate this application does not have"
        try:
            claims = jwt.decode(
                assertion,
                self._certificate.public_key(),
                algorithms=["PS256", "RS256"],
                audience=self.token_endpoint,
                options={"require": ["exp", "aud", "iss", "sub", "jti"]},  # what Entra requires
            )
        except jwt.InvalidTokenError as error:
            return f"AADSTS700027: client assertion failed validation ({error})"
        if claims["iss"] != self.client_id or claims["sub"] != self.client_id:
            return "AADSTS700021: the assertion's iss and sub must be the client id"
        return None

    def _send_mail(self, mailbox: str, headers: Any, body: Any) -> _Reply:
        token = (headers.get("Authorization") or "").removeprefix("Bearer ")
        with self._lock:
            expires = self._tokens.get(token)
        if expires is None or expires < time.time():
            return _graph_error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict) or not message.get("toRecipients"):
            return _graph_error(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        with self._lock:
            self._messages.append(
                {"mailbox": mailbox, "message": message, "saveToSentItems": body.get("saveToSentItems", True)}
            )
        return _Reply(202)


class _Server(LoopbackServer):
    quiet_errors = (ConnectionError, ssl.SSLError)

    def __init__(self, address: tuple[str, int], stand_in: GraphStandIn, context: ssl.SSLContext):
        self.stand_in = stand_in
        self._context = context
        super().__init__(address, _RequestHandler)

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


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the stand-in keeps its own request log."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length > 0 else b""
        reply = self.server.stand_in._serve(method, self.path, self.headers, raw_body)
        if reply.drop:
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

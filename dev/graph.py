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

The local mailbox (`make run`): what sendMail accepted, newest first, for people and the SPA. It is
not Graph, so it is neither logged nor subject to faults:

    GET  /mailbox                                           an HTML page: recipient, subject, body, calendar file
    GET  /mailbox.json                                      the same as JSON, with CORS for any origin
    GET  /mailbox/{message id}/attachments/{n}              an attachment (the .ics) as a download

`python -m dev.graph --port 7074 --tls-cert PEM` serves it alone, with the credentials of the local
settings' `MAIL_*` values, until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
import secrets
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

from dev.loopback import TlsLoopbackServer

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_SEND_MAIL = re.compile(r"^/v1\.0/users/([^/]+)/sendMail$")
_ATTACHMENT = re.compile(r"^/mailbox/(\d+)/attachments/(\d+)$")


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
        tls_certificate: str | None = None,
        ca_file: str | None = None,
        hostname: str | None = None,
    ):
        """`client_certificate`: PEM of a certificate whose key may sign client assertions.

        `tls_certificate` (key and chain, PEM) and `ca_file`: serve with a certificate of the local CA
        (`make run`) instead of a test CA of the stand-in's own; `hostname`: the name in its URLs.
        """
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self._certificate = x509.load_pem_x509_certificate(client_certificate.encode()) if client_certificate else None
        self.token_lifetime = token_lifetime
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._log: list[dict[str, Any]] = []
        self._messages: list[dict[str, Any]] = []
        self._tokens: dict[str, float] = {}
        self._tls_certificate, self._ca_file, self._hostname = tls_certificate, ca_file, hostname
        self._next_id = 1
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._server: _Server | None = None

    # Life cycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self._tls_certificate:
            context.load_cert_chain(self._tls_certificate)
        else:
            self._directory = tempfile.TemporaryDirectory(prefix="graph-stand-in-")
            ca = trustme.CA()
            ca.cert_pem.write_to_path(self.ca_path)
            ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = _Server((host, port), self, context).serve_in_background()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        self._server = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def __enter__(self) -> Self:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"https://{self._hostname or host}:{port}"

    @property
    def ca_path(self) -> str:
        """The CA's certificate (PEM): what a client must trust to talk to the stand-in."""
        return self._ca_file or str(Path(self._directory.name) / "ca.pem")

    @property
    def mailbox_url(self) -> str:
        return f"{self.url}/mailbox"

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
        if path == "/mailbox" or path == "/mailbox.json" or path.startswith("/mailbox/"):
            return self._mailbox(method, path)
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
                {
                    "id": self._next_id,
                    "receivedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "mailbox": mailbox,
                    "message": message,
                    "saveToSentItems": body.get("saveToSentItems", True),
                }
            )
            self._next_id += 1
        return _Reply(202)

    def _mailbox(self, method: str, path: str) -> _Reply:
        if method != "GET":
            return _Reply(405, b"", {"Allow": "GET"})
        sent = list(reversed(self.messages()))
        if path == "/mailbox":
            page = _mailbox_page(sent, self.url).encode("utf-8")
            return _Reply(200, page, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})
        if path == "/mailbox.json":
            document = {"items": [_mailbox_item(entry, self.url) for entry in sent]}
            headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
            return _Reply.json(200, document, headers)
        match = _ATTACHMENT.match(path)
        entry = next((e for e in sent if match and e["id"] == int(match.group(1))), None)
        attachments = entry["message"].get("attachments") or [] if entry else []
        index = int(match.group(2)) if match else -1
        if not 0 <= index < len(attachments):
            return _Reply(404, b"no such message or attachment", {"Content-Type": "text/plain; charset=utf-8"})
        return _download(attachments[index])


def _mailbox_item(entry: dict[str, Any], base_url: str) -> dict[str, Any]:
    message = entry["message"]
    attachments = message.get("attachments") or []
    return {
        "id": entry["id"],
        "receivedAt": entry["receivedAt"],
        "from": entry["mailbox"],
        "to": [r.get("emailAddress", {}).get("address") for r in message.get("toRecipients") or []],
        "subject": message.get("subject", ""),
        "body": message.get("body") or {"contentType": "Text", "content": ""},
        "attachments": [
            {
                "name": attachment.get("name", f"attachment-{index}"),
                "contentType": attachment.get("contentType", "application/octet-stream"),
                "url": f"{base_url}/mailbox/{entry['id']}/attachments/{index}",
            }
            for index, attachment in enumerate(attachments)
        ],
    }


def _mailbox_page(sent: list[dict[str, Any]], base_url: str) -> str:
    items = []
    for entry in sent:
        item = _mailbox_item(entry, base_url)
        body = item["body"]
        if str(body.get("contentType", "")).lower() == "html":
            # The email's own HTML, sandboxed (no scripts, no same origin) as a mail client shows it;
            # its links (the join link) open in a new tab.
            title = html.escape(f"Body of {item['subject']}")
            content = html.escape('<base target="_blank">' + body["content"])
            sandbox = "allow-popups allow-popups-to-escape-sandbox"
            shown = f'<iframe sandbox="{sandbox}" title="{title}" srcdoc="{content}"></iframe>'
        else:
            shown = f"<pre>{html.escape(body.get('content', ''))}</pre>"
        files = "".join(
            f'<li><a href="{html.escape(a["url"])}" download>{html.escape(a["name"])}</a></li>'
            for a in item["attachments"]
        )
        items.append(
            f"<li><article><h2>{html.escape(item['subject'])}</h2><dl>"
            f"<dt>To</dt><dd>{html.escape(', '.join(filter(None, item['to'])))}</dd>"
            f"<dt>From</dt><dd>{html.escape(item['from'])}</dd>"
            f'<dt>Sent</dt><dd><time datetime="{item["receivedAt"]}">{item["receivedAt"]}</time></dd></dl>'
            f"{shown}{f'<h3>Calendar file</h3><ul>{files}</ul>' if files else ''}</article></li>"
        )
    listing = f'<ol reversed class="mail">{"".join(items)}</ol>' if items else "<p>No email sent yet.</p>"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>Local mailbox</title>'
        "<style>:root{color-scheme:light dark;font-family:system-ui,sans-serif;line-height:1.5}"
        "main{max-width:50rem;margin:0 auto;padding:1rem}ol.mail{list-style:none;padding:0}"
        "article{border:1px solid #8888;border-radius:.5rem;padding:1rem;margin-bottom:1rem}"
        "h2{font-size:1.2rem;margin:0 0 .5rem}h3{font-size:1rem}dl{display:grid;grid-template-columns:auto 1fr;"
        "gap:0 1rem;margin:0 0 .5rem}dt{font-weight:600}dd{margin:0}"
        "iframe{width:100%;min-height:12rem;border:1px solid #8888;background:#fff}</style></head>"
        "<body><main><h1>Local mailbox</h1>"
        f"<p>The invitation emails the app sent through the Graph stand-in, newest first ({len(sent)}). "
        'They are kept in memory until <code>make run</code> stops. <a href="">Refresh</a> · '
        '<a href="/mailbox.json">JSON</a></p>'
        f"{listing}</main></body></html>\n"
    )


def _download(attachment: dict[str, Any]) -> _Reply:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", attachment.get("name") or "attachment")
    content = base64.b64decode(attachment.get("contentBytes") or "")
    headers = {
        "Content-Type": attachment.get("contentType") or "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{name}"',
        "Access-Control-Allow-Origin": "*",
    }
    return _Reply(200, content, headers)


class _Server(TlsLoopbackServer):
    def __init__(self, address: tuple[str, int], stand_in: GraphStandIn, context: ssl.SSLContext):
        self.stand_in = stand_in
        super().__init__(address, _RequestHandler, context)


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


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal

    from shared.settings import read_values

    parser = argparse.ArgumentParser(prog="python -m dev.graph", description="The Graph stand-in and local mailbox.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7074)
    parser.add_argument("--tls-cert", metavar="PEM", help="private key and certificate chain (default: a test CA's)")
    parser.add_argument("--ca", metavar="PEM", help="the CA that issued --tls-cert")
    parser.add_argument("--hostname", help="the host name in its URLs (default: --host)")
    args = parser.parse_args(argv)
    values = read_values()
    credentials = {
        "tenant_id": values.get("MAIL_TENANT_ID"),
        "client_id": values.get("MAIL_CLIENT_ID"),
        "client_secret": values.get("MAIL_CLIENT_SECRET"),
    }
    stand_in = GraphStandIn(
        **{name: value for name, value in credentials.items() if value},
        tls_certificate=args.tls_cert,
        ca_file=args.ca,
        hostname=args.hostname,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with stand_in.start(args.host, args.port):
        print(f"graph stand-in on {stand_in.url} (mailbox {stand_in.mailbox_url})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

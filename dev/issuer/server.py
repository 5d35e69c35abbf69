"""`Issuer`: the OpenID Connect authority (dev.issuer.oidc) over HTTP or HTTPS, with the JWKS.

Tests run it in-process over plain HTTP on a free port (several keys for rotation, a switch that
makes the JWKS fail, a count of JWKS requests); `make run` serves it over HTTPS with the local CA's
certificate, because MSAL.js accepts only an https authority. Every response carries CORS headers
for any origin (MSAL.js reads the metadata and redeems codes with fetch from the SPA's origin; no
credentials are involved, so `*` is enough), and preflights are answered.
"""

from __future__ import annotations

import json
import ssl
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from dev.issuer import oidc, page, tokens
from dev.loopback import LoopbackServer, TlsLoopbackServer

ROOT = Path(__file__).resolve().parents[2]
FABRIKAM = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"  # a tenant nobody allows by default: sign-ins the app refuses
SPA_ORIGINS = ("http://localhost:5173", "http://127.0.0.1:5173")


def _example_values() -> dict[str, str]:
    return json.loads((ROOT / "local.settings.json.example").read_text())["Values"]


def default_suggestions(home_tenant: str) -> tuple[oidc.Suggestion, ...]:
    return (
        oidc.Suggestion("alice@contoso.test", "Alice Example"),
        oidc.Suggestion("bob@contoso.test", "Bob Example"),
        oidc.Suggestion("carol@contoso.test", "Carol Example"),
        oidc.Suggestion("dana@fabrikam.test", "Dana Fabrikam", FABRIKAM),
    )


class Issuer:
    """The issuer over HTTP(S): OIDC discovery, authorize, token, logout, and `/discovery/v2.0/keys`."""

    def __init__(
        self,
        key: rsa.RSAPrivateKey | None = None,
        *,
        api_client_id: str | None = None,
        api_scopes: tuple[str, ...] | None = None,
        home_tenant: str | None = None,
        tenants: dict[str, str] | None = None,
        spa_client_id: str = tokens.SPA_CLIENT_ID,
        redirect_origins: tuple[str, ...] = SPA_ORIGINS,
        suggestions: tuple[oidc.Suggestion, ...] | None = None,
        tls: ssl.SSLContext | None = None,
        hostname: str | None = None,
    ):
        """`tls`: serve HTTPS with this context; `hostname`: the name in URLs (default: the bound address)."""
        example = _example_values()
        self.keys: list[rsa.RSAPrivateKey] = [key or tokens.new_key()]
        self.available = True
        self.jwks_requests = 0
        self.home_tenant = home_tenant or example["AUTH_TENANT_ID"]
        self.api = oidc.Api(api_client_id or example["AUTH_CLIENT_ID"], api_scopes or ("access_as_user",))
        self.client = oidc.Client(spa_client_id, tuple(origin.lower().rstrip("/") for origin in redirect_origins))
        self.tenants = tenants or {self.home_tenant: "Contoso (home tenant)", FABRIKAM: "Fabrikam"}
        self.suggestions = suggestions if suggestions is not None else default_suggestions(self.home_tenant)
        self._tls = tls
        self._hostname = hostname
        self.authority: oidc.Authority | None = None
        self._server: LoopbackServer | None = None

    @property
    def key(self) -> rsa.RSAPrivateKey:
        return self.keys[0]

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{'https' if self._tls else 'http'}://{self._hostname or host}:{port}"

    @property
    def issuer_template(self) -> str:
        return self.url + "/{tid}/v2.0"

    @property
    def jwks_uri(self) -> str:
        return self.url + "/discovery/v2.0/keys"

    def authority_url(self, tenant: str | None = None) -> str:
        """What MSAL.js takes as `authority` (its metadata is under `.well-known/` below it)."""
        return f"{self.url}/{tenant or self.home_tenant}/v2.0"

    def publish(self, key: rsa.RSAPrivateKey) -> None:
        """Add a key to the JWKS (rotation): tokens signed with it verify from now on."""
        self.keys.append(key)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [tokens.jwk(key) for key in self.keys]}

    def token(self, *, audience: str, tenant: str, email: str, key: rsa.RSAPrivateKey | None = None, **claims: Any):
        return tokens.mint(
            key or self.key,
            issuer_template=self.issuer_template,
            audience=audience,
            tenant=tenant,
            email=email,
            **claims,
        )

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Issuer:
        handler = _handler(self)
        if self._tls is not None:
            self._server = TlsLoopbackServer((host, port), handler, self._tls)
        else:
            self._server = LoopbackServer((host, port), handler)
        self.authority = oidc.Authority(
            self.url,
            lambda: self.key,
            client=self.client,
            api=self.api,
            home_tenant=self.home_tenant,
            tenants=self.tenants,
            suggestions=self.suggestions,
            secure_cookies=self._tls is not None,
        )
        self._server.serve_in_background()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Issuer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_OPTIONS(self) -> None:
            headers = {
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": self.headers.get("Access-Control-Request-Headers") or "Content-Type",
                "Access-Control-Max-Age": "86400",
            }
            if self.headers.get("Access-Control-Request-Private-Network") == "true":
                headers["Access-Control-Allow-Private-Network"] = "true"
            self._send(oidc.Reply(204, b"", headers))

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            authority = issuer.authority
            if path in ("/discovery/v2.0/keys", "/common/discovery/v2.0/keys") or _tenant_keys(path):
                issuer.jwks_requests += 1
                if not issuer.available:
                    return self._json(503, {"error": "temporarily_unavailable"})
                return self._json(200, issuer.jwks())
            segments = path.strip("/").split("/")
            if len(segments) == 4 and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                metadata = authority.metadata(segments[0])
                return self._json(200, metadata) if metadata else self._json(400, _unknown_tenant(segments[0]))
            if len(segments) == 4 and segments[1:3] == ["oauth2", "v2.0"]:
                if segments[3] == "authorize":
                    return self._send(authority.authorize(segments[0], parts.query, self.headers.get("Cookie")))
                if segments[3] == "logout":
                    return self._send(authority.end_session(parts.query))
            if path == "/":
                metadata_url = f"{authority.base_url}/{issuer.home_tenant}/v2.0/.well-known/openid-configuration"
                return self._send(oidc.Reply.html(200, page.home(metadata_url)))
            self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            segments = urlsplit(self.path).path.strip("/").split("/")
            if len(segments) != 4 or segments[1:3] != ["oauth2", "v2.0"]:
                return self._json(404, {"error": "not_found"})
            form_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            form = {}
            if form_type == "application/x-www-form-urlencoded":
                form = dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
            authority = issuer.authority
            if segments[3] == "token":
                if form_type != "application/x-www-form-urlencoded":
                    error = oidc.OAuthError("invalid_request", 900144, "The body must be form-encoded.")
                    return self._json(400, error.body())
                status, body = authority.token(segments[0], form, self.headers.get("Origin"))
                return self._json(status, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})
            if segments[3] == "authorize":
                return self._send(authority.sign_in(segments[0], form, self.headers.get("Cookie")))
            if segments[3] == "logout":
                return self._send(authority.end_session(raw.decode("utf-8", errors="replace")))
            self._json(404, {"error": "not_found"})

        def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            content = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
            self._send(oidc.Reply(status, json.dumps(body).encode(), content))

        def _send(self, reply: oidc.Reply) -> None:
            self.send_response(reply.status)
            for name, value in {"Access-Control-Allow-Origin": "*", **reply.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    return Handler


def _tenant_keys(path: str) -> bool:
    segments = path.strip("/").split("/")
    return len(segments) == 4 and segments[1:] == ["discovery", "v2.0", "keys"]


def _unknown_tenant(segment: str) -> dict[str, Any]:
    return oidc.OAuthError("invalid_tenant", 90002, f"Tenant '{segment}' not found.").body()

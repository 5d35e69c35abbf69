"""A local token issuer that mints Entra ID v2-shaped access tokens (never deployed).

    python -m dev.issuer serve [--port 7072]      OIDC metadata and JWKS over HTTP
    python -m dev.issuer token --email EMAIL [--name NAME] [--tenant TID]

Both commands share one RSA key kept in `.local/issuer/key.pem`, so a token printed by `token`
verifies against the JWKS served by `serve`. The audience, tenant and issuer come from the same
settings the app reads (environment over local.settings.json), so the app accepts the tokens.
Tests use the `Issuer` class in-process: several keys (rotation), any claim overridden, and a
switch that makes the JWKS endpoint fail.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dev.loopback import LoopbackServer

ROOT = Path(__file__).resolve().parent.parent
KEY_FILE = ROOT / ".local" / "issuer" / "key.pem"
DEFAULT_PORT = 7072
# The client id of the (imaginary) SPA that requested the token: `azp` in v2 tokens.
SPA_CLIENT_ID = "0f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_id(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).decode().rstrip("=")


def load_or_create_key(path: Path = KEY_FILE) -> rsa.RSAPrivateKey:
    if path.exists():
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    key = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)
    return key


def user_object_id(tenant: str, email: str) -> str:
    """A stable oid per (tenant, address), so repeated `token` calls act as the same user."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dev-issuer:{tenant}:{email.lower()}"))


def mint(
    key: rsa.RSAPrivateKey,
    *,
    issuer_template: str,
    audience: str,
    tenant: str,
    email: str,
    name: str | None = None,
    oid: str | None = None,
    scope: str = "access_as_user",
    lifetime: int = 3600,
    now: float | None = None,
    kid: str | None = None,
    claims: dict[str, Any] | None = None,
) -> str:
    """An Entra v2 access token for the user `email`; `claims` replace or (value None) remove claims."""
    issued = int(time.time() if now is None else now)
    token_claims: dict[str, Any] = {
        "aud": audience,
        "iss": issuer_template.replace("{tid}", tenant),
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "ver": "2.0",
        "tid": tenant,
        "oid": oid or user_object_id(tenant, email),
        "sub": hashlib.sha256(f"{tenant}:{email}".encode()).hexdigest()[:43],
        "azp": SPA_CLIENT_ID,
        "scp": scope,
        "name": name or email.split("@")[0].replace(".", " ").title(),
        "preferred_username": email,
    }
    for claim, value in (claims or {}).items():
        if value is None:
            token_claims.pop(claim, None)
        else:
            token_claims[claim] = value
    return jwt.encode(token_claims, key, algorithm="RS256", headers={"kid": kid or key_id(key), "typ": "JWT"})


def jwk(key: rsa.RSAPrivateKey, kid: str | None = None) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid or key_id(key), "use": "sig", "alg": "RS256"}


class Issuer:
    """The issuer over HTTP: `/{tid}/v2.0/.well-known/openid-configuration` and `/discovery/v2.0/keys`."""

    def __init__(self, key: rsa.RSAPrivateKey | None = None):
        self.keys: list[rsa.RSAPrivateKey] = [key or new_key()]
        self.available = True
        self.jwks_requests = 0
        self._server: LoopbackServer | None = None

    @property
    def key(self) -> rsa.RSAPrivateKey:
        return self.keys[0]

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def issuer_template(self) -> str:
        return self.url + "/{tid}/v2.0"

    @property
    def jwks_uri(self) -> str:
        return self.url + "/discovery/v2.0/keys"

    def publish(self, key: rsa.RSAPrivateKey) -> None:
        """Add a key to the JWKS (rotation): tokens signed with it verify from now on."""
        self.keys.append(key)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [jwk(key) for key in self.keys]}

    def token(self, *, audience: str, tenant: str, email: str, key: rsa.RSAPrivateKey | None = None, **claims: Any):
        return mint(
            key or self.key,
            issuer_template=self.issuer_template,
            audience=audience,
            tenant=tenant,
            email=email,
            **claims,
        )

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Issuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/discovery/v2.0/keys":
                    issuer.jwks_requests += 1
                    if not issuer.available:
                        return self._send(503, {"error": "temporarily_unavailable"})
                    return self._send(200, issuer.jwks())
                parts = path.strip("/").split("/")
                if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                    return self._send(
                        200,
                        {
                            "issuer": issuer.issuer_template.replace("{tid}", parts[0]),
                            "jwks_uri": issuer.jwks_uri,
                            "id_token_signing_alg_values_supported": ["RS256"],
                            "token_endpoint": f"{issuer.url}/{parts[0]}/oauth2/v2.0/token",
                        },
                    )
                self._send(404, {"error": "not_found"})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = LoopbackServer((host, port), Handler).serve_in_background()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stop()

    def __enter__(self) -> Issuer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _settings() -> dict[str, str]:
    from shared.settings import read_values

    values = read_values()
    if not values.get("AUTH_CLIENT_ID"):
        example = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
        values = {**example, **{k: v for k, v in values.items() if v}}
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.issuer", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve OIDC metadata and the JWKS")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    token = commands.add_parser("token", help="print a bearer token the app accepts")
    token.add_argument("--email", required=True)
    token.add_argument("--name")
    token.add_argument("--tenant", help="tenant id (default AUTH_TENANT_ID)")
    token.add_argument("--scope", default=None, help="scp claim (default AUTH_REQUIRED_SCOPE)")
    token.add_argument("--minutes", type=int, default=60)
    args = parser.parse_args(argv)

    key = load_or_create_key()
    if args.command == "token":
        values = _settings()
        print(
            mint(
                key,
                issuer_template=values["AUTH_ISSUER"],
                audience=values["AUTH_CLIENT_ID"],
                tenant=args.tenant or values["AUTH_TENANT_ID"],
                email=args.email,
                name=args.name,
                scope=args.scope or values.get("AUTH_REQUIRED_SCOPE") or "access_as_user",
                lifetime=args.minutes * 60,
            )
        )
        return 0

    issuer = Issuer(key).start(args.host, args.port)
    print(f"issuer: {issuer.url} (JWKS {issuer.jwks_uri})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        issuer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

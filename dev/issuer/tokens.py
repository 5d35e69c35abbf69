"""The issuer's keys and the tokens it signs: Entra ID v2-shaped access and ID tokens, refresh tokens.

Access and ID tokens are RS256 JWTs under the key in the JWKS, shaped as Entra ID v2 issues them.
Refresh tokens and the sign-in session cookie are HS256 JWTs under a secret derived from that key:
they survive a restart of the issuer (the key is kept in `.local/`), and no RS256 verifier (the app)
can ever take one for an access token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[2]
KEY_FILE = ROOT / ".local" / "issuer" / "key.pem"
# The client id of the local SPA's app registration: `azp` in access tokens, `aud` in ID tokens.
SPA_CLIENT_ID = "0f1e2d3c-4b5a-4968-8776-5a4b3c2d1e0f"
# Microsoft Graph's app id: Entra ID issues a Graph token when a sign-in asks for no API scope.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


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
    """A stable oid per (tenant, address), so every sign-in and `token` call acts as the same user."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dev-issuer:{tenant}:{email.lower()}"))


def subject(tenant: str, email: str) -> str:
    return hashlib.sha256(f"{tenant}:{email}".encode()).hexdigest()[:43]


def display_name(email: str) -> str:
    return email.split("@")[0].replace(".", " ").title()


def client_info(tenant: str, email: str) -> str:
    """Entra's `client_info`: base64url JSON of the user's oid and tenant, MSAL's home account id."""
    document = json.dumps({"uid": user_object_id(tenant, email), "utid": tenant}, separators=(",", ":"))
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


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
    azp: str = SPA_CLIENT_ID,
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
        "sub": subject(tenant, email),
        "azp": azp,
        "azpacr": "0",
        "scp": scope,
        "name": name or display_name(email),
        "preferred_username": email,
    }
    return _sign(key, token_claims, claims, kid)


def mint_id_token(
    key: rsa.RSAPrivateKey,
    *,
    issuer_template: str,
    client_id: str,
    tenant: str,
    email: str,
    name: str,
    session_id: str,
    nonce: str | None = None,
    lifetime: int = 3600,
    now: float | None = None,
) -> str:
    """The ID token an SPA gets: audience the SPA's client id, the request's nonce echoed."""
    issued = int(time.time() if now is None else now)
    token_claims: dict[str, Any] = {
        "aud": client_id,
        "iss": issuer_template.replace("{tid}", tenant),
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "ver": "2.0",
        "tid": tenant,
        "oid": user_object_id(tenant, email),
        "sub": subject(tenant, email),
        "name": name,
        "preferred_username": email,
        "login_hint": email,
        "sid": session_id,
    }
    if nonce is not None:
        token_claims["nonce"] = nonce
    return _sign(key, token_claims, None, None)


def _sign(key: rsa.RSAPrivateKey, token_claims: dict[str, Any], overrides: dict[str, Any] | None, kid: str | None):
    for claim, value in (overrides or {}).items():
        if value is None:
            token_claims.pop(claim, None)
        else:
            token_claims[claim] = value
    return jwt.encode(token_claims, key, algorithm="RS256", headers={"kid": kid or key_id(key), "typ": "JWT"})


def jwk(key: rsa.RSAPrivateKey, kid: str | None = None) -> dict[str, Any]:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid or key_id(key), "use": "sig", "alg": "RS256"}


class Sealer:
    """Signs and opens the issuer's own opaque-to-clients values (refresh tokens, the session cookie)."""

    def __init__(self, key: rsa.RSAPrivateKey, audience: str):
        encoding, private = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8
        der = key.private_bytes(encoding, private, serialization.NoEncryption())
        self._secret = hashlib.sha256(b"dev-issuer-sealing\x00" + der).digest()
        self._audience = audience

    def seal(self, kind: str, claims: dict[str, Any], lifetime: int, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        body = {**claims, "use": kind, "aud": self._audience, "iat": issued, "exp": issued + lifetime}
        return jwt.encode(body, self._secret, algorithm="HS256")

    def open(self, kind: str, value: str) -> dict[str, Any] | None:
        """The claims of a value this issuer sealed as `kind`, or None (tampered, expired, other kind)."""
        try:
            claims = jwt.decode(value, self._secret, algorithms=["HS256"], audience=self._audience)
        except jwt.PyJWTError:
            return None
        return claims if claims.get("use") == kind else None

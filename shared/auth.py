"""Entra ID v2 access-token validation and the caller it yields (contract sections 1 and 2).

RS256 only; the signing key comes from the tenant's JWKS, cached, refetched for an unknown `kid`
at most once a minute so random kids cannot hammer the endpoint. An unreachable JWKS is a 503,
never a 401: the token may be perfectly good.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from shared import problems
from shared.settings import Settings

log = logging.getLogger(__name__)

CLOCK_SKEW_SECONDS = 300
JWKS_TIMEOUT_SECONDS = 2.0
JWKS_REFETCH_INTERVAL = 60.0
JWKS_FAILURE_BACKOFF = 5.0
JWKS_MAX_AGE = 24 * 3600.0


@dataclass(frozen=True)
class Caller:
    """Who is calling: (tenant, object id), display name and the addresses the token proves."""

    tenant_id: str
    object_id: str
    name: str
    verified_emails: tuple[str, ...]
    id: str

    @property
    def email(self) -> str | None:
        """The address shown to the caller: the UPN when it is one, else the verified email."""
        return self.verified_emails[0] if self.verified_emails else None

    def profile(self) -> dict[str, Any]:
        return {"id": self.id, "tenantId": self.tenant_id, "name": self.name, "email": self.email}


def public_id(key: bytes, *parts: str) -> str:
    """An HMAC of the parts under ID_HASH_KEY: stable, unlinkable and irreversible without the key."""
    digest = hmac.new(key, "\x1f".join(parts).encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode("ascii").rstrip("=")


def user_id(key: bytes, tenant_id: str, object_id: str) -> str:
    return public_id(key, "user", tenant_id, object_id)


class KeySet:
    """The issuer's signing keys by `kid`, fetched over HTTP and cached."""

    def __init__(
        self,
        uri: str,
        session: requests.Session,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._uri = uri
        self._session = session
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._failed_at: float | None = None
        self._lock = threading.Lock()

    def get(self, kid: str) -> Any:
        """The key for `kid`, or None when the issuer does not publish it."""
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > JWKS_MAX_AGE
            unknown = kid not in self._keys
            may_refetch = self._fetched_at is None or now - self._fetched_at >= JWKS_REFETCH_INTERVAL
            if stale or (unknown and may_refetch):
                self._refresh(now, keep_old=not unknown)
            return self._keys.get(kid)

    def _refresh(self, now: float, keep_old: bool) -> None:
        if self._failed_at is not None and now - self._failed_at < JWKS_FAILURE_BACKOFF:
            if keep_old and self._keys:
                return
            raise problems.Unavailable(
                "The sign-in keys cannot be fetched right now.", retry_after=JWKS_FAILURE_BACKOFF
            )
        try:
            response = self._session.get(self._uri, timeout=JWKS_TIMEOUT_SECONDS)
            response.raise_for_status()
            keys = {}
            for entry in response.json().get("keys", []):
                if entry.get("kty") == "RSA" and entry.get("kid") and entry.get("use", "sig") == "sig":
                    keys[entry["kid"]] = jwt.PyJWK(entry, algorithm="RS256").key
        except (requests.RequestException, ValueError, AttributeError, jwt.PyJWKError) as error:
            self._failed_at = now
            log.warning("JWKS fetch from %s failed: %s", self._uri, error.__class__.__name__)
            if keep_old and self._keys:
                return
            raise problems.Unavailable(
                "The sign-in keys cannot be fetched right now.", retry_after=JWKS_FAILURE_BACKOFF
            ) from None
        self._keys, self._fetched_at, self._failed_at = keys, now, None


class Authenticator:
    """Validates bearer tokens; a token validated once is remembered (by its hash, until it expires, a
    bounded number of them), so the SPA's next requests skip the decoding and the RSA check."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        remembered: int = 10_000,
    ):
        self._settings = settings
        self._keys = KeySet(settings.auth_jwks_uri, session or requests.Session(), clock)
        self._wall_clock = wall_clock
        self._remembered = remembered
        self._valid: OrderedDict[bytes, tuple[Caller, float]] = OrderedDict()
        self._valid_lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Caller:
        token = _bearer_token(authorization)
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        with self._valid_lock:
            known = self._valid.get(digest)
            if known is not None:
                caller, valid_until = known
                if self._wall_clock() < valid_until:
                    self._valid.move_to_end(digest)
                    return caller
                del self._valid[digest]
        caller, expires = self._validate(token)
        with self._valid_lock:
            # Until the moment the full check would refuse it: `exp` plus the allowed clock skew.
            self._valid[digest] = (caller, expires + CLOCK_SKEW_SECONDS)
            while len(self._valid) > self._remembered:
                self._valid.popitem(last=False)
        return caller

    def _validate(self, token: str) -> tuple[Caller, float]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise problems.Unauthorized("The bearer token is malformed.") from None
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise problems.Unauthorized("The bearer token must be signed with RS256 and name its key.")

        tenant = _guid(unverified.get("tid"))
        if tenant is None or tenant not in self._settings.auth_allowed_tenants:
            raise problems.Unauthorized("The token's tenant is not allowed to sign in.")
        key = self._keys.get(header["kid"])
        if key is None:
            raise problems.Unauthorized("The token is signed with an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self._settings.auth_client_id,
                issuer=self._settings.auth_issuer.replace("{tid}", tenant),
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "tid", "oid"]},
            )
        except jwt.ExpiredSignatureError:
            raise problems.Unauthorized("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise problems.Unauthorized("The token is not valid yet.") from None
        except jwt.PyJWTError:
            raise problems.Unauthorized("The token is not valid for this API.") from None

        scopes = claims.get("scp")
        if not isinstance(scopes, str) or self._settings.auth_required_scope not in scopes.split():
            raise problems.InsufficientScope(self._settings.auth_required_scope)
        object_id = _guid(claims.get("oid"))
        if object_id is None:
            raise problems.Unauthorized("The token does not identify a user.")
        name = claims.get("name") if isinstance(claims.get("name"), str) else ""
        caller = Caller(
            tenant_id=tenant,
            object_id=object_id,
            name=name[:200],
            verified_emails=verified_emails(claims),
            id=user_id(self._settings.id_hash_key, tenant, object_id),
        )
        return caller, float(claims["exp"])


def verified_emails(claims: dict[str, Any]) -> tuple[str, ...]:
    """Addresses the token proves, lower-cased, UPN first; `email` only when `xms_edov` is true.

    Never the `email` claim alone: any tenant can set an unverified one (the "nOAuth" takeover).
    """
    addresses: list[str] = []
    upn = claims.get("preferred_username")
    if isinstance(upn, str) and _looks_like_address(upn):
        addresses.append(upn.strip().lower())
    email = claims.get("email")
    verified = claims.get("xms_edov") in (True, "true", "1", 1)
    if verified and isinstance(email, str) and _looks_like_address(email) and email.strip().lower() not in addresses:
        addresses.append(email.strip().lower())
    return tuple(addresses)


def _looks_like_address(value: str) -> bool:
    local, _, domain = value.strip().rpartition("@")
    return bool(local) and "." in domain and len(value) <= 254


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise problems.Unauthorized("The Authorization header is missing.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise problems.Unauthorized("The Authorization header must use the Bearer scheme.")
    return token.strip()


def _guid(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None

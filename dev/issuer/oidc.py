"""The OpenID Connect authority: authorization code flow with PKCE (S256), refresh tokens, sign-out.

Shaped like Entra ID's v2 endpoints for one tenant-agnostic host, so MSAL.js (protocol mode OIDC)
signs in against it exactly as against Entra ID:

    GET  /{tenant}/v2.0/.well-known/openid-configuration
    GET  /{tenant}/oauth2/v2.0/authorize        the sign-in page (or, with prompt=none, the session)
    POST /{tenant}/oauth2/v2.0/authorize        the sign-in page's form
    POST /{tenant}/oauth2/v2.0/token            grant_type authorization_code | refresh_token
    GET  /{tenant}/oauth2/v2.0/logout           end the session, back to post_logout_redirect_uri

`{tenant}` is a tenant id, or `organizations` / `common` (the page then offers a tenant). Clients:
one single-page app (public client: no secret, PKCE, cross-origin redemption only, as Entra ID
requires of the SPA platform) whose redirect URIs are any path on its registered origins; and one
API whose App ID URI is `api://{client id}` and which exposes the given scopes.

Errors follow RFC 6749 with Entra's `error_codes` (AADSTS numbers): an unknown client or redirect URI
is an error page (never a redirect to an unregistered place), anything else goes back to the client.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from dev.issuer import page, tokens

CODE_LIFETIME = 600  # Entra's codes last about ten minutes
ACCESS_TOKEN_LIFETIME = 3600
SPA_REFRESH_LIFETIME = 24 * 3600  # Entra ID: fixed 24 h for the SPA platform, not extended by use
SESSION_LIFETIME = 24 * 3600
SESSION_COOKIE = "dev_issuer_session"
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
MULTI_TENANT = ("organizations", "common")
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Client:
    """The SPA's app registration: a public client with SPA-platform redirect URIs."""

    client_id: str
    redirect_origins: tuple[str, ...]

    def allows_redirect(self, uri: str) -> bool:
        parts = urlsplit(uri)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        return parts.scheme in ("http", "https") and not parts.fragment and origin in self.redirect_origins


@dataclass(frozen=True)
class Api:
    """The API's app registration: App ID URI `api://{client_id}`, the scopes it exposes."""

    client_id: str
    scopes: tuple[str, ...] = ("access_as_user",)

    @property
    def app_id_uri(self) -> str:
        return f"api://{self.client_id}"


@dataclass(frozen=True)
class User:
    tenant: str
    email: str
    name: str


@dataclass(frozen=True)
class Suggestion:
    """A test user the sign-in page offers with one click."""

    email: str
    name: str
    tenant: str | None = None  # None: the home tenant


@dataclass
class _Grant:
    """What an authorization code stands for."""

    client_id: str
    redirect_uri: str
    challenge: str
    resource_scopes: tuple[str, ...]
    oidc_scopes: tuple[str, ...]
    nonce: str | None
    user: User
    session_id: str
    family: str
    expires_at: float
    redeemed: bool = False


class OAuthError(Exception):
    """An RFC 6749 error, with Entra's AADSTS number in the description and in `error_codes`."""

    def __init__(self, error: str, code: int, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.code, self.description, self.status = error, code, description, status

    def body(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description}",
            "error_codes": [self.code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        }


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def html(cls, status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, text.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8", **(headers or {})})

    @classmethod
    def redirect(cls, location: str, status: int = 302, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, b"", {"Location": location, **(headers or {})})


class _PageError(Exception):
    """A request that must not be sent back to the client (unknown client or redirect URI)."""

    def __init__(self, status: int, code: int, description: str):
        super().__init__(description)
        self.status, self.code, self.description = status, code, description


@dataclass(frozen=True)
class _Authorization:
    """A validated authorization request."""

    query: str
    tenant_segment: str
    tenant: str | None  # None: the user picks one (organizations / common)
    redirect_uri: str
    response_mode: str
    state: str | None
    nonce: str | None
    challenge: str
    resource_scopes: tuple[str, ...]
    oidc_scopes: tuple[str, ...]
    prompt: str | None
    login_hint: str | None
    client_info: bool


class Authority:
    """The protocol, independent of HTTP; `base_url` is where the issuer is served."""

    def __init__(
        self,
        base_url: str,
        signing_key: Callable[[], rsa.RSAPrivateKey],
        *,
        client: Client,
        api: Api,
        home_tenant: str,
        tenants: dict[str, str],
        suggestions: tuple[Suggestion, ...],
        secure_cookies: bool,
        clock: Callable[[], float] = time.time,
    ):
        self.base_url = base_url
        self._key = signing_key
        self.client, self.api = client, api
        self.home_tenant, self.tenants, self.suggestions = home_tenant, tenants, suggestions
        self._secure = secure_cookies
        self._clock = clock
        self._sealer = tokens.Sealer(signing_key(), base_url)
        self._lock = threading.Lock()
        self._codes: dict[str, _Grant] = {}
        self._revoked_families: set[str] = set()

    @property
    def issuer_template(self) -> str:
        return self.base_url + "/{tid}/v2.0"

    # Discovery

    def metadata(self, segment: str) -> dict[str, Any] | None:
        if _tenant_of(segment) is None and segment not in MULTI_TENANT:
            return None
        base = f"{self.base_url}/{segment}"
        issuer_tenant = "{tenantid}" if segment in MULTI_TENANT else _tenant_of(segment)
        return {
            "issuer": f"{self.base_url}/{issuer_tenant}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "jwks_uri": f"{self.base_url}/discovery/v2.0/keys",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(OIDC_SCOPES),
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "claims_supported": [
                *("sub", "iss", "aud", "exp", "iat", "nbf", "nonce", "name", "preferred_username"),
                *("oid", "tid", "ver", "sid", "login_hint"),
            ],
            "request_uri_parameter_supported": False,
            "frontchannel_logout_supported": False,
        }

    # Authorization endpoint

    def authorize(self, segment: str, query: str, cookie: str | None) -> Reply:
        try:
            request = self._authorization(segment, query)
        except _PageError as error:
            return self._error_page(error)
        except _RedirectableError as error:
            return error.reply
        session = self._session(cookie)
        if request.prompt == "none":
            if session is None or (request.tenant is not None and session.tenant != request.tenant):
                return self._redirect_error(request, OAuthError("login_required", 50058, _NO_SESSION))
            return self._issue_code(request, session, new_session=False)
        return Reply.html(200, self._page(request, session), _PAGE_HEADERS)

    def sign_in(self, segment: str, form: dict[str, str], cookie: str | None) -> Reply:
        """The sign-in page's form: `query` (the original request) and the chosen account."""
        try:
            request = self._authorization(segment, form.get("query", ""))
        except _PageError as error:
            return self._error_page(error)
        except _RedirectableError as error:
            return error.reply
        if "cancel" in form:
            return self._redirect_error(request, OAuthError("access_denied", 65004, "The user declined to sign in."))
        email, name = form.get("email", "").strip(), form.get("name", "").strip()
        tenant = request.tenant or form.get("tenant", "").strip()
        if "account" in form:  # one click: the session's user or a suggested one, in their own tenant
            picked = self._account(form["account"], cookie)
            if picked is None:
                return self.authorize(segment, form.get("query", ""), cookie)
            email, name, tenant = picked.email, picked.name, request.tenant or picked.tenant
        problems: dict[str, str] = {}
        if not _ADDRESS.match(email) or len(email) > 254:
            problems["email"] = "Enter an email address, like alice@contoso.test."
        if len(name) > 200:
            problems["name"] = "Keep the name under 200 characters."
        if _tenant_of(tenant) is None:
            problems["tenant"] = "Choose a tenant, or enter a tenant ID (a GUID)."
        if problems:
            values = {"email": email, "name": name, "tenant": tenant}
            return Reply.html(400, self._page(request, self._session(cookie), values, problems), _PAGE_HEADERS)
        user = User(_tenant_of(tenant), email, name or tokens.display_name(email))
        return self._issue_code(request, user, new_session=True, status=303)

    def _account(self, email: str, cookie: str | None) -> User | None:
        session = self._session(cookie)
        if session is not None and session.email.lower() == email.lower():
            return session
        for suggestion in self.suggestions:
            if suggestion.email.lower() == email.lower():
                return User(suggestion.tenant or self.home_tenant, suggestion.email, suggestion.name)
        return None

    def _issue_code(self, request: _Authorization, user: User, *, new_session: bool, status: int = 302) -> Reply:
        now = self._clock()
        session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dev-issuer-session:{user.tenant}:{user.email.lower()}"))
        code = secrets.token_urlsafe(32)
        grant = _Grant(
            client_id=self.client.client_id,
            redirect_uri=request.redirect_uri,
            challenge=request.challenge,
            resource_scopes=request.resource_scopes,
            oidc_scopes=request.oidc_scopes,
            nonce=request.nonce,
            user=user,
            session_id=session_id,
            family=secrets.token_urlsafe(12),
            expires_at=now + CODE_LIFETIME,
        )
        with self._lock:
            self._codes = {k: g for k, g in self._codes.items() if g.expires_at > now}
            self._codes[code] = grant
        params = {"code": code}
        if request.client_info:
            params["client_info"] = tokens.client_info(user.tenant, user.email)
        if request.state is not None:
            params["state"] = request.state
        headers = {}
        if new_session:
            claims = {"tid": user.tenant, "email": user.email, "name": user.name, "sid": session_id}
            value = self._sealer.seal("session", claims, SESSION_LIFETIME, now)
            headers["Set-Cookie"] = self._cookie(value, SESSION_LIFETIME)
        return Reply.redirect(_respond_to(request, params), status, headers)

    def _session(self, cookie: str | None) -> User | None:
        value = _cookie_value(cookie, SESSION_COOKIE)
        claims = self._sealer.open("session", value) if value else None
        if claims is None:
            return None
        return User(claims["tid"], claims["email"], claims["name"])

    def _cookie(self, value: str, max_age: int) -> str:
        secure = "; Secure; SameSite=None" if self._secure else "; SameSite=Lax"
        return f"{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly{secure}"

    def _authorization(self, segment: str, query: str) -> _Authorization:
        """Validate in the order RFC 6749 asks: client and redirect URI first (never redirect to a stranger)."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        tenant = _tenant_of(segment)
        if tenant is None and segment not in MULTI_TENANT:
            raise _PageError(400, 90002, f"Tenant '{segment}' not found: use a tenant ID, organizations or common.")
        client_id = params.get("client_id", "")
        if client_id != self.client.client_id:
            raise _PageError(400, 700016, f"Application with identifier '{client_id}' was not found.")
        redirect_uri = params.get("redirect_uri", "")
        if not self.client.allows_redirect(redirect_uri):
            origins = ", ".join(self.client.redirect_origins)
            raise _PageError(
                400,
                50011,
                f"The redirect URI '{redirect_uri}' does not match the application's redirect URIs "
                f"(any path on {origins}).",
            )
        response_mode = params.get("response_mode") or "query"
        if response_mode not in ("query", "fragment"):
            raise _PageError(400, 900144, f"response_mode '{response_mode}' is not supported: use query or fragment.")
        request = _Authorization(
            query=query,
            tenant_segment=segment,
            tenant=tenant,
            redirect_uri=redirect_uri,
            response_mode=response_mode,
            state=params.get("state"),
            nonce=params.get("nonce") or None,
            challenge=params.get("code_challenge", ""),
            resource_scopes=(),
            oidc_scopes=(),
            prompt=params.get("prompt") or None,
            login_hint=params.get("login_hint") or None,
            client_info=params.get("client_info") == "1",
        )
        try:
            if params.get("response_type") != "code":
                raise OAuthError("unsupported_response_type", 700054, "response_type must be 'code'.")
            if not request.challenge:
                raise OAuthError("invalid_request", 9002325, "Proof Key for Code Exchange is required.")
            if params.get("code_challenge_method") != "S256":
                raise OAuthError("invalid_request", 501491, "code_challenge_method must be S256.")
            if not _CHALLENGE.match(request.challenge):
                raise OAuthError("invalid_request", 501491, "code_challenge must be a base64url SHA-256 digest.")
            resource, oidc = self.scopes(params.get("scope", ""))
        except OAuthError as error:
            raise _RedirectableError(self._redirect_error(request, error)) from None
        return dataclasses.replace(request, resource_scopes=resource, oidc_scopes=oidc)

    def scopes(self, value: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Split requested scopes into the API's (as granted, full names) and OpenID Connect's."""
        resource: list[str] = []
        oidc: list[str] = []
        prefix = self.api.app_id_uri + "/"
        for scope in value.split():
            if scope in OIDC_SCOPES:
                oidc.append(scope)
            elif scope == prefix + ".default":
                resource.extend(prefix + name for name in self.api.scopes)
            elif scope.startswith(prefix) and scope[len(prefix) :] in self.api.scopes:
                resource.append(scope)
            else:
                raise OAuthError(
                    "invalid_scope",
                    70011,
                    f"The scope '{scope}' does not exist: this API exposes "
                    + ", ".join(prefix + name for name in self.api.scopes)
                    + f"; OpenID Connect scopes are {', '.join(OIDC_SCOPES)}.",
                )
        return tuple(dict.fromkeys(resource)), tuple(dict.fromkeys(oidc))

    def _redirect_error(self, request: _Authorization, error: OAuthError) -> Reply:
        params = {"error": error.error, "error_description": f"AADSTS{error.code}: {error.description}"}
        if request.state is not None:
            params["state"] = request.state
        return Reply.redirect(_respond_to(request, params))

    def _error_page(self, error: _PageError) -> Reply:
        return Reply.html(error.status, page.error(f"AADSTS{error.code}", error.description), _PAGE_HEADERS)

    def _page(
        self,
        request: _Authorization,
        session: User | None,
        values: dict[str, str] | None = None,
        problems: dict[str, str] | None = None,
    ) -> str:
        tenant_choices = None
        if request.tenant is None:
            tenant_choices = dict(self.tenants)
        suggestions = [
            (s.email, s.name, s.tenant or self.home_tenant)
            for s in self.suggestions
            if request.tenant is None or (s.tenant or self.home_tenant) == request.tenant
        ]
        values = values or {}
        if not values.get("email") and request.login_hint and _ADDRESS.match(request.login_hint):
            values = {**values, "email": request.login_hint}
        current = None
        if session is not None and (request.tenant is None or session.tenant == request.tenant):
            current = (session.email, session.name)
        return page.sign_in(
            query=request.query,
            tenant=request.tenant,
            tenant_name=self.tenants.get(request.tenant or "", ""),
            tenant_choices=tenant_choices,
            home_tenant=self.home_tenant,
            suggestions=suggestions,
            current=current,
            values=values,
            problems=problems or {},
        )

    # Token endpoint

    def token(self, segment: str, form: dict[str, str], origin: str | None) -> tuple[int, dict[str, Any]]:
        try:
            if _tenant_of(segment) is None and segment not in MULTI_TENANT:
                raise OAuthError("invalid_request", 90002, f"Tenant '{segment}' not found.")
            return 200, self._grant(form, origin)
        except OAuthError as error:
            return error.status, error.body()

    def _grant(self, form: dict[str, str], origin: str | None) -> dict[str, Any]:
        client_id = form.get("client_id", "")
        if client_id != self.client.client_id:
            raise OAuthError("unauthorized_client", 700016, f"Application with identifier '{client_id}' was not found.")
        if not origin:
            raise OAuthError(
                "invalid_request",
                9002327,
                "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via "
                "cross-origin requests (send an Origin header).",
            )
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._redeem_code(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        raise OAuthError("unsupported_grant_type", 70003, f"The grant type '{grant_type}' is not supported.")

    def _redeem_code(self, form: dict[str, str]) -> dict[str, Any]:
        code = form.get("code", "")
        verifier = form.get("code_verifier", "")
        resource, oidc = self.scopes(form.get("scope", ""))
        now = self._clock()
        with self._lock:
            grant = self._codes.get(code)
            if grant is None or grant.expires_at <= now:
                raise OAuthError("invalid_grant", 70008, "The authorization code is invalid or has expired.")
            if grant.redeemed:
                # RFC 6749 section 10.5: a replayed code revokes the tokens it was first redeemed for.
                self._revoked_families.add(grant.family)
                raise OAuthError("invalid_grant", 54005, "The authorization code was already redeemed.")
            if form.get("redirect_uri", "") != grant.redirect_uri:
                raise OAuthError("invalid_grant", 50148, "The redirect_uri differs from the code's redirect URI.")
            if not _VERIFIER.match(verifier):
                raise OAuthError("invalid_request", 50148, "code_verifier is missing or malformed (43-128 characters).")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")
            if not secrets.compare_digest(digest, grant.challenge):
                raise OAuthError("invalid_grant", 501481, "The code_verifier does not match the code_challenge.")
            if not set(resource) <= set(grant.resource_scopes):
                raise OAuthError("invalid_grant", 70000, "The scopes differ from those the code was issued for.")
            grant.redeemed = True
        return self._tokens(
            grant.user,
            grant.resource_scopes,
            grant.oidc_scopes or oidc,
            grant.nonce,
            grant.session_id,
            grant.family,
            now + SPA_REFRESH_LIFETIME,
            form,
        )

    def _refresh(self, form: dict[str, str]) -> dict[str, Any]:
        claims = self._sealer.open("refresh", form.get("refresh_token", ""))
        if claims is None or claims["family"] in self._revoked_families:
            raise OAuthError("invalid_grant", 700084, "The refresh token is invalid, expired or revoked.")
        if claims["azp"] != form.get("client_id"):
            raise OAuthError("invalid_grant", 70000, "The refresh token was issued to another client.")
        resource, oidc = self.scopes(form.get("scope", ""))
        user = User(claims["tid"], claims["email"], claims["name"])
        granted = resource or tuple(claims["scp"])
        oidc = oidc or ("openid", "offline_access")
        return self._tokens(user, granted, oidc, None, claims["sid"], claims["family"], claims["exp"], form)

    def _tokens(
        self,
        user: User,
        resource_scopes: tuple[str, ...],
        oidc_scopes: tuple[str, ...],
        nonce: str | None,
        session_id: str,
        family: str,
        session_end: float,
        form: dict[str, str],
    ) -> dict[str, Any]:
        now = self._clock()
        key = self._key()
        if resource_scopes:
            audience = self.api.client_id
            scp = " ".join(scope.rsplit("/", 1)[1] for scope in resource_scopes)
            granted = " ".join(resource_scopes)
        else:  # Entra ID answers a sign-in without an API scope with a token for Microsoft Graph
            audience, scp = tokens.GRAPH_APP_ID, "openid profile email User.Read"
            granted = scp
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": granted,
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "ext_expires_in": ACCESS_TOKEN_LIFETIME,
            "access_token": tokens.mint(
                key,
                issuer_template=self.issuer_template,
                audience=audience,
                tenant=user.tenant,
                email=user.email,
                name=user.name,
                scope=scp,
                lifetime=ACCESS_TOKEN_LIFETIME,
                now=now,
                azp=self.client.client_id,
            ),
        }
        if "openid" in oidc_scopes:
            body["id_token"] = tokens.mint_id_token(
                key,
                issuer_template=self.issuer_template,
                client_id=self.client.client_id,
                tenant=user.tenant,
                email=user.email,
                name=user.name,
                session_id=session_id,
                nonce=nonce,
                now=now,
            )
        if "offline_access" in oidc_scopes:
            claims = {
                "tid": user.tenant,
                "email": user.email,
                "name": user.name,
                "azp": self.client.client_id,
                "scp": list(resource_scopes),
                "sid": session_id,
                "family": family,
            }
            lifetime = int(session_end - now)
            body["refresh_token"] = self._sealer.seal("refresh", claims, lifetime, now)
            body["refresh_token_expires_in"] = lifetime
        if form.get("client_info") == "1":
            body["client_info"] = tokens.client_info(user.tenant, user.email)
        return body

    # Sign-out

    def end_session(self, query: str) -> Reply:
        params = dict(parse_qsl(query, keep_blank_values=True))
        target = params.get("post_logout_redirect_uri", "")
        clear = {"Set-Cookie": self._cookie("", 0)}
        if target and self.client.allows_redirect(target):
            if params.get("state"):
                target += ("&" if "?" in target else "?") + urlencode({"state": params["state"]})
            return Reply.redirect(target, headers=clear)
        return Reply.html(200, page.signed_out(), {**_PAGE_HEADERS, **clear})


class _RedirectableError(Exception):
    def __init__(self, reply: Reply):
        super().__init__("redirect")
        self.reply = reply


_NO_SESSION = "The user is not signed in here (no session); sign in interactively."
# The page may be framed by the SPA for MSAL's silent (prompt=none) requests, so no frame-ancestors limit.
_PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _respond_to(request: _Authorization, params: dict[str, str]) -> str:
    separator = "#" if request.response_mode == "fragment" else ("&" if "?" in request.redirect_uri else "?")
    return request.redirect_uri + separator + urlencode(params)


def _tenant_of(segment: str) -> str | None:
    try:
        return str(uuid.UUID(segment)) if len(segment) == 36 else None
    except ValueError:
        return None


def _cookie_value(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None

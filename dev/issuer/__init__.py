"""A local OpenID Connect issuer that signs users in as Entra ID v2 does (never deployed).

    python -m dev.issuer serve [--port 7072] [--tls-cert PEM --hostname localhost]
    python -m dev.issuer token --email EMAIL [--name NAME] [--tenant TID]

`serve` is the authority an SPA signs in against with MSAL.js (authorization code with PKCE, a
sign-in page to pick a test user, refresh tokens, sign-out; see `oidc`), plus the metadata and JWKS
the app verifies tokens with. `token` prints an access token for scripts and curl. Both share one
RSA key kept in `.local/issuer/key.pem`, so a token printed by `token` verifies against the JWKS
served by `serve`; the audience, tenant and issuer come from the settings the app reads
(environment over local.settings.json), so the app accepts the tokens. Tests use `Issuer`
in-process: several keys (rotation), any claim overridden, and a switch that makes the JWKS fail.
"""

from dev.issuer.server import FABRIKAM, Issuer
from dev.issuer.tokens import (
    KEY_FILE,
    SPA_CLIENT_ID,
    jwk,
    key_id,
    load_or_create_key,
    mint,
    new_key,
    user_object_id,
)

DEFAULT_PORT = 7072

__all__ = [
    "DEFAULT_PORT",
    "FABRIKAM",
    "KEY_FILE",
    "SPA_CLIENT_ID",
    "Issuer",
    "jwk",
    "key_id",
    "load_or_create_key",
    "mint",
    "new_key",
    "user_object_id",
]

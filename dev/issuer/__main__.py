"""`python -m dev.issuer serve | token` (see the package's docstring)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import ssl
import sys
import threading

from dev.issuer import DEFAULT_PORT, Issuer, load_or_create_key, mint
from dev.issuer.server import FABRIKAM, ROOT, SPA_ORIGINS


def _settings() -> dict[str, str]:
    from shared.settings import read_values

    values = read_values()
    if not values.get("AUTH_CLIENT_ID"):
        example = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
        values = {**example, **{k: v for k, v in values.items() if v}}
    return values


def _tenants(values: dict[str, str]) -> dict[str, str]:
    home = values["AUTH_TENANT_ID"]
    tenants = {home: "Contoso (home tenant)"}
    for number, tenant in enumerate((t.strip() for t in values.get("AUTH_ALLOWED_TENANTS", "").split(",")), 1):
        if tenant and tenant not in tenants:
            tenants[tenant] = f"Allowed tenant {number}"
    tenants.setdefault(FABRIKAM, "Fabrikam (not allowed)")
    return tenants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.issuer", description="A local OpenID Connect issuer.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the OpenID Connect endpoints and the JWKS")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this private key and certificate chain")
    serve.add_argument("--hostname", help="the host name in the issuer's URLs (default: --host)")
    serve.add_argument(
        "--redirect-origin",
        action="append",
        metavar="ORIGIN",
        help=f"an origin of the SPA's redirect URIs (repeatable; default {', '.join(SPA_ORIGINS)})",
    )
    token = commands.add_parser("token", help="print a bearer token the app accepts")
    token.add_argument("--email", required=True)
    token.add_argument("--name")
    token.add_argument("--tenant", help="tenant id (default AUTH_TENANT_ID)")
    token.add_argument("--scope", default=None, help="scp claim (default AUTH_REQUIRED_SCOPE)")
    token.add_argument("--minutes", type=int, default=60)
    args = parser.parse_args(argv)

    key = load_or_create_key()
    values = _settings()
    scope = values.get("AUTH_REQUIRED_SCOPE") or "access_as_user"
    if args.command == "token":
        print(
            mint(
                key,
                issuer_template=values["AUTH_ISSUER"],
                audience=values["AUTH_CLIENT_ID"],
                tenant=args.tenant or values["AUTH_TENANT_ID"],
                email=args.email,
                name=args.name,
                scope=args.scope or scope,
                lifetime=args.minutes * 60,
            )
        )
        return 0

    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert)
    issuer = Issuer(
        key,
        api_client_id=values["AUTH_CLIENT_ID"],
        api_scopes=(scope,),
        home_tenant=values["AUTH_TENANT_ID"],
        tenants=_tenants(values),
        redirect_origins=tuple(args.redirect_origin or SPA_ORIGINS),
        tls=context,
        hostname=args.hostname,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with issuer.start(args.host, args.port):
        print(f"issuer: {issuer.url} (authority {issuer.authority_url()}, JWKS {issuer.jwks_uri})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

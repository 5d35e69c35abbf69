"""CORS as Core Tools applies it to the whole host: ASP.NET Core's CorsMiddleware with the policy
`WithOrigins(Host.CORS).AllowAnyHeader().AllowAnyMethod()[.AllowCredentials()]`, origins from `Host.CORS` in
`local.settings.json` or `--cors`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dev.host.diagnostics import DevHostError


class Cors:
    """The policy: which origins are allowed, and the CORS headers an answer to one of them carries."""

    def __init__(self, origins: Iterable[str], credentials: bool):
        cleaned = [origin.strip() for origin in origins if origin.strip()]
        self.any_origin = "*" in cleaned
        # CorsPolicyBuilder.WithOrigins normalizes configured origins to lower case.
        self.origins = frozenset(origin.lower() for origin in cleaned if origin != "*")
        self.credentials = credentials
        if self.any_origin and credentials:
            raise DevHostError("Host.CORS '*' cannot be combined with Host.CORSCredentials (ASP.NET Core refuses it)")
        self.vary = (not self.any_origin and len(self.origins) > 1) or (self.any_origin and credentials)

    def allowed(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    def headers(self, origin: str, preflight: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        """CorsService.ApplyResult: nothing at all for an origin that is not allowed."""
        if not self.allowed(origin):
            return []
        out = [("Access-Control-Allow-Origin", "*" if self.any_origin else origin)]
        if self.credentials:
            out.append(("Access-Control-Allow-Credentials", "true"))
        if preflight is not None:
            requested = [h.strip() for h in (preflight.get("Access-Control-Request-Headers") or "").split(",")]
            requested = [h for h in requested if h]
            if requested:
                out.append(("Access-Control-Allow-Headers", ",".join(requested)))
            out.append(("Access-Control-Allow-Methods", preflight.get("Access-Control-Request-Method") or ""))
            # No Access-Control-Max-Age: Core Tools' policy sets no PreflightMaxAge.
        if self.vary:
            out.append(("Vary", "Origin"))
        return out


def with_cors(headers: list[tuple[str, str]], cors: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A response's headers with the CORS ones: those replace the function's own, Vary is added beside."""
    if not cors:
        return headers
    replaced = {name.lower() for name, _ in cors if name.lower() != "vary"}
    return [(n, v) for n, v in headers if n.lower() not in replaced] + cors

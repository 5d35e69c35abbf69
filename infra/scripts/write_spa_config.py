"""Write the SPA's runtime configuration, /config.json, from this deployment's outputs.

Run by infra/scripts/predeploy-web.sh (the azd predeploy hook of the `web` service) in web/, after
azd has built web/dist and provisioned infra/main.bicep, with the azd environment (main.bicep's
outputs among it) in os.environ. The SPA reads the file at its root at start-up:

    {"authority", "clientId", "apiBaseUrl", "scopes": [...], "provider"}

Standard library only. Exits 1 with one line per missing output (provision first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

# Output -> what it is, for the message when it is missing.
REQUIRED = {
    "AUTH_CLIENT_ID": "the API app registration's client ID",
    "AUTH_TENANT_ID": "the home tenant",
    "AUTH_SCOPE_URI": "the scope the SPA requests",
    "API_BASE_URL": "the function app's address",
}
PUBLIC_CLOUD_LOGIN = "https://login.microsoftonline.com/"


def missing(env: Mapping[str, str]) -> list[str]:
    absent = [(name, why) for name, why in REQUIRED.items() if not env.get(name)]
    return [f"{name} is missing ({why}): run azd provision first" for name, why in absent]


def config(env: Mapping[str, str]) -> dict[str, object]:
    tenant = env["AUTH_TENANT_ID"]
    allowed = {t.strip().lower() for t in env.get("AUTH_ALLOWED_TENANTS", "").split(",") if t.strip()}
    # Users of other tenants sign in through the organizations endpoint; the API checks the tenant.
    several = env.get("APP_SIGN_IN_AUDIENCE") == "AzureADMultipleOrgs" or bool(allowed - {tenant.lower()})
    host = (env.get("AUTH_AUTHORITY_HOST") or PUBLIC_CLOUD_LOGIN).rstrip("/")
    return {
        "authority": f"{host}/{'organizations' if several else tenant}",
        "clientId": env["AUTH_CLIENT_ID"],
        "apiBaseUrl": env["API_BASE_URL"].rstrip("/"),
        "scopes": [env["AUTH_SCOPE_URI"]],
        "provider": env.get("VIDEO_PROVIDER") or "dyte",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=Path("dist"), help="the SPA's build output (web/dist)")
    args = parser.parse_args(argv)
    problems = missing(os.environ)
    if not args.dist.is_dir():
        problems.append(f"{args.dist.resolve()} does not exist: the SPA was not built (npm run build in web/)")
    for line in problems:
        print(f"predeploy (web): {line}", file=sys.stderr)
    if problems:
        return 1
    target = args.dist / "config.json"
    target.write_text(json.dumps(config(os.environ), indent=2) + "\n", encoding="utf-8")
    print(f"predeploy (web): wrote {target} for {os.environ['API_BASE_URL']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

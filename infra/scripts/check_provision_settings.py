"""Stop `azd up` before it creates anything when a setting the deployment needs is missing or invalid.

Run by infra/scripts/preprovision.sh (the azd preprovision hook) with the azd environment in
os.environ. Prints one line per problem, naming the setting and how to set it, and exits 1; exits 0
when the deployment has what it needs. Standard library only: it runs before the project's virtual
environment exists.

A provider or mail secret is needed once: the post-provision hook moves it into Key Vault, clears it
from the azd environment and records the Key Vault secret's name in KEY_VAULT_SECRETS, so later
provisions do not ask for it again.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

# The @allowed values of the matching main.bicep parameters (tests/infra/test_deploy_hooks.py keeps
# them equal).
ALLOWED = {
    "VIDEO_PROVIDER": ("dyte", "realtimekit"),
    "MAIL_CREDENTIAL_TYPE": ("secret", "certificate"),
    "APP_SIGN_IN_AUDIENCE": ("AzureADMyOrg", "AzureADMultipleOrgs"),
    "AZURE_PRINCIPAL_TYPE": ("User", "ServicePrincipal"),
    "STORAGE_SKU_NAME": (
        "Standard_LRS",
        "Standard_ZRS",
        "Standard_GRS",
        "Standard_GZRS",
        "Standard_RAGRS",
        "Standard_RAGZRS",
    ),
    "STATIC_WEB_APP_LOCATION": ("westus2", "centralus", "eastus2", "westeurope", "eastasia"),
}
BOOLEANS = ("DEPLOY_APP_REGISTRATION", "WRITE_ID_HASH_KEY")
INTEGERS = {"RECORDING_RETENTION_DAYS": (1, 3650)}
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ORIGIN = re.compile(r"^https?://[^/\s]+$")


def problems(env: Mapping[str, str]) -> list[str]:
    def value(name: str) -> str:
        return env.get(name, "").strip()

    found: list[str] = []
    stored = {name.strip() for name in value("KEY_VAULT_SECRETS").split(",") if name.strip()}

    def need(name: str, why: str, example: str) -> None:
        if not value(name):
            found.append(f"{name} is missing: {why} (azd env set {name} {example})")

    def need_secret(name: str, secret: str, why: str, example: str) -> None:
        if secret not in stored:
            need(name, f"{why}; it is moved into Key Vault secret {secret} after the first provision", example)

    for name, allowed in ALLOWED.items():
        if value(name) and value(name) not in allowed:
            found.append(f"{name} is {value(name)!r}: use one of {', '.join(allowed)}")
    for name in BOOLEANS:
        if value(name) and value(name).lower() not in ("true", "false"):
            found.append(f"{name} is {value(name)!r}: use true or false")
    for name, (low, high) in INTEGERS.items():
        if value(name) and not (value(name).isdigit() and low <= int(value(name)) <= high):
            found.append(f"{name} is {value(name)!r}: use a whole number from {low} to {high}")

    # The video provider: the one for new meetings must be configured; a provider configured for
    # older meetings needs its secret too (its app setting is a Key Vault reference).
    provider = value("VIDEO_PROVIDER") or "dyte"
    if provider == "dyte" or value("DYTE_ORG_ID"):
        why = "VIDEO_PROVIDER=dyte needs it" if provider == "dyte" else "DYTE_ORG_ID is set, so Dyte needs it"
        need("DYTE_ORG_ID", why, "<Dyte organization ID>")
        need_secret("DYTE_API_KEY", "dyte-api-key", why, "<Dyte API key>")
    if provider == "realtimekit" or value("REALTIMEKIT_ACCOUNT_ID"):
        why = (
            "VIDEO_PROVIDER=realtimekit needs it"
            if provider == "realtimekit"
            else "REALTIMEKIT_ACCOUNT_ID is set, so RealtimeKit needs it"
        )
        need("REALTIMEKIT_ACCOUNT_ID", why, "<Cloudflare account ID>")
        need("REALTIMEKIT_APP_ID", why, "<RealtimeKit app ID>")
        need_secret("REALTIMEKIT_API_TOKEN", "realtimekit-api-token", why, "<Cloudflare API token>")

    # Entra ID: an existing API registration, or one the deployment creates.
    if value("DEPLOY_APP_REGISTRATION").lower() != "true":
        need(
            "AUTH_CLIENT_ID",
            "the API's app registration (the token audience); or azd env set DEPLOY_APP_REGISTRATION true",
            "<client ID>",
        )
        if value("AUTH_CLIENT_ID") and not GUID.match(value("AUTH_CLIENT_ID")):
            found.append(f"AUTH_CLIENT_ID is {value('AUTH_CLIENT_ID')!r}: use the registration's client ID (a GUID)")
    for tenant in filter(None, (t.strip() for t in value("AUTH_ALLOWED_TENANTS").split(","))):
        if not GUID.match(tenant):
            found.append(f"AUTH_ALLOWED_TENANTS lists {tenant!r}: use comma-separated tenant IDs (GUIDs)")

    # Invitation email is optional; once MAIL_SENDER is set, the rest of it is needed.
    if value("MAIL_SENDER"):
        why = "MAIL_SENDER is set, so invitation email needs it"
        need("MAIL_CLIENT_ID", why, "<client ID of the app with Mail.Send>")
        certificate = value("MAIL_CREDENTIAL_TYPE") == "certificate"
        secret = "mail-client-certificate" if certificate else "mail-client-secret"
        example = "<PEM with the private key and certificate>" if certificate else "<client secret>"
        need_secret("MAIL_CLIENT_CREDENTIAL", secret, why, example)

    for name in ("APP_BASE_URL",):
        if value(name) and not ORIGIN.match(value(name)):
            found.append(f"{name} is {value(name)!r}: use a bare origin such as https://app.example.com (no path)")
    return found


def main() -> int:
    found = problems(os.environ)
    for line in found:
        print(f"preprovision: {line}", file=sys.stderr)
    if found:
        print(
            f"preprovision: {len(found)} setting(s) to fix before provisioning (nothing was created); "
            "see docs/deploy.md",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write local.settings.json for running the app locally against the deployed Azure resources.

Called by infra/scripts/postprovision.sh (the azd post-provision hook), which runs with the azd
environment in os.environ: main.bicep's outputs are there under the setting names they feed
(VIDEO_PROVIDER, AUTH_CLIENT_ID, ...). Secrets are read from Key Vault with the Azure CLI
(`az keyvault secret show`) under the developer's own sign-in, which main.bicep grants Key Vault
Secrets Officer when principalId is set (azd passes AZURE_PRINCIPAL_ID).

The keys are exactly those of local.settings.json.example (which tests/infra keep equal to
shared.settings.SETTING_NAMES plus FUNCTIONS_WORKER_RUNTIME, and which this script must know
every one of). Differences from the Azure app settings, on purpose:
- storage is identity-based through the developer's credential (AzureWebJobsStorage empty,
  AzureWebJobsStorage__accountName and the service URIs set from the account's endpoints), and
  TABLE_PREFIX is LOCAL_TABLE_PREFIX (default "local") so a local run gets its own tables and
  queues instead of taking queue messages from the deployed app; set LOCAL_TABLE_PREFIX= (empty)
  to share the deployed data deliberately;
- AUTH_ISSUER / AUTH_JWKS_URI are empty: tokens come from Entra ID, as in Azure.

An existing local.settings.json is moved to --backup-dir (gitignored .local/) first.
Standard library only: it must run before the project's virtual environment exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

# Settings whose value comes straight from an azd environment variable of the same name.
FROM_ENVIRONMENT = (
    "VIDEO_PROVIDER",
    "DYTE_ORG_ID",
    "DYTE_API_BASE_URL",
    "REALTIMEKIT_ACCOUNT_ID",
    "REALTIMEKIT_APP_ID",
    "REALTIMEKIT_API_BASE_URL",
    "PRESET_HOST",
    "PRESET_PARTICIPANT",
    "PRESET_GUEST",
    "WEBHOOK_PUBLIC_KEY_URL",
    "REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL",
    "AUTH_TENANT_ID",
    "AUTH_CLIENT_ID",
    "AUTH_REQUIRED_SCOPE",
    "AUTH_ALLOWED_TENANTS",
    "JOIN_EARLY_MINUTES",
    "JOIN_GRACE_MINUTES",
    "APP_BASE_URL",
    "MAIL_SENDER",
    "MAIL_TENANT_ID",
    "MAIL_CLIENT_ID",
    "MAIL_AUTHORITY_HOST",
    "GRAPH_BASE_URL",
    "EVENT_RETENTION_DAYS",
    "MEETING_RETENTION_DAYS",
    "RECORDING_RETENTION_DAYS",
)

# Setting -> Key Vault secret name (the same names infra/modules/appsettings.bicep references).
SECRETS = {
    "DYTE_API_KEY": "dyte-api-key",
    "REALTIMEKIT_API_TOKEN": "realtimekit-api-token",
    "ID_HASH_KEY": "id-hash-key",
    "MAIL_CLIENT_SECRET": "mail-client-secret",
    "MAIL_CLIENT_CERTIFICATE": "mail-client-certificate",
}

# Set to these values whatever the example says.
FIXED = {
    "FUNCTIONS_WORKER_RUNTIME": "python",
    "AzureWebJobsStorage": "",
    "AUTH_ISSUER": "",
    "AUTH_JWKS_URI": "",
    "WEBHOOK_PUBLIC_KEY": "",
    "REALTIMEKIT_WEBHOOK_PUBLIC_KEY": "",
}


def wanted_secrets(env: Mapping[str, str]) -> list[str]:
    """The settings whose secret exists in the vault, judged as appsettings.bicep does."""
    names = ["ID_HASH_KEY"]
    if env.get("DYTE_ORG_ID"):
        names.append("DYTE_API_KEY")
    if env.get("REALTIMEKIT_ACCOUNT_ID"):
        names.append("REALTIMEKIT_API_TOKEN")
    if env.get("MAIL_SENDER"):
        certificate = env.get("MAIL_CREDENTIAL_TYPE") == "certificate"
        names.append("MAIL_CLIENT_CERTIFICATE" if certificate else "MAIL_CLIENT_SECRET")
    return names


# Set from the deployment's own names rather than from a setting of the same name.
FROM_DEPLOYMENT = {
    "AzureWebJobsStorage__accountName": "AZURE_STORAGE_ACCOUNT_NAME",
    "AzureWebJobsStorage__blobServiceUri": "AZURE_STORAGE_BLOB_ENDPOINT",
    "AzureWebJobsStorage__queueServiceUri": "AZURE_STORAGE_QUEUE_ENDPOINT",
    "AzureWebJobsStorage__tableServiceUri": "AZURE_STORAGE_TABLE_ENDPOINT",
    "TABLE_PREFIX": "LOCAL_TABLE_PREFIX",
}
DEFAULTS = {"LOCAL_TABLE_PREFIX": "local"}


def handled() -> set[str]:
    """Every setting this script knows how to fill."""
    return set(FROM_ENVIRONMENT) | set(SECRETS) | set(FIXED) | set(FROM_DEPLOYMENT)


def build_values(
    example_values: Mapping[str, str], env: Mapping[str, str], secrets: Mapping[str, str]
) -> dict[str, str]:
    """The Values object: the example's keys (and order), filled from FIXED, Key Vault and azd.

    Nothing is taken from the example's values, which point at the local stand-ins; a setting
    Azure leaves empty stays empty here too, so the app uses its default.
    """
    values: dict[str, str] = {}
    for name in example_values:
        if name in FIXED:
            values[name] = FIXED[name]
        elif name in SECRETS:
            values[name] = secrets.get(name, "")
        elif name in FROM_DEPLOYMENT:
            source = FROM_DEPLOYMENT[name]
            values[name] = env.get(source, DEFAULTS.get(source, ""))
        else:
            values[name] = env.get(name, "")
    return values


def az_secret_reader(vault: str, attempts: int = 6, delay: float = 10.0) -> Callable[[str], str | None]:
    """Read a secret with the Azure CLI, retrying while a fresh role assignment propagates."""

    def read(secret_name: str) -> str | None:
        command = [
            "az",
            "keyvault",
            "secret",
            "show",
            "--vault-name",
            vault,
            "--name",
            secret_name,
            "--query",
            "value",
            "--output",
            "tsv",
        ]
        for attempt in range(attempts):
            # A fixed argument list, no shell: the vault and secret names come from azd outputs.
            result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
            if result.returncode == 0:
                return result.stdout.rstrip("\r\n")
            if "SecretNotFound" in result.stderr:
                return None
            if attempt + 1 < attempts:
                time.sleep(delay)
        print(
            f"write_local_settings: could not read secret {secret_name} from {vault}: "
            f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'az failed'}",
            file=sys.stderr,
        )
        return None

    return read


def read_secrets(env: Mapping[str, str], reader: Callable[[str], str | None] | None) -> dict[str, str]:
    secrets: dict[str, str] = {}
    if reader is None:
        return secrets
    for setting in wanted_secrets(env):
        value = reader(SECRETS[setting])
        if value is None:
            print(
                f"write_local_settings: {setting} left empty (secret {SECRETS[setting]} not readable)", file=sys.stderr
            )
        else:
            secrets[setting] = value
    return secrets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=Path("local.settings.json.example"))
    parser.add_argument("--output", type=Path, default=Path("local.settings.json"))
    parser.add_argument("--backup-dir", type=Path, default=Path(".local"))
    args = parser.parse_args(argv)

    env = os.environ
    if not env.get("AZURE_STORAGE_ACCOUNT_NAME"):
        print(
            "write_local_settings: AZURE_STORAGE_ACCOUNT_NAME is not set (run from the azd hook "
            'or after `eval "$(azd env get-values)"`).',
            file=sys.stderr,
        )
        return 1

    example = json.loads(args.example.read_text(encoding="utf-8"))
    vault = env.get("AZURE_KEY_VAULT_NAME", "")
    reader = az_secret_reader(vault) if vault and shutil.which("az") else None
    if reader is None:
        print(
            "write_local_settings: Azure CLI or AZURE_KEY_VAULT_NAME missing; secrets are left empty.", file=sys.stderr
        )

    document = dict(example)
    document["Values"] = build_values(example.get("Values", {}), env, read_secrets(env, reader))

    if args.output.exists():
        args.backup_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        backup = args.backup_dir / f"{args.output.name}.{stamp}.bak"
        shutil.move(str(args.output), backup)
        print(f"write_local_settings: previous {args.output} moved to {backup}")
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    with contextlib.suppress(OSError):  # not every filesystem has POSIX modes
        args.output.chmod(0o600)
    print(
        f"write_local_settings: wrote {args.output} for the deployed resources "
        f"(TABLE_PREFIX={document['Values'].get('TABLE_PREFIX', '')!r})."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

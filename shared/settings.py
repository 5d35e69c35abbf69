"""The app's settings: every one the contract lists, read once, typed and validated at start-up.

The process environment wins over `local.settings.json` `Values`, as app settings do in Azure
(where that file is never deployed). A bad or missing setting is one line naming it: `load` raises
it as a `SettingsError` (commands), `load(lenient=True)` keeps every such line in `problems` and
fills in inert values (the deployed app: it still indexes every function, and answers 503
`misconfigured` naming the settings, instead of indexing nothing and answering 404 everywhere).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROVIDERS = ("dyte", "realtimekit")

DEFAULT_PRESETS = {
    "dyte": {"host": "group_call_host", "participant": "group_call_participant", "guest": "group_call_guest"},
    "realtimekit": {"host": "group-call-host", "participant": "group-call-participant", "guest": "group-call-guest"},
}
PLACEHOLDER_GUID = "00000000-0000-0000-0000-000000000000"

# Every setting the app reads, in the contract's order. Infra and the example settings file are
# checked against this tuple, so a setting added here must be added there too.
SETTING_NAMES = (
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "TABLE_PREFIX",
    "VIDEO_PROVIDER",
    "DYTE_ORG_ID",
    "DYTE_API_KEY",
    "DYTE_API_BASE_URL",
    "REALTIMEKIT_ACCOUNT_ID",
    "REALTIMEKIT_APP_ID",
    "REALTIMEKIT_API_TOKEN",
    "REALTIMEKIT_API_BASE_URL",
    "PRESET_HOST",
    "PRESET_PARTICIPANT",
    "PRESET_GUEST",
    "WEBHOOK_PUBLIC_KEY",
    "WEBHOOK_PUBLIC_KEY_URL",
    "REALTIMEKIT_WEBHOOK_PUBLIC_KEY",
    "REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL",
    "AUTH_TENANT_ID",
    "AUTH_CLIENT_ID",
    "AUTH_REQUIRED_SCOPE",
    "AUTH_ALLOWED_TENANTS",
    "AUTH_ISSUER",
    "AUTH_JWKS_URI",
    "ID_HASH_KEY",
    "JOIN_EARLY_MINUTES",
    "JOIN_GRACE_MINUTES",
    "APP_BASE_URL",
    "MAIL_SENDER",
    "MAIL_TENANT_ID",
    "MAIL_CLIENT_ID",
    "MAIL_CLIENT_SECRET",
    "MAIL_CLIENT_CERTIFICATE",
    "MAIL_AUTHORITY_HOST",
    "GRAPH_BASE_URL",
    "EVENT_RETENTION_DAYS",
    "MEETING_RETENTION_DAYS",
    "RECORDING_RETENTION_DAYS",
)

# Settings whose values are secrets: never logged, never echoed in an error.
SECRET_NAMES = frozenset(
    {"DYTE_API_KEY", "REALTIMEKIT_API_TOKEN", "ID_HASH_KEY", "MAIL_CLIENT_SECRET", "MAIL_CLIENT_CERTIFICATE"}
)

_TABLE_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,19}$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line that names it."""


@dataclass(frozen=True)
class DyteCredentials:
    org_id: str
    api_key: str
    base_url: str


@dataclass(frozen=True)
class RealtimeKitCredentials:
    account_id: str
    app_id: str
    api_token: str
    base_url: str


@dataclass(frozen=True)
class MailSettings:
    sender: str
    tenant_id: str
    client_id: str
    client_secret: str
    client_certificate: str
    authority_host: str
    graph_base_url: str


@dataclass(frozen=True)
class Settings:
    storage_connection_string: str | None
    storage_account_name: str | None
    storage_service_uris: dict[str, str]
    table_prefix: str
    video_provider: str
    dyte: DyteCredentials | None
    realtimekit: RealtimeKitCredentials | None
    presets: dict[str, str]
    webhook_public_key: str
    webhook_public_key_url: str
    realtimekit_webhook_public_key: str
    realtimekit_webhook_public_key_url: str
    auth_tenant_id: str
    auth_client_id: str
    auth_required_scope: str
    auth_allowed_tenants: frozenset[str]
    auth_issuer: str
    auth_jwks_uri: str
    id_hash_key: bytes
    join_early_minutes: int
    join_grace_minutes: int
    app_base_url: str
    mail: MailSettings | None
    event_retention_days: int
    meeting_retention_days: int
    recording_retention_days: int
    problems: tuple[str, ...] = ()

    def presets_for(self, provider: str) -> dict[str, str]:
        """The `host`, `participant` and `guest` presets for meetings served by `provider`.

        Explicit PRESET_* settings apply to the provider of new meetings; a meeting kept on the
        other provider after a switch uses that provider's defaults.
        """
        if provider == self.video_provider:
            return self.presets
        return DEFAULT_PRESETS[provider]


def read_values(environ: Mapping[str, str] | None = None, local_settings: Path | None = None) -> dict[str, str]:
    """Merged raw values: `local.settings.json` `Values`, overridden by the environment."""
    environ = os.environ if environ is None else environ
    path = Path("local.settings.json") if local_settings is None else local_settings
    values: dict[str, str] = {}
    if path.is_file():
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SettingsError(f"{path}: not readable JSON ({error.__class__.__name__})") from None
        file_values = document.get("Values") if isinstance(document, dict) else None
        if not isinstance(file_values, dict):
            raise SettingsError(f"{path}: no 'Values' object")
        values.update({str(k): str(v) for k, v in file_values.items() if v is not None})
    values.update(environ)
    return values


def load(
    environ: Mapping[str, str] | None = None, local_settings: Path | None = None, *, lenient: bool = False
) -> Settings:
    """Read and validate every setting; raise `SettingsError` naming the first bad one, or with
    `lenient` return inert values and every problem in `problems`."""
    reader = _Reader(read_values(environ, local_settings), lenient)
    settings = _parse(reader)
    return replace(settings, problems=tuple(reader.errors))


class _Reader:
    """Reads raw values; a bad one raises, or when lenient is noted and answered with an inert default."""

    def __init__(self, values: Mapping[str, str], lenient: bool = False):
        self._values = values
        self._lenient = lenient
        self.errors: list[str] = []

    def fail(self, message: str, fallback: Any) -> Any:
        if not self._lenient:
            raise SettingsError(message)
        self.errors.append(message)
        return fallback

    def text(self, name: str, default: str = "") -> str:
        value = self._values.get(name, "").strip()
        if value.startswith("@Microsoft.KeyVault("):
            # App Service leaves an unresolved Key Vault reference as the literal string.
            return self.fail(
                f"{name}: the Key Vault reference did not resolve (check the app's access to the vault)", default
            )
        return value or default

    def required(self, name: str) -> str:
        value = self.text(name)
        if not value:
            return self.fail(f"{name}: required but not set", f"missing-{name}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name)
        if not raw:
            return default
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
            return self.fail(f"{name}: must be a whole number, got {raw[:20]!r}", default)
        value = int(raw)
        if not low <= value <= high:
            return self.fail(f"{name}: must be between {low} and {high}, got {value}", default)
        return value

    def url(self, name: str, default: str = "", *, loopback_http: bool = True, template: bool = False) -> str:
        value = self.text(name, default).rstrip("/")
        if not value:
            return value
        parts = urlsplit(value.replace("{tid}", "tid") if template else value)
        try:
            hostname = parts.hostname
        except ValueError:
            hostname = None
        if parts.scheme not in ("https", "http") or not hostname:
            return self.fail(f"{name}: must be an absolute http(s) URL, got {value[:100]!r}", default)
        if parts.scheme == "http" and not (loopback_http and _is_loopback(hostname)):
            return self.fail(f"{name}: must use https (plain http is allowed only on loopback)", default)
        return value

    def pem(self, name: str) -> str:
        """An RSA public key as PEM (app settings often carry its newlines as literal `\\n`), or ""."""
        value = self.text(name)
        if not value:
            return ""
        # Imported here: only a deployment with a configured key pays for it, once.
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        try:
            key = serialization.load_pem_public_key(value.replace("\\n", "\n").strip().encode("ascii"))
        except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, rsa.RSAPublicKey):
            return self.fail(f"{name}: not a PEM RSA public key", "")
        return value

    def guid(self, name: str, value: str | None = None) -> str:
        value = self.required(name) if value is None else value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return self.fail(f"{name}: must be a GUID, got {value[:60]!r}", PLACEHOLDER_GUID)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse(r: _Reader) -> Settings:
    connection_string = r.text("AzureWebJobsStorage") or None
    account_name = r.text("AzureWebJobsStorage__accountName") or None
    service_uris = {
        kind: r.url(f"AzureWebJobsStorage__{kind}ServiceUri", loopback_http=False)
        for kind in ("blob", "queue", "table")
    }
    if not connection_string and not account_name and not service_uris["table"]:
        connection_string = r.fail(
            "AzureWebJobsStorage: required (a connection string, or AzureWebJobsStorage__accountName)",
            "UseDevelopmentStorage=true",
        )

    table_prefix = r.text("TABLE_PREFIX")
    if table_prefix and not _TABLE_PREFIX.match(table_prefix):
        table_prefix = r.fail(
            "TABLE_PREFIX: must be a lower-case letter then up to 19 lower-case letters or digits", ""
        )

    video_provider = r.text("VIDEO_PROVIDER", "dyte").lower()
    if video_provider not in PROVIDERS:
        video_provider = r.fail(f"VIDEO_PROVIDER: must be 'dyte' or 'realtimekit', got {video_provider[:30]!r}", "dyte")

    dyte = _dyte(r, required=video_provider == "dyte")
    realtimekit = _realtimekit(r, required=video_provider == "realtimekit")
    defaults = DEFAULT_PRESETS[video_provider]

    tenant_id = r.guid("AUTH_TENANT_ID")
    allowed = r.text("AUTH_ALLOWED_TENANTS")
    allowed_tenants = frozenset(
        r.guid("AUTH_ALLOWED_TENANTS", part.strip()) for part in allowed.split(",") if part.strip()
    ) or frozenset({tenant_id})
    scope = r.text("AUTH_REQUIRED_SCOPE", "access_as_user")
    if not _SCOPE.match(scope):
        scope = r.fail("AUTH_REQUIRED_SCOPE: must be one scope name without spaces", "access_as_user")

    id_hash_key = r.required("ID_HASH_KEY")
    if len(id_hash_key) < 16:
        id_hash_key = r.fail("ID_HASH_KEY: must be at least 16 characters", id_hash_key.ljust(16, "-"))

    return Settings(
        storage_connection_string=connection_string,
        storage_account_name=account_name,
        storage_service_uris={kind: uri for kind, uri in service_uris.items() if uri},
        table_prefix=table_prefix,
        video_provider=video_provider,
        dyte=dyte,
        realtimekit=realtimekit,
        presets={
            "host": r.text("PRESET_HOST", defaults["host"]),
            "participant": r.text("PRESET_PARTICIPANT", defaults["participant"]),
            "guest": r.text("PRESET_GUEST", defaults["guest"]),
        },
        webhook_public_key=r.pem("WEBHOOK_PUBLIC_KEY"),
        webhook_public_key_url=r.url("WEBHOOK_PUBLIC_KEY_URL", "https://api.dyte.io/.well-known/webhooks.json"),
        realtimekit_webhook_public_key=r.pem("REALTIMEKIT_WEBHOOK_PUBLIC_KEY"),
        realtimekit_webhook_public_key_url=r.url(
            "REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL", "https://api.realtime.cloudflare.com/.well-known/webhooks.json"
        ),
        auth_tenant_id=tenant_id,
        auth_client_id=r.required("AUTH_CLIENT_ID"),
        auth_required_scope=scope,
        auth_allowed_tenants=allowed_tenants,
        auth_issuer=r.url("AUTH_ISSUER", "https://login.microsoftonline.com/{tid}/v2.0", template=True),
        auth_jwks_uri=r.url("AUTH_JWKS_URI", f"https://login.microsoftonline.com/{tenant_id}/discovery/v2.0/keys"),
        id_hash_key=id_hash_key.encode("utf-8"),
        join_early_minutes=r.integer("JOIN_EARLY_MINUTES", 15, 0, 24 * 60),
        join_grace_minutes=r.integer("JOIN_GRACE_MINUTES", 60, 0, 24 * 60),
        app_base_url=r.url("APP_BASE_URL", "http://localhost:5173"),
        mail=_mail(r),
        event_retention_days=r.integer("EVENT_RETENTION_DAYS", 30, 1, 3650),
        meeting_retention_days=r.integer("MEETING_RETENTION_DAYS", 365, 1, 3650),
        recording_retention_days=r.integer("RECORDING_RETENTION_DAYS", 365, 1, 3650),
    )


def _dyte(r: _Reader, required: bool) -> DyteCredentials | None:
    org_id, api_key = r.text("DYTE_ORG_ID"), r.text("DYTE_API_KEY")
    if not required and not (org_id or api_key):
        return None
    errors = len(r.errors)
    credentials = DyteCredentials(
        org_id=r.required("DYTE_ORG_ID"),
        api_key=r.required("DYTE_API_KEY"),
        base_url=r.url("DYTE_API_BASE_URL", "https://api.dyte.io/v2"),
    )
    return credentials if len(r.errors) == errors else None


def _realtimekit(r: _Reader, required: bool) -> RealtimeKitCredentials | None:
    names = ("REALTIMEKIT_ACCOUNT_ID", "REALTIMEKIT_APP_ID", "REALTIMEKIT_API_TOKEN")
    if not required and not any(r.text(name) for name in names):
        return None
    errors = len(r.errors)
    credentials = RealtimeKitCredentials(
        account_id=r.required("REALTIMEKIT_ACCOUNT_ID"),
        app_id=r.required("REALTIMEKIT_APP_ID"),
        api_token=r.required("REALTIMEKIT_API_TOKEN"),
        base_url=r.url("REALTIMEKIT_API_BASE_URL", "https://api.cloudflare.com/client/v4"),
    )
    return credentials if len(r.errors) == errors else None


def _mail(r: _Reader) -> MailSettings | None:
    sender = r.text("MAIL_SENDER")
    if not sender:
        return None
    if "@" not in sender:
        return r.fail("MAIL_SENDER: must be a mailbox address", None)
    secret, certificate = r.text("MAIL_CLIENT_SECRET"), r.text("MAIL_CLIENT_CERTIFICATE")
    if not (secret or certificate):
        return r.fail("MAIL_CLIENT_SECRET: required (or MAIL_CLIENT_CERTIFICATE) when MAIL_SENDER is set", None)
    errors = len(r.errors)
    mail = MailSettings(
        sender=sender,
        tenant_id=r.guid("MAIL_TENANT_ID"),
        client_id=r.required("MAIL_CLIENT_ID"),
        client_secret=secret,
        client_certificate=certificate,
        authority_host=r.url("MAIL_AUTHORITY_HOST", "https://login.microsoftonline.com", loopback_http=False),
        graph_base_url=r.url("GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0", loopback_http=False),
    )
    return mail if len(r.errors) == errors else None

"""The app's settings: every one the contract lists, read once, typed and validated at start-up.

The process environment wins over `local.settings.json` `Values`, as app settings do in Azure
(where that file is never deployed). A bad or missing setting raises `SettingsError` whose
message is one line naming it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

PROVIDERS = ("dyte", "realtimekit")

DEFAULT_PRESETS = {
    "dyte": ("group_call_host", "group_call_participant"),
    "realtimekit": ("group-call-host", "group-call-participant"),
}
DEFAULT_GUEST_PRESETS = {"dyte": "group_call_guest", "realtimekit": "group-call-guest"}

# Every setting the app reads, in the contract's order. Infra and the example settings file are
# checked against this tuple, so a setting added here must be added there too.
SETTING_NAMES = (
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__accountName",
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
    table_prefix: str
    video_provider: str
    dyte: DyteCredentials | None
    realtimekit: RealtimeKitCredentials | None
    preset_host: str
    preset_participant: str
    preset_guest: str
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

    def presets_for(self, provider: str) -> tuple[str, str]:
        """(host preset, participant preset) for meetings served by `provider`.

        Explicit PRESET_* settings apply to the provider of new meetings; a meeting kept on the
        other provider after a switch uses that provider's defaults.
        """
        if provider == self.video_provider:
            return self.preset_host, self.preset_participant
        return DEFAULT_PRESETS[provider]

    def guest_preset_for(self, provider: str) -> str:
        """The guest preset for meetings served by `provider`, by the same rule as `presets_for`."""
        if provider == self.video_provider:
            return self.preset_guest
        return DEFAULT_GUEST_PRESETS[provider]


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


def load(environ: Mapping[str, str] | None = None, local_settings: Path | None = None) -> Settings:
    """Read and validate every setting; raise `SettingsError` naming the first bad one."""
    return _parse(_Reader(read_values(environ, local_settings)))


class _Reader:
    def __init__(self, values: Mapping[str, str]):
        self._values = values

    def text(self, name: str, default: str = "") -> str:
        value = self._values.get(name, "").strip()
        if value.startswith("@Microsoft.KeyVault("):
            # App Service leaves an unresolved Key Vault reference as the literal string.
            raise SettingsError(
                f"{name}: the Key Vault reference did not resolve (check the app's access to the vault)"
            )
        return value or default

    def required(self, name: str) -> str:
        value = self.text(name)
        if not value:
            raise SettingsError(f"{name}: required but not set")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name}: must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name}: must be between {low} and {high}, got {value}")
        return value

    def url(self, name: str, default: str = "", *, loopback_http: bool = True, template: bool = False) -> str:
        value = self.text(name, default).rstrip("/")
        if not value:
            return value
        parts = urlsplit(value.replace("{tid}", "tid") if template else value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise SettingsError(f"{name}: must be an absolute http(s) URL, got {value!r}")
        if parts.scheme == "http" and not (loopback_http and _is_loopback(parts.hostname)):
            raise SettingsError(f"{name}: must use https (plain http is allowed only on loopback)")
        return value

    def guid(self, name: str, value: str | None = None) -> str:
        value = self.required(name) if value is None else value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise SettingsError(f"{name}: must be a GUID, got {value!r}") from None


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
    if not connection_string and not account_name:
        raise SettingsError("AzureWebJobsStorage: required (a connection string, or AzureWebJobsStorage__accountName)")

    table_prefix = r.text("TABLE_PREFIX")
    if table_prefix and not _TABLE_PREFIX.match(table_prefix):
        raise SettingsError("TABLE_PREFIX: must be a lower-case letter then up to 19 lower-case letters or digits")

    video_provider = r.text("VIDEO_PROVIDER", "dyte").lower()
    if video_provider not in PROVIDERS:
        raise SettingsError(f"VIDEO_PROVIDER: must be 'dyte' or 'realtimekit', got {video_provider!r}")

    dyte = _dyte(r, required=video_provider == "dyte")
    realtimekit = _realtimekit(r, required=video_provider == "realtimekit")
    default_host, default_participant = DEFAULT_PRESETS[video_provider]

    tenant_id = r.guid("AUTH_TENANT_ID")
    allowed = r.text("AUTH_ALLOWED_TENANTS")
    allowed_tenants = frozenset(
        r.guid("AUTH_ALLOWED_TENANTS", part.strip()) for part in allowed.split(",") if part.strip()
    ) or frozenset({tenant_id})
    scope = r.text("AUTH_REQUIRED_SCOPE", "access_as_user")
    if not _SCOPE.match(scope):
        raise SettingsError("AUTH_REQUIRED_SCOPE: must be one scope name without spaces")

    id_hash_key = r.required("ID_HASH_KEY")
    if len(id_hash_key) < 16:
        raise SettingsError("ID_HASH_KEY: must be at least 16 characters")

    return Settings(
        storage_connection_string=connection_string,
        storage_account_name=account_name,
        table_prefix=table_prefix,
        video_provider=video_provider,
        dyte=dyte,
        realtimekit=realtimekit,
        preset_host=r.text("PRESET_HOST", default_host),
        preset_participant=r.text("PRESET_PARTICIPANT", default_participant),
        preset_guest=r.text("PRESET_GUEST", DEFAULT_GUEST_PRESETS[video_provider]),
        webhook_public_key=r.text("WEBHOOK_PUBLIC_KEY"),
        webhook_public_key_url=r.url("WEBHOOK_PUBLIC_KEY_URL", "https://api.dyte.io/.well-known/webhooks.json"),
        realtimekit_webhook_public_key=r.text("REALTIMEKIT_WEBHOOK_PUBLIC_KEY"),
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
    )


def _dyte(r: _Reader, required: bool) -> DyteCredentials | None:
    org_id, api_key = r.text("DYTE_ORG_ID"), r.text("DYTE_API_KEY")
    if not required and not (org_id or api_key):
        return None
    return DyteCredentials(
        org_id=r.required("DYTE_ORG_ID"),
        api_key=r.required("DYTE_API_KEY"),
        base_url=r.url("DYTE_API_BASE_URL", "https://api.dyte.io/v2"),
    )


def _realtimekit(r: _Reader, required: bool) -> RealtimeKitCredentials | None:
    names = ("REALTIMEKIT_ACCOUNT_ID", "REALTIMEKIT_APP_ID", "REALTIMEKIT_API_TOKEN")
    if not required and not any(r.text(name) for name in names):
        return None
    return RealtimeKitCredentials(
        account_id=r.required("REALTIMEKIT_ACCOUNT_ID"),
        app_id=r.required("REALTIMEKIT_APP_ID"),
        api_token=r.required("REALTIMEKIT_API_TOKEN"),
        base_url=r.url("REALTIMEKIT_API_BASE_URL", "https://api.cloudflare.com/client/v4"),
    )


def _mail(r: _Reader) -> MailSettings | None:
    sender = r.text("MAIL_SENDER")
    if not sender:
        return None
    if "@" not in sender:
        raise SettingsError("MAIL_SENDER: must be a mailbox address")
    secret, certificate = r.text("MAIL_CLIENT_SECRET"), r.text("MAIL_CLIENT_CERTIFICATE")
    if not (secret or certificate):
        raise SettingsError("MAIL_CLIENT_SECRET: required (or MAIL_CLIENT_CERTIFICATE) when MAIL_SENDER is set")
    return MailSettings(
        sender=sender,
        tenant_id=r.guid("MAIL_TENANT_ID"),
        client_id=r.required("MAIL_CLIENT_ID"),
        client_secret=secret,
        client_certificate=certificate,
        authority_host=r.url("MAIL_AUTHORITY_HOST", "https://login.microsoftonline.com", loopback_http=False),
        graph_base_url=r.url("GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0", loopback_http=False),
    )

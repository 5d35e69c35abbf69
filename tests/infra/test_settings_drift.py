"""Settings drift, both ways, between the app (shared.settings), the Bicep app settings
(infra/modules/appsettings.bicep), local.settings.json.example, and the azd hook that writes
local.settings.json (infra/scripts/write_local_settings.py)."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from shared.settings import SECRET_NAMES, SETTING_NAMES
from tests.infra import INFRA, REPO_ROOT, app_settings, body, conditional, dotted, main, module

# Settings the app reads that Azure deliberately does not set. Each is documented as optional in
# docs/deploy.md (asserted below).
OPTIONAL_IN_AZURE = {
    # A connection string; in Azure the runtime and the app use identity-based storage
    # (AzureWebJobsStorage__accountName and the service URIs below).
    "AzureWebJobsStorage",
    # Overrides for a non-Entra issuer (the local issuer, tests); Azure uses Entra ID's defaults.
    "AUTH_ISSUER",
    "AUTH_JWKS_URI",
}

# App settings Bicep sets that only the Functions runtime reads (never shared.settings).
RUNTIME_SETTINGS = {
    # Telemetry: where to send it, and to authenticate with the managed identity (local auth off).
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

# Must never be set on a Flex Consumption app (functions-app-settings "Flex Consumption plan
# deprecations"): the runtime comes from functionAppConfig, deployment from its blob container.
FORBIDDEN_ON_FLEX = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_TIME_ZONE",
    "TZ",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
}

# Local-only keys of local.settings.json.example beyond SETTING_NAMES: Core Tools needs the
# worker runtime locally (on Flex it is functionAppConfig.runtime instead).
LOCAL_ONLY = {"FUNCTIONS_WORKER_RUNTIME"}

KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(SecretUri=\$\{keyVaultUri\}secrets/[a-z0-9-]+/\)$")


def _bicep_settings() -> set[str]:
    return set(app_settings())


def test_every_setting_the_app_reads_is_set_by_bicep_or_documented_optional():
    missing = set(SETTING_NAMES) - _bicep_settings() - OPTIONAL_IN_AZURE
    assert not missing, f"add to infra/modules/appsettings.bicep (or OPTIONAL_IN_AZURE with docs): {sorted(missing)}"


def test_every_bicep_app_setting_is_read_by_the_app_or_the_runtime():
    unknown = _bicep_settings() - set(SETTING_NAMES) - RUNTIME_SETTINGS
    assert not unknown, f"nothing reads these app settings: {sorted(unknown)}"


def test_allow_lists_are_not_stale():
    assert set(SETTING_NAMES) >= OPTIONAL_IN_AZURE
    assert not OPTIONAL_IN_AZURE & _bicep_settings(), "an optional setting is set after all: drop it from the list"
    assert _bicep_settings() >= RUNTIME_SETTINGS
    assert not RUNTIME_SETTINGS & set(SETTING_NAMES), "the app reads it now: drop it from RUNTIME_SETTINGS"


def test_optional_settings_are_documented():
    text = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for name in OPTIONAL_IN_AZURE:
        assert f"`{name}`" in text, f"docs/deploy.md must say why {name} is not set in Azure"


def test_storage_is_identity_based_in_azure():
    settings = app_settings()
    assert "AzureWebJobsStorage" not in settings
    assert settings["AzureWebJobsStorage__accountName"] == "storageAccountName"
    # The service URIs are the account's own primary endpoints (the cloud's suffix, sovereign clouds
    # included), never built from the account name.
    params = body(main()["modules"]["appSettings"])["params"]
    for service in ("blob", "queue", "table"):
        assert settings[f"AzureWebJobsStorage__{service}ServiceUri"] == f"{service}ServiceUri"
        assert dotted(params[f"{service}ServiceUri"]) == f"storage.outputs.{service}Endpoint"
        output = module("storage")["outputs"][f"{service}Endpoint"]["value"]
        assert dotted(output) == f"storageAccount.properties.primaryEndpoints.{service}"
    assert "storageSuffix" not in (INFRA / "modules" / "appsettings.bicep").read_text(encoding="utf-8")
    assert settings["TABLE_PREFIX"] == ""


def test_telemetry_authenticates_with_entra_id():
    settings = app_settings()
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "applicationInsightsConnectionString"


def test_no_setting_that_flex_consumption_forbids():
    assert not FORBIDDEN_ON_FLEX & _bicep_settings()


@pytest.mark.parametrize("name", sorted(SECRET_NAMES))
def test_secrets_are_key_vault_references(name: str):
    assert name in SETTING_NAMES
    value = app_settings()[name]
    branches = conditional(value)
    if branches is None:
        # Always configured (ID_HASH_KEY).
        assert isinstance(value, str) and KEY_VAULT_REFERENCE.match(value), value
        return
    # Optional feature: a reference when configured, '' otherwise (never a dangling reference).
    outcomes = {branches["true_value"], branches["false_value"]}
    assert "" in outcomes, value
    (reference,) = outcomes - {""}
    assert isinstance(reference, str) and KEY_VAULT_REFERENCE.match(reference), reference


def test_no_other_setting_holds_a_key_vault_reference():
    for name, value in app_settings().items():
        if name not in SECRET_NAMES:
            assert "@Microsoft.KeyVault" not in json.dumps(value), name


def test_example_local_settings_have_exactly_the_settings_the_app_reads():
    example = json.loads((REPO_ROOT / "local.settings.json.example").read_text(encoding="utf-8"))
    assert set(example["Values"]) == set(SETTING_NAMES) | LOCAL_ONLY


def _hook_module():
    spec = importlib.util.spec_from_file_location("write_local_settings", INFRA / "scripts" / "write_local_settings.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def test_post_provision_local_settings_keep_the_example_keys_and_use_azure_resources():
    hook = _hook_module()
    example = json.loads((REPO_ROOT / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    env = {
        "AZURE_STORAGE_ACCOUNT_NAME": "stabc",
        "AZURE_STORAGE_TABLE_ENDPOINT": "https://stabc.table.core.usgovcloudapi.net/",
        "RECORDING_RETENTION_DAYS": "90",
        "AUTH_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "VIDEO_PROVIDER": "realtimekit",
        "DYTE_ORG_ID": "",
        "REALTIMEKIT_ACCOUNT_ID": "acct",
    }
    secrets = {"ID_HASH_KEY": "k" * 40, "REALTIMEKIT_API_TOKEN": "token"}
    values = hook.build_values(example, env, secrets)
    assert list(values) == list(example)
    assert values["AzureWebJobsStorage"] == ""
    assert values["AzureWebJobsStorage__accountName"] == "stabc"
    assert values["AzureWebJobsStorage__tableServiceUri"] == "https://stabc.table.core.usgovcloudapi.net/"
    assert values["RECORDING_RETENTION_DAYS"] == "90"
    assert values["PRESET_GUEST"] == ""  # the provider's default, as in Azure
    assert values["AUTH_CLIENT_ID"] == env["AUTH_CLIENT_ID"]
    assert values["AUTH_ISSUER"] == "" and values["AUTH_JWKS_URI"] == ""
    assert values["ID_HASH_KEY"] == "k" * 40
    assert values["DYTE_API_KEY"] == ""  # not configured: no example secret left behind
    assert values["TABLE_PREFIX"] == "local"
    assert values["DYTE_API_BASE_URL"] == ""  # never the example's local stand-in
    assert values["REALTIMEKIT_ACCOUNT_ID"] == "acct"
    assert hook.wanted_secrets(env) == ["ID_HASH_KEY", "REALTIMEKIT_API_TOKEN"]


def test_post_provision_hook_knows_every_setting():
    example = json.loads((REPO_ROOT / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    assert set(example) <= _hook_module().handled()


def test_post_provision_hook_reads_the_same_key_vault_secrets_the_app_references():
    hook = _hook_module()
    assert set(hook.SECRETS) == set(SECRET_NAMES)
    for setting, secret_name in hook.SECRETS.items():
        assert f"secrets/{secret_name}/" in json.dumps(app_settings()[setting]), setting

import json

import pytest

from shared import settings
from tests import support


def presets(loaded: settings.Settings, provider: str) -> tuple[str, str]:
    """(host preset, participant preset) for meetings served by `provider`."""
    chosen = loaded.presets_for(provider)
    return chosen["host"], chosen["participant"]


def test_example_file_loads_as_is():
    loaded = support.load()
    assert loaded.video_provider == "dyte"
    assert loaded.dyte and loaded.dyte.base_url == "http://127.0.0.1:7073/v2"
    assert (loaded.presets["host"], loaded.presets["participant"]) == ("group_call_host", "group_call_participant")
    assert loaded.auth_allowed_tenants == {support.TENANT}


def test_example_file_has_every_setting():
    assert set(support.EXAMPLE_VALUES) - {"FUNCTIONS_WORKER_RUNTIME"} == set(settings.SETTING_NAMES)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"AUTH_CLIENT_ID": ""}, "AUTH_CLIENT_ID"),
        ({"AUTH_TENANT_ID": "contoso"}, "AUTH_TENANT_ID"),
        ({"AUTH_ALLOWED_TENANTS": "not-a-guid"}, "AUTH_ALLOWED_TENANTS"),
        ({"AUTH_REQUIRED_SCOPE": "two scopes"}, "AUTH_REQUIRED_SCOPE"),
        ({"AUTH_ISSUER": "http://login.example.com/{tid}/v2.0"}, "AUTH_ISSUER"),
        ({"AUTH_JWKS_URI": "ftp://127.0.0.1/keys"}, "AUTH_JWKS_URI"),
        ({"AzureWebJobsStorage": "", "AzureWebJobsStorage__accountName": ""}, "AzureWebJobsStorage"),
        ({"VIDEO_PROVIDER": "zoom"}, "VIDEO_PROVIDER"),
        ({"DYTE_API_KEY": ""}, "DYTE_API_KEY"),
        ({"VIDEO_PROVIDER": "realtimekit", "REALTIMEKIT_APP_ID": ""}, "REALTIMEKIT_APP_ID"),
        ({"ID_HASH_KEY": "short"}, "ID_HASH_KEY"),
        ({"ID_HASH_KEY": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/x/)"}, "ID_HASH_KEY"),
        ({"JOIN_EARLY_MINUTES": "soon"}, "JOIN_EARLY_MINUTES"),
        ({"JOIN_GRACE_MINUTES": "-1"}, "JOIN_GRACE_MINUTES"),
        ({"EVENT_RETENTION_DAYS": "0"}, "EVENT_RETENTION_DAYS"),
        ({"TABLE_PREFIX": "Has-Dash"}, "TABLE_PREFIX"),
        ({"MAIL_SENDER": "noreply@contoso.test"}, "MAIL_CLIENT_SECRET"),
        ({"MAIL_SENDER": "noreply@contoso.test", "MAIL_CLIENT_SECRET": "s"}, "MAIL_TENANT_ID"),
        ({"APP_BASE_URL": "localhost:5173"}, "APP_BASE_URL"),
    ],
)
def test_a_bad_setting_fails_with_one_line_naming_it(overrides, named):
    with pytest.raises(settings.SettingsError) as failure:
        support.load(**overrides)
    message = str(failure.value)
    assert message.startswith(f"{named}:")
    assert "\n" not in message


def test_secrets_are_never_echoed_in_the_error():
    secret = "@Microsoft.KeyVault(VaultName=kv;SecretName=dyte-key)"
    with pytest.raises(settings.SettingsError) as failure:
        support.load(DYTE_API_KEY=secret)
    assert "dyte-key" not in str(failure.value)


def test_environment_wins_over_local_settings_file(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": support.values(JOIN_EARLY_MINUTES="5", JOIN_GRACE_MINUTES="7")}))
    loaded = settings.load(environ={"JOIN_EARLY_MINUTES": "9"}, local_settings=path)
    assert (loaded.join_early_minutes, loaded.join_grace_minutes) == (9, 7)


def test_unreadable_local_settings_file_is_named(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text("{not json")
    with pytest.raises(settings.SettingsError, match=r"local\.settings\.json"):
        settings.load(environ={}, local_settings=path)


def test_realtimekit_defaults_to_hyphenated_presets_and_keeps_dyte_usable():
    loaded = support.load(VIDEO_PROVIDER="realtimekit")
    assert (loaded.presets["host"], loaded.presets["participant"]) == ("group-call-host", "group-call-participant")
    assert presets(loaded, "dyte") == ("group_call_host", "group_call_participant")
    assert loaded.dyte is not None and loaded.realtimekit is not None


def test_explicit_presets_apply_to_the_provider_of_new_meetings_only():
    loaded = support.load(PRESET_HOST="moderator", PRESET_PARTICIPANT="guest")
    assert presets(loaded, "dyte") == ("moderator", "guest")
    assert presets(loaded, "realtimekit") == ("group-call-host", "group-call-participant")


def test_the_other_provider_is_optional():
    loaded = support.load(REALTIMEKIT_ACCOUNT_ID="", REALTIMEKIT_APP_ID="", REALTIMEKIT_API_TOKEN="")
    assert loaded.realtimekit is None


def test_allowed_tenants_list_is_normalized():
    other = "A1B2C3D4-0000-4000-8000-000000000001"
    loaded = support.load(AUTH_ALLOWED_TENANTS=f" {support.TENANT}, {other} ")
    assert loaded.auth_allowed_tenants == {support.TENANT, other.lower()}


def test_identity_based_storage_needs_no_connection_string():
    loaded = support.load(AzureWebJobsStorage="", AzureWebJobsStorage__accountName="stmeetings")
    assert loaded.storage_connection_string is None
    assert loaded.storage_account_name == "stmeetings"

"""`python -m shared.presets check [--create] [--provider P]` against the provider stand-in over HTTP, the preset
bodies against the providers' documents, and the guest preset setting."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
import requests

from dev.provider import ProviderStandIn, openapi
from shared import presets
from shared.provider import ProviderClient
from tests import support

DEFAULTS = {
    "dyte": ("group_call_host", "group_call_participant", "group_call_guest"),
    "realtimekit": ("group-call-host", "group-call-participant", "group-call-guest"),
}


@pytest.fixture(scope="module")
def stand_in():
    with ProviderStandIn().start() as provider:
        yield provider


@pytest.fixture(autouse=True)
def strict(stand_in):
    stand_in.reset()
    stand_in.set_switches(reject_unknown_fields=True)
    yield
    assert [e for e in stand_in.request_log() if e["status"] == 400] == []


def client(stand_in, mode: str) -> ProviderClient:
    if mode == "dyte":
        return ProviderClient.for_dyte(stand_in.dyte_credentials(), requests.Session())
    return ProviderClient.for_realtimekit(stand_in.realtimekit_credentials(), requests.Session())


def run(stand_in, tmp_path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    values = support.values(
        DYTE_API_BASE_URL=stand_in.dyte_base_url, REALTIMEKIT_API_BASE_URL=stand_in.realtimekit_base_url, **settings
    )
    environment = {k: v for k, v in os.environ.items() if k not in values} | values | {"PYTHONPATH": str(support.ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "shared.presets", "check", *args],
        cwd=tmp_path,  # no local.settings.json here: the environment is the whole configuration
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def delete_dyte_preset(stand_in, name: str) -> None:
    preset = next(p for p in client(stand_in, "dyte").list_presets() if p.name == name)
    auth = "Basic " + base64.b64encode(b"local-org:local-dyte-api-key").decode()
    response = requests.delete(
        f"{stand_in.dyte_base_url}/presets/{preset.id}", headers={"Authorization": auth}, timeout=5
    )
    response.raise_for_status()


def test_every_preset_of_every_configured_provider_exists(stand_in, tmp_path):
    result = run(stand_in, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{mode} {name} ({role}): ok"
        for mode in ("dyte", "realtimekit")
        for role, name in zip(presets.ROLES, DEFAULTS[mode], strict=True)
    ]


def test_a_missing_preset_is_one_line_and_exit_1_until_created_with_the_right_settings(stand_in, tmp_path):
    delete_dyte_preset(stand_in, "group_call_guest")
    delete_dyte_preset(stand_in, "group_call_host")
    before = len(stand_in.request_log())
    missing = run(stand_in, tmp_path, "--provider", "dyte")
    assert missing.returncode == 1
    assert [line for line in missing.stdout.splitlines() if "missing" in line] == [
        "dyte group_call_host (host): missing; run with --create to create it",
        "dyte group_call_guest (guest): missing; run with --create to create it",
    ]
    assert "dyte group_call_participant (participant): ok" in missing.stdout
    assert {e["method"] for e in stand_in.request_log()[before:]} == {"GET"}  # checking changes nothing

    created = run(stand_in, tmp_path, "--provider", "dyte", "--create")
    assert created.returncode == 0, created.stdout + created.stderr
    assert created.stdout.splitlines() == [
        "dyte group_call_host (host): created (admits from the waiting room, no waiting room)",
        "dyte group_call_participant (participant): ok",
        "dyte group_call_guest (guest): created (waits until a host admits them)",
    ]
    dyte = client(stand_in, "dyte")
    by_name = {p.name: p for p in dyte.list_presets()}
    guest = dyte.get_preset(by_name["group_call_guest"].id).permissions
    host = dyte.get_preset(by_name["group_call_host"].id).permissions
    assert (guest["waiting_room_type"], guest["accept_waiting_requests"]) == ("ON_PRIVILEGED_USER_ENTRY", False)
    assert (host["waiting_room_type"], host["accept_waiting_requests"]) == ("SKIP", True)
    assert run(stand_in, tmp_path, "--create").returncode == 0  # nothing left to create
    assert sum(1 for e in stand_in.request_log() if e["method"] == "POST") == 2


def test_the_settings_name_the_presets_of_the_provider_of_new_meetings(stand_in, tmp_path):
    result = run(stand_in, tmp_path, "--create", VIDEO_PROVIDER="realtimekit", PRESET_GUEST="lobby")
    assert result.returncode == 0, result.stderr
    assert "realtimekit lobby (guest): created (waits until a host admits them)" in result.stdout
    assert "dyte group_call_guest (guest): ok" in result.stdout  # the other provider keeps its defaults
    only = run(stand_in, tmp_path, "--provider", "dyte", VIDEO_PROVIDER="realtimekit", PRESET_GUEST="lobby")
    assert [line.split(" ")[0] for line in only.stdout.splitlines()] == ["dyte"] * 3


def test_an_existing_preset_that_would_let_guests_skip_the_waiting_room_is_reported_not_changed(stand_in, tmp_path):
    open_door = presets.body("participant", "open-door")
    client(stand_in, "dyte").create_preset(open_door)
    result = run(stand_in, tmp_path, "--provider", "dyte", "--create", PRESET_GUEST="open-door")
    assert result.returncode == 1
    assert "dyte open-door (guest): differs: waiting_room_type is 'SKIP', expected 'ON_PRIVILEGED_USER_ENTRY'" in (
        result.stdout
    )
    assert sum(1 for e in stand_in.request_log() if e["method"] == "POST") == 1  # only the test's own create


def test_failures_are_one_clear_line(stand_in, tmp_path):
    unconfigured = run(
        stand_in,
        tmp_path,
        "--provider",
        "realtimekit",
        REALTIMEKIT_ACCOUNT_ID="",
        REALTIMEKIT_APP_ID="",
        REALTIMEKIT_API_TOKEN="",
    )
    assert (unconfigured.returncode, unconfigured.stderr.strip()) == (
        1,
        "check: realtimekit is not configured (its credentials are not set)",
    )
    stand_in.add_fault(mode="dyte", path="/presets", status=401)
    refused = run(stand_in, tmp_path, "--provider", "dyte")
    # The client's own log line (what the provider said) comes first; the problem is the last line.
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == "dyte: The video provider rejected our credentials."
    bad = run(stand_in, tmp_path, ID_HASH_KEY="short")
    assert (bad.returncode, bad.stderr.strip()) == (1, "settings: ID_HASH_KEY: must be at least 16 characters")
    assert run(stand_in, tmp_path, "--provider", "zoom").returncode == 2


@pytest.mark.parametrize("mode", ["dyte", "realtimekit"])
@pytest.mark.parametrize("role", presets.ROLES)
def test_preset_bodies_fit_the_documented_create_schema_with_nothing_undeclared(mode, role):
    """RealtimeKit's presets are Dyte's (Cloudflare's subset does not describe them): both gates use Dyte's schema."""
    operation, _ = openapi.gates()[mode].find("POST", "/presets")
    document = presets.body(role, f"{role}-preset")
    assert [error.message for error in operation.body.iter_errors(document)] == []
    assert presets.differences(role, document["permissions"]) == []


def test_differences_name_what_breaks_the_role():
    host = presets.body("host", "h")["permissions"]
    assert presets.differences("guest", host) == ["waiting_room_type is 'SKIP', expected 'ON_PRIVILEGED_USER_ENTRY'"]
    assert presets.differences("host", {**host, "accept_waiting_requests": False}) == [
        "accept_waiting_requests is False, expected True"
    ]
    assert presets.differences("participant", None) == []  # not reported: nothing to hold against it
    with pytest.raises(ValueError):
        presets.body("owner", "x")


def test_the_guest_preset_setting_follows_the_rule_of_the_other_presets():
    dyte = support.load()
    assert (dyte.presets_for("dyte")["guest"], dyte.presets_for("realtimekit")["guest"]) == (
        "group_call_guest",
        "group-call-guest",
    )
    named = support.load(VIDEO_PROVIDER="realtimekit", PRESET_GUEST="lobby")
    assert (named.presets_for("realtimekit")["guest"], named.presets_for("dyte")["guest"]) == (
        "lobby",
        "group_call_guest",
    )
    assert named.presets_for("realtimekit") == {
        "host": "group-call-host",
        "participant": "group-call-participant",
        "guest": "lobby",
    }

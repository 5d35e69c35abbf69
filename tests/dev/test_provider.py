"""The provider stand-in over real HTTP: both modes, the OpenAPI gate (Dyte's document, Cloudflare's subset),
presets, recordings, faults, tokens and webhooks. The local room has its own tests (test_room.py)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from dev.provider import (
    Fault,
    ProviderStandIn,
    meeting_ended,
    meeting_started,
    openapi,
    participant_joined,
    participant_left,
    recording_status,
    room,
)
from dev.provider.model import ApiError
from shared import presets

ROOT = Path(__file__).resolve().parents[2]
MODES = ("dyte", "realtimekit")
HOST_PRESET = {"dyte": "group_call_host", "realtimekit": "group-call-host"}
GUEST_PRESET = {"dyte": "group_call_participant", "realtimekit": "group-call-participant"}
GUEST = {"dyte": "group_call_guest", "realtimekit": "group-call-guest"}
GATEWAY_ERROR = {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}], "messages": []}


@pytest.fixture(scope="module")
def stand_in():
    with ProviderStandIn().start() as provider:
        yield provider


@pytest.fixture(autouse=True)
def clean(stand_in):
    stand_in.reset()


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


class Api:
    """One mode's API as our backend reaches it; every answer is checked against the spec's response schema."""

    def __init__(self, stand_in: ProviderStandIn, mode: str, session: requests.Session):
        self.mode, self.session = mode, session
        if mode == "dyte":
            self.base = stand_in.dyte_base_url
            self.auth = "Basic " + base64.b64encode(b"local-org:local-dyte-api-key").decode()
        else:
            self.base = f"{stand_in.realtimekit_base_url}/accounts/local-account/realtime/kit/local-app"
            self.auth = "Bearer local-realtimekit-api-token"

    def call(self, method: str, path: str, body=None, *, auth: str | None = None, **options) -> requests.Response:
        headers = {"Authorization": self.auth if auth is None else auth}
        options.setdefault("timeout", 5)
        response = self.session.request(method, self.base + path, json=body, headers=headers, **options)
        if response.headers.get("Content-Type", "").startswith("application/json"):
            try:
                operation, _ = openapi.gates()[self.mode].find(method, path.partition("?")[0])
            except ApiError:  # an undocumented route has no schema to hold the answer to
                operation = None
            validator = operation and operation.responses.get(str(response.status_code))
            if validator:
                errors = [error.message for error in validator.iter_errors(response.json())]
                assert not errors, f"{method} {path} answered outside the {self.mode} schema: {errors}"
        return response

    def kick(self, meeting_id: str, *, participant_ids=(), custom_participant_ids=()) -> requests.Response:
        """Kick as each provider documents it: Dyte takes either list, Cloudflare's schema requires both."""
        body = {"participant_ids": list(participant_ids), "custom_participant_ids": list(custom_participant_ids)}
        if self.mode == "dyte":
            body = {name: ids for name, ids in body.items() if ids}
        return self.call("POST", f"/meetings/{meeting_id}/active-session/kick", body)

    def meeting(self, **body) -> str:
        response = self.call("POST", "/meetings", {"title": "Standup", **body})
        assert response.status_code == 201, response.text
        return response.json()["data"]["id"]

    def participant(self, meeting_id: str, custom_id: str = "user-1", preset: str | None = None) -> dict:
        body = {"custom_participant_id": custom_id, "preset_name": preset or HOST_PRESET[self.mode], "name": "Ada"}
        response = self.call("POST", f"/meetings/{meeting_id}/participants", body)
        assert response.status_code == 201, response.text
        return response.json()["data"]


@pytest.fixture(params=MODES)
def api(request, stand_in, http) -> Api:
    return Api(stand_in, request.param, http)


def dyte_error(status: int, message: str) -> dict:
    return {"success": False, "error": {"code": status, "message": message}}


# Authentication


def test_dyte_accepts_only_basic_org_and_key(stand_in, http):
    dyte = Api(stand_in, "dyte", http)
    assert dyte.call("POST", "/meetings", {"title": "x"}).status_code == 201
    wrong = "Basic " + base64.b64encode(b"local-org:wrong").decode()
    for auth in (wrong, "", "Bearer local-realtimekit-api-token", "Basic not-base64!"):
        response = dyte.call("POST", "/meetings", {"title": "x"}, auth=auth)
        assert (response.status_code, response.json()) == (401, dyte_error(401, "Unauthorized"))
    # Dyte documents the webhook routes' 401 without its envelope.
    response = dyte.call("GET", "/webhooks", auth=wrong)
    assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})


def test_realtimekit_answers_a_bad_token_as_cloudflare_documents_and_another_account_in_the_gateways_shape(
    stand_in, http
):
    rtk = Api(stand_in, "realtimekit", http)
    assert rtk.call("POST", "/meetings", {"title": "x"}).status_code == 201
    basic = "Basic " + base64.b64encode(b"local-org:local-dyte-api-key").decode()
    for auth in ("Bearer wrong", "", basic):
        for method, path, body in (("POST", "/meetings", {"title": "x"}), ("GET", "/webhooks", None)):
            response = rtk.call(method, path, body, auth=auth)
            assert (response.status_code, response.json()) == (401, {"message": "Unauthorized"})
    good = {"Authorization": rtk.auth}
    for account, app in (("other-account", "local-app"), ("local-account", "other-app")):
        url = f"{stand_in.realtimekit_base_url}/accounts/{account}/realtime/kit/{app}/meetings"
        response = http.post(url, json={"title": "x"}, headers=good, timeout=5)
        assert (response.status_code, response.json()["errors"]) == (403, GATEWAY_ERROR["errors"])


def test_the_two_modes_keep_separate_state(stand_in, http):
    meeting_id = Api(stand_in, "dyte", http).meeting()
    response = Api(stand_in, "realtimekit", http).call("GET", f"/meetings/{meeting_id}")
    assert (response.status_code, response.json()) == (
        404,
        dyte_error(404, f"No meeting found for meeting_id {meeting_id}"),
    )


# Endpoints


def test_meeting_create_get_and_status(api):
    response = api.call("POST", "/meetings", {"title": "Standup", "record_on_start": True})
    assert response.status_code == 201
    meeting = response.json()["data"]
    assert (meeting["title"], meeting["record_on_start"], meeting["status"]) == ("Standup", True, "ACTIVE")
    assert ("preferred_region" in meeting) is (api.mode == "dyte")
    assert api.call("GET", f"/meetings/{meeting['id']}").json() == {"success": True, "data": meeting}
    patched = api.call("PATCH", f"/meetings/{meeting['id']}", {"status": "INACTIVE"}).json()["data"]
    assert (patched["status"], patched["title"]) == ("INACTIVE", "Standup")
    assert api.call("GET", f"/meetings/{meeting['id']}").json()["data"]["status"] == "INACTIVE"
    unknown = str(uuid.uuid4())
    response = api.call("GET", f"/meetings/{unknown}")
    assert (response.status_code, response.json()) == (
        404,
        dyte_error(404, f"No meeting found for meeting_id {unknown}"),
    )


def test_participant_list_is_paged_with_one_based_offsets(api):
    meeting_id = api.meeting()
    ids = [api.participant(meeting_id, f"user-{n}")["id"] for n in range(5)]
    pages = [api.call("GET", f"/meetings/{meeting_id}/participants?page_no={n}&per_page=2").json() for n in (1, 2, 3)]
    assert [[p["id"] for p in page["data"]] for page in pages] == [ids[0:2], ids[2:4], ids[4:5]]
    assert [page["paging"] for page in pages] == [
        {"total_count": 5, "start_offset": 1, "end_offset": 2},
        {"total_count": 5, "start_offset": 3, "end_offset": 4},
        {"total_count": 5, "start_offset": 5, "end_offset": 5},
    ]
    assert all("token" not in p for page in pages for p in page["data"])
    beyond = api.call("GET", f"/meetings/{meeting_id}/participants?page_no=4&per_page=2").json()
    assert (beyond["data"], beyond["paging"]["total_count"]) == ([], 5)


def test_participant_add_get_edit_token_delete(api, stand_in):
    meeting_id = api.meeting()
    added = api.participant(meeting_id, "user-1")
    assert {k: added[k] for k in ("custom_participant_id", "preset_name", "name")} == {
        "custom_participant_id": "user-1",
        "preset_name": HOST_PRESET[api.mode],
        "name": "Ada",
    }
    path = f"/meetings/{meeting_id}/participants/{added['id']}"
    got = api.call("GET", path).json()["data"]
    assert got == {k: v for k, v in added.items() if k != "token"}

    edited = api.call("PATCH", path, {"preset_name": GUEST_PRESET[api.mode], "name": "Ada L."}).json()["data"]
    assert (edited["preset_name"], edited["name"]) == (GUEST_PRESET[api.mode], "Ada L.")
    assert edited["token"] != added["token"]
    assert (
        jwt.decode(edited["token"], options={"verify_signature": False})["presetId"]
        != jwt.decode(added["token"], options={"verify_signature": False})["presetId"]
    )

    regenerated = api.call("POST", f"{path}/token")
    assert regenerated.status_code == 200
    assert set(regenerated.json()) == {"success", "data"} and set(regenerated.json()["data"]) == {"token"}
    assert stand_in.token_check(regenerated.json()["data"]["token"]) == {"valid": True, "reason": None}

    deleted = api.call("DELETE", path)
    assert deleted.status_code == 200
    assert set(deleted.json()["data"]) == {"custom_participant_id", "preset_id", "created_at", "updated_at"}
    for method in ("GET", "DELETE", "PATCH"):
        response = api.call(method, path, {"name": "x"} if method == "PATCH" else None)
        assert (response.status_code, response.json()) == (
            404,
            dyte_error(404, f"No participant found with id {added['id']}"),
        )
    assert api.call("POST", f"{path}/token").status_code == 404


def test_tokens_are_rs256_jwts_with_the_documented_claims(api, stand_in, http):
    meeting_id = api.meeting()
    added = api.participant(meeting_id)
    assert jwt.get_unverified_header(added["token"])["alg"] == "RS256"
    claims = jwt.decode(added["token"], options={"verify_signature": False})
    organization = "local-org" if api.mode == "dyte" else "local-app"
    assert set(claims) == {"orgId", "meetingId", "participantId", "presetId", "iat", "exp"}
    assert (claims["orgId"], claims["meetingId"], claims["participantId"]) == (organization, meeting_id, added["id"])
    assert claims["exp"] - claims["iat"] == 100 * 24 * 3600
    http.post(f"{stand_in.url}/__admin/switches", json={"token_ttl_seconds": 60}, timeout=5).raise_for_status()
    short = api.call("POST", f"/meetings/{meeting_id}/participants/{added['id']}/token").json()["data"]["token"]
    claims = jwt.decode(short, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60


def test_active_session_kick_and_kick_all(api, stand_in, http):
    meeting_id = api.meeting()
    ada, bob, eve = (api.participant(meeting_id, name) for name in ("ada", "bob", "eve"))
    response = api.call("GET", f"/meetings/{meeting_id}/active-session")
    assert response.json() == dyte_error(404, f"No active session found for meeting_id {meeting_id}")
    assert api.call("POST", f"/meetings/{meeting_id}/active-session/kick-all").status_code == 404

    started = http.post(
        f"{stand_in.url}/__admin/meetings/{api.mode}/{meeting_id}/session",
        json={"custom_participant_ids": ["ada", "bob"], "participant_ids": [eve["id"]]},
        timeout=5,
    )
    assert started.status_code == 201
    session = api.call("GET", f"/meetings/{meeting_id}/active-session").json()["data"]
    assert (session["id"], session["associated_id"], session["status"]) == (started.json()["id"], meeting_id, "LIVE")
    assert (session["live_participants"], session["max_concurrent_participants"]) == (3, 3)

    kicked = api.kick(meeting_id, custom_participant_ids=["ada"])
    assert kicked.json()["data"]["action"] == "kick"
    assert [p["user_id"] for p in kicked.json()["data"]["participants"]] == [ada["id"]]
    again = api.kick(meeting_id, participant_ids=[ada["id"]])
    assert (again.status_code, again.json()["error"]["message"]) == (404, f"No user found with id {ada['id']}")
    assert api.kick(meeting_id).status_code == 400
    both = api.kick(meeting_id, participant_ids=[bob["id"]], custom_participant_ids=["bob"])  # one person, once
    assert [p["user_id"] for p in both.json()["data"]["participants"]] == [bob["id"]]

    ended = api.call("POST", f"/meetings/{meeting_id}/active-session/kick-all")
    assert ended.json() == {"success": True, "data": {"action": "kick-all", "kicked_participants_count": 1}}
    assert api.call("GET", f"/meetings/{meeting_id}/active-session").status_code == 404


def test_realtimekit_can_answer_with_only_what_cloudflares_schemas_require(stand_in, http):
    rtk = Api(stand_in, "realtimekit", http)
    meeting_id = rtk.meeting()
    added = rtk.participant(meeting_id, "ada")
    stand_in.start_session("realtimekit", meeting_id, custom_participant_ids=["ada"])
    stand_in.set_switches(required_answer_fields_only=True)
    listed = rtk.call("GET", f"/meetings/{meeting_id}/participants").json()
    assert set(listed["data"][0]) == {"id", "created_at", "custom_participant_id", "preset_name", "updated_at"}
    assert rtk.call("GET", f"/meetings/{meeting_id}").json() == {"success": True}  # `data` is optional there
    assert rtk.call("POST", f"/meetings/{meeting_id}/active-session/kick-all").json() == {}  # so is everything
    assert rtk.call("POST", f"/meetings/{meeting_id}/participants/{added['id']}/token").json()["data"]["token"]
    assert Api(stand_in, "dyte", http).call("GET", "/webhooks").json() == {"success": True, "data": []}


def test_kick_bodies_are_held_to_each_providers_own_schema(stand_in, http):
    """Dyte's document takes either list; Cloudflare's subset requires both, as its SDK types them."""
    for mode, accepted in (("dyte", True), ("realtimekit", False)):
        api = Api(stand_in, mode, http)
        meeting_id = api.meeting()
        api.participant(meeting_id, "ada")
        stand_in.start_session(mode, meeting_id, custom_participant_ids=["ada"])
        only_custom = api.call(
            "POST", f"/meetings/{meeting_id}/active-session/kick", {"custom_participant_ids": ["ada"]}
        )
        assert (only_custom.status_code == 200) is accepted, only_custom.text
        if not accepted:
            assert only_custom.json()["error"]["message"] == 'BAD_REQUEST: "participant_ids" is required'


def test_realtimekit_answers_leave_out_what_cloudflare_types_as_non_null_strings(stand_in, http):
    rtk = Api(stand_in, "realtimekit", http)
    response = rtk.call("POST", "/meetings", {})  # both documents type a title as a string, never null
    assert response.status_code == 201 and "title" not in response.json()["data"]
    meeting_id = response.json()["data"]["id"]
    body = {"custom_participant_id": "u", "preset_name": "group-call-host"}
    added = rtk.call("POST", f"/meetings/{meeting_id}/participants", body).json()["data"]
    assert "name" not in added and "picture" not in added
    assert "name" not in rtk.call("GET", f"/meetings/{meeting_id}/participants").json()["data"][0]
    dyte = Api(stand_in, "dyte", http)
    assert "title" not in dyte.call("POST", "/meetings", {}).json()["data"]
    dyte_meeting = dyte.meeting()
    unnamed = {"custom_participant_id": "u", "preset_name": "group_call_host"}
    assert dyte.call("POST", f"/meetings/{dyte_meeting}/participants", unnamed).json()["data"]["name"] is None


def test_webhook_management(api):
    url = "https://example.invalid/api/webhooks/dyte"
    created = api.call("POST", "/webhooks", {"name": "all", "url": url, "events": ["meeting.started"]})
    assert created.status_code == 201
    hook = created.json()["data"]
    assert (hook["url"], hook["events"], hook["enabled"]) == (url, ["meeting.started"], True)
    path = f"/webhooks/{hook['id']}"
    assert api.call("GET", "/webhooks").json() == {"success": True, "data": [hook]}
    patched = api.call("PATCH", path, {"enabled": False, "events": ["meeting.ended"]}).json()["data"]
    assert (patched["enabled"], patched["events"], patched["name"]) == (False, ["meeting.ended"], "all")
    replaced = api.call("PUT", path, {"name": "new", "url": url, "events": ["meeting.started"]}).json()["data"]
    assert (replaced["name"], replaced["enabled"]) == ("new", True)
    assert api.call("GET", path).json()["data"] == replaced
    assert api.call("DELETE", path).json()["data"]["id"] == hook["id"]
    assert api.call("GET", path).status_code == 404
    assert api.call("GET", "/webhooks").json()["data"] == []


# Presets


def test_presets_are_seeded_listed_created_and_deleted(api, stand_in):
    listed = api.call("GET", "/presets").json()
    assert [p["name"] for p in listed["data"]] == [HOST_PRESET[api.mode], GUEST_PRESET[api.mode], GUEST[api.mode]]
    by_name = {p["name"]: p["id"] for p in listed["data"]}
    guest = api.call("GET", f"/presets/{by_name[GUEST[api.mode]]}").json()["data"]
    assert guest["permissions"]["waiting_room_type"] == "ON_PRIVILEGED_USER_ENTRY"
    host = api.call("GET", f"/presets/{by_name[HOST_PRESET[api.mode]]}").json()["data"]
    assert (host["permissions"]["accept_waiting_requests"], host["permissions"]["waiting_room_type"]) == (True, "SKIP")

    created = api.call("POST", "/presets", presets.body("participant", "panel"))
    assert created.status_code == 200  # as Dyte documents it
    assert {k: created.json()["data"][k] for k in ("name", "permissions")} == {
        "name": "panel",
        "permissions": presets.body("participant", "panel")["permissions"],
    }
    again = api.call("POST", "/presets", presets.body("participant", "panel"))
    assert (again.status_code, again.json()) == (409, dyte_error(409, "Preset with name panel already exists"))
    meeting_id = api.meeting()
    assert api.participant(meeting_id, "u", preset="panel")["preset_name"] == "panel"
    deleted = api.call("DELETE", f"/presets/{created.json()['data']['id']}")
    assert deleted.json()["data"]["name"] == "panel"
    refused = api.call(
        "POST", f"/meetings/{meeting_id}/participants", {"custom_participant_id": "v", "preset_name": "panel"}
    )
    assert (refused.status_code, refused.json()) == (404, dyte_error(404, "No preset found with name panel"))
    missing = api.call("GET", f"/presets/{created.json()['data']['id']}")
    assert missing.status_code == 404


def test_preset_bodies_are_held_to_the_documented_schema(api):
    whole = presets.body("host", "x")
    for broken, message in (
        ({k: v for k, v in whole.items() if k != "ui"}, '"ui" is required'),
        ({**whole, "config": {**whole["config"], "view_type": "LECTURE"}}, '"config.view_type" must be one of'),
        (
            {**whole, "permissions": {**whole["permissions"], "waiting_room_type": "LATER"}},
            '"permissions.waiting_room_type" must be one of',
        ),
    ):
        response = api.call("POST", "/presets", broken)
        assert response.status_code == 400
        assert response.json()["error"]["message"].startswith(f"BAD_REQUEST: {message}")


def test_the_command_line_seeds_the_presets_the_settings_name(tmp_path):
    values = {"VIDEO_PROVIDER": "realtimekit", "PRESET_GUEST": "lobby", "PRESET_HOST": ""}
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": values}))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DYTE_", "REALTIMEKIT_", "PRESET_", "VIDEO_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "dev.provider", "--port", "0", "--recording-bytes", "1000"],
        cwd=tmp_path,
        env={**environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().split()[3]
        rtk = f"{url}/client/v4/accounts/local-account/realtime/kit/local-app"
        headers = {"Authorization": "Bearer local-realtimekit-api-token"}
        names = [p["name"] for p in requests.get(f"{rtk}/presets", headers=headers, timeout=5).json()["data"]]
        assert names == ["group-call-host", "group-call-participant", "group-call-guest", "lobby"]
        dyte = requests.get(
            f"{url}/v2/presets", headers={"Authorization": "Basic bG9jYWwtb3JnOmxvY2FsLWR5dGUtYXBpLWtleQ=="}, timeout=5
        )
        assert [p["name"] for p in dyte.json()["data"]] == [
            "group_call_host",
            "group_call_participant",
            "group_call_guest",
        ]
        assert requests.get(f"{url}/__admin/switches", timeout=5).json()["recording_size_bytes"] == 1000
    finally:
        process.terminate()
        process.wait(timeout=5)
        process.stdout.close()


# The OpenAPI gate


@pytest.mark.parametrize(
    ("mode", "method", "path", "body", "message"),
    [
        ("dyte", "POST", "/meetings/{m}/participants", {"custom_participant_id": "u"}, '"preset_name" is required'),
        (
            "realtimekit",
            "POST",
            "/meetings/{m}/participants",
            {"preset_name": "x"},
            '"custom_participant_id" is required',
        ),
        (
            "dyte",
            "POST",
            "/meetings",
            {"title": "x", "record_on_start": "yes"},
            '"record_on_start" must be of type boolean',
        ),
        ("dyte", "PATCH", "/meetings/{m}", {"status": "PAUSED"}, '"status" must be one of ["ACTIVE", "INACTIVE"]'),
        ("dyte", "POST", "/meetings", {"preferred_region": "mars-1"}, '"preferred_region" must be one of'),
        (
            "realtimekit",
            "POST",
            "/meetings",
            {"title": "x", "preferred_region": None},
            '"preferred_region" is not allowed',
        ),
        (
            "realtimekit",
            "PATCH",
            "/meetings/{m}",
            {"preferred_region": "us-east-1"},
            '"preferred_region" is not allowed',
        ),
        (
            "dyte",
            "POST",
            "/webhooks",
            {"name": "n", "url": "https://x.invalid", "events": ["x"]},
            '"events.0" must be one of',
        ),
        ("dyte", "POST", "/webhooks", {"name": "n", "url": "not a url", "events": []}, '"url" must be a valid uri'),
        ("dyte", "POST", "/meetings", [], '"value" must be of type object'),
        ("dyte", "GET", "/meetings/not-a-guid", None, '"meeting_id" must be a valid GUID'),
        ("dyte", "GET", "/meetings/{m}/participants?page_no=-1", None, '"page_no" -1.0 is less than the minimum of 0'),
    ],
)
def test_gate_rejects_what_dytes_openapi_document_does_not_allow(stand_in, http, mode, method, path, body, message):
    api = Api(stand_in, mode, http)
    response = api.call(method, path.format(m=api.meeting()), body)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(f"BAD_REQUEST: {message}")


def test_unknown_fields_pass_as_the_document_is_written_and_fail_when_switched_on(stand_in, http):
    dyte = Api(stand_in, "dyte", http)
    assert dyte.call("POST", "/meetings", {"title": "x", "colour": "red"}).status_code == 201
    stand_in.set_switches(reject_unknown_fields=True)
    response = dyte.call("POST", "/meetings", {"title": "x", "recording_config": {"max_seconds": 60, "fps": 3}})
    assert response.json() == dyte_error(400, 'BAD_REQUEST: "recording_config.fps" is not allowed')
    assert dyte.call("POST", "/meetings", {"title": "x", "recording_config": {"max_seconds": 60}}).status_code == 201


def test_gate_routes(stand_in, http):
    dyte = Api(stand_in, "dyte", http)
    response = http.post(dyte.base + "/meetings", data=b"{not json", headers={"Authorization": dyte.auth}, timeout=5)
    assert response.json() == dyte_error(400, "BAD_REQUEST: the request body is not valid JSON")
    meeting_id = dyte.meeting()
    response = dyte.call("DELETE", f"/meetings/{meeting_id}")  # v2 has no DELETE meeting
    assert response.json() == dyte_error(404, f"No route for DELETE /meetings/{meeting_id}")
    assert dyte.call("GET", "/sessions").status_code == 501  # documented, not something this backend calls
    assert http.get(stand_in.url + "/v3/meetings", timeout=5).status_code == 404


def test_unknown_preset_is_refused_as_realtimekit_words_it(api):
    meeting_id = api.meeting()
    other = HOST_PRESET["realtimekit" if api.mode == "dyte" else "dyte"]
    body = {"custom_participant_id": "u", "preset_name": other}
    response = api.call("POST", f"/meetings/{meeting_id}/participants", body)
    assert (response.status_code, response.json()) == (404, dyte_error(404, f"No preset found with name {other}"))
    added = api.participant(meeting_id)
    response = api.call("PATCH", f"/meetings/{meeting_id}/participants/{added['id']}", {"preset_name": other})
    assert "No preset found" in response.json()["error"]["message"]


# Tokens and the switches


@pytest.mark.parametrize("revokes", [False, True])
def test_token_check_after_refresh_and_delete(api, stand_in, http, revokes):
    http.post(f"{stand_in.url}/__admin/switches", json={"refresh_revokes_old_token": revokes}, timeout=5)
    meeting_id = api.meeting()
    added = api.participant(meeting_id)
    path = f"/meetings/{meeting_id}/participants/{added['id']}"
    fresh = api.call("POST", f"{path}/token").json()["data"]["token"]

    def check(token):
        return http.post(f"{stand_in.url}/__admin/token-check", json={"token": token}, timeout=5).json()

    assert fresh != added["token"]
    assert check(fresh) == {"valid": True, "reason": None}
    expected_old = (
        {"valid": False, "reason": "superseded by a newer token"} if revokes else {"valid": True, "reason": None}
    )
    assert check(added["token"]) == expected_old
    api.call("DELETE", path)
    assert check(fresh) == {"valid": False, "reason": "participant deleted"}
    assert check("not-a-token")["valid"] is False


def test_tokens_of_an_inactive_meeting_are_not_usable(api, stand_in):
    meeting_id = api.meeting()
    api.call("PATCH", f"/meetings/{meeting_id}", {"status": "INACTIVE"})
    added = api.participant(meeting_id)  # adding to an INACTIVE meeting is undocumented: allowed
    assert stand_in.token_check(added["token"]) == {"valid": False, "reason": "meeting INACTIVE"}
    with pytest.raises(Exception, match="INACTIVE"):
        stand_in.start_session(api.mode, meeting_id, participant_ids=[added["id"]])
    api.call("PATCH", f"/meetings/{meeting_id}", {"status": "ACTIVE"})
    assert stand_in.token_check(added["token"])["valid"] is True


@pytest.mark.parametrize("reject", [False, True])
def test_duplicate_custom_participant_id(api, stand_in, reject):
    stand_in.set_switches(reject_duplicate_custom_participant_id=reject)
    meeting_id = api.meeting()
    first = api.participant(meeting_id, "same")
    body = {"custom_participant_id": "same", "preset_name": HOST_PRESET[api.mode]}
    response = api.call("POST", f"/meetings/{meeting_id}/participants", body)
    listed = api.call("GET", f"/meetings/{meeting_id}/participants").json()["data"]
    if reject:
        assert response.status_code == 409
        assert response.json()["error"]["message"].startswith("Participant with custom_participant_id same")
        assert [p["id"] for p in listed] == [first["id"]]
    else:
        assert response.status_code == 201 and response.json()["data"]["id"] != first["id"]
        assert [p["custom_participant_id"] for p in listed] == ["same", "same"]


# Faults


def test_fault_429_with_retry_after_then_success(stand_in, http):
    dyte = Api(stand_in, "dyte", http)
    meeting_id = dyte.meeting()
    fault = {"method": "POST", "path": "/meetings$", "times": 1, "status": 429, "retry_after": 1}
    assert http.post(f"{stand_in.url}/__admin/faults", json=fault, timeout=5).status_code == 201
    assert dyte.call("GET", f"/meetings/{meeting_id}").status_code == 200  # other methods and paths pass
    limited = dyte.call("POST", "/meetings", {"title": "x"})
    assert (limited.status_code, limited.headers["Retry-After"], limited.headers["x-envoy-ratelimited"]) == (
        429,
        "1",
        "true",
    )
    assert limited.json() == dyte_error(429, "Too Many Requests")
    assert dyte.call("POST", "/meetings", {"title": "x"}).status_code == 201
    log = http.get(f"{stand_in.url}/__admin/requests", timeout=5).json()
    assert [(e["mode"], e["method"], e["path"], e["status"]) for e in log] == [
        ("dyte", "POST", "/meetings", 201),
        ("dyte", "GET", f"/meetings/{meeting_id}", 200),
        ("dyte", "POST", "/meetings", 429),
        ("dyte", "POST", "/meetings", 201),
    ]


def test_fault_status_takes_effect_only_when_applied(api, stand_in):
    meeting_id = api.meeting()
    stand_in.add_fault(mode=api.mode, method="POST", path="/participants$", times=1, status=500)
    stand_in.add_fault(mode=api.mode, method="POST", path="/participants$", times=1, status=503, apply=True)
    body = {"custom_participant_id": "u", "preset_name": HOST_PRESET[api.mode]}
    statuses = [api.call("POST", f"/meetings/{meeting_id}/participants", body).status_code for _ in range(2)]
    assert statuses == [500, 503]
    assert len(api.call("GET", f"/meetings/{meeting_id}/participants").json()["data"]) == 1


def test_fault_delay_makes_a_client_time_out_and_may_still_apply(stand_in, http):
    dyte = Api(stand_in, "dyte", http)
    meeting_id = dyte.meeting()
    path = f"/meetings/{meeting_id}/participants"
    body = {"custom_participant_id": "slow", "preset_name": "group_call_host"}
    stand_in.add_fault(method="POST", path="/participants$", times=1, delay=0.3, apply=True)
    with pytest.raises(requests.ReadTimeout):
        dyte.call("POST", path, body, timeout=0.1)
    deadline = time.monotonic() + 2
    while not dyte.call("GET", path).json()["data"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p["custom_participant_id"] for p in dyte.call("GET", path).json()["data"]] == ["slow"]

    stand_in.add_fault(method="POST", path="/participants$", times=1, delay=0.1)
    late = dyte.call("POST", path, {**body, "custom_participant_id": "lost"})
    assert (late.status_code, late.text) == (504, "upstream request timeout")
    assert len(dyte.call("GET", path).json()["data"]) == 1


def test_fault_drop_closes_the_connection_without_an_answer(stand_in, http):
    rtk = Api(stand_in, "realtimekit", http)
    meeting_id = rtk.meeting()
    stand_in.add_fault(mode="realtimekit", method="GET", path=r"^/meetings/[^/]+$", times=1, drop=True)
    Api(stand_in, "dyte", http).meeting()  # another mode is untouched
    with pytest.raises(requests.ConnectionError):
        rtk.call("GET", f"/meetings/{meeting_id}")
    assert rtk.call("GET", f"/meetings/{meeting_id}").status_code == 200
    assert [e["status"] for e in stand_in.request_log() if e["method"] == "GET"] == [None, 200]


def test_reset_clears_state_faults_switches_and_log(stand_in, http):
    dyte = Api(stand_in, "dyte", http)
    meeting_id = dyte.meeting()
    stand_in.add_fault(method="GET", status=500)
    stand_in.set_switches(reject_duplicate_custom_participant_id=True)
    assert http.post(f"{stand_in.url}/__admin/reset", timeout=5).json() == {"ok": True}
    assert stand_in.request_log() == []
    assert (
        http.get(f"{stand_in.url}/__admin/switches", timeout=5).json()["reject_duplicate_custom_participant_id"]
        is False
    )
    assert dyte.call("GET", f"/meetings/{meeting_id}").status_code == 404


def test_admin_api_refuses_nonsense(stand_in, http):
    for path, body in (("faults", {}), ("faults", {"status": 500, "nonsense": 1}), ("switches", {"no_such": True})):
        assert http.post(f"{stand_in.url}/__admin/{path}", json=body, timeout=5).status_code == 400
    assert http.post(f"{stand_in.url}/__admin/rotate-key/zoom", timeout=5).status_code == 400
    assert http.get(f"{stand_in.url}/__admin/nothing", timeout=5).status_code == 404


# Webhooks


class Receiver:
    """A tiny webhook endpoint that records what it receives."""

    def __init__(self):
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/webhooks/dyte"


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def verifies(pem: str, body: bytes, signature: str) -> bool:
    key = serialization.load_pem_public_key(pem.encode())
    try:
        key.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def served_key(stand_in: ProviderStandIn, mode: str) -> str:
    if mode == "dyte":
        document = requests.get(f"{stand_in.url}/.well-known/webhooks.json", timeout=5).json()
        return document["data"]["signing_keys"][0]["public_key"]
    document = requests.get(f"{stand_in.url}/realtimekit/.well-known/webhooks.json", timeout=5).json()
    assert (document["success"], document["message"]) == (True, "")
    return document["data"]["publicKey"]


def test_delivery_is_signed_over_the_raw_body_with_the_served_key(api, stand_in, http, receiver):
    prefix = {"dyte": "dyte", "realtimekit": "rtk"}[api.mode]
    hook = api.call("POST", "/webhooks", {"name": "w", "url": receiver.url, "events": ["meeting.started"]})
    off = api.call("POST", "/webhooks", {"name": "off", "url": receiver.url + "/off", "events": ["meeting.started"]})
    api.call("PATCH", f"/webhooks/{off.json()['data']['id']}", {"enabled": False})
    payload = meeting_started(str(uuid.uuid4()), str(uuid.uuid4()), mode=api.mode)
    answer = http.post(
        f"{stand_in.url}/__admin/deliver", json={"mode": api.mode, "payload": payload, "duplicate": 1}, timeout=10
    ).json()
    assert [d["status"] for d in answer["deliveries"]] == [200, 200]
    assert len(receiver.received) == 2
    (headers, body), (again, body_again) = receiver.received
    assert json.loads(body) == payload and body_again == body
    assert headers[f"{prefix}-webhook-id"] == hook.json()["data"]["id"]
    assert headers[f"{prefix}-uuid"] == again[f"{prefix}-uuid"]
    assert verifies(served_key(stand_in, api.mode), body, headers[f"{prefix}-signature"])
    assert not verifies(served_key(stand_in, api.mode), body + b" ", headers[f"{prefix}-signature"])

    # Exact bytes, such as pretty-printed JSON, are signed as sent: re-serializing would not verify.
    raw = json.dumps(meeting_ended(payload["meeting"]["id"], str(uuid.uuid4())), indent=2)
    stand_in.deliver(api.mode, raw_body=raw, url=receiver.url)
    headers, body = receiver.received[-1]
    assert body == raw.encode()
    assert verifies(served_key(stand_in, api.mode), body, headers[f"{prefix}-signature"])
    assert not verifies(
        served_key(stand_in, api.mode), json.dumps(json.loads(body)).encode(), headers[f"{prefix}-signature"]
    )


def test_unsubscribed_events_go_nowhere_and_unreachable_urls_are_reported(stand_in, receiver):
    dyte = Api(stand_in, "dyte", requests.Session())
    dyte.call("POST", "/webhooks", {"name": "w", "url": receiver.url, "events": ["meeting.ended"]})
    assert stand_in.deliver("dyte", meeting_started("m", "s")) == []
    closed = stand_in.deliver("dyte", meeting_started("m", "s"), url="http://127.0.0.1:9/nothing")
    assert (closed[0]["status"], closed[0]["error"]) == (None, "ConnectionError")
    assert receiver.received == []


def test_key_rotation_changes_the_served_key(stand_in, http, receiver):
    before = served_key(stand_in, "realtimekit")
    stand_in.deliver("realtimekit", meeting_started("m", "s", mode="realtimekit"), url=receiver.url)
    rotated = http.post(f"{stand_in.url}/__admin/rotate-key/realtimekit", timeout=5).json()["public_key"]
    assert rotated == served_key(stand_in, "realtimekit") != before
    assert served_key(stand_in, "dyte") == stand_in.public_key_pem("dyte")
    stand_in.deliver("realtimekit", meeting_started("m", "s", mode="realtimekit"), url=receiver.url)
    (old_headers, old_body), (new_headers, new_body) = receiver.received
    assert not verifies(rotated, old_body, old_headers["rtk-signature"])
    assert verifies(before, old_body, old_headers["rtk-signature"])
    assert verifies(rotated, new_body, new_headers["rtk-signature"])


def test_payload_builders_follow_the_documented_shapes():
    dyte = participant_joined("m", "s", custom_participant_id="u", peer_id="p", joined_at="2026-01-01T00:00:00.000Z")
    assert dyte["participant"] == {
        "peerId": "p",
        "userDisplayName": "Participant",
        "clientSpecificId": "u",
        "customParticipantId": "u",
        "joinedAt": "2026-01-01T00:00:00.000Z",
    }
    assert "roomName" not in dyte["meeting"] and dyte["meeting"]["status"] == "LIVE"
    rtk = participant_left("m", "s", custom_participant_id="u", mode="realtimekit", left_at="2026-01-01T00:01:00Z")
    assert (rtk["meeting"]["roomName"], rtk["participant"]["leftAt"]) == ("m", "2026-01-01T00:01:00Z")
    ended = meeting_ended("m", "s", reason="HOST_ENDED_MEETING")
    assert (ended["reason"], "endedAt" in ended["meeting"]) == ("HOST_ENDED_MEETING", True)
    uploaded = recording_status("m", "s", status="UPLOADED", recording_id="r")
    assert (uploaded["recording"]["fileSize"], uploaded["recording"]["roomUUID"]) == (2044680, "s")
    assert uploaded["recording"]["stopReason"].startswith("{'reason'")
    assert uploaded["recording"]["startedTime"][10] == " "  # the documented "2023-04-14 04:46:08.306221Z" form
    assert recording_status("m", "s", status="UPLOADED", mode="realtimekit")["recording"]["fileSize"] == "2044680"
    assert set(recording_status("m", "s", status="RECORDING", recording_id="r")["recording"]) == {
        "id",
        "recordingId",
        "meetingId",
        "organizationId",
        "status",
        "startedTime",
        "roomUUID",
        "outputFileName",
    }


# Recordings without the room: byte ranges, faults, cut and slow files (the room's recordings: test_room.py)


def test_a_recording_made_without_the_room_serves_its_bytes_whole_and_by_range(api, stand_in, http):
    meeting_id, session_id = api.meeting(), str(uuid.uuid4())
    stand_in.set_switches(recording_size_bytes=300_000)
    payload = stand_in.record(api.mode, meeting_id, session_id)
    recording = payload["recording"]
    assert (recording["status"], recording["meetingId"], recording["roomUUID"]) == ("UPLOADED", meeting_id, session_id)
    assert int(recording["fileSize"]) == 300_000
    expected = b"".join(stand_in.recording_bytes(recording["id"]))
    assert len(expected) == 300_000 and expected != b"".join(room.content("another", 300_000))
    whole = http.get(recording["downloadUrl"], timeout=5)
    assert (whole.status_code, whole.content, whole.headers["Content-Type"]) == (200, expected, "video/mp4")
    assert whole.headers["Accept-Ranges"] == "bytes" and "Content-Range" not in whole.headers
    part = http.get(recording["downloadUrl"], headers={"Range": "bytes=70000-"}, timeout=5)
    assert (part.status_code, part.headers["Content-Range"], part.content) == (
        206,
        "bytes 70000-299999/300000",
        expected[70000:],
    )
    for first, last in ((65535, 65537), (0, 0), (131072, 196607), (299_999, 400_000)):
        piece = http.get(recording["downloadUrl"], headers={"Range": f"bytes={first}-{last}"}, timeout=5)
        assert (piece.status_code, piece.content) == (206, expected[first : last + 1]), (first, last)
    past = http.get(recording["downloadUrl"], headers={"Range": "bytes=300000-"}, timeout=5)
    assert (past.status_code, past.headers["Content-Range"]) == (416, "bytes */300000")
    ranges = [e["range"] for e in stand_in.request_log() if e["path"] == f"/__files/recordings/{recording['id']}"]
    assert ranges[:3] == [None, "bytes=70000-", "bytes=65535-65537"] and ranges[-1] == "bytes=300000-"

    answer = api.call("GET", f"/recordings/{recording['id']}")  # checked against the documented schema
    data = answer.json()["data"]
    assert (answer.status_code, data["file_size"], data["session_id"], data["status"]) == (
        200,
        300_000,
        session_id,
        "UPLOADED",
    )
    assert http.get(data["download_url"], timeout=5).content == expected
    tampered = recording["downloadUrl"].replace("sig=", "sig=x")
    assert http.get(tampered, timeout=5).status_code == 403
    with pytest.raises(KeyError):
        stand_in.recording_bytes(str(uuid.uuid4()))


def test_file_answers_take_faults_and_can_be_cut_short_or_slowed(stand_in, http):
    dyte = Api(stand_in, "dyte", http)
    stand_in.set_switches(recording_size_bytes=200_000)
    recording = stand_in.record("dyte", dyte.meeting(), str(uuid.uuid4()))["recording"]
    stand_in.add_fault(mode="dyte", path="^/__files/recordings/", times=1, status=503)
    assert http.get(recording["downloadUrl"], timeout=5).status_code == 503
    assert http.get(recording["downloadUrl"], timeout=5).status_code == 200
    assert [e["status"] for e in stand_in.request_log() if e["path"].startswith("/__files/")] == [503, 200]
    stand_in.set_switches(recording_cut_after_bytes=100_000)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(recording["downloadUrl"], timeout=5)
    cut = http.get(recording["downloadUrl"], headers={"Range": "bytes=150000-"}, timeout=5)  # the rest, whole
    assert (cut.status_code, len(cut.content)) == (206, 50_000)

    # A slow file is still being sent when the stand-in is reset: it stops there, short of its length.
    stand_in.set_switches(recording_cut_after_bytes=0, recording_bytes_per_second=64 * 1024)
    with http.get(recording["downloadUrl"], stream=True, timeout=5) as slow:
        first = slow.raw.read(64 * 1024)
        stand_in.reset()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            b"".join(slow.iter_content(64 * 1024))
    assert len(first) == 64 * 1024


# The server itself


def test_connections_are_kept_alive_and_closed_on_stop():
    provider = ProviderStandIn().start()
    host, port = provider.url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=5)
    for _ in range(3):
        connection.request("GET", "/.well-known/webhooks.json")
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200 and int(response.headers["Content-Length"]) == len(body)
    provider.stop()
    with pytest.raises((ConnectionError, OSError)):
        connection.request("GET", "/.well-known/webhooks.json")
        connection.getresponse()
    connection.close()


def test_command_line_reads_settings_and_stops_cleanly_on_sigterm(tmp_path):
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"Values": {"DYTE_ORG_ID": "file-org", "DYTE_API_KEY": "file-key"}})
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DYTE_", "REALTIMEKIT_"))}
    environ.update(PYTHONPATH=str(ROOT), DYTE_API_KEY="env-key")
    process = subprocess.Popen(
        [sys.executable, "-m", "dev.provider", "--port", "0"],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = line.split()[3]
        assert line.startswith("provider stand-in on http://127.0.0.1:")
        auth = "Basic " + base64.b64encode(b"file-org:env-key").decode()
        answer = requests.post(f"{url}/v2/meetings", json={"title": "x"}, headers={"Authorization": auth}, timeout=5)
        assert answer.status_code == 201
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.stdout.close()


def test_an_interceptor_sees_each_request_first_and_may_answer_for_it(stand_in, http):
    dyte = Api(stand_in, "dyte", http)
    meeting_id = dyte.meeting()
    seen, events = [], []

    def intercept(mode, method, path, query):
        seen.append((mode, method, path, query))
        if method == "POST" and path.endswith("/participants"):
            # Takes effect, then the callback runs (a test kills the app here), then no answer at all.
            return Fault(apply=True, drop=True, then=lambda: events.append("then"))
        return None

    stand_in.interceptor = intercept
    try:
        with pytest.raises(requests.ConnectionError):
            dyte.participant(meeting_id, "killed-here")
        listed = dyte.call("GET", f"/meetings/{meeting_id}/participants?page_no=1")
    finally:
        stand_in.interceptor = None
    assert events == ["then"]
    assert [entry[:3] for entry in seen] == [
        ("dyte", "POST", f"/meetings/{meeting_id}/participants"),
        ("dyte", "GET", f"/meetings/{meeting_id}/participants"),
    ]
    assert seen[1][3] == "page_no=1"
    assert [p["custom_participant_id"] for p in listed.json()["data"]] == ["killed-here"]


def test_snapshot_signed_headers_and_clearing_faults(stand_in, http):
    dyte = Api(stand_in, "dyte", http)
    meeting_id = dyte.meeting()
    added = dyte.participant(meeting_id, "ada")
    session_id = stand_in.start_session("dyte", meeting_id, custom_participant_ids=["ada"])
    snapshot = stand_in.snapshot("dyte")[meeting_id]
    assert snapshot == {
        "status": "ACTIVE",
        "participants": [{"id": added["id"], "custom_participant_id": "ada", "preset_name": HOST_PRESET["dyte"]}],
        "live": {added["id"]: HOST_PRESET["dyte"]},
    }
    assert session_id and stand_in.snapshot("realtimekit") == {}
    body = json.dumps(meeting_started(meeting_id, session_id)).encode()
    headers = stand_in.signed_headers("dyte", body)
    key = serialization.load_pem_public_key(stand_in.public_key_pem("dyte").encode())
    key.verify(base64.b64decode(headers["dyte-signature"]), body, padding.PKCS1v15(), hashes.SHA256())
    # A provider that keeps a peer through a preset change: the peer keeps the rights it entered with.
    stand_in.set_switches(preset_change_drops_peer=False)
    changed = dyte.call("PATCH", f"/meetings/{meeting_id}/participants/{added['id']}", {"preset_name": GUEST["dyte"]})
    assert changed.status_code == 200
    snapshot = stand_in.snapshot("dyte")[meeting_id]
    assert snapshot["participants"][0]["preset_name"] == GUEST["dyte"]
    assert snapshot["live"] == {added["id"]: HOST_PRESET["dyte"]}
    stand_in.add_fault(method="GET", status=500)
    stand_in.clear_faults()
    assert dyte.call("GET", f"/meetings/{meeting_id}").status_code == 200
    assert stand_in.snapshot("dyte")[meeting_id]["participants"]  # clearing faults keeps the state

"""The provider client against the real stand-in over HTTP, for Dyte and RealtimeKit alike.

The stand-in validates every request against Dyte's OpenAPI document (RealtimeKit's against
Cloudflare's own subset where it describes the operation), here with unknown fields refused too;
each test ends by checking that it never had to answer 400. One test also holds every RealtimeKit
request to Cloudflare's subset directly, without the stand-in's gate in between.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qsl

import jwt
import pytest
import requests
from jsonschema import Draft202012Validator

from dev.provider import ProviderStandIn
from shared import presets
from shared.problems import ProviderRejected, ProviderTimeout, ProviderUnavailable
from shared.provider import (
    ParticipantGone,
    ProviderClient,
    ProviderMeeting,
    ProviderParticipant,
    ProviderPreset,
    ProviderWebhook,
    clients_from_settings,
)
from tests import support

SUBSET = Path(__file__).resolve().parents[2] / "dev" / "provider" / "realtimekit-openapi-subset.json"

PROVIDERS = ("dyte", "realtimekit")
HOST = {"dyte": "group_call_host", "realtimekit": "group-call-host"}
GUEST = {"dyte": "group_call_participant", "realtimekit": "group-call-participant"}
SECRETS = ("local-dyte-api-key", "local-realtimekit-api-token")
WRONG = "wrong-secret-4711"


@pytest.fixture(scope="module")
def stand_in():
    with ProviderStandIn().start() as provider:
        yield provider


@pytest.fixture(autouse=True)
def strict_stand_in(stand_in):
    stand_in.reset()
    stand_in.set_switches(reject_unknown_fields=True)
    yield
    refused = [entry for entry in stand_in.request_log() if entry["status"] == 400]
    assert refused == [], "the client sent what Dyte's OpenAPI document does not allow"


class FakeTime:
    """The client's clock and sleep: waits are recorded and pass at once."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake_time():
    return FakeTime()


def make_client(stand_in, name, fake_time, **options) -> ProviderClient:
    session = requests.Session()
    options = {"read_timeout": 0.3, "sleep": fake_time.sleep, "clock": fake_time.clock, **options}
    if name == "dyte":
        return ProviderClient.for_dyte(stand_in.dyte_credentials(), session, **options)
    return ProviderClient.for_realtimekit(stand_in.realtimekit_credentials(), session, **options)


@pytest.fixture(params=PROVIDERS)
def client(request, stand_in, fake_time) -> ProviderClient:
    return make_client(stand_in, request.param, fake_time)


def api_calls(stand_in, method: str | None = None) -> list[dict]:
    return [e for e in stand_in.request_log() if method is None or e["method"] == method]


# Each method


def test_meetings(client, stand_in):
    meeting = client.create_meeting("Standup", record_on_start=True)
    assert meeting == ProviderMeeting(id=meeting.id, status="ACTIVE")
    assert client.get_meeting(meeting.id) == meeting
    assert client.set_meeting_status(meeting.id, "INACTIVE") == ProviderMeeting(meeting.id, "INACTIVE")
    assert client.get_meeting(meeting.id).status == "INACTIVE"
    assert client.set_meeting_status(meeting.id, "ACTIVE").status == "ACTIVE"
    with pytest.raises(ValueError):
        client.set_meeting_status(meeting.id, "ENDED")
    assert [(e["method"], e["status"]) for e in api_calls(stand_in)] == [
        ("POST", 201),
        ("GET", 200),
        ("PATCH", 200),
        ("GET", 200),
        ("PATCH", 200),
    ]


def test_participants(client, stand_in):
    name = client.name
    meeting = client.create_meeting("Standup")
    added = client.add_participant(meeting.id, custom_participant_id="user-1", name="Ada", preset_name=HOST[name])
    assert (added.custom_participant_id, added.preset_name) == ("user-1", HOST[name])
    assert jwt.decode(added.token, options={"verify_signature": False})["participantId"] == added.id
    unnamed = client.add_participant(meeting.id, custom_participant_id="user-2", name=None, preset_name=GUEST[name])
    without_token = ProviderParticipant(added.id, None, HOST[name], "user-1")
    assert client.get_participant(meeting.id, added.id) == without_token
    assert client.find_participant(meeting.id, "user-1") == without_token
    assert client.find_participant(meeting.id, "user-2").id == unnamed.id
    assert client.find_participant(meeting.id, "nobody") is None

    changed = client.set_participant_preset(meeting.id, added.id, GUEST[name])
    assert (changed.id, changed.preset_name) == (added.id, GUEST[name]) and changed.token
    token = client.refresh_token(meeting.id, added.id)
    assert stand_in.token_check(token) == {"valid": True, "reason": None}

    client.delete_participant(meeting.id, added.id)
    assert stand_in.token_check(token)["reason"] == "participant deleted"
    client.delete_participant(meeting.id, added.id)  # already gone: fine
    assert client.get_participant(meeting.id, added.id) is None
    with pytest.raises(ParticipantGone):
        client.refresh_token(meeting.id, added.id)
    with pytest.raises(ParticipantGone):
        client.set_participant_preset(meeting.id, added.id, HOST[name])
    assert client.find_participant(meeting.id, "user-1") is None


def test_find_participant_pages_through_the_list(client, stand_in):
    meeting = client.create_meeting("All hands")
    for n in range(105):
        client.add_participant(meeting.id, custom_participant_id=f"user-{n}", name=None, preset_name=GUEST[client.name])
    before = len(api_calls(stand_in))
    assert client.find_participant(meeting.id, "user-104").custom_participant_id == "user-104"
    assert client.find_participant(meeting.id, "user-3").custom_participant_id == "user-3"
    assert client.find_participant(meeting.id, "nobody") is None
    queries = [e["query"] for e in api_calls(stand_in)[before:]]
    pages = [f"page_no={n}&per_page=50" for n in (1, 2, 3)]
    assert queries == [*pages, pages[0], *pages]


def test_realtimekit_answers_with_only_the_fields_cloudflare_requires_still_serve_the_app(stand_in, fake_time):
    """Cloudflare's schemas make much of an answer optional (the kick-all count, `data` itself for several
    operations). What the app needs from an answer it requires; everything else may be missing."""
    client = make_client(stand_in, "realtimekit", fake_time)
    meeting = client.create_meeting("Standup")
    ada = client.add_participant(meeting.id, custom_participant_id="ada", name="Ada", preset_name=HOST["realtimekit"])
    client.add_participant(meeting.id, custom_participant_id="bob", name=None, preset_name=HOST["realtimekit"])
    stand_in.start_session("realtimekit", meeting.id, custom_participant_ids=["ada", "bob"])
    hook = client.create_webhook("meetings", "https://meetings.example/api/webhooks/dyte", ["meeting.started"])
    stand_in.set_switches(required_answer_fields_only=True)

    assert client.active_session(meeting.id) == {}  # live; its details are optional
    assert client.kick(meeting.id, custom_participant_ids=["bob"]) is None  # kicked, count not said
    assert client.kick_all(meeting.id) is None  # an end or a cancel is no 502 for want of a count
    assert client.active_session(meeting.id) is None
    assert client.set_participant_preset(meeting.id, ada.id, GUEST["realtimekit"]) is None
    assert client.find_participant(meeting.id, "ada") == ProviderParticipant(ada.id, None, GUEST["realtimekit"], "ada")
    assert client.get_participant(meeting.id, ada.id).preset_name == GUEST["realtimekit"]
    assert stand_in.token_check(client.refresh_token(meeting.id, ada.id))["valid"]
    assert client.set_meeting_status(meeting.id, "INACTIVE") == ProviderMeeting(meeting.id, "INACTIVE")
    assert [hook_.id for hook_ in client.list_webhooks()] == [hook.id]
    assert client.update_webhook(hook.id, enabled=False).enabled is False
    client.delete_participant(meeting.id, ada.id)
    # Without `data`, a new meeting or participant has no id or token: nothing the app could use.
    for needs_data in (
        lambda: client.create_meeting("Standup"),
        lambda: client.add_participant(meeting.id, custom_participant_id="c", name=None, preset_name="group-call-host"),
    ):
        with pytest.raises(ProviderRejected, match="does not understand"):
            needs_data()
    assert fake_time.sleeps == []


def test_active_session_and_kicks(client, stand_in, fake_time):
    meeting = client.create_meeting("Standup")
    for custom_id in ("ada", "bob", "eve"):
        client.add_participant(meeting.id, custom_participant_id=custom_id, name=None, preset_name=HOST[client.name])
    assert client.active_session(meeting.id) is None
    assert client.kick_all(meeting.id) == 0
    session_id = stand_in.start_session(client.name, meeting.id, custom_participant_ids=["ada", "bob", "eve"])
    assert client.active_session(meeting.id)["id"] == session_id
    assert client.kick(meeting.id, custom_participant_ids=["ada"]) == 1
    assert client.kick(meeting.id, custom_participant_ids=["ada"]) == 0  # no longer live
    before = len(api_calls(stand_in))
    assert client.kick(meeting.id, custom_participant_ids=[]) == 0
    assert len(api_calls(stand_in)) == before
    assert client.kick_all(meeting.id) == 2
    assert client.active_session(meeting.id) is None
    assert fake_time.sleeps == []


def test_presets(client, stand_in):
    listed = {preset.name: preset for preset in client.list_presets()}
    assert set(listed) == {HOST[client.name], GUEST[client.name], presets_guest(client.name)}
    assert all(preset.permissions is None for preset in listed.values())  # a list item has no permissions
    host = client.get_preset(listed[HOST[client.name]].id)
    assert (host.name, host.permissions["accept_waiting_requests"]) == (HOST[client.name], True)
    assert client.get_preset("7f951e37-492b-45dd-8256-7f1660341c17") is None

    created = client.create_preset(presets.body("guest", "lobby"))
    assert created == ProviderPreset(created.id, "lobby", presets.body("guest", "lobby")["permissions"])
    assert client.get_preset(created.id) == created
    assert "lobby" in {preset.name for preset in client.list_presets()}
    meeting = client.create_meeting("Standup")
    added = client.add_participant(meeting.id, custom_participant_id="u", name=None, preset_name="lobby")
    assert added.preset_name == "lobby"
    with pytest.raises(ProviderRejected, match="HTTP 409"):
        client.create_preset(presets.body("guest", "lobby"))  # names identify presets: one each
    assert [e["status"] for e in api_calls(stand_in, "POST") if e["path"] == "/presets"] == [200, 409]


def test_presets_are_listed_page_by_page(client, stand_in):
    for n in range(60):
        client.create_preset(presets.body("participant", f"room-{n:02d}"))
    before = len(api_calls(stand_in))
    assert len(client.list_presets()) == 63
    assert [e["query"] for e in api_calls(stand_in)[before:]] == [f"page_no={n}&per_page=50" for n in (1, 2)]


def presets_guest(name: str) -> str:
    return {"dyte": "group_call_guest", "realtimekit": "group-call-guest"}[name]


def test_webhooks(client):
    url = "https://meetings.example/api/webhooks/dyte"
    created = client.create_webhook("meetings", url, ["meeting.started", "meeting.ended"])
    assert created == ProviderWebhook(created.id, "meetings", url, ("meeting.started", "meeting.ended"), True)
    assert client.list_webhooks() == [created]
    updated = client.update_webhook(created.id, enabled=False, events=("recording.statusUpdate",))
    assert (updated.enabled, updated.events, updated.url) == (False, ("recording.statusUpdate",), url)
    assert client.list_webhooks() == [updated]
    with pytest.raises(TypeError, match="secret"):
        client.update_webhook(created.id, secret="x")


def test_unknown_preset_is_a_rejection_that_names_the_preset_problem(client):
    meeting = client.create_meeting("Standup")
    other = HOST["realtimekit" if client.name == "dyte" else "dyte"]
    with pytest.raises(ProviderRejected) as caught:
        client.add_participant(meeting.id, custom_participant_id="u", name=None, preset_name=other)
    assert caught.value.detail == "The video provider does not know the preset configured for this role."


def test_an_unknown_meeting_is_a_rejection(client):
    with pytest.raises(ProviderRejected, match=r"HTTP 404"):
        client.get_meeting("7f951e37-492b-45dd-8256-7f1660341c17")
    with pytest.raises(ProviderRejected, match=r"HTTP 404"):
        client.set_meeting_status("7f951e37-492b-45dd-8256-7f1660341c17", "ACTIVE")


def test_deactivating_a_meeting_the_provider_no_longer_has_is_done(client):
    unknown = "7f951e37-492b-45dd-8256-7f1660341c17"
    assert client.set_meeting_status(unknown, "INACTIVE") == ProviderMeeting(unknown, "INACTIVE")


# Retries and failures


def test_429_is_retried_after_the_time_it_asks_for(client, stand_in, fake_time):
    stand_in.add_fault(method="POST", path="/meetings$", times=1, status=429, retry_after=1)
    assert client.create_meeting("Standup").status == "ACTIVE"
    assert fake_time.sleeps == [1.0]
    assert [e["status"] for e in api_calls(stand_in)] == [429, 201]


def test_429_beyond_the_budget_is_unavailable_with_retry_after(client, stand_in, fake_time):
    meeting = client.create_meeting("Standup")
    stand_in.add_fault(method="GET", status=429, retry_after=3)
    with pytest.raises(ProviderUnavailable) as caught:
        client.get_meeting(meeting.id)
    assert fake_time.sleeps == [3.0, 3.0]  # a third wait would pass the 8 s budget
    assert (caught.value.status, caught.value.extensions["retryAfterSeconds"]) == (503, 3)
    assert caught.value.headers["Retry-After"] == "3"
    assert len(api_calls(stand_in, "GET")) == 3


def test_5xx_on_a_read_is_retried_with_backoff(client, stand_in, fake_time):
    meeting = client.create_meeting("Standup")
    stand_in.add_fault(method="GET", times=2, status=500)
    assert client.get_meeting(meeting.id) == meeting
    assert fake_time.sleeps == [0.5, 1.0]
    assert [e["status"] for e in api_calls(stand_in, "GET")] == [500, 500, 200]


def test_5xx_on_create_is_not_retried(client, stand_in, fake_time):
    stand_in.add_fault(method="POST", path="/meetings$", times=1, status=500)
    with pytest.raises(ProviderUnavailable):
        client.create_meeting("Standup")
    assert len(api_calls(stand_in, "POST")) == 1 and fake_time.sleeps == []


def test_5xx_after_add_participant_took_effect_is_not_repeated(client, stand_in):
    meeting = client.create_meeting("Standup")
    stand_in.add_fault(method="POST", path="/participants$", times=1, status=502, apply=True)
    with pytest.raises(ProviderUnavailable):
        client.add_participant(meeting.id, custom_participant_id="u", name=None, preset_name=HOST[client.name])
    # The provider did add it: a retry would have made a duplicate. The caller finds it instead.
    assert client.find_participant(meeting.id, "u") is not None
    assert len(api_calls(stand_in, "POST")) == 2


def test_no_answer_within_the_read_timeout(client, stand_in, fake_time):
    meeting = client.create_meeting("Standup")
    stand_in.add_fault(method="POST", path="/meetings$", times=1, delay=1.0)
    with pytest.raises(ProviderTimeout):
        client.create_meeting("Standup")
    assert fake_time.sleeps == []
    stand_in.add_fault(method="GET", times=1, delay=1.0)
    assert client.get_meeting(meeting.id) == meeting  # a read is simply asked again
    assert fake_time.sleeps == [0.5]


def test_a_dropped_connection(client, stand_in, fake_time):
    meeting = client.create_meeting("Standup")
    stand_in.add_fault(method="POST", path="/participants$", times=1, drop=True)
    with pytest.raises(ProviderUnavailable):
        client.add_participant(meeting.id, custom_participant_id="u", name=None, preset_name=HOST[client.name])
    stand_in.add_fault(method="DELETE", times=1, drop=True)
    client.delete_participant(meeting.id, "a-participant-that-does-not-exist")
    assert [e["status"] for e in api_calls(stand_in) if e["method"] != "POST"] == [None, 404]
    assert fake_time.sleeps == [0.5]


def test_a_refused_connection_is_retried_even_for_a_create(fake_time):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ProviderClient(
        "dyte",
        f"http://127.0.0.1:{port}/v2",
        "Basic eDp5",
        requests.Session(),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )
    with pytest.raises(ProviderUnavailable) as caught:
        client.create_meeting("Standup")
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert caught.value.extensions["retryAfterSeconds"] == 4


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("dyte", {"api_key": "wrong"}),
        ("dyte", {"org_id": "other-org"}),
        ("realtimekit", {"api_token": "wrong"}),
        ("realtimekit", {"account_id": "other-account"}),
        ("realtimekit", {"app_id": "other-app"}),
    ],
)
def test_wrong_credentials_are_a_rejection(stand_in, fake_time, name, change, caplog):
    credentials = stand_in.dyte_credentials() if name == "dyte" else stand_in.realtimekit_credentials()
    factory = ProviderClient.for_dyte if name == "dyte" else ProviderClient.for_realtimekit
    client = factory(replace(credentials, **change), requests.Session(), sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(ProviderRejected) as caught:
        client.create_meeting("Standup")
    assert caught.value.detail == "The video provider rejected our credentials."
    assert fake_time.sleeps == [] and "rejected our credentials" in caplog.text


def test_every_documented_error_shape_reaches_the_log_and_never_a_problem(stand_in, fake_time, caplog):
    caplog.set_level(logging.INFO, logger="shared.provider")
    dyte = make_client(stand_in, "dyte", fake_time)
    rtk = make_client(stand_in, "realtimekit", fake_time)
    wrong = {
        "dyte": ProviderClient.for_dyte(replace(stand_in.dyte_credentials(), api_key=WRONG), requests.Session()),
        "realtimekit": ProviderClient.for_realtimekit(
            replace(stand_in.realtimekit_credentials(), api_token=WRONG), requests.Session()
        ),
        "another account": ProviderClient.for_realtimekit(
            replace(stand_in.realtimekit_credentials(), account_id="another-account"), requests.Session()
        ),
    }
    meeting = dyte.create_meeting("Standup")
    stand_in.add_fault(method="POST", path="/meetings$", mode="realtimekit", times=1, delay=0.05)
    problems = []
    for attempt in (
        lambda: dyte.add_participant(meeting.id, custom_participant_id="u", name=None, preset_name="nope"),
        wrong["dyte"].list_webhooks,  # Dyte's webhook routes answer 401 as a bare {"message"}
        wrong["realtimekit"].list_webhooks,  # so does RealtimeKit, as Cloudflare's subset documents it
        wrong["another account"].list_webhooks,  # Cloudflare's gateway answers {"errors": [...]}
        lambda: rtk.create_meeting("Standup"),  # Envoy's plain-text 504
    ):
        with pytest.raises((ProviderRejected, ProviderUnavailable)) as caught:
            attempt()
        problems.append(json.dumps(caught.value.body()))
    assert caplog.text.count("Unauthorized") == 2
    for message in (
        "No preset found with name nope",
        "Unauthorized",
        "Authentication error",
        "upstream request timeout",
    ):
        assert message in caplog.text
        assert all(message not in problem for problem in problems)
    for secret in (*SECRETS, WRONG):
        assert all(secret not in problem for problem in problems)
        assert secret not in caplog.text


def test_clients_from_settings_share_one_sized_pool(stand_in, monkeypatch):
    settings = support.load(
        DYTE_API_BASE_URL=stand_in.dyte_base_url, REALTIMEKIT_API_BASE_URL=stand_in.realtimekit_base_url
    )
    monkeypatch.setenv("PYTHON_THREADPOOL_THREAD_COUNT", "7")
    clients = clients_from_settings(settings)
    assert set(clients) == {"dyte", "realtimekit"}
    session = clients["dyte"]._session
    assert clients["realtimekit"]._session is session
    assert session.get_adapter(stand_in.url)._pool_maxsize == 7
    for client in clients.values():
        assert client.create_meeting("Standup").status == "ACTIVE"
    assert {e["mode"] for e in stand_in.request_log()} == {"dyte", "realtimekit"}
    monkeypatch.delenv("PYTHON_THREADPOOL_THREAD_COUNT")
    only_dyte = clients_from_settings(
        support.load(REALTIMEKIT_ACCOUNT_ID="", REALTIMEKIT_APP_ID="", REALTIMEKIT_API_TOKEN="")
    )
    assert set(only_dyte) == {"dyte"}
    assert only_dyte["dyte"]._session.get_adapter("https://api.dyte.io")._pool_maxsize == 16


# Cloudflare's own description of RealtimeKit


def subset_operations() -> list[tuple[str, re.Pattern[str], dict]]:
    document = json.loads(SUBSET.read_text())
    operations = []
    for key, spec in document["operations"].items():
        method, template = key.split(" ", 1)
        path = template.removeprefix("/accounts/{account_id}/realtime/kit/{app_id}")
        operations.append((method, re.compile(re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), spec))
    return operations


def test_every_realtimekit_request_fits_cloudflares_own_subset(stand_in, fake_time):
    """Every call the client makes in RealtimeKit mode, checked here against the vendored subset itself."""
    client = make_client(stand_in, "realtimekit", fake_time)
    meeting = client.create_meeting("Standup", record_on_start=True)
    client.get_meeting(meeting.id)
    added = client.add_participant(meeting.id, custom_participant_id="ada", name="Ada", preset_name=HOST["realtimekit"])
    client.add_participant(meeting.id, custom_participant_id="bob", name=None, preset_name=GUEST["realtimekit"])
    client.find_participant(meeting.id, "bob")
    client.get_participant(meeting.id, added.id)
    client.set_participant_preset(meeting.id, added.id, GUEST["realtimekit"])
    client.refresh_token(meeting.id, added.id)
    stand_in.start_session("realtimekit", meeting.id, custom_participant_ids=["ada", "bob"])
    client.active_session(meeting.id)
    client.kick(meeting.id, custom_participant_ids=["ada"])
    client.kick_all(meeting.id)
    client.delete_participant(meeting.id, added.id)
    client.set_meeting_status(meeting.id, "INACTIVE")
    hook = client.create_webhook("meetings", "https://meetings.example/api/webhooks/dyte", ["meeting.started"])
    client.list_webhooks()
    client.update_webhook(hook.id, enabled=False, events=["meeting.ended"])
    client.create_preset(presets.body("guest", "lobby"))
    client.get_preset(client.list_presets()[0].id)

    operations = subset_operations()
    covered, outside = set(), set()
    for call in api_calls(stand_in):
        assert call["status"] is not None and call["status"] < 400, call
        found = next((op for op in operations if op[0] == call["method"] and op[1].match(call["path"])), None)
        if found is None:
            outside.add((call["method"], re.sub(r"/[0-9a-f-]{36}", "/{id}", call["path"])))
            continue
        method, _, spec = found
        covered.add(spec["operationId"])
        if spec["openapi_operation"].get("requestBody"):
            errors = [e.message for e in Draft202012Validator(spec["request_body_schema"]).iter_errors(call["body"])]
            assert not errors, f"{method} {call['path']}: {errors}"
        else:
            assert call["body"] is None, f"{method} {call['path']} takes no body"
        query = {name: float(value) for name, value in parse_qsl(call["query"])}
        errors = [e.message for e in Draft202012Validator(spec.get("query_schema", {})).iter_errors(query)]
        assert not errors, f"{method} {call['path']}?{call['query']}: {errors}"
    assert covered == {spec["operationId"] for _, _, spec in operations}  # every operation the subset describes
    # The subset describes neither presets nor recordings: those are held to Dyte's document by the gate.
    assert outside == {("GET", "/presets"), ("POST", "/presets"), ("GET", "/presets/{id}")}

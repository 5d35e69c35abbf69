"""The local room over real HTTP: entering and leaving, the waiting room, removals by the provider API, the signed
webhooks it sends to a registered receiver, and recordings with their expiring download links."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from dev.provider import ProviderStandIn, openapi
from shared.events import state

MODES = ("dyte", "realtimekit")
PRESET = {
    "dyte": {"host": "group_call_host", "participant": "group_call_participant", "guest": "group_call_guest"},
    "realtimekit": {"host": "group-call-host", "participant": "group-call-participant", "guest": "group-call-guest"},
}


class Clock:
    """The stand-in's clock for download links: real time plus what the test skips ahead."""

    def __init__(self):
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.time() + self.skipped


class Receiver:
    """A webhook endpoint on loopback: keeps what arrives; `fail` answers 503 that many times first."""

    def __init__(self):
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail = 0
        self.arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.arrived:
                    status = 503 if outer.fail > 0 else 200
                    outer.fail -= status == 503
                    if status == 200:
                        outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    outer.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/webhooks/dyte"

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, timeout), self.names()
        return self.events()

    def names(self) -> list[str]:
        return [
            event["event"] + (f":{event['recording']['status']}" if "recording" in event else "")
            for event in self.events()
        ]


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def stand_in(clock):
    with ProviderStandIn(clock=clock, webhook_retry_delay=0.05).start() as provider:
        yield provider


@pytest.fixture
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


@pytest.fixture(autouse=True)
def clean(stand_in, clock):
    stand_in.reset()
    clock.skipped = 0.0


class Provider:
    """One mode's provider API, as the app calls it."""

    def __init__(self, stand_in: ProviderStandIn, mode: str):
        self.stand_in, self.mode = stand_in, mode
        if mode == "dyte":
            self.base = stand_in.dyte_base_url
            self.auth = "Basic " + base64.b64encode(b"local-org:local-dyte-api-key").decode()
        else:
            self.base = f"{stand_in.realtimekit_base_url}/accounts/local-account/realtime/kit/local-app"
            self.auth = "Bearer local-realtimekit-api-token"

    def call(self, method: str, path: str, body=None) -> requests.Response:
        response = requests.request(
            method, self.base + path, json=body, headers={"Authorization": self.auth}, timeout=5
        )
        operation, _ = openapi.gates()[self.mode].find(method, path)
        validator = operation.responses.get(str(response.status_code))
        if validator is not None:
            errors = [error.message for error in validator.iter_errors(response.json())]
            assert not errors, f"{method} {path} answered outside the {self.mode} schema: {errors}"
        return response

    def subscribe(self, url: str) -> None:
        body = {"name": "app", "url": url, "events": list(state.HANDLED)}
        assert self.call("POST", "/webhooks", body).status_code == 201

    def meeting(self, record: bool = False) -> str:
        return self.call("POST", "/meetings", {"title": "Weekly sync", "record_on_start": record}).json()["data"]["id"]

    def person(self, meeting_id: str, name: str, role: str) -> Person:
        body = {"custom_participant_id": f"cp-{name}", "preset_name": PRESET[self.mode][role], "name": name.title()}
        data = self.call("POST", f"/meetings/{meeting_id}/participants", body).json()["data"]
        return Person(self, meeting_id, data["id"], f"cp-{name}", data["token"])


class Person:
    """A participant in the local room, holding the token the app's join answer carries."""

    def __init__(self, provider: Provider, meeting_id: str, participant_id: str, custom_id: str, token: str):
        self.provider, self.meeting_id, self.id, self.custom_id, self.token = (
            provider,
            meeting_id,
            participant_id,
            custom_id,
            token,
        )

    def room(self, action: str, body=None, token: str | None = None) -> requests.Response:
        method = "GET" if action == "state" else "POST"
        headers = {"Authorization": f"Bearer {token or self.token}", "Origin": "http://localhost:5173"}
        response = requests.request(
            method, f"{self.provider.stand_in.url}/__room/{action}", json=body, headers=headers, timeout=5
        )
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        return response

    def do(self, action: str, body=None) -> dict:
        response = self.room(action, body)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(params=MODES)
def provider(request, stand_in) -> Provider:
    return Provider(stand_in, request.param)


def verifies(pem: str, body: bytes, signature: str) -> bool:
    key = serialization.load_pem_public_key(pem.encode())
    try:
        key.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def test_entering_starts_a_session_and_signed_webhooks_reach_the_registered_receiver(provider, receiver):
    provider.subscribe(receiver.url)
    meeting_id = provider.meeting()
    ada = provider.person(meeting_id, "ada", "host")
    seen = ada.do("enter")
    assert seen == {
        "mode": provider.mode,
        "meetingId": meeting_id,
        "sessionId": seen["sessionId"],
        "me": {"participantId": ada.id, "name": "Ada", "preset": PRESET[provider.mode]["host"], "state": "present"},
        "canAdmit": True,
        "present": [{"participantId": ada.id, "name": "Ada", "preset": PRESET[provider.mode]["host"]}],
        "waiting": [],
    }
    assert ada.do("enter") == seen  # entering again while present changes nothing
    started, joined = receiver.wait_for(2)
    assert (started["event"], started["meeting"]["id"], started["meeting"]["sessionId"]) == (
        "meeting.started",
        meeting_id,
        seen["sessionId"],
    )
    assert joined["event"] == "meeting.participantJoined"
    assert {k: joined["participant"][k] for k in ("customParticipantId", "clientSpecificId", "userDisplayName")} == {
        "customParticipantId": "cp-ada",
        "clientSpecificId": "cp-ada",
        "userDisplayName": "Ada",
    }
    assert ("roomName" in joined["meeting"]) is (provider.mode == "realtimekit")  # as each provider documents it
    prefix = "dyte" if provider.mode == "dyte" else "rtk"
    pem = provider.stand_in.public_key_pem(provider.mode)
    for headers, body in receiver.received:
        assert verifies(pem, body, headers[f"{prefix}-signature"]) and headers[f"{prefix}-uuid"]
    # What the app makes of them: a live session with Ada in it.
    event = state.parse(joined, "2026-11-25T10:00:00.000000Z")
    assert (event.session_id, event.participant.custom_participant_id) == (seen["sessionId"], "cp-ada")

    assert ada.do("leave")["me"]["state"] == "left"  # the last one out: the session ends
    left, ended = receiver.wait_for(4)[2:]
    assert (left["event"], left["participant"]["peerId"]) == (
        "meeting.participantLeft",
        joined["participant"]["peerId"],
    )
    assert (ended["event"], ended["reason"], ended["meeting"]["sessionId"]) == (
        "meeting.ended",
        "ALL_PARTICIPANTS_LEFT",
        seen["sessionId"],
    )
    assert ada.do("state")["sessionId"] is None
    assert provider.call("GET", f"/meetings/{meeting_id}/active-session").status_code == 404


def test_a_guest_waits_unseen_until_a_present_host_admits_them(provider, receiver):
    provider.subscribe(receiver.url)
    meeting_id = provider.meeting()
    host, guest, member = (
        provider.person(meeting_id, n, r) for n, r in (("hal", "host"), ("gus", "guest"), ("mo", "participant"))
    )
    waiting = guest.do("enter")
    assert (waiting["me"]["state"], waiting["sessionId"], waiting["canAdmit"], waiting["waiting"]) == (
        "waiting",
        None,
        False,
        [],
    )
    assert guest.do("enter")["me"]["state"] == "waiting"
    assert host.room("admit", {"participantId": guest.id}).status_code == 403  # not present: cannot admit yet
    host.do("enter")
    member.do("enter")
    assert member.do("state")["waiting"] == []  # only those who may admit see who waits
    assert member.room("admit", {"participantId": guest.id}).status_code == 403
    assert host.do("state")["waiting"] == [{"participantId": guest.id, "name": "Gus"}]
    receiver.wait_for(3)
    assert [e["participant"]["customParticipantId"] for e in receiver.events() if "participant" in e] == [
        "cp-hal",
        "cp-mo",
    ]

    assert host.room("admit", {"participantId": member.id}).status_code == 404  # present, not waiting
    assert host.room("admit", {"participant": guest.id}).status_code == 400
    admitted = host.do("admit", {"participantId": guest.id})
    assert [p["participantId"] for p in admitted["present"]] == [host.id, member.id, guest.id]
    assert admitted["waiting"] == []
    assert guest.do("state")["me"]["state"] == "present"
    joined = receiver.wait_for(4)[3]
    assert (joined["event"], joined["participant"]["customParticipantId"]) == ("meeting.participantJoined", "cp-gus")

    # The guest preset holds them again on every entry; leaving while waiting just stops waiting.
    guest.do("leave")
    assert guest.do("enter")["me"]["state"] == "waiting"
    assert guest.do("leave")["me"]["state"] == "left"
    assert host.do("state")["waiting"] == []


@pytest.mark.parametrize("removal", ["kick", "delete", "preset"])
def test_the_provider_api_removes_a_present_participant(provider, receiver, removal):
    provider.subscribe(receiver.url)
    meeting_id = provider.meeting()
    host, member = provider.person(meeting_id, "hal", "host"), provider.person(meeting_id, "mo", "participant")
    host.do("enter")
    member.do("enter")
    receiver.wait_for(3)
    path = f"/meetings/{meeting_id}/participants/{member.id}"
    if removal == "kick":
        body = {"custom_participant_ids": [member.custom_id], "participant_ids": []}
        assert provider.call("POST", f"/meetings/{meeting_id}/active-session/kick", body).status_code == 200
    elif removal == "delete":
        assert provider.call("DELETE", path).status_code == 200
    else:
        assert provider.call("PATCH", path, {"preset_name": PRESET[provider.mode]["host"]}).status_code == 200
    left = receiver.wait_for(4)[3]
    assert (left["event"], left["participant"]["customParticipantId"]) == ("meeting.participantLeft", "cp-mo")
    assert [p["participantId"] for p in host.do("state")["present"]] == [host.id]  # the session goes on
    if removal == "delete":
        refused = member.room("state")
        assert (refused.status_code, refused.json()) == (401, {"error": "the participant was deleted"})
    else:
        assert member.do("state")["me"]["state"] == "removed"
        assert member.do("enter")["me"]["state"] == "present"  # they may come back


def test_kick_all_and_deactivation_end_the_session_for_everyone(provider, receiver):
    provider.subscribe(receiver.url)
    meeting_id = provider.meeting()
    host, member, guest = (
        provider.person(meeting_id, n, r) for n, r in (("hal", "host"), ("mo", "participant"), ("gus", "guest"))
    )
    host.do("enter")
    member.do("enter")
    guest.do("enter")
    receiver.wait_for(3)
    assert (
        provider.call("POST", f"/meetings/{meeting_id}/active-session/kick-all").json()["data"][
            "kicked_participants_count"
        ]
        == 2
    )
    events = receiver.wait_for(6)[3:]
    assert [e["event"] for e in events] == ["meeting.participantLeft", "meeting.participantLeft", "meeting.ended"]
    assert events[2]["reason"] == "HOST_ENDED_MEETING"
    assert {person.do("state")["me"]["state"] for person in (host, member, guest)} == {"ended"}

    host.do("enter")  # a new session
    receiver.wait_for(8)
    assert provider.call("PATCH", f"/meetings/{meeting_id}", {"status": "INACTIVE"}).status_code == 200
    assert [e["event"] for e in receiver.wait_for(10)[8:]] == ["meeting.participantLeft", "meeting.ended"]
    assert host.do("state")["me"]["state"] == "ended"
    refused = host.room("enter")
    assert refused.status_code == 409 and "INACTIVE" in refused.json()["error"]


def test_a_recording_is_invoked_uploaded_and_downloadable_until_its_link_expires(provider, receiver, clock):
    provider.stand_in.set_switches(recording_size_bytes=3 * 1024 * 1024 + 17, recording_link_ttl_seconds=600)
    provider.subscribe(receiver.url)
    meeting_id = provider.meeting(record=True)
    ada = provider.person(meeting_id, "ada", "host")
    ada.do("enter")
    time.sleep(1.1)  # a recording of at least a second
    ada.do("leave")
    events = receiver.wait_for(8)
    assert receiver.names() == [
        "meeting.started",
        "recording.statusUpdate:INVOKED",
        "recording.statusUpdate:RECORDING",
        "meeting.participantJoined",
        "meeting.participantLeft",
        "meeting.ended",
        "recording.statusUpdate:UPLOADING",
        "recording.statusUpdate:UPLOADED",
    ]
    uploaded = events[-1]["recording"]
    session_id = events[0]["meeting"]["sessionId"]
    assert (uploaded["roomUUID"], events[-1]["meeting"]["sessionId"]) == (session_id, session_id)
    size = 3 * 1024 * 1024 + 17
    assert uploaded["fileSize"] == (str(size) if provider.mode == "realtimekit" else size)
    assert uploaded["recordingDuration"] >= 1
    assert state.instant(uploaded["downloadUrlExpiry"]) > state.instant(uploaded["stoppedTime"])

    download = requests.get(uploaded["downloadUrl"], timeout=10)
    assert (download.status_code, download.headers["Content-Type"], len(download.content)) == (200, "video/mp4", size)
    assert requests.get(uploaded["downloadUrl"], timeout=10).content == download.content  # deterministic
    assert hashlib.sha256(download.content).digest() != hashlib.sha256(bytes(size)).digest()
    link = urlsplit(uploaded["downloadUrl"])
    query = parse_qs(link.query)
    forged = f"{link.scheme}://{link.netloc}{link.path}?expires={int(query['expires'][0]) + 3600}&sig={query['sig'][0]}"
    assert requests.get(forged, timeout=5).status_code == 403

    clock.skipped = 601
    expired = requests.get(uploaded["downloadUrl"], timeout=5)
    assert expired.status_code == 403 and "expired" in expired.json()["error"]
    fresh = provider.call("GET", f"/recordings/{uploaded['id']}").json()["data"]  # the documented recordings API
    assert (fresh["status"], fresh["file_size"], fresh["session_id"]) == ("UPLOADED", size, session_id)
    assert fresh["download_url"] != uploaded["downloadUrl"]
    again = requests.get(fresh["download_url"], timeout=10)
    assert (again.status_code, again.content) == (200, download.content)
    assert provider.call("GET", "/recordings/7f951e37-492b-45dd-8256-7f1660341c17").status_code == 404


def test_a_recording_in_progress_has_no_link_yet(provider, receiver):
    provider.subscribe(receiver.url)
    meeting_id = provider.meeting(record=True)
    provider.person(meeting_id, "ada", "host").do("enter")
    recording = receiver.wait_for(3)[2]["recording"]
    current = provider.call("GET", f"/recordings/{recording['id']}").json()["data"]
    assert (current["status"], current["download_url"], current["stopped_time"]) == ("RECORDING", None, None)


def test_tokens_that_may_not_enter_get_401(provider, stand_in):
    meeting_id = provider.meeting()
    ada = provider.person(meeting_id, "ada", "host")
    for token in ("", "not-a-jwt", ada.token[:-4] + "AAAA"):
        response = requests.post(
            f"{stand_in.url}/__room/enter", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert response.status_code == 401 and response.json()["error"]
    assert requests.post(f"{stand_in.url}/__room/enter", timeout=5).status_code == 401
    stand_in.set_switches(refresh_revokes_old_token=True)
    fresh = provider.call("POST", f"/meetings/{meeting_id}/participants/{ada.id}/token").json()["data"]["token"]
    assert ada.room("enter").status_code == 401  # superseded by the refresh
    assert ada.room("enter", token=fresh).json()["me"]["state"] == "present"
    stand_in.set_switches(token_ttl_seconds=0)
    expired = provider.call("POST", f"/meetings/{meeting_id}/participants/{ada.id}/token").json()["data"]["token"]
    time.sleep(2.1)  # `iat` may run a second ahead (see Tenant._issue_token)
    response = ada.room("state", token=expired)
    assert (response.status_code, response.json()) == (401, {"error": "the participant token has expired"})


def test_webhooks_are_sent_in_the_background_and_retried_on_a_5xx(provider, receiver, stand_in):
    provider.subscribe(receiver.url)
    receiver.fail = 2
    meeting_id = provider.meeting()
    provider.person(meeting_id, "ada", "host").do("enter")  # answers before anything reached the receiver
    assert stand_in.drain_webhooks()
    assert [e["event"] for e in receiver.events()] == ["meeting.started", "meeting.participantJoined"]
    log = stand_in.sent_webhooks()
    assert [(e["event"], e["status"], e["attempts"]) for e in log] == [
        ("meeting.started", 200, 3),
        ("meeting.participantJoined", 200, 1),
    ]
    # A receiver that is down: a few retries, then the provider gives up.
    provider.call(
        "PATCH",
        f"/webhooks/{provider.call('GET', '/webhooks').json()['data'][0]['id']}",
        {"url": "http://127.0.0.1:9/x"},
    )
    provider.person(meeting_id, "bob", "host").do("enter")
    assert stand_in.drain_webhooks()
    assert stand_in.sent_webhooks()[-1] | {"uuid": None} == {
        "url": "http://127.0.0.1:9/x",
        "uuid": None,
        "status": None,
        "error": "ConnectionError",
        "mode": provider.mode,
        "event": "meeting.participantJoined",
        "webhook_id": log[0]["webhook_id"],
        "attempts": 4,
    }


def test_cors_preflight_and_unknown_routes(stand_in):
    preflight = requests.options(
        f"{stand_in.url}/__room/enter",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
        timeout=5,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert set(preflight.headers["Access-Control-Allow-Headers"].split(", ")) == {"Authorization", "Content-Type"}
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    for method, path in (("GET", "/__room/enter"), ("POST", "/__room/state"), ("POST", "/__room/dance")):
        response = requests.request(method, f"{stand_in.url}{path}", timeout=5)
        assert response.status_code == 404 and response.headers["Access-Control-Allow-Origin"] == "*"
    assert requests.post(f"{stand_in.url}/__room/enter", data=b"{nope", timeout=5).status_code == 400


def test_a_provider_that_keeps_the_peer_after_a_preset_change(provider, receiver, stand_in):
    stand_in.set_switches(preset_change_drops_peer=False)
    provider.subscribe(receiver.url)
    meeting_id = provider.meeting()
    member = provider.person(meeting_id, "mo", "participant")
    member.do("enter")
    receiver.wait_for(2)
    path = f"/meetings/{meeting_id}/participants/{member.id}"
    assert provider.call("PATCH", path, {"preset_name": PRESET[provider.mode]["host"]}).status_code == 200
    seen = member.do("state")
    assert (seen["me"]["state"], seen["me"]["preset"], seen["canAdmit"]) == (
        "present",
        PRESET[provider.mode]["host"],
        True,
    )
    assert stand_in.drain_webhooks() and len(receiver.events()) == 2  # nobody left

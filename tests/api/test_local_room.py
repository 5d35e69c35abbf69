"""The local room with the real app, as `make run` wires them: joins through the API, the room entered with the join
answer's token, the stand-in's signed webhooks to the app's receiver, and what the API then shows. Also the
provider answering a kick-all without the count Cloudflare marks optional."""

from __future__ import annotations

import time

import requests

from shared.events import state
from shared.provider import ProviderClient


def provider_client(app) -> ProviderClient:
    if app.video_provider == "dyte":
        return ProviderClient.for_dyte(app.provider.dyte_credentials(), requests.Session())
    return ProviderClient.for_realtimekit(app.provider.realtimekit_credentials(), requests.Session())


def room(app, token: str, action: str) -> dict:
    method = "GET" if action == "state" else "POST"
    response = requests.request(
        method, f"{app.provider.url}/__room/{action}", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert response.status_code == 200, response.text
    return response.json()


def eventually(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_a_call_in_the_local_room_becomes_a_session_attendance_and_a_recording(app):
    client = provider_client(app)
    hook = client.create_webhook("local room test", f"{app.url}/api/webhooks/dyte", list(state.HANDLED))
    app.provider.set_switches(recording_size_bytes=200_000)
    try:
        owner, member = app.user("owner"), app.user("member")
        meeting = owner.create(
            invitees=[{"email": member.email, "role": "participant"}], settings={"recordOnStart": True}
        )
        path = f"/meetings/{meeting['id']}"
        tokens = [user.call("POST", f"{path}/join").json()["authToken"] for user in (owner, member)]
        entered = [room(app, token, "enter") for token in tokens]
        assert [e["me"]["state"] for e in entered] == ["present", "present"]
        assert entered[0]["canAdmit"] and not entered[1]["canAdmit"]  # the owner has the host preset
        eventually(lambda: owner.call("GET", path).json()["status"] == "live", "live")

        for token in tokens:
            room(app, token, "leave")
        owner_id, member_id = (user.call("GET", "/me").json()["id"] for user in (owner, member))
        (session,) = eventually(
            lambda: (items := owner.call("GET", f"{path}/sessions").json()["items"]) and items[0]["endedAt"] and items,
            "the ended session",
        )
        assert session["id"] == entered[0]["sessionId"] and session["endReason"] == "ALL_PARTICIPANTS_LEFT"
        assert sorted(p["userId"] for p in session["participants"]) == sorted([owner_id, member_id])
        assert all(p["leftAt"] and p["durationSeconds"] is not None for p in session["participants"])
        eventually(lambda: owner.call("GET", path).json()["status"] == "ended", "ended")
        (recording,) = eventually(
            lambda: (
                (items := owner.call("GET", f"{path}/recordings").json()["items"])
                and items[0]["status"] == "UPLOADED"
                and items
            ),
            "the uploaded recording",
        )
        assert (recording["sessionId"], recording["sizeBytes"]) == (session["id"], 200_000)
        download = requests.get(recording["downloadUrl"], timeout=10)
        assert (download.status_code, len(download.content)) == (200, 200_000)
    finally:
        app.provider.set_switches(recording_size_bytes=3 * 1024 * 1024)
        client._call("DELETE", f"/webhooks/{hook.id}")  # other tests' rooms must not report to this app


def test_ending_a_call_succeeds_when_the_provider_answers_only_what_its_schema_requires(app):
    """RealtimeKit may leave out the kick-all count (and the active session's details): no 502 for that."""
    owner = app.user("owner")
    meeting = owner.create()
    token = owner.call("POST", f"/meetings/{meeting['id']}/join").json()["authToken"]
    room(app, token, "enter")
    app.provider.set_switches(required_answer_fields_only=True)  # RealtimeKit's answers only; Dyte's as ever
    try:
        assert owner.call("POST", f"/meetings/{meeting['id']}/end").status_code == 202
    finally:
        app.provider.set_switches(required_answer_fields_only=False)
    assert room(app, token, "state")["me"]["state"] == "ended"
    assert provider_client(app).active_session(meeting["providerMeetingId"]) is None

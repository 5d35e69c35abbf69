"""Closing an account (DELETE /api/me) and exporting it, over HTTP with real webhooks and a real provider."""

import time
import uuid

import pytest
import requests

from dev.provider import meeting_started, participant_joined, participant_left
from shared.provider import ProviderClient
from tests.api.conftest import problem


def wait_for(predicate, timeout=30.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(interval)


def deliver(app, payload):
    statuses = app.provider.deliver(app.video_provider, payload, url=f"{app.url}/api/webhooks/dyte")
    assert {entry["status"] for entry in statuses} == {200}


def attended(app, user, meeting, session_id, peer, joined_at, left_at):
    joined = user.call("POST", f"/meetings/{meeting['id']}/join").json()
    custom = next(
        p["custom_participant_id"] for p in provider_participants(app, meeting) if p["id"] == joined["participantId"]
    )
    base = {"meeting_id": meeting["providerMeetingId"], "session_id": session_id}
    deliver(
        app, participant_joined(**base, peer_id=peer, custom_participant_id=custom, name=user.name, joined_at=joined_at)
    )
    deliver(
        app,
        participant_left(
            **base, peer_id=peer, custom_participant_id=custom, name=user.name, joined_at=joined_at, left_at=left_at
        ),
    )


def provider_participants(app, meeting):
    client = ProviderClient.for_dyte(app.provider.dyte_credentials(), requests.Session())
    return client._call(
        "GET", f"/meetings/{meeting['providerMeetingId']}/participants", params={"page_no": 1, "per_page": 100}
    )["data"]


def every_value(app):
    """Every string and binary value of every table of this app, for the erasure check."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(app.storage.server.connection_string)
    for table in service.list_tables():
        if not table.name.startswith(app.prefix):
            continue
        for row in service.get_table_client(table.name).list_entities():
            for key in ("PartitionKey", "RowKey", *row):
                value = row.get(key) if key in row else None
                if isinstance(value, bytes):
                    yield table.name, value.decode("utf-8", "replace")
                elif isinstance(value, str):
                    yield table.name, value


@pytest.fixture
def scene(dyte_app):
    """Zelda owns a meeting with Bob invited; Zelda and Alice both attended Alice's meeting."""
    app = dyte_app
    zelda = app.user("zelda")
    zelda.name = f"Zelda Quixotic-{uuid.uuid4().hex[:8]}"
    zelda.token = app.token(zelda.email, name=zelda.name)
    alice, bob = app.user("alice"), app.user("bob")
    alice.name, bob.name = "Alice", "Bob"
    own = zelda.create(title="Zelda's review", invitees=[{"email": bob.email, "role": "participant"}])
    theirs = alice.create(title="Alice's sync", invitees=[{"email": zelda.email, "role": "host"}])
    deliver(
        app,
        meeting_started(meeting_id=theirs["providerMeetingId"], session_id="s-1", started_at="2031-01-01T10:00:00Z"),
    )
    attended(app, zelda, theirs, "s-1", "peer-z", "2031-01-01T10:00:00Z", "2031-01-01T10:30:00Z")
    attended(app, alice, theirs, "s-1", "peer-a", "2031-01-01T10:00:00Z", "2031-01-01T10:45:00Z")

    def both_left():
        body = alice.call("GET", f"/meetings/{theirs['id']}/sessions").json()
        intervals = [p for s in body["items"] for p in s["participants"]]
        return body if len(intervals) == 2 and all(p["leftAt"] for p in intervals) else None

    sessions = wait_for(both_left)
    return app, zelda, alice, bob, own, theirs, sessions


def test_export_holds_what_the_backend_stores_about_the_caller(scene):
    _app, zelda, _alice, bob, own, theirs, _ = scene
    response = zelda.call("GET", "/me/export")
    assert response.status_code == 200
    export = response.json()
    assert export["profile"]["email"] == zelda.email
    assert [m["id"] for m in export["meetings"]] == [own["id"]]
    assert [(i["meetingId"], i["role"], i["status"]) for i in export["invites"]] == [(theirs["id"], "host", "accepted")]
    assert [(a["meetingId"], a["joinedAt"], a["leftAt"]) for a in export["attendance"]] == [
        (theirs["id"], "2031-01-01T10:00:00Z", "2031-01-01T10:30:00Z")
    ]
    assert bob.email not in response.text


def test_closing_refuses_at_once_then_erases_everything_within_a_minute(scene):
    app, zelda, alice, bob, own, theirs, sessions_before = scene
    response = zelda.call("DELETE", "/me")
    assert response.status_code == 204
    for method, path in (
        ("GET", "/me"),
        ("GET", "/meetings"),
        ("GET", f"/meetings/{own['id']}"),
        ("POST", f"/meetings/{theirs['id']}/join"),
        ("GET", "/me/export"),
    ):
        problem(zelda.call(method, path), 403, "forbidden")
    assert zelda.call("DELETE", "/me").status_code == 204

    def erased():
        return not any(
            zelda.email in value.lower() or zelda.name.lower() in value.lower() for _, value in every_value(app)
        )

    wait_for(erased, timeout=60)
    # Zelda's own meeting is cancelled here and at the provider; Bob sees it cancelled.
    assert bob.call("GET", f"/meetings/{own['id']}").json()["status"] == "cancelled"
    client = ProviderClient.for_dyte(app.provider.dyte_credentials(), requests.Session())
    assert client.get_meeting(own["providerMeetingId"]).status == "INACTIVE"
    # Alice's meeting keeps its attendance totals; Zelda's interval stays under an anonymous id.
    after = alice.call("GET", f"/meetings/{theirs['id']}/sessions").json()

    def totals(body):
        return sorted(
            (p["joinedAt"], p["leftAt"], p["durationSeconds"]) for s in body["items"] for p in s["participants"]
        )

    assert totals(after) == totals(sessions_before)
    ids = {p["userId"] for s in after["items"] for p in s["participants"]}
    assert alice.call("GET", "/me").json()["id"] in ids
    assert any(str(i).startswith("anon-") for i in ids)
    # Her invite to Alice's meeting is gone, and with it her provider participant.
    invites = alice.call("GET", f"/meetings/{theirs['id']}/invites").json()["items"]
    assert zelda.email not in [i["email"] for i in invites]
    assert len(provider_participants(app, theirs)) == 1


def test_a_later_or_replayed_event_does_not_write_a_closed_accounts_name_again(scene):
    app, zelda, alice, _, _, theirs, _ = scene
    custom = next(p["custom_participant_id"] for p in provider_participants(app, theirs) if p["name"] == zelda.name)
    assert zelda.call("DELETE", "/me").status_code == 204
    wait_for(lambda: not any(zelda.name.lower() in value.lower() for _, value in every_value(app)), timeout=60)
    base = {
        "meeting_id": theirs["providerMeetingId"],
        "session_id": "s-1",
        "peer_id": "peer-z",
        "custom_participant_id": custom,
        "name": zelda.name,
        "joined_at": "2031-01-01T10:00:00Z",
    }
    deliver(app, participant_joined(**base))  # a replay of what was applied before the closing
    deliver(app, participant_left(**base, left_at="2031-01-01T10:31:00Z"))  # a later event

    def applied():
        body = alice.call("GET", f"/meetings/{theirs['id']}/sessions").json()
        return any(p["leftAt"] == "2031-01-01T10:31:00Z" for s in body["items"] for p in s["participants"])

    wait_for(applied)
    app.settle()
    leftovers = [(table, value[:160]) for table, value in every_value(app) if zelda.name.lower() in value.lower()]
    assert leftovers == []
    names = {
        p["name"]
        for s in alice.call("GET", f"/meetings/{theirs['id']}/sessions").json()["items"]
        for p in s["participants"]
    }
    assert zelda.name not in names

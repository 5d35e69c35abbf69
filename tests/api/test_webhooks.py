"""Provider webhooks over HTTP, for both providers: signed by the stand-in (or a configured test key),
received by the app on the dev host, applied by its queue function, read back through the API."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import requests
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from dev.provider import webhooks
from shared import schema, times
from shared.events import deliveries, state
from shared.provider import ProviderClient
from tests import support
from tests.api.conftest import app_environment, problem

# Helpers ------------------------------------------------------------------------------------------


def hook(app) -> str:
    return f"{app.url}/api/webhooks/dyte"


def compact(payload: dict) -> bytes:
    """The body the stand-in sends for `payload` (compact JSON)."""
    return json.dumps(payload, separators=(",", ":")).encode()


def key_of(payload: dict) -> str:
    return hashlib.sha256(compact(payload)).hexdigest()


def deliver(app, payload: dict, mode: str | None = None, duplicate: int = 0) -> list[int]:
    """The stand-in signs and POSTs `payload` (and `duplicate` repeats); the answers' statuses."""
    results = app.provider.deliver(mode or app.video_provider, payload, url=hook(app), duplicate=duplicate)
    return [result["status"] for result in results]


def post(app, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(hook(app), data=body, headers={"Content-Type": "application/json", **headers}, timeout=10)


def signed_by(key, body: bytes, header: str = "dyte-signature") -> dict[str, str]:
    return {header: webhooks.sign(key, body), "dyte-uuid": str(uuid.uuid4())}


def table(app, name: str):
    """The app's table, straight to Azurite (not through the counting proxy)."""
    service = TableServiceClient.from_connection_string(app.storage.server.connection_string)
    return service.get_table_client(f"{app.prefix}{name}")


def delivery(app, key: str) -> dict | None:
    rows = table(app, schema.DELIVERIES).query_entities(
        "PartitionKey eq @pk and RowKey eq @rk", parameters={"pk": key[0], "rk": deliveries.RECORD + key}
    )
    return next(iter(rows), None)


def pending(app, key: str) -> dict | None:
    rows = table(app, schema.DELIVERIES).query_entities(
        "PartitionKey eq @pk and RowKey eq @rk", parameters={"pk": key[0], "rk": deliveries.PENDING + key}
    )
    return next(iter(rows), None)


def eventually(check, timeout: float = 60.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def settled(app, key: str) -> dict:
    return eventually(lambda: (row := delivery(app, key)) is not None and row["settledAt"] and row, what="settled")


def events_queue(app) -> QueueClient:
    return QueueClient.from_connection_string(app.storage.server.connection_string, f"{app.prefix}webhook-events")


def quiet(app) -> None:
    """Wait until no delivery is queued or being applied."""
    eventually(lambda: events_queue(app).get_queue_properties().approximate_message_count == 0, what="quiet queue")


class ApplierPaused:
    """Keep the app's queue function from receiving deliveries, so counts see the receiver alone."""

    def __init__(self, app):
        self.app = app

    def __enter__(self):
        quiet(self.app)
        self.app.storage.queues.fail("GET", rf"/{self.app.prefix}webhook-events/messages", status=503, times=10**6)
        time.sleep(0.3)  # a poll already past the proxy finishes before anything is enqueued
        return self

    def __exit__(self, *exc):
        self.app.storage.queues.clear_faults()


def unknown_meeting(mode: str = "dyte") -> dict:
    return webhooks.meeting_started(str(uuid.uuid4()), str(uuid.uuid4()), mode=mode)


def provider_client(app, mode: str) -> ProviderClient:
    session = requests.Session()
    if mode == "dyte":
        return ProviderClient.for_dyte(app.provider.dyte_credentials(), session)
    return ProviderClient.for_realtimekit(app.provider.realtimekit_credentials(), session)


def key_fetches(app, mode: str) -> int:
    log = app.provider.request_log()
    return sum(1 for entry in log if entry["mode"] == mode and entry["path"] == "/.well-known/webhooks.json")


def events_cli(app, *args: str) -> subprocess.CompletedProcess:
    environment = app_environment(
        app.storage, app.provider, app.issuer, TABLE_PREFIX=app.prefix, VIDEO_PROVIDER=app.video_provider
    )
    return subprocess.run(
        [sys.executable, "-m", "shared.events", *args],
        cwd=support.ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# Receiving ----------------------------------------------------------------------------------------


def test_both_header_families_are_verified_recorded_and_acknowledged(app):
    for mode in ("dyte", "realtimekit"):
        payload = unknown_meeting(mode)
        results = app.provider.deliver(mode, payload, url=hook(app))
        assert [result["status"] for result in results] == [200]
        row = settled(app, key_of(payload))
        assert (row["provider"], row["outcome"]) == (mode, "unknown-meeting")
        assert row["deliveryId"] == results[0]["uuid"]  # recorded, never used to decide
        assert bytes(row["body"]) == compact(payload)


def test_unknown_events_are_recorded_and_acknowledged(app):
    payload = {"event": "meeting.somethingNew", "meeting": {"id": str(uuid.uuid4())}}
    assert deliver(app, payload) == [200]
    assert settled(app, key_of(payload))["outcome"] == "ignored"
    transcript = {"event": "meeting.transcript", "meeting": {"id": "x"}, "transcriptDownloadUrl": "https://t.test"}
    assert deliver(app, transcript) == [200]
    assert settled(app, key_of(transcript))["outcome"] == "ignored"


def test_a_rotated_key_is_fetched_again_once_and_a_forgery_right_after_costs_no_fetch(app):
    mode = app.video_provider
    assert deliver(app, unknown_meeting(mode)) == [200]  # the current key is cached
    app.provider.rotate_key(mode)
    fetches = key_fetches(app, mode)
    rotated = unknown_meeting(mode)
    assert deliver(app, rotated) == [200]
    assert key_fetches(app, mode) == fetches + 1
    settled(app, key_of(rotated))
    forged_body = compact(unknown_meeting(mode))
    header = f"{webhooks.HEADER_PREFIX[mode]}-signature"
    forged = post(app, forged_body, signed_by(webhooks.new_key(), forged_body, header))
    problem(forged, 401, "unauthorized")
    assert "WWW-Authenticate" not in forged.headers
    assert key_fetches(app, mode) == fetches + 1  # refetched at most once a minute
    assert delivery(app, hashlib.sha256(forged_body).hexdigest()) is None


def test_a_repeated_body_is_acknowledged_and_never_applied_twice_within_the_receivers_budget(app):
    assert deliver(app, unknown_meeting()) == [200]  # this process's tables and queue exist
    payload = unknown_meeting(app.video_provider)
    key = key_of(payload)
    with ApplierPaused(app):
        counts = app.counts()
        assert deliver(app, payload) == [200]
        assert counts.tables() <= 2 and counts.queue_puts() == 1  # insert batch, health time; the key
        counts = app.counts()
        assert deliver(app, payload) == [200]
        assert counts.tables() <= 2 and counts.queue_puts() == 1  # refused insert, read; not applied yet
    assert settled(app, key)["outcome"] == "unknown-meeting"
    quiet(app)
    counts = app.counts()
    assert deliver(app, payload, duplicate=2) == [200, 200, 200]
    assert counts.tables() <= 6 and counts.queue_puts() == 0  # applied: acknowledged, never enqueued again
    assert pending(app, key) is None


def test_a_64_kib_body_is_recorded_and_one_byte_more_is_413(app):
    payload = {"event": "meeting.summary", "meeting": {"id": str(uuid.uuid4())}, "pad": ""}
    payload["pad"] = "x" * (64 * 1024 - len(compact(payload)))
    assert len(compact(payload)) == 64 * 1024
    assert deliver(app, payload) == [200]
    assert bytes(settled(app, key_of(payload))["body"]) == compact(payload)
    too_big = compact({**payload, "pad": payload["pad"] + "x"})
    response = post(app, too_big, {"dyte-signature": "irrelevant"})
    problem(response, 413, "payload-too-large")
    assert delivery(app, hashlib.sha256(too_big).hexdigest()) is None


def test_storage_down_while_receiving_is_503_and_nothing_is_half_written(app):
    payload = unknown_meeting(app.video_provider)
    key = key_of(payload)
    quiet(app)
    counts = app.counts()
    app.storage.tables.fail("POST", r"\$batch", status=503, times=3)
    try:
        assert deliver(app, payload) == [503]
    finally:
        app.storage.tables.clear_faults()
    assert delivery(app, key) is None and pending(app, key) is None
    assert counts.queue_puts() == 0
    assert deliver(app, payload) == [200]  # the provider's retry
    assert settled(app, key)["outcome"] == "unknown-meeting"


def test_a_failed_enqueue_is_503_and_the_providers_retry_enqueues_it(app):
    payload = unknown_meeting(app.video_provider)
    key = key_of(payload)
    app.storage.queues.fail("POST", rf"/{app.prefix}webhook-events/messages", status=503, times=3)
    try:
        assert deliver(app, payload) == [503]  # 5xx: RealtimeKit and Dyte retry it
    finally:
        app.storage.queues.clear_faults()
    assert delivery(app, key)["settledAt"] == ""  # recorded, waiting: the retry or the sweep enqueues it
    assert pending(app, key) is not None
    assert deliver(app, payload) == [200]
    assert settled(app, key)["outcome"] == "unknown-meeting"


def test_health_reports_the_last_verified_delivery(app):
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert deliver(app, unknown_meeting(app.video_provider)) == [200]
    reported = app.call("GET", "/health").json()["checks"]["lastWebhookAt"]
    assert before <= times.parse_rfc3339(reported) <= datetime.now(UTC)


# Applying ------------------------------------------------------------------------------------------


def at(minute: int, second: int = 0) -> str:
    return f"2026-11-25T10:{minute:02d}:{second:02d}.000Z"


def status_of(user, meeting) -> tuple[str, str]:
    """The meeting's status by id and in the owner's list."""
    by_id = user.call("GET", f"/meetings/{meeting['id']}").json()["status"]
    listed = user.call("GET", "/meetings?scope=owned").json()["items"]
    return by_id, next(item["status"] for item in listed if item["id"] == meeting["id"])


def test_shuffled_duplicated_deliveries_build_sessions_recordings_and_status(app):
    mode = app.video_provider
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    path = f"/meetings/{meeting['id']}"
    client, pm = provider_client(app, mode), meeting["providerMeetingId"]
    custom = {}
    for user in (owner, guest):
        joined = user.call("POST", f"{path}/join").json()
        custom[user.email] = client.get_participant(pm, joined["participantId"]).custom_participant_id
    owner_id, guest_id = owner.call("GET", "/me").json()["id"], guest.call("GET", "/me").json()["id"]
    session, recording = str(uuid.uuid4()), str(uuid.uuid4())
    common = {"mode": mode, "started_at": at(0)}
    as_owner = {"custom_participant_id": custom[owner.email], "name": "Owner", **common}
    as_guest = {"custom_participant_id": custom[guest.email], "name": "Guest", **common}

    def recording_update(status: str) -> dict:
        return webhooks.recording_status(
            pm,
            session,
            mode=mode,
            status=status,
            recording_id=recording,
            started_time="2026-11-25 10:01:00.306221Z",
            stopped_time="2026-11-25 10:01:47.420986Z",
        )

    started = webhooks.meeting_started(pm, session, **common)
    owner_joined = webhooks.participant_joined(pm, session, peer_id="peer-a", joined_at=at(1), **as_owner)
    assert deliver(app, started) + deliver(app, owner_joined) == [200, 200]
    eventually(lambda: status_of(owner, meeting) == ("live", "live"), what="live")

    later = [
        (webhooks.participant_left(pm, session, peer_id="peer-b", joined_at=at(2), left_at=at(3), **as_guest), 1),
        (recording_update("UPLOADED"), 0),
        (webhooks.meeting_ended(pm, session, reason="HOST_ENDED_MEETING", ended_at=at(6), **common), 1),
        (webhooks.participant_joined(pm, session, peer_id="peer-b", joined_at=at(2), **as_guest), 0),
        (recording_update("RECORDING"), 1),
        (webhooks.participant_left(pm, session, peer_id="peer-a", joined_at=at(1), left_at=at(5), **as_owner), 0),
        (webhooks.participant_joined(pm, session, peer_id="peer-c", joined_at=at(4), **as_guest), 2),
        (recording_update("UPLOADING"), 1),
        (started, 1),
    ]
    for payload, repeats in later:
        assert deliver(app, payload, duplicate=repeats) == [200] * (1 + repeats)

    def participant(user_id, name, joined, left):
        seconds = int((times.parse_rfc3339(left) - times.parse_rfc3339(joined)).total_seconds())
        return {"userId": user_id, "name": name, "joinedAt": joined, "leftAt": left, "durationSeconds": seconds}

    expected_session = {
        "id": session,
        "startedAt": "2026-11-25T10:00:00Z",
        "endedAt": "2026-11-25T10:06:00Z",
        "endReason": "HOST_ENDED_MEETING",
        "participants": [
            participant(owner_id, "Owner", "2026-11-25T10:01:00Z", "2026-11-25T10:05:00Z"),
            participant(guest_id, "Guest", "2026-11-25T10:02:00Z", "2026-11-25T10:03:00Z"),
            # The rejoin is its own interval; it never left explicitly, so it ends with the session.
            participant(guest_id, "Guest", "2026-11-25T10:04:00Z", "2026-11-25T10:06:00Z"),
        ],
    }
    eventually(
        lambda: owner.call("GET", f"{path}/sessions").json() == {"items": [expected_session], "nextCursor": None},
        what="the session",
    )
    recordings = eventually(
        lambda: (
            (page := owner.call("GET", f"{path}/recordings").json())["items"]
            and page["items"][0]["status"] == "UPLOADED"
            and page
        ),
        what="the recording",
    )
    (uploaded,) = recordings["items"]
    expires = uploaded.pop("downloadUrlExpiresAt")
    assert times.parse_rfc3339(expires) is not None
    assert uploaded == {
        "id": recording,
        "sessionId": session,
        "status": "UPLOADED",
        "startedAt": "2026-11-25T10:01:00.306221Z",
        "stoppedAt": "2026-11-25T10:01:47.420986Z",
        "durationSeconds": 47,
        "sizeBytes": 2044680,  # a string in RealtimeKit's payload
        "stored": False,  # its link leads nowhere here, so no copy of ours exists
        "downloadUrl": f"https://recordings.invalid/{recording}.mp4",
    }
    eventually(lambda: status_of(owner, meeting) == ("ended", "ended"), what="ended")
    # The invitee's list copies the meeting and catches up in the background.
    eventually(
        lambda: [item["status"] for item in guest.call("GET", "/meetings").json()["items"]] == ["ended"],
        what="the invitee's list",
    )
    assert owner.call("GET", path).json()["version"] == meeting["version"]  # webhooks do not edit

    # Replaying every delivery of the meeting is harmless.
    quiet(app)
    replayed = events_cli(app, "replay", "--meeting", meeting["id"])
    assert replayed.returncode == 0, replayed.stderr
    distinct = {key_of(payload) for payload, _ in later} | {key_of(started), key_of(owner_joined)}
    assert replayed.stdout.strip() == f"enqueued {len(distinct)} deliveries to be applied again"
    quiet(app)
    assert owner.call("GET", f"{path}/sessions").json()["items"] == [expected_session]
    assert status_of(owner, meeting) == ("ended", "ended")


def test_sessions_and_recordings_are_for_the_owner_and_hosts_newest_first_in_pages(app):
    owner, host, guest, stranger = (app.user(name) for name in ("owner", "host", "guest", "stranger"))
    meeting = owner.create(
        invitees=[{"email": host.email, "role": "host"}, {"email": guest.email, "role": "participant"}]
    )
    path = f"/meetings/{meeting['id']}"
    pm, mode = meeting["providerMeetingId"], app.video_provider
    sessions = [str(uuid.uuid4()) for _ in range(3)]
    for minute, session in enumerate(sessions):
        assert deliver(app, webhooks.meeting_started(pm, session, mode=mode, started_at=at(minute))) == [200]
        update = webhooks.recording_status(pm, session, mode=mode, status="RECORDING", started_time=at(minute))
        assert deliver(app, update) == [200]
    eventually(lambda: len(owner.call("GET", f"{path}/sessions").json()["items"]) == 3, what="three sessions")
    eventually(lambda: len(owner.call("GET", f"{path}/recordings").json()["items"]) == 3, what="three recordings")
    for what in ("sessions", "recordings"):
        first = host.call("GET", f"{path}/{what}?limit=2").json()
        second = host.call("GET", f"{path}/{what}?limit=2&cursor={first['nextCursor']}").json()
        assert second["nextCursor"] is None
        started = [item["startedAt"] for item in first["items"] + second["items"]]
        assert started == [f"2026-11-25T10:0{minute}:00Z" for minute in (2, 1, 0)]
        problem(guest.call("GET", f"{path}/{what}"), 403, "forbidden")
        problem(stranger.call("GET", f"{path}/{what}"), 404, "not-found")
        problem(owner.call("GET", f"/meetings/{meeting['id'][:-4]}AAAA/{what}"), 404, "not-found")
        for query in ("limit=0", "limit=101", "cursor=%%%", "cursor=", "colour=red", "cursor=WyJhIl0"):
            problem(owner.call("GET", f"{path}/{what}?{query}"), 400, "validation")
        problem(app.call("GET", f"{path}/{what}"), 401, "unauthorized")
    assert owner.call("GET", path).json()["status"] == "live"  # three sessions, none ended


def test_the_sweep_timer_enqueues_what_was_not_applied_for_ten_minutes(app):
    owner = app.user("owner")
    meeting = owner.create()
    mode, pm = app.video_provider, meeting["providerMeetingId"]
    now = datetime.now(UTC)
    old = webhooks.meeting_started(pm, str(uuid.uuid4()), mode=mode)
    young = webhooks.meeting_started(str(uuid.uuid4()), str(uuid.uuid4()), mode=mode)
    while key_of(young) > key_of(old):
        # The sweep visits keys in order: once the old one is applied, the young one was passed over.
        young["nonce"] = uuid.uuid4().hex
    for payload, received_at in ((old, now - timedelta(minutes=11)), (young, now - timedelta(minutes=2))):
        body = compact(payload)
        rows = deliveries.entities(deliveries.delivery_key(body), body, mode, {}, received_at)
        table(app, schema.DELIVERIES).submit_transaction([("create", row) for row in rows])
    response = requests.post(f"{app.url}/admin/functions/sweep_webhook_events", json={"input": ""}, timeout=10)
    assert response.status_code == 202
    assert settled(app, key_of(old))["outcome"] == "applied"
    assert owner.call("GET", f"/meetings/{meeting['id']}").json()["status"] == "live"
    assert delivery(app, key_of(young))["settledAt"] == ""
    assert pending(app, key_of(young))["sweeps"] == 0


def test_register_webhook_creates_then_keeps_one_subscription(app):
    mode = app.video_provider
    client = provider_client(app, mode)

    def ours():
        return [hook_ for hook_ in client.list_webhooks() if hook_.url == hook(app)]

    outputs = []
    for _ in range(2):
        run = events_cli(app, "register-webhook", "--url", hook(app), "--provider", mode)
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout.strip())
    assert outputs[0].startswith("created webhook ") and outputs[1].endswith(" is up to date")
    (registered,) = ours()
    assert set(registered.events) == set(state.HANDLED) and registered.enabled
    client.update_webhook(registered.id, events=["meeting.started"], enabled=False)
    run = events_cli(app, "register-webhook", "--url", hook(app), "--provider", mode)
    assert run.stdout.strip() == f"updated webhook {registered.id}"
    (registered,) = ours()
    assert set(registered.events) == set(state.HANDLED) and registered.enabled
    # The provider now delivers to the app on its own.
    payload = unknown_meeting(mode)
    results = app.provider.deliver(mode, payload)
    assert [result["status"] for result in results if result["url"] == hook(app)] == [200]
    assert events_cli(app, "register-webhook", "--url", "ftp://x.test/hook").returncode == 2


# Configured key ------------------------------------------------------------------------------------


def test_a_configured_key_verifies_and_anything_else_is_401_with_nothing_stored(pem_app, webhook_key):
    body = compact(unknown_meeting())
    first = post(pem_app, body, signed_by(webhook_key, body))
    assert first.status_code == 200, first.text
    assert first.json() == {"id": hashlib.sha256(body).hexdigest(), "duplicate": False}
    assert post(pem_app, body, signed_by(webhook_key, body)).json()["duplicate"] is True
    other = compact(unknown_meeting())
    quiet(pem_app)
    counts = pem_app.counts()
    refused = [
        {},
        {"dyte-signature": ""},
        {"dyte-signature": "not base64!"},
        {"dyte-signature": base64.b64encode(os.urandom(256)).decode()},
        signed_by(webhooks.new_key(), other),
        signed_by(webhook_key, body),  # another body's signature
        {"rtk-uuid": "x", "dyte-webhook-id": "y"},
    ]
    for headers in refused:
        problem(post(pem_app, other, headers), 401, "unauthorized")
    assert (counts.tables(), counts.queue_puts()) == (0, 0)
    assert delivery(pem_app, hashlib.sha256(other).hexdigest()) is None


def test_signed_bodies_that_are_not_json_objects_are_recorded_acknowledged_and_not_applied(pem_app, webhook_key):
    for body in (b"{not json", b"[1, 2]", b"\xff\xfe", b'{"event": NaN}', b""):
        response = post(pem_app, body, signed_by(webhook_key, body))
        assert response.status_code == 200, (body, response.text)
        assert settled(pem_app, hashlib.sha256(body).hexdigest())["outcome"] == "malformed"


def test_a_key_that_cannot_be_fetched_is_503_with_nothing_stored(pem_app):
    # This app has not needed RealtimeKit's key yet: it fetches it now, and the key URL fails.
    fault = pem_app.provider.add_fault(mode="realtimekit", path="well-known", status=503, times=1)
    body = compact(unknown_meeting("realtimekit"))
    counts = pem_app.counts()
    response = post(pem_app, body, signed_by(webhooks.new_key(), body, "rtk-signature"))
    found = problem(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) == found["retryAfterSeconds"] >= 1
    assert fault.times == 0
    assert (counts.tables(), counts.queue_puts()) == (0, 0)

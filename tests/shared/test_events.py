"""Webhook ingestion at the domain level: signing keys against the provider stand-in, the sweep with an
injected clock, and concurrent application of shuffled, duplicated deliveries against Azurite."""

from __future__ import annotations

import base64
import json
import random
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from azure.core.exceptions import AzureError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dev.provider import ProviderStandIn, webhooks
from shared import followups, joins, meetings, problems, schema, times
from shared.context import Context
from shared.events import apply, deliveries, signing, state
from shared.model import Participant
from shared.provider import ProviderClient
from shared.settings import SettingsError
from shared.storage import Storage
from tests import factories, support

KEY_PATH = "/.well-known/webhooks.json"


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


class Capture:
    """An HTTP endpoint that keeps what the stand-in delivers to it: signed bodies and their headers."""

    def __init__(self):
        self.received: list[tuple[bytes, dict[str, str]]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                capture.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture(scope="module")
def stand_in():
    # Its own stand-in: rotating keys here must not disturb the apps other tests run.
    with ProviderStandIn().start() as running:
        yield running


@pytest.fixture(scope="module")
def capture():
    endpoint = Capture()
    yield endpoint
    endpoint.server.shutdown()


def signed(stand_in, capture, mode: str, payload: dict) -> tuple[bytes, dict[str, str]]:
    stand_in.deliver(mode, payload, url=capture.url)
    return capture.received[-1]


def key_fetches(stand_in, mode: str) -> int:
    return sum(1 for entry in stand_in.request_log() if entry["mode"] == mode and entry["path"] == KEY_PATH)


def key_url(stand_in, mode: str) -> str:
    return f"{stand_in.url}{'/realtimekit' if mode == 'realtimekit' else ''}{KEY_PATH}"


def summary(n: int = 0) -> dict:
    return {"event": "meeting.summary", "meeting": {"id": str(uuid.uuid4())}, "n": n}


@pytest.mark.parametrize("mode", ["dyte", "realtimekit"])
def test_a_fetched_key_is_cached_and_fetched_again_once_a_minute_at_most_on_failure(stand_in, capture, mode):
    stand_in.reset()
    clock = Clock(1000.0)
    key = signing.SigningKey(mode, key_url(stand_in, mode), clock=clock)
    body, headers = signed(stand_in, capture, mode, summary())
    signature = signing.decode_signature(headers[f"{webhooks.HEADER_PREFIX[mode]}-signature"])
    assert key.verify(body, signature)
    assert key.verify(body, signature)
    assert key_fetches(stand_in, mode) == 1
    stand_in.rotate_key(mode)
    rotated_body, rotated = signed(stand_in, capture, mode, summary(1))
    rotated_signature = signing.decode_signature(rotated[f"{webhooks.HEADER_PREFIX[mode]}-signature"])
    assert key.verify(rotated_body, rotated_signature)  # fetched again: the provider rotated
    assert key_fetches(stand_in, mode) == 2
    clock.now += 30
    assert not key.verify(body, signature)  # the old key's signature: refused without another fetch
    assert key_fetches(stand_in, mode) == 2
    clock.now += 31
    assert not key.verify(body, signature)  # a minute later one fetch is due again
    assert key_fetches(stand_in, mode) == 3
    clock.now += signing.KEY_MAX_AGE
    assert key.verify(rotated_body, rotated_signature)  # an hour-old key is fetched anew
    assert key_fetches(stand_in, mode) == 4


def test_an_unreachable_key_url_is_unavailable_not_a_bad_signature(stand_in, capture):
    stand_in.reset()
    clock = Clock(1000.0)
    key = signing.SigningKey("dyte", key_url(stand_in, "dyte"), clock=clock)
    body, headers = signed(stand_in, capture, "dyte", summary())
    signature = signing.decode_signature(headers["dyte-signature"])
    stand_in.add_fault(mode="dyte", path="well-known", status=503)
    with pytest.raises(problems.Unavailable):
        key.verify(body, signature)
    clock.now += 1
    with pytest.raises(problems.Unavailable):
        key.verify(body, signature)
    assert key_fetches(stand_in, "dyte") == 1  # backs off instead of hammering a failing URL
    stand_in.reset()
    clock.now += signing.FAILURE_BACKOFF
    assert key.verify(body, signature)
    # Rotated while the URL is down: the delivery may be genuine, so 503 (retried), not 401 (dropped).
    stand_in.rotate_key("dyte")
    rotated_body, rotated = signed(stand_in, capture, "dyte", summary(1))
    stand_in.add_fault(mode="dyte", path="well-known", status=503)
    for _ in range(2):
        with pytest.raises(problems.Unavailable):
            key.verify(rotated_body, signing.decode_signature(rotated["dyte-signature"]))
        clock.now += 10
    # Meanwhile the cached key still verifies what it signed... and after an hour, while the URL is down.
    assert key.verify(body, signature)
    clock.now += signing.KEY_MAX_AGE
    assert key.verify(body, signature)


def test_the_two_documented_key_document_shapes_and_odd_ones():
    pem = webhooks.public_pem(webhooks.new_key())
    assert signing.key_document_pems(webhooks.key_document("dyte", webhooks.new_key()))[0].startswith("-----BEGIN")
    assert signing.key_document_pems({"data": {"publicKey": pem}}) == [pem]
    assert signing.key_document_pems({"data": {"signing_keys": [{"public_key": pem}, {"publicKey": pem}]}}) == [
        pem,
        pem,
    ]
    assert signing.key_document_pems({"public_key": pem}) == [pem]
    for odd in (None, [], "x", {"data": [pem]}, {"data": {"signing_keys": "x"}}, {"data": {"publicKey": 5}}):
        assert signing.key_document_pems(odd) == []
    assert signing.load_key("not a key") is None
    assert signing.load_key(pem.replace("\n", "\\n")) is not None  # app settings often escape newlines


def configured(dyte_key, realtimekit_key) -> signing.SigningKeys:
    """Both providers' keys as PEM settings (newlines escaped, as app settings carry them)."""
    settings = support.load(
        WEBHOOK_PUBLIC_KEY=webhooks.public_pem(dyte_key).replace("\n", "\\n"),
        REALTIMEKIT_WEBHOOK_PUBLIC_KEY=webhooks.public_pem(realtimekit_key),
    )
    return signing.SigningKeys.from_settings(settings)


def test_configured_keys_and_the_signature_headers():
    private = webhooks.new_key()
    keys = configured(private, webhooks.new_key())
    body = b'{"event":"meeting.summary"}'
    signature = webhooks.sign(private, body)
    assert keys.verify(body, {"dyte-signature": signature}) == "dyte"
    assert keys.verify(body, {"rtk-signature": "bm9wZQ==", "dyte-signature": signature}) == "dyte"
    with pytest.raises(signing.BadSignature, match="no dyte-signature"):
        keys.verify(body, {"dyte-uuid": "x"})
    for forged in ("", "%%%", webhooks.sign(webhooks.new_key(), body), signature[:-8] + "AAAAAAA="):
        with pytest.raises(signing.BadSignature, match="does not verify"):
            keys.verify(body, {"dyte-signature": forged})
    with pytest.raises(signing.BadSignature):
        keys.verify(body + b" ", {"dyte-signature": signature})
    with pytest.raises(SettingsError, match=r"^REALTIMEKIT_WEBHOOK_PUBLIC_KEY: "):
        signing.SigningKeys.from_settings(support.load(REALTIMEKIT_WEBHOOK_PUBLIC_KEY="-----BEGIN nonsense"))
    elliptic = ec.generate_private_key(ec.SECP256R1()).public_key()
    elliptic_pem = elliptic.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert signing.load_key(elliptic_pem.decode()) is None  # RSA only, as both providers sign


def test_a_signature_under_one_providers_header_made_with_the_others_key_verifies_as_the_other():
    """Reported during the migration: RealtimeKit deliveries with Dyte's header names. A 401 is never retried,
    so every configured key is tried before refusing; the delivery records the provider whose key verified."""
    dyte_key, rtk_key = webhooks.new_key(), webhooks.new_key()
    keys = configured(dyte_key, rtk_key)
    body = b'{"event":"meeting.started"}'
    assert keys.verify(body, {"dyte-signature": webhooks.sign(rtk_key, body), "dyte-uuid": "u"}) == "realtimekit"
    assert keys.verify(body, {"rtk-signature": webhooks.sign(dyte_key, body)}) == "dyte"
    assert keys.verify(body, {"dyte-signature": webhooks.sign(dyte_key, body)}) == "dyte"
    with pytest.raises(signing.BadSignature, match="does not verify"):
        keys.verify(body, {"dyte-signature": webhooks.sign(webhooks.new_key(), body)})
    # The record keeps the delivery's own headers, whichever family they came in.
    record, _ = deliveries.entities("a" * 64, body, "realtimekit", {"dyte-uuid": "u", "dyte-webhook-id": "w"}, now())
    assert (record["provider"], record["deliveryId"], record["webhookId"]) == ("realtimekit", "u", "w")


def now() -> datetime:
    return datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_a_delivery_signed_with_the_other_key_costs_no_refetch_of_its_headers_key(stand_in, capture):
    stand_in.reset()
    clock = Clock(1000.0)
    keys = signing.SigningKeys(
        {mode: signing.SigningKey(mode, key_url(stand_in, mode), clock=clock) for mode in ("dyte", "realtimekit")}
    )
    body, headers = signed(stand_in, capture, "realtimekit", summary())
    renamed = {"dyte-signature": headers["rtk-signature"], "dyte-uuid": headers["rtk-uuid"]}
    assert keys.verify(body, renamed) == "realtimekit"
    assert keys.verify(body, renamed) == "realtimekit"
    # Each key fetched once, as first needed: no refetch of Dyte's key, whose once-a-minute allowance is
    # kept for a real rotation of Dyte's key.
    assert (key_fetches(stand_in, "dyte"), key_fetches(stand_in, "realtimekit")) == (1, 1)
    stand_in.rotate_key("dyte")
    rotated_body, rotated = signed(stand_in, capture, "dyte", summary(1))
    assert keys.verify(rotated_body, {"dyte-signature": rotated["dyte-signature"]}) == "dyte"
    assert (key_fetches(stand_in, "dyte"), key_fetches(stand_in, "realtimekit")) == (2, 1)
    forged = {"dyte-signature": base64.b64encode(bytes(256)).decode()}
    clock.now += signing.REFETCH_INTERVAL
    with pytest.raises(signing.BadSignature):
        keys.verify(body, forged)  # every key as cached, then Dyte's once more: a rotation may be under way
    assert (key_fetches(stand_in, "dyte"), key_fetches(stand_in, "realtimekit")) == (3, 1)


# Storage -----------------------------------------------------------------------------------------


@pytest.fixture
def ctx(storage, provider, prefix):
    settings = support.load(AzureWebJobsStorage=storage.connection_string, TABLE_PREFIX=prefix)
    client = ProviderClient.for_dyte(provider.dyte_credentials(), requests.Session())
    clock = Clock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    return Context(settings, Storage(settings), {"dyte": client}, clock=clock)


def record(ctx, payload: dict, received_at: datetime, provider: str = "dyte") -> str:
    body = json.dumps(payload).encode()
    key = deliveries.delivery_key(body)
    rows = deliveries.entities(key, body, provider, {"dyte-uuid": "u"}, received_at)
    ctx.storage.table(schema.DELIVERIES).submit_transaction([("create", row) for row in rows])
    return key


def queued(ctx) -> list[str]:
    return [message.content for message in ctx.storage.queue(schema.WEBHOOK_QUEUE).peek_messages(max_messages=32)]


def test_the_sweep_enqueues_what_is_unapplied_after_ten_minutes_then_backs_off(ctx):
    start = ctx.clock.now
    key = record(ctx, summary(), start)
    applied = record(ctx, summary(1), start)
    apply.run(ctx, applied)
    for minutes, expected in ((9, 0), (10, 1), (15, 0), (29, 0), (30, 1), (69, 0), (70, 1)):
        ctx.clock.now = start + timedelta(minutes=minutes)
        assert deliveries.sweep(ctx) == expected, minutes
    assert queued(ctx) == [key] * 3
    apply.run(ctx, key)
    ctx.clock.now += timedelta(days=2)
    assert deliveries.sweep(ctx) == 0


def test_a_failed_application_raises_and_leaves_the_delivery_pending(ctx, storage):
    owner = factories.user("owner")
    meeting = factories.create_meeting(ctx, owner, title="Fails")
    key = record(ctx, webhooks.meeting_started(meeting["providerMeetingId"], "s-1"), ctx.clock.now)
    # The batch that writes what the delivery says (a transaction on the Meetings table names it in its body).
    storage.tables.fail("POST", re.escape(ctx.storage.table_name(schema.MEETINGS)), status=503, times=3)
    try:
        with pytest.raises(AzureError):
            apply.run(ctx, key)  # raised: the queue retries it, then moves it to the poison queue
    finally:
        storage.tables.clear_faults()
    assert deliveries.load(ctx, key)["settledAt"] == ""
    ctx.clock.now += deliveries.SWEEP_AFTER
    assert deliveries.sweep(ctx) == 1  # the queue's retries, or else the sweep, bring it back
    apply.run(ctx, key)
    assert deliveries.load(ctx, key)["outcome"] == "applied"
    assert meetings.load(ctx, owner, meeting["id"]).meeting.status == "live"


def fold(sequence) -> tuple[dict[str, dict], dict[str, str]]:
    """The pure merge of the deliveries in this order: the rows by relative key, and the summary."""
    rows: dict[str, dict] = {}
    summary: dict[str, str] = {}
    for payload, received_at in sequence:
        event = state.parse(payload, times.stamp(received_at))
        for row_key, update in state.facts(event, "").items():
            rows[row_key] = state.merge(rows.get(row_key, {}), update)
        if event.name in state.SESSION_EVENTS and event.session_id:  # a session-less one waits to be placed
            summary = state.summarize(summary, event.session_id, rows[schema.session_key(event.session_id)])
    return rows, summary


def activity_rows(ctx, meeting) -> dict[str, dict]:
    """What the webhooks wrote under the meeting, by key relative to it (`s|...`, `t|...`, `a`, ...)."""
    low, high = schema.activity_range(meeting.id)
    stored = ctx.storage.table(schema.MEETINGS).query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": meeting.partition, "low": low, "high": high},
    )
    return {row["RowKey"].removeprefix(low): row for row in stored}


def merged_rows(stored: dict[str, dict]) -> dict[str, dict]:
    """The sessions, intervals and recordings among them, with the merged properties only."""
    kinds = (schema.SESSION, schema.INTERVAL, schema.RECORDING)
    return {
        key: {k: v for k, v in row.items() if k in state.PROPERTIES}
        for key, row in stored.items()
        if key.startswith(kinds)
    }


def test_concurrent_shuffled_duplicated_deliveries_end_as_the_pure_merge_says(ctx):
    owner, guest = factories.user("owner"), factories.user("guest")
    created = factories.create_meeting(
        ctx, owner, title="Busy", invitees=[{"email": guest.email, "role": "participant"}]
    )
    meeting_id, provider_meeting = created["id"], created["providerMeetingId"]
    for who in (owner, guest):
        joins.join(ctx, who, meeting_id)
    users = {joins.custom_participant_id(ctx, meeting_id, who): who.id for who in (owner, guest)}
    people = list(users)
    chance = random.Random(20261125)
    sequence = []
    start = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

    def minute() -> str:
        return f"2026-11-25T10:{chance.randrange(60):02d}:00.000Z"

    for n in range(60):
        session = chance.choice(("s-1", "s-2"))
        kind = chance.choice(state.HANDLED)
        who = chance.choice(people)
        # A peer is one connection of one person; each person joins as a few peers.
        person = {"custom_participant_id": who, "peer_id": f"{who[:6]}-{chance.randrange(2)}"}
        if kind == state.MEETING_STARTED:
            payload = webhooks.meeting_started(provider_meeting, session, started_at=minute())
        elif kind == state.MEETING_ENDED:
            payload = webhooks.meeting_ended(provider_meeting, session, started_at=minute(), ended_at=minute())
        elif kind == state.PARTICIPANT_JOINED:
            payload = webhooks.participant_joined(provider_meeting, session, joined_at=minute(), **person)
        elif kind == state.PARTICIPANT_LEFT:
            payload = webhooks.participant_left(
                provider_meeting, session, joined_at=minute(), left_at=minute(), **person
            )
        else:
            status = chance.choice(sorted(state.RECORDING_RANK))
            payload = webhooks.recording_status(provider_meeting, session, status=status, recording_id="r-1")
        if payload not in [earlier for earlier, _ in sequence]:  # the same body twice is one delivery
            sequence.append((payload, start + timedelta(seconds=n)))
    keys = [record(ctx, payload, received_at) for payload, received_at in sequence]
    messages = keys + keys[: len(keys) // 8]  # a few duplicates; each one alone could heal a lost update
    chance.shuffle(messages)
    with ThreadPoolExecutor(max_workers=24) as pool:
        list(pool.map(lambda key: apply.run(ctx, key), messages))

    # The follow-up each status change queued copies the status onto the meeting's list rows.
    followups.run(ctx, meeting_id)
    meeting = meetings.load(ctx, owner, meeting_id).meeting
    stored = activity_rows(ctx, meeting)
    expected, summary = fold(sequence)
    assert merged_rows(stored) == expected
    # Each interval is someone's: its participant row says whose (a closed account's would carry its own id).
    participants = [
        Participant.from_row(row)
        for row in ctx.storage.table(schema.MEETINGS).query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            parameters=dict(zip(("low", "high"), schema.participant_range(meeting_id), strict=True), pk=owner.id),
        )
    ]
    whose = {participant.custom_participant_id: participant.user_id for participant in participants}
    assert whose == users
    intervals = [row for key, row in stored.items() if key.startswith(schema.INTERVAL)]
    assert {whose[row["customParticipantId"]] for row in intervals} == {owner.id, guest.id}
    assert all(not row.get("userId") for row in intervals)
    # Every session and recording is listed once, newest first, by its order row.
    session_order = sorted(row["row"] for key, row in stored.items() if key.startswith(schema.SESSION_ORDER))
    assert session_order == sorted(key for key in expected if key.startswith(schema.SESSION))
    recording_order = [row["row"] for key, row in stored.items() if key.startswith(schema.RECORDING_ORDER)]
    assert recording_order == [key for key in expected if key.startswith(schema.RECORDING)]
    # The status is what the sessions say, on the meeting row and its owner-index row, without a new version.
    assert {k: stored[schema.SUMMARY][k] for k in summary} == summary
    assert meeting.activity == state.activity(summary) != ""
    assert meeting.activity == ("live" if any(not row.get("endedAt") for row in sessions(expected)) else "ended")
    assert (meeting.version, times.format_utc(meeting.updated_at)) == (created["version"], created["updatedAt"])
    index = ctx.storage.table(schema.MEETINGS).get_entity(meeting.partition, meeting.index_key)
    assert index["activity"] == meeting.activity
    assert all(deliveries.load(ctx, key)["outcome"] == "applied" for key in keys)

    # Replaying is harmless: the same rows, every delivery of the meeting enqueued once.
    assert deliveries.replay(ctx, meeting_id=meeting_id) == len(keys)
    assert deliveries.replay(ctx, since=start + timedelta(seconds=50)) == sum(
        1 for _, received_at in sequence if received_at >= start + timedelta(seconds=50)
    )
    for key in set(keys):
        apply.run(ctx, key)
    assert merged_rows(activity_rows(ctx, meeting)) == expected


def sessions(rows: dict[str, dict]) -> list[dict]:
    return [row for key, row in rows.items() if key.startswith(schema.SESSION)]


def test_unknown_meetings_events_and_bodies_are_settled_with_their_reason(ctx):
    cases = [
        ("unknown-meeting", webhooks.meeting_started("no-such-meeting", "s-1")),
        ("unknown-meeting", webhooks.meeting_started("a/b?c#d", "s-1")),  # cannot even be a key: no lookup
        ("ignored", summary()),
        ("incomplete", {"event": state.MEETING_STARTED, "meeting": {"id": "m"}}),
    ]
    for outcome, payload in cases:
        key = record(ctx, payload, ctx.clock.now)
        apply.run(ctx, key)
        assert deliveries.load(ctx, key)["outcome"] == outcome
    apply.run(ctx, "not a key")  # nothing to retry: logged and dropped
    apply.run(ctx, "0" * 64)  # no such delivery: logged and dropped

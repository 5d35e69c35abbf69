"""Invitation email in-process: the real domain code on Azurite, sending to the HTTPS Graph stand-in.

A change's own request expands its outbox record (its follow-up runs inline) into one message per
recipient on the mail queue. The mail queue is drained by hand (or, for the retry path, by the dev
host's own queue listener) so that each step's emails can be checked before the next change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import azure.functions as func
import jwt
import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from icalendar import Calendar

from dev.graph import JWT_BEARER, GraphStandIn
from dev.host import DevHost, QueueOptions
from dev.provider import ProviderStandIn
from shared import followups, invites, jobs, meetings, outbox, pending, schema
from shared.auth import Caller
from shared.context import Context
from shared.graph import Graph
from shared.provider import clients_from_settings
from shared.storage import Storage
from tests import factories, support

SENDER = "noreply@contoso.test"
APP_URL = "https://app.contoso.test"


@pytest.fixture(scope="module")
def graph():
    with GraphStandIn().start() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def provider():
    with ProviderStandIn().start() as stand_in:
        yield stand_in


def trusting_session(stand_in: GraphStandIn) -> requests.Session:
    """Trusts the stand-in's test CA; trust_env off, or REQUESTS_CA_BUNDLE would override `verify`."""
    session = requests.Session()
    session.trust_env = False
    session.verify = stand_in.ca_path
    return session


@dataclass
class World:
    ctx: Context
    graph: GraphStandIn
    sleeps: list[float] = field(default_factory=list)

    def user(self, name: str) -> Caller:
        return factories.user(name, key=self.ctx.settings.id_hash_key)

    def queue(self) -> QueueClient:
        return self.ctx.storage.queue(schema.MAIL_QUEUE)

    def drain(self) -> list[str]:
        """Run every visible message of the mail queue (and those they add) as the queue trigger would."""
        handled = []
        while batch := list(self.queue().receive_messages(max_messages=32, visibility_timeout=60)):
            for message in batch:
                outbox.deliver(self.ctx, message.content)
                self.queue().delete_message(message)
                handled.append(message.content)
        return handled

    def run_jobs(self) -> list[str]:
        """Run every visible message of the jobs queue as its queue trigger would (follow-ups only here)."""
        queue = self.ctx.storage.queue(schema.JOBS_QUEUE)
        handled = []
        while batch := list(queue.receive_messages(max_messages=32, visibility_timeout=60)):
            for message in batch:
                jobs.run(self.ctx, message.content, {jobs.Kind.FOLLOW_UP: followups.run_job})
                queue.delete_message(message)
                handled.append(message.content)
        return handled

    def rows(self, partition: str, marker: str) -> list[dict]:
        table = self.ctx.storage.table(schema.MEETINGS)
        return [
            row
            for row in table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
            if marker in row["RowKey"]
        ]

    def sent_to(self, address: str) -> list[dict]:
        messages = [entry["message"] for entry in self.graph.messages()]
        return [m for m in messages if m["toRecipients"] == [{"emailAddress": {"address": address}}]]


def make_world(storage, prefix, graph, provider, **overrides: str) -> World:
    graph.reset()
    values = {
        "AzureWebJobsStorage": storage.connection_string,
        "TABLE_PREFIX": prefix,
        "DYTE_API_BASE_URL": provider.dyte_base_url,
        "APP_BASE_URL": APP_URL,
        **graph.settings(SENDER),
    }
    settings = support.load(**{**values, **overrides})
    ctx = Context(settings=settings, storage=Storage(settings), providers=clients_from_settings(settings))
    world = World(ctx, graph)
    if settings.mail is not None:
        ctx.graph = Graph(settings.mail, session=trusting_session(graph), sleep=world.sleeps.append)
    return world


@pytest.fixture
def world(storage, prefix, graph, provider) -> World:
    return make_world(storage, prefix, graph, provider)


def calendar_of(message: dict) -> Calendar:
    (attachment,) = message["attachments"]
    return Calendar.from_ical(base64.b64decode(attachment["contentBytes"]))


def event_of(message: dict):
    (event,) = calendar_of(message).events
    return event


def create(world: World, owner: Caller, **body) -> dict:
    return factories.create_meeting(world.ctx, owner, **body)


def invite(world: World, by: Caller, meeting_id: str, *invitees: dict) -> list[dict]:
    return invites.invite(world.ctx, by, meeting_id, invites.parse_invite_body({"invitees": list(invitees)}))


def update(world: World, by: Caller, meeting_id: str, **patch) -> dict:
    return meetings.update(world.ctx, by, meeting_id, meetings.parse_patch(patch), None)


def test_invitees_of_a_new_meeting_get_one_invitation_each_with_a_calendar_file(world):
    owner, host, guest = world.user("olivia"), world.user("hugo"), world.user("greta")
    title = 'Plan <b>Q3</b> & "budget"'
    meeting = create(
        world,
        owner,
        title=title,
        description="Bring numbers; <i>no</i> slides",
        # The Sunday Berlin moves to summer time: 07:30Z is 09:30 CEST.
        startsAt="2031-03-30T07:30:00Z",
        endsAt="2031-03-30T08:30:00Z",
        timeZone="Europe/Berlin",
        invitees=[{"email": host.email, "role": "host"}, {"email": guest.email, "role": "participant"}],
    )
    (record,) = world.rows(owner.id, "|o|c|")
    assert record["kind"] == "invited"
    assert sorted(record["invites"].split(",")) == sorted([schema.invite_id(host.email), schema.invite_id(guest.email)])
    # The create's own follow-up expanded the record: one message per invitee is queued.
    assert (record["mailState"], record["recipients"]) == ("expanded", 2)

    handled = world.drain()
    assert len(handled) == 2

    log = world.graph.request_log()
    assert [(entry["method"], entry["path"].rsplit("/", 1)[-1]) for entry in log] == [
        ("GET", "openid-configuration"),
        ("POST", "token"),
        ("POST", "sendMail"),
        ("POST", "sendMail"),
    ]
    assert log[1]["form"] == {
        "grant_type": "client_credentials",
        "client_id": world.graph.client_id,
        "client_secret": world.graph.client_secret,
        "scope": f"{world.graph.url}/.default",
        "client_info": "1",
    }
    assert {entry["path"] for entry in log[2:]} == {f"/v1.0/users/{SENDER}/sendMail"}
    assert {m["mailbox"] for m in world.graph.messages()} == {SENDER}
    assert {m["saveToSentItems"] for m in world.graph.messages()} == {False}

    (to_host,) = world.sent_to(host.email)
    (to_guest,) = world.sent_to(guest.email)
    assert to_host["subject"] == f"Invitation: {title}"
    content = to_host["body"]["content"]
    assert to_host["body"]["contentType"] == "HTML"
    assert "Plan &lt;b&gt;Q3&lt;/b&gt; &amp; &quot;budget&quot;" in content and "<b>Q3" not in content
    assert "as a host" in content and "as a participant" in to_guest["body"]["content"]
    assert "Sunday 30 March 2031, 09:30–10:30 (Europe/Berlin)" in content
    link = f"{APP_URL}/meetings/{meeting['id']}"
    assert f'<a href="{link}">{link}</a>' in content

    (attachment,) = to_host["attachments"]
    assert (attachment["name"], attachment["contentType"]) == (
        "invite.ics",
        "text/calendar; charset=utf-8; method=REQUEST",
    )
    calendar = calendar_of(to_host)
    assert calendar["METHOD"] == "REQUEST"
    assert [zone.tz_name for zone in calendar.timezones] == ["Europe/Berlin"]
    event = event_of(to_host)
    assert str(event["UID"]) == f"{meeting['id']}.{schema.invite_id(host.email)}@contoso.test"
    assert event["SEQUENCE"] == 1 and event["STATUS"] == "CONFIRMED"
    assert str(event.start.tzinfo) == "Europe/Berlin"
    assert event.start.astimezone(UTC) == datetime(2031, 3, 30, 7, 30, tzinfo=UTC)
    assert event.end.astimezone(UTC) == datetime(2031, 3, 30, 8, 30, tzinfo=UTC)
    assert str(event["SUMMARY"]) == title
    assert str(event["ORGANIZER"]) == f"mailto:{SENDER}"
    assert str(event["ATTENDEE"]) == f"mailto:{host.email}" and event["ATTENDEE"].params["ROLE"] == "CHAIR"
    assert event_of(to_guest)["ATTENDEE"].params["ROLE"] == "REQ-PARTICIPANT"
    assert str(event_of(to_guest)["UID"]) != str(event["UID"])

    (record,) = world.rows(owner.id, "|o|c|")
    assert record["mailState"] == "expanded"
    (quota,) = world.rows(owner.id, schema.MAIL_QUOTA_KEY)
    assert quota["sent"] == 2
    # The queue delivers at least once: every message again (a retry after success) sends nothing,
    # and the meeting's follow-up run again expands nothing again.
    for text in handled:
        outbox.deliver(world.ctx, text)
    assert followups.run(world.ctx, meeting["id"])
    assert world.drain() == []
    assert len(world.graph.messages()) == 2
    assert world.rows(owner.id, schema.MAIL_QUOTA_KEY)[0]["sent"] == 2


def test_invites_role_changes_and_revocation_update_one_event_with_a_growing_sequence(world):
    owner, guest = world.user("olivia"), world.user("greta")
    meeting = create(world, owner, startsAt="2031-05-01T10:00:00Z", timeZone="UTC")

    def invite_as(role: str) -> None:
        invite(world, owner, meeting["id"], {"email": guest.email, "role": role})

    invite_as("participant")
    world.drain()
    invite_as("host")
    world.drain()
    invite_as("host")  # no change: no email
    assert world.drain() == []
    invites.revoke(world.ctx, owner, meeting["id"], schema.invite_id(guest.email))
    world.drain()
    invite_as("participant")
    world.drain()

    sent = world.sent_to(guest.email)
    events = [event_of(message) for message in sent]
    assert [message["subject"].split(":")[0] for message in sent] == [
        "Invitation",
        "Invitation",
        "Invitation withdrawn",
        "Invitation",
    ]
    assert [(calendar_of(m)["METHOD"], e["SEQUENCE"], e["STATUS"]) for m, e in zip(sent, events, strict=True)] == [
        ("REQUEST", 1, "CONFIRMED"),
        ("REQUEST", 2, "CONFIRMED"),
        ("CANCEL", 3, "CANCELLED"),
        ("REQUEST", 4, "CONFIRMED"),
    ]
    assert len({str(event["UID"]) for event in events}) == 1
    assert "as a host" in sent[1]["body"]["content"] and events[1]["ATTENDEE"].params["ROLE"] == "CHAIR"
    assert sent[2]["attachments"][0]["name"] == "cancel.ics"
    assert "/meetings/" not in sent[2]["body"]["content"]  # a revoked invitee has nothing to join
    # UTC meetings are written in UTC and need no VTIMEZONE.
    assert calendar_of(sent[0]).timezones == [] and events[0].start == datetime(2031, 5, 1, 10, tzinfo=UTC)


def test_reschedule_and_cancel_reach_every_active_invitee(world):
    owner, guest, decliner = world.user("olivia"), world.user("greta"), world.user("dora")
    meeting = create(
        world,
        owner,
        startsAt="2031-06-02T14:00:00Z",
        endsAt="2031-06-02T15:00:00Z",
        timeZone="America/New_York",
        invitees=[{"email": guest.email, "role": "participant"}, {"email": decliner.email, "role": "participant"}],
    )
    world.drain()
    invites.decline(world.ctx, decliner, meeting["id"])
    update(world, owner, meeting["id"], startsAt="2031-06-03T14:00:00Z", endsAt=None)
    world.drain()
    update(world, owner, meeting["id"], description="Agenda attached")
    assert world.drain() == []  # the description alone is no reason to email 500 people
    meetings.cancel(world.ctx, owner, meeting["id"], None)
    world.drain()

    first, updated, cancelled = world.sent_to(guest.email)
    assert len(world.sent_to(decliner.email)) == 1  # the first invitation only
    assert updated["subject"] == "Updated: Weekly sync"
    assert "Tuesday 3 June 2031, 10:00 (America/New_York)" in updated["body"]["content"]
    event = event_of(updated)
    assert (event["SEQUENCE"], event.start.astimezone(UTC), event.get("DTEND")) == (
        2,
        datetime(2031, 6, 3, 14, tzinfo=UTC),
        None,
    )
    assert [zone.tz_name for zone in calendar_of(updated).timezones] == ["America/New_York"]
    assert cancelled["subject"] == "Cancelled: Weekly sync"
    assert calendar_of(cancelled)["METHOD"] == "CANCEL"
    assert (event_of(cancelled)["SEQUENCE"], event_of(cancelled)["STATUS"]) == (4, "CANCELLED")
    assert "Agenda attached" in str(event_of(cancelled)["DESCRIPTION"])
    assert event_of(cancelled)["UID"] == event_of(first)["UID"]


def test_an_email_overtaken_by_a_later_change_is_not_sent(world):
    owner, guest = world.user("olivia"), world.user("greta")
    meeting = create(world, owner, startsAt="2031-06-02T14:00:00Z", invitees=[{"email": guest.email}])
    world.drain()
    update(world, owner, meeting["id"], startsAt="2031-06-03T14:00:00Z")
    meetings.cancel(world.ctx, owner, meeting["id"], None)
    world.drain()  # the update's message runs after the cancellation committed
    sent = world.sent_to(guest.email)
    assert [(calendar_of(m)["METHOD"], event_of(m)["SEQUENCE"]) for m in sent] == [("REQUEST", 1), ("CANCEL", 3)]


def test_a_meeting_without_a_start_gets_email_but_no_calendar_file(world):
    owner, guest = world.user("olivia"), world.user("greta")
    create(world, owner, invitees=[{"email": guest.email, "role": "participant"}])
    world.drain()
    (message,) = world.sent_to(guest.email)
    assert "attachments" not in message
    assert "When: not scheduled yet" in message["body"]["content"]


def test_throttling_waits_as_graph_asks_and_sends_exactly_once(world):
    owner, guest, late = world.user("olivia"), world.user("greta"), world.user("lara")
    world.graph.add_fault(path="sendMail", status=429, retry_after=2, times=1)
    meeting = create(world, owner, invitees=[{"email": guest.email, "role": "participant"}])
    world.drain()
    sends = [entry["status"] for entry in world.graph.request_log() if entry["path"].endswith("sendMail")]
    assert sends == [429, 202]
    assert world.sleeps == [2.0]
    assert len(world.sent_to(guest.email)) == 1

    # A long throttle is not slept through: the message goes back on the queue for when Graph asks.
    world.graph.add_fault(path="sendMail", status=429, retry_after=300, times=1)
    invite(world, owner, meeting["id"], {"email": late.email, "role": "participant"})
    world.drain()
    assert world.sent_to(late.email) == []
    assert world.queue().get_queue_properties().approximate_message_count == 1  # invisible until then


def wait_until(condition, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_graph_down_retries_with_backoff_never_poison_and_the_change_stands(world, storage):
    owner, guest = world.user("olivia"), world.user("greta")
    meeting = create(world, owner)
    world.graph.add_fault(path="sendMail", drop=True)

    # The real queue listener of the dev host: a failing message must come back later, not go to poison.
    app = func.FunctionApp()

    @app.queue_trigger(
        arg_name="message", queue_name=world.ctx.storage.queue_name(schema.MAIL_QUEUE), connection="Storage"
    )
    def send_mail(message: func.QueueMessage) -> None:
        outbox.deliver(world.ctx, message.get_body().decode("utf-8"))

    host = DevHost(
        app,
        settings={"Storage": storage.connection_string},
        queues=QueueOptions(max_polling_interval=0.1, visibility_timeout=0),
    )
    poison = QueueClient.from_connection_string(
        storage.connection_string, world.ctx.storage.queue_name(schema.MAIL_QUEUE) + schema.POISON_SUFFIX
    )
    poison.create_queue()
    with host.start():
        items = invite(world, owner, meeting["id"], {"email": guest.email})
        (record,) = world.rows(owner.id, "|o|c|")
        key = schema.pending_mail(meeting["id"], record["change"], schema.invite_id(guest.email))
        # Each failure pushes the message's pending entry back (2, 4 ... seconds) and queues it for then.
        wait_until(lambda: (pending.get(world.ctx, key) or SimpleNamespace(attempts=0)).attempts >= 2, what="2 tries")
        entry = pending.get(world.ctx, key)
        assert entry.queue == schema.MAIL_QUEUE and entry.first_failed_at is not None
        attempts = [call for call in world.graph.request_log() if call["path"].endswith("sendMail")]
        assert len(attempts) >= 2 and {call["status"] for call in attempts} == {None}
        assert world.graph.messages() == []
        assert list(poison.peek_messages()) == []
        assert items[0]["status"] == "pending"
        listed = invites.list_invites(world.ctx, owner, meeting["id"], 10, None)["items"]
        assert [(item["email"], item["status"]) for item in listed] == [(guest.email, "pending")]

        # Nothing is lost: once Graph is back, the next try sends it, once, and the entry is done.
        world.graph.reset()
        wait_until(lambda: pending.get(world.ctx, key) is None, what="the retry")
    assert len(world.sent_to(guest.email)) == 1
    assert list(poison.peek_messages()) == []


def test_the_pending_sweep_redrives_an_expansion_whose_queue_put_was_lost(world, storage, caplog):
    owner, guest = world.user("olivia"), world.user("greta")
    queue_name = world.ctx.storage.queue_name(schema.MAIL_QUEUE)
    world.ctx.storage.queue(schema.MAIL_QUEUE)  # exists: only the put of this change's message fails
    storage.queues.fail("POST", re.escape(queue_name) + "/messages", status=500, times=10)  # every retry too
    before = storage.queues.snapshot()
    with caplog.at_level(logging.WARNING, logger="shared.followups"):
        meeting = create(world, owner, invitees=[{"email": guest.email, "role": "participant"}])
    storage.queues.clear_faults()
    # A failing queue does not hold the answer up: the put and the client's two retries, no more.
    puts = storage.queues.snapshot() - before
    assert sum(n for (method, path), n in puts.items() if method == "POST" and queue_name in path) == 3
    assert '"status": "retrying"' in caplog.text
    (record,) = world.rows(owner.id, "|o|c|")
    assert record["mailState"] == "new"
    assert world.drain() == []

    key = schema.pending_follow_up(meeting["id"])
    entry = pending.get(world.ctx, key)
    assert entry is not None and entry.attempts == 1
    assert pending.sweep(world.ctx) == {"requeued": 0}  # not due: its own retry may still come
    now = world.ctx.clock()
    world.ctx.clock = lambda: entry.due_at + timedelta(seconds=1)
    assert pending.sweep(world.ctx) == {"requeued": 1}
    world.ctx.clock = lambda: now
    world.run_jobs()
    world.drain()
    assert len(world.sent_to(guest.email)) == 1
    assert pending.get(world.ctx, key) is None
    assert pending.sweep(world.ctx) == {"requeued": 0}


def test_the_owners_daily_cap_skips_the_email_not_the_change(world, caplog):
    owner = world.user("olivia")
    guests = [world.user(f"guest{n}") for n in range(3)]
    table = world.ctx.storage.table(schema.MEETINGS)
    today = world.ctx.clock().date().isoformat()
    table.create_entity(
        {"PartitionKey": owner.id, "RowKey": schema.MAIL_QUOTA_KEY, "day": today, "sent": outbox.DAILY_EMAIL_CAP - 1}
    )
    with caplog.at_level(logging.WARNING, logger="shared.outbox"):
        meeting = create(world, owner, invitees=[{"email": g.email, "role": "participant"} for g in guests])
        world.drain()
    assert len(world.graph.messages()) == 1
    assert world.rows(owner.id, schema.MAIL_QUOTA_KEY)[0]["sent"] == outbox.DAILY_EMAIL_CAP
    (warning,) = [json.loads(r.getMessage()) for r in caplog.records if "cap of" in r.getMessage()]
    assert (warning["meetingId"], warning["skipped"]) == (meeting["id"], 2)
    assert len(invites.list_invites(world.ctx, owner, meeting["id"], 10, None)["items"]) == 3

    # A new day starts a new count.
    now = world.ctx.clock()
    world.ctx.clock = lambda: now + timedelta(days=1)
    update(world, owner, meeting["id"], title="Renamed")
    world.drain()
    assert len(world.graph.messages()) == 4
    assert world.rows(owner.id, schema.MAIL_QUOTA_KEY)[0]["sent"] == 3


def test_with_mail_off_no_outbox_no_queue_no_graph(storage, prefix, graph, provider):
    world = make_world(storage, prefix, graph, provider, MAIL_SENDER="")
    assert world.ctx.settings.mail is None
    queues_before = storage.queues.snapshot()
    owner, guest, other = world.user("olivia"), world.user("greta"), world.user("otto")
    meeting = create(world, owner, startsAt="2031-05-01T10:00:00Z", invitees=[{"email": guest.email}])
    invite(world, owner, meeting["id"], {"email": other.email})
    invite(world, owner, meeting["id"], {"email": other.email, "role": "host"})
    update(world, owner, meeting["id"], startsAt="2031-05-02T10:00:00Z")
    invites.revoke(world.ctx, owner, meeting["id"], schema.invite_id(guest.email))
    meetings.cancel(world.ctx, owner, meeting["id"], None)
    # Nothing of mail's is pending, so the sweep of pending work has no mail to queue.
    everything = pending.due(world.ctx, world.ctx.clock() + timedelta(days=365))
    assert [entry.key for entry in everything if entry.queue == schema.MAIL_QUEUE] == []
    pending.sweep(world.ctx)
    queue_name = world.ctx.storage.queue_name(schema.MAIL_QUEUE)
    assert [path for _, path in storage.queues.snapshot() - queues_before if queue_name in path] == []

    rows = world.rows(owner.id, "")
    assert [row["RowKey"] for row in rows if "|o|" in row["RowKey"] or row["RowKey"] == schema.MAIL_QUOTA_KEY] == []
    assert [row for row in rows if "mailSequence" in row] == []
    with pytest.raises(ResourceNotFoundError):
        QueueClient.from_connection_string(storage.connection_string, queue_name).get_queue_properties()
    assert graph.request_log() == []


def test_a_certificate_credential_signs_a_client_assertion(storage, prefix, provider):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meetings-mail")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with GraphStandIn(client_secret=None, client_certificate=certificate_pem).start() as stand_in:
        settings = support.load(
            **stand_in.settings(SENDER, MAIL_CLIENT_SECRET="", MAIL_CLIENT_CERTIFICATE=key_pem + certificate_pem)
        )
        Graph(settings.mail, session=trusting_session(stand_in)).send(
            {"message": {"subject": "x", "toRecipients": [{"emailAddress": {"address": "a@contoso.test"}}]}}
        )
        token_call, send_call = stand_in.request_log()[1:]
    assert token_call["status"] == 200 and send_call["status"] == 202
    form = token_call["form"]
    assert form["client_assertion_type"] == JWT_BEARER and "client_secret" not in form
    header = jwt.get_unverified_header(form["client_assertion"])
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest())
    assert header["x5t#S256"].rstrip("=") == thumbprint.decode().rstrip("=")
    assert header["alg"] == "PS256"

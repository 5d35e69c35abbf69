"""Invitation email in-process: the real domain code on Azurite, sending to the HTTPS Graph stand-in.

The mail queue is drained by hand (or, for the poison path, by the dev host's own queue listener)
so that each step's emails can be checked before the next change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

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
from shared import auth, invites, mail, meetings
from shared.context import Context
from shared.provider import clients_from_settings
from shared.storage import Storage
from tests import support

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
    client: mail.Graph
    sleeps: list[float] = field(default_factory=list)

    def user(self, name: str) -> auth.Caller:
        oid = str(uuid.uuid4())
        email = f"{name}-{oid[:8]}@contoso.test"
        user_id = auth.user_id(self.ctx.settings.id_hash_key, support.TENANT, oid)
        return auth.Caller(support.TENANT, oid, name.title(), (email,), user_id)

    def queue(self) -> QueueClient:
        return self.ctx.storage.queue(mail.QUEUE)

    def drain(self) -> list[str]:
        """Run every visible message of the mail queue (and those they add) as the queue trigger would."""
        handled = []
        while batch := list(self.queue().receive_messages(max_messages=32, visibility_timeout=60)):
            for message in batch:
                mail.process(self.ctx, message.content, graph=self.client)
                self.queue().delete_message(message)
                handled.append(message.content)
        return handled

    def rows(self, partition: str, marker: str) -> list[dict]:
        table = self.ctx.storage.table(meetings.MEETINGS_TABLE)
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
    world = World(ctx, graph, client=None)  # type: ignore[arg-type]
    if settings.mail is not None:
        world.client = mail.Graph(settings.mail, session=trusting_session(graph), sleep=world.sleeps.append)
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


def create(world: World, owner: auth.Caller, **body) -> dict:
    body.setdefault("title", "Weekly sync")
    return meetings.create(world.ctx, owner, body, None).meeting


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
    assert (record["kind"], record["mailState"]) == ("invited", "new")
    assert sorted(record["invites"].split(",")) == sorted(
        [invites.invite_id(host.email), invites.invite_id(guest.email)]
    )

    handled = world.drain()

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
    assert str(event["UID"]) == f"{meeting['id']}.{invites.invite_id(host.email)}@contoso.test"
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
    (quota,) = world.rows(owner.id, mail.QUOTA_KEY)
    assert quota["sent"] == 2
    # The queue delivers at least once: every message again (a retry after success) sends nothing.
    for text in handled:
        mail.process(world.ctx, text, graph=world.client)
    assert len(world.graph.messages()) == 2
    assert world.rows(owner.id, mail.QUOTA_KEY)[0]["sent"] == 2


def test_invites_role_changes_and_revocation_update_one_event_with_a_growing_sequence(world):
    owner, guest = world.user("olivia"), world.user("greta")
    meeting = create(world, owner, startsAt="2031-05-01T10:00:00Z", timeZone="UTC")

    def invite(role: str) -> None:
        invites.invite(world.ctx, owner, meeting["id"], {"invitees": [{"email": guest.email, "role": role}]})

    invite("participant")
    world.drain()
    invite("host")
    world.drain()
    invite("host")  # no change: no email
    assert world.drain() == []
    invites.revoke(world.ctx, owner, meeting["id"], invites.invite_id(guest.email))
    world.drain()
    invite("participant")
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
    meetings.update(world.ctx, owner, meeting["id"], {"startsAt": "2031-06-03T14:00:00Z", "endsAt": None}, None)
    world.drain()
    meetings.update(world.ctx, owner, meeting["id"], {"description": "Agenda attached"}, None)
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
    meetings.update(world.ctx, owner, meeting["id"], {"startsAt": "2031-06-03T14:00:00Z"}, None)
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
    invites.invite(world.ctx, owner, meeting["id"], {"invitees": [{"email": late.email, "role": "participant"}]})
    world.drain()
    assert world.sent_to(late.email) == []
    assert world.queue().get_queue_properties().approximate_message_count == 1  # invisible until then


def test_graph_down_retries_then_poison_and_the_change_stands(world, storage):
    owner, guest = world.user("olivia"), world.user("greta")
    meeting = create(world, owner)
    world.graph.add_fault(path="sendMail", drop=True)

    # The real queue listener of the dev host: retries a failing message, then moves it to poison.
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="message", queue_name=world.ctx.storage.queue_name(mail.QUEUE), connection="Storage")
    def send_mail(message: func.QueueMessage) -> None:
        mail.process(world.ctx, message.get_body().decode("utf-8"), graph=world.client)

    host = DevHost(
        app,
        settings={"Storage": storage.connection_string},
        queues=QueueOptions(max_polling_interval=0.1, visibility_timeout=0),
    )
    poison = QueueClient.from_connection_string(
        storage.connection_string, world.ctx.storage.queue_name(mail.QUEUE) + "-poison"
    )
    poison.create_queue()
    with host.start():
        items = invites.invite(world.ctx, owner, meeting["id"], {"invitees": [{"email": guest.email}]})
        deadline = time.monotonic() + 15
        while not list(poison.peek_messages()) and time.monotonic() < deadline:
            time.sleep(0.05)
    (poisoned,) = poison.receive_messages()
    attempts = [entry for entry in world.graph.request_log() if entry["path"].endswith("sendMail")]
    assert [entry["status"] for entry in attempts] == [None] * 5
    assert world.graph.messages() == []
    assert items[0]["status"] == "pending"
    listed = invites.list_invites(world.ctx, owner, meeting["id"], 10, None)["items"]
    assert [(item["email"], item["status"]) for item in listed] == [(guest.email, "pending")]

    # Nothing is lost: once Graph is back, replaying the poison message (an operator's move) sends it.
    world.graph.reset()
    mail.process(world.ctx, base64.b64decode(poisoned.content).decode("utf-8"), graph=world.client)
    assert len(world.sent_to(guest.email)) == 1


def test_the_sweep_queues_a_record_whose_queue_put_was_lost(world, storage, caplog):
    owner, guest = world.user("olivia"), world.user("greta")
    world.ctx.storage.queue(mail.QUEUE)  # exists: only the put of this change's message fails
    pattern = re.escape(world.ctx.storage.queue_name(mail.QUEUE)) + "/messages"
    storage.queues.fail("POST", pattern, status=500, times=10)  # the put and every retry of it
    with caplog.at_level(logging.WARNING, logger="shared.mail"):
        started = time.monotonic()
        create(world, owner, invitees=[{"email": guest.email, "role": "participant"}])
    storage.queues.clear_faults()
    assert time.monotonic() - started < 2  # a failing queue does not hold the answer up
    assert "the sweep will" in caplog.text
    (record,) = world.rows(owner.id, "|o|c|")
    assert record["mailState"] == "new"
    assert world.drain() == []

    assert mail.sweep(world.ctx) == 0  # too young: its own request may still be queueing it
    now = world.ctx.clock()
    world.ctx.clock = lambda: now + mail.SWEEP_AFTER + timedelta(seconds=5)
    assert mail.sweep(world.ctx) == 1
    world.drain()
    assert len(world.sent_to(guest.email)) == 1
    assert mail.sweep(world.ctx) == 0


def test_the_owners_daily_cap_skips_the_email_not_the_change(world, caplog):
    owner = world.user("olivia")
    guests = [world.user(f"guest{n}") for n in range(3)]
    table = world.ctx.storage.table(meetings.MEETINGS_TABLE)
    today = world.ctx.clock().date().isoformat()
    table.create_entity(
        {"PartitionKey": owner.id, "RowKey": mail.QUOTA_KEY, "day": today, "sent": mail.DAILY_EMAIL_CAP - 1}
    )
    meeting = create(world, owner, invitees=[{"email": g.email, "role": "participant"} for g in guests])
    with caplog.at_level(logging.WARNING, logger="shared.mail"):
        world.drain()
    assert len(world.graph.messages()) == 1
    assert world.rows(owner.id, mail.QUOTA_KEY)[0]["sent"] == mail.DAILY_EMAIL_CAP
    (warning,) = [json.loads(r.getMessage()) for r in caplog.records if "daily cap" in r.getMessage()]
    assert (warning["meetingId"], warning["skipped"]) == (meeting["id"], 2)
    assert len(invites.list_invites(world.ctx, owner, meeting["id"], 10, None)["items"]) == 3

    # A new day starts a new count.
    now = world.ctx.clock()
    world.ctx.clock = lambda: now + timedelta(days=1)
    meetings.update(world.ctx, owner, meeting["id"], {"title": "Renamed"}, None)
    world.drain()
    assert len(world.graph.messages()) == 4
    assert world.rows(owner.id, mail.QUOTA_KEY)[0]["sent"] == 3


def test_with_mail_off_no_outbox_no_queue_no_graph(storage, prefix, graph, provider):
    world = make_world(storage, prefix, graph, provider, MAIL_SENDER="")
    assert world.ctx.settings.mail is None
    queues_before = storage.queues.snapshot()
    owner, guest, other = world.user("olivia"), world.user("greta"), world.user("otto")
    meeting = create(world, owner, startsAt="2031-05-01T10:00:00Z", invitees=[{"email": guest.email}])
    invites.invite(world.ctx, owner, meeting["id"], {"invitees": [{"email": other.email}]})
    invites.invite(world.ctx, owner, meeting["id"], {"invitees": [{"email": other.email, "role": "host"}]})
    meetings.update(world.ctx, owner, meeting["id"], {"startsAt": "2031-05-02T10:00:00Z"}, None)
    invites.revoke(world.ctx, owner, meeting["id"], invites.invite_id(guest.email))
    meetings.cancel(world.ctx, owner, meeting["id"], None)
    tables_before = storage.tables.snapshot()
    assert mail.sweep(world.ctx) == 0
    assert [path for _, path in storage.tables.snapshot() - tables_before if prefix in path] == []
    queue_name = world.ctx.storage.queue_name(mail.QUEUE)
    assert [path for _, path in storage.queues.snapshot() - queues_before if queue_name in path] == []

    rows = world.rows(owner.id, "")
    assert [row["RowKey"] for row in rows if "|o|" in row["RowKey"] or row["RowKey"] == mail.QUOTA_KEY] == []
    assert [row for row in rows if mail.SEQUENCE in row] == []
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
        mail.Graph(settings.mail, session=trusting_session(stand_in)).send(
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

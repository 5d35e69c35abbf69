"""Invitation email end to end: the app in its own dev-host process, sending to the HTTPS Graph stand-in.

The app process trusts the stand-in's test CA through `REQUESTS_CA_BUNDLE` in its environment (the
app's session is the production one; see dev/graph.py), and runs its own mail queue trigger.
"""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime

import pytest
import requests
from azure.data.tables import TableClient
from icalendar import Calendar

from dev.graph import GraphStandIn
from shared import schema
from shared.schema import invite_id
from tests.api.conftest import start_app

SENDER = "meetings@contoso.test"
APP_URL = "https://meet.contoso.test"


@pytest.fixture(scope="module")
def graph():
    with GraphStandIn().start() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def mail_app(storage, provider, issuer, graph):
    # REQUESTS_CA_BUNDLE: how the app process trusts the stand-in's test CA (see dev/graph.py).
    settings = {**graph.settings(SENDER), "APP_BASE_URL": APP_URL, "REQUESTS_CA_BUNDLE": graph.ca_path}
    running = start_app(storage, provider, issuer, "dyte", **settings)
    yield running
    running.stop()


def wait_for(graph: GraphStandIn, address: str, count: int, timeout: float = 60.0) -> list[dict]:
    """The messages sent to `address`, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        messages = [m["message"] for m in graph.messages()]
        sent = [m for m in messages if m["toRecipients"] == [{"emailAddress": {"address": address}}]]
        if len(sent) >= count or time.monotonic() > deadline:
            assert len(sent) == count, f"{len(sent)} messages to {address}, expected {count}"
            return sent
        time.sleep(0.05)


def calendar_of(message: dict) -> Calendar:
    (attachment,) = message["attachments"]
    return Calendar.from_ical(base64.b64decode(attachment["contentBytes"]))


def summary(message: dict) -> tuple[str, int, datetime]:
    calendar = calendar_of(message)
    (event,) = calendar.events
    return calendar["METHOD"], event["SEQUENCE"], event.start.astimezone(UTC)


def meetings_table(app) -> TableClient:
    return TableClient.from_connection_string(app.storage.connection_string, f"{app.prefix}{schema.MEETINGS}")


def test_invitations_updates_and_cancellation_reach_invitees(mail_app, graph):
    owner, guest, late = mail_app.user("owner"), mail_app.user("guest"), mail_app.user("late")
    meeting = owner.create(
        title="Design review",
        startsAt="2031-10-26T09:00:00Z",
        endsAt="2031-10-26T10:00:00Z",
        timeZone="Europe/London",
        invitees=[{"email": guest.email, "role": "participant"}],
    )
    (invitation,) = wait_for(graph, guest.email, 1)
    assert invitation["subject"] == "Invitation: Design review"
    assert f"{APP_URL}/meetings/{meeting['id']}" in invitation["body"]["content"]
    # London leaves summer time that morning at 01:00 UTC: 09:00Z is 09:00 GMT.
    assert "Sunday 26 October 2031, 09:00–10:00 (Europe/London)" in invitation["body"]["content"]
    calendar = calendar_of(invitation)
    assert [zone.tz_name for zone in calendar.timezones] == ["Europe/London"]
    assert summary(invitation) == ("REQUEST", 1, datetime(2031, 10, 26, 9, tzinfo=UTC))
    assert str(calendar.events[0]["UID"]) == f"{meeting['id']}.{invite_id(guest.email)}@contoso.test"

    body = {"invitees": [{"email": late.email, "role": "host"}]}
    assert owner.call("POST", f"/meetings/{meeting['id']}/invites", json=body).status_code == 201
    (late_invitation,) = wait_for(graph, late.email, 1)
    assert "as a host" in late_invitation["body"]["content"]

    moved = {"startsAt": "2031-10-27T09:00:00Z", "endsAt": None}
    assert owner.call("PATCH", f"/meetings/{meeting['id']}", json=moved).status_code == 200
    for address in (guest.email, late.email):
        wait_for(graph, address, 2)  # before cancelling: a cancellation overtakes an update not yet sent
    assert owner.call("DELETE", f"/meetings/{meeting['id']}").status_code == 204
    for address in (guest.email, late.email):
        sent = wait_for(graph, address, 3)
        assert [m["subject"].split(":")[0] for m in sent] == ["Invitation", "Updated", "Cancelled"]
        assert [summary(m) for m in sent[1:]] == [
            ("REQUEST", 2, datetime(2031, 10, 27, 9, tzinfo=UTC)),
            ("CANCEL", 3, datetime(2031, 10, 27, 9, tzinfo=UTC)),
        ]
    # One process, one msal application: one token for every email.
    token_calls = [entry for entry in graph.request_log() if entry["path"].endswith("/oauth2/v2.0/token")]
    assert [call["form"]["scope"] for call in token_calls] == [f"{graph.url}/.default"]


def test_the_sweep_timer_sends_what_a_lost_queue_put_left_behind(mail_app, graph, storage):
    owner, guest = mail_app.user("owner"), mail_app.user("guest")
    meeting = owner.create(startsAt="2031-11-03T15:00:00Z", invitees=[{"email": guest.email, "role": "participant"}])
    wait_for(graph, guest.email, 1)
    # The put of the change's message fails, with every retry of it.
    storage.queues.fail("POST", re.escape(f"{mail_app.prefix}{schema.MAIL_QUEUE}") + "/messages", status=500, times=10)
    patched = owner.call("PATCH", f"/meetings/{meeting['id']}", json={"startsAt": "2031-11-04T15:00:00Z"})
    storage.queues.clear_faults()
    assert patched.status_code == 200  # the change stands; its email waits for a retry

    # Its follow-up retries, and the pending sweep re-drives whatever lost its own queue message.
    invoked = requests.post(f"{mail_app.url}/admin/functions/sweep_pending", json={"input": ""}, timeout=10)
    assert invoked.status_code == 202
    _, updated = wait_for(graph, guest.email, 2)
    assert updated["subject"].startswith("Updated:")
    assert summary(updated) == ("REQUEST", 2, datetime(2031, 11, 4, 15, tzinfo=UTC))


def test_with_mail_off_changes_write_no_outbox_and_queue_no_mail(dyte_app, storage):
    owner, guest, other = dyte_app.user("owner"), dyte_app.user("guest"), dyte_app.user("other")
    queues_before = storage.queues.snapshot()
    meeting = owner.create(startsAt="2031-05-01T10:00:00Z", invitees=[{"email": guest.email, "role": "participant"}])
    path = f"/meetings/{meeting['id']}"
    for role in ("participant", "host"):
        body = {"invitees": [{"email": other.email, "role": role}]}
        assert owner.call("POST", f"{path}/invites", json=body).status_code == 201
    assert owner.call("PATCH", path, json={"startsAt": "2031-05-02T10:00:00Z"}).status_code == 200
    assert owner.call("DELETE", f"{path}/invites/{invite_id(guest.email)}").status_code == 204
    assert owner.call("DELETE", path).status_code == 204

    rows = list(
        meetings_table(dyte_app).query_entities(
            "PartitionKey eq @pk", parameters={"pk": schema.owner_partition(meeting["id"])}
        )
    )
    assert [r["RowKey"] for r in rows if "|o|" in r["RowKey"] or r["RowKey"] == schema.MAIL_QUOTA_KEY] == []
    assert [r["RowKey"] for r in rows if "mailSequence" in r] == []
    mail_queue = f"{dyte_app.prefix}{schema.MAIL_QUEUE}"
    assert [key for key in storage.queues.snapshot() - queues_before if mail_queue in key[1] and key[0] != "GET"] == []

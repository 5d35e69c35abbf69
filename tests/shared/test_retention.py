"""The daily purge removes exactly what is past retention, and is safe to run twice or to interrupt."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared import meetings, retention
from shared.auth import Caller, user_id
from shared.events import deliveries
from tests import support

T0 = datetime(2031, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def ctx(domain_context):
    return domain_context(T0, EVENT_RETENTION_DAYS="30", MEETING_RETENTION_DAYS="365")


def owner(ctx):
    oid = str(uuid.uuid4())
    return Caller(
        support.TENANT, oid, "Olga", ("olga@contoso.test",), user_id(ctx.settings.id_hash_key, support.TENANT, oid)
    )


def rows(ctx, table):
    return list(ctx.storage.table(table).list_entities())


def test_purge_removes_exactly_what_is_past_retention(ctx):
    olga = owner(ctx)
    invited = {"email": "guest@contoso.test", "role": "participant"}
    old = meetings.create(ctx, olga, {"title": "old", "invitees": [invited]}, "old-key").meeting
    kept = meetings.create(ctx, olga, {"title": "kept"}, None).meeting
    meetings.cancel(ctx, olga, old["id"], None)
    ctx.clock.now = T0 + timedelta(days=300)
    recent = meetings.create(ctx, olga, {"title": "recent"}, None).meeting
    meetings.cancel(ctx, olga, recent["id"], None)
    ctx.clock.now = T0 + timedelta(days=366)
    table = ctx.storage.table(deliveries.DELIVERIES_TABLE)
    for age_days, body in ((31, b'{"event":"old"}'), (29, b'{"event":"new"}')):
        received = ctx.clock.now - timedelta(days=age_days)
        records = deliveries.entities(deliveries.delivery_key(body), body, "dyte", {}, received)
        table.submit_transaction([("create", entity) for entity in records])
    first = retention.purge(ctx)
    assert first == {"deliveries": 1, "idempotency": 1, "meetings": 1}
    remaining = {row["id"] for row in rows(ctx, meetings.MEETINGS_TABLE) if row["RowKey"].startswith("m|")}
    assert remaining == {kept["id"], recent["id"]}
    assert not any(old["id"] in row["RowKey"] for row in rows(ctx, meetings.MEETINGS_TABLE))
    assert all(row.get("id") != old["id"] for row in rows(ctx, "Invitations"))
    assert {row["meetingId"] for row in rows(ctx, meetings.PROVIDER_MEETINGS_TABLE)} == {kept["id"], recent["id"]}
    assert [bytes(row["body"]) for row in rows(ctx, deliveries.DELIVERIES_TABLE) if "body" in row] == [
        b'{"event":"new"}'
    ]
    assert retention.purge(ctx) == {"deliveries": 0, "idempotency": 0, "meetings": 0}


def test_an_interrupted_purge_resumes_where_it_stopped(ctx):
    olga = owner(ctx)
    for n in range(3):
        meeting = meetings.create(ctx, olga, {"title": f"m{n}"}, None).meeting
        meetings.cancel(ctx, olga, meeting["id"], None)
    ctx.clock.now = T0 + timedelta(days=400)
    assert retention.purge(ctx, limit=1)["meetings"] == 1
    assert retention.purge(ctx, limit=1)["meetings"] == 1
    assert retention.purge(ctx, limit=5)["meetings"] == 1
    assert [row for row in rows(ctx, meetings.MEETINGS_TABLE) if row["PartitionKey"] == olga.id] == []

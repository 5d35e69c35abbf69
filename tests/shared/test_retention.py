"""The daily purge removes exactly what is past retention, and is safe to run twice or to interrupt."""

from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError

from shared import meetings, retention, schema
from shared.events import deliveries
from tests import factories

T0 = datetime(2031, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def ctx(domain_context):
    return domain_context(T0, EVENT_RETENTION_DAYS="30", MEETING_RETENTION_DAYS="365")


def rows(ctx, table):
    return list(ctx.storage.table(table).list_entities())


def record_delivery(ctx, body: bytes, received_at: datetime) -> None:
    """Record a delivery as the receiver does: its retention entry, then its rows."""
    key = deliveries.delivery_key(body)
    ctx.storage.table(schema.EXPIRING).create_entity(
        retention.delivery_entry(received_at, key, ctx.settings.event_retention_days)
    )
    records = deliveries.entities(key, body, "dyte", {}, received_at)
    ctx.storage.table(schema.DELIVERIES).submit_transaction([("create", entity) for entity in records])


def idempotency_records(ctx, owner) -> list[dict]:
    low, high = schema.IDEMPOTENCY_RANGE
    owned = (row for row in rows(ctx, schema.MEETINGS) if row["PartitionKey"] == owner.id)
    return [row for row in owned if low <= row["RowKey"] < high]


def test_purge_removes_exactly_what_is_past_retention(ctx):
    olga = factories.user("olga")
    invited = {"email": "guest@contoso.test", "role": "participant"}
    old = factories.create_meeting(ctx, olga, "old-key", title="old", invitees=[invited])
    kept = factories.create_meeting(ctx, olga, title="kept")
    meetings.cancel(ctx, olga, old["id"], None)
    ctx.clock.now = T0 + timedelta(days=300)
    recent = factories.create_meeting(ctx, olga, title="recent")
    meetings.cancel(ctx, olga, recent["id"], None)
    ctx.clock.now = T0 + timedelta(days=366)
    for age_days, body in ((31, b'{"event":"old"}'), (29, b'{"event":"new"}')):
        record_delivery(ctx, body, ctx.clock.now - timedelta(days=age_days))
    first = retention.purge(ctx)
    assert first == {"deliveries": 1, "meetings": 1, "recordings": 0, "rescheduled": 0, "deferred": 0}
    remaining = {row["id"] for row in rows(ctx, schema.MEETINGS) if row["RowKey"].startswith("m|")}
    assert remaining == {kept["id"], recent["id"]}
    assert not any(old["id"] in row["RowKey"] for row in rows(ctx, schema.MEETINGS))
    assert all(row.get("id") != old["id"] for row in rows(ctx, schema.INVITATIONS))
    assert {row["meetingId"] for row in rows(ctx, schema.PROVIDER_MEETINGS)} == {kept["id"], recent["id"]}
    assert [bytes(row["body"]) for row in rows(ctx, schema.DELIVERIES) if "body" in row] == [b'{"event":"new"}']
    assert retention.purge(ctx) == {"deliveries": 0, "meetings": 0, "recordings": 0, "rescheduled": 0, "deferred": 0}


def test_purging_a_meeting_takes_its_owners_expired_idempotency_records(ctx):
    olga = factories.user("olga")
    old = factories.create_meeting(ctx, olga, "old-key", title="old")
    assert len(idempotency_records(ctx, olga)) == 1
    meetings.cancel(ctx, olga, old["id"], None)
    ctx.clock.now = T0 + timedelta(days=366)
    assert retention.purge(ctx)["meetings"] == 1
    assert idempotency_records(ctx, olga) == []


def expiring_entries(ctx, meeting_id) -> list[str]:
    """The days (partitions) of the meeting's retention entries."""
    key = schema.expiring_meeting(meeting_id)
    return sorted(row["PartitionKey"] for row in rows(ctx, schema.EXPIRING) if row["RowKey"] == key)


def test_a_meeting_due_later_on_the_day_of_its_entry_is_kept_indexed_and_purged_the_next_day(ctx):
    olga = factories.user("olga")
    meeting = factories.create_meeting(ctx, olga, title="cancelled at nine")
    meetings.cancel(ctx, olga, meeting["id"], None)  # at T0, 09:00: due at 09:00 a year later
    due_day = retention.day_of(T0 + timedelta(days=365))
    assert expiring_entries(ctx, meeting["id"]) == [schema.expiring_partition(due_day)]
    ctx.clock.now = T0 + timedelta(days=365) - timedelta(hours=1)  # that day's purge runs at 08:00
    assert retention.purge(ctx) == {"deliveries": 0, "meetings": 0, "recordings": 0, "rescheduled": 1, "deferred": 0}
    next_day = retention.day_of(T0 + timedelta(days=366))
    assert expiring_entries(ctx, meeting["id"]) == [schema.expiring_partition(next_day)]  # not lost
    ctx.clock.now = T0 + timedelta(days=366) - timedelta(hours=1)
    assert retention.purge(ctx)["meetings"] == 1
    assert expiring_entries(ctx, meeting["id"]) == []
    assert not any(meeting["id"] in row["RowKey"] for row in rows(ctx, schema.MEETINGS))


def test_an_interrupted_purge_resumes_where_it_stopped(ctx):
    olga = factories.user("olga")
    for n in range(3):
        meeting = factories.create_meeting(ctx, olga, title=f"m{n}")
        meetings.cancel(ctx, olga, meeting["id"], None)
    ctx.clock.now = T0 + timedelta(days=400)
    assert retention.purge(ctx, limit=1)["meetings"] == 1
    assert retention.purge(ctx, limit=1)["meetings"] == 1
    assert retention.purge(ctx, limit=5)["meetings"] == 1
    assert [row for row in rows(ctx, schema.MEETINGS) if row["PartitionKey"] == olga.id] == []


def provider_status(ctx, meeting) -> str:
    return ctx.providers["dyte"].get_meeting(meeting["providerMeetingId"]).status


def ended(ctx, owner, title: str):
    """A meeting whose session ended at T0 (its follow-up indexes it for retention): ACTIVE at the provider."""
    meeting = factories.create_meeting(ctx, owner, title=title)
    stored = meetings.load(ctx, owner, meeting["id"]).meeting
    retention.schedule_meeting(ctx, stored, T0)
    ctx.storage.table(schema.MEETINGS).update_entity(
        {
            "PartitionKey": stored.partition,
            "RowKey": stored.key,
            "activity": "ended",
            "endedAt": "2031-01-01T09:00:00.000000Z",
        }
    )
    return meeting


def meeting_rows(ctx, meeting) -> list[str]:
    return [row["RowKey"] for row in rows(ctx, schema.MEETINGS) if meeting["id"] in row["RowKey"]]


def test_a_purged_meeting_is_inactive_at_the_provider_first(ctx, provider):
    olga = factories.user("olga")
    meeting = ended(ctx, olga, "ended, never cancelled")
    assert provider_status(ctx, meeting) == "ACTIVE"
    ctx.clock.now = T0 + timedelta(days=366)
    assert retention.purge(ctx)["meetings"] == 1
    assert provider_status(ctx, meeting) == "INACTIVE"
    assert meeting_rows(ctx, meeting) == []


def test_while_the_provider_cannot_be_told_the_meetings_are_kept_whole_and_purged_by_a_later_run(ctx, provider):
    ctx.providers["dyte"] = ctx.providers["dyte"].once()  # no retries: the fault below is the whole outage
    olga = factories.user("olga")
    first, second = ended(ctx, olga, "first"), ended(ctx, olga, "second")
    kept = {m["id"]: meeting_rows(ctx, m) for m in (first, second)}
    ctx.clock.now = T0 + timedelta(days=366)
    before = len(provider.request_log())
    provider.add_fault(method="PATCH", path="/meetings/[^/]+$", status=503, times=1)
    assert retention.purge(ctx) == {"deliveries": 0, "meetings": 0, "recordings": 0, "rescheduled": 0, "deferred": 2}
    # One call failed; the other meeting was not tried against a provider that is down.
    assert [c["method"] for c in provider.request_log()[before:]] == ["PATCH"]
    assert {m["id"]: meeting_rows(ctx, m) for m in (first, second)} == kept
    assert {row["meetingId"] for row in rows(ctx, schema.PROVIDER_MEETINGS)} == {first["id"], second["id"]}
    assert all(expiring_entries(ctx, m["id"]) for m in (first, second))  # still due
    assert meetings.load(ctx, olga, first["id"]).meeting.title == "first"
    assert retention.purge(ctx)["meetings"] == 2
    assert [provider_status(ctx, m) for m in (first, second)] == ["INACTIVE", "INACTIVE"]
    assert [meeting_rows(ctx, m) for m in (first, second)] == [[], []]
    assert [expiring_entries(ctx, m["id"]) for m in (first, second)] == [[], []]


def test_a_meeting_the_provider_no_longer_has_is_purged(ctx, provider):
    olga = factories.user("olga")
    meeting = ended(ctx, olga, "gone at the provider")
    ctx.clock.now = T0 + timedelta(days=366)
    provider.add_fault(method="PATCH", path=f"/meetings/{meeting['providerMeetingId']}$", status=404, times=1)
    assert retention.purge(ctx)["meetings"] == 1
    assert meeting_rows(ctx, meeting) == []


def test_a_purge_that_fails_after_deactivating_is_finished_by_the_next_run(ctx, storage):
    olga = factories.user("olga")
    meeting = ended(ctx, olga, "interrupted")
    ctx.clock.now = T0 + timedelta(days=366)
    storage.tables.fail("DELETE", rf"{ctx.settings.table_prefix}{schema.MEETINGS}\(", status=503, times=10)
    try:
        with pytest.raises(HttpResponseError):
            retention.purge(ctx)
    finally:
        storage.tables.clear_faults()
    assert provider_status(ctx, meeting) == "INACTIVE"
    assert schema.meeting_key(meeting["id"]) in meeting_rows(ctx, meeting)  # the meeting row goes last
    assert retention.purge(ctx)["meetings"] == 1
    assert meeting_rows(ctx, meeting) == []

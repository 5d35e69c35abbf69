"""Joining at the domain level, with an injected clock: the join window and the token's life."""

from datetime import UTC, datetime, timedelta

import pytest

from shared import joins, meetings, problems
from tests import factories


@pytest.fixture
def ctx(domain_context):
    return domain_context(datetime(2031, 6, 1, 8, 0, tzinfo=UTC), JOIN_EARLY_MINUTES="10", JOIN_GRACE_MINUTES="30")


def scheduled(ctx, starts_at: str, ends_at: str | None = None):
    owner, guest, host = factories.user("owner"), factories.user("guest"), factories.user("host")
    body = {
        "title": "Window",
        "startsAt": starts_at,
        "timeZone": "Asia/Kolkata",
        "invitees": [{"email": guest.email, "role": "participant"}, {"email": host.email, "role": "host"}],
    }
    if ends_at:
        body["endsAt"] = ends_at
    meeting = factories.create_meeting(ctx, owner, **body)
    return meeting["id"], owner, guest, host


def test_participants_join_from_the_early_minutes_before_start(ctx):
    # 15:30 in Kolkata is 10:00 UTC: the window opens at 09:50 UTC with JOIN_EARLY_MINUTES=10.
    meeting_id, owner, guest, host = scheduled(ctx, "2031-06-01T15:30:00+05:30")
    ctx.clock.now = datetime(2031, 6, 1, 9, 49, 59, tzinfo=UTC)
    with pytest.raises(problems.JoinWindow) as refused:
        joins.join(ctx, guest, meeting_id)
    assert refused.value.extensions["joinOpensAt"] == "2031-06-01T09:50:00Z"
    assert joins.join(ctx, host, meeting_id)["role"] == "host"
    assert joins.join(ctx, owner, meeting_id)["role"] == "owner"
    ctx.clock.now = datetime(2031, 6, 1, 9, 50, tzinfo=UTC)
    assert joins.join(ctx, guest, meeting_id)["role"] == "participant"


def test_nobody_joins_after_end_plus_grace(ctx):
    meeting_id, owner, guest, _ = scheduled(ctx, "2031-06-01T10:00:00Z", "2031-06-01T11:00:00Z")
    ctx.clock.now = datetime(2031, 6, 1, 11, 30, tzinfo=UTC)
    assert joins.join(ctx, guest, meeting_id)["role"] == "participant"
    ctx.clock.now += timedelta(seconds=1)
    for who in (guest, owner):
        with pytest.raises(problems.JoinWindow) as refused:
            joins.join(ctx, who, meeting_id)
        assert refused.value.extensions["joinClosesAt"] == "2031-06-01T11:30:00Z"


def test_without_a_schedule_joins_are_open_until_cancelled(ctx):
    owner, guest = factories.user("owner"), factories.user("guest")
    meeting = factories.create_meeting(ctx, owner, title="Anytime", invitees=[{"email": guest.email}])
    ctx.clock.now = datetime(2040, 1, 1, tzinfo=UTC)
    assert joins.join(ctx, guest, meeting["id"])["participantId"]
    meetings.cancel(ctx, owner, meeting["id"], None)
    with pytest.raises(problems.Cancelled):
        joins.join(ctx, guest, meeting["id"])


def test_a_fresh_token_is_shared_briefly_then_refreshed(ctx, provider):
    meeting_id, _, guest, _ = scheduled(ctx, "2031-06-01T08:00:00Z")
    first = joins.join(ctx, guest, meeting_id)
    before = len(provider.request_log())
    ctx.clock.now += joins.TOKEN_REUSE
    assert joins.join(ctx, guest, meeting_id)["authToken"] == first["authToken"]
    assert len(provider.request_log()) == before
    ctx.clock.now += timedelta(seconds=1)
    refreshed = joins.join(ctx, guest, meeting_id)
    calls = provider.request_log()[before:]
    assert [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in calls] == [("POST", "token")]
    assert refreshed["participantId"] == first["participantId"]
    assert provider.token_check(refreshed["authToken"])["valid"]


def test_a_participant_deleted_at_the_provider_is_added_again(ctx, provider):
    meeting_id, _, guest, _ = scheduled(ctx, "2031-06-01T08:00:00Z")
    first = joins.join(ctx, guest, meeting_id)
    meeting = meetings.load(ctx, guest, meeting_id).meeting
    ctx.providers["dyte"].delete_participant(meeting.provider_meeting_id, first["participantId"])
    ctx.clock.now += joins.TOKEN_REUSE + timedelta(seconds=1)
    again = joins.join(ctx, guest, meeting_id)
    assert again["participantId"] != first["participantId"]
    assert provider.token_check(again["authToken"])["valid"]
    found = ctx.providers["dyte"].find_participant(
        meeting.provider_meeting_id, joins.custom_participant_id(ctx, meeting_id, guest)
    )
    assert found is not None and found.id == again["participantId"]


def provider_participants(ctx, meeting_id, who) -> list:
    meeting = meetings.load(ctx, who, meeting_id).meeting
    custom = joins.custom_participant_id(ctx, meeting_id, who)
    return [
        p for p in ctx.providers["dyte"].participants(meeting.provider_meeting_id) if p.custom_participant_id == custom
    ]


def test_an_add_answered_5xx_whose_uncertain_mark_fails_is_adopted_once_the_claim_lapses(ctx, provider, storage):
    meeting_id, _, guest, _ = scheduled(ctx, "2031-06-01T08:00:00Z")
    provider.add_fault(method="POST", path="/participants$", status=500, apply=True, times=1)
    for method in ("PUT", "PATCH", "MERGE"):
        storage.tables.fail(method, r'"uncertain": ?true', status=503, times=1)
    try:
        with pytest.raises(problems.ProviderUnavailable):
            joins.join(ctx, guest, meeting_id)
    finally:
        storage.tables.clear_faults()
    [added] = provider_participants(ctx, meeting_id, guest)  # the 500 came after the provider added it
    ctx.clock.now += joins.CLAIM_LEASE + timedelta(seconds=1)  # the lease of a claim nobody marked lapses
    before = len(provider.request_log())
    joined = joins.join(ctx, guest, meeting_id)
    assert joined["participantId"] == added.id
    assert [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in provider.request_log()[before:]] == [
        ("GET", "participants"),
        ("POST", "token"),
    ]
    assert provider_participants(ctx, meeting_id, guest) == [added]
    assert provider.token_check(joined["authToken"])["valid"]


def test_a_lookup_that_fails_keeps_the_claim_uncertain(ctx, provider):
    ctx.providers["dyte"] = ctx.providers["dyte"].once()  # no retries: each fault below is one failed request
    meeting_id, _, guest, _ = scheduled(ctx, "2031-06-01T08:00:00Z")
    provider.add_fault(method="POST", path="/participants$", status=502, apply=True, times=1)
    with pytest.raises(problems.ProviderUnavailable):
        joins.join(ctx, guest, meeting_id)
    provider.add_fault(method="GET", path="/participants$", status=503, times=1)
    with pytest.raises(problems.ProviderUnavailable):
        joins.join(ctx, guest, meeting_id)  # the lookup failed: what the first add left is still unknown
    [added] = provider_participants(ctx, meeting_id, guest)
    joined = joins.join(ctx, guest, meeting_id)
    assert joined["participantId"] == added.id
    assert provider_participants(ctx, meeting_id, guest) == [added]


def test_an_add_the_provider_refused_releases_the_claim(ctx, provider):
    meeting_id, _, guest, _ = scheduled(ctx, "2031-06-01T08:00:00Z")
    provider.add_fault(method="POST", path="/participants$", status=422, times=1)
    with pytest.raises(problems.ProviderRejected):
        joins.join(ctx, guest, meeting_id)
    assert meetings.load(ctx, guest, meeting_id).participant is None  # refused: nothing to look up
    before = len(provider.request_log())
    joined = joins.join(ctx, guest, meeting_id)
    assert [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in provider.request_log()[before:]] == [
        ("POST", "participants")
    ]
    assert [p.id for p in provider_participants(ctx, meeting_id, guest)] == [joined["participantId"]]

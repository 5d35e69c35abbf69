"""The stored things as typed values: the schedule's rules, and every row read back as it was written."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import joins, problems, schema, storage, times
from shared.access import Access, Role
from shared.model import Invite, Meeting, Participant, Schedule
from tests import factories, support

START = datetime(2031, 6, 1, 10, 0, tzinfo=UTC)
END = START + timedelta(hours=1)

# Instants as the API accepts them (years 2000 to 2200), to the microsecond, in any offset.
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.timezones()).map(
    lambda moment: moment.astimezone(UTC)
)


# The join window ------------------------------------------------------------------------------------------


def test_the_window_opens_early_and_closes_after_the_grace():
    assert Schedule(START, END, "UTC").join_window(15, 60) == (START - timedelta(minutes=15), END + timedelta(hours=1))
    assert Schedule(START, None, "UTC").join_window(15, 60) == (START - timedelta(minutes=15), None)
    assert Schedule(None, None, "UTC").join_window(15, 60) == (None, None)
    assert Schedule(None, END, "UTC").join_window(0, 0) == (None, END)


def window_context(early: int = 10, grace: int = 30):
    return SimpleNamespace(settings=support.load(JOIN_EARLY_MINUTES=str(early), JOIN_GRACE_MINUTES=str(grace)))


@pytest.mark.parametrize(
    ("role", "offset", "allowed"),
    [
        (Role.PARTICIPANT, timedelta(minutes=-10, microseconds=-1), False),
        (Role.PARTICIPANT, timedelta(minutes=-10), True),  # opens exactly at start - early
        (Role.GUEST, timedelta(minutes=-10, microseconds=-1), False),
        (Role.GUEST, timedelta(minutes=-10), True),
        (Role.HOST, timedelta(days=-30), True),  # owner and hosts any time before
        (Role.OWNER, timedelta(days=-30), True),
    ],
)
def test_the_window_opens_at_its_edge_for_participants_and_guests(role, offset, allowed):
    meeting = factories.meeting(factories.user(), starts_at=START, ends_at=END)
    at = START + offset
    if allowed:
        joins.check_window(window_context(), meeting, role, at)
    else:
        with pytest.raises(problems.JoinWindow) as refused:
            joins.check_window(window_context(), meeting, role, at)
        assert refused.value.extensions["joinOpensAt"] == "2031-06-01T09:50:00Z"
        assert refused.value.extensions["joinClosesAt"] == "2031-06-01T11:30:00Z"


@pytest.mark.parametrize("role", list(Role))
def test_nobody_joins_after_the_end_and_its_grace(role):
    meeting = factories.meeting(factories.user(), starts_at=START, ends_at=END)
    joins.check_window(window_context(), meeting, role, END + timedelta(minutes=30))  # closes exactly then
    with pytest.raises(problems.JoinWindow) as refused:
        joins.check_window(window_context(), meeting, role, END + timedelta(minutes=30, microseconds=1))
    assert refused.value.status == 409


def test_without_a_start_or_an_end_the_window_never_closes():
    meeting = factories.meeting(factories.user())
    for role in Role:
        joins.check_window(window_context(), meeting, role, datetime(2199, 1, 1, tzinfo=UTC))
        joins.check_window(window_context(), meeting, role, datetime(2000, 1, 1, tzinfo=UTC))


# The list order -------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), instants), instants), min_size=2, max_size=20))
def test_scheduled_meetings_by_start_then_unscheduled_newest_first(schedules):
    owner = factories.user()
    meetings = [factories.meeting(owner, starts_at=start, created_at=created) for start, created in schedules]
    listed = sorted(meetings, key=lambda meeting: meeting.owner_index_key())
    scheduled = [m for m in listed if m.schedule.starts_at is not None]
    unscheduled = [m for m in listed if m.schedule.starts_at is None]
    assert listed == scheduled + unscheduled
    assert [m.schedule.starts_at for m in scheduled] == sorted(m.schedule.starts_at for m in scheduled)
    # Newest first, to the millisecond the key keeps.
    for newer, older in itertools.pairwise(unscheduled):
        assert newer.created_at > older.created_at - timedelta(milliseconds=1)


def test_the_sort_key_is_a_key_part_of_fixed_width():
    early = Schedule(datetime(2000, 1, 1, tzinfo=UTC), None, "UTC").sort_key(START)
    late = Schedule(datetime(2200, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), None, "UTC").sort_key(START)
    unscheduled = [Schedule(None, None, "UTC").sort_key(datetime(year, 1, 1, tzinfo=UTC)) for year in (2000, 2200)]
    assert len({len(early), len(late)}) == 1 and len({len(key) for key in unscheduled}) == 1
    assert early < late < min(unscheduled)
    # A valid part of a RowKey, without the separator the list splits index keys at.
    assert all(storage.valid_key(key) and "|" not in key for key in (early, late, *unscheduled))


def test_past_means_its_end_or_else_its_start_is_before_the_cutoff():
    assert Schedule(START, END, "UTC").is_past(END + timedelta(microseconds=1))
    assert not Schedule(START, END, "UTC").is_past(END)
    assert not Schedule(START, END, "UTC").is_past(START + timedelta(minutes=1))  # started, not over
    assert Schedule(START, None, "UTC").is_past(START + timedelta(microseconds=1))
    assert not Schedule(START, None, "UTC").is_past(START)
    assert not Schedule(None, None, "UTC").is_past(datetime(2200, 1, 1, tzinfo=UTC))


# Rows -----------------------------------------------------------------------------------------------------

texts = st.text(max_size=40)
maybe_instants = st.one_of(st.none(), instants)
ids = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=22)


@st.composite
def meetings(draw) -> Meeting:
    created = draw(instants)
    return factories.meeting(
        factories.user(draw(st.sampled_from(["olga", "otto"]))),
        starts_at=draw(maybe_instants),
        ends_at=draw(maybe_instants),
        zone=draw(st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata"])),
        access=draw(st.sampled_from(list(Access))),
        created_at=created,
        updated_at=draw(instants),
        version=draw(st.integers(1, 10**6)),
        title=draw(texts),
        description=draw(texts),
        owner_name=draw(texts),
        provider=draw(st.sampled_from(["dyte", "realtimekit"])),
        record_on_start=draw(st.booleans()),
        activity=draw(st.sampled_from(["", "live", "ended"])),
        cancelled_at=draw(maybe_instants),
        ended_at=draw(maybe_instants),
        invite_count=draw(st.integers(0, 500)),
    )


@settings(max_examples=100, deadline=None)
@given(meetings())
def test_a_meeting_reads_back_from_its_row_and_its_index_rows(meeting):
    # Its row remembers where its owner-index row is.
    assert Meeting.from_row(meeting.row()) == meeting.replace(index_key=meeting.owner_index_key())
    assert Meeting.from_row(meeting.owner_index_row()) == meeting
    invite = factories.invite(meeting, "guest@contoso.test")
    assert Meeting.from_row(invite.index_row(meeting)) == meeting
    assert meeting.row()["RowKey"] == schema.meeting_key(meeting.id)
    assert meeting.owner_index_row()["RowKey"] == schema.owner_index_key(meeting.sort_key(), meeting.id)


@settings(max_examples=100, deadline=None)
@given(meetings(), st.sampled_from(list(Role)))
def test_a_meeting_renders_the_contracts_fields(meeting, role):
    rendered = meeting.render(role)
    assert set(rendered) == {
        "id", "version", "title", "description", "status", "startsAt", "endsAt", "timeZone", "access",
        "owner", "myRole", "provider", "providerMeetingId", "createdAt", "updatedAt",
    }  # fmt: skip
    assert rendered["status"] == ("cancelled" if meeting.cancelled_at else meeting.activity or "scheduled")
    assert rendered["myRole"] == role.value
    for name, value in (("startsAt", meeting.schedule.starts_at), ("createdAt", meeting.created_at)):
        if value is None:
            assert rendered[name] is None
        else:
            assert rendered[name].endswith("Z") and times.parse_rfc3339(rendered[name]) == value


@settings(max_examples=100, deadline=None)
@given(
    meetings(),
    st.sampled_from([Role.HOST, Role.PARTICIPANT]),
    st.sampled_from(["pending", "accepted", "declined", "revoked"]),
    maybe_instants,
    st.one_of(st.just(""), ids),
    st.integers(0, 50),
    texts,
)
def test_an_invite_reads_back_from_its_row(meeting, role, status, accepted_at, bound_to, sequence, indexed):
    invite = factories.invite(
        meeting,
        "Guest.Name@contoso.test",
        role=role,
        status=status,
        accepted_at=accepted_at,
        bound_to=bound_to,
        mail_sequence=sequence,
        indexed=indexed,
    )
    row = invite.row()
    assert Invite.from_row(row) == invite
    assert row["RowKey"] == schema.invite_key(meeting.id, schema.invite_id("guest.name@contoso.test"))
    assert ("mailSequence" in row) is (sequence > 0)  # never numbered with email off
    assert invite.render()["status"] == status


@settings(max_examples=100, deadline=None)
@given(
    meetings(),
    st.sampled_from(list(Role)),
    st.text(alphabet="abc-_0123456789", max_size=36),
    st.text(max_size=200),
    maybe_instants,
    maybe_instants,
    st.booleans(),
    st.lists(ids, max_size=3),
)
def test_a_participant_reads_back_from_its_row(meeting, role, participant_id, token, at, until, uncertain, invites):
    participant = factories.participant(
        meeting,
        factories.user(),
        role=role,
        participant_id=participant_id,
        token=token,
        token_at=at,
        claim_until=until,
        uncertain=uncertain,
        invite_ids=tuple(invites),
    )
    assert Participant.from_row(participant.row()) == participant
    assert participant.row()["RowKey"] == schema.participant_key(meeting.id, participant.user_id)

"""A page of sessions or recordings costs a fixed number of requests, whatever the meeting's history.

The meeting check, one range query over the order rows (a page, newest first), one query for the rows they
point at (twenty a query), and for sessions the meeting's participants.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest

from bench import world
from dev.issuer import user_object_id
from dev.provider import webhooks
from shared import schema, times
from shared.auth import Caller
from shared.events import views
from tests import support

PAGE = 20


def history(costs, sessions: int, start: int):
    """An owner's meeting with `sessions` sessions (two people each) and as many recordings, amid others'."""
    block = world.Block(costs.world(), start, 10)
    costs.seed(block)
    seeded = next(item for item in block.all() if not item.past)
    meeting = seeded.meeting
    provider_id = meeting.provider_meeting_id
    delivered = []
    for n in range(sessions):
        at = meeting.schedule.starts_at - timedelta(days=n)
        session = f"session-{n}"
        iso = times.format_utc
        delivered += [
            (webhooks.meeting_started(provider_id, session, started_at=iso(at)), at),
            *(
                (webhooks.participant_joined(provider_id, session, custom_participant_id=f"p{k}", peer_id=f"p{k}"), at)
                for k in range(2)
            ),
            (webhooks.meeting_ended(provider_id, session, started_at=iso(at), ended_at=iso(at)), at),
            (webhooks.recording_status(provider_id, f"recording-{n}", status="UPLOADED"), at),
        ]
    costs.insert(schema.MEETINGS, world.applied_rows(meeting, delivered))
    email = block.email_of(meeting.owner_id)
    owner = Caller(support.TENANT, user_object_id(support.TENANT, email), "Owner", (email,), meeting.owner_id)
    return owner, meeting


@pytest.mark.parametrize("listing", ["sessions", "recordings"])
def test_a_page_costs_the_same_for_three_sessions_and_for_sixty(costs, listing):
    lister = views.list_sessions if listing == "sessions" else views.list_recordings
    pages = {}
    for start, count in ((0, 3), (10, 60)):
        owner, meeting = history(costs, count, start)
        first = costs.measure(partial(lister, costs.ctx, owner, meeting.id, PAGE, None))
        assert len(first.result["items"]) == min(count, PAGE)
        pages[count] = [first.requests]
        cursor = first.result["nextCursor"]
        while cursor:
            page = costs.measure(partial(lister, costs.ctx, owner, meeting.id, PAGE, cursor))
            pages[count].append(page.requests)
            cursor = page.result["nextCursor"]
    expected = 4 if listing == "sessions" else 3  # the meeting, the order rows, the rows, (the participants)
    assert pages == {3: [expected], 60: [expected] * 3}

"""A meeting's reads and changes cost what docs/data-model.md says, however much history it and its owner have.

A change (edit, invite, revoke) is the read, the pending entry, one batch with the markers, then the follow-up
inline: one read, what it writes, one batch clearing the markers, the entry's deletion. A get is one range
query bounded to the meeting's rows.
"""

from __future__ import annotations

import uuid
from functools import partial

import pytest

from bench import world
from dev.issuer import user_object_id
from dev.provider import webhooks
from shared import invites, meetings, schema
from shared.auth import Caller
from tests import support

# The read, the pending entry, the batch; the follow-up's read, the one invitee-index row it writes, the batch
# clearing the markers, the entry's deletion (mail is off; no one has joined).
CHANGE_WITH_ONE_INDEX_ROW = 7


def owner_of(block: world.Block, meeting) -> Caller:
    email = block.email_of(meeting.owner_id)
    return Caller(support.TENANT, user_object_id(support.TENANT, email), "Owner", (email,), meeting.owner_id)


@pytest.fixture
def scheduled(costs):
    """(block, a scheduled meeting with one pending invite, its owner) amid the owner's nine other meetings."""
    block = world.Block(costs.world(), 0, 20)
    costs.seed(block)
    item = next(item for item in block.all() if not item.past)
    return block, item.meeting, owner_of(block, item.meeting)


def test_an_edit_costs_what_the_data_model_says(costs, scheduled):
    _, meeting, owner = scheduled
    patch = meetings.parse_patch({"title": "Renamed"})
    cost = costs.measure(lambda: meetings.update(costs.ctx, owner, meeting.id, patch, None))
    assert cost.requests == CHANGE_WITH_ONE_INDEX_ROW


def test_an_invite_costs_what_the_data_model_says(costs, scheduled):
    _, meeting, owner = scheduled
    invitees = invites.parse_invite_body({"invitees": [{"email": "new-guest@contoso.test", "role": "participant"}]})
    cost = costs.measure(lambda: invites.invite(costs.ctx, owner, meeting.id, invitees))
    assert cost.requests == CHANGE_WITH_ONE_INDEX_ROW


def test_a_revoke_costs_what_the_data_model_says(costs, scheduled):
    block, meeting, owner = scheduled
    invite_id = next(schema.invite_id(item.invitee.email) for item in block.all() if item.meeting.id == meeting.id)
    cost = costs.measure(lambda: invites.revoke(costs.ctx, owner, meeting.id, invite_id))
    assert cost.requests == CHANGE_WITH_ONE_INDEX_ROW


def _with_history(costs, meeting, people: int) -> None:
    """A session of `people` under the meeting, as the applier leaves it."""
    provider_id, session = meeting.provider_meeting_id, f"session-{uuid.uuid4().hex}"
    at = meeting.schedule.starts_at
    delivered = [(webhooks.meeting_started(provider_id, session), at)] + [
        (webhooks.participant_joined(provider_id, session, custom_participant_id=f"p{n}", peer_id=f"p{n}"), at)
        for n in range(people)
    ]
    costs.insert(schema.MEETINGS, world.applied_rows(meeting, delivered))


def test_a_get_is_one_request_whatever_the_history(costs, scheduled):
    _, meeting, owner = scheduled
    fresh = costs.measure(lambda: meetings.load(costs.ctx, owner, meeting.id))
    _with_history(costs, meeting, 40)
    busy = costs.measure(lambda: meetings.load(costs.ctx, owner, meeting.id))
    assert fresh.requests == busy.requests == 1
    # The meeting (and the caller's invite and participant if any), then its summary once it had a session.
    assert fresh.entities + 1 == busy.entities


def test_a_get_reads_no_more_rows_as_the_meeting_gathers_history(costs, scheduled):
    _, meeting, owner = scheduled
    fresh = costs.measure(lambda: meetings.load(costs.ctx, owner, meeting.id))
    _with_history(costs, meeting, 40)
    busy = costs.measure(lambda: meetings.load(costs.ctx, owner, meeting.id))
    assert busy.rows_in_bounds == fresh.rows_in_bounds + 1  # the summary, never the forty intervals after it


def test_a_change_reads_no_more_rows_when_its_owner_has_more_meetings(costs):
    settings = costs.world()
    alone = world.Block(settings, 0, 10, per_owner=1, past_days=-1)  # owners with one meeting, tomorrow
    busy = world.Block(settings, 100, 20)  # owners with ten meetings each, seven of them with a session
    costs.seed(alone)
    costs.seed(busy)
    patch = meetings.parse_patch({"title": "Renamed"})
    measured = []
    for block, item in ((alone, next(alone.all())), (busy, next(item for item in busy.all() if not item.past))):
        edit = partial(meetings.update, costs.ctx, owner_of(block, item.meeting), item.meeting.id, patch, None)
        measured.append(costs.measure(edit))
    assert measured[0].requests == measured[1].requests
    assert measured[1].rows_in_bounds == measured[0].rows_in_bounds

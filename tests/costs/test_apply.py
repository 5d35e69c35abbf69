"""Applying a webhook delivery costs at most five storage requests per event, whatever its kind and order.

Counted per event as the applier gets it from the receiver (the delivery carried in the queue message): the
provider meeting's mapping (once per process), one read (and a leave's point read of its interval), one
batch, a queue put when the meeting's status changes or a recording's copy is owed, the settling. The
follow-up a status change queues is run after each event, as the jobs queue would.
"""

from __future__ import annotations

import uuid

import pytest

from bench import world
from dev.provider import webhooks
from shared import schema

BUDGET = 5


@pytest.fixture
def meeting(costs):
    """A scheduled meeting with an invitee, its provider mapping, amid other owners' meetings."""
    block = world.Block(costs.world(), 0, 20)
    costs.seed(block)
    seeded = next(item for item in block.all() if not item.past)
    costs.insert(schema.PROVIDER_MEETINGS, [world.mapping_row(seeded.meeting)])
    return seeded


def story(meeting) -> tuple[str, list[dict]]:
    provider_id, session = meeting.meeting.provider_meeting_id, f"session-{uuid.uuid4().hex}"
    people = [f"person-{n}-{uuid.uuid4().hex[:6]}" for n in range(2)]
    return session, [
        webhooks.meeting_started(provider_id, session),
        *(webhooks.participant_joined(provider_id, session, custom_participant_id=p, peer_id=p) for p in people),
        *(webhooks.participant_left(provider_id, session, custom_participant_id=p, peer_id=p) for p in people),
        webhooks.meeting_ended(provider_id, session),
        webhooks.recording_status(provider_id, str(uuid.uuid4()), status="UPLOADED"),
    ]


def test_each_event_of_a_session_costs_at_most_five_requests(costs, meeting):
    _, events = story(meeting)
    measured = [(payload["event"], costs.apply(costs.deliver(payload))) for payload in events]
    by_event = [(event, cost.requests, cost.queue_puts) for event, cost in measured]
    assert by_event == [
        # First sight of the mapping (then cached), and of the session: the meeting goes live (a put).
        ("meeting.started", 5, 1),
        ("meeting.participantJoined", 3, 0),
        ("meeting.participantJoined", 3, 0),
        # A leave reads the interval its join opened (a point read: intervals are the meeting's history).
        ("meeting.participantLeft", 4, 0),
        ("meeting.participantLeft", 4, 0),
        ("meeting.ended", 4, 1),  # the meeting has ended: its follow-up queued
        ("recording.statusUpdate", 4, 1),  # UPLOADED with a link: the copy into our storage queued
    ]
    assert all(cost.requests <= BUDGET for _, cost in measured)


def test_a_session_first_heard_of_through_a_join_costs_at_most_five_requests(costs, meeting):
    _, events = story(meeting)
    joined, started = events[1], events[0]
    first = costs.apply(costs.deliver(joined))
    late_start = costs.apply(costs.deliver(started))
    assert (first.requests, first.queue_puts) == (5, 1)  # mapping, read, batch (the meeting goes live), put, settle
    # The read, a batch if the session's start moved earlier, the settling: the status stays live.
    assert late_start.requests <= 3
    assert late_start.queue_puts == 0


def test_events_delivered_in_reverse_cost_at_most_five_requests_each(costs, meeting):
    _, events = story(meeting)
    measured = [costs.apply(costs.deliver(payload)) for payload in reversed(events)]
    assert max(cost.requests for cost in measured) <= BUDGET


def test_a_repeated_delivery_costs_no_more_than_the_first(costs, meeting):
    _, events = story(meeting)
    message = costs.deliver(events[0])
    first = costs.apply(message)
    again = costs.apply(message)  # the queue's at-least-once delivery
    assert again.requests <= first.requests


def test_a_join_reads_the_same_number_of_rows_whatever_the_attendance_so_far(costs, meeting):
    session, events = story(meeting)
    costs.apply(costs.deliver(events[0]))
    provider_id = meeting.meeting.provider_meeting_id

    def join(n: int):
        person = f"crowd-{n}-{uuid.uuid4().hex[:6]}"
        payload = webhooks.participant_joined(provider_id, session, custom_participant_id=person, peer_id=person)
        return costs.apply(costs.deliver(payload))

    first = join(0)
    for n in range(1, 30):
        join(n)
    thirty_first = join(30)
    assert first.requests == thirty_first.requests == 3
    assert first.entities == thirty_first.entities  # the rows the event touches, answered


def test_a_join_reads_no_more_rows_as_the_meeting_fills(costs, meeting):
    session, events = story(meeting)
    costs.apply(costs.deliver(events[0]))
    provider_id = meeting.meeting.provider_meeting_id
    measured = []
    for n in range(31):
        person = f"crowd-{n}-{uuid.uuid4().hex[:6]}"
        payload = webhooks.participant_joined(provider_id, session, custom_participant_id=person, peer_id=person)
        measured.append(costs.apply(costs.deliver(payload)))
    assert measured[-1].rows_in_bounds == measured[0].rows_in_bounds

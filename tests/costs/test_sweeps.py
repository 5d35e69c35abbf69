"""Background work costs what is pending, never what is stored.

Every sweep (the pending index's: follow-ups, account closings, mail retries; webhook deliveries; retention;
the closed-account gate's refresh) and health's counts read an index of pending or expiring items: with
nothing pending their requests, bytes and rows read are the same over empty tables and over a few hundred
rows of meetings, invites, sessions, settled deliveries, retention entries and old tombstones; with K items
pending they grow by a fixed number of requests per item.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from bench import world
from shared import jobs, pending, retention, schema, times
from shared.closed_accounts import ClosedAccounts, hour_of
from shared.events import deliveries

# What each costs with nothing pending: one query of its index (16 for the 16 delivery shards).
IDLE = {
    "pending.sweep": 1,
    "deliveries.sweep": 16,
    "retention.purge": 1,
    "closed accounts refresh": 1,
    "health: stuck work": 1 + 16,
}
UNRELATED = 40  # meetings: with their sessions and deliveries, about 400 rows


def runs(costs) -> dict[str, Callable[[], Any]]:
    ctx = costs.ctx
    gate = ClosedAccounts(ctx.storage, background=False)
    gate.refresh()  # the first load reads every tombstone once per instance; then only the recent hours
    return {
        "pending.sweep": lambda: pending.sweep(ctx),
        "deliveries.sweep": lambda: deliveries.sweep(ctx),
        "retention.purge": lambda: retention.purge(ctx),
        "closed accounts refresh": gate.refresh,
        "health: stuck work": lambda: (pending.stuck(ctx, ctx.clock()), deliveries.stuck_count(ctx, ctx.clock())),
    }


@pytest.mark.parametrize("sweep", list(IDLE))
def test_with_nothing_pending_a_sweep_costs_the_same_over_empty_and_full_tables(costs, sweep):
    run = runs(costs)[sweep]
    run()
    empty = costs.measure(run)
    seeded = costs.seed(world.Block(costs.world(), 0, UNRELATED), closed=20)
    assert seeded > 300
    full = costs.measure(run)
    assert empty.requests == full.requests == IDLE[sweep]
    assert empty.bytes == full.bytes
    # Nothing in the keys' bounds: the index is empty, however full the tables are.
    assert empty.rows_in_partition == full.rows_in_partition == 0


def test_health_reads_the_last_delivery_of_each_shard_whatever_the_deliveries_kept(costs):
    costs.insert(schema.DELIVERIES, world.last_delivery_rows(costs.ctx.clock()))
    empty = costs.measure(lambda: deliveries.last_received(costs.ctx))
    costs.seed(world.Block(costs.world(), 0, UNRELATED))
    full = costs.measure(lambda: deliveries.last_received(costs.ctx))
    # One point read per shard, never a query across them (which would read every delivery kept).
    assert empty.requests == full.requests == len(schema.DELIVERY_SHARDS)
    assert full.rows_in_partition == empty.rows_in_partition == len(schema.DELIVERY_SHARDS)


# With K pending ------------------------------------------------------------------------------------------------


def _follow_ups(costs, k: int, block: world.Block) -> Callable[[], None]:
    meetings = list(block.all())[:k]
    message = jobs.message(jobs.Kind.FOLLOW_UP, {"meetingId": meetings[0].meeting.id if meetings else ""})
    keys = [schema.pending_follow_up(item.meeting.id) for item in meetings]
    for key in keys:
        pending.announce(costs.ctx, key, schema.JOBS_QUEUE, message, due_in=timedelta(seconds=-1))

    def done() -> None:
        for key in keys:
            pending.complete(costs.ctx, key)

    return done


def _stuck_deliveries(costs, k: int, block: world.Block) -> Callable[[], None]:
    rows = []
    for n in range(k):
        body = json.dumps({"event": "meeting.participantJoined", "test": str(uuid.uuid4()), "n": n}).encode()
        received = costs.ctx.clock() - timedelta(minutes=15)
        rows += deliveries.entities(deliveries.delivery_key(body), body, "dyte", {}, received)
    costs.insert(schema.DELIVERIES, rows)

    def done() -> None:
        with costs.direct(schema.DELIVERIES) as table:
            for row in rows:
                table.delete_entity(row["PartitionKey"], row["RowKey"])

    return done


def _expired_deliveries(costs, k: int, block: world.Block) -> Callable[[], None]:
    days = costs.ctx.settings.event_retention_days
    received = costs.ctx.clock() - timedelta(days=days + 1)
    records, entries = [], []
    for n in range(k):
        body = json.dumps({"event": "meeting.started", "test": str(uuid.uuid4()), "n": n}).encode()
        key = deliveries.delivery_key(body)
        records.append({**deliveries.entities(key, body, "dyte", {}, received)[0], "settledAt": times.stamp(received)})
        entries.append(retention.delivery_entry(received, key, days))
    costs.insert(schema.DELIVERIES, records)
    costs.insert(schema.EXPIRING, entries)
    return lambda: None  # the purge deletes them


def _closings(costs, k: int, block: world.Block) -> Callable[[], None]:
    now = costs.ctx.clock()
    rows = [
        {
            "PartitionKey": schema.closed_partition(hour_of(now)),
            "RowKey": uuid.uuid4().hex,
            "closedAt": times.stamp(now),
        }
        for _ in range(k)
    ]
    costs.insert(schema.CLOSED_ACCOUNTS, rows)

    def done() -> None:
        with costs.direct(schema.CLOSED_ACCOUNTS) as table:
            for row in rows:
                table.delete_entity(row["PartitionKey"], row["RowKey"])

    return done


# sweep, what makes K items pending for it, and what each item adds: requests, entities answered.
PENDING = {
    "follow-ups due": ("pending.sweep", _follow_ups, 2, 1),  # its message put again; the entry pushed back
    "deliveries not applied": ("deliveries.sweep", _stuck_deliveries, 2, 1),  # put again; the pending row updated
    "deliveries expired": ("retention.purge", _expired_deliveries, 3, 1),  # pending row, record, entry deleted
    "accounts closed this hour": ("closed accounts refresh", _closings, 0, 1),  # in the same one query
}


@pytest.mark.parametrize("kind", list(PENDING))
def test_a_sweep_grows_only_with_what_is_pending(costs, kind):
    sweep, make_pending, per_item, entities_per_item = PENDING[kind]
    block = world.Block(costs.world(), 0, UNRELATED)
    costs.seed(block, closed=20)
    run = runs(costs)[sweep]
    run()
    measured = []
    for k in (0, 3, 7):
        done = make_pending(costs, k, block)
        measured.append(costs.measure(run))
        done()
    requests = [cost.requests for cost in measured]
    entities = [cost.entities for cost in measured]
    assert requests == [IDLE[sweep] + per_item * k for k in (0, 3, 7)]
    assert entities == [entities_per_item * k for k in (0, 3, 7)]


def _purge_one_meeting(costs, start: int, other_invitations: int):
    """Retention deleting one meeting that ended 400 days ago, whose invitee has `other_invitations` more."""
    old = world.Block(replace(costs.world(), now=costs.ctx.clock() - timedelta(days=400)), start, 20, past_days=10)
    costs.insert(schema.MEETINGS, list(old.meeting_rows()))
    costs.insert(schema.INVITATIONS, old.invitation_rows())
    item = next(old.all())
    costs.insert(schema.PROVIDER_MEETINGS, [world.mapping_row(item.meeting)])
    invitee = schema.invite_id(item.invitee.email)
    costs.insert(
        schema.INVITATIONS,
        [{"PartitionKey": invitee, "RowKey": f"s|0{n:06d}|other", "id": f"other{n}"} for n in range(other_invitations)],
    )
    yesterday = schema.expiring_partition(retention.day_of(costs.ctx.clock() - timedelta(days=1)))
    entry = {
        "PartitionKey": yesterday,
        "RowKey": schema.expiring_meeting(item.meeting.id),
        "meetingId": item.meeting.id,
    }
    costs.insert(schema.EXPIRING, [entry])
    return costs.measure(lambda: retention.purge(costs.ctx))


def test_purging_a_meeting_reads_no_more_when_its_invitee_has_more_invitations(costs):
    few = _purge_one_meeting(costs, 0, 0)
    many = _purge_one_meeting(costs, 100, 60)
    assert few.requests == many.requests
    assert many.rows_in_bounds == few.rows_in_bounds

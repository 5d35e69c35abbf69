"""Retention: a daily purge of what is kept no longer than the settings allow, driven by an index.

What may expire has an entry in the `Expiring` table, in the partition of the day it falls due: a
webhook delivery (written by the receiver, `EVENT_RETENTION_DAYS` after receipt), a meeting cancelled
or ended (written with the change, `MEETING_RETENTION_DAYS` after it), a recording copied into our
storage (written by the copy, `RECORDING_RETENTION_DAYS` after it: `shared.recordings`). The purge
reads only the partitions of days up to today, so it costs what there is to delete, not what is
stored. A meeting whose entry comes due is checked again (a new session may have started since):
deleted when past retention, rescheduled when not yet, forgotten when it is live again (its next end
schedules it anew).

Deleting a meeting first makes its provider meeting INACTIVE, so no token issued for it works once
nobody here can see, cancel or revoke anything in it; while the provider cannot be told, the meeting
is kept whole and its entry stays due, for the next run to try again. Then it takes everything that
hangs off it: its rows in the owner's partition (invites, participants, outbox, markers, sessions,
intervals, recordings, tombstones), its recordings' blobs, its invitees' index rows, its provider-meeting
mapping, and its owner's expired idempotency records. The meeting row goes last, so a meeting half
purged is found (and finished) by the next run; each kind stops after `limit` deletions and the next
run continues, so an interrupted or repeated run is harmless.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from shared import problems, recordings, schema, times
from shared.model import Meeting

if TYPE_CHECKING:
    from shared.context import Context

log = logging.getLogger(__name__)

LIMIT = 1000


def day_of(instant: datetime) -> str:
    return instant.strftime("%Y%m%d")


def schedule_meeting(ctx: Context, meeting: Meeting, from_instant: datetime) -> None:
    """Index the meeting for deletion `MEETING_RETENTION_DAYS` after `from_instant` (its cancel or end)."""
    due = from_instant + timedelta(days=ctx.settings.meeting_retention_days)
    ctx.storage.table(schema.EXPIRING).upsert_entity(
        {
            "PartitionKey": schema.expiring_partition(day_of(due)),
            "RowKey": schema.expiring_meeting(meeting.id),
            "meetingId": meeting.id,
        }
    )


def delivery_entry(received_at: datetime, key: str, retention_days: int) -> dict[str, Any]:
    """The receiver's index entry for a delivery (also how it recognises a repeat on the same day)."""
    due = received_at + timedelta(days=retention_days)
    return {
        "PartitionKey": schema.expiring_partition(day_of(due)),
        "RowKey": schema.expiring_delivery(key),
        "receivedAt": times.stamp(received_at),
    }


def purge(ctx: Context, limit: int = LIMIT) -> dict[str, int]:
    now = ctx.clock()
    counts = {"deliveries": 0, "meetings": 0, "recordings": 0, "rescheduled": 0, "deferred": 0}
    unreachable: set[str] = set()  # providers that failed this run: their meetings wait for the next
    table = ctx.storage.table(schema.EXPIRING)
    entries = table.query_entities(
        "PartitionKey ge @low and PartitionKey le @today",
        parameters={"low": schema.EXPIRING_PREFIX, "today": schema.expiring_partition(day_of(now))},
    )
    for entry in entries:
        if counts["deliveries"] + counts["meetings"] + counts["recordings"] >= limit:
            break
        key = entry["RowKey"]
        if key.startswith(schema.expiring_delivery("")):
            _delete_delivery(ctx, key.removeprefix(schema.expiring_delivery("")))
            counts["deliveries"] += 1
        elif key.startswith(schema.expiring_meeting("")):
            outcome = _expire_meeting(ctx, entry["meetingId"], now, unreachable)
            if outcome == "deferred":
                counts["deferred"] += 1
                continue  # its entry stays due: the next run tries again
            counts["meetings" if outcome == "deleted" else "rescheduled"] += outcome != "kept"
        elif key.startswith(schema.EXPIRING_RECORDING):
            outcome = recordings.expire(ctx, entry["meetingId"], entry["recordingId"], now)
            counts["recordings" if outcome == "deleted" else "rescheduled"] += outcome != "kept"
        # A rescheduled entry was written to a later day's partition (never back to its own), so this
        # deletes only the entry that came due.
        with contextlib.suppress(ResourceNotFoundError):
            table.delete_entity(entry["PartitionKey"], key)
    log.info(json.dumps({"operation": "retention.purge", **counts}))
    return counts


def _delete_delivery(ctx: Context, key: str) -> None:
    table = ctx.storage.table(schema.DELIVERIES)
    # The pending row first: a record must never be left pending without its body.
    for row_key in (schema.delivery_pending_row(key), schema.delivery_row(key)):
        with contextlib.suppress(ResourceNotFoundError):
            table.delete_entity(schema.delivery_partition(key), row_key)


def _expire_meeting(ctx: Context, meeting_id: str, now: datetime, unreachable: set[str]) -> str:
    """deleted | rescheduled | kept (live again, or not a meeting any more) | deferred (its provider could not
    be told; `unreachable` collects the providers that failed this run)."""
    partition = schema.owner_partition(meeting_id)
    try:
        meeting = Meeting.from_row(
            ctx.storage.table(schema.MEETINGS).get_entity(partition, schema.meeting_key(meeting_id))
        )
    except ResourceNotFoundError:
        return "kept"
    since = _retained_since(meeting)
    if since is None:
        return "kept"
    cutoff = now - timedelta(days=ctx.settings.meeting_retention_days)
    if since >= cutoff:
        # Due later today at the earliest, yet never into today's partition: this run is emptying it, and
        # the entry it came from (the very same key) is deleted once this returns. Tomorrow's run takes it.
        schedule_meeting(ctx, meeting, max(since, cutoff + timedelta(days=1)))
        return "rescheduled"
    if not _deactivate(ctx, meeting, unreachable):
        return "deferred"
    delete_meeting(ctx, meeting)
    return "deleted"


def _deactivate(ctx: Context, meeting: Meeting, unreachable: set[str]) -> bool:
    """Make the provider meeting INACTIVE (done already by a cancel, but an ended meeting is still ACTIVE);
    False when the provider cannot be told now. After one failure, the run asks that provider no more."""
    if meeting.provider in unreachable:
        return False
    try:
        ctx.provider(meeting.provider).set_meeting_status(meeting.provider_meeting_id, "INACTIVE")
    except problems.Problem as failure:
        unreachable.add(meeting.provider)
        log.warning(
            json.dumps(
                {"operation": "retention.purge", "meetingId": meeting.id, "status": "deferred", "problem": failure.slug}
            )
        )
        return False
    return True


def _retained_since(meeting: Meeting) -> datetime | None:
    """When its retention started: its cancel, or the end of its last session and of its schedule."""
    if meeting.cancelled:
        return meeting.cancelled_at
    if meeting.activity != "ended":
        return None
    return max(filter(None, [meeting.ended_at, meeting.schedule.ends_at]))


def delete_meeting(ctx: Context, meeting: Meeting) -> None:
    """Everything of one meeting, the meeting row last."""
    table = ctx.storage.table(schema.MEETINGS)
    low, high = schema.meeting_range(meeting.id)
    own_rows = list(
        table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": meeting.partition, "low": low, "high": high},
            select=["RowKey", "id", "indexed", "userId"],
        )
    )
    recordings.erase(ctx, meeting.id)
    index = ctx.storage.table(schema.INVITATIONS)
    participations = ctx.storage.table(schema.PARTICIPATIONS)
    invite_low, invite_high = schema.invite_range(meeting.id)
    participant_low, participant_high = schema.participant_range(meeting.id)
    for row in own_rows:
        if invite_low <= row["RowKey"] < invite_high and row.get("indexed"):
            # The invite knows its index row's key (`indexed`): deleted by its key, no scan of the partition.
            with contextlib.suppress(ResourceNotFoundError):
                index.delete_entity(row["id"], row["indexed"].split("#", 1)[0])
        elif participant_low <= row["RowKey"] < participant_high and row.get("userId"):
            with contextlib.suppress(ResourceNotFoundError):
                participations.delete_entity(row["userId"], meeting.id)
    with contextlib.suppress(ResourceNotFoundError):
        ctx.storage.table(schema.PENDING).delete_entity(schema.PENDING_PARTITION, schema.pending_follow_up(meeting.id))
    with contextlib.suppress(ResourceNotFoundError):
        ctx.storage.table(schema.PROVIDER_MEETINGS).delete_entity(
            schema.provider_meeting_partition(meeting.provider, meeting.provider_meeting_id),
            schema.PROVIDER_MEETING_KEY,
        )
    idempotency_low, idempotency_high = schema.IDEMPOTENCY_RANGE
    for row in table.query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and expiresAt le @now",
        parameters={
            "pk": meeting.partition,
            "low": idempotency_low,
            "high": idempotency_high,
            "now": times.stamp(ctx.clock()),
        },
        select=["RowKey"],
    ):
        with contextlib.suppress(ResourceNotFoundError):
            table.delete_entity(meeting.partition, row["RowKey"])
    for row_key in [row["RowKey"] for row in own_rows] + [meeting.index_key, meeting.key]:
        if row_key:
            with contextlib.suppress(ResourceNotFoundError):
                table.delete_entity(meeting.partition, row_key)

"""Retention: a daily purge of what is kept no longer than the settings allow.

Recorded webhook deliveries older than EVENT_RETENTION_DAYS, expired idempotency records, and
meetings cancelled or ended more than MEETING_RETENTION_DAYS ago, with everything that hangs off
them. Each kind stops after `limit` deletions; what is left is found again by the next run, so an
interrupted or repeated run is harmless and the purge resumes where it stopped. A meeting row is
deleted last, so a meeting half purged is found (and finished) next time.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared import accounts, invites, meetings, times
from shared.context import Context
from shared.events import deliveries
from shared.events import state as events_state

log = logging.getLogger(__name__)

LIMIT = 1000


def purge(ctx: Context, limit: int = LIMIT) -> dict[str, int]:
    now = ctx.clock()
    purged = {
        "deliveries": _deliveries(ctx, now - timedelta(days=ctx.settings.event_retention_days), limit),
        "idempotency": _idempotency_records(ctx, now, limit),
        "meetings": _meetings(ctx, now - timedelta(days=ctx.settings.meeting_retention_days), limit),
    }
    log.info(json.dumps({"operation": "retention.purge", **purged}))
    return purged


def _deliveries(ctx: Context, cutoff: datetime, limit: int) -> int:
    table = ctx.storage.table(deliveries.DELIVERIES_TABLE)
    count = 0
    for shard in deliveries.SHARDS:
        rows = table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and receivedAt lt @cutoff",
            parameters={
                "pk": shard,
                "low": deliveries.RECORD,
                "high": events_state.after(deliveries.RECORD),
                "cutoff": events_state.stamp(cutoff),
            },
            select=["RowKey"],
        )
        for row in rows:
            if count >= limit:
                return count
            key = row["RowKey"].removeprefix(deliveries.RECORD)
            # The pending row first: a record must never be left pending without its body.
            for row_key in (deliveries.PENDING + key, row["RowKey"]):
                with contextlib.suppress(ResourceNotFoundError):
                    table.delete_entity(shard, row_key)
            count += 1
    return count


def _idempotency_records(ctx: Context, now: datetime, limit: int) -> int:
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    rows = table.query_entities(
        "RowKey ge @low and RowKey lt @high and expiresAt le @now",
        parameters={"low": "k|", "high": "k|~", "now": times.format_utc(now + timedelta(seconds=1))},
        select=["PartitionKey", "RowKey", "expiresAt"],
    )
    count = 0
    for row in rows:
        if count >= limit:
            break
        if times.parse_rfc3339(row["expiresAt"]) > now:
            continue
        with contextlib.suppress(ResourceNotFoundError):
            table.delete_entity(row["PartitionKey"], row["RowKey"])
        count += 1
    return count


def _meetings(ctx: Context, cutoff: datetime, limit: int) -> int:
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    candidates = table.query_entities(
        "RowKey ge @low and RowKey lt @high and ( cancelledAt ne @none or activity eq @ended )",
        parameters={"low": "m|", "high": "m|~", "none": "", "ended": "ended"},
    )
    count = 0
    for row in candidates:
        if count >= limit:
            break
        if row["RowKey"] != meetings.meeting_row_key(row.get("id", "")) or not _past_retention(ctx, row, cutoff):
            continue
        _delete_meeting(ctx, row)
        count += 1
    return count


def _past_retention(ctx: Context, row: dict[str, Any], cutoff: datetime) -> bool:
    if row.get("cancelledAt"):
        return times.parse_rfc3339(row["cancelledAt"]) < cutoff
    ends = times.parse_rfc3339(row.get("endsAt") or "")
    if ends is not None and ends >= cutoff:
        return False
    sessions = ctx.storage.table(events_state.ACTIVITY_TABLE).query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": row["id"], "low": events_state.SESSION, "high": events_state.after(events_state.SESSION)},
        select=["endedAt"],
    )
    ended = [session.get("endedAt") or "" for session in sessions]
    return bool(ended) and all(ended) and max(ended) < events_state.stamp(cutoff)


def _delete_meeting(ctx: Context, meeting: dict[str, Any]) -> None:
    """Everything of one meeting, the meeting row last."""
    meeting_id, partition = meeting["id"], meeting["PartitionKey"]
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    own_rows = list(
        table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": partition, "low": meeting["RowKey"] + "|", "high": meeting["RowKey"] + "|~"},
            select=["RowKey", "id"],
        )
    )
    index = ctx.storage.table(invites.INVITATIONS_TABLE)
    for row in own_rows:
        if row["RowKey"].startswith(f"{meeting['RowKey']}|i|"):
            for entry in index.query_entities(
                "PartitionKey eq @pk and id eq @meeting", parameters={"pk": row["id"], "meeting": meeting_id}
            ):
                with contextlib.suppress(ResourceNotFoundError):
                    index.delete_entity(entry["PartitionKey"], entry["RowKey"])
    activity = ctx.storage.table(events_state.ACTIVITY_TABLE)
    attendance = ctx.storage.table(accounts.ATTENDANCE_TABLE)
    for row in activity.query_entities("PartitionKey eq @pk", parameters={"pk": meeting_id}):
        if row.get("userId"):
            with contextlib.suppress(ResourceNotFoundError):
                attendance.delete_entity(row["userId"], meeting_id)
        with contextlib.suppress(ResourceNotFoundError):
            activity.delete_entity(meeting_id, row["RowKey"])
    with contextlib.suppress(ResourceNotFoundError):
        ctx.storage.table(meetings.PROVIDER_MEETINGS_TABLE).delete_entity(
            f"{meeting['provider']}|{meeting['providerMeetingId']}", ""
        )
    for row_key in [row["RowKey"] for row in own_rows] + [meeting.get("indexKey") or "", meeting["RowKey"]]:
        if row_key:
            with contextlib.suppress(ResourceNotFoundError):
                table.delete_entity(partition, row_key)

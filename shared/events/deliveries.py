"""Recorded webhook deliveries: the receiver, the queue of deliveries to apply, the sweep and replays.

A delivery's identity is the SHA-256 of its raw body (headers are not signed, so the `*-uuid`
header is recorded, never trusted). The receiver inserts the body with a conditional insert and
enqueues only its key; a body seen before is not inserted again, and is enqueued again only while
it has not been applied. Each delivery has a pending row until it is settled, which is what the
sweep reads: it never scans the deliveries themselves. Layout in docs/data-model.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared import health, times
from shared.context import Context
from shared.events import state
from shared.events.signing import SigningKeys
from shared.storage import STATUS_TABLE

log = logging.getLogger(__name__)

DELIVERIES_TABLE = "WebhookDeliveries"
QUEUE = "webhook-events"
# Deliveries spread over 16 partitions by the first hex digit of their key: one partition would cap
# the receiver at the 2,000 entities per second a partition serves (a burst of joins at the hour).
SHARDS = "0123456789abcdef"
RECORD, PENDING = "d|", "p|"
SWEEP_AFTER = timedelta(minutes=10)
# An event that keeps failing is retried by the sweep after 10, 20, 40 ... minutes, at most ~10 h apart.
MAX_SWEEP_DOUBLINGS = 6
KEY = re.compile(r"[0-9a-f]{64}")
MAX_HEADER_CHARACTERS = 200


def delivery_key(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def entities(key: str, body: bytes, provider: str, headers: Mapping[str, str], received_at: datetime) -> list[dict]:
    """The rows of a newly received delivery: the record and its pending row (one partition, one batch)."""
    received = state.stamp(received_at)
    record = {
        "PartitionKey": key[0],
        "RowKey": RECORD + key,
        "provider": provider,
        "receivedAt": received,
        # Unsigned, so only recorded: for matching the provider's delivery log, never for decisions. Either
        # header family, whichever key verified (RealtimeKit deliveries with Dyte's names were reported).
        "deliveryId": _header(headers, "rtk-uuid") or _header(headers, "dyte-uuid"),
        "webhookId": _header(headers, "rtk-webhook-id") or _header(headers, "dyte-webhook-id"),
        "body": body,
        "settledAt": "",
        "outcome": "",
        "meetingId": "",
    }
    pending = {"PartitionKey": key[0], "RowKey": PENDING + key, "enqueuedAt": received, "sweeps": 0}
    return [record, pending]


def _header(headers: Mapping[str, str], name: str) -> str:
    return (headers.get(name) or "")[:MAX_HEADER_CHARACTERS]


def receive(ctx: Context, keys: SigningKeys, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Verify, record and enqueue one delivery: at most 2 storage requests and 1 queue put.

    Fresh: the insert batch, the queue put, the health timestamp. Seen before: the insert batch
    (refused), a read of whether it was applied, and a queue put only if it was not.
    """
    provider = keys.verify(body, headers)
    key = delivery_key(body)
    now = ctx.clock()
    table = ctx.storage.table(DELIVERIES_TABLE)
    try:
        table.submit_transaction([("create", entity) for entity in entities(key, body, provider, headers, now)])
    except TableTransactionError as error:
        if error.status_code != 409:
            raise
        record = table.get_entity(key[0], RECORD + key, select=["settledAt"])
        if not record.get("settledAt"):
            enqueue(ctx, key)
        return {"id": key, "duplicate": True}
    enqueue(ctx, key)
    _mark_last_delivery(ctx, now)
    return {"id": key, "duplicate": False}


def _mark_last_delivery(ctx: Context, now: datetime) -> None:
    partition, row = health.WEBHOOK_STATUS_KEY
    try:
        ctx.storage.table(STATUS_TABLE).upsert_entity(
            {"PartitionKey": partition, "RowKey": row, "at": times.format_utc(now)}, mode=UpdateMode.MERGE
        )
    except AzureError as error:
        # The delivery is recorded and queued: a stale health timestamp must not make the provider retry.
        log.warning("webhooks: could not record the last delivery time: %s", type(error).__name__)


def enqueue(ctx: Context, key: str) -> None:
    ctx.storage.queue(QUEUE).send_message(key)


def load(ctx: Context, key: str) -> Any | None:
    try:
        return ctx.storage.table(DELIVERIES_TABLE).get_entity(key[0], RECORD + key)
    except ResourceNotFoundError:
        return None


def settle(ctx: Context, key: str, outcome: str, meeting_id: str) -> None:
    """Mark the delivery applied (or why not) and drop its pending row, in one batch."""
    record = {
        "PartitionKey": key[0],
        "RowKey": RECORD + key,
        "settledAt": state.stamp(ctx.clock()),
        "outcome": outcome,
        "meetingId": meeting_id,
    }
    table = ctx.storage.table(DELIVERIES_TABLE)
    try:
        table.submit_transaction(
            [
                ("update", record, {"mode": UpdateMode.MERGE}),
                ("delete", {"PartitionKey": key[0], "RowKey": PENDING + key}),
            ]
        )
    except TableTransactionError as error:
        if error.status_code != 404:
            raise
        table.update_entity(record, mode=UpdateMode.MERGE)  # settled before (a duplicate or a replay)


def sweep(ctx: Context) -> int:
    """Re-enqueue deliveries recorded and not applied for 10 minutes (then backing off); how many."""
    now = ctx.clock()
    table = ctx.storage.table(DELIVERIES_TABLE)
    requeued = 0
    for shard in SHARDS:
        rows = table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and enqueuedAt le @cutoff",
            parameters={
                "pk": shard,
                "low": PENDING,
                "high": state.after(PENDING),
                "cutoff": state.stamp(now - SWEEP_AFTER),
            },
        )
        for row in rows:
            sweeps = int(row.get("sweeps") or 0)
            due = times.parse_rfc3339(row["enqueuedAt"]) + SWEEP_AFTER * 2 ** min(sweeps, MAX_SWEEP_DOUBLINGS)
            if due > now:
                continue
            enqueue(ctx, row["RowKey"].removeprefix(PENDING))
            requeued += 1
            # Settled or swept meanwhile: then the message just sent is a harmless repeat.
            with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
                table.update_entity(
                    {**_keys(row), "enqueuedAt": state.stamp(now), "sweeps": sweeps + 1},
                    mode=UpdateMode.MERGE,
                    etag=row.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
    log.info(json.dumps({"operation": "events.sweep", "requeued": requeued}))
    return requeued


def replay(ctx: Context, *, meeting_id: str | None = None, since: datetime | None = None) -> int:
    """Re-enqueue the recorded deliveries of a meeting (those applied to it), or received since a time.

    Applying is idempotent, so replaying anything, even everything, changes nothing that is right.
    """
    if (meeting_id is None) == (since is None):
        raise ValueError("give exactly one of meeting_id and since")
    if meeting_id is not None:
        condition, value = "meetingId eq @value", meeting_id
    else:
        condition, value = "receivedAt ge @value", state.stamp(since)
    table = ctx.storage.table(DELIVERIES_TABLE)
    count = 0
    for shard in SHARDS:
        rows = table.query_entities(
            f"PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and {condition}",
            parameters={"pk": shard, "low": RECORD, "high": state.after(RECORD), "value": value},
            select=["RowKey"],
        )
        for row in rows:
            enqueue(ctx, row["RowKey"].removeprefix(RECORD))
            count += 1
    return count


def redact_participant(ctx: Context, meeting_id: str, custom_participant_id: str) -> int:
    """Remove a closed account's display name from the raw deliveries applied to the meeting.

    A record keeps its key (the hash of the body as received), so the same body delivered again is
    still recognised as seen and never applied a second time. How many records were redacted.
    """
    table = ctx.storage.table(DELIVERIES_TABLE)
    redacted = 0
    for shard in SHARDS:
        rows = table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and meetingId eq @meeting",
            parameters={"pk": shard, "low": RECORD, "high": state.after(RECORD), "meeting": meeting_id},
        )
        redacted += sum(redact_record(ctx, row, custom_participant_id) for row in rows)
    return redacted


def redact_record(ctx: Context, row: Mapping[str, Any], custom_participant_id: str) -> bool:
    """Remove the participant's display name from one recorded body; whether there was one."""
    try:
        document = json.loads(row.get("body") or b"")
    except ValueError:
        return False
    participant = document.get("participant") if isinstance(document, dict) else None
    if not isinstance(participant, dict) or not participant.get("userDisplayName"):
        return False
    if custom_participant_id not in (participant.get("customParticipantId"), participant.get("clientSpecificId")):
        return False
    participant["userDisplayName"] = ""
    body = json.dumps(document, separators=(",", ":")).encode()
    ctx.storage.table(DELIVERIES_TABLE).update_entity(
        {**_keys(row), "body": body, "redacted": True}, mode=UpdateMode.MERGE
    )
    return True


def _keys(row: Mapping[str, Any]) -> dict[str, str]:
    return {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}

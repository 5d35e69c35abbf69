"""Recorded webhook deliveries: the receiver, the queue of deliveries to apply, the sweep and replays.

A delivery's identity is the SHA-256 of its raw body (headers are not signed, so the `*-uuid`
header is recorded, never trusted). The receiver first indexes the delivery for retention (an
insert in the `Expiring` partition of the day it falls due, which also recognises a repeat of the
same body), then inserts the body with a conditional insert, and enqueues only its key; a body seen
before is not inserted again, and is enqueued again only while it has not been applied. Each
delivery has a pending row until it is settled, which is what the sweep reads: it never scans the
deliveries themselves. Layout in docs/data-model.md.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared import retention, schema, times
from shared.context import Context
from shared.events.signing import SigningKeys
from shared.storage import Batch, Stale

log = logging.getLogger(__name__)

# Deliveries spread over 16 partitions by the first hex digit of their key: one partition would cap
# the receiver at the 2,000 entities per second a partition serves (a burst of joins at the hour).
SHARDS = schema.DELIVERY_SHARDS
RECORD, PENDING = schema.DELIVERY, schema.DELIVERY_PENDING
# Deliveries up to this size travel in their queue message (base64 twice stays under the 64 KiB limit).
MAX_INLINE_BODY = 24 * 1024
SWEEP_AFTER = timedelta(minutes=10)
# An event that keeps failing is retried by the sweep after 10, 20, 40 ... minutes, at most ~10 h apart.
MAX_SWEEP_DOUBLINGS = 6
KEY = re.compile(r"[0-9a-f]{64}")
MAX_HEADER_CHARACTERS = 200


def delivery_key(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def entities(key: str, body: bytes, provider: str, headers: Mapping[str, str], received_at: datetime) -> list[dict]:
    """The rows of a newly received delivery: the record and its pending row (one partition, one batch)."""
    received = times.stamp(received_at)
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
    pending = {
        "PartitionKey": key[0],
        "RowKey": PENDING + key,
        "enqueuedAt": received,
        "receivedAt": received,
        "sweeps": 0,
    }
    return [record, pending]


def last_received(ctx: Context) -> str | None:
    """When the newest delivery was received (health): the shards' last-delivery rows, sixteen point reads at
    once (a query across the shards would read every delivery kept)."""
    table = ctx.storage.table(schema.DELIVERIES, create=False)

    def last(shard: str) -> str:
        try:
            return table.get_entity(shard, schema.LAST_DELIVERY, select=["receivedAt"])["receivedAt"]
        except ResourceNotFoundError:
            return ""

    with ThreadPoolExecutor(max_workers=len(SHARDS)) as pool:
        newest = max(pool.map(last, SHARDS), default="")
    return times.render(newest)


def _header(headers: Mapping[str, str], name: str) -> str:
    return (headers.get(name) or "")[:MAX_HEADER_CHARACTERS]


def receive(ctx: Context, keys: SigningKeys, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Verify, record and enqueue one delivery: at most 2 storage requests and 1 queue put.

    Fresh: the retention entry, the insert batch, the queue put. Seen before (the same day): the
    retention entry (refused), a read of whether it was applied, and a queue put only if it was not.
    A body whose entry exists but whose record does not (an earlier attempt failed in between) is
    recorded then.
    """
    provider = keys.verify(body, headers)
    key = delivery_key(body)
    now = ctx.clock()
    table = ctx.storage.table(schema.DELIVERIES)
    try:
        ctx.storage.table(schema.EXPIRING).create_entity(
            retention.delivery_entry(now, key, ctx.settings.event_retention_days)
        )
        fresh = True
    except ResourceExistsError:
        fresh = False
    if not fresh:
        record = load(ctx, key)
        if record is not None:
            if not record.get("settledAt"):
                enqueue(ctx, key)
            return {"id": key, "duplicate": True}
    batch = Batch(table, schema.delivery_partition(key))
    record, pending = entities(key, body, provider, headers, now)
    batch.create(record)
    batch.create(pending)
    # The shard's last delivery, for health: written by every delivery's own batch, it costs no request.
    batch.upsert(
        {"PartitionKey": record["PartitionKey"], "RowKey": schema.LAST_DELIVERY, "receivedAt": record["receivedAt"]}
    )
    try:
        batch.commit()
    except Stale:
        # Received on an earlier day (its own retention entry is in that day's partition).
        record = table.get_entity(key[0], RECORD + key, select=["settledAt"])
        if not record.get("settledAt"):
            enqueue(ctx, key)
        return {"id": key, "duplicate": True}
    enqueue(ctx, key, {"provider": provider, "receivedAt": times.stamp(now), "body": body})
    return {"id": key, "duplicate": False}


def enqueue(ctx: Context, key: str, fresh: dict[str, Any] | None = None) -> None:
    """Queue a delivery to apply: its key, and when it was just received and is small, the delivery itself,
    so the applier need not read it back (it checks the body against the key)."""
    message = key
    if fresh is not None and len(fresh["body"]) <= MAX_INLINE_BODY:
        body = base64.b64encode(fresh["body"]).decode("ascii")
        message = json.dumps({**fresh, "key": key, "body": body}, separators=(",", ":"))
    ctx.storage.queue(schema.WEBHOOK_QUEUE).send_message(message)


def from_message(ctx: Context, message: str) -> dict[str, Any] | None:
    """The delivery a queue message names: carried in it, or read back; None for a message that is not one."""
    text = message.strip()
    if KEY.fullmatch(text):
        record = load(ctx, text)
        if record is None:
            log.warning(json.dumps({"operation": "events.apply", "delivery": text, "outcome": "missing"}))
            return None
        return {**record, "key": text}
    try:
        carried = json.loads(text)
        body = base64.b64decode(carried["body"], validate=True)
        key = carried["key"]
        if not isinstance(key, str) or not KEY.fullmatch(key) or delivery_key(body) != key:
            raise ValueError("the body is not the key's")
        return {
            "key": key,
            "PartitionKey": schema.delivery_partition(key),
            "RowKey": schema.delivery_row(key),
            "provider": carried["provider"],
            "receivedAt": carried["receivedAt"],
            "body": body,
        }
    except (ValueError, KeyError, TypeError):
        # Only this app writes the queue: a message that is no delivery can never succeed, so no retries.
        log.error(json.dumps({"operation": "events.apply", "outcome": "bad-message"}))
        return None


def load(ctx: Context, key: str) -> Any | None:
    try:
        return ctx.storage.table(schema.DELIVERIES).get_entity(key[0], RECORD + key)
    except ResourceNotFoundError:
        return None


def settle(ctx: Context, key: str, outcome: str, meeting_id: str) -> None:
    """Mark the delivery applied (or why not) and drop its pending row, in one batch."""
    record = {
        "PartitionKey": key[0],
        "RowKey": RECORD + key,
        "settledAt": times.stamp(ctx.clock()),
        "outcome": outcome,
        "meetingId": meeting_id,
    }
    table = ctx.storage.table(schema.DELIVERIES)
    batch = Batch(table, key[0])
    batch.update(record, None, merge=True)
    batch.delete(PENDING + key)
    try:
        batch.commit()
    except Stale:
        table.update_entity(record, mode=UpdateMode.MERGE)  # settled before (a duplicate or a replay)


def sweep(ctx: Context) -> int:
    """Re-enqueue deliveries recorded and not applied for 10 minutes (then backing off); how many."""
    now = ctx.clock()
    table = ctx.storage.table(schema.DELIVERIES)
    requeued = 0
    for shard in SHARDS:
        rows = table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and enqueuedAt le @cutoff",
            parameters={
                "pk": shard,
                "low": PENDING,
                "high": schema.after(PENDING),
                "cutoff": times.stamp(now - SWEEP_AFTER),
            },
        )
        for row in rows:
            sweeps = int(row.get("sweeps") or 0)
            due = times.from_stamp(row["enqueuedAt"]) + SWEEP_AFTER * 2 ** min(sweeps, MAX_SWEEP_DOUBLINGS)
            if due > now:
                continue
            enqueue(ctx, row["RowKey"].removeprefix(PENDING))
            requeued += 1
            # Settled or swept meanwhile: then the message just sent is a harmless repeat.
            with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
                table.update_entity(
                    {**_keys(row), "enqueuedAt": times.stamp(now), "sweeps": sweeps + 1},
                    mode=UpdateMode.MERGE,
                    etag=row.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
    log.info(json.dumps({"operation": "events.sweep", "requeued": requeued}))
    return requeued


def stuck_count(ctx: Context, now: datetime) -> int:
    """Deliveries recorded and not applied for SWEEP_AFTER (health's count: pending rows only)."""
    table = ctx.storage.table(schema.DELIVERIES)
    cutoff = times.stamp(now - SWEEP_AFTER)
    return sum(
        sum(
            1
            for _ in table.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and receivedAt le @cutoff",
                parameters={"pk": shard, "low": PENDING, "high": schema.after(PENDING), "cutoff": cutoff},
                select=["RowKey"],
            )
        )
        for shard in SHARDS
    )


def replay(ctx: Context, *, meeting_id: str | None = None, since: datetime | None = None) -> int:
    """Re-enqueue the recorded deliveries of a meeting (those applied to it), or received since a time.

    Applying is idempotent, so replaying anything, even everything, changes nothing that is right.
    """
    if (meeting_id is None) == (since is None):
        raise ValueError("give exactly one of meeting_id and since")
    if meeting_id is not None:
        condition, value = "meetingId eq @value", meeting_id
    else:
        condition, value = "receivedAt ge @value", times.stamp(since)
    table = ctx.storage.table(schema.DELIVERIES)
    count = 0
    for shard in SHARDS:
        rows = table.query_entities(
            f"PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and {condition}",
            parameters={"pk": shard, "low": RECORD, "high": schema.after(RECORD), "value": value},
            select=["RowKey"],
        )
        for row in rows:
            enqueue(ctx, row["RowKey"].removeprefix(RECORD))
            count += 1
    return count


def redact_participant(ctx: Context, meeting_id: str, custom_participant_id: str, names: Collection[str]) -> int:
    """Remove a closed account's display name from the raw deliveries applied to the meeting: the event's
    participant when it is theirs, and in a recording's `participants` list every entry under one of
    `names` (the names they attended with).

    A record keeps its key (the hash of the body as received), so the same body delivered again is
    still recognised as seen and never applied a second time. How many records were redacted.
    """
    table = ctx.storage.table(schema.DELIVERIES)
    redacted = 0
    for shard in SHARDS:
        rows = table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and meetingId eq @meeting",
            parameters={"pk": shard, "low": RECORD, "high": schema.after(RECORD), "meeting": meeting_id},
        )
        redacted += sum(redact_record(ctx, row, custom_participant_id, names) for row in rows)
    return redacted


def redact_record(
    ctx: Context, row: Mapping[str, Any], custom_participant_id: str, names: Collection[str] = ()
) -> bool:
    """Remove the closed account's display name from one recorded body (as `redact_participant` says);
    whether there was one."""
    try:
        document = json.loads(row.get("body") or b"")
    except ValueError:
        return False
    if not isinstance(document, dict):
        return False
    found = False
    participant = document.get("participant")
    if (
        isinstance(participant, dict)
        and participant.get("userDisplayName")
        and custom_participant_id in (participant.get("customParticipantId"), participant.get("clientSpecificId"))
    ):
        participant["userDisplayName"] = ""
        found = True
    listed = document.get("participants")
    # Dyte's 2022 recording payload lists everyone by provider id, name and an address made of the name
    # (its sample: `test-user@<organization>.dyte.in`), with no custom participant id: the names they
    # attended with are what tell their entry.
    for entry in listed if isinstance(listed, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"] in names:
            entry["name"], entry["email"] = "", ""
            found = True
    if not found:
        return False
    body = json.dumps(document, separators=(",", ":")).encode()
    ctx.storage.table(schema.DELIVERIES).update_entity(
        {**_keys(row), "body": body, "redacted": True}, mode=UpdateMode.MERGE
    )
    return True


def _keys(row: Mapping[str, Any]) -> dict[str, str]:
    return {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}

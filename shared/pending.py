"""The index of pending background work, and the sweep that keeps it moving (docs/data-model.md).

Anything that must happen after a change commits (a meeting's follow-ups, an account's closing, an email
that failed, a recording's copy into our storage) has an entry in the `Pending` table naming the queue
message that does it and when it is due. An entry is written before the change it covers commits (so a
crash between the two leaves an entry pointing at nothing, which the work then finds done, never the
reverse) and deleted once the work is done. Failing work keeps its entry, with a backoff that grows from
seconds to an hour; after a day it is logged as an error and counted by health, and stays until an
operator or the dependency fixes it.

The sweep reads only the entries that are due: with nothing pending it costs one request, whatever the
size of the other tables.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared import schema, times

if TYPE_CHECKING:
    from shared.context import Context

log = logging.getLogger(__name__)

# A change's own request does the work right away; the entry only matters if that did not happen.
GRACE = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=1)
STUCK_AFTER = timedelta(minutes=10)
GIVE_UP_AFTER = timedelta(hours=24)
# What each kind of entry is, in logs and health (by its key's prefix).
WORK = {
    schema.FOLLOW_UP: "follow-up",
    schema.CLOSE_ACCOUNT: "account-closing",
    schema.MAIL_RETRY: "mail",
    schema.RECORDING_COPY: "recording-copy",
}
# Their names in health's stuck counts.
STUCK = {
    schema.FOLLOW_UP: "reconciliations",
    schema.CLOSE_ACCOUNT: "accountClosings",
    schema.MAIL_RETRY: "mails",
    schema.RECORDING_COPY: "recordingCopies",
}


@dataclass(frozen=True)
class Entry:
    key: str
    queue: str
    message: str
    due_at: datetime
    attempts: int
    first_failed_at: datetime | None
    created_at: datetime | None
    etag: str | None

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        return cls(
            key=row["RowKey"],
            queue=row["queue"],
            message=row["message"],
            due_at=times.from_stamp(row["dueAt"]),
            attempts=int(row.get("attempts") or 0),
            first_failed_at=times.from_stamp(row.get("firstFailedAt")),
            created_at=times.from_stamp(row.get("createdAt")),
            etag=row.metadata.get("etag"),
        )


def _table(ctx: Context) -> Any:
    return ctx.storage.table(schema.PENDING)


def _entry(key: str, queue: str, message: dict[str, Any], due_at: datetime, **fields: Any) -> dict[str, Any]:
    """An entry's row: the work's queue and message, when it is due, and what else the caller records."""
    return {
        "PartitionKey": schema.PENDING_PARTITION,
        "RowKey": key,
        "queue": queue,
        "message": json.dumps(message, separators=(",", ":")),
        "dueAt": times.stamp(due_at),
        **fields,
    }


def announce(ctx: Context, key: str, queue: str, message: dict[str, Any], due_in: timedelta = GRACE) -> str:
    """Record work about to be owed (before the change that owes it commits); the entry's ETag.

    A merge: an entry already failing keeps its attempts and first failure, but becomes due again soon.
    """
    now = ctx.clock()
    entity = _entry(key, queue, message, now + due_in, createdAt=times.stamp(now))
    return _table(ctx).upsert_entity(entity, mode=UpdateMode.MERGE)["etag"]


def keep(ctx: Context, key: str, queue: str, message: dict[str, Any]) -> None:
    """Work already queued gets its entry if it has none (an existing one keeps its schedule and attempts)."""
    now = ctx.clock()
    with contextlib.suppress(ResourceExistsError):
        _table(ctx).create_entity(_entry(key, queue, message, now + GRACE, createdAt=times.stamp(now)))


def get(ctx: Context, key: str) -> Entry | None:
    try:
        return Entry.from_row(_table(ctx).get_entity(schema.PENDING_PARTITION, key))
    except ResourceNotFoundError:
        return None


def complete(ctx: Context, key: str, etag: str | None = None) -> bool:
    """The work is done: drop the entry, unless (with `etag`) someone announced more work since."""
    options: dict[str, Any] = {}
    if etag is not None:
        options = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
    try:
        _table(ctx).delete_entity(schema.PENDING_PARTITION, key, **options)
    except ResourceModifiedError:
        return False
    except ResourceNotFoundError:
        pass
    return True


def backoff(attempts: int) -> timedelta:
    """2, 4, 8 ... seconds, at most an hour, with a little jitter so failures do not come back together."""
    seconds = min(MAX_BACKOFF.total_seconds(), 2.0 ** max(1, attempts))
    return timedelta(seconds=seconds * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not security


def failed(ctx: Context, key: str, reason: str, queue: str, message: dict[str, Any]) -> timedelta:
    """The work failed (a dependency is down): push its entry back (writing one if it had none, as the
    webhook applier's follow-ups do not); the delay before the next try."""
    now = ctx.clock()
    entry = get(ctx, key)
    attempts = (entry.attempts if entry else 0) + 1
    first = entry.first_failed_at if entry and entry.first_failed_at else now
    delay = backoff(attempts)
    patch = _entry(
        key,
        queue,
        message,
        now + delay + GRACE,
        createdAt=times.stamp(entry.created_at if entry and entry.created_at else now),
        attempts=attempts,
        firstFailedAt=times.stamp(first),
        lastError=reason[:200],
    )
    # An upsert: work queued without an entry (the webhook applier's) gets one once it fails.
    _table(ctx).upsert_entity(patch, mode=UpdateMode.MERGE)
    retry = {"work": WORK.get(key[:2], "other"), "attempts": attempts, "retryInSeconds": round(delay.total_seconds())}
    log.warning(json.dumps({"operation": "pending.retry", **retry, "problem": reason.split(":", 1)[0][:80]}))
    if now - first >= GIVE_UP_AFTER:
        # Not dropped: the entry stays for an operator, counted by health; this line pages someone.
        stuck_since = {"since": times.format_utc(first), "attempts": attempts, "error": reason[:200]}
        log.error(json.dumps({"operation": "pending.stuck", "key": _loggable(key), **stuck_since}))
    return delay


def later(ctx: Context, key: str, until: datetime, queue: str, message: dict[str, Any]) -> None:
    """Work that is not failing but must look again at `until` (it waits on something that takes time): its
    entry is due then (the sweep's backstop, a grace later), attempts and first failure unchanged."""
    entity = _entry(key, queue, message, until + GRACE)
    try:
        _table(ctx).update_entity(entity, mode=UpdateMode.MERGE)
    except ResourceNotFoundError:  # work queued without an entry (the webhook applier's) gets one
        with contextlib.suppress(ResourceExistsError):
            _table(ctx).create_entity({**entity, "createdAt": times.stamp(ctx.clock())})


def _loggable(key: str) -> str:
    """Keys hold meeting and user ids (public ids), never addresses or names."""
    return key[:120]


def due(ctx: Context, now: datetime) -> list[Entry]:
    rows = _table(ctx).query_entities(
        "PartitionKey eq @pk and dueAt le @now",
        parameters={"pk": schema.PENDING_PARTITION, "now": times.stamp(now)},
    )
    return [Entry.from_row(row) for row in rows]


def sweep(ctx: Context) -> dict[str, int]:
    """Timer: put each due entry's message on its queue again and push the entry back.

    Work whose own request or queue message was lost (a crash, a failed put, a poisoned message) is
    found here. Reads only due entries.
    """
    now = ctx.clock()
    requeued = 0
    for entry in due(ctx, now):
        try:
            ctx.storage.queue(entry.queue).send_message(entry.message)
        except Exception as error:  # the next sweep tries again; the entry is still due
            log.warning("pending: could not requeue %s: %s", _loggable(entry.key), type(error).__name__)
            continue
        requeued += 1
        delay = backoff(entry.attempts + 1) + GRACE
        # Done or announced again meanwhile: then the message just sent is a harmless repeat.
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            _table(ctx).update_entity(
                {"PartitionKey": schema.PENDING_PARTITION, "RowKey": entry.key, "dueAt": times.stamp(now + delay)},
                mode=UpdateMode.MERGE,
                etag=entry.etag,
                match_condition=MatchConditions.IfNotModified,
            )
    if requeued:
        log.info(json.dumps({"operation": "pending.sweep", "requeued": requeued}))
    return {"requeued": requeued}


def stuck(ctx: Context, now: datetime) -> dict[str, int]:
    """Work waiting longer than STUCK_AFTER, by kind (follow-ups, closings, mails, recording copies): names and
    counts only."""
    cutoff = times.stamp(now - STUCK_AFTER)
    rows = _table(ctx).query_entities(
        "PartitionKey eq @pk and ( createdAt le @cutoff or firstFailedAt le @cutoff )",
        parameters={"pk": schema.PENDING_PARTITION, "cutoff": cutoff},
        select=["RowKey", "createdAt", "firstFailedAt"],
    )
    counts = dict.fromkeys(STUCK.values(), 0)
    for row in rows:
        if row.get("firstFailedAt") == "" and (row.get("createdAt") or "") > cutoff:
            continue
        kind = STUCK.get(row["RowKey"][:2])
        if kind:
            counts[kind] += 1
    return counts

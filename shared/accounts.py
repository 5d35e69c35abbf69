"""Closing an account (`DELETE /api/me`) as reconciliation, and export (`GET /api/me/export`).

Closing commits a tombstone (`shared.closed_accounts`): from its 204 on, every instance refuses the
caller. The clean-up is a job that finds everything of the account and leaves nothing behind, finishing
within a minute when storage and the provider answer, and retrying with backoff until done when they do
not (an entry in the pending index keeps it alive through crashes and lost messages):

- meetings they own: cancelled (the follow-up deactivates them at the provider and tells invitees), the
  owner's name erased from them and their index rows, their recordings deleted from our storage, their
  own attendance anonymized as below; their idempotency records deleted;
- invites addressed to any of their verified addresses, whatever their status: deleted, with their
  index and mail rows. The addresses are those of the closing token and those storage knows were theirs
  whatever that token says (the invites bound to them, and the addresses of their last join, in every
  meeting of `Participations`);
- every meeting of others they were added to the provider in (`Participations`: written by a binding or
  a guest's first join) and every meeting of those invites: the follow-up removes their provider
  participant (a closed account keeps no place), and their attendance is anonymized: a tombstone in the
  meeting's activity keeps any later delivery nameless, the raw deliveries lose their display name (the
  event's participant, and their entry in a recording's `participants` list), and their join intervals
  keep their times under an anonymous id.

A closing answered 503 committed no tombstone: the job its pending entry brings back changes nothing.

Every step finds only what is left to do, so the job can stop at its time budget and continue in a fresh
message, and running it again is harmless.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared import followups, jobs, joins, meetings, pending, problems, recordings, schema, storage, times
from shared.access import Role
from shared.auth import Caller, public_id
from shared.context import Context
from shared.events import deliveries
from shared.model import Invite, Meeting
from shared.storage import Batch, Stale

log = logging.getLogger(__name__)

JOB_TIME_BUDGET = 20.0


def close(ctx: Context, caller: Caller) -> None:
    """`DELETE /api/me`: refuse the caller everywhere, then clean up in the background (idempotent, and
    cheap when repeated: no wait, no new job)."""
    gate = ctx.closed
    if gate.is_closed(caller.id):
        return
    payload = {
        "userId": caller.id,
        "tenantId": caller.tenant_id,
        "objectId": caller.object_id,
        # Hashes of the addresses, not the addresses: the queue must not carry what is being erased.
        "inviteIds": meetings.candidate_invite_ids(caller),
    }
    key = schema.pending_close(caller.id)
    # The pending entry first: once the tombstone commits, the clean-up can no longer be lost. If the
    # tombstone never commits (a 503), the job that entry brings back finds it missing and changes nothing.
    pending.announce(ctx, key, schema.JOBS_QUEUE, jobs.message(jobs.Kind.CLOSE_ACCOUNT, payload))
    committed = gate.close(caller.id)
    try:
        jobs.enqueue(ctx, jobs.Kind.CLOSE_ACCOUNT, payload)
    except Exception as error:  # committed: the sweep starts the clean-up from the pending entry
        log.warning("accounts: could not queue the clean-up (%s); the sweep will", type(error).__name__)
    gate.wait_until_everywhere(committed)


def anonymous_id(ctx: Context, user_id: str) -> str:
    """The id attendance keeps for a closed account: owners' totals stay right, the person is gone."""
    return "anon-" + public_id(ctx.settings.id_hash_key, "anonymous", user_id)[:16]


def close_job(ctx: Context, payload: dict[str, Any]) -> None:
    """Job `close-account`: each step finds what is left; on a dependency's failure, back off and retry."""
    closed = Caller(payload["tenantId"], payload["objectId"], "", (), payload["userId"])
    key = schema.pending_close(closed.id)
    deadline = time.monotonic() + JOB_TIME_BUDGET
    try:
        if not _committed(ctx, closed, key):
            return
        # Carried on by the messages that continue or retry the job: found before any step deletes a source.
        payload = {**payload, "inviteIds": _addresses(ctx, closed, payload)}
        for step in (_owned_meetings, _idempotency_records, _invites, _participations):
            if not step(ctx, closed, payload, deadline):
                jobs.enqueue(ctx, jobs.Kind.CLOSE_ACCOUNT, payload)  # over budget: continue in a fresh message
                return
    except (AzureError, problems.Problem, Stale) as failure:
        reason = failure.slug if isinstance(failure, problems.Problem) else type(failure).__name__
        delay = pending.failed(ctx, key, reason, schema.JOBS_QUEUE, jobs.message(jobs.Kind.CLOSE_ACCOUNT, payload))
        jobs.enqueue(ctx, jobs.Kind.CLOSE_ACCOUNT, payload, delay=delay.total_seconds())
        log.warning(
            json.dumps({"operation": "accounts.close", "callerId": closed.id, "status": "retrying", "reason": reason})
        )
        return
    pending.complete(ctx, key)
    log.info(json.dumps({"operation": "accounts.closed", "callerId": closed.id}))


def _committed(ctx: Context, closed: Caller, key: str) -> bool:
    """Whether the closing committed its tombstone. Its pending entry is written first, so a closing answered
    503 (the tombstone's insert failed) leaves an entry that brings this job back: it must change nothing.
    The entry is dropped once its last announce is older than `pending.GRACE` (the storage client gives up
    long before: no request can still be committing that tombstone) and only if unchanged since read (a
    retried closing announced it again)."""
    if ctx.closed.committed(closed.id):
        return True
    entry = pending.get(ctx, key)
    if entry is not None and ctx.clock() - entry.created_at >= pending.GRACE:
        pending.complete(ctx, key, entry.etag)
    log.info(json.dumps({"operation": "accounts.close", "callerId": closed.id, "status": "not-closed"}))
    return False


def _owned_meetings(ctx: Context, closed: Caller, payload: dict[str, Any], deadline: float) -> bool:
    table = ctx.storage.table(schema.MEETINGS)
    low, high = schema.OWNER_INDEX_RANGE
    index = table.query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": closed.id, "low": low, "high": high},
        select=["id"],
    )
    for entry in index:
        if time.monotonic() > deadline:
            return False

        def change(meeting_id: str = entry["id"]) -> None:
            try:
                before = Meeting.from_row(table.get_entity(closed.id, schema.meeting_key(meeting_id)))
            except ResourceNotFoundError:
                return
            if before.cancelled and not before.owner_name:
                return
            now = ctx.clock()
            after = before.replace(owner_name="", cancelled_at=before.cancelled_at or now, updated_at=now)
            if not before.cancelled:
                after = after.replace(version=before.version + 1)
            meetings.commit(ctx, before, after, inline=False)

        storage.retry(change)
        recordings.erase(ctx, entry["id"])
        # Their own joins left their name in the attendance that hosts still read.
        _erase_attendance(ctx, closed, entry["id"])
    return True


def _idempotency_records(ctx: Context, closed: Caller, payload: dict[str, Any], deadline: float) -> bool:
    """They hold the stored 201, which names the owner."""
    table = ctx.storage.table(schema.MEETINGS)
    low, high = schema.IDEMPOTENCY_RANGE
    for row in table.query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": closed.id, "low": low, "high": high},
        select=["RowKey"],
    ):
        if time.monotonic() > deadline:
            return False
        with contextlib.suppress(ResourceNotFoundError):
            table.delete_entity(closed.id, row["RowKey"])
    return True


def _addresses(ctx: Context, closed: Caller, payload: dict[str, Any]) -> list[str]:
    """The invite ids (address hashes) to erase: those of the closing token's addresses, and those storage
    knows were theirs, whatever that token says: in each meeting of `Participations`, the invites bound to
    them and the addresses their last join verified (their participant row). One query per meeting, over
    its rows from the invites to their participant row."""
    found = set(payload["inviteIds"])
    table = ctx.storage.table(schema.MEETINGS)
    for entry in ctx.storage.table(schema.PARTICIPATIONS).query_entities(
        "PartitionKey eq @pk", parameters={"pk": closed.id}, select=["RowKey"]
    ):
        meeting_id = entry["RowKey"]
        invites, _ = schema.invite_range(meeting_id)
        participant = schema.participant_key(meeting_id, closed.id)
        rows = table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey le @participant"
            " and ( boundTo eq @user or RowKey eq @participant )",
            parameters={
                "pk": schema.owner_partition(meeting_id),
                "low": invites,
                "participant": participant,
                "user": closed.id,
            },
            select=["RowKey", "inviteIds"],
        )
        for row in rows:
            if row["RowKey"] == participant:
                found.update(filter(None, (row.get("inviteIds") or "").split(",")))
            else:
                found.add(row["RowKey"].removeprefix(invites))
    return sorted(found)


def _invites(ctx: Context, closed: Caller, payload: dict[str, Any], deadline: float) -> bool:
    """Invites addressed to the account's addresses, whatever their status: gone, with index and mail rows.

    The meeting's follow-up (marked in the same batch) removes a provider participant of theirs.
    """
    index = ctx.storage.table(schema.INVITATIONS)
    table = ctx.storage.table(schema.MEETINGS)
    for invite_id in payload["inviteIds"]:
        for entry in index.query_entities("PartitionKey eq @pk", parameters={"pk": invite_id}, select=["RowKey", "id"]):
            if time.monotonic() > deadline:
                return False
            meeting_id = entry["id"]
            partition = schema.owner_partition(meeting_id)
            try:
                meeting = Meeting.from_row(table.get_entity(partition, schema.meeting_key(meeting_id)))
            except ResourceNotFoundError:
                meeting = None
            if meeting is not None:
                # Participations holds the meeting too when they joined with this invite: if this job dies
                # here, that step still removes their provider participant.
                for row_key in (schema.invite_key(meeting_id, invite_id), schema.delivered_key(meeting_id, invite_id)):
                    with contextlib.suppress(ResourceNotFoundError):
                        table.delete_entity(partition, row_key)
                _follow_up(ctx, meeting, closed)
                _erase_attendance(ctx, closed, meeting.id)
            with contextlib.suppress(ResourceNotFoundError):
                index.delete_entity(invite_id, entry["RowKey"])
    return True


def _participations(ctx: Context, closed: Caller, payload: dict[str, Any], deadline: float) -> bool:
    """Meetings of others they were added to: their provider participant goes, their attendance is anonymized."""
    table = ctx.storage.table(schema.PARTICIPATIONS)
    meetings_table = ctx.storage.table(schema.MEETINGS)
    for entry in table.query_entities("PartitionKey eq @pk", parameters={"pk": closed.id}, select=["RowKey"]):
        if time.monotonic() > deadline:
            return False
        meeting_id = entry["RowKey"]
        partition = schema.owner_partition(meeting_id)
        try:
            meeting = Meeting.from_row(meetings_table.get_entity(partition, schema.meeting_key(meeting_id)))
        except ResourceNotFoundError:
            meeting = None
        if meeting is not None:
            _follow_up(ctx, meeting, closed)
            _erase_attendance(ctx, closed, meeting.id)
        with contextlib.suppress(ResourceNotFoundError):
            table.delete_entity(closed.id, meeting_id)
    return True


def _follow_up(ctx: Context, meeting: Meeting, closed: Caller) -> None:
    """The meeting's follow-up re-checks their participant: a closed account keeps no place at the provider."""
    batch = Batch(ctx.storage.table(schema.MEETINGS), meeting.partition)
    followups.mark(ctx, batch, meeting, users=[closed.id], inline=False)
    batch.commit()


def _erase_attendance(ctx: Context, closed: Caller, meeting_id: str) -> None:
    """A tombstone first (no later delivery can write the name again), then the raw bodies, then the
    intervals: the names they attended with are read from the intervals, so those go last (a run that
    dies in between still finds them)."""
    custom = joins.custom_participant_id(ctx, meeting_id, closed)
    anonymous = anonymous_id(ctx, closed.id)
    partition = schema.owner_partition(meeting_id)
    table = ctx.storage.table(schema.MEETINGS)
    tombstone = schema.activity_key(meeting_id, schema.erased_key(custom))
    table.upsert_entity({"PartitionKey": partition, "RowKey": tombstone, "userId": anonymous})
    intervals = list(_intervals_of(ctx, meeting_id, custom))
    names = {row["name"] for row in intervals if row.get("name")}
    deliveries.redact_participant(ctx, meeting_id, custom, names)
    for row in intervals:
        table.update_entity(
            {"PartitionKey": partition, "RowKey": row["RowKey"], "userId": anonymous, "name": ""},
            mode=UpdateMode.MERGE,
        )


def _intervals_of(ctx: Context, meeting_id: str, custom: str) -> Any:
    """The join intervals of one provider participant in the meeting."""
    low, high = schema.activity_range(meeting_id, schema.INTERVAL)
    return ctx.storage.table(schema.MEETINGS).query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and customParticipantId eq @custom",
        parameters={"pk": schema.owner_partition(meeting_id), "low": low, "high": high, "custom": custom},
    )


# Export -----------------------------------------------------------------------------------------------------


def export(ctx: Context, caller: Caller) -> dict[str, Any]:
    """`GET /api/me/export`: everything this backend stores about the caller, as one document."""
    table = ctx.storage.table(schema.MEETINGS)
    low, high = schema.OWNER_INDEX_RANGE
    owned_rows = list(
        table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            parameters={"pk": caller.id, "low": low, "high": high},
        )
    )
    owned = [Meeting.from_row(row) for row in owned_rows]
    invited, related = [], {meeting.id: meeting for meeting in owned}
    for invite_id in meetings.candidate_invite_ids(caller):
        for entry in ctx.storage.table(schema.INVITATIONS).query_entities(
            "PartitionKey eq @pk", parameters={"pk": invite_id}
        ):
            with contextlib.suppress(ResourceNotFoundError):
                partition = schema.owner_partition(entry["id"])
                invite = Invite.from_row(table.get_entity(partition, schema.invite_key(entry["id"], invite_id)))
                if invite.bound_to in ("", caller.id):
                    invited.append({"meetingId": entry["id"], "title": entry["title"], **invite.render()})
                    related.setdefault(entry["id"], Meeting.from_row(entry))
    for entry in ctx.storage.table(schema.PARTICIPATIONS).query_entities(
        "PartitionKey eq @pk", parameters={"pk": caller.id}
    ):
        with contextlib.suppress(ResourceNotFoundError):
            row = table.get_entity(schema.owner_partition(entry["RowKey"]), schema.meeting_key(entry["RowKey"]))
            related.setdefault(entry["RowKey"], Meeting.from_row(row))
    attendance = []
    for meeting in related.values():
        for row in _intervals_of(ctx, meeting.id, joins.custom_participant_id(ctx, meeting.id, caller)):
            attendance.append(
                {
                    "meetingId": meeting.id,
                    "sessionId": row.get("sessionId"),
                    "name": row.get("name") or None,
                    "joinedAt": times.render(row.get("joinedAt")),
                    "leftAt": times.render(row.get("leftAt")),
                }
            )
    return {
        "exportedAt": times.format_utc(ctx.clock()),
        "profile": caller.profile(),
        "meetings": [meeting.render(Role.OWNER) for meeting in owned],
        "invites": invited,
        "attendance": attendance,
    }

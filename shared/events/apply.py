"""Applying recorded deliveries (queue `webhook-events`): sessions, join intervals, recordings, meeting status.

Many messages are applied at once, on many instances. Each row is read, merged with the event's
facts (`state.merge`, order-independent) and written back only if unchanged since the read (ETag),
else read again, so concurrent events never lose one another. The meeting's status is derived from
all its session rows after every session event and written to the meeting row and its owner-index
row in one ETag-guarded batch, then checked again, so the last writer always writes what the session
rows say (see `_reconcile_activity`). Webhook-driven changes leave `version` and `updatedAt` alone.

Any failure raises: the queue retries the message, and after five attempts moves it to
`webhook-events-poison`; the delivery stays recorded and pending, so the sweep enqueues it again.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared import accounts, jobs, joins, meetings, storage
from shared.context import Context
from shared.events import deliveries, state
from shared.settings import PROVIDERS

log = logging.getLogger(__name__)

# Characters Table Storage refuses in keys: a provider meeting id holding one cannot be one of ours.
_NOT_IN_KEYS = re.compile(r"[/\\#?]")


class Contended(Exception):
    """A row kept changing under us; the queue retries the message."""


@dataclass(frozen=True)
class Applied:
    outcome: str  # applied | ignored | incomplete | unknown-meeting | malformed
    event: str = ""
    meeting_id: str = ""
    session_id: str = ""


def run(ctx: Context, message: str) -> None:
    key = message.strip()
    if not deliveries.KEY.fullmatch(key):
        # Only this app writes the queue: a message that is no key can never succeed, so no retries.
        log.error(json.dumps({"operation": "events.apply", "outcome": "bad-message"}))
        return
    record = deliveries.load(ctx, key)
    if record is None:
        log.warning(json.dumps({"operation": "events.apply", "delivery": key, "outcome": "missing"}))
        return
    result = apply(ctx, record)
    deliveries.settle(ctx, key, result.outcome, result.meeting_id)
    log.info(
        json.dumps(
            {
                "operation": "events.apply",
                "delivery": key,
                "receivedAt": record.get("receivedAt"),
                "event": result.event,
                "outcome": result.outcome,
                "meetingId": result.meeting_id or None,
                "sessionId": result.session_id or None,
            }
        )
    )


def apply(ctx: Context, record: dict[str, Any]) -> Applied:
    try:
        payload = state.document(record.get("body") or b"")
    except state.Malformed:
        # Signed by the provider yet not JSON: nothing to apply, and retrying cannot change that.
        return Applied("malformed")
    name = state.event_name(payload)
    event = state.parse(payload, record["receivedAt"])
    if event is None:
        return Applied("ignored" if name not in state.HANDLED else "incomplete", name)
    target = _find_meeting(ctx, record["provider"], event.provider_meeting_id)
    if target is None:
        return Applied("unknown-meeting", name, session_id=event.session_id)
    owner, meeting_id = target
    if event.participant is not None and not event.session_id:
        # An older payload without meeting.sessionId: the one session live at its time, else incomplete.
        event = _in_session_at_its_time(ctx, meeting_id, event)
        if event is None:
            return Applied("incomplete", name, meeting_id)
    user_id = ""
    if event.participant is not None:
        erased_as = accounts.erased_participant(ctx, event.participant.custom_participant_id)
        if erased_as:
            # A closed account: a late or replayed event must not write the name back, here or in
            # the delivery's own record.
            user_id, event = erased_as, state.without_name(event)
            deliveries.redact_record(ctx, record, event.participant.custom_participant_id)
        else:
            user_id = _user_of(ctx, owner, meeting_id, event.participant.custom_participant_id)
            if user_id:
                accounts.note_attendance(ctx, user_id, owner, meeting_id)
    table = ctx.storage.table(state.ACTIVITY_TABLE)
    for row_key, update in state.facts(event, user_id).items():
        _merge_row(table, meeting_id, row_key, update)
    if event.name in state.SESSION_EVENTS:
        # Also when nothing changed: an earlier attempt may have died between the rows and the status.
        _reconcile_activity(ctx, owner, meeting_id)
    return Applied("applied", name, meeting_id, event.session_id)


def _find_meeting(ctx: Context, provider: str, provider_meeting_id: str) -> tuple[str, str] | None:
    """(owner id, meeting id) of our meeting for the provider's meeting, or None.

    The signing provider's meetings first; then the other's, since some RealtimeKit deliveries are
    reported to come with Dyte's headers (provider meeting ids are UUIDs, so they cannot clash).
    """
    if _NOT_IN_KEYS.search(provider_meeting_id):
        return None
    table = ctx.storage.table(meetings.PROVIDER_MEETINGS_TABLE)
    for name in sorted(PROVIDERS, key=lambda candidate: candidate != provider):
        try:
            row = table.get_entity(f"{name}|{provider_meeting_id}", "")
        except ResourceNotFoundError:
            continue
        return row["ownerId"], row["meetingId"]
    return None


def _in_session_at_its_time(ctx: Context, meeting_id: str, event: state.Event) -> state.Event | None:
    sessions = ctx.storage.table(state.ACTIVITY_TABLE).query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": meeting_id, "low": state.SESSION, "high": state.after(state.SESSION)},
        select=["sessionId", "startedAt", "endedAt"],
    )
    participant = event.participant
    session_id = state.session_at(sessions, participant.joined_at or participant.left_at or event.received_at)
    return state.in_session(event, session_id) if session_id else None


def _user_of(ctx: Context, owner: str, meeting_id: str, custom_participant_id: str) -> str:
    """Our public user id behind a provider `customParticipantId`, or "" (not one we created, or revoked)."""
    if not custom_participant_id:
        return ""
    low = joins.participant_row_key(meeting_id, "")
    rows = ctx.storage.table(meetings.MEETINGS_TABLE).query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and customParticipantId eq @custom",
        parameters={"pk": owner, "low": low, "high": state.after(low), "custom": custom_participant_id},
        select=["userId"],
    )
    return next((row.get("userId") or "" for row in rows), "")


def _merge_row(table: TableClient, partition: str, row_key: str, update: dict[str, Any]) -> None:
    for _ in storage.attempts():
        try:
            current = table.get_entity(partition, row_key)
        except ResourceNotFoundError:
            current = None
        merged = state.merge(current or {}, update)
        if current is not None and merged == {name: current[name] for name in current if name in state.PROPERTIES}:
            return
        entity = {"PartitionKey": partition, "RowKey": row_key, **merged}
        try:
            if current is None:
                table.create_entity(entity)
            else:
                table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=current.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            return
        except (ResourceExistsError, ResourceModifiedError):
            continue
    raise Contended(f"row {row_key} of meeting {partition} kept changing")


def _reconcile_activity(ctx: Context, owner: str, meeting_id: str) -> None:
    """Make the meeting's `activity` what its session rows say.

    Each round reads the meeting row, then the sessions, and writes only if the meeting row is still
    as read. After a write it goes round again: a session row that changed between our read and our
    write was written by an applier that then read the meeting row, possibly before our write, and
    saw nothing to do; our second round sees its change. So the final write reflects every session.
    """
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    activity_table = ctx.storage.table(state.ACTIVITY_TABLE)
    wrote = False
    for _ in storage.attempts():
        try:
            row = table.get_entity(owner, meetings.meeting_row_key(meeting_id))
        except ResourceNotFoundError:
            return  # no meeting row, no status to show
        sessions = activity_table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            parameters={"pk": meeting_id, "low": state.SESSION, "high": state.after(state.SESSION)},
            select=["endedAt"],
        )
        wanted = state.activity(session.get("endedAt") or "" for session in sessions)
        if (row.get("activity") or "") == wanted:
            if wrote and row.get("inviteCount"):
                # Invitees' list rows copy the meeting; they are refreshed in the background.
                jobs.enqueue(ctx, jobs.Kind.REFRESH_INVITEE_INDEX, {"meetingId": meeting_id})
            return
        if _set_activity(table, row, wanted):
            wrote = True
            # The meeting's derived status, logged when it changes: unlike the events, in the order it changed.
            log.info(json.dumps({"operation": "events.status", "meetingId": meeting_id, "activity": wanted}))
    raise Contended(f"the status of meeting {meeting_id} kept changing")


def _set_activity(table: TableClient, row: Any, activity: str) -> bool:
    """The meeting row's `activity` (if unchanged since read) and its owner-index copy, atomically."""
    owner = row["PartitionKey"]
    index = {**meetings.meeting_fields(row), "activity": activity, "PartitionKey": owner, "RowKey": row["indexKey"]}
    try:
        table.submit_transaction(
            [
                storage.if_unchanged(
                    {"PartitionKey": owner, "RowKey": row["RowKey"], "activity": activity},
                    row.metadata["etag"],
                    UpdateMode.MERGE,
                ),
                ("upsert", index, {"mode": UpdateMode.REPLACE}),
            ]
        )
    except TableTransactionError as error:
        if error.status_code == 412 or getattr(error, "error_code", None) == "UpdateConditionNotSatisfied":
            return False
        raise
    return True

"""Applying recorded deliveries (queue `webhook-events`): sessions, join intervals, recordings, meeting status.

What the webhooks say lives under the meeting in its owner's partition (`m|{meeting}|w|...`): sessions,
join intervals, recordings, closed accounts' tombstones and the meeting's summary (the sessions seen and
ended). So one query reads every row an event touches, the meeting row included, and one batch writes the
rows it changes, guarded by the ETags read: concurrent events never lose one another (a conflict reads
again), and the meeting's status (`activity`, on the meeting row and its owner-index row) changes in the
same batch as the summary it is derived from. Rows that would not change are not written, so a thousand
joins of one session contend on nothing but their own intervals.

Per event, at most five storage requests: the provider meeting's mapping (cached: it never changes), the
read, the batch, the job a change owes (the follow-up that copies a changed status onto the list rows, or a
recording's copy, `shared.recordings`) and the settling; a participant's leave reads its interval in place
of the mapping's first read. What a change owes is written into the batch (the summary's or the recording
row's `owedBy`: this delivery) and its job queued after the commit, failing the delivery if the put fails,
so the delivery stays unsettled and its next attempt, finding the rows owing to it, queues the job again.
The queue message carries the body when it is small (its key is its hash, checked here), so the
delivery's record is read only for a replay or a sweep. Webhook-driven changes never touch `version` or
`updatedAt`.

Any failure raises: the queue retries the message, and after five attempts moves it to
`webhook-events-poison`; the delivery stays recorded and pending, so the sweep enqueues it again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from shared import followups, jobs, recordings, schema, storage, times
from shared.events import deliveries, state
from shared.settings import PROVIDERS
from shared.storage import Batch, Stale

if TYPE_CHECKING:
    from shared.context import Context

log = logging.getLogger(__name__)

# A summary that still owes its meeting's follow-up this long after its status changed queues it again
# with any event (a follow-up lost after its put); the delivery that owes it queues it again at once.
OWED_AGAIN_AFTER = timedelta(seconds=60)

# Characters Table Storage refuses in keys: a provider meeting id holding one cannot be one of ours.
_NOT_IN_KEYS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Applied:
    outcome: str  # applied | ignored | incomplete | unknown-meeting | malformed
    event: str = ""
    meeting_id: str = ""
    session_id: str = ""


def run(ctx: Context, message: str) -> None:
    record = deliveries.from_message(ctx, message)
    if record is None:
        return
    key = record["key"]
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
    if _NOT_IN_KEYS.search(event.provider_meeting_id):
        return Applied("unknown-meeting", name, session_id=event.session_id)
    # The signing provider's meetings first; then the other's, since some RealtimeKit deliveries are
    # reported to come with Dyte's headers (provider meeting ids are UUIDs, so they cannot clash).
    for provider in sorted(PROVIDERS, key=lambda candidate: candidate != record["provider"]):
        found = ctx.mappings.find(ctx, provider, event.provider_meeting_id)
        if found is None:
            continue
        owner, meeting_id = found
        if event.participant is not None and not event.session_id:
            # An older payload without meeting.sessionId: the one session live at its time, else incomplete.
            placed = _in_session_at_its_time(ctx, owner, meeting_id, event)
            if placed is None:
                return Applied("incomplete", name, meeting_id)
            event = placed
        erased = storage.retry(lambda o=owner, m=meeting_id, e=event: _apply(ctx, o, m, e, record["key"]))
        if erased:
            # A closed account's name must not stay in the delivery's own record either.
            deliveries.redact_record(ctx, record, erased)
        return Applied("applied", name, meeting_id, event.session_id)
    return Applied("unknown-meeting", name, session_id=event.session_id)


def _in_session_at_its_time(ctx: Context, owner: str, meeting_id: str, event: state.Event) -> state.Event | None:
    low, high = schema.activity_range(meeting_id, schema.SESSION)
    sessions = ctx.storage.table(schema.MEETINGS).query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": owner, "low": low, "high": high},
        select=["sessionId", "startedAt", "endedAt"],
    )
    participant = event.participant
    session_id = state.session_at(sessions, participant.joined_at or participant.left_at or event.received_at)
    return state.in_session(event, session_id) if session_id else None


def _apply(ctx: Context, owner: str, meeting_id: str, event: state.Event, delivery: str) -> str | None:
    """Merge the event into the meeting's rows, then queue the jobs the change owes (raising if a put
    fails); the custom participant id of a closed account the event named ("" for anyone else). A join
    usually opens its interval, so it writes it without reading it first; when it was there already (a
    repeat), the batch is refused and the event goes again, reading it."""
    joining = event.name == state.PARTICIPANT_JOINED
    try:
        erased, owed = _merge(ctx, owner, meeting_id, event, delivery, read_interval=not joining)
    except Stale:
        erased, owed = _merge(ctx, owner, meeting_id, event, delivery, read_interval=True)
    for kind, payload in owed:
        jobs.enqueue(ctx, kind, payload)
    return erased


def _merge(
    ctx: Context, owner: str, meeting_id: str, event: state.Event, delivery: str, read_interval: bool
) -> tuple[str, list[tuple[jobs.Kind, dict[str, Any]]]]:
    table = ctx.storage.table(schema.MEETINGS)
    custom = event.participant.custom_participant_id if event.participant is not None else ""
    facts = state.facts(event, "")
    rows = _read(table, owner, meeting_id, facts, custom)
    interval = next((relative for relative in facts if relative.startswith(schema.INTERVAL)), None)
    if interval is not None and read_interval:
        with contextlib.suppress(ResourceNotFoundError):
            key = schema.activity_key(meeting_id, interval)
            rows[key] = table.get_entity(owner, key)
    erased = rows.get(schema.activity_key(meeting_id, schema.erased_key(custom))) if custom else None
    if erased is not None:
        # A closed account: a late or replayed event must not write the name back.
        event = state.without_name(event)
    batch = Batch(table, owner)
    owed: list[tuple[jobs.Kind, dict[str, Any]]] = []
    merged_rows: dict[str, dict[str, Any]] = {}
    for relative, update in state.facts(event, erased["userId"] if erased is not None else "").items():
        row_key = schema.activity_key(meeting_id, relative)
        current = rows.get(row_key)
        merged = merged_rows[relative] = state.merge(current or {}, update)
        if relative.startswith(schema.RECORDING):
            properties, job = recordings.owe(meeting_id, current, merged, delivery)
            merged.update(properties)
            owed.extend(job)
        if current is not None and merged == {k: current[k] for k in current if k in state.PROPERTIES}:
            continue
        entity = {"PartitionKey": owner, "RowKey": row_key, **merged}
        if current is None:
            batch.create(entity)
            # First sight of a session or recording: its place in the newest-first listing.
            if relative.startswith(schema.RECORDING):
                order = schema.recording_order_key(event.received_at, merged["recordingId"])
            elif relative.startswith(schema.SESSION):
                order = schema.session_order_key(event.received_at, event.session_id)
            else:
                order = ""
            if order:
                batch.create({"PartitionKey": owner, "RowKey": schema.activity_key(meeting_id, order), "row": relative})
        else:
            # A merge: what else the row holds (a recording's copy) stays.
            batch.update(entity, current.metadata["etag"], merge=True)
    if event.name in state.SESSION_EVENTS:
        session = merged_rows[schema.session_key(event.session_id)]
        if _fold_session(ctx, batch, rows, owner, meeting_id, event, session, delivery):
            owed.append((jobs.Kind.FOLLOW_UP, {"meetingId": meeting_id}))
    batch.commit()
    return (custom if erased is not None else ""), owed


def _fold_session(
    ctx: Context,
    batch: Batch,
    rows: dict[str, Any],
    owner: str,
    meeting_id: str,
    event: state.Event,
    session: dict[str, Any],
    delivery: str,
) -> bool:
    """The summary takes the event's session as its merged row now is; whether the meeting's follow-up is
    owed (to copy the status onto the meeting row and the list rows): when that changes the status, when
    this delivery owed it before (an attempt that failed after its commit), or when it has been owed a
    minute (a follow-up lost after its put)."""
    summary_key = schema.activity_key(meeting_id, schema.SUMMARY)
    summary = rows.get(summary_key) or {}
    folded = state.summarize(summary, event.session_id, session)
    now = ctx.clock()
    changed = state.activity(folded) != state.activity(summary)
    owes_since = times.from_stamp(summary.get("owesSince"))
    owes = owes_since is not None and (summary.get("owedBy") == delivery or now - owes_since > OWED_AGAIN_AFTER)
    if changed or owes:
        folded["owesSince"], folded["owedBy"] = times.stamp(now), delivery
        followups.mark_status(ctx, batch, owner, meeting_id)
    if changed:
        # In the order it changed, unlike the events: for an operator following a meeting.
        status = {"operation": "events.status", "meetingId": meeting_id, "activity": state.activity(folded)}
        batch.after_commit(lambda: log.info(json.dumps(status)))
    if not summary:
        batch.create({"PartitionKey": owner, "RowKey": summary_key, **folded})
    elif any(folded[name] != summary.get(name) for name in folded):
        batch.update({"PartitionKey": owner, "RowKey": summary_key, **folded}, summary.metadata["etag"], merge=True)
    return changed or owes


def _read(table: Any, owner: str, meeting_id: str, facts: dict[str, Any], custom: str) -> dict[str, Any]:
    """The rows the event merges into, in one query: the summary, the session or recording, a closed
    account's tombstone. Bounded to the keys between the first and the last of them, which lie among the
    meeting's few per-session rows, never among its join intervals (its history)."""
    relative = {schema.SUMMARY, *(key for key in facts if not key.startswith(schema.INTERVAL))}
    if custom:
        relative.add(schema.erased_key(custom))
    wanted = sorted(schema.activity_key(meeting_id, key) for key in relative)
    names = {f"k{n}": key for n, key in enumerate(wanted)}
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey le @high and ( {} )".format(
        " or ".join(f"RowKey eq @{name}" for name in names)
    )
    rows = table.query_entities(query, parameters={"pk": owner, "low": wanted[0], "high": wanted[-1], **names})
    return {row["RowKey"]: row for row in rows}

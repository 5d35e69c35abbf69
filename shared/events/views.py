"""`GET /api/meetings/{id}/sessions` and `/recordings`: what the webhooks built, for the owner and hosts.

Both are paged in storage, newest first: each session and recording has an order row (`o|`, `n|`, under
the meeting in its owner's partition), keyed by when it was first seen, written with it. A page is one
range query over those rows, one query for the rows they point at (sessions with their join intervals,
or recordings), and for sessions one query for the meeting's participants (who each interval's peer is,
and as what they joined): a few requests per page, whatever the meeting's history. Cursors are sealed
(`shared.cursors`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from shared import access, cursors, problems, recordings, schema, times
from shared.access import Action
from shared.auth import Caller
from shared.context import Context
from shared.meetings import load
from shared.model import Meeting, Participant

# Rows named in one query: keep the filter well within the service's URL limit.
CHUNK = 20


def list_sessions(ctx: Context, caller: Caller, meeting_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    after = _after(ctx, caller, f"sessions:{meeting_id}", cursor)
    meeting = _require(ctx, caller, meeting_id, Action.SEE_SESSIONS, "Only the owner and hosts see the sessions.")
    order, more = _order_page(ctx, meeting, schema.SESSION_ORDER, after, limit)
    session_keys = [row["row"] for row in order]
    rows = _rows(ctx, meeting, session_keys, intervals=True)
    users = _participants(ctx, meeting) if rows else {}
    intervals: dict[str, list[Any]] = defaultdict(list)
    for key, row in rows.items():
        if key.startswith(schema.INTERVAL):
            intervals[schema.SESSION + key.removeprefix(schema.INTERVAL).split("|", 1)[0]].append(row)
    items = [_render_session(rows[key], intervals[key], users) for key in session_keys if key in rows]
    return _page(ctx, caller, f"sessions:{meeting_id}", items, order, more)


def list_recordings(ctx: Context, caller: Caller, meeting_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    after = _after(ctx, caller, f"recordings:{meeting_id}", cursor)
    meeting = _require(ctx, caller, meeting_id, Action.SEE_RECORDINGS, "Only the owner and hosts see the recordings.")
    order, more = _order_page(ctx, meeting, schema.RECORDING_ORDER, after, limit)
    keys = [row["row"] for row in order]
    rows = _rows(ctx, meeting, keys, intervals=False)
    items = [_render_recording(ctx, rows[key]) for key in keys if key in rows]
    return _page(ctx, caller, f"recordings:{meeting_id}", items, order, more)


def _require(ctx: Context, caller: Caller, meeting_id: str, action: Action, refusal: str) -> Meeting:
    visible = load(ctx, caller, meeting_id)
    access.require(visible.role, action, refusal)
    return visible.meeting


def _after(ctx: Context, caller: Caller, listing: str, cursor: str | None) -> str | None:
    position = cursors.open_(ctx.settings.id_hash_key, listing, caller.id, cursor)
    if position is not None and not isinstance(position, str):
        raise problems.Validation("The cursor is not valid.")
    return position


def _order_page(ctx: Context, meeting: Meeting, prefix: str, after: str | None, limit: int) -> tuple[list, bool]:
    low, high = schema.activity_range(meeting.id, prefix)
    low_operator = "ge"
    if after is not None:
        if not low <= after < high:
            raise problems.Validation("The cursor is not valid.")
        low_operator, low = "gt", after
    pages = (
        ctx.storage.table(schema.MEETINGS)
        .query_entities(
            f"PartitionKey eq @pk and RowKey {low_operator} @low and RowKey lt @high",
            parameters={"pk": meeting.partition, "low": low, "high": high},
            results_per_page=limit + 1,
        )
        .by_page()
    )
    rows = list(next(pages, []))
    return rows[:limit], len(rows) > limit


def _rows(ctx: Context, meeting: Meeting, keys: list[str], intervals: bool) -> dict[str, Any]:
    """The rows at `keys` (relative to the meeting), and with `intervals` each session's join intervals,
    a chunk of keys per query; by relative key."""
    found: dict[str, Any] = {}
    table = ctx.storage.table(schema.MEETINGS)
    prefix = schema.activity_key(meeting.id, "")
    low, high = schema.activity_range(meeting.id)
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        parameters: dict[str, str] = {"pk": meeting.partition, "low": low, "high": high}
        terms = []
        for n, key in enumerate(chunk):
            parameters[f"k{n}"] = prefix + key
            terms.append(f"RowKey eq @k{n}")
            if intervals:
                first = prefix + schema.INTERVAL + key.removeprefix(schema.SESSION) + "|"
                parameters[f"l{n}"], parameters[f"h{n}"] = first, schema.after(first)
                terms.append(f"( RowKey ge @l{n} and RowKey lt @h{n} )")
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and ( {} )".format(" or ".join(terms))
        for row in table.query_entities(query, parameters=parameters):
            found[row["RowKey"].removeprefix(prefix)] = row
    return found


def _participants(ctx: Context, meeting: Meeting) -> dict[str, Participant]:
    """The meeting's participants by custom participant id: who each peer is, and as what they joined."""
    low, high = schema.participant_range(meeting.id)
    rows = ctx.storage.table(schema.MEETINGS).query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": meeting.partition, "low": low, "high": high},
    )
    participants = (Participant.from_row(row) for row in rows)
    return {participant.custom_participant_id: participant for participant in participants}


def _page(ctx: Context, caller: Caller, listing: str, items: list[Any], order: list[Any], more: bool) -> dict[str, Any]:
    next_cursor = cursors.seal(ctx.settings.id_hash_key, listing, caller.id, order[-1]["RowKey"]) if more else None
    return {"items": items, "nextCursor": next_cursor}


def _render_session(row: dict[str, Any], interval_rows: list[dict[str, Any]], users: dict[str, Participant]) -> dict:
    ended_at = row.get("endedAt") or ""
    participants = []
    for interval in sorted(interval_rows, key=lambda r: (r.get("joinedAt") or "", r["RowKey"])):
        joined_at = interval.get("joinedAt") or ""
        # No explicit leave: the peer was there until the session ended (or still is).
        left_at = interval.get("leftAt") or ended_at
        known = users.get(interval.get("customParticipantId") or "")
        # A closed account's intervals carry its anonymous id; everyone else is found by their participant.
        user_id = interval.get("userId") or (known.user_id if known else None)
        participants.append(
            {
                "userId": user_id,
                "name": interval.get("name") or "",
                # Guests are named as such (owners see who knocked and was let in); other roles are invites.
                **_attendance_role(known, interval),
                "joinedAt": times.render(joined_at),
                "leftAt": times.render(left_at),
                "durationSeconds": times.seconds_between(joined_at, left_at),
            }
        )
    return {
        "id": row["sessionId"],
        "startedAt": times.render(row.get("startedAt")),
        "endedAt": times.render(ended_at),
        "endReason": row.get("endReason") or None,
        "participants": participants,
    }


def _attendance_role(known: Participant | None, interval: dict[str, Any]) -> dict[str, str]:
    named = access.named_in_attendance(known.role) if known and not interval.get("userId") else None
    return {"role": named} if named else {}


def _render_recording(ctx: Context, row: dict[str, Any]) -> dict[str, Any]:
    started_at, stopped_at = row.get("startedAt") or "", row.get("stoppedAt") or ""
    duration = row.get("durationSeconds", -1.0)
    size = row.get("sizeBytes", -1.0)
    return {
        "id": row["recordingId"],
        "sessionId": row.get("sessionId") or None,
        "status": row["status"],
        "startedAt": times.render(started_at),
        "stoppedAt": times.render(stopped_at),
        # Dyte's documented UPLOADED example says 0 for a 47-second recording: 0 means unknown.
        "durationSeconds": round(duration) if duration > 0 else times.seconds_between(started_at, stopped_at),
        "sizeBytes": int(size) if size >= 0 else None,
        # Once copied, a short-lived link to our copy; the provider's until then.
        **recordings.download(ctx, row),
    }

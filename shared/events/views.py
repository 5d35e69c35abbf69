"""`GET /api/meetings/{id}/sessions` and `/recordings`: what the webhooks built, for the owner and hosts.

Both read the meeting's rows in one range query (a meeting's sessions and recordings are few) and
list them newest first, paged by an opaque cursor holding the last item's position.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from typing import Any

from shared import meetings, problems
from shared.auth import Caller
from shared.context import Context
from shared.events import state

Position = tuple[str, str]  # (startedAt stamp, RowKey): the sort order, newest first
MAX_CURSOR_CHARACTERS = 2048


def list_sessions(ctx: Context, caller: Caller, meeting_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    position = _decode_cursor(cursor)
    _require_host(ctx, caller, meeting_id, "sessions")
    sessions: dict[str, Any] = {}
    intervals: dict[str, list[Any]] = defaultdict(list)
    for row in _rows(ctx, meeting_id, state.SESSION, state.after(state.INTERVAL)):
        key = row["RowKey"]
        if key.startswith(state.SESSION):
            sessions[key.removeprefix(state.SESSION)] = row
        else:
            intervals[key.removeprefix(state.INTERVAL).split("|", 1)[0]].append(row)
    entries = [
        ((row.get("startedAt") or "", row["RowKey"]), _render_session(row, intervals[session]))
        for session, row in sessions.items()
    ]
    return _page(entries, limit, position)


def list_recordings(ctx: Context, caller: Caller, meeting_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    position = _decode_cursor(cursor)
    _require_host(ctx, caller, meeting_id, "recordings")
    entries = [
        ((row.get("startedAt") or "", row["RowKey"]), _render_recording(row))
        for row in _rows(ctx, meeting_id, state.RECORDING, state.after(state.RECORDING))
    ]
    return _page(entries, limit, position)


def _require_host(ctx: Context, caller: Caller, meeting_id: str, what: str) -> None:
    if meetings.load(ctx, caller, meeting_id).role == "participant":
        raise problems.Forbidden(f"Only the owner and hosts see the {what}.")


def _rows(ctx: Context, meeting_id: str, low: str, high: str) -> list[Any]:
    return list(
        ctx.storage.table(state.ACTIVITY_TABLE).query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            parameters={"pk": meeting_id, "low": low, "high": high},
        )
    )


def _render_session(row: dict[str, Any], interval_rows: list[dict[str, Any]]) -> dict[str, Any]:
    ended_at = row.get("endedAt") or ""
    participants = []
    for interval in sorted(interval_rows, key=lambda r: (r.get("joinedAt") or "", r["RowKey"])):
        joined_at = interval.get("joinedAt") or ""
        # No explicit leave: the peer was there until the session ended (or still is).
        left_at = interval.get("leftAt") or ended_at
        participants.append(
            {
                "userId": interval.get("userId") or None,
                "name": interval.get("name") or "",
                "joinedAt": state.render_time(joined_at),
                "leftAt": state.render_time(left_at),
                "durationSeconds": state.seconds_between(joined_at, left_at),
            }
        )
    return {
        "id": row["sessionId"],
        "startedAt": state.render_time(row.get("startedAt")),
        "endedAt": state.render_time(ended_at),
        "endReason": row.get("endReason") or None,
        "participants": participants,
    }


def _render_recording(row: dict[str, Any]) -> dict[str, Any]:
    started_at, stopped_at = row.get("startedAt") or "", row.get("stoppedAt") or ""
    duration = row.get("durationSeconds", -1.0)
    size = row.get("sizeBytes", -1.0)
    return {
        "id": row["recordingId"],
        "sessionId": row.get("sessionId") or None,
        "status": row["status"],
        "startedAt": state.render_time(started_at),
        "stoppedAt": state.render_time(stopped_at),
        # Dyte's documented UPLOADED example says 0 for a 47-second recording: 0 means unknown.
        "durationSeconds": round(duration) if duration > 0 else state.seconds_between(started_at, stopped_at),
        "sizeBytes": int(size) if size >= 0 else None,
        "downloadUrl": row.get("downloadUrl") or None,
        "downloadUrlExpiresAt": state.render_time(row.get("downloadUrlExpiresAt")),
    }


def _page(entries: list[tuple[Position, dict[str, Any]]], limit: int, position: Position | None) -> dict[str, Any]:
    entries.sort(key=lambda entry: entry[0], reverse=True)
    if position is not None:
        entries = [entry for entry in entries if entry[0] < position]
    page = entries[:limit]
    more = len(entries) > limit
    return {"items": [item for _, item in page], "nextCursor": _encode_cursor(page[-1][0]) if more else None}


def _encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode("utf-8")).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str | None) -> Position | None:
    if cursor is None:
        return None
    try:
        if len(cursor) > MAX_CURSOR_CHARACTERS:
            raise ValueError("too long")
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise problems.Validation("The cursor is not valid.") from None
    if not (isinstance(position, list) and len(position) == 2 and all(isinstance(part, str) for part in position)):
        raise problems.Validation("The cursor is not valid.")
    return position[0], position[1]

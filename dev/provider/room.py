"""The local room: what the SPA talks to in local mode instead of the providers' UI kits, and the recordings' files.

Routes (CORS for any origin), authenticated with the participant token the stand-in issued (the app's join
answer's `authToken`) as `Authorization: Bearer <token>`; each answers the room as that participant sees it:

- `POST /__room/enter`: present (a session starts if none is live), or `waiting` when the preset has a
  waiting room and nobody admitted them; 409 when the meeting is INACTIVE.
- `GET /__room/state`, `POST /__room/leave` (the last one out ends the session).
- `POST /__room/admit` `{"participantId"}`: a present participant whose preset accepts waiting requests
  admits a waiting one; 403 for anyone else.

The room is the meeting's live session in `model.Tenant`, so the provider API and the room see and change the
same people, and the same webhooks go out. `/__files/recordings/{id}?expires=...&sig=...` serves a recording's
bytes (generated, deterministic) behind an expiring HMAC-signed link, as the providers' presigned storage
links do; `GET /recordings/{id}` of the provider API answers a fresh one. Byte ranges are served as S3 and R2
serve them (`Range: bytes=N-` or `bytes=N-M`, 206 with `Content-Range`), so a download can resume.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import jwt

from dev.provider.model import ApiError, Meeting, Participant, Tenant

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}
BLOCK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class RoomError(Exception):
    """A room answer other than the state: `{"error": message}` with its status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def identify(
    tenants: Mapping[str, Tenant], token_keys: Mapping[str, Any], authorization: str
) -> tuple[Tenant, Meeting, Participant]:
    """The tenant, meeting and participant a bearer token names; RoomError 401 for any token that may not enter."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RoomError(401, "a participant token is required: Authorization: Bearer <authToken>")
    token = token.strip()
    for mode, key in token_keys.items():
        try:
            # `iat` may be a little ahead: see `Tenant._issue_token`.
            claims = jwt.decode(token, key.public_key(), algorithms=["RS256"], options={"verify_iat": False})
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise RoomError(401, "the participant token has expired") from None
        except jwt.InvalidTokenError:
            break
        tenant = tenants[mode]
        meeting = tenant.meetings.get(str(claims.get("meetingId", "")))
        participant = meeting.participants.get(str(claims.get("participantId", ""))) if meeting else None
        if participant is None:
            raise RoomError(401, "the participant was deleted")
        if tenant.switches.refresh_revokes_old_token and token != participant.token:
            raise RoomError(401, "the participant token was superseded by a newer one")
        return tenant, meeting, participant
    raise RoomError(401, "not a participant token of this provider")


def act(tenant: Tenant, meeting: Meeting, participant: Participant, action: str, body: Any) -> dict[str, Any]:
    """Do `action` (enter, state, leave, admit) as `participant`; the room as they then see it."""
    try:
        if action == "enter":
            tenant.enter(meeting, participant)
        elif action == "leave":
            tenant.leave(meeting, participant)
        elif action == "admit":
            if not isinstance(body, dict) or not isinstance(body.get("participantId"), str):
                raise RoomError(400, 'the body must be {"participantId": "..."}')
            if not tenant.can_admit(meeting, participant):
                raise RoomError(403, "only a present participant whose preset accepts waiting requests may admit")
            tenant.admit(meeting, body["participantId"])
    except ApiError as error:
        raise RoomError(error.status, error.message) from None
    return state(tenant, meeting, participant)


def state(tenant: Tenant, meeting: Meeting, participant: Participant) -> dict[str, Any]:
    session = meeting.session
    if session is not None and participant.id in session.live:
        mine = "present"
    elif participant.id in meeting.waiting:
        mine = "waiting"
    else:
        mine = meeting.gone.get(participant.id, "left")  # never entered: not in the call either
    can_admit = tenant.can_admit(meeting, participant)
    people = meeting.participants
    return {
        "mode": tenant.mode,
        "meetingId": meeting.id,
        "sessionId": session.id if session else None,
        "me": {
            "participantId": participant.id,
            "name": participant.name or "",
            "preset": participant.preset_name,
            "state": mine,
        },
        "canAdmit": can_admit,
        "present": [
            {"participantId": pid, "name": people[pid].name or "", "preset": people[pid].preset_name}
            for pid in (session.live if session else ())
        ],
        "waiting": [{"participantId": pid, "name": people[pid].name or ""} for pid in meeting.waiting]
        if can_admit
        else [],
    }


# Recording files


def link(base_url: str, secret: bytes, recording_id: str, expires: int) -> tuple[str, str]:
    """A recording's download link valid until `expires` (epoch seconds), and that time as RFC 3339."""
    query = f"expires={expires}&sig={_signature(secret, recording_id, expires)}"
    expiry = datetime.fromtimestamp(expires, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{base_url}/__files/recordings/{recording_id}?{query}", expiry


def check_link(secret: bytes, recording_id: str, query: Mapping[str, list[str]], now: float) -> None:
    """RoomError 403 unless the link is ours and has not expired."""
    try:
        expires = int(query.get("expires", [""])[-1])
    except ValueError:
        raise RoomError(403, "not a valid download link") from None
    given = query.get("sig", [""])[-1]
    if not hmac.compare_digest(given.encode(), _signature(secret, recording_id, expires).encode()):
        raise RoomError(403, "not a valid download link")
    if now > expires:
        raise RoomError(403, "the download link has expired; ask the recordings API for a fresh one")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte a `Range` header asks for; None for the whole file; RoomError 416 when unsatisfiable."""
    match = _RANGE.fullmatch((header or "").strip())
    if match is None:
        return None  # absent, or a form this stand-in does not serve: the whole file, as servers may answer
    first = int(match.group(1))
    last = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    if first >= size or last < first:
        raise RoomError(416, "range not satisfiable")
    return first, last


def content(recording_id: str, size: int, first: int = 0, last: int | None = None) -> Iterator[bytes]:
    """Bytes `first`..`last` of a recording: the same for the same id and size, generated block by block."""
    last = size - 1 if last is None else last
    index, skip = divmod(first, BLOCK)
    while index * BLOCK <= last:
        start = index * BLOCK
        block = hashlib.shake_256(f"{recording_id}:{index}".encode()).digest(min(BLOCK, size - start))
        yield block[skip : last - start + 1]
        skip = 0
        index += 1


def _signature(secret: bytes, recording_id: str, expires: int) -> str:
    digest = hmac.new(secret, f"{recording_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

"""What a webhook delivery says, and how it merges into the stored state: pure functions, no I/O.

A delivery becomes an `Event` (lenient about the provider's mixed formats), the event becomes
partial rows (`facts`), and partial rows merge into stored rows (`merge`). Every merged property
group is a maximum or a minimum over a total order, so merging is commutative, associative and
idempotent: any permutation of the same deliveries, with any duplicates, ends in the same rows.

Rows live in one partition per provider meeting (table `MeetingActivity`, see docs/data-model.md):

- `s|{session}`: a session (`sessionId`, `startedAt`, `endedAt`, `endReason`)
- `t|{session}|{peer}`: one join interval of one peer in one session
- `r|{recording}`: a recording

Times are stored as fixed-width UTC strings (`stamp`), so that comparing strings compares instants.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.schema import interval_key, recording_key, session_key
from shared.times import stamp

MEETING_STARTED = "meeting.started"
MEETING_ENDED = "meeting.ended"
PARTICIPANT_JOINED = "meeting.participantJoined"
PARTICIPANT_LEFT = "meeting.participantLeft"
RECORDING_STATUS = "recording.statusUpdate"
# The events that change state; the provider's other events are recorded and acknowledged only.
HANDLED = (MEETING_STARTED, MEETING_ENDED, PARTICIPANT_JOINED, PARTICIPANT_LEFT, RECORDING_STATUS)
SESSION_EVENTS = (MEETING_STARTED, MEETING_ENDED, PARTICIPANT_JOINED, PARTICIPANT_LEFT)

# The contract's order of recording states; RECORDING and PAUSED tie, and ties go to the later event.
RECORDING_RANK = {"INVOKED": 0, "RECORDING": 1, "PAUSED": 1, "UPLOADING": 2, "ERRORED": 3, "UPLOADED": 4}

MAX_ID_CHARACTERS = 256
MAX_NAME_CHARACTERS = 200
MAX_REASON_CHARACTERS = 100
MAX_URL_CHARACTERS = 4096
MAX_COUNT = 2.0**53  # counts are stored as doubles: exact up to here

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DATE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*([Zz]|[+-]\d{2}:?\d{2})?")
_EPOCH = re.compile(r"\d{9,17}(?:\.\d+)?")
_DECIMAL = re.compile(r"\d{1,16}(?:\.\d+)?")
# Dyte's stopReason is a Python-repr-like dict in a string: "{'reason':'ALL_PEERS_LEFT','caller':{...}}".
_REPR_REASON = re.compile(r"""['"]reason['"]\s*:\s*['"]([^'"]{1,100})['"]""")
_BARE_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,99}")


# Lenient parsing -------------------------------------------------------------------------------


def instant(value: Any) -> str:
    """A provider timestamp as a stamp, or "" when it is none.

    Accepts `2022-12-13T06:57:09.736Z`, `2023-04-14 04:46:08.306221Z` (space, microseconds), other
    offsets, no offset (taken as UTC) and epoch numbers or digit strings (milliseconds when large).
    """
    if isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str) or len(value) > 64:
        return ""
    text = value.strip()
    if _EPOCH.fullmatch(text):
        return _from_epoch(float(text))
    match = _DATE_TIME.fullmatch(text)
    if not match:
        return ""
    date, clock, zone = match.groups()
    clock = re.sub(r"\.(\d{6})\d+", r".\1", clock)  # fromisoformat takes at most microseconds
    if zone is None or zone in "Zz":
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        parsed = datetime.fromisoformat(f"{date}T{clock}{zone}")
    except ValueError:
        return ""
    return stamp(parsed) if 1970 <= parsed.astimezone(UTC).year <= 9999 else ""


def _from_epoch(number: float) -> str:
    if not math.isfinite(number) or number <= 0:
        return ""
    seconds = number / 1000 if number >= 1e11 else number  # 1e11 s is the year 5138; 1e11 ms is 1973
    try:
        parsed = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    return stamp(parsed) if parsed.year <= 9999 else ""


def count(value: Any) -> float | None:
    """A non-negative number sent as a number or as a string (`"fileSize": "2044680"`), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        value = float(value.strip())
    if isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= MAX_COUNT:
        return float(value)
    return None


def ident(value: Any) -> str:
    """A provider identifier fit to store and to hash into a key, or ""."""
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARACTERS and not _CONTROL.search(value):
        return value
    return ""


def text(value: Any, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def url(value: Any) -> str:
    """An http(s) URL to hand to clients, or "" (never a `javascript:` or other scheme)."""
    if isinstance(value, str) and len(value) <= MAX_URL_CHARACTERS and re.match(r"https?://[^\s]+$", value):
        return value
    return ""


def stop_reason(value: Any) -> str:
    """The `reason` of a recording's stopReason: a dict, a Python-repr-like string (not JSON), or a bare word."""
    if isinstance(value, dict):
        return text(value.get("reason"), MAX_REASON_CHARACTERS)
    if not isinstance(value, str):
        return ""
    match = _REPR_REASON.search(value[:2000])
    if match:
        return match.group(1)
    return value.strip() if _BARE_REASON.fullmatch(value.strip()) else ""


# Events ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Participant:
    peer_id: str
    custom_participant_id: str
    name: str
    joined_at: str
    left_at: str


@dataclass(frozen=True)
class Recording:
    id: str
    session_id: str
    status: str
    started_at: str
    stopped_at: str
    duration_seconds: float | None
    size_bytes: float | None
    download_url: str
    download_url_expires_at: str
    stop_reason: str


@dataclass(frozen=True)
class Event:
    name: str
    provider_meeting_id: str
    session_id: str
    started_at: str
    ended_at: str
    end_reason: str
    received_at: str
    participant: Participant | None = None
    recording: Recording | None = None


class Malformed(ValueError):
    """The body is not a JSON object."""


def document(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Malformed("not JSON (UTF-8)") from None
    if not isinstance(parsed, dict):
        raise Malformed("not a JSON object")
    return parsed


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def event_name(payload: Mapping[str, Any]) -> str:
    return text(payload.get("event"), 100)


def parse(payload: Mapping[str, Any], received_at: str) -> Event | None:
    """The handled event in `payload`, or None when it is not one or lacks the ids it needs.

    Where a time is missing, the delivery's first receipt stands in, so every session has a start and an
    end once it ended (see `_session_start`). A participant event without `meeting.sessionId` (an older
    payload) parses with an empty `session_id`: only the applier can place it (`session_at`, `in_session`).
    """
    name = event_name(payload)
    if name not in HANDLED:
        return None
    meeting = payload.get("meeting") if isinstance(payload.get("meeting"), dict) else {}
    provider_meeting_id = ident(meeting.get("id"))
    recording = payload.get("recording")
    if not provider_meeting_id and name == RECORDING_STATUS and isinstance(recording, dict):
        provider_meeting_id = ident(recording.get("meetingId"))
    if not provider_meeting_id:
        return None
    session_id = ident(meeting.get("sessionId"))
    ended = name == MEETING_ENDED
    event = Event(
        name=name,
        provider_meeting_id=provider_meeting_id,
        session_id=session_id,
        started_at=instant(meeting.get("startedAt")),
        # A meeting.ended without endedAt still ended: the time it was first received stands in.
        ended_at=(instant(meeting.get("endedAt")) or received_at) if ended else "",
        end_reason=text(payload.get("reason"), MAX_REASON_CHARACTERS) if ended else "",
        received_at=received_at,
    )
    if name in (PARTICIPANT_JOINED, PARTICIPANT_LEFT):
        event = _with_participant(event, payload.get("participant"))
    elif name == RECORDING_STATUS:
        return _with_recording(event, recording)
    elif not session_id:
        return None
    return _session_start(event) if event is not None else None


def _session_start(event: Event) -> Event:
    """A session event without `meeting.startedAt` (older payloads) still says when, at the latest, its session
    started: at its own earliest time (a join, a leave, the end) or else when it was first received. Session
    starts merge by the minimum, so a real `startedAt` from any other event of the session wins."""
    if event.started_at:
        return event
    own = [event.ended_at, event.received_at]
    if event.participant is not None:
        own += [event.participant.joined_at, event.participant.left_at]
    return replace(event, started_at=min(value for value in own if value))


def _with_participant(event: Event, participant: Any) -> Event | None:
    if not isinstance(participant, dict) or not ident(participant.get("peerId")):
        return None
    joined = event.name == PARTICIPANT_JOINED
    return replace(
        event,
        participant=Participant(
            peer_id=ident(participant.get("peerId")),
            # clientSpecificId is the deprecated name of the same value.
            custom_participant_id=ident(participant.get("customParticipantId"))
            or ident(participant.get("clientSpecificId")),
            name=text(participant.get("userDisplayName"), MAX_NAME_CHARACTERS),
            # A join without joinedAt happened by the time it was first received; a leave without leftAt too.
            joined_at=instant(participant.get("joinedAt")) or (event.received_at if joined else ""),
            # An explicit leftAt is a fact wherever it comes (a v1 webhook log shows it on a join).
            left_at=instant(participant.get("leftAt")) or ("" if joined else event.received_at),
        ),
    )


def session_at(sessions: Iterable[Mapping[str, Any]], at: str) -> str:
    """The id of the only session, among a meeting's session rows, that was live at stamp `at` (started by
    then, and open or ended since), or "" when none or several were.

    Times, not the order of arrival, decide: applied again (a replay) once the session's own events are in,
    a participant event lands in the same session whatever came first.
    """
    live = {
        row.get("sessionId") or ""
        for row in sessions
        if (row.get("startedAt") or "") <= at and (not row.get("endedAt") or at <= row["endedAt"])
    } - {""}
    return live.pop() if len(live) == 1 else ""


def in_session(event: Event, session_id: str) -> Event:
    """A participant event without a session id, placed in `session_id` (see `session_at`): its interval
    only; what it says of its session's start stays out, since the session was inferred."""
    return replace(event, session_id=session_id, started_at="")


def _with_recording(event: Event, recording: Any) -> Event | None:
    if not isinstance(recording, dict):
        return None
    recording_id = ident(recording.get("id")) or ident(recording.get("recordingId"))
    status = text(recording.get("status"), 20).upper()
    if not recording_id or status not in RECORDING_RANK:
        return None
    return replace(
        event,
        recording=Recording(
            id=recording_id,
            # roomUUID names the session too, but the meeting object's sessionId comes first: Dyte's own
            # UPLOADED example has a roomUUID that differs from it, and a recording belongs to the session
            # the meeting.* events name.
            session_id=event.session_id or ident(recording.get("roomUUID")),
            status=status,
            started_at=instant(recording.get("startedTime")),
            stopped_at=instant(recording.get("stoppedTime")),
            duration_seconds=count(recording.get("recordingDuration")),
            size_bytes=count(recording.get("fileSize")),
            download_url=url(recording.get("downloadUrl")),
            download_url_expires_at=instant(recording.get("downloadUrlExpiry")),
            stop_reason=stop_reason(recording.get("stopReason")),
        ),
    )


# Facts and merging -----------------------------------------------------------------------------


def without_name(event: Event) -> Event:
    """The event with its participant's display name removed (the account was closed)."""
    return dataclasses.replace(event, participant=dataclasses.replace(event.participant, name=""))


def facts(event: Event, user_id: str) -> dict[str, dict[str, Any]]:
    """The partial rows an event contributes, by RowKey (`user_id`: the participant mapped back, or "").

    Nothing for a session event not yet placed in a session (`in_session`).
    """
    rows: dict[str, dict[str, Any]] = {}
    if event.name in SESSION_EVENTS and not event.session_id:
        return rows
    if event.name in SESSION_EVENTS:
        session = {"sessionId": event.session_id, "startedAt": event.started_at}
        if event.ended_at:
            session.update(endedAt=event.ended_at, endReason=event.end_reason)
        rows[session_key(event.session_id)] = session
    participant = event.participant
    if participant is not None:
        interval = {
            "sessionId": event.session_id,
            "peerId": participant.peer_id,
            "customParticipantId": participant.custom_participant_id,
            "userId": user_id,
            "name": participant.name,
            "joinedAt": participant.joined_at,
        }
        if participant.left_at:
            interval["leftAt"] = participant.left_at
        rows[interval_key(event.session_id, participant.peer_id)] = interval
    recording = event.recording
    if recording is not None:
        row: dict[str, Any] = {
            "recordingId": recording.id,
            "sessionId": recording.session_id,
            # The payload has no time of the status change: the delivery's first receipt stands in.
            "statusRank": RECORDING_RANK[recording.status],
            "statusAt": event.received_at,
            "status": recording.status,
            "startedAt": recording.started_at,
            "stoppedAt": recording.stopped_at,
            "stopReason": recording.stop_reason,
        }
        if recording.duration_seconds is not None:
            row["durationSeconds"] = recording.duration_seconds
        if recording.size_bytes is not None:
            row["sizeBytes"] = recording.size_bytes
        if recording.download_url:
            row.update(downloadUrlExpiresAt=recording.download_url_expires_at, downloadUrl=recording.download_url)
        rows[recording_key(recording.id)] = row
    return rows


@dataclass(frozen=True)
class _Group:
    """Properties merged together: the greatest tuple wins, or with `least` the least known value."""

    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    least: bool = False


_GROUPS = (
    _Group(("sessionId",), ("",)),
    _Group(("peerId",), ("",)),
    _Group(("recordingId",), ("",)),
    _Group(("customParticipantId",), ("",)),
    _Group(("userId",), ("",)),
    _Group(("name",), ("",)),
    # The earliest start and join anyone reported; "" (unknown) never wins.
    _Group(("startedAt",), ("",), least=True),
    _Group(("joinedAt",), ("",), least=True),
    # The latest end (with its reason), the latest explicit leave.
    _Group(("endedAt", "endReason"), ("", "")),
    _Group(("leftAt",), ("",)),
    # INVOKED < RECORDING = PAUSED < UPLOADING < ERRORED < UPLOADED, ties by event time.
    _Group(("statusRank", "statusAt", "status"), (-1, "", "")),
    _Group(("stoppedAt",), ("",)),
    _Group(("stopReason",), ("",)),
    _Group(("durationSeconds",), (-1.0,)),
    _Group(("sizeBytes",), (-1.0,)),
    # The download link that expires last.
    _Group(("downloadUrlExpiresAt", "downloadUrl"), ("", "")),
)
PROPERTIES = frozenset(name for group in _GROUPS for name in group.names)


def merge(current: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`current` (a stored row's properties) with `update` (partial rows from `facts`) merged in."""
    merged = {name: value for name, value in current.items() if name in PROPERTIES}
    for group in _GROUPS:
        if group.names[0] not in update:
            continue
        mine = tuple(update[name] for name in group.names)
        theirs = tuple(current.get(name, default) for name, default in zip(group.names, group.defaults, strict=True))
        if group.least:
            known = [value for value in (theirs, mine) if value != group.defaults]
            chosen = min(known) if known else mine
        else:
            chosen = max(theirs, mine)
        merged.update(zip(group.names, chosen, strict=True))
    return merged


# The meeting's summary row: whether any session was ever seen, and which sessions are open now. A session's
# openness is read off its own merged row (open until its `meeting.ended`), which every session event reads and
# writes in the same batch, so the summary ends the same in any order of delivery, and stays as small as the
# number of sessions open at once.


def summarize(summary: Mapping[str, Any], session_id: str, session_row: Mapping[str, Any]) -> dict[str, Any]:
    """The summary row's properties after an event of `session_id`, whose merged row is `session_row`."""
    opened = set(json.loads(summary.get("open") or "[]"))
    key = session_key(session_id)
    if session_row.get("endedAt"):
        opened.discard(key)
    else:
        opened.add(key)
    return {"open": json.dumps(sorted(opened), separators=(",", ":")), "seen": True}


def activity(summary: Mapping[str, Any]) -> str:
    """A meeting's `activity`: live while any session is open, else ended once one was seen, else ""."""
    if not summary.get("seen"):
        return ""
    return "live" if json.loads(summary.get("open") or "[]") else "ended"

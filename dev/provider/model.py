"""The provider's state and rules: one `Tenant` per mode (a Dyte organization or a RealtimeKit app).

Handlers receive requests that already passed the OpenAPI gate and answer `(status, body)` or raise
`ApiError`. Callers hold the stand-in's lock around every call: nothing here is thread-safe alone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

TOKEN_TTL_SECONDS = 100 * 24 * 3600  # what the decoded example token in Dyte's quickstart carries
RECORDING_BYTES = 3 * 1024 * 1024
RECORDING_LINK_TTL_SECONDS = 3600
DEFAULT_PER_PAGE = 20  # Dyte does not document its default page size or maximum
MAX_PER_PAGE = 100

PRESETS = {
    "dyte": ("group_call_host", "group_call_participant", "webinar_presenter", "webinar_viewer"),
    "realtimekit": ("group-call-host", "group-call-participant", "webinar-host", "webinar-participant"),
}

EVENTS = (
    "meeting.started",
    "meeting.ended",
    "meeting.participantJoined",
    "meeting.participantLeft",
    "meeting.chatSynced",
    "recording.statusUpdate",
    "livestreaming.statusUpdate",
    "meeting.transcript",
    "meeting.summary",
)


class ApiError(Exception):
    """An answer in Dyte's error envelope."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"success": False, "error": {"code": self.status, "message": self.message}}


@dataclass
class Switches:
    """Behaviours the provider's documents leave open; each default is the lenient reading."""

    refresh_revokes_old_token: bool = False
    reject_duplicate_custom_participant_id: bool = False
    reject_unknown_fields: bool = False
    token_ttl_seconds: int = TOKEN_TTL_SECONDS
    recording_size_bytes: int = RECORDING_BYTES
    recording_link_ttl_seconds: int = RECORDING_LINK_TTL_SECONDS
    # A slow or broken storage link: bytes per second of a file answer (0: unthrottled), and the number of
    # body bytes after which every file answer stops with its connection closed (0: never).
    recording_bytes_per_second: int = 0
    recording_cut_after_bytes: int = 0

    def update(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            current = getattr(self, name, None)
            if name.startswith("_") or current is None or type(value) is not type(current):
                raise ValueError(f"unknown switch or wrong type: {name}")
            setattr(self, name, value)


def now_iso() -> str:
    return _iso(datetime.now(UTC))


def _iso(instant: datetime) -> str:
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Participant:
    id: str
    custom_participant_id: str
    preset_name: str
    name: str | None
    picture: str | None
    created_at: str
    updated_at: str
    token: str = ""
    last_iat: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "picture": self.picture,
            "custom_participant_id": self.custom_participant_id,
            "preset_name": self.preset_name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class Session:
    id: str
    started_at: str
    live: dict[str, str] = field(default_factory=dict)  # participant id -> peer id
    max_concurrent: int = 0


@dataclass
class Recording:
    id: str
    meeting_id: str
    session_id: str
    status: str
    invoked_time: str
    started_time: str
    stopped_time: str
    file_size: int
    duration_seconds: int
    output_file_name: str


@dataclass
class Meeting:
    id: str
    fields: dict[str, Any]
    created_at: str
    updated_at: str
    participants: dict[str, Participant] = field(default_factory=dict)
    session: Session | None = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, **self.fields, "created_at": self.created_at, "updated_at": self.updated_at}


@dataclass
class Webhook:
    id: str
    name: str
    url: str
    events: list[str]
    enabled: bool
    created_at: str
    updated_at: str

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "events": self.events,
            "enabled": self.enabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class Tenant:
    """One organization's meetings, participants, sessions, recordings and webhooks.

    `link` makes a recording's download link (the server signs it) and its expiry.
    """

    def __init__(
        self,
        mode: str,
        organization_id: str,
        token_key: Any,
        switches: Switches,
        link: Callable[[str], tuple[str, str]] | None = None,
    ):
        self.mode = mode
        self.organization_id = organization_id
        self.token_key = token_key
        self.switches = switches
        self.preset_ids = {name: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{mode}:{name}")) for name in PRESETS[mode]}
        self.meetings: dict[str, Meeting] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.recordings: dict[str, Recording] = {}
        self._link = link

    # Meetings

    def create_meeting(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fields: dict[str, Any] = {
            "title": None,
            "record_on_start": False,
            "live_stream_on_start": False,
            "persist_chat": False,
            "summarize_on_end": False,
        }
        if self.mode == "dyte":
            fields["preferred_region"] = None
        else:
            fields.update(session_keep_alive_time_in_secs=60, transcribe_on_end=False)
        # A null in the body means "the default", which `fields` already holds.
        fields.update({key: value for key, value in body.items() if value is not None})
        fields["status"] = "ACTIVE"
        stamp = now_iso()
        meeting = Meeting(str(uuid.uuid4()), fields, stamp, stamp)
        self.meetings[meeting.id] = meeting
        return 201, _ok(meeting.public())

    def get_meeting(self, meeting_id: str) -> tuple[int, dict[str, Any]]:
        return 200, _ok(self._meeting(meeting_id).public())

    def update_meeting(self, meeting_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        meeting = self._meeting(meeting_id)
        meeting.fields.update(body)
        meeting.updated_at = now_iso()
        return 200, _ok(meeting.public())

    # Participants

    def list_participants(self, meeting_id: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        participants = [p.public() for p in self._meeting(meeting_id).participants.values()]
        return 200, _paged(participants, query)

    def add_participant(self, meeting_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        meeting = self._meeting(meeting_id)
        self._preset(body["preset_name"])
        custom_id = body["custom_participant_id"]
        if self.switches.reject_duplicate_custom_participant_id and any(
            p.custom_participant_id == custom_id for p in meeting.participants.values()
        ):
            raise ApiError(409, f"Participant with custom_participant_id {custom_id} already exists in this meeting")
        stamp = now_iso()
        participant = Participant(
            str(uuid.uuid4()), custom_id, body["preset_name"], body.get("name"), body.get("picture"), stamp, stamp
        )
        meeting.participants[participant.id] = participant
        self._issue_token(meeting, participant)
        return 201, _ok({**participant.public(), "token": participant.token})

    def get_participant(self, meeting_id: str, participant_id: str) -> tuple[int, dict[str, Any]]:
        return 200, _ok(self._participant(meeting_id, participant_id).public())

    def edit_participant(self, meeting_id: str, participant_id: str, body: dict[str, Any]):
        meeting = self._meeting(meeting_id)
        participant = self._participant(meeting_id, participant_id)
        if body.get("preset_name") is not None:
            self._preset(body["preset_name"])
            participant.preset_name = body["preset_name"]
        if "name" in body:
            participant.name = body["name"]
        if "picture" in body:
            participant.picture = body["picture"]
        participant.updated_at = now_iso()
        # The answer carries a token; the token names the preset, so it is a new one.
        self._issue_token(meeting, participant)
        return 200, _ok({**participant.public(), "token": participant.token})

    def delete_participant(self, meeting_id: str, participant_id: str) -> tuple[int, dict[str, Any]]:
        meeting = self._meeting(meeting_id)
        participant = self._participant(meeting_id, participant_id)
        del meeting.participants[participant_id]
        return 200, _ok(
            {
                "custom_participant_id": participant.custom_participant_id,
                "preset_id": self.preset_ids[participant.preset_name],
                "created_at": participant.created_at,
                "updated_at": participant.updated_at,
            }
        )

    def regenerate_token(self, meeting_id: str, participant_id: str) -> tuple[int, dict[str, Any]]:
        participant = self._participant(meeting_id, participant_id)
        self._issue_token(self.meetings[meeting_id], participant)
        return 200, _ok({"token": participant.token})

    def _issue_token(self, meeting: Meeting, participant: Participant) -> None:
        # RS256 over whole-second claims is deterministic: a refresh within the same second would
        # return the very same token, so `iat` moves on by at least a second per issue.
        iat = max(int(time.time()), participant.last_iat + 1)
        claims = {
            "orgId": self.organization_id,
            "meetingId": meeting.id,
            "participantId": participant.id,
            "presetId": self.preset_ids[participant.preset_name],
            "iat": iat,
            "exp": iat + self.switches.token_ttl_seconds,
        }
        participant.token = jwt.encode(claims, self.token_key, algorithm="RS256")
        participant.last_iat = iat

    def check_token(self, claims: dict[str, Any], token: str) -> dict[str, Any]:
        meeting = self.meetings.get(claims.get("meetingId", ""))
        participant = meeting.participants.get(claims.get("participantId", "")) if meeting else None
        if participant is None:
            return {"valid": False, "reason": "participant deleted"}
        if meeting.fields["status"] == "INACTIVE":
            return {"valid": False, "reason": "meeting INACTIVE"}
        if self.switches.refresh_revokes_old_token and token != participant.token:
            return {"valid": False, "reason": "superseded by a newer token"}
        return {"valid": True, "reason": None}

    # Active session

    def start_session(self, meeting_id: str, participant_ids: list[str], custom_ids: list[str]) -> str:
        meeting = self._meeting(meeting_id)
        if meeting.fields["status"] == "INACTIVE":
            raise ApiError(409, f"Meeting {meeting_id} is INACTIVE; nobody can join it")
        joining = [self._participant(meeting_id, pid) for pid in participant_ids]
        joining += [self._by_custom_id(meeting, cid) for cid in custom_ids]
        if meeting.session is None:
            meeting.session = Session(str(uuid.uuid4()), now_iso())
        session = meeting.session
        for participant in joining:
            session.live.setdefault(participant.id, str(uuid.uuid4()))
        session.max_concurrent = max(session.max_concurrent, len(session.live))
        return session.id

    def active_session(self, meeting_id: str) -> tuple[int, dict[str, Any]]:
        meeting, session = self._live(meeting_id)
        started = datetime.fromisoformat(session.started_at.replace("Z", "+00:00"))
        stamp = now_iso()
        return 200, _ok(
            {
                "id": session.id,
                "associated_id": meeting.id,
                "meeting_display_name": meeting.fields.get("title") or "",
                "type": "meeting",
                "status": "LIVE",
                "live_participants": len(session.live),
                "max_concurrent_participants": session.max_concurrent,
                "minutes_consumed": round((datetime.now(UTC) - started).total_seconds() / 60, 4),
                "organization_id": self.organization_id,
                "started_at": session.started_at,
                "created_at": session.started_at,
                "updated_at": stamp,
            }
        )

    def kick(self, meeting_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        meeting, session = self._live(meeting_id)
        if body.get("participant_ids"):
            wanted = [(pid, meeting.participants.get(pid)) for pid in body["participant_ids"]]
        elif body.get("custom_participant_ids"):
            by_custom = {p.custom_participant_id: p for p in meeting.participants.values() if p.id in session.live}
            wanted = [(cid, by_custom.get(cid)) for cid in body["custom_participant_ids"]]
        else:
            raise ApiError(400, 'BAD_REQUEST: "participant_ids" or "custom_participant_ids" is required')
        for given, participant in wanted:
            if participant is None or participant.id not in session.live:
                raise ApiError(404, f"No user found with id {given}")
        kicked = []
        for _, participant in wanted:
            # A SessionParticipant: its `id` is the peer's; name and picture are not nullable there.
            entry = {k: v for k, v in participant.public().items() if v is not None}
            kicked.append({**entry, "id": session.live.pop(participant.id), "user_id": participant.id})
        return 200, _ok({"action": "kick", "participants": kicked})

    def kick_all(self, meeting_id: str) -> tuple[int, dict[str, Any]]:
        meeting, session = self._live(meeting_id)
        meeting.session = None
        return 200, _ok({"action": "kick-all", "kicked_participants_count": len(session.live)})

    # Recordings

    def record(self, meeting_id: str, session_id: str, duration_seconds: int = 47) -> Recording:
        """A recording of the session, stopped and uploaded: what `record_on_start` leaves once a session ends."""
        meeting = self._meeting(meeting_id)
        stopped = datetime.now(UTC)
        started = stopped - timedelta(seconds=duration_seconds)
        recording = Recording(
            id=str(uuid.uuid4()),
            meeting_id=meeting.id,
            session_id=session_id,
            status="UPLOADED",
            invoked_time=_iso(started - timedelta(seconds=2)),
            started_time=_iso(started),
            stopped_time=_iso(stopped),
            file_size=self.switches.recording_size_bytes,
            duration_seconds=duration_seconds,
            output_file_name=f"{meeting.id}_{int(started.timestamp() * 1000)}.mp4",
        )
        self.recordings[recording.id] = recording
        return recording

    def get_recording(self, recording_id: str) -> tuple[int, dict[str, Any]]:
        recording = self.recordings.get(recording_id)
        if recording is None:
            raise ApiError(404, f"No recording found with id {recording_id}")
        # Every read signs a fresh link, as the providers' storage links are presigned per answer.
        url, expiry = self._link(recording.id) if self._link and recording.status == "UPLOADED" else (None, None)
        return 200, _ok(
            {
                "id": recording.id,
                "download_url": url,
                "download_url_expiry": expiry,
                "audio_download_url": None,
                "file_size": recording.file_size,
                "session_id": recording.session_id,
                "output_file_name": recording.output_file_name,
                "status": recording.status,
                "invoked_time": recording.invoked_time,
                "started_time": recording.started_time,
                "stopped_time": recording.stopped_time,
                "recording_duration": recording.duration_seconds,
                "start_reason": {"reason": "RECORD_ON_START"},
                "stop_reason": {"reason": "ALL_PEERS_LEFT"},
            }
        )

    # Webhooks

    def list_webhooks(self) -> tuple[int, dict[str, Any]]:
        return 200, _ok([hook.public() for hook in self.webhooks.values()])

    def add_webhook(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        stamp = now_iso()
        hook = Webhook(
            str(uuid.uuid4()), body["name"], body["url"], list(body["events"]), body.get("enabled", True), stamp, stamp
        )
        self.webhooks[hook.id] = hook
        return 201, _ok(hook.public())

    def get_webhook(self, webhook_id: str) -> tuple[int, dict[str, Any]]:
        return 200, _ok(self._webhook(webhook_id).public())

    def replace_webhook(self, webhook_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        hook = self._webhook(webhook_id)
        hook.enabled = True
        return self.edit_webhook(webhook_id, body)

    def edit_webhook(self, webhook_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        hook = self._webhook(webhook_id)
        for name in ("name", "url", "enabled"):
            if name in body:
                setattr(hook, name, body[name])
        if "events" in body:
            hook.events = list(body["events"])
        hook.updated_at = now_iso()
        return 200, _ok(hook.public())

    def delete_webhook(self, webhook_id: str) -> tuple[int, dict[str, Any]]:
        return 200, _ok(self.webhooks.pop(self._webhook(webhook_id).id).public())

    # Look-ups

    def _meeting(self, meeting_id: str) -> Meeting:
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            raise ApiError(404, f"No meeting found for meeting_id {meeting_id}")
        return meeting

    def _participant(self, meeting_id: str, participant_id: str) -> Participant:
        participant = self._meeting(meeting_id).participants.get(participant_id)
        if participant is None:
            raise ApiError(404, f"No participant found with id {participant_id}")
        return participant

    def _by_custom_id(self, meeting: Meeting, custom_id: str) -> Participant:
        for participant in meeting.participants.values():
            if participant.custom_participant_id == custom_id:
                return participant
        raise ApiError(404, f"No participant found with custom_participant_id {custom_id}")

    def _live(self, meeting_id: str) -> tuple[Meeting, Session]:
        meeting = self._meeting(meeting_id)
        if meeting.session is None:
            raise ApiError(404, f"No active session found for meeting_id {meeting_id}")
        return meeting, meeting.session

    def _preset(self, name: str) -> None:
        if name not in self.preset_ids:
            raise ApiError(404, f"No preset found with name {name}")

    def _webhook(self, webhook_id: str) -> Webhook:
        hook = self.webhooks.get(webhook_id)
        if hook is None:
            raise ApiError(404, f"No webhook found with id {webhook_id}")
        return hook


def _ok(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


def _paged(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    """Dyte's paging: `page_no` from 1 (0 reads as 1; the base is undocumented), 1-based offsets."""
    page_no = max(1, int(float(query.get("page_no", ["1"])[-1] or 1)))
    per_page = int(float(query.get("per_page", [str(DEFAULT_PER_PAGE)])[-1] or DEFAULT_PER_PAGE))
    per_page = min(MAX_PER_PAGE, per_page or DEFAULT_PER_PAGE)
    start = (page_no - 1) * per_page
    page = items[start : start + per_page]
    paging = {
        "total_count": len(items),
        "start_offset": start + 1 if page else 0,
        "end_offset": start + len(page) if page else 0,
    }
    return {"success": True, "data": page, "paging": paging}

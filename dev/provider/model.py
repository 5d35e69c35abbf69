"""The provider's state and rules: one `Tenant` per mode (a Dyte organization or a RealtimeKit app).

Handlers receive requests that already passed the OpenAPI gate and answer `(status, body)` or raise
`ApiError`. Callers hold the stand-in's lock around every call: nothing here is thread-safe alone.

A meeting's live session is its room: who is present (one peer each), who waits to be admitted, and
what became of those who left. Whatever changes it (the local room entering and leaving, the API
kicking, deleting, changing a preset, ending the session or deactivating the meeting) appends the
webhook payloads the provider would send to `Tenant.outbox`, in order; the server signs and sends them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from dev.provider import webhooks
from dev.provider.webhooks import now_iso

TOKEN_TTL_SECONDS = 100 * 24 * 3600  # what the decoded example token in Dyte's quickstart carries
DEFAULT_PER_PAGE = 20  # Dyte does not document its default page size or maximum
MAX_PER_PAGE = 100
RECORDING_BYTES = 3 * 1024 * 1024
RECORDING_LINK_TTL_SECONDS = 3600

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
# Waiting room types that hold a participant until someone who may accept waiting requests admits them.
# SKIP_ON_ACCEPT is read as "once admitted, skip it from then on" (Dyte does not document it further).
WAITING_ROOMS = ("ON_PRIVILEGED_USER_ENTRY", "SKIP_ON_ACCEPT")
ALL_LEFT, HOST_ENDED = "ALL_PARTICIPANTS_LEFT", "HOST_ENDED_MEETING"


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
    # RealtimeKit answers with only what Cloudflare's schemas require (e.g. no kick-all count, no `data` where
    # it is optional), as a client must expect of them.
    required_answer_fields_only: bool = False
    # Whether a participant whose preset changes while present is dropped from the session (the local room's
    # documented behaviour; off, they stay until kicked, as a provider that only applies it on rejoin would).
    preset_change_drops_peer: bool = True
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
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{name} cannot be negative")
            setattr(self, name, value)


@dataclass
class Preset:
    id: str
    name: str
    config: dict[str, Any]
    ui: dict[str, Any]
    permissions: dict[str, Any]
    created_at: str
    updated_at: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "config": self.config, "ui": self.ui, "permissions": self.permissions}

    def listed(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at, "updated_at": self.updated_at}


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
class Peer:
    """One participant's connection to a session."""

    id: str
    joined_at: str
    # The rights it entered with: a preset change reaches a live peer only when it is dropped or kicked and
    # rejoins (see Switches.preset_change_drops_peer).
    preset_name: str = ""


@dataclass
class Session:
    id: str
    started_at: str
    live: dict[str, Peer] = field(default_factory=dict)  # participant id -> peer
    max_concurrent: int = 0
    recording_id: str | None = None


@dataclass
class Recording:
    id: str
    meeting_id: str
    session_id: str
    status: str
    invoked_time: str
    output_file_name: str
    started_time: str | None = None
    stopped_time: str | None = None
    file_size: int | None = None
    duration_seconds: int | None = None


@dataclass
class Meeting:
    id: str
    fields: dict[str, Any]
    created_at: str
    updated_at: str
    participants: dict[str, Participant] = field(default_factory=dict)
    session: Session | None = None
    waiting: dict[str, str] = field(default_factory=dict)  # participant id -> since
    admitted: set[str] = field(default_factory=set)  # admitted once (SKIP_ON_ACCEPT)
    gone: dict[str, str] = field(default_factory=dict)  # participant id -> left | removed | ended

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
    """One organization's presets, meetings, participants, sessions, recordings and webhooks.

    `presets` seeds the presets (name -> the body `POST /presets` takes); `link` makes a recording's
    signed download link and its expiry.
    """

    def __init__(
        self,
        mode: str,
        organization_id: str,
        token_key: Any,
        switches: Switches,
        presets: Mapping[str, Mapping[str, Any]],
        link: Callable[[str], tuple[str, str]],
    ):
        self.mode = mode
        self.organization_id = organization_id
        self.token_key = token_key
        self.switches = switches
        self.link = link
        stamp = now_iso()
        self.presets: dict[str, Preset] = {
            name: _preset(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{mode}:{name}")), dict(body), stamp)
            for name, body in presets.items()
        }
        self.meetings: dict[str, Meeting] = {}
        self.recordings: dict[str, Recording] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.outbox: list[dict[str, Any]] = []

    # Meetings

    def create_meeting(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        # No `title` unless given: both documents type it as a string, never null.
        fields: dict[str, Any] = {
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
        return 201, _ok(self._shown(meeting.public()))

    def get_meeting(self, meeting_id: str) -> tuple[int, dict[str, Any]]:
        return 200, _ok(self._shown(self._meeting(meeting_id).public()))

    def update_meeting(self, meeting_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        meeting = self._meeting(meeting_id)
        deactivated = body.get("status") == "INACTIVE" and meeting.fields["status"] != "INACTIVE"
        meeting.fields.update(body)
        meeting.updated_at = now_iso()
        if deactivated:
            self._end_for_everyone(meeting)  # nobody may be in an INACTIVE meeting
        return 200, _ok(self._shown(meeting.public()))

    # Participants

    def list_participants(self, meeting_id: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        participants = [self._shown(p.public()) for p in self._meeting(meeting_id).participants.values()]
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
        return 201, _ok(self._shown({**participant.public(), "token": participant.token}))

    def get_participant(self, meeting_id: str, participant_id: str) -> tuple[int, dict[str, Any]]:
        return 200, _ok(self._shown(self._participant(meeting_id, participant_id).public()))

    def edit_participant(self, meeting_id: str, participant_id: str, body: dict[str, Any]):
        meeting = self._meeting(meeting_id)
        participant = self._participant(meeting_id, participant_id)
        if body.get("preset_name") is not None:
            self._preset(body["preset_name"])
            if body["preset_name"] != participant.preset_name and self.switches.preset_change_drops_peer:
                # The providers drop a peer whose preset changes: it rejoins with the new token.
                self._remove(meeting, participant.id, "removed")
            participant.preset_name = body["preset_name"]
        if "name" in body:
            participant.name = body["name"]
        if "picture" in body:
            participant.picture = body["picture"]
        participant.updated_at = now_iso()
        # The answer carries a token; the token names the preset, so it is a new one.
        self._issue_token(meeting, participant)
        return 200, _ok(self._shown({**participant.public(), "token": participant.token}))

    def delete_participant(self, meeting_id: str, participant_id: str) -> tuple[int, dict[str, Any]]:
        meeting = self._meeting(meeting_id)
        participant = self._participant(meeting_id, participant_id)
        self._remove(meeting, participant.id, "removed")
        del meeting.participants[participant_id]
        meeting.gone.pop(participant_id, None)
        meeting.admitted.discard(participant_id)
        preset = self.presets.get(participant.preset_name)
        return 200, _ok(
            {
                "custom_participant_id": participant.custom_participant_id,
                "preset_id": preset.id if preset else str(uuid.uuid5(uuid.NAMESPACE_URL, participant.preset_name)),
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
        preset = self.presets.get(participant.preset_name)
        claims = {
            "orgId": self.organization_id,
            "meetingId": meeting.id,
            "participantId": participant.id,
            "presetId": preset.id if preset else "",
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

    # Presets

    def list_presets(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        return 200, _paged([preset.listed() for preset in self.presets.values()], query)

    def create_preset(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body["name"] in self.presets:
            # Undocumented; a name is how participants refer to a preset, so it must stay unique.
            raise ApiError(409, f"Preset with name {body['name']} already exists")
        preset = _preset(str(uuid.uuid4()), body, now_iso())
        self.presets[preset.name] = preset
        return 200, _ok(preset.public())  # Dyte documents 200, not 201, for this create

    def get_preset(self, preset_id: str) -> tuple[int, dict[str, Any]]:
        return 200, _ok(self._preset_by_id(preset_id).public())

    def delete_preset(self, preset_id: str) -> tuple[int, dict[str, Any]]:
        preset = self._preset_by_id(preset_id)
        del self.presets[preset.name]
        return 200, _ok(preset.public())

    def permissions(self, participant: Participant) -> Mapping[str, Any]:
        preset = self.presets.get(participant.preset_name)
        return preset.permissions if preset else {}

    # The room: who is in the live session

    def start_session(self, meeting_id: str, participant_ids: list[str], custom_ids: list[str]) -> str:
        """People joined, as if through the room but past any waiting room; the session id."""
        meeting = self._meeting(meeting_id)
        self._require_active(meeting)
        joining = [self._participant(meeting_id, pid) for pid in participant_ids]
        joining += [self._by_custom_id(meeting, cid) for cid in custom_ids]
        for participant in joining:
            self._join(meeting, participant)
        return meeting.session.id if meeting.session else ""

    def enter(self, meeting: Meeting, participant: Participant) -> None:
        self._require_active(meeting)
        session = meeting.session
        if (session and participant.id in session.live) or participant.id in meeting.waiting:
            return
        waiting_room = self.permissions(participant).get("waiting_room_type", "SKIP")
        if waiting_room in WAITING_ROOMS and not (
            waiting_room == "SKIP_ON_ACCEPT" and participant.id in meeting.admitted
        ):
            meeting.gone.pop(participant.id, None)
            meeting.waiting[participant.id] = now_iso()  # nothing is sent for a waiting participant
            return
        self._join(meeting, participant)

    def leave(self, meeting: Meeting, participant: Participant) -> None:
        if meeting.waiting.pop(participant.id, None) is not None:
            meeting.gone[participant.id] = "left"
            return
        self._remove(meeting, participant.id, "left")

    def can_admit(self, meeting: Meeting, participant: Participant) -> bool:
        present = meeting.session is not None and participant.id in meeting.session.live
        return present and self.permissions(participant).get("accept_waiting_requests") is True

    def admit(self, meeting: Meeting, participant_id: str) -> None:
        participant = meeting.participants.get(participant_id)
        if participant is None or participant_id not in meeting.waiting:
            raise ApiError(404, f"No waiting participant with id {participant_id}")
        meeting.admitted.add(participant_id)
        self._join(meeting, participant)

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
        """Dyte takes either list, Cloudflare both (one may be empty): the people named in either."""
        meeting, session = self._live(meeting_id)
        participant_ids, custom_ids = body.get("participant_ids") or [], body.get("custom_participant_ids") or []
        if not participant_ids and not custom_ids:
            raise ApiError(400, 'BAD_REQUEST: "participant_ids" or "custom_participant_ids" is required')
        by_custom = {p.custom_participant_id: p for p in meeting.participants.values() if p.id in session.live}
        wanted = [(pid, meeting.participants.get(pid)) for pid in participant_ids]
        wanted += [(cid, by_custom.get(cid)) for cid in custom_ids]
        for given, participant in wanted:
            if participant is None or participant.id not in session.live:
                raise ApiError(404, f"No user found with id {given}")
        kicked: dict[str, dict[str, Any]] = {}
        for _, participant in wanted:
            if participant.id in kicked:
                continue
            # A SessionParticipant: its `id` is the peer's; name and picture are not nullable there.
            entry = {k: v for k, v in participant.public().items() if v is not None}
            kicked[participant.id] = {**entry, "id": session.live[participant.id].id, "user_id": participant.id}
            self._remove(meeting, participant.id, "removed")
        return 200, _ok({"action": "kick", "participants": list(kicked.values())})

    def kick_all(self, meeting_id: str) -> tuple[int, dict[str, Any]]:
        meeting, session = self._live(meeting_id)
        count = len(session.live)
        self._end_for_everyone(meeting)
        return 200, _ok({"action": "kick-all", "kicked_participants_count": count})

    def _join(self, meeting: Meeting, participant: Participant) -> None:
        session = meeting.session
        if session is not None and participant.id in session.live:
            return
        if session is None:
            session = meeting.session = Session(str(uuid.uuid4()), now_iso())
            self._send(
                webhooks.meeting_started(meeting.id, session.id, started_at=session.started_at, **self._of(meeting))
            )
            if meeting.fields.get("record_on_start"):
                self._start_recording(meeting, session)
        meeting.waiting.pop(participant.id, None)
        meeting.gone.pop(participant.id, None)
        peer = session.live[participant.id] = Peer(str(uuid.uuid4()), now_iso(), participant.preset_name)
        session.max_concurrent = max(session.max_concurrent, len(session.live))
        self._send(
            webhooks.participant_joined(
                meeting.id,
                session.id,
                custom_participant_id=participant.custom_participant_id,
                peer_id=peer.id,
                name=participant.name or "",
                joined_at=peer.joined_at,
                started_at=session.started_at,
                **self._of(meeting),
            )
        )

    def _remove(self, meeting: Meeting, participant_id: str, outcome: str, reason: str = ALL_LEFT) -> None:
        """Take a participant out of the session or the waiting room; the session ends with its last peer."""
        if meeting.waiting.pop(participant_id, None) is not None:
            meeting.gone[participant_id] = outcome
        session = meeting.session
        if session is None or participant_id not in session.live:
            return
        peer = session.live.pop(participant_id)
        participant = meeting.participants[participant_id]
        meeting.gone[participant_id] = outcome
        self._send(
            webhooks.participant_left(
                meeting.id,
                session.id,
                custom_participant_id=participant.custom_participant_id,
                peer_id=peer.id,
                name=participant.name or "",
                joined_at=peer.joined_at,
                left_at=now_iso(),
                started_at=session.started_at,
                **self._of(meeting),
            )
        )
        if not session.live:
            self._end_session(meeting, reason)

    def _end_for_everyone(self, meeting: Meeting) -> None:
        """Kick-all, or the meeting deactivated: everyone present or waiting is out, the session ends."""
        for participant_id in list(meeting.waiting):
            self._remove(meeting, participant_id, "ended")
        if meeting.session is not None:
            for participant_id in list(meeting.session.live):
                self._remove(meeting, participant_id, "ended", HOST_ENDED)

    def _end_session(self, meeting: Meeting, reason: str) -> None:
        session = meeting.session
        meeting.session = None
        ended_at = now_iso()
        self._send(
            webhooks.meeting_ended(
                meeting.id,
                session.id,
                reason=reason,
                started_at=session.started_at,
                ended_at=ended_at,
                **self._of(meeting),
            )
        )
        if session.recording_id is not None:
            self._finish_recording(meeting, self.recordings[session.recording_id], ended_at)

    # Recordings

    def record(self, meeting_id: str, session_id: str, duration_seconds: int = 47) -> dict[str, Any]:
        """A recording of the session, stopped and uploaded, as `record_on_start` leaves one once the session ends,
        without a call in the room: its UPLOADED `recording.statusUpdate` payload, not sent (the caller delivers
        it where it wants)."""
        meeting = self._meeting(meeting_id)
        stopped = datetime.now(UTC)
        started = stopped - timedelta(seconds=duration_seconds)
        recording = Recording(
            str(uuid.uuid4()),
            meeting.id,
            session_id,
            "UPLOADED",
            _iso(started - timedelta(seconds=2)),
            f"{meeting.id}_{int(started.timestamp() * 1000)}.mp4",
            started_time=_iso(started),
            stopped_time=_iso(stopped),
            file_size=self.switches.recording_size_bytes,
            duration_seconds=duration_seconds,
        )
        self.recordings[recording.id] = recording
        return self._recording_payload(meeting, recording)

    def get_recording(self, recording_id: str) -> tuple[int, dict[str, Any]]:
        recording = self.recordings.get(recording_id)
        if recording is None:
            raise ApiError(404, f"No recording found with id {recording_id}")
        url, expiry = self.link(recording.id) if recording.status == "UPLOADED" else (None, None)
        data = {
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
            "start_reason": {"reason": "RECORD_ON_START"},
        }
        if recording.duration_seconds is not None:
            data["recording_duration"] = recording.duration_seconds
        if recording.stopped_time is not None:
            data["stop_reason"] = {"reason": "ALL_PEERS_LEFT"}
        return 200, _ok(data)

    def _start_recording(self, meeting: Meeting, session: Session) -> None:
        stamp = now_iso()
        recording = Recording(
            str(uuid.uuid4()), meeting.id, session.id, "INVOKED", stamp, f"{meeting.id}_{int(time.time() * 1000)}.mp4"
        )
        self.recordings[recording.id] = recording
        session.recording_id = recording.id
        self._send_recording(meeting, recording)
        recording.status, recording.started_time = "RECORDING", now_iso()
        self._send_recording(meeting, recording)

    def _finish_recording(self, meeting: Meeting, recording: Recording, stopped_at: str) -> None:
        recording.status, recording.stopped_time = "UPLOADING", stopped_at
        started = datetime.fromisoformat(recording.started_time.replace("Z", "+00:00"))
        stopped = datetime.fromisoformat(stopped_at.replace("Z", "+00:00"))
        recording.duration_seconds = max(0, round((stopped - started).total_seconds()))
        self._send_recording(meeting, recording)
        recording.status, recording.file_size = "UPLOADED", self.switches.recording_size_bytes
        self._send_recording(meeting, recording)

    def _send_recording(self, meeting: Meeting, recording: Recording) -> None:
        self._send(self._recording_payload(meeting, recording))

    def _recording_payload(self, meeting: Meeting, recording: Recording) -> dict[str, Any]:
        link: dict[str, Any] = {}
        if recording.status == "UPLOADED":
            url, expiry = self.link(recording.id)
            link = {"download_url": url, "download_url_expiry": expiry, "file_size": recording.file_size}
        return webhooks.recording_status(
            meeting.id,
            recording.session_id,
            status=recording.status,
            recording_id=recording.id,
            mode=self.mode,
            organization_id=self.organization_id,
            duration_seconds=recording.duration_seconds or 0,
            started_time=_spaced(recording.started_time),
            stopped_time=_spaced(recording.stopped_time),
            title=meeting.fields.get("title") or "",
            **link,
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

    def _send(self, payload: dict[str, Any]) -> None:
        self.outbox.append(payload)

    def _of(self, meeting: Meeting) -> dict[str, Any]:
        """The meeting object's fields every payload about it carries."""
        return {"mode": self.mode, "title": meeting.fields.get("title") or ""}

    # Look-ups

    def _shown(self, answer: dict[str, Any]) -> dict[str, Any]:
        """An answer as this mode shows it: Cloudflare's schemas type names and titles as strings, never null."""
        if self.mode == "realtimekit":
            return {key: value for key, value in answer.items() if value is not None}
        return answer

    def _meeting(self, meeting_id: str) -> Meeting:
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            raise ApiError(404, f"No meeting found for meeting_id {meeting_id}")
        return meeting

    def _require_active(self, meeting: Meeting) -> None:
        if meeting.fields["status"] == "INACTIVE":
            raise ApiError(409, f"Meeting {meeting.id} is INACTIVE; nobody can join it")

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

    def _preset(self, name: str) -> Preset:
        preset = self.presets.get(name)
        if preset is None:
            raise ApiError(404, f"No preset found with name {name}")
        return preset

    def _preset_by_id(self, preset_id: str) -> Preset:
        preset = next((preset for preset in self.presets.values() if preset.id == preset_id), None)
        if preset is None:
            raise ApiError(404, f"No preset found with id {preset_id}")
        return preset

    def _webhook(self, webhook_id: str) -> Webhook:
        hook = self.webhooks.get(webhook_id)
        if hook is None:
            raise ApiError(404, f"No webhook found with id {webhook_id}")
        return hook


def _preset(preset_id: str, body: Mapping[str, Any], stamp: str) -> Preset:
    return Preset(
        preset_id,
        body["name"],
        dict(body["config"]),
        dict(body["ui"]),
        dict(body.get("permissions") or {}),
        stamp,
        stamp,
    )


def _iso(instant: datetime) -> str:
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _spaced(iso: str | None) -> str | None:
    """The recording webhook's documented time format: `2023-04-14 04:46:08.306221Z`."""
    return iso.replace("T", " ").replace("Z", "000Z") if iso else None


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

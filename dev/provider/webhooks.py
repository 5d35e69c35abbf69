"""Webhook signing keys, signed delivery and the documented payloads (reference section 3).

Both providers sign the raw body bytes with RSA PKCS#1 v1.5 over SHA-256 and send the base64
signature in a header; only the header prefix and the shape of the key document differ. `deliver`
posts at once and reports; `Outbox` posts in the background, in order, retrying a 5xx or a refused
connection a few times a second apart, as the providers do (Dyte's FAQ: three retries, one second
apart), so that whoever caused the event never waits on the receiver.
"""

from __future__ import annotations

import base64
import contextlib
import queue
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HEADER_PREFIX = {"dyte": "dyte", "realtimekit": "rtk"}
DELIVERY_TIMEOUT = 3.0  # Dyte gives a receiver 3 s to answer 2xx
RETRIES = 3
ORGANIZER = {"id": "70c5d391-5bca-4cf3-9907-bec205798adb", "name": "Local organization"}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def key_document(mode: str, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """What `/.well-known/webhooks.json` answers: Dyte's shape is third-party knowledge, RTK's documented."""
    if mode == "dyte":
        return {"success": True, "data": {"signing_keys": [{"public_key": public_pem(key)}]}}
    return {"success": True, "data": {"publicKey": public_pem(key)}, "message": ""}


def sign(key: rsa.RSAPrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def headers(mode: str, key: rsa.RSAPrivateKey, body: bytes, webhook_id: str) -> dict[str, str]:
    """The headers of one delivery (the header names of `mode`), with a fresh delivery id."""
    prefix = HEADER_PREFIX[mode]
    return {
        "Content-Type": "application/json",
        f"{prefix}-signature": sign(key, body),
        f"{prefix}-uuid": str(uuid.uuid4()),
        f"{prefix}-webhook-id": webhook_id,
    }


def _post(session: requests.Session, url: str, body: bytes, sent: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {"url": url, "uuid": sent[next(name for name in sent if name.endswith("-uuid"))]}
    try:
        answer = session.post(url, data=body, headers=sent, timeout=(3.05, DELIVERY_TIMEOUT))
        result.update(status=answer.status_code, error=None)
    except requests.RequestException as error:
        result.update(status=None, error=error.__class__.__name__)
    return result


def deliver(
    mode: str, key: rsa.RSAPrivateKey, targets: list[tuple[str, str]], body: bytes, copies: int
) -> list[dict[str, Any]]:
    """POST the body signed with `key` under `mode`'s header names to each (url, webhook id), `copies` times
    each with the same delivery id."""
    results = []
    with requests.Session() as session:
        for url, webhook_id in targets:
            sent = headers(mode, key, body, webhook_id)
            for _ in range(copies):
                results.append({**_post(session, url, body, sent), "webhook_id": webhook_id})
    return results


@dataclass(frozen=True)
class _Letter:
    mode: str
    event: str
    url: str
    webhook_id: str
    body: bytes
    headers: dict[str, str]


class Outbox:
    """Signed deliveries posted by one background thread, in the order they were sent."""

    def __init__(self, retry_delay: float = 1.0):
        self._retry_delay = retry_delay
        self._queue: queue.Queue[_Letter | None] = queue.Queue()
        self._log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="webhook-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._thread = None

    def send(self, mode: str, key: rsa.RSAPrivateKey, targets: list[tuple[str, str]], body: bytes, event: str):
        for url, webhook_id in targets:
            self._queue.put(_Letter(mode, event, url, webhook_id, body, headers(mode, key, body, webhook_id)))

    def clear(self) -> None:
        """Forget what is queued and what was sent (a reset of the stand-in)."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
                self._queue.task_done()
        with self._lock:
            self._log.clear()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was posted (or given up); whether it was in time."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        return done.wait(timeout)

    def log(self) -> list[dict[str, Any]]:
        """Every posting so far: mode, event, url, webhook id, delivery id, status (None: no answer), attempts."""
        with self._lock:
            return [dict(entry) for entry in self._log]

    def _run(self) -> None:
        with requests.Session() as session:
            while True:
                letter = self._queue.get()
                try:
                    if letter is None:
                        return
                    self._post(session, letter)
                finally:
                    self._queue.task_done()

    def _post(self, session: requests.Session, letter: _Letter) -> None:
        attempts = 0
        while True:
            attempts += 1
            result = _post(session, letter.url, letter.body, letter.headers)
            retry = result["status"] is None or result["status"] >= 500
            if not retry or attempts > RETRIES or self._stopping.wait(self._retry_delay):
                break
        entry = {"mode": letter.mode, "event": letter.event, "webhook_id": letter.webhook_id, "attempts": attempts}
        with self._lock:
            self._log.append({**result, **entry})


# Payload builders. Timestamps default to now; pass strings to control ordering.


def meeting_started(
    meeting_id: str,
    session_id: str,
    *,
    mode: str = "dyte",
    title: str = "Meeting title",
    started_at: str | None = None,
    organizer: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {"event": "meeting.started", "meeting": _meeting(mode, meeting_id, session_id, title, started_at, organizer)}


def meeting_ended(
    meeting_id: str,
    session_id: str,
    *,
    reason: str = "ALL_PARTICIPANTS_LEFT",
    mode: str = "dyte",
    title: str = "Meeting title",
    started_at: str | None = None,
    ended_at: str | None = None,
    organizer: dict[str, str] | None = None,
) -> dict[str, Any]:
    meeting = _meeting(mode, meeting_id, session_id, title, started_at, organizer, ended_at=ended_at or now_iso())
    return {"event": "meeting.ended", "meeting": meeting, "reason": reason}


def participant_joined(
    meeting_id: str,
    session_id: str,
    *,
    custom_participant_id: str,
    peer_id: str | None = None,
    name: str = "Participant",
    joined_at: str | None = None,
    mode: str = "dyte",
    title: str = "Meeting title",
    started_at: str | None = None,
    organizer: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "event": "meeting.participantJoined",
        "meeting": _meeting(mode, meeting_id, session_id, title, started_at, organizer),
        "participant": _participant(custom_participant_id, peer_id, name, joined_at),
    }


def participant_left(
    meeting_id: str,
    session_id: str,
    *,
    custom_participant_id: str,
    peer_id: str | None = None,
    name: str = "Participant",
    joined_at: str | None = None,
    left_at: str | None = None,
    mode: str = "dyte",
    title: str = "Meeting title",
    started_at: str | None = None,
    organizer: dict[str, str] | None = None,
) -> dict[str, Any]:
    participant = {**_participant(custom_participant_id, peer_id, name, joined_at), "leftAt": left_at or now_iso()}
    return {
        "event": "meeting.participantLeft",
        "meeting": _meeting(mode, meeting_id, session_id, title, started_at, organizer),
        "participant": participant,
    }


def recording_status(
    meeting_id: str,
    session_id: str,
    *,
    status: str,
    recording_id: str | None = None,
    mode: str = "dyte",
    organization_id: str = "local-org",
    file_size: int = 2044680,
    duration_seconds: int = 47,
    started_time: str | None = None,
    stopped_time: str | None = None,
    title: str = "Meeting title",
    organizer: dict[str, str] | None = None,
    download_url: str | None = None,
    download_url_expiry: str | None = None,
) -> dict[str, Any]:
    """`recording.statusUpdate`: the fields grow with the status, as in the documented examples."""
    recording_id = recording_id or str(uuid.uuid4())
    recording: dict[str, Any] = {
        "id": recording_id,
        "status": status,
        "roomUUID": session_id,
        "meetingId": meeting_id,
        "recordingId": recording_id,
        "organizationId": organization_id,
        "outputFileName": f"{meeting_id}_{recording_id[:8]}.mp4",
    }
    if status != "INVOKED":
        recording["startedTime"] = started_time or _spaced(now_iso())
    if status in ("UPLOADING", "UPLOADED", "ERRORED"):
        recording["stoppedTime"] = stopped_time or _spaced(now_iso())
        recording["stopReason"] = "{'reason':'ALL_PEERS_LEFT','caller':{'type':'INTERNAL'}}"
    if status == "UPLOADED":
        recording.update(
            # RealtimeKit's documented example carries the size as a string.
            fileSize=str(file_size) if mode == "realtimekit" else file_size,
            downloadUrl=download_url or f"https://recordings.invalid/{recording_id}.mp4",
            downloadUrlExpiry=_spaced(download_url_expiry or now_iso()),
            recordingDuration=duration_seconds,
        )
        if download_url is None:
            recording["audioDownloadUrl"] = f"https://recordings.invalid/{recording_id}.mp3"
    meeting = _meeting(mode, meeting_id, session_id, title, None, organizer, ended_at=None)
    return {"event": "recording.statusUpdate", "meeting": meeting, "recording": recording}


def _meeting(
    mode: str,
    meeting_id: str,
    session_id: str,
    title: str,
    started_at: str | None,
    organizer: dict[str, str] | None,
    **ended: str | None,
) -> dict[str, Any]:
    started_at = started_at or now_iso()
    meeting: dict[str, Any] = {"id": meeting_id, "sessionId": session_id, "title": title}
    if mode == "realtimekit":
        meeting["roomName"] = meeting_id  # RTK fills it with the meeting ID; Dyte only for v1 meetings
    meeting.update(status="LIVE", createdAt=started_at, startedAt=started_at)
    if "ended_at" in ended:
        meeting["endedAt"] = ended["ended_at"]
    meeting["organizedBy"] = organizer or ORGANIZER
    return meeting


def _participant(custom_id: str, peer_id: str | None, name: str, joined_at: str | None) -> dict[str, Any]:
    return {
        "peerId": peer_id or str(uuid.uuid4()),
        "userDisplayName": name,
        "clientSpecificId": custom_id,
        "customParticipantId": custom_id,
        "joinedAt": joined_at or now_iso(),
    }


def _spaced(iso: str) -> str:
    """The recording fields' documented format: `2023-04-14 04:46:08.306221Z`."""
    return iso.replace("T", " ").replace("Z", "000Z")

"""Every documented webhook payload (tests/fixtures/webhooks/), signed by the stand-in with its provider's key and
headers, posted to the app over HTTP, applied by its queue function, and read back through the API.

Each sample is aimed at a meeting of our own: the test creates a meeting through the API, lets its owner join
(so the provider has a participant with our `custom_participant_id`), and substitutes before signing:

- every value equal to the sample's meeting id (`meeting.id`, or the flat `meetingId` of `meeting.chatSynced`)
  by our meeting's `providerMeetingId`: so `meeting.roomName` too where RealtimeKit fills it with the id, but
  not the differing `recording.meetingId` of Dyte's UPLOADED example (the meeting object decides);
- the participant's `customParticipantId` and deprecated `clientSpecificId` by the owner's custom id, so the
  interval maps back to the owner's public user id.

Nothing else changes: session ids, peer ids, times, names and links are the documented ones. Every sample runs
against both apps (new meetings on Dyte, new meetings on RealtimeKit): a Dyte-signed sample for a RealtimeKit
meeting is found through the other provider's meetings, as deliveries during the migration need. What each
produces is asserted through `GET /api/meetings/{id}`, `/sessions` and `/recordings`, never by reading tables.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.queue import QueueClient

from dev.provider import webhooks
from shared import times
from shared.provider import ProviderClient
from tests import support
from tests.api.conftest import app_environment

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
RECEIPT = object()  # stands for "the time the app first received the delivery"
NOTHING = {"status": "scheduled", "sessions": [], "recordings": []}


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def session(id_: str, started, ended=None, reason=None, participants=()) -> dict[str, Any]:
    return {"id": id_, "startedAt": started, "endedAt": ended, "endReason": reason, "participants": list(participants)}


def attended(name: str, joined, left=None, seconds=None) -> dict[str, Any]:
    return {"userId": "owner", "name": name, "joinedAt": joined, "leftAt": left, "durationSeconds": seconds}


def recording(id_, session_id, status, started, stopped=None, seconds=None, size=None, url=None, expires=None):
    return {
        "id": id_,
        "sessionId": session_id,
        "status": status,
        "startedAt": started,
        "stoppedAt": stopped,
        "durationSeconds": seconds,
        "sizeBytes": size,
        "downloadUrl": url,
        "downloadUrlExpiresAt": expires,
    }


DYTE_S3 = "https://dyte-recordings-test.s3.ap-south-1.amazonaws.com/"
# What each sample produces. "owner" stands for the owner's public user id; RECEIPT for the first receipt time.
EXPECTED: dict[str, dict[str, Any]] = {
    # Events that change nothing here: recorded and acknowledged (livestreams, chat, transcripts, summaries).
    "dyte-docs--livestreaming.statusUpdate--IDLE": NOTHING,
    "dyte-docs--livestreaming.statusUpdate--LIVE": NOTHING,
    "dyte-docs--livestreaming.statusUpdate--OFFLINE": NOTHING,
    "dyte-docs--meeting.chatSynced": NOTHING,
    "dyte-docs--meeting.summary": NOTHING,
    "dyte-docs--meeting.transcript": NOTHING,
    "rtk-cfdocs--livestreaming.statusUpdate--LIVE": NOTHING,
    "rtk-cfdocs--meeting.chatSynced": NOTHING,
    "rtk-cfdocs--meeting.summary": NOTHING,
    "rtk-cfdocs--meeting.transcript": NOTHING,
    # Sessions and attendance.
    "dyte-docs--meeting.started": {
        "status": "live",
        "sessions": [session("05e57591-d89e-45c9-ae44-08dc1eaad0e0", "2022-12-13T06:57:09.736Z")],
        "recordings": [],
    },
    "dyte-docs--meeting.ended": {
        "status": "ended",
        "sessions": [
            session(
                "05e57591-d89e-45c9-ae44-58dc1eaad0e0",
                "2022-12-13T06:57:09.736Z",
                "2022-12-13T07:04:37.052Z",
                "HOST_ENDED_MEETING",
            )
        ],
        "recordings": [],
    },
    "dyte-docs--meeting.participantJoined": {
        "status": "live",
        "sessions": [
            session(
                "05e57591-d89e-45c9-ae44-78d53eaad0e0",
                "2022-12-13T06:57:09.736Z",
                participants=[attended("John Doe", "2022-12-13T06:57:51.631Z")],
            )
        ],
        "recordings": [],
    },
    "dyte-docs--meeting.participantLeft": {
        "status": "live",  # a leave does not end the session; only its meeting.ended does
        "sessions": [
            session(
                "79365b9b-e5ef-452f-934e-e171d75d254b",
                "2022-12-13T07:00:23.404Z",
                participants=[attended("Mary Sue", "2022-12-13T07:01:41.535Z", "2022-12-13T07:03:42.42Z", 121)],
            )
        ],
        "recordings": [],
    },
    # No meeting.sessionId, no joinedAt, only the deprecated clientSpecificId: with no session live when it came,
    # it cannot be placed and is incomplete (see test_an_older_join_without_a_session_id_joins_the_session_...).
    "dyte-quickstart--meeting.participantJoined": NOTHING,
    # A v1-era start without startedAt: the session starts when the delivery was first received.
    "dyte-v1-webhooklogs-example-1--meeting.started": {
        "status": "live",
        "sessions": [session("544c9d4b-6311-4e00-a5a5-ca0d677e011e", RECEIPT)],
        "recordings": [],
    },
    # A v1-era join that also carries the peer's leftAt, and no startedAt: the join is the earliest known start.
    "dyte-v1-webhooklogs-example-2--meeting.participantJoined": {
        "status": "live",
        "sessions": [
            session(
                "544c9d4b-6311-4e00-a5a5-ca0d677e011e",
                "2022-12-21T14:02:46.924Z",
                participants=[attended("Appleman", "2022-12-21T14:02:46.924Z", "2022-12-21T14:06:42.934Z", 236)],
            )
        ],
        "recordings": [],
    },
    "rtk-cfdocs--meeting.started": {
        "status": "live",
        "sessions": [session("05e57591-d89e-45c9-ae44-08dc1eaad0e0", "2026-06-03T10:00:00Z")],
        "recordings": [],
    },
    "rtk-cfdocs--meeting.ended": {
        "status": "ended",
        "sessions": [
            session(
                "05e57591-d89e-45c9-ae44-08dc1eaad0e0",
                "2026-06-03T10:00:00Z",
                "2026-06-03T10:30:00Z",
                "ALL_PARTICIPANTS_LEFT",
            )
        ],
        "recordings": [],
    },
    "rtk-cfdocs--meeting.participantJoined": {
        "status": "live",
        "sessions": [
            session(
                "05e57591-d89e-45c9-ae44-08dc1eaad0e0",
                "2026-06-03T10:00:00Z",
                participants=[attended("Mary Sue", "2026-06-03T10:05:00Z")],
            )
        ],
        "recordings": [],
    },
    # Its meeting object carries endedAt, but only meeting.ended ends a session.
    "rtk-cfdocs--meeting.participantLeft": {
        "status": "live",
        "sessions": [
            session(
                "05e57591-d89e-45c9-ae44-08dc1eaad0e0",
                "2026-06-03T10:00:00Z",
                participants=[attended("Mary Sue", "2026-06-03T10:05:00Z", "2026-06-03T10:25:00Z", 1200)],
            )
        ],
        "recordings": [],
    },
    # Recordings: no session rows, so the meeting's status stays as it was.
    "dyte-docs--recording.statusUpdate--RECORDING": {
        "status": "scheduled",
        "sessions": [],
        "recordings": [
            recording(
                "97cb480d-5840-4528-ace3-919b5e386c68",
                "56b81d16-5d4e-45ed-85b4-056587b00aa0",
                "RECORDING",
                "2023-01-25T04:51:35.903816Z",
            )
        ],
    },
    # No meeting.sessionId here: the recording's roomUUID names the session. The duration comes from the times.
    "dyte-docs--recording.statusUpdate--UPLOADING": {
        "status": "scheduled",
        "sessions": [],
        "recordings": [
            recording(
                "6c81b7c4-4465-4e16-a36f-21b501d619bc",
                "56b81d16-5d4e-45ed-85b4-056587b00aa0",
                "UPLOADING",
                "2022-12-13T07:08:39.051621Z",
                "2022-12-13T07:09:45.865627Z",
                67,
                216787,
            )
        ],
    },
    # Filed under meeting.sessionId (…c2), not the differing roomUUID (…c4); recordingDuration 0 means unknown.
    "dyte-docs--recording.statusUpdate--UPLOADED": {
        "status": "scheduled",
        "sessions": [],
        "recordings": [
            recording(
                "ab920f84-2d19-4013-99c7-5b80291d0188",
                "5a0c5abd-97a3-4dac-b2d2-19ed3d7bb3c2",
                "UPLOADED",
                "2023-04-14T04:46:08.306221Z",
                "2023-04-14T04:46:55.420986Z",
                47,
                2044680,
                DYTE_S3 + "c94c437b-592a-4a39-b9e2-47ef1451e43b/test.mp4",
                "2023-04-21T04:46:55.608944Z",
            )
        ],
    },
    # 2022: no session id anywhere, `recordingId` without `id`, and a top-level participants list (ignored).
    "dyte-vimeo-lambda--recording.statusUpdate--UPLOADED-2022": {
        "status": "scheduled",
        "sessions": [],
        "recordings": [
            recording(
                "96c2befc-e7b5-4634-9957-65184120ffe4",
                None,
                "UPLOADED",
                "2022-05-25T08:08:49.774961Z",
                "2022-05-25T08:09:09.906238Z",
                20,
                3937533,
                sample("dyte-vimeo-lambda--recording.statusUpdate--UPLOADED-2022")["payload"]["recording"][
                    "downloadUrl"
                ],
                "2022-06-01T08:09:10.986486Z",
            )
        ],
    },
    # fileSize as a string, as RealtimeKit documents it.
    "rtk-cfdocs--recording.statusUpdate--UPLOADED": {
        "status": "scheduled",
        "sessions": [],
        "recordings": [
            recording(
                "97cb480d-5840-4528-ace3-919b5e386c68",
                "05e57591-d89e-45c9-ae44-08dc1eaad0e0",
                "UPLOADED",
                "2026-06-03T10:00:00Z",
                "2026-06-03T10:30:00Z",
                1800,
                2044680,
                "https://example.com/recording.mp4",
                "2026-06-10T10:30:00Z",
            )
        ],
    },
}


def substitute(payload: dict[str, Any], provider_meeting_id: str, custom_participant_id: str) -> dict[str, Any]:
    """The sample aimed at our meeting and our participant (see the module's docstring)."""
    meeting = payload.get("meeting")
    theirs = meeting.get("id") if isinstance(meeting, dict) else payload.get("meetingId")

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return provider_meeting_id if theirs is not None and node == theirs else node

    aimed = walk(copy.deepcopy(payload))
    participant = aimed.get("participant")
    if isinstance(participant, dict):
        for name in ("customParticipantId", "clientSpecificId"):
            if name in participant:
                participant[name] = custom_participant_id
    return aimed


class Target:
    """A meeting of ours with its owner joined: what a sample is aimed at."""

    def __init__(self, app):
        self.app = app
        self.owner = app.user("owner")
        self.meeting = self.owner.create(title="Sampled")
        joined = self.owner.call("POST", f"/meetings/{self.meeting['id']}/join").json()
        if app.video_provider == "dyte":
            client = ProviderClient.for_dyte(app.provider.dyte_credentials(), requests.Session())
        else:
            client = ProviderClient.for_realtimekit(app.provider.realtimekit_credentials(), requests.Session())
        pm = self.meeting["providerMeetingId"]
        self.custom_id = client.get_participant(pm, joined["participantId"]).custom_participant_id
        self.owner_id = self.owner.call("GET", "/me").json()["id"]

    def deliver(self, provider: str, payload: dict[str, Any], **options: Any) -> None:
        url = f"{self.app.url}/api/webhooks/dyte"
        results = self.app.provider.deliver(provider, payload, url=url, **options)
        assert [result["status"] for result in results] == [200], results

    def seen(self) -> dict[str, Any]:
        path = f"/meetings/{self.meeting['id']}"
        return {
            "status": self.owner.call("GET", path).json()["status"],
            "sessions": self.owner.call("GET", f"{path}/sessions").json()["items"],
            "recordings": self.owner.call("GET", f"{path}/recordings").json()["items"],
        }


def quiet(app) -> None:
    """Until the app's webhook queue is empty: every delivery so far was applied (or failed)."""
    queue = QueueClient.from_connection_string(app.storage.server.connection_string, f"{app.prefix}webhook-events")
    deadline = time.monotonic() + 15
    while queue.get_queue_properties().approximate_message_count:
        assert time.monotonic() < deadline, "the webhook queue did not drain"
        time.sleep(0.05)


def comparable(seen: dict[str, Any], expected: dict[str, Any], owner_id: str, window) -> dict[str, Any]:
    """What the API answered, in the expectation's terms: only the fields expected (others may be added),
    the owner's id as "owner", and a time within the receipt window as RECEIPT."""

    def term(value: Any) -> Any:
        if value == owner_id:
            return "owner"
        if isinstance(value, str) and (instant := times.parse_rfc3339(value)) and window[0] <= instant <= window[1]:
            return RECEIPT
        return value

    def pick(item: dict[str, Any], shape: dict[str, Any]) -> dict[str, Any]:
        return {
            key: [pick(p, shape[key][0]) for p in item[key]]
            if key == "participants" and shape[key]
            else term(item[key])
            for key in shape
        }

    return {
        "status": seen["status"],
        "sessions": [pick(s, expected["sessions"][0]) for s in seen["sessions"]]
        if expected["sessions"]
        else seen["sessions"],
        "recordings": [pick(r, expected["recordings"][0]) for r in seen["recordings"]]
        if expected["recordings"]
        else seen["recordings"],
    }


def test_every_sample_has_an_expectation():
    assert sorted(EXPECTED) == sorted(path.stem for path in SAMPLES.glob("*.json"))
    assert len(EXPECTED) == 26


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_documented_sample_signed_by_its_provider_produces_what_it_says(app, name):
    documented = sample(name)
    target = Target(app)
    payload = substitute(documented["payload"], target.meeting["providerMeetingId"], target.custom_id)
    expected = EXPECTED[name]
    before = datetime.now(UTC) - timedelta(seconds=1)
    target.deliver(documented["provider"], payload)
    if expected["sessions"] or expected["recordings"]:
        deadline = time.monotonic() + 15
        while not (target.seen()["sessions"] or target.seen()["recordings"]):
            assert time.monotonic() < deadline, f"{name} was not applied"
            time.sleep(0.05)
    quiet(app)
    window = (before, datetime.now(UTC))
    assert comparable(target.seen(), expected, target.owner_id, window) == expected


def quickstart_join(target: Target) -> dict[str, Any]:
    payload = sample("dyte-quickstart--meeting.participantJoined")["payload"]
    return substitute(payload, target.meeting["providerMeetingId"], target.custom_id)


def started(target: Target, session_id: str, at: datetime) -> dict[str, Any]:
    when = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return webhooks.meeting_started(target.meeting["providerMeetingId"], session_id, started_at=when)


def test_an_older_join_without_a_session_id_joins_the_session_live_when_it_came(app):
    """Dyte's quickstart join has no meeting.sessionId (and no joinedAt). It belongs to the one session of the
    meeting that was live when it was received; with none, or several, it cannot be placed: incomplete."""
    target = Target(app)
    target.deliver("dyte", started(target, "open-session", datetime.now(UTC) - timedelta(minutes=5)))
    quiet(app)
    before = datetime.now(UTC) - timedelta(seconds=1)
    target.deliver("dyte", quickstart_join(target))
    quiet(app)
    (placed,) = target.seen()["sessions"]
    (person,) = placed["participants"]
    assert placed["id"] == "open-session"
    assert (person["userId"], person["name"], person["leftAt"]) == (target.owner_id, "Participant nfiu92xa1jd", None)
    assert before <= times.parse_rfc3339(person["joinedAt"]) <= datetime.now(UTC)  # no joinedAt: its receipt
    # The sample's own meeting.startedAt (2022) says nothing about a session it was not sure to belong to.
    assert datetime.now(UTC) - times.parse_rfc3339(placed["startedAt"]) < timedelta(minutes=6)

    # Two sessions live at once: which one is unknown, so nothing is attributed.
    other = Target(app)
    for session_id in ("first", "second"):
        other.deliver("dyte", started(other, session_id, datetime.now(UTC) - timedelta(minutes=1)))
    quiet(app)
    other.deliver("dyte", quickstart_join(other))
    quiet(app)
    assert [s["participants"] for s in other.seen()["sessions"]] == [[], []]


def test_an_older_join_applied_before_its_sessions_start_is_placed_by_a_replay(app):
    """Applied before the session's own meeting.started, the join finds no session and stays incomplete (the
    order shows here, and only for such payloads); replaying the meeting's deliveries places it, since times,
    not the order of arrival, decide."""
    target = Target(app)
    target.deliver("dyte", quickstart_join(target))
    quiet(app)
    target.deliver("dyte", started(target, "late-start", datetime.now(UTC) - timedelta(minutes=1)))
    quiet(app)
    assert [s["participants"] for s in target.seen()["sessions"]] == [[]]
    environment = app_environment(
        app.storage, app.provider, app.issuer, TABLE_PREFIX=app.prefix, VIDEO_PROVIDER=app.video_provider
    )
    replay = subprocess.run(
        [sys.executable, "-m", "shared.events", "replay", f"--meeting={target.meeting['id']}"],
        cwd=support.ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr
    quiet(app)
    (placed,) = target.seen()["sessions"]
    assert [person["userId"] for person in placed["participants"]] == [target.owner_id]


def test_a_realtimekit_delivery_under_dytes_header_names_is_accepted_and_applied(app):
    """Reported during the migration: RealtimeKit's key, Dyte's header names. Every configured key is tried."""
    target = Target(app)
    payload = substitute(sample("rtk-cfdocs--meeting.started")["payload"], target.meeting["providerMeetingId"], "")
    target.deliver("realtimekit", payload, header_names="dyte")
    quiet(app)
    assert target.seen()["status"] == "live"

"""The app's logs over a full flow: one parseable JSON line per request, and no secret or address anywhere.

An app process of its own, with email on (HTTPS Graph stand-in) and Dyte's webhook key configured, writes
its log (stderr) to a file; the test records every request it sends and then reads the file as
Application Insights would receive it, message by message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import requests

from dev.graph import GraphStandIn
from dev.harness import App, User, start_app
from dev.provider import webhooks
from shared.auth import public_id
from tests import support

SENDER = "meetings@contoso.test"
# The dev host's log format: "[time] logger: message"; a message may go on over more lines (tracebacks).
RECORD = re.compile(r"^\[[^\]]+\] ([\w.]+): (.*)$")
REQUEST_FIELDS = {"operation", "meetingId", "callerId", "status", "problem", "durationMs"}


@pytest.fixture(scope="module")
def graph():
    with GraphStandIn().start() as stand_in:
        yield stand_in


class Flow:
    """Sends requests and remembers, for each, the log line it must produce."""

    def __init__(self, app: App):
        self.app = app
        self.expected: Counter[tuple[str, str | None, str | None, int]] = Counter()
        self.users: list[User] = []
        self.caller_ids: dict[str, str] = {}
        self.join_tokens: list[str] = []
        self.expected[("health.get", None, None, 200)] = 1  # start_app's readiness probe

    def signed_in(self, name: str) -> User:
        user = self.app.user(name)
        self.users.append(user)
        self.caller_ids[user.token] = user.call("GET", "/me").json()["id"]
        self.expected[("me.get", None, self.caller_ids[user.token], 200)] += 1
        return user

    def call(self, user: User | None, operation: str, method: str, path: str, meeting: str | None = None, **kw: Any):
        response = user.call(method, path, **kw) if user else self.app.call(method, path, **kw)
        caller = self.caller_ids[user.token] if user else None
        self.expected[(operation, meeting, caller, response.status_code)] += 1
        return response

    def join(self, user: User, meeting: str) -> None:
        response = self.call(user, "meetings.join", "POST", f"/meetings/{meeting}/join", meeting)
        assert response.status_code == 200, response.text
        self.join_tokens.append(response.json()["authToken"])

    def deliver(self, body: bytes, signature: str) -> int:
        headers = {"Content-Type": "application/json", "dyte-signature": signature, "dyte-uuid": str(uuid.uuid4())}
        return self.call(None, "webhooks.receive", "POST", "/webhooks/dyte", data=body, headers=headers).status_code


def records(text: str) -> list[tuple[str, str]]:
    """(logger, message) of every log record; continuation lines belong to the record above them."""
    found: list[list[str]] = []
    for line in text.splitlines():
        match = RECORD.match(line)
        if match:
            found.append([match.group(1), match.group(2)])
        elif found:
            found[-1][1] += "\n" + line
    return [(name, message) for name, message in found]


def background(found: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The JSON lines of the domain code (queue and timer functions among them); each must parse."""
    return [json.loads(message) for name, message in found if name.startswith("shared.") and message[:1] == "{"]


def fragments(secret: str, size: int = 16) -> list[str]:
    """Overlapping pieces of `secret`: any 24 characters of it in a row contain one (a truncated leak is one too)."""
    if len(secret) <= size:
        return [secret]
    return [secret[start : start + size] for start in range(0, len(secret) - size + 1, size // 2)] + [secret[-size:]]


def eventually(check, timeout: float = 60.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_a_full_flow_logs_one_json_line_per_request_and_no_secret(
    storage, provider, issuer, graph, webhook_key, tmp_path
):
    pem = webhooks.public_pem(webhook_key).replace("\n", "\\n")
    settings = {
        **graph.settings(SENDER),
        "APP_BASE_URL": "https://meet.contoso.test",
        "REQUESTS_CA_BUNDLE": graph.ca_path,  # how the app process trusts the stand-in's test CA
        "WEBHOOK_PUBLIC_KEY": pem,
    }
    log_path = tmp_path / "app.log"
    with log_path.open("w") as log_file:
        app = start_app(storage, provider, issuer, "dyte", stderr=log_file, **settings)
        try:
            flow, signatures, delivered = _run_flow(app, graph, webhook_key)

            def logged_everything() -> bool:
                lines = background(records(log_path.read_text()))
                applied = {line["delivery"] for line in lines if line["operation"] == "events.apply"}
                sent = [line for line in lines if line["operation"] == "mail.send" and line["status"] == "sent"]
                operations = Counter(line["operation"] for line in lines)
                return (
                    applied == delivered
                    and len(sent) == len(mails_to(graph, flow))
                    and operations["events.sweep"] == 1
                    and operations["accounts.closed"] == 1
                )

            eventually(logged_everything, what="the queue and timer functions' lines")  # also the close-account job
        finally:
            app.stop()
    found = records(log_path.read_text())
    text = "\n".join(message for _, message in found)

    # Every request: exactly one JSON line, with the fields KQL reads.
    lines = [message for name, message in found if name == "meetings.api" and message[:1] == "{"]
    logged = [json.loads(line) for line in lines]
    assert all(set(line) == REQUEST_FIELDS for line in logged)
    assert all(isinstance(line["durationMs"], int | float) and line["durationMs"] >= 0 for line in logged)
    assert all((line["problem"] is None) == (line["status"] < 400) for line in logged)
    assert Counter((r["operation"], r["meetingId"], r["callerId"], r["status"]) for r in logged) == flow.expected
    # Queue functions (jobs too: the session's start refreshed the invitees' list rows) log JSON lines.
    assert any(line["operation"] == "jobs.run" for line in background(found))

    secrets = [
        *(user.token for user in flow.users),  # bearer tokens
        *flow.join_tokens,  # provider participant tokens
        provider.dyte_credentials().api_key,
        provider.realtimekit_credentials().api_token,
        base64.b64encode(f"local-org:{provider.dyte_credentials().api_key}".encode()).decode(),  # Basic auth
        *signatures,
        graph.client_secret,
        *graph.issued_tokens(),
        support.EXAMPLE_VALUES["ID_HASH_KEY"],
    ]
    assert flow.join_tokens and graph.issued_tokens()
    for secret in secrets:
        for fragment in fragments(secret):
            assert fragment not in text, f"a secret leaked into the log: ...{fragment}..."
    for user in flow.users:
        assert user.email not in text and quote(user.email) not in text


def mails_to(graph: GraphStandIn, flow: Flow) -> list[dict]:
    """The messages sent to this flow's people (the Graph stand-in serves other tests' apps too)."""
    ours = {user.email for user in flow.users}
    return [
        entry
        for entry in graph.messages()
        if any(to["emailAddress"]["address"] in ours for to in entry["message"]["toRecipients"])
    ]


def _run_flow(app: App, graph: GraphStandIn, key) -> tuple[Flow, list[str], set[str]]:
    flow = Flow(app)
    owner, host, guest, late = (flow.signed_in(name) for name in ("owner", "host", "guest", "late"))
    starts = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    invitees = [{"email": guest.email, "role": "participant"}, {"email": host.email, "role": "host"}]
    body = {"title": "Logged", "startsAt": starts, "timeZone": "Europe/Berlin", "invitees": invitees}
    created = flow.call(owner, "meetings.create", "POST", "/meetings", json=body)
    assert created.status_code == 201, created.text
    meeting = created.json()
    mid, path = meeting["id"], f"/meetings/{meeting['id']}"
    assert flow.call(late, "meetings.get", "GET", path, mid).status_code == 404  # not invited yet
    invite = {"invitees": [{"email": late.email, "role": "participant"}]}
    assert flow.call(owner, "invites.create", "POST", f"{path}/invites", mid, json=invite).status_code == 201
    assert flow.call(owner, "invites.list", "GET", f"{path}/invites", mid).status_code == 200
    for user in (owner, guest, guest, host):  # the guest's second join is a rejoin
        flow.join(user, mid)
    assert flow.call(guest, "meetings.list", "GET", "/meetings").status_code == 200
    assert flow.call(guest, "meetings.get", "GET", path, mid).status_code == 200

    session = str(uuid.uuid4())
    oid = jwt.decode(guest.token, options={"verify_signature": False})["oid"]
    guest_participant = public_id(support.load().id_hash_key, "participant", mid, support.TENANT, oid)
    provider_meeting = meeting["providerMeetingId"]
    payloads = [
        webhooks.meeting_started(provider_meeting, session),
        webhooks.participant_joined(provider_meeting, session, custom_participant_id=guest_participant, name="Guest"),
        webhooks.participant_left(provider_meeting, session, custom_participant_id=guest_participant, name="Guest"),
        webhooks.meeting_ended(provider_meeting, session),
        webhooks.recording_status(provider_meeting, session, status="UPLOADED"),
    ]
    bodies = [json.dumps(payload, separators=(",", ":")).encode() for payload in payloads]
    signatures = [webhooks.sign(key, body) for body in bodies]
    assert [flow.deliver(body, signature) for body, signature in zip(bodies, signatures, strict=True)] == [200] * 5
    assert flow.deliver(bodies[0], signatures[0]) == 200  # a repeat: acknowledged, never applied twice
    forged = webhooks.sign(webhooks.new_key(), bodies[0])
    assert flow.deliver(bodies[0], forged) == 401
    signatures.append(forged)

    def ended_and_recorded() -> bool:
        sessions = flow.call(owner, "sessions.list", "GET", f"{path}/sessions", mid).json()["items"]
        recordings = flow.call(owner, "recordings.list", "GET", f"{path}/recordings", mid).json()["items"]
        return bool(sessions and sessions[0]["endedAt"] and sessions[0]["participants"] and recordings)

    eventually(ended_and_recorded, what="the deliveries applied")
    # Revoke and cancel once the invitations are out: a cancellation is only sent after an invitation.
    eventually(lambda: len(mails_to(graph, flow)) == 3, what="the invitations")
    late_id = base64.urlsafe_b64encode(hashlib.sha256(late.email.encode()).digest()).decode()[:22]
    assert flow.call(owner, "invites.revoke", "DELETE", f"{path}/invites/{late_id}", mid).status_code == 204
    assert flow.call(owner, "meetings.cancel", "DELETE", path, mid).status_code == 204
    eventually(lambda: len(mails_to(graph, flow)) == 6, what="the revocation and cancellations")
    assert flow.call(guest, "me.export", "GET", "/me/export").status_code == 200
    assert flow.call(guest, "me.close", "DELETE", "/me").status_code == 204  # erases what they attended too
    swept = requests.post(f"{app.url}/admin/functions/sweep_webhook_events", json={"input": ""}, timeout=10)
    assert swept.status_code == 202
    return flow, signatures, {hashlib.sha256(body).hexdigest() for body in bodies}

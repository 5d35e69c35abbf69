"""A real SIGKILL of the app process right after a step, for a few representative cells of the fault matrix.

The matrix kills in-process (`faults.Killed`): cheap enough to do after every write of every operation, and
exact about "right after" (every later request of the instance fails before it is sent). These cells check the
same thing with nothing simulated: the app on the dev host, the interceptor in the proxy or the stand-in
SIGKILLs it once the aimed request has taken effect, before the server answers; a new process starts on the
same storage, and the background work runs as it does there: the queue listeners, and the timers invoked
through the admin API (`POST /admin/functions/sweep_pending`), with the pending entries made due.

The steps are the matrix's own (the same domain code takes them), so these cells follow the code too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from datetime import timedelta

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.storage.queue import QueueClient

from dev.harness import CLIENT_ID, App, Storage, start_app
from shared import schema, times
from tests.convergence import matrix
from tests.convergence.invariants import Person
from tests.convergence.world import PRESETS, SENDER, World


@pytest.fixture(scope="module")
def stage(convergence_rig, issuer):
    """One app process (restarted after each kill) on one world of the rig."""
    matrix.cells(convergence_rig)  # the steps first (the kills aim at the matrix's own)
    world = World(convergence_rig)
    storage = Storage(convergence_rig.azurite, convergence_rig.tables, convergence_rig.queues)
    settings = {
        **PRESETS,
        **convergence_rig.graph.settings(SENDER),
        "REQUESTS_CA_BUNDLE": convergence_rig.graph.ca_path,
    }

    def start() -> App:
        return start_app(storage, convergence_rig.provider, issuer, "dyte", prefix=world.prefix, **settings)

    holder = {"app": start()}
    yield world, holder, start
    holder["app"].stop()
    world.cleanup()


class Http:
    def __init__(self, world: World, app: App):
        self.world, self.app = world, app

    def call(self, person: Person, method: str, path: str, **kwargs) -> requests.Response:
        token = self.app.issuer.token(
            audience=CLIENT_ID, tenant=person.tenant_id, email=person.emails[0], name=person.name, oid=person.object_id
        )
        return self.app.call(method, path, token, **kwargs)


def step_of(world: World, operation: str, signature_start: str, contains: str = "") -> matrix.Step:
    """The matrix's step of `operation` whose request shape starts so (the first such)."""
    cells, _ = matrix.cells(world.rig)
    return next(
        cell.step
        for cell in cells
        if cell.operation.name == operation
        and cell.step.signature.startswith(signature_start)
        and contains in cell.step.signature
    )


def kill_at(world: World, app: App, step: matrix.Step, request) -> requests.Response | None:
    """Run `request` with the app SIGKILLed right after `step` took effect; the answer, if any came."""

    def kill() -> None:
        os.kill(app.process.pid, signal.SIGKILL)
        app.process.wait()

    aim = world.rig.injector.aim(world.prefix, step, "kill", kill)
    try:
        answer = request()
    except requests.ConnectionError:
        answer = None
    finally:
        world.rig.injector.stop()
    assert aim.fired_at is not None, f"{step.label} was never reached"
    assert app.process.wait(timeout=10) == -signal.SIGKILL
    return answer


def converge(world: World, app: App, timeout: float = 60.0) -> None:
    """The background work of the new process until nothing is left: the queue listeners run the queued work;
    pending entries and unsettled deliveries are made due and the timers run through the admin API."""
    pending = world.rig.direct_tables.get_table_client(world.prefix + schema.PENDING)
    queues = [
        QueueClient.from_connection_string(world.rig.direct_connection_string, world.prefix + name)
        for name in schema.QUEUES
    ]
    deliveries = world.rig.direct_tables.get_table_client(world.prefix + schema.DELIVERIES)
    deadline = time.monotonic() + timeout
    past = times.stamp(times.now() - timedelta(hours=2))
    while time.monotonic() < deadline:
        entries = world.rows(schema.PENDING)
        markers = [row for row in world.rows(schema.MEETINGS) if "|f|" in row["RowKey"]]
        unsettled = [row for row in world.rows(schema.DELIVERIES) if row["RowKey"].startswith("p|")]
        visible = any(list(queue.peek_messages(max_messages=1)) for queue in queues)
        if not entries and not markers and not unsettled and not visible:
            return
        if unsettled and not visible:
            for row in unsettled:
                with contextlib.suppress(ResourceNotFoundError):  # settled meanwhile by the queue listener
                    deliveries.update_entity({**row, "enqueuedAt": past}, UpdateMode.MERGE)
            swept = requests.post(f"{app.url}/admin/functions/sweep_webhook_events", json={"input": ""}, timeout=10)
            assert swept.status_code == 202
        if entries and not visible:
            for entry in entries:
                with contextlib.suppress(ResourceNotFoundError):  # completed meanwhile by the queue listener
                    pending.update_entity(
                        {
                            "PartitionKey": entry["PartitionKey"],
                            "RowKey": entry["RowKey"],
                            "dueAt": past,
                            "createdAt": past,
                        },
                        UpdateMode.MERGE,
                    )
            swept = requests.post(f"{app.url}/admin/functions/sweep_pending", json={"input": ""}, timeout=10)
            assert swept.status_code == 202
        time.sleep(0.5)
    raise AssertionError(f"the background work did not finish: {world.rows(schema.PENDING)}")


def restart(stage) -> App:
    _, holder, start = stage
    holder["app"] = start()
    return holder["app"]


def test_killed_right_after_a_cancel_commits(stage) -> None:
    world, holder, _ = stage
    http = Http(world, holder["app"])
    olga, ann = world.person("olga"), world.person("ann")
    meeting = http.call(olga, "POST", "/meetings", json={"title": "Killed", "invitees": [{"email": ann.emails[0]}]})
    meeting_id = meeting.json()["id"]
    assert http.call(ann, "POST", f"/meetings/{meeting_id}/join").status_code == 200
    world.start_session(meeting_id, ann)
    step = step_of(world, "cancel", "table batch Meetings", "marker")
    kill_at(world, holder["app"], step, lambda: http.call(olga, "DELETE", f"/meetings/{meeting_id}"))
    app = restart(stage)
    converge(world, app)
    assert world.divergences() == []
    held = world.rig.provider.snapshot("dyte")[world.meeting_row(meeting_id)["providerMeetingId"]]
    assert (held["status"], held["live"]) == ("INACTIVE", None)


def test_killed_right_after_a_revocation_kicked_the_invitee(stage) -> None:
    world, holder, _ = stage
    http = Http(world, holder["app"])
    olga, ann = world.person("olga"), world.person("ann")
    meeting = http.call(olga, "POST", "/meetings", json={"title": "Kicked", "invitees": [{"email": ann.emails[0]}]})
    meeting_id = meeting.json()["id"]
    joined = http.call(ann, "POST", f"/meetings/{meeting_id}/join").json()
    world.start_session(meeting_id, ann)
    step = step_of(world, "revoke", "provider POST /meetings/{id}/active-session/kick")
    invite = sorted(ann.invite_ids)[0]
    kill_at(world, holder["app"], step, lambda: http.call(olga, "DELETE", f"/meetings/{meeting_id}/invites/{invite}"))
    assert world.rig.provider.token_check(joined["authToken"])["valid"]  # kicked, not yet deleted: it died first
    app = restart(stage)
    converge(world, app)
    assert world.divergences() == []
    assert not world.rig.provider.token_check(joined["authToken"])["valid"]


def test_killed_right_after_the_provider_added_a_joining_invitee(stage) -> None:
    world, holder, _ = stage
    http = Http(world, holder["app"])
    olga, ann = world.person("olga"), world.person("ann")
    meeting = http.call(olga, "POST", "/meetings", json={"title": "Joined", "invitees": [{"email": ann.emails[0]}]})
    meeting_id = meeting.json()["id"]
    step = step_of(world, "first join", "provider POST /meetings/{id}/participants")
    assert kill_at(world, holder["app"], step, lambda: http.call(ann, "POST", f"/meetings/{meeting_id}/join")) is None
    app = restart(stage)
    converge(world, app)
    assert world.divergences() == []
    # The dead join's claim runs out (its lease is made to have passed); the next join finds the participant
    # the dead process added at the provider, and adds no second one.
    claim = next(
        row for row in world.rows(schema.MEETINGS) if row["RowKey"] == schema.participant_key(meeting_id, ann.user_id)
    )
    assert not claim["participantId"]
    world.rig.direct_tables.get_table_client(world.prefix + schema.MEETINGS).update_entity(
        {**claim, "claimUntil": times.stamp(times.now() - timedelta(seconds=1))}, UpdateMode.MERGE
    )
    again = Http(world, app).call(ann, "POST", f"/meetings/{meeting_id}/join")
    assert again.status_code == 200, again.text
    assert (
        len(world.rig.provider.snapshot("dyte")[world.meeting_row(meeting_id)["providerMeetingId"]]["participants"])
        == 1
    )
    assert world.rig.provider.token_check(again.json()["authToken"])["valid"]
    # The adopting join kept the takeover's lease and marked a follow-up, which looks for a late second add once
    # the lease has ended (made to have passed here too), and keeps the one participant.
    adopted = next(
        row for row in world.rows(schema.MEETINGS) if row["RowKey"] == schema.participant_key(meeting_id, ann.user_id)
    )
    assert adopted["participantId"] == again.json()["participantId"] and adopted["claimUntil"]
    world.rig.direct_tables.get_table_client(world.prefix + schema.MEETINGS).update_entity(
        {**adopted, "claimUntil": times.stamp(times.now() - timedelta(seconds=1))}, UpdateMode.MERGE
    )
    converge(world, app)
    assert world.divergences() == []
    held = world.rig.provider.snapshot("dyte")[world.meeting_row(meeting_id)["providerMeetingId"]]["participants"]
    assert [p["id"] for p in held] == [again.json()["participantId"]]


def test_killed_right_after_an_account_closing_commits(stage) -> None:
    world, holder, _ = stage
    http = Http(world, holder["app"])
    olga, ann = world.person("olga"), world.person("ann")
    meeting = http.call(olga, "POST", "/meetings", json={"title": "Closing", "invitees": [{"email": ann.emails[0]}]})
    meeting_id = meeting.json()["id"]
    joined = http.call(ann, "POST", f"/meetings/{meeting_id}/join").json()
    step = step_of(world, "close account", "table POST ClosedAccounts")
    kill_at(world, holder["app"], step, lambda: http.call(ann, "DELETE", "/me"))
    app = restart(stage)
    assert Http(world, app).call(ann, "GET", "/me").status_code == 403
    converge(world, app)
    assert world.divergences() == []
    assert not world.rig.provider.token_check(joined["authToken"])["valid"]

"""Security actions that always finish (issue: one reconciler per meeting), over HTTP, for both providers.

Each test reproduces one defect found by trying the stack as a hostile user would: it failed before the
follow-ups existed. "Converge" below means what production does on its own: the follow-up's retries and
the pending sweep; the tests make the pending entries due and run the sweep instead of waiting minutes.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid

import pytest
import requests
from azure.data.tables import TableServiceClient, UpdateMode

from dev.provider import webhooks
from shared import schema, times
from shared.schema import invite_id
from tests.api.conftest import problem
from tests.api.test_joins import client, participants
from tests.api.test_meetings import provider_meeting
from tests.api.test_recordings import copied, record
from tests.api.test_webhooks import at, deliver, eventually, status_of


def invite(user, meeting, *invitees):
    body = {"invitees": [{"email": email, "role": role} for email, role in invitees]}
    return user.call("POST", f"/meetings/{meeting['id']}/invites", json=body)


def table(app, name):
    service = TableServiceClient.from_connection_string(app.storage.server.connection_string)
    return service.get_table_client(f"{app.prefix}{name}")


def pending_entries(app) -> list[dict]:
    rows = table(app, schema.PENDING).query_entities("PartitionKey eq @pk", parameters={"pk": "work"})
    try:
        return list(rows)
    except Exception:  # the table does not exist yet: nothing is pending
        return []


def converge(app, timeout: float = 30.0) -> None:
    """Make every pending entry due and sweep until nothing is pending (what time and the timer do)."""
    deadline = time.monotonic() + timeout
    while True:
        app.settle(timeout)
        entries = pending_entries(app)
        if not entries:
            return
        assert time.monotonic() < deadline, f"still pending: {[entry['RowKey'] for entry in entries]}"
        due = times.stamp(times.now().replace(year=2000))
        for entry in entries:
            table(app, schema.PENDING).update_entity(
                {"PartitionKey": "work", "RowKey": entry["RowKey"], "dueAt": due, "createdAt": due},
                mode=UpdateMode.MERGE,
            )
        swept = requests.post(f"{app.url}/admin/functions/sweep_pending", json={"input": ""}, timeout=10)
        assert swept.status_code == 202
        time.sleep(0.2)


def preset(app, role):
    names = {
        "host": ("group_call_host", "group-call-host"),
        "participant": ("group_call_participant", "group-call-participant"),
    }
    return names[role][app.video_provider == "realtimekit"]


def test_a_revoke_whose_provider_call_is_refused_still_answers_204_and_finishes(app):
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    joined = guest.call("POST", f"/meetings/{meeting['id']}/join").json()
    app.provider.add_fault(method="GET", path="/participants/", status=400, times=1)
    response = owner.call("DELETE", f"/meetings/{meeting['id']}/invites/{invite_id(guest.email)}")
    assert response.status_code == 204
    problem(guest.call("POST", f"/meetings/{meeting['id']}/join"), 404, "not-found")  # refused at once
    converge(app)
    assert not app.provider.token_check(joined["authToken"])["valid"]
    assert participants(app, meeting) == []
    # Repeating it is a 204 that changes nothing.
    assert owner.call("DELETE", f"/meetings/{meeting['id']}/invites/{invite_id(guest.email)}").status_code == 204


def test_a_cancel_whose_provider_call_is_refused_and_whose_job_put_fails_still_finishes(app):
    owner = app.user("owner")
    meeting = owner.create()
    app.provider.add_fault(method="PATCH", path="/meetings/", status=422, times=1)
    app.storage.queues.fail("POST", rf"/{app.prefix}{schema.JOBS_QUEUE}/messages", status=503, times=10)
    try:
        assert owner.call("DELETE", f"/meetings/{meeting['id']}").status_code == 204
    finally:
        app.storage.queues.clear_faults()
    problem(owner.call("POST", f"/meetings/{meeting['id']}/join"), 409, "cancelled")
    assert [entry["RowKey"] for entry in pending_entries(app)] == [schema.pending_follow_up(meeting["id"])]
    converge(app)
    assert provider_meeting(app, meeting).status == "INACTIVE"


def test_a_demotion_reaches_the_provider_even_when_the_provider_refuses_it_first(app):
    owner, host = app.user("owner"), app.user("host")
    meeting = owner.create(invitees=[{"email": host.email, "role": "host"}])
    joined = host.call("POST", f"/meetings/{meeting['id']}/join").json()
    assert joined["preset"] == preset(app, "host")
    app.provider.add_fault(method="GET", path="/participants/", status=400, times=1)
    assert invite(owner, meeting, (host.email, "participant")).status_code == 201
    converge(app)
    [participant] = participants(app, meeting)
    assert participant["preset_name"] == preset(app, "participant")


def test_a_demotion_of_a_live_host_changes_no_preset_before_it_can_owe_the_kick(dyte_app):
    app = dyte_app
    owner, host = app.user("owner"), app.user("host")
    meeting = owner.create(invitees=[{"email": host.email, "role": "host"}])
    pmid = meeting["providerMeetingId"]
    joined = host.call("POST", f"/meetings/{meeting['id']}/join").json()
    app.provider.set_switches(preset_change_drops_peer=False)  # a provider that applies presets on rejoin
    try:
        app.provider.start_session("dyte", pmid, participant_ids=(joined["participantId"],))
        # The follow-up's marker of the kick it will owe cannot be written: it must change nothing yet.
        app.storage.tables.fail("POST", r"\|f\|k\|", status=503, times=3)
        try:
            assert invite(owner, meeting, (host.email, "participant")).status_code == 201
        finally:
            app.storage.tables.clear_faults()
        [participant] = participants(app, meeting)
        assert participant["preset_name"] == preset(app, "host")
        assert client(app, "dyte").active_session(pmid) is not None
        converge(app)
    finally:
        app.provider.set_switches(preset_change_drops_peer=True)
    [participant] = participants(app, meeting)
    assert participant["preset_name"] == preset(app, "participant")
    assert client(app, "dyte").active_session(pmid) is None  # the only peer, kicked, ended the session


def test_a_demoted_host_who_rejoins_before_the_follow_up_gets_the_participant_preset(app):
    owner, host = app.user("owner"), app.user("host")
    meeting = owner.create(invitees=[{"email": host.email, "role": "host"}])
    path = f"/meetings/{meeting['id']}/join"
    assert host.call("POST", path).status_code == 200
    app.provider.add_fault(method="GET", path="/participants/", status=400, times=1)  # the follow-up fails
    assert invite(owner, meeting, (host.email, "participant")).status_code == 201
    # The join sets the preset itself, and the answer may leave the participant out (Cloudflare's schema).
    app.provider.set_switches(required_answer_fields_only=True)
    try:
        again = host.call("POST", path)
    finally:
        app.provider.set_switches(required_answer_fields_only=False)
    assert again.status_code == 200, again.text
    assert (again.json()["role"], again.json()["preset"]) == ("participant", preset(app, "participant"))
    assert app.provider.token_check(again.json()["authToken"])["valid"]
    converge(app)
    [participant] = participants(app, meeting)
    assert participant["preset_name"] == preset(app, "participant")


def test_a_host_who_declines_and_is_invited_again_as_participant_joins_with_the_participant_preset(app):
    owner, host = app.user("owner"), app.user("host")
    meeting = owner.create(invitees=[{"email": host.email, "role": "host"}])
    first = host.call("POST", f"/meetings/{meeting['id']}/join").json()
    assert host.call("POST", f"/meetings/{meeting['id']}/invites/mine/decline").status_code == 204
    converge(app)
    assert not app.provider.token_check(first["authToken"])["valid"]  # declining leaves the provider too
    assert invite(owner, meeting, (host.email, "participant")).status_code == 201
    again = host.call("POST", f"/meetings/{meeting['id']}/join").json()
    assert (again["role"], again["preset"]) == ("participant", preset(app, "participant"))
    [participant] = participants(app, meeting)
    assert participant["preset_name"] == preset(app, "participant")


def test_a_join_whose_final_write_fails_leaves_one_participant_after_the_next_join(dyte_app):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    # The provider adds the participant, then storage fails on our final write of it (the batch that
    # stores the provider's participant id; the claim before it stores none).
    app.storage.tables.fail("POST", r'"participantId": ?"[^"]', status=503, times=3)
    try:
        failed = guest.call("POST", f"/meetings/{meeting['id']}/join")
    finally:
        app.storage.tables.clear_faults()
    assert failed.status_code == 503
    assert len(participants(app, meeting)) == 1
    # The invite's binding is in that write too: a join answered 503 binds nothing.
    [invite_row] = owner.call("GET", f"/meetings/{meeting['id']}/invites").json()["items"]
    assert (invite_row["status"], invite_row["acceptedAt"]) == ("pending", None)
    joined = guest.call("POST", f"/meetings/{meeting['id']}/join")
    assert joined.status_code == 200, joined.text
    assert len(participants(app, meeting)) == 1
    assert app.provider.token_check(joined.json()["authToken"])["valid"]
    [invite_row] = owner.call("GET", f"/meetings/{meeting['id']}/invites").json()["items"]
    assert invite_row["status"] == "accepted"
    # The adopting join kept the uncertain claim's lease: its follow-up looks again once it ends, and keeps
    # the one participant (converging here also spares later tests on this app that wait).
    converge(app)
    assert [p["id"] for p in participants(app, meeting)] == [joined.json()["participantId"]]


def test_two_identities_at_one_address_joining_at_once_bind_one_and_leave_one_participant(dyte_app):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    impostor = app.token(guest.email, oid=str(uuid.uuid4()))
    path = f"/meetings/{meeting['id']}/join"
    # Both are adding their participant when the first binds the invite; the second finds it bound.
    app.provider.add_fault(
        method="POST", path=f"/meetings/{meeting['providerMeetingId']}/participants$", delay=1.0, apply=True, times=2
    )
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        joining = [pool.submit(guest.call, "POST", path), pool.submit(app.call, "POST", path, impostor)]
        answers = [future.result() for future in joining]
    assert sorted(answer.status_code for answer in answers) == [200, 404], [answer.text for answer in answers]
    converge(app)
    [winner] = [answer.json() for answer in answers if answer.status_code == 200]
    assert [p["id"] for p in participants(app, meeting)] == [winner["participantId"]]
    assert app.provider.token_check(winner["authToken"])["valid"]
    [invite_row] = owner.call("GET", f"/meetings/{meeting['id']}/invites").json()["items"]
    assert invite_row["status"] == "accepted"


def test_after_binding_another_identity_at_the_same_address_does_not_list_the_meeting(app):
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(title="Bound", invitees=[{"email": guest.email, "role": "participant"}])
    impostor = app.token(guest.email, oid=str(uuid.uuid4()))
    assert [item["id"] for item in app.call("GET", "/meetings", impostor).json()["items"]] == [meeting["id"]]
    assert guest.call("POST", f"/meetings/{meeting['id']}/join").status_code == 200
    assert app.call("GET", "/meetings", impostor).json()["items"] == []  # from the join's answer on
    assert [item["id"] for item in guest.call("GET", "/meetings").json()["items"]] == [meeting["id"]]
    # A re-invite of the same address by the owner does not write the index blank again.
    assert invite(owner, meeting, (guest.email, "host")).status_code == 201
    converge(app)
    assert app.call("GET", "/meetings", impostor).json()["items"] == []
    assert [item["myRole"] for item in guest.call("GET", "/meetings").json()["items"]] == ["host"]


def test_create_and_invite_answer_2xx_once_committed_even_when_the_invitee_index_fails(app):
    owner, guest, other = app.user("owner"), app.user("guest"), app.user("other")
    index = rf"/{app.prefix}{schema.INVITATIONS}"
    for method in ("PUT", "PATCH", "MERGE"):
        app.storage.tables.fail(method, index, status=503, times=20)
    try:
        created = owner.call("POST", "/meetings", json={"title": "x", "invitees": [{"email": guest.email}]})
        assert created.status_code == 201, created.text
        meeting = created.json()
        assert invite(owner, meeting, (other.email, "participant")).status_code == 201
    finally:
        app.storage.tables.clear_faults()
    assert [m["id"] for m in owner.call("GET", "/meetings?scope=owned").json()["items"]] == [meeting["id"]]
    converge(app)
    for user in (guest, other):
        assert [m["id"] for m in user.call("GET", "/meetings").json()["items"]] == [meeting["id"]]


def test_closing_again_is_cheap_and_queues_nothing(dyte_app):
    app = dyte_app
    user = app.user("leaver")
    assert user.call("DELETE", "/me").status_code == 204
    converge(app)
    counts = app.counts()
    started = time.monotonic()
    assert user.call("DELETE", "/me").status_code == 204
    assert time.monotonic() - started < 1.5  # no second wait for every instance: it is refused already
    assert counts.queue_puts() == 0 and counts.tables() == 0


def test_closing_answers_204_and_finishes_when_its_queue_put_fails(dyte_app):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email}])
    app.storage.queues.fail("POST", rf"/{app.prefix}{schema.JOBS_QUEUE}/messages", status=503, times=10)
    try:
        assert owner.call("DELETE", "/me").status_code == 204
    finally:
        app.storage.queues.clear_faults()
    converge(app)
    assert guest.call("GET", f"/meetings/{meeting['id']}").json()["status"] == "cancelled"
    assert guest.call("GET", f"/meetings/{meeting['id']}").json()["owner"]["name"] == ""


def claimed(app, meeting, user_id) -> bool:
    key = schema.participant_key(meeting["id"], user_id)
    rows = table(app, schema.MEETINGS).query_entities(
        "PartitionKey eq @pk and RowKey eq @key", parameters={"pk": schema.owner_partition(meeting["id"]), "key": key}
    )
    return bool(list(rows))


@pytest.mark.parametrize("refusal_fails", [False, True], ids=["removed-by-the-join", "removed-by-the-closing"])
def test_a_first_join_that_outlasts_its_callers_closing_leaves_no_participant(dyte_app, refusal_fails):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    me = guest.call("GET", "/me").json()
    # The provider takes 4 s to add the participant; meanwhile the account closes, and its clean-up is not
    # queued yet (its put fails), so nothing touches the join's claim: the join itself must notice.
    app.provider.add_fault(
        method="POST", path=f"/meetings/{meeting['providerMeetingId']}/participants$", delay=4.0, apply=True, times=1
    )
    app.storage.queues.fail("POST", rf"/{app.prefix}{schema.JOBS_QUEUE}/messages", status=503, times=10)
    if refusal_fails:
        app.storage.tables.fail("POST", r"\|f\|p\|", status=503, times=10)  # the join's follow-up as it refuses
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            joining = pool.submit(guest.call, "POST", f"/meetings/{meeting['id']}/join")
            eventually(lambda: claimed(app, meeting, me["id"]), what="the join's claim")
            assert guest.call("DELETE", "/me").status_code == 204
            joined = joining.result()
    finally:
        app.storage.queues.clear_faults()
        app.storage.tables.clear_faults()
    if refusal_fails:
        assert joined.status_code == 503, joined.text
    else:
        problem(joined, 403, "forbidden")
        assert participants(app, meeting) == []  # at once: the join removed what it had added
    converge(app)
    assert participants(app, meeting) == []


def test_closing_erases_declined_and_revoked_invites_and_removes_their_participants(dyte_app):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    declined = owner.create(title="declined", invitees=[{"email": guest.email}])
    revoked = owner.create(title="revoked", invitees=[{"email": guest.email}])
    kept = owner.create(title="joined then declined", invitees=[{"email": guest.email}])
    joined = guest.call("POST", f"/meetings/{kept['id']}/join").json()
    for meeting in (declined, kept):
        assert guest.call("POST", f"/meetings/{meeting['id']}/invites/mine/decline").status_code == 204
    assert owner.call("DELETE", f"/meetings/{revoked['id']}/invites/{invite_id(guest.email)}").status_code == 204
    # Invited again after declining, they join again (and get a participant again) before closing.
    assert invite(owner, kept, (guest.email, "participant")).status_code == 201
    rejoined = guest.call("POST", f"/meetings/{kept['id']}/join").json()
    assert guest.call("DELETE", "/me").status_code == 204
    converge(app)
    for meeting in (declined, revoked, kept):
        items = owner.call("GET", f"/meetings/{meeting['id']}/invites").json()["items"]
        assert all(item["email"] != guest.email for item in items)
    for token in (joined["authToken"], rejoined["authToken"]):
        assert not app.provider.token_check(token)["valid"]
    dump = str([list(table(app, name).list_entities()) for name in (schema.MEETINGS, schema.INVITATIONS)])
    assert guest.email not in dump


def test_end_is_rate_limited_like_joins(dyte_app):
    owner = dyte_app.user("ender")
    meeting = owner.create()
    statuses = [owner.call("POST", f"/meetings/{meeting['id']}/end").status_code for _ in range(61)]
    assert statuses[:60] == [409] * 60  # nothing live
    problem(owner.call("POST", f"/meetings/{meeting['id']}/end"), 429, "rate-limited")


def sweep(app) -> None:
    """Run the pending sweep (the admin call only starts it) and wait until it has recorded its report."""
    report = table(app, schema.STATUS)

    def taken_at():
        try:
            return report.get_entity(*schema.SWEEP_REPORT)["at"]
        except Exception:  # no report yet
            return ""

    before = taken_at()
    assert requests.post(f"{app.url}/admin/functions/sweep_pending", json={"input": ""}, timeout=10).status_code == 202
    deadline = time.monotonic() + 20
    while taken_at() == before:
        assert time.monotonic() < deadline, "the sweep did not finish"
        time.sleep(0.05)


def test_health_is_degraded_with_counts_when_work_is_stuck(dyte_app):
    app = dyte_app
    converge(app)
    sweep(app)
    healthy = app.call("GET", "/health").json()
    assert healthy["status"] == "ok", healthy
    old = times.stamp(times.now().replace(year=2020))
    stuck_key = schema.pending_follow_up("A" * 38)
    table(app, schema.PENDING).upsert_entity(
        {
            "PartitionKey": "work",
            "RowKey": stuck_key,
            "queue": schema.JOBS_QUEUE,
            "message": "{}",
            "dueAt": times.stamp(times.now().replace(year=2100)),
            "createdAt": old,
        }
    )
    try:
        sweep(app)
        body = app.call("GET", "/health").json()
        assert body["status"] == "degraded"
        assert body["checks"]["stuck"]["reconciliations"] == 1
        assert "A" * 38 not in str(body)  # names and counts only
    finally:
        table(app, schema.PENDING).delete_entity("work", stuck_key)
        sweep(app)
    assert app.call("GET", "/health").json()["status"] == "ok"


# A job the webhook applier owes, whose put fails after the change committed ----------------------------------

PUT_ATTEMPTS = 3  # with the queue client's own two retries: one put fails


def test_an_end_whose_follow_up_put_fails_is_still_listed_as_ended(app):
    owner = app.user("owner")
    meeting = owner.create()
    session, pm = str(uuid.uuid4()), meeting["providerMeetingId"]
    started = webhooks.meeting_started(pm, session, mode=app.video_provider, started_at=at(0))
    assert deliver(app, started) == [200]
    eventually(lambda: status_of(owner, meeting) == ("live", "live"), what="live")
    app.storage.queues.fail("POST", rf"/{app.prefix}{schema.JOBS_QUEUE}/messages", status=503, times=PUT_ATTEMPTS)
    try:
        ended = webhooks.meeting_ended(pm, session, mode=app.video_provider, started_at=at(0), ended_at=at(5))
        assert deliver(app, ended) == [200]
        # The delivery's next attempt finds the summary owing its follow-up and queues it again.
        eventually(lambda: status_of(owner, meeting) == ("ended", "ended"), what="ended in the list")
    finally:
        app.storage.queues.clear_faults()


def test_an_upload_whose_copy_put_fails_is_still_copied(app):
    owner = app.user("owner")
    meeting = owner.create()
    app.storage.queues.fail("POST", rf"/{app.prefix}{schema.JOBS_QUEUE}/messages", status=503, times=PUT_ATTEMPTS)
    try:
        recording = record(app, meeting)
        assert copied(app, meeting, recording)["sha256"]
    finally:
        app.storage.queues.clear_faults()

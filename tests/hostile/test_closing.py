"""Closing an account (DELETE /api/me), attacked: answers that do not reflect what committed, erasure that
misses rows, and a join in flight that outlives the closing."""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from pathlib import Path

import pytest
import requests
from azure.data.tables import UpdateMode

from dev.issuer.tokens import user_object_id
from shared import accounts, followups, schema, times
from tests.api.conftest import problem
from tests.api.test_convergence import converge
from tests.api.test_joins import participants
from tests.hostile.tools import attend, deliver, domain_context, leftovers, poll, row, table
from tests.support import TENANT

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"


# Three attempts: the storage SDK retries a 503 twice.
ONE_REQUEST = 3
UNTIL_CLEARED = 10**6


def closing_answered_503(app):
    """An owner of a meeting, invited as host to another's, closes while the tombstone's insert fails:
    (owner, invitee, meeting, theirs)."""
    owner, invitee = app.user("owner"), app.user("invitee")
    meeting = owner.create(invitees=[{"email": invitee.email, "role": "participant"}])
    theirs = invitee.create(title="Invitee's own", invitees=[{"email": owner.email, "role": "host"}])
    app.storage.tables.fail("POST", rf"/{app.prefix}{schema.CLOSED_ACCOUNTS}", status=503, times=ONE_REQUEST)
    try:
        closing = owner.call("DELETE", "/me")
    finally:
        app.storage.tables.clear_faults()
    problem(closing, 503, "unavailable")  # "nothing was committed"
    return owner, invitee, meeting, theirs


def assert_still_open(owner, invitee, meeting, theirs) -> None:
    assert owner.call("GET", "/me").status_code == 200  # the account is open, as the 503 said
    # ... so nothing of it may have been closed behind its back.
    assert owner.call("GET", f"/meetings/{meeting['id']}").json()["status"] == "scheduled"
    host_invites = invitee.call("GET", f"/meetings/{theirs['id']}/invites").json()["items"]
    assert [i["email"] for i in host_invites] == [owner.email]


def closing_entry(app, user_id: str) -> dict | None:
    return row(app, schema.PENDING, schema.PENDING_PARTITION, schema.pending_close(user_id))


def retried(app, user_id: str) -> bool:
    """Whether the close-account job failed and backed off (its entry counts the attempt)."""
    return (closing_entry(app, user_id) or {}).get("attempts", 0) >= 1


def sweep_closing(app, user_id: str, announced_long_ago: bool) -> None:
    """Make the closing's entry due and run the sweep once, as time and the timer do; `announced_long_ago`:
    as if announced over a minute ago (no request can still be committing its tombstone)."""
    due = times.stamp(times.now().replace(year=2000))
    entry = {"PartitionKey": schema.PENDING_PARTITION, "RowKey": schema.pending_close(user_id), "dueAt": due}
    table(app, schema.PENDING).update_entity(
        {**entry, "createdAt": due} if announced_long_ago else entry, mode=UpdateMode.MERGE
    )
    swept = requests.post(f"{app.url}/admin/functions/sweep_pending", json={"input": ""}, timeout=10)
    assert swept.status_code == 202


def test_a_closing_answered_503_changes_nothing_afterwards(dyte_app):
    app = dyte_app
    scene = closing_answered_503(app)
    converge(app, timeout=60)
    assert_still_open(*scene)


# The job an unclosed account's entry brings back reads the tombstones, then (none found) its entry, then drops
# it once announced long enough ago. Reading the entry fails once only: then the entry is kept (announced just
# now) to be seen retried; the other steps fail until cleared.
NEVER_COMMITTED_STEPS = {
    "reading the tombstones": ("GET", r"ClosedAccounts\(\)", UNTIL_CLEARED, True),
    "reading the entry": ("GET", r"Pending\(PartitionKey='work',RowKey='c%7C{user}'\)", ONE_REQUEST, False),
    "dropping the entry": ("DELETE", r"Pending\(PartitionKey='work',RowKey='c%7C{user}'\)", UNTIL_CLEARED, True),
}


@pytest.mark.parametrize("step", NEVER_COMMITTED_STEPS)
def test_a_closing_answered_503_changes_nothing_after_a_failure_at_each_step_of_its_job(dyte_app, step):
    app = dyte_app
    scene = closing_answered_503(app)
    user_id = scene[0].call("GET", "/me").json()["id"]
    method, pattern, count, announced_long_ago = NEVER_COMMITTED_STEPS[step]
    app.storage.tables.fail(method, pattern.format(user=user_id), times=count)
    try:
        sweep_closing(app, user_id, announced_long_ago)
        poll(lambda: retried(app, user_id), timeout=30)
    finally:
        app.storage.tables.clear_faults()
    converge(app, timeout=60)
    assert closing_entry(app, user_id) is None
    assert_still_open(*scene)


def test_closing_erases_the_owners_name_from_attendance_in_their_own_meeting(dyte_app):
    app = dyte_app
    owner, host = app.user("owner"), app.user("host")
    name = f"Ozymandias Rare-{uuid.uuid4().hex[:8]}"
    owner.token = app.token(owner.email, name=name)
    meeting = owner.create(invitees=[{"email": host.email, "role": "host"}])
    joined = owner.call("POST", f"/meetings/{meeting['id']}/join").json()
    attend(app, meeting, joined, name, "s-own", "peer-own")

    def named():
        items = host.call("GET", f"/meetings/{meeting['id']}/sessions").json()["items"]
        return any(p["name"] == name for s in items for p in s["participants"])

    poll(named)
    assert owner.call("DELETE", "/me").status_code == 204
    converge(app, timeout=60)
    assert not named()  # a host of the (now cancelled) meeting still reads the closed owner's name
    assert leftovers(app, name) == []


def test_closing_erases_an_invite_bound_to_the_account_whatever_the_closing_token_says(dyte_app):
    app = dyte_app
    owner = app.user("owner")
    upn = f"carol-{uuid.uuid4().hex[:8]}@contoso.test"
    personal = f"carol.personal-{uuid.uuid4().hex[:8]}@fabrikam.test"
    with_email = app.token(upn, claims={"email": personal, "xms_edov": True})
    meeting = owner.create(invitees=[{"email": personal, "role": "participant"}])
    assert app.call("POST", f"/meetings/{meeting['id']}/join", with_email).status_code == 200
    # The same identity (tid, oid) later signs in without the optional `email` claim, and closes.
    assert app.call("DELETE", "/me", app.token(upn)).status_code == 204
    converge(app, timeout=60)
    assert participants(app, meeting) == []  # the provider side is cleaned (found through Participations)
    invites = owner.call("GET", f"/meetings/{meeting['id']}/invites").json()["items"]
    assert [i["email"] for i in invites] == []
    assert leftovers(app, personal) == []


def test_a_closing_during_a_guests_first_join_leaves_no_working_token(dyte_app):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(title="Town hall", access="organization")
    me = guest.call("GET", "/me").json()
    partition = schema.owner_partition(meeting["id"])
    claim_key = schema.participant_key(meeting["id"], me["id"])
    # The provider takes 4 s to add the participant (under the client's 5 s read timeout), then does.
    app.provider.add_fault(
        method="POST", path=f"/meetings/{meeting['providerMeetingId']}/participants$", delay=4.0, apply=True, times=1
    )
    ctx = domain_context(app)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        joining = pool.submit(guest.call, "POST", f"/meetings/{meeting['id']}/join")
        poll(lambda: row(app, schema.MEETINGS, partition, claim_key))  # the join holds its claim
        closing = pool.submit(guest.call, "DELETE", "/me")
        poll(lambda: ctx.closed.is_closed(me["id"]))  # the tombstone committed
        # The close-account job and the follow-up it marks, now rather than after a queue poll: what the app's
        # own job does within the same seconds.
        payload = {
            "userId": me["id"],
            "tenantId": me["tenantId"],
            "objectId": user_object_id(TENANT, guest.email),
            "inviteIds": [],
        }
        accounts.close_job(ctx, payload)
        followups.run(ctx, meeting["id"])
        joined = joining.result()
        assert closing.result().status_code == 204
    converge(app, timeout=60)
    if joined.status_code == 200:
        assert not app.provider.token_check(joined.json()["authToken"])["valid"]
    assert participants(app, meeting) == []


def test_closing_erases_the_name_from_a_recording_deliverys_participants_list(dyte_app):
    app = dyte_app
    owner, member = app.user("owner"), app.user("member")
    name = f"Quillon Rare-{uuid.uuid4().hex[:8]}"
    member.token = app.token(member.email, name=name)
    meeting = owner.create(invitees=[{"email": member.email, "role": "participant"}])
    joined = member.call("POST", f"/meetings/{meeting['id']}/join").json()
    attend(app, meeting, joined, name, "s-rec", "peer-rec")
    deliver(app, uploaded_2022(meeting, name))

    def recorded():
        return owner.call("GET", f"/meetings/{meeting['id']}/recordings").json()["items"]

    poll(recorded)
    assert member.call("DELETE", "/me").status_code == 204
    converge(app, timeout=60)
    assert leftovers(app, name) == []


def uploaded_2022(meeting, name: str) -> dict:
    """Dyte's 2022 recording UPLOADED sample aimed at our meeting, its first listed participant named `name`."""
    payload = json.loads((SAMPLES / "dyte-vimeo-lambda--recording.statusUpdate--UPLOADED-2022.json").read_text())
    payload = payload["payload"]
    payload["meeting"]["id"] = meeting["providerMeetingId"]
    payload["participants"][0]["name"] = name
    return payload


def closing_of_an_attendee(app):
    """An account that attended its own meeting, where a recording delivery lists its name (the meeting its
    closing erases first), and another's, through an invite at a personal address bound at its join; it closes
    signed in without that address. (the account, its user id, name, personal address, the other, their
    meeting)."""
    owner, other = app.user("owner"), app.user("other")
    name = f"Erasmus Rare-{uuid.uuid4().hex[:8]}"
    personal = f"erasmus.personal-{uuid.uuid4().hex[:8]}@fabrikam.test"
    owner.token = app.token(owner.email, name=name, claims={"email": personal, "xms_edov": True})
    own = owner.create()
    attend(app, own, owner.call("POST", f"/meetings/{own['id']}/join").json(), name, "s-own", "peer-own")
    theirs = other.create(title="Other's", invitees=[{"email": personal, "role": "participant"}])
    attend(app, theirs, owner.call("POST", f"/meetings/{theirs['id']}/join").json(), name, "s-theirs", "peer-theirs")
    deliver(app, uploaded_2022(own, name))
    poll(lambda: owner.call("GET", f"/meetings/{own['id']}/recordings").json()["items"])
    user_id = owner.call("GET", "/me").json()["id"]
    owner.token = app.token(owner.email, name=name)
    return owner, user_id, name, personal, other, theirs


# What the close-account job does that closing's fixes added: finding the addresses storage knows, erasing the
# attendance of every meeting (their own too: a tombstone, their intervals, the raw deliveries naming them,
# those of a recording's participants list included, the intervals' names last), deleting the invites at those
# addresses. Each fails until cleared; the job backs off, then finishes.
ERASURE_STEPS = {
    "finding the meetings they joined": ("GET", r"Participations\(\)"),
    "finding their addresses in a meeting": ("GET", r"Meetings\(\)\?.*boundTo"),
    "writing a tombstone": ("PATCH", r"Meetings\(.*%7Cw%7Ce%7C"),
    "reading their join intervals": ("GET", r"Meetings\(\)\?.*customParticipantId"),
    "finding the raw deliveries": ("GET", r"WebhookDeliveries\(\)\?.*meetingId"),
    "redacting a raw delivery": ("PATCH", r"WebhookDeliveries\("),
    "anonymizing a join interval": ("PATCH", r"Meetings\(.*%7Cw%7Ct%7C"),
    "deleting an invite": ("DELETE", r"Meetings\(.*%7Ci%7C"),
    "deleting an invite's index row": ("DELETE", r"Invitations\("),
}


@pytest.mark.parametrize("step", ERASURE_STEPS)
def test_closing_erases_everything_after_a_failure_at_each_step(dyte_app, step):
    app = dyte_app
    owner, user_id, name, personal, other, theirs = closing_of_an_attendee(app)
    method, pattern = ERASURE_STEPS[step]
    app.storage.tables.fail(method, pattern, times=UNTIL_CLEARED)
    try:
        assert owner.call("DELETE", "/me").status_code == 204
        poll(lambda: retried(app, user_id), timeout=30)
    finally:
        app.storage.tables.clear_faults()
    converge(app, timeout=60)
    problem(owner.call("GET", "/me"), 403, "forbidden")
    assert other.call("GET", f"/meetings/{theirs['id']}/invites").json()["items"] == []
    assert participants(app, theirs) == []
    assert leftovers(app, name, personal) == []

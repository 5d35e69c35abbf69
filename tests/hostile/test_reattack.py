"""The fixes of the first hostile review, attacked again: each test here reproduced a defect they left (a
strict xfail until it was fixed), and now holds its fix."""

from __future__ import annotations

import concurrent.futures
import re
from datetime import timedelta

import pytest
from azure.data.tables import UpdateMode

from shared import schema, times
from shared.schema import invite_id
from tests.api.conftest import problem
from tests.api.test_convergence import converge
from tests.api.test_joins import participants
from tests.hostile.tools import leftovers, poll, row, table


def age_token(app, meeting, user_id: str) -> None:
    """The participant's cached token is older than the reuse window: the next join refreshes it at the provider
    (what waiting ten seconds does)."""
    partition = schema.owner_partition(meeting["id"])
    key = schema.participant_key(meeting["id"], user_id)
    assert row(app, schema.MEETINGS, partition, key)["participantId"]
    old = times.stamp(times.now() - timedelta(minutes=5))
    table(app, schema.MEETINGS).update_entity(
        {"PartitionKey": partition, "RowKey": key, "tokenAt": old}, mode=UpdateMode.MERGE
    )


def test_a_rejoin_racing_a_revocation_leaves_the_revoked_invitee_no_token(dyte_app):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    path = f"/meetings/{meeting['id']}"
    first = guest.call("POST", f"{path}/join")
    assert first.status_code == 200, first.text  # binds the invite
    me = guest.call("GET", "/me").json()
    age_token(app, meeting, me["id"])
    # The rejoin's token refresh takes 4 s at the provider (under the client's 5 s read timeout).
    refresh = app.provider.add_fault(
        method="POST",
        path=f"/meetings/{meeting['providerMeetingId']}/participants/{first.json()['participantId']}/token$",
        delay=4.0,
        apply=True,
        times=1,
    )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        joining = pool.submit(guest.call, "POST", f"{path}/join")
        poll(lambda: refresh.times == 0)  # the rejoin read its right and waits on the provider
        assert owner.call("DELETE", f"{path}/invites/{invite_id(guest.email)}").status_code == 204
        rejoined = joining.result()
    converge(app)
    if rejoined.status_code == 200:
        assert not app.provider.token_check(rejoined.json()["authToken"])["valid"], "a revoked invitee's token works"
    assert participants(app, meeting) == []


def test_a_closing_whose_tombstone_answer_is_lost_answers_204(lossy):
    app, proxy = lossy
    owner = app.user("owner")
    assert owner.call("GET", "/me").status_code == 200
    proxy.lose(r'"closedAt"')  # the tombstone's insert: it commits, its answer is lost
    closing = owner.call("DELETE", "/me")
    assert proxy.unspent() == 0
    poll(lambda: owner.call("GET", "/me").status_code == 403)  # committed: refused within the gate's 2 s
    problem(owner.call("GET", "/me"), 403, "forbidden")
    assert closing.status_code == 204, closing.text


UNTIL_CLEARED = 10**6


@pytest.mark.xfail(
    strict=True,
    reason="accounts._invites finds the invites to erase only through the invitee index (Invitations, partition "
    "= invite id), which the meeting's follow-up writes after the invite commits; an invite whose index row is "
    "not written yet when the close-account job runs (its follow-up retrying) is never found: the invite row "
    "keeps the closed account's address, and the follow-up then indexes it",
)
def test_closing_erases_an_invite_whose_index_row_is_still_owed(dyte_app):
    app = dyte_app
    owner, invitee = app.user("owner"), app.user("invitee")
    meeting = owner.create(title="Index lagging")
    user_id = invitee.call("GET", "/me").json()["id"]
    app.storage.tables.fail("PUT", r"Invitations\(", times=UNTIL_CLEARED)  # the invitee index is unwritable
    try:
        body = {"invitees": [{"email": invitee.email, "role": "participant"}]}
        assert owner.call("POST", f"/meetings/{meeting['id']}/invites", json=body).status_code == 201
        assert invitee.call("DELETE", "/me").status_code == 204
        closing = (schema.PENDING, schema.PENDING_PARTITION, schema.pending_close(user_id))
        poll(lambda: row(app, *closing) is None, timeout=60)  # the close-account job finished
    finally:
        app.storage.tables.clear_faults()
    converge(app, timeout=60)
    invites = owner.call("GET", f"/meetings/{meeting['id']}/invites").json()["items"]
    assert [i["email"] for i in invites] == []
    assert leftovers(app, invitee.email) == []


def test_a_guests_first_join_racing_access_narrowing_leaves_no_guest_at_the_provider(lossy):
    app, proxy = lossy
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(title="Open house", access="organization")
    path = f"/meetings/{meeting['id']}"
    guest_id = guest.call("GET", "/me").json()["id"]
    # The guest's participation (written after its right was read, before its claim) is slow to store.
    arrived, release = proxy.hold(rf"Participations\(PartitionKey='{guest_id}'")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        joining = pool.submit(guest.call, "POST", f"{path}/join")
        assert arrived.wait(30)
        try:
            narrowed = owner.call("PATCH", path, json={"access": "invited"})
        finally:
            release.set()
        assert narrowed.status_code == 200, narrowed.text
        joined = joining.result()
    converge(app)
    problem(guest.call("GET", path), 404, "not-found")
    if joined.status_code == 200:
        assert not app.provider.token_check(joined.json()["authToken"])["valid"], "a guest's token still works"
    assert participants(app, meeting) == []


def test_a_first_join_racing_a_revocation_leaves_no_participant_when_its_follow_up_cannot_be_marked(dyte_app):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    path = f"/meetings/{meeting['id']}"
    # The provider takes 4 s to add the participant (under the client's 5 s read timeout), then does.
    add = app.provider.add_fault(
        method="POST", path=f"/meetings/{meeting['providerMeetingId']}/participants$", delay=4.0, apply=True, times=1
    )
    entry = rf"Pending\(PartitionKey='work',RowKey='{re.escape(schema.pending_follow_up(meeting['id']))}'\)"
    entry = entry.replace("\\|", "%7C")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        joining = pool.submit(guest.call, "POST", f"{path}/join")
        poll(lambda: add.times == 0)  # the join holds its claim and waits on the provider
        try:
            assert owner.call("DELETE", f"{path}/invites/{invite_id(guest.email)}").status_code == 204
            app.storage.tables.fail("PATCH", entry, times=UNTIL_CLEARED)  # announcing the meeting's follow-up fails
            joined = joining.result()
        finally:
            app.storage.tables.clear_faults()
    assert joined.status_code in (404, 503), joined.text
    converge(app)
    assert participants(app, meeting) == []


def test_a_timed_out_first_join_applied_after_the_revocation_leaves_no_participant(dyte_app):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    path = f"/meetings/{meeting['id']}"
    # The provider adds the participant 8 s after the request, after the client's 5 s read timeout.
    app.provider.add_fault(
        method="POST", path=f"/meetings/{meeting['providerMeetingId']}/participants$", delay=8.0, apply=True, times=1
    )
    problem(guest.call("POST", f"{path}/join"), 504, "provider-timeout")  # nothing of ours committed
    assert owner.call("DELETE", f"{path}/invites/{invite_id(guest.email)}").status_code == 204
    poll(lambda: participants(app, meeting), timeout=30)  # the provider applies the add it was sent
    converge(app)
    assert participants(app, meeting) == []

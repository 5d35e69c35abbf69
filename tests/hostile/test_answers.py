"""Answers against commits (contract: 2xx once our change is committed, 5xx only when nothing was).

Storage failing halfway is not only a refused request: a request can commit and its answer be lost (a
connection reset, a timeout after the server committed). `LossyProxy` forwards a request to Azurite and then
drops the connection, so the app sees a failure for a change that committed.
"""

from __future__ import annotations

import re
import uuid

from shared.schema import invite_id
from tests.api.test_joins import participants
from tests.api.test_meetings import provider_meeting


def test_a_create_whose_commit_answer_is_lost_leaves_no_unjoinable_meeting(lossy):
    app, proxy = lossy
    owner = app.user("owner")
    title = f"Lost-{uuid.uuid4().hex}"
    key = {"Idempotency-Key": f"create-{uuid.uuid4().hex}"}
    proxy.lose(title)  # the first table request naming the title: the create's batch
    first = owner.call("POST", "/meetings", json={"title": title}, headers=key)
    again = owner.call("POST", "/meetings", json={"title": title}, headers=key)  # the client retries the 5xx
    assert again.status_code == 201, again.text
    mine = [m for m in owner.call("GET", "/meetings?scope=owned").json()["items"] if m["title"] == title]
    assert [m["id"] for m in mine] == [again.json()["id"]]  # one meeting: it committed the first time
    joined = owner.call("POST", f"/meetings/{mine[0]['id']}/join").json()
    assert provider_meeting(app, mine[0]).status == "ACTIVE"
    assert app.provider.token_check(joined["authToken"])["valid"]
    assert first.status_code == 201, first.text


def test_a_revoke_whose_commit_answer_is_lost_answers_204(lossy):
    app, proxy = lossy
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    proxy.lose(r'"status": ?"revoked"')
    revoked = owner.call("DELETE", f"/meetings/{meeting['id']}/invites/{invite_id(guest.email)}")
    assert guest.call("GET", f"/meetings/{meeting['id']}").status_code == 404  # committed: refused at once
    assert revoked.status_code == 204, revoked.text


def test_a_first_join_answered_503_binds_nothing(dyte_app):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    app.provider.add_fault(
        method="POST", path=f"/meetings/{meeting['providerMeetingId']}/participants$", status=503, times=1
    )
    failed = guest.call("POST", f"/meetings/{meeting['id']}/join")
    assert failed.status_code == 503, failed.text
    other_identity = app.token(guest.email, oid=str(uuid.uuid4()))  # the same verified address
    [invite] = owner.call("GET", f"/meetings/{meeting['id']}/invites").json()["items"]
    assert (invite["status"], invite["acceptedAt"]) == ("pending", None)
    assert app.call("GET", f"/meetings/{meeting['id']}", other_identity).status_code == 200


def test_a_first_join_whose_final_write_answer_is_lost_answers_200(lossy):
    app, proxy = lossy
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    proxy.lose(r'"boundTo": ?"[^"]')  # the join's final write: the participant, with the invite's binding
    joined = guest.call("POST", f"/meetings/{meeting['id']}/join")
    assert joined.status_code == 200, joined.text  # it committed
    assert app.provider.token_check(joined.json()["authToken"])["valid"]
    assert [p["id"] for p in participants(app, meeting)] == [joined.json()["participantId"]]
    [invite] = owner.call("GET", f"/meetings/{meeting['id']}/invites").json()["items"]
    assert invite["status"] == "accepted"


# Held since the unit of work reads a lost answer back (`storage.Batch`): every change that commits answers 2xx.


def test_an_edit_whose_commit_answer_is_lost_answers_the_edited_meeting(lossy):
    app, proxy = lossy
    owner = app.user("owner")
    meeting = owner.create(title="Draft")
    title = f"Edited-{uuid.uuid4().hex}"
    proxy.lose(title)  # the edit's batch: the first table request naming the new title
    edited = owner.call("PATCH", f"/meetings/{meeting['id']}", json={"title": title})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["title"], edited.json()["version"], edited.headers["ETag"]) == (title, 2, '"2"')
    assert owner.call("GET", f"/meetings/{meeting['id']}").json()["version"] == 2
    assert proxy.unspent() == 0


def test_invites_cancel_and_decline_whose_commit_answers_are_lost_answer_2xx(lossy):
    app, proxy = lossy
    owner, guest, other = app.user("owner"), app.user("guest"), app.user("other")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    path = f"/meetings/{meeting['id']}"
    proxy.lose(re.escape(other.email))
    invited = owner.call("POST", f"{path}/invites", json={"invitees": [{"email": other.email, "role": "host"}]})
    assert invited.status_code == 201, invited.text
    assert other.call("GET", path).json()["myRole"] == "host"
    proxy.lose(r'"status": ?"declined"')
    assert guest.call("POST", f"{path}/invites/mine/decline").status_code == 204
    assert meeting["id"] not in [m["id"] for m in guest.call("GET", "/meetings").json()["items"]]
    proxy.lose(r'"cancelledAt": ?"\d{4}-')
    assert owner.call("DELETE", path).status_code == 204
    assert owner.call("GET", path).json()["status"] == "cancelled"
    assert provider_meeting(app, meeting).status == "INACTIVE"  # the follow-up ran after the commit read back
    assert proxy.unspent() == 0


def test_a_create_whose_lost_answer_cannot_be_read_back_keeps_its_provider_meeting(lossy):
    """Unknown whether it committed: 503 (retry), and the provider meeting is not deactivated, since the
    meeting may exist; here it does, and the retry with the same key replays it, joinable."""
    app, proxy = lossy
    owner = app.user("owner")
    title = f"Unknown-{uuid.uuid4().hex}"
    key = {"Idempotency-Key": f"create-{uuid.uuid4().hex}"}
    proxy.lose(title)
    proxy.fail("GET", rf"/{app.prefix}Meetings\(PartitionKey=", status=503, times=3)  # the read-back, retried
    try:
        first = owner.call("POST", "/meetings", json={"title": title}, headers=key)
    finally:
        proxy.clear_faults()
    assert first.status_code == 503, first.text
    assert proxy.unspent() == 0
    again = owner.call("POST", "/meetings", json={"title": title}, headers=key)
    assert again.status_code == 201, again.text
    assert provider_meeting(app, again.json()).status == "ACTIVE"
    joined = owner.call("POST", f"/meetings/{again.json()['id']}/join").json()
    assert app.provider.token_check(joined["authToken"])["valid"]

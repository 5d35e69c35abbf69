"""Invitations over HTTP: roles, rules, caps, revocation and declining (contract sections 2 and 3)."""

import concurrent.futures
import uuid

import pytest

from shared import schema
from shared.schema import invite_id
from tests.api.conftest import problem
from tests.api.test_convergence import converge, pending_entries, preset
from tests.api.test_joins import participants


def invite(user, meeting, *invitees):
    body = {"invitees": [{"email": email, "role": role} for email, role in invitees]}
    return user.call("POST", f"/meetings/{meeting['id']}/invites", json=body)


def test_owner_invites_and_invitees_see_the_meeting_at_once(app):
    owner, host, guest = app.user("owner"), app.user("host"), app.user("guest")
    meeting = owner.create(title="Review", startsAt="2031-05-01T10:00:00Z")
    response = invite(owner, meeting, (host.email.upper(), "host"), (guest.email, "participant"))
    assert response.status_code == 201, response.text
    items = response.json()["items"]
    assert [(item["email"], item["role"], item["status"]) for item in items] == [
        (host.email, "host", "pending"),
        (guest.email, "participant", "pending"),
    ]
    assert items[0]["id"] == invite_id(host.email) and len(items[0]["id"]) == 22
    assert items[0]["invitedBy"] == owner.call("GET", "/me").json()["id"]
    assert items[0]["acceptedAt"] is None
    listed = guest.call("GET", "/meetings?scope=invited").json()["items"]
    assert [(item["id"], item["myRole"]) for item in listed] == [(meeting["id"], "participant")]
    assert host.call("GET", f"/meetings/{meeting['id']}").json()["myRole"] == "host"
    assert guest.call("GET", "/meetings?scope=owned").json()["items"] == []


def test_reinvite_updates_the_role_without_duplicating(app):
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create()
    invite(owner, meeting, (guest.email, "participant"))
    again = invite(owner, meeting, (guest.email, "host")).json()["items"]
    assert [(i["email"], i["role"]) for i in again] == [(guest.email, "host")]
    listed = owner.call("GET", f"/meetings/{meeting['id']}/invites").json()
    assert [(i["email"], i["role"]) for i in listed["items"]] == [(guest.email, "host")]
    assert guest.call("GET", f"/meetings/{meeting['id']}").json()["myRole"] == "host"


def test_only_owner_and_hosts_see_invites_and_participants_cannot_invite(app):
    owner, host, guest = app.user("owner"), app.user("host"), app.user("guest")
    meeting = owner.create()
    invite(owner, meeting, (host.email, "host"), (guest.email, "participant"))
    assert host.call("GET", f"/meetings/{meeting['id']}/invites").status_code == 200
    response = guest.call("GET", f"/meetings/{meeting['id']}/invites")
    problem(response, 403, "forbidden")
    assert host.email not in response.text
    problem(invite(guest, meeting, ("x@contoso.test", "participant")), 403, "forbidden")


def test_host_rules(app):
    owner, host, cohost = app.user("owner"), app.user("host"), app.user("cohost")
    meeting = owner.create()
    invite(owner, meeting, (host.email, "host"), (cohost.email, "host"), ("gone@contoso.test", "participant"))
    owner.call("DELETE", f"/meetings/{meeting['id']}/invites/{invite_id('gone@contoso.test')}")
    assert invite(host, meeting, ("new@contoso.test", "participant")).status_code == 201
    problem(invite(host, meeting, ("boss@contoso.test", "host")), 403, "forbidden")
    problem(invite(host, meeting, (cohost.email, "participant")), 403, "forbidden")
    problem(invite(host, meeting, ("gone@contoso.test", "participant")), 403, "forbidden")
    problem(host.call("DELETE", f"/meetings/{meeting['id']}/invites/{invite_id('new@contoso.test')}"), 403, "forbidden")
    roles = {
        i["email"]: (i["role"], i["status"])
        for i in owner.call("GET", f"/meetings/{meeting['id']}/invites").json()["items"]
    }
    assert roles[cohost.email] == ("host", "pending")
    assert roles["gone@contoso.test"] == ("participant", "revoked")


@pytest.mark.parametrize(
    "body",
    [
        {"invitees": []},
        {"invitees": [{"email": f"p{i}@contoso.test"} for i in range(51)]},
        {"invitees": [{"email": "a@contoso.test"}, {"email": "A@contoso.test"}]},
        {"invitees": [{"email": "a@contoso.test", "role": "owner"}]},
        {"invitees": [{"email": "a@contoso.test", "colour": "red"}]},
        {"invitees": "a@contoso.test"},
        {"people": []},
    ],
)
def test_bad_invite_bodies_are_400_and_change_nothing(app, body):
    owner = app.user("owner")
    meeting = owner.create()
    counts = app.counts()
    problem(owner.call("POST", f"/meetings/{meeting['id']}/invites", json=body), 400, "validation")
    assert counts.tables() == 0


def test_a_meeting_takes_at_most_500_invites(dyte_app):
    owner, host = dyte_app.user("owner"), dyte_app.user("host")
    meeting = owner.create()
    invite(owner, meeting, (host.email, "host"))
    for batch in range(9):
        people = [(f"p{batch}-{i}@contoso.test", "participant") for i in range(50)]
        inviter = owner if batch < 5 else host
        assert invite(inviter, meeting, *people).status_code == 201
    last = [(f"last-{i}@contoso.test", "participant") for i in range(49)]
    assert invite(host, meeting, *last).status_code == 201
    problem(invite(host, meeting, ("one-too-many@contoso.test", "participant")), 409, "conflict")
    # Re-inviting someone already invited adds nothing, so it still works at the cap.
    assert invite(host, meeting, ("p0-0@contoso.test", "participant")).status_code == 201
    pages, cursor = [], None
    while True:
        query = f"?limit=100&cursor={cursor}" if cursor else "?limit=100"
        page = owner.call("GET", f"/meetings/{meeting['id']}/invites{query}").json()
        pages += page["items"]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(pages) == 500 and len({i["id"] for i in pages}) == 500


def test_revoke_is_idempotent_and_the_invitee_loses_every_relation(app):
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create()
    invite(owner, meeting, (guest.email, "participant"))
    joined = guest.call("POST", f"/meetings/{meeting['id']}/join").json()
    assert app.provider.token_check(joined["authToken"])["valid"]
    path = f"/meetings/{meeting['id']}/invites/{invite_id(guest.email)}"
    assert owner.call("DELETE", path).status_code == 204
    assert owner.call("DELETE", path).status_code == 204
    problem(guest.call("GET", f"/meetings/{meeting['id']}"), 404, "not-found")
    counts = app.counts()
    problem(guest.call("POST", f"/meetings/{meeting['id']}/join"), 404, "not-found")
    assert counts.provider_calls() == []
    assert guest.call("GET", "/meetings").json()["items"] == []
    assert not app.provider.token_check(joined["authToken"])["valid"]
    problem(
        owner.call("DELETE", f"/meetings/{meeting['id']}/invites/{invite_id('nobody@contoso.test')}"), 404, "not-found"
    )
    # Invited again: pending, unbound, and a fresh provider participant on the next join.
    assert invite(owner, meeting, (guest.email, "participant")).json()["items"][0]["status"] == "pending"
    rejoined = guest.call("POST", f"/meetings/{meeting['id']}/join").json()
    assert rejoined["participantId"] != joined["participantId"]
    assert app.provider.token_check(rejoined["authToken"])["valid"]


def test_revoke_survives_a_provider_outage(dyte_app):
    owner, guest = dyte_app.user("owner"), dyte_app.user("guest")
    meeting = owner.create()
    invite(owner, meeting, (guest.email, "participant"))
    joined = guest.call("POST", f"/meetings/{meeting['id']}/join").json()
    dyte_app.provider.add_fault(method="GET", path="active-session", status=503, times=1)
    counts = dyte_app.counts()
    assert owner.call("DELETE", f"/meetings/{meeting['id']}/invites/{invite_id(guest.email)}").status_code == 204
    assert counts.queue_puts() == 1
    problem(guest.call("POST", f"/meetings/{meeting['id']}/join"), 404, "not-found")
    dyte_app.settle()
    assert not dyte_app.provider.token_check(joined["authToken"])["valid"]


def test_decline_removes_the_meeting_from_the_list_and_the_owner_sees_it(app):
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create()
    invite(owner, meeting, (guest.email, "participant"))
    assert guest.call("POST", f"/meetings/{meeting['id']}/invites/mine/decline").status_code == 204
    assert guest.call("POST", f"/meetings/{meeting['id']}/invites/mine/decline").status_code == 204
    assert guest.call("GET", "/meetings").json()["items"] == []
    statuses = [i["status"] for i in owner.call("GET", f"/meetings/{meeting['id']}/invites").json()["items"]]
    assert statuses == ["declined"]
    problem(owner.call("POST", f"/meetings/{meeting['id']}/invites/mine/decline"), 403, "forbidden")
    problem(app.user("stranger").call("POST", f"/meetings/{meeting['id']}/invites/mine/decline"), 404, "not-found")


def test_a_declined_invitee_is_no_longer_invited_until_invited_again(app):
    """Contract: invitees are "pending or accepted, not revoked or declined"; declining again is a 204."""
    owner, guest = app.user("owner"), app.user("guest")
    closed = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    shared = owner.create(access="organization", invitees=[{"email": guest.email, "role": "host"}])
    for meeting in (closed, shared):
        assert guest.call("POST", f"/meetings/{meeting['id']}/invites/mine/decline").status_code == 204
        assert guest.call("POST", f"/meetings/{meeting['id']}/invites/mine/decline").status_code == 204
    problem(guest.call("GET", f"/meetings/{closed['id']}"), 404, "not-found")
    problem(guest.call("POST", f"/meetings/{closed['id']}/join"), 404, "not-found")
    # Declining is not a revocation: with organization access they may come as anyone signed in does.
    assert guest.call("GET", f"/meetings/{shared['id']}").json()["myRole"] == "guest"
    problem(guest.call("GET", f"/meetings/{shared['id']}/invites"), 403, "forbidden")
    assert guest.call("POST", f"/meetings/{shared['id']}/join").json()["role"] == "guest"
    assert guest.call("GET", "/meetings").json()["items"] == []
    for meeting, role in ((closed, "participant"), (shared, "host")):
        assert invite(owner, meeting, (guest.email, role)).status_code == 201
        assert guest.call("GET", f"/meetings/{meeting['id']}").json()["myRole"] == role
    assert guest.call("POST", f"/meetings/{shared['id']}/join").json()["role"] == "host"


def test_reinviting_after_a_revocation_clears_the_binding(app):
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    path = f"/meetings/{meeting['id']}"
    assert guest.call("POST", f"{path}/join").status_code == 200  # binds the invite to this identity
    other_identity = app.token(guest.email, oid=str(uuid.uuid4()))  # the same verified address
    problem(app.call("GET", path, other_identity), 404, "not-found")
    assert owner.call("DELETE", f"{path}/invites/{invite_id(guest.email)}").status_code == 204
    assert invite(owner, meeting, (guest.email, "participant")).status_code == 201
    assert app.call("GET", path, other_identity).json()["myRole"] == "participant"
    assert app.call("POST", f"{path}/join", other_identity).status_code == 200  # and binds it to them now
    problem(guest.call("GET", path), 404, "not-found")


def test_concurrent_invites_and_revocations_lose_no_update(dyte_app):
    owner = dyte_app.user("owner")
    meeting = owner.create()
    doomed = [f"doomed-{i}@contoso.test" for i in range(10)]
    invite(owner, meeting, *[(email, "participant") for email in doomed])

    def add(n):
        return invite(owner, meeting, *[(f"w{n}-{i}@contoso.test", "participant") for i in range(5)]).status_code

    def revoke(email):
        return owner.call("DELETE", f"/meetings/{meeting['id']}/invites/{invite_id(email)}").status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        added = list(pool.map(add, range(12)))
        revoked = list(pool.map(revoke, doomed))
    assert set(added) == {201} and set(revoked) == {204}
    items = owner.call("GET", f"/meetings/{meeting['id']}/invites?limit=100").json()["items"]
    statuses = {i["email"]: i["status"] for i in items}
    assert len(statuses) == 70
    assert all(statuses[email] == "revoked" for email in doomed)
    assert sum(status == "pending" for status in statuses.values()) == 60


def test_invite_rate_limit(dyte_app):
    owner = dyte_app.user("owner")
    meeting = owner.create()
    for batch in range(6):
        assert (
            invite(owner, meeting, *[(f"r{batch}-{i}@contoso.test", "participant") for i in range(50)]).status_code
            == 201
        )
    problem(invite(owner, meeting, ("r-extra@contoso.test", "participant")), 429, "rate-limited")


def test_fifty_joined_invitees_promoted_at_once_converge_when_the_late_touches_fail(dyte_app):
    """Fifty invites and their participants' touches exceed one transaction: the touches it has no room for are
    written right after it. When that write fails the change stands (201) and its follow-up is left to the sweep
    (run after any join in flight has finished), which still gives every participant the host preset."""
    app = dyte_app
    owner = app.user("owner")
    users = [app.user(f"p{n}") for n in range(50)]
    meeting = owner.create(invitees=[{"email": u.email, "role": "participant"} for u in users])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda u: u.call("POST", f"/meetings/{meeting['id']}/join").status_code, users)) == {200}
    # The touches after the commit: a transaction of participant touches without the meeting row's counter.
    app.storage.tables.fail("POST", r"^(?![\s\S]*inviteCount)[\s\S]*touchedAt", status=503, times=3)
    try:
        body = {"invitees": [{"email": u.email, "role": "host"} for u in users]}
        response = owner.call("POST", f"/meetings/{meeting['id']}/invites", json=body)
    finally:
        app.storage.tables.clear_faults()
    assert response.status_code == 201, response.text
    assert {item["role"] for item in response.json()["items"]} == {"host"}
    assert schema.pending_follow_up(meeting["id"]) in [entry["RowKey"] for entry in pending_entries(app)]
    assert {p["preset_name"] for p in participants(app, meeting)} == {preset(app, "participant")}
    converge(app)
    assert {p["preset_name"] for p in participants(app, meeting)} == {preset(app, "host")}
    assert {u.call("GET", f"/meetings/{meeting['id']}").json()["myRole"] for u in users} == {"host"}

"""Organization access (contract sections 2 and 3): colleagues with the link join as guests, whom the
provider's waiting room holds; guests get nothing else, and lose their place when access narrows."""

from __future__ import annotations

import pytest

from shared.schema import invite_id
from tests.api.conftest import problem
from tests.api.test_convergence import converge
from tests.api.test_joins import participants

OTHER_TENANT = "0b0b0b0b-1111-4222-8333-444444444444"


def guest_preset(app) -> str:
    return "group_call_guest" if app.video_provider == "dyte" else "group-call-guest"


def test_access_is_invited_by_default_and_set_by_the_owner_on_create_and_patch(app):
    owner = app.user("owner")
    meeting = owner.create()
    assert meeting["access"] == "invited"
    opened = owner.create(access="organization")
    assert opened["access"] == "organization"
    path = f"/meetings/{meeting['id']}"
    patched = owner.call("PATCH", path, json={"access": "organization"})
    assert patched.status_code == 200 and patched.json()["access"] == "organization"
    assert patched.json()["version"] == meeting["version"] + 1
    problem(owner.call("PATCH", path, json={"access": "public"}), 400, "validation")
    problem(owner.call("PATCH", path, json={"access": None}), 400, "validation")
    problem(owner.call("POST", "/meetings", json={"title": "x", "access": "everyone"}), 400, "validation")


def test_a_colleague_with_the_link_gets_the_guest_view_and_joins_with_the_guest_preset(app):
    owner, colleague = app.user("owner"), app.user("colleague")
    meeting = owner.create(title="All hands", access="organization")
    path = f"/meetings/{meeting['id']}"
    seen = colleague.call("GET", path)
    assert seen.status_code == 200
    assert seen.json()["myRole"] == "guest"
    assert seen.json()["title"] == "All hands" and seen.json()["access"] == "organization"
    joined = colleague.call("POST", f"{path}/join")
    assert joined.status_code == 200, joined.text
    assert (joined.json()["role"], joined.json()["preset"]) == ("guest", guest_preset(app))
    [participant] = participants(app, meeting)
    assert participant["preset_name"] == guest_preset(app)
    # Guests do not see the meeting in their list: they only hold a link.
    assert colleague.call("GET", "/meetings").json()["items"] == []


def test_guests_are_refused_every_owner_and_host_action(app):
    owner, colleague = app.user("owner"), app.user("colleague")
    meeting = owner.create(access="organization", invitees=[{"email": "someone@contoso.test"}])
    path = f"/meetings/{meeting['id']}"
    for method, route, body in (
        ("PATCH", path, {"title": "mine now"}),
        ("DELETE", path, None),
        ("POST", f"{path}/invites", {"invitees": [{"email": "x@contoso.test"}]}),
        ("GET", f"{path}/invites", None),
        ("GET", f"{path}/sessions", None),
        ("GET", f"{path}/recordings", None),
        ("POST", f"{path}/end", None),
        ("POST", f"{path}/invites/mine/decline", None),
        ("DELETE", f"{path}/invites/{invite_id('someone@contoso.test')}", None),
    ):
        response = colleague.call(method, route, json=body) if body is not None else colleague.call(method, route)
        problem(response, 403, "forbidden")
    assert owner.call("GET", path).json()["title"] == meeting["title"]


def test_a_user_of_a_tenant_not_allowed_is_still_401(app):
    owner = app.user("owner")
    meeting = owner.create(access="organization")
    outsider = app.token("mallory@fabrikam.test", tenant=OTHER_TENANT)
    problem(app.call("GET", f"/meetings/{meeting['id']}", outsider), 401, "unauthorized")
    problem(app.call("POST", f"/meetings/{meeting['id']}/join", outsider), 401, "unauthorized")


def test_a_revoked_invitee_stays_out_of_an_organization_meeting(app):
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(access="organization", invitees=[{"email": guest.email}])
    assert owner.call("DELETE", f"/meetings/{meeting['id']}/invites/{invite_id(guest.email)}").status_code == 204
    problem(guest.call("GET", f"/meetings/{meeting['id']}"), 404, "not-found")
    problem(guest.call("POST", f"/meetings/{meeting['id']}/join"), 404, "not-found")


def test_an_invitee_keeps_their_role_in_an_organization_meeting(app):
    owner, host = app.user("owner"), app.user("host")
    meeting = owner.create(access="organization", invitees=[{"email": host.email, "role": "host"}])
    assert host.call("GET", f"/meetings/{meeting['id']}").json()["myRole"] == "host"
    assert host.call("POST", f"/meetings/{meeting['id']}/join").json()["role"] == "host"


def test_narrowing_access_removes_guests_at_the_provider(app):
    owner, colleague, guest = app.user("owner"), app.user("colleague"), app.user("guest")
    meeting = owner.create(access="organization", invitees=[{"email": guest.email}])
    path = f"/meetings/{meeting['id']}"
    as_guest = colleague.call("POST", f"{path}/join").json()
    as_invitee = guest.call("POST", f"{path}/join").json()
    assert owner.call("PATCH", path, json={"access": "invited"}).status_code == 200
    problem(colleague.call("GET", path), 404, "not-found")
    problem(colleague.call("POST", f"{path}/join"), 404, "not-found")
    converge(app)
    assert not app.provider.token_check(as_guest["authToken"])["valid"]
    assert app.provider.token_check(as_invitee["authToken"])["valid"]
    assert [p["custom_participant_id"] for p in participants(app, meeting)] != []
    assert len(participants(app, meeting)) == 1


def test_an_invite_later_turns_a_guest_into_a_participant(app):
    owner, colleague = app.user("owner"), app.user("colleague")
    meeting = owner.create(access="organization")
    path = f"/meetings/{meeting['id']}"
    first = colleague.call("POST", f"{path}/join").json()
    assert first["preset"] == guest_preset(app)
    body = {"invitees": [{"email": colleague.email, "role": "participant"}]}
    assert owner.call("POST", f"{path}/invites", json=body).status_code == 201
    converge(app)
    again = colleague.call("POST", f"{path}/join").json()
    assert again["role"] == "participant" and again["participantId"] == first["participantId"]
    [participant] = participants(app, meeting)
    assert participant["preset_name"] != guest_preset(app)


@pytest.mark.parametrize("start", ["2031-01-01T10:00:00Z"])
def test_the_join_window_applies_to_guests_as_to_participants(app, start):
    owner, colleague = app.user("owner"), app.user("colleague")
    meeting = owner.create(access="organization", startsAt=start)
    early = problem(colleague.call("POST", f"/meetings/{meeting['id']}/join"), 409, "join-window")
    assert early["joinOpensAt"] == "2031-01-01T09:45:00Z"
    assert owner.call("POST", f"/meetings/{meeting['id']}/join").status_code == 200

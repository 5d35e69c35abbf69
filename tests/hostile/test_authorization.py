"""Who may do what (contract sections 2 and 3), attacked with the identities the contract names."""

from __future__ import annotations

import uuid

from dev.issuer.tokens import user_object_id
from shared.schema import invite_id
from tests.api.conftest import problem
from tests.api.test_convergence import converge, invite
from tests.support import TENANT


def test_a_host_who_declined_keeps_no_host_rights(dyte_app):
    app = dyte_app
    owner, host, other = app.user("owner"), app.user("host"), app.user("other")
    meeting = owner.create(
        invitees=[{"email": host.email, "role": "host"}, {"email": other.email, "role": "participant"}]
    )
    path = f"/meetings/{meeting['id']}"
    assert host.call("GET", f"{path}/invites").status_code == 200  # a host, before declining
    assert host.call("POST", f"{path}/invites/mine/decline").status_code == 204
    assert meeting["id"] not in [m["id"] for m in host.call("GET", "/meetings").json()["items"]]
    listed = host.call("GET", f"{path}/invites")
    assert other.email not in listed.text
    assert listed.status_code in (403, 404)
    added = host.call("POST", f"{path}/invites", json={"invitees": [{"email": "new@contoso.test"}]})
    assert added.status_code in (403, 404)
    assert host.call("GET", f"{path}/sessions").status_code in (403, 404)


def test_a_binding_survives_a_decline_and_a_reinvite(dyte_app):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    path = f"/meetings/{meeting['id']}"
    assert guest.call("POST", f"{path}/join").status_code == 200  # binds the invite to this identity
    other_identity = app.token(guest.email, oid=str(uuid.uuid4()))
    problem(app.call("GET", path, other_identity), 404, "not-found")
    assert guest.call("POST", f"{path}/invites/mine/decline").status_code == 204
    assert invite(owner, meeting, (guest.email, "participant")).status_code == 201
    problem(app.call("GET", path, other_identity), 404, "not-found")
    problem(app.call("POST", f"{path}/join", other_identity), 404, "not-found")


def test_a_revoked_invitee_stays_out_after_their_address_changes(dyte_app):
    app = dyte_app
    owner = app.user("owner")
    old = f"bob-{uuid.uuid4().hex[:8]}@contoso.test"
    renamed = app.token(f"robert-{uuid.uuid4().hex[:8]}@contoso.test", oid=user_object_id(TENANT, old))
    meeting = owner.create(access="organization", invitees=[{"email": old, "role": "participant"}])
    path = f"/meetings/{meeting['id']}"
    assert app.call("POST", f"{path}/join", app.token(old)).status_code == 200  # binds the invite to (tid, oid)
    assert owner.call("DELETE", f"{path}/invites/{invite_id(old)}").status_code == 204
    converge(app)
    assert app.call("GET", "/me", renamed).json()["id"] == app.call("GET", "/me", app.token(old)).json()["id"]
    problem(app.call("GET", path, app.token(old)), 404, "not-found")
    joined = app.call("POST", f"{path}/join", renamed)
    converge(app)
    if joined.status_code == 200:
        assert not app.provider.token_check(joined.json()["authToken"])["valid"]
    problem(app.call("GET", path, renamed), 404, "not-found")

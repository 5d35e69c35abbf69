"""Input that gives a 5xx (contract: no input may ever produce a 500), and lists that page wrongly."""

from __future__ import annotations

import concurrent.futures
import uuid
from urllib.parse import quote

import pytest

from tests.api.conftest import problem

# A cursor of the exact shape the server issues (base64url body, a 22-character seal), not issued by it.
WELL_FORMED_CURSOR = "WyJzfCJd.AAAAAAAAAAAAAAAAAAAAAA"


@pytest.mark.parametrize("route", ["invites", "sessions", "recordings"])
def test_a_non_ascii_meeting_id_with_a_cursor_is_not_a_500(dyte_app, route):
    owner = dyte_app.user("owner")
    response = owner.call("GET", f"/meetings/{quote('é' * 38)}/{route}", params={"cursor": WELL_FORMED_CURSOR})
    assert response.status_code in (400, 404), response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")


def test_changing_the_role_of_fifty_joined_invitees_at_once_is_not_a_500(dyte_app):
    app = dyte_app
    owner = app.user("owner")
    users = [app.user(f"p{n}") for n in range(50)]
    meeting = owner.create(invitees=[{"email": u.email, "role": "participant"} for u in users])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        joins = list(pool.map(lambda u: u.call("POST", f"/meetings/{meeting['id']}/join").status_code, users))
    assert joins == [200] * 50
    body = {"invitees": [{"email": u.email, "role": "host"} for u in users]}
    response = owner.call("POST", f"/meetings/{meeting['id']}/invites", json=body)
    assert response.status_code < 500, response.text
    assert response.status_code == 201


def test_paging_the_list_shows_each_meeting_once_with_the_strongest_role(dyte_app):
    app = dyte_app
    owner = app.user("owner")
    upn = f"dana-{uuid.uuid4().hex[:8]}@contoso.test"
    mail = f"dana.mail-{uuid.uuid4().hex[:8]}@fabrikam.test"
    token = app.token(upn, claims={"email": mail, "xms_edov": True})
    owner.create(
        title="both",
        startsAt="2030-01-01T10:00:00Z",
        invitees=[{"email": upn, "role": "participant"}, {"email": mail, "role": "host"}],
    )
    owner.create(title="later", startsAt="2030-01-02T10:00:00Z", invitees=[{"email": upn, "role": "participant"}])
    whole = [(m["title"], m["myRole"]) for m in app.call("GET", "/meetings", token).json()["items"]]
    assert whole == [("both", "host"), ("later", "participant")]
    paged, cursor = [], None
    for _ in range(5):
        page = app.call("GET", "/meetings", token, params={"limit": 1, **({"cursor": cursor} if cursor else {})})
        paged += [(m["title"], m["myRole"]) for m in page.json()["items"]]
        cursor = page.json()["nextCursor"]
        if cursor is None:
            break
    assert paged == whole


def test_repeated_query_parameters_are_400(dyte_app):
    """Held: repeated parameters arrive joined with a comma (as the Functions host joins them) and are refused."""
    owner = dyte_app.user("owner")
    problem(owner.call("GET", "/meetings?limit=5&limit=5"), 400, "validation")
    problem(owner.call("GET", "/meetings?scope=owned&scope=owned"), 400, "validation")

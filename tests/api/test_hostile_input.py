"""Any input, on every route: a clear 400 (or the route's own refusal), never a 5xx, nothing changed.

The cases the fidelity review found give a 5xx or were accepted wrongly before; then a bounded Hypothesis
fuzzer writes raw JSON (so lone surrogate escapes reach the server as such) with Unicode, integer, date and
cursor edges into every route's fields.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import problem

LISTS = ["/meetings", "/meetings/{id}/invites", "/meetings/{id}/sessions", "/meetings/{id}/recordings"]
BAD_LIMITS = ["²", "①", "٣", "1" * 5000, "-1", "+5", " 5", "5.0", "0x10", "１０"]


def raw(user, method, path, text: str):
    return user.call(
        method, path, data=text.encode("utf-8", "surrogatepass"), headers={"Content-Type": "application/json"}
    )


@pytest.fixture(scope="module")
def scene(dyte_app):
    owner = dyte_app.user("hostile")
    meeting = owner.create(title="Target", invitees=[{"email": "x@contoso.test"}])
    return dyte_app, owner, meeting


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("limit", BAD_LIMITS)
def test_a_limit_that_is_not_ascii_digits_in_range_is_400(scene, path, limit):
    _app, owner, meeting = scene
    problem(owner.call("GET", path.format(id=meeting["id"]), params={"limit": limit}), 400, "validation")


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "cursor",
    ["eyJvIjogbnVsbH0", '{"o":null}', "a.b", "x" * 3000, "WyJzfCJd.AAAAAAAAAAAAAAAAAAAAAA", "😀.😀"],
)
def test_a_cursor_the_server_did_not_issue_is_400(scene, path, cursor):
    _app, owner, meeting = scene
    problem(owner.call("GET", path.format(id=meeting["id"]), params={"cursor": cursor}), 400, "validation")


def test_a_cursor_is_bound_to_its_caller_and_its_list(scene):
    app, owner, meeting = scene
    for n in range(3):
        owner.create(title=f"paged {n}")
    page = owner.call("GET", "/meetings", params={"limit": 1}).json()
    assert page["nextCursor"]
    other = app.user("other")
    problem(other.call("GET", "/meetings", params={"limit": 1, "cursor": page["nextCursor"]}), 400, "validation")
    problem(owner.call("GET", "/meetings", params={"scope": "owned", "cursor": page["nextCursor"]}), 400, "validation")
    problem(
        owner.call("GET", f"/meetings/{meeting['id']}/invites", params={"cursor": page["nextCursor"]}),
        400,
        "validation",
    )


@pytest.mark.parametrize(
    "title", ['"\\udfff\\ud800"', '"a\\ud800"', '"\\udc00b"', '"tab\\there"', '"nul\\u0000"', '"rtl\\u202eevil"']
)
def test_strings_with_lone_surrogates_controls_or_bidi_overrides_are_400_and_create_nothing(scene, title):
    app, owner, _ = scene
    calls = len(app.provider.request_log())
    response = raw(owner, "POST", "/meetings", '{"title": ' + title + "}")
    problem(response, 400, "validation")
    assert len(app.provider.request_log()) == calls  # no provider meeting for a refused body


@pytest.mark.parametrize(
    "email",
    [
        "a\\u0000b@contoso.test",
        "a\\u0007@contoso.test",
        "evil\\u202e@contoso.test",
        "\\ud800@contoso.test",
        "a@contoso.test\\u200f",
        "a\\nb@contoso.test",
    ],
)
def test_addresses_with_controls_bidi_or_surrogates_are_400(scene, email):
    _app, owner, meeting = scene
    body = '{"invitees": [{"email": "' + email + '"}]}'
    problem(raw(owner, "POST", f"/meetings/{meeting['id']}/invites", body), 400, "validation")
    problem(
        raw(owner, "POST", "/meetings", '{"title": "t", "invitees": [{"email": "' + email + '"}]}'), 400, "validation"
    )


@pytest.mark.parametrize(
    "instant",
    [
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "1999-12-31T23:59:59Z",
        "2201-01-01T00:00:00Z",
        "2026-02-30T10:00:00Z",
        "２０２６-01-01T10:00:00Z",
    ],
)
def test_instants_outside_the_schedulable_range_are_400(scene, instant):
    _app, owner, meeting = scene
    problem(owner.call("POST", "/meetings", json={"title": "t", "startsAt": instant}), 400, "validation")
    problem(owner.call("PATCH", f"/meetings/{meeting['id']}", json={"endsAt": instant}), 400, "validation")


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "../etc/passwd", "Europe/Nowhere", ""])
def test_time_zones_must_be_tzdata_names(scene, zone):
    _app, owner, _ = scene
    problem(owner.call("POST", "/meetings", json={"title": "t", "timeZone": zone}), 400, "validation")


def test_tzdata_aliases_are_accepted(scene):
    _app, owner, _ = scene
    assert owner.create(title="alias", timeZone="US/Pacific")["timeZone"] == "US/Pacific"


def test_the_list_shows_a_meeting_once_with_the_strongest_role(dyte_app):
    owner = dyte_app.user("both")
    second = "second-" + owner.email
    token = dyte_app.token(owner.email, claims={"email": second, "xms_edov": True})
    meeting = owner.create(invitees=[{"email": owner.email, "role": "host"}, {"email": second, "role": "participant"}])
    other = dyte_app.user("other")
    other_meeting = other.create(
        invitees=[{"email": owner.email, "role": "participant"}, {"email": second, "role": "host"}]
    )
    listed = dyte_app.call("GET", "/meetings", token).json()["items"]
    roles = {item["id"]: item["myRole"] for item in listed}
    assert len(listed) == len(roles) == 2
    assert roles == {meeting["id"]: "owner", other_meeting["id"]: "host"}


FIELDS = ["title", "description", "startsAt", "endsAt", "timeZone", "access"]
edge_text = st.one_of(
    st.text(alphabet=st.characters(codec=None), max_size=8),
    st.sampled_from(["\\ud800", "\\udfff\\ud800", "\\u202e", "\\u0000", "\\u2066x", "²", "①", "٣"]),
)
edge_value = st.one_of(
    edge_text.map(lambda text: json.dumps(text, ensure_ascii=False).replace("\\\\u", "\\u")),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["null", "true", "[]", "{}", '"9999-12-31T23:59:59-23:59"', '"0001-01-01T00:00:00+01:00"']),
)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(FIELDS), value=edge_value, patch=st.booleans())
def test_fuzzed_fields_never_give_a_5xx(scene, field, value, patch):
    _app, owner, meeting = scene
    member = json.dumps(field) + ": " + value
    text = "{" + member + "}" if patch else '{"title": "t", ' + member + "}"
    method, path = ("PATCH", f"/meetings/{meeting['id']}") if patch else ("POST", "/meetings")
    response = raw(owner, method, path, text)
    assert response.status_code < 500, (text, response.text)
    if response.status_code >= 400:
        assert response.headers["Content-Type"].startswith("application/problem+json")


url_text = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.sampled_from(["²", "①", "٣", "1" * 400, "-0", "%00", "..", "a.b"]),
)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from([*LISTS, "/meetings/{id}", "/meetings/{id}/join"]), query=url_text, segment=url_text)
def test_fuzzed_queries_and_path_segments_never_give_a_5xx(scene, path, query, segment):
    _app, owner, meeting = scene
    target = path.format(id=meeting["id"])
    method = "POST" if path.endswith("/join") else "GET"
    for url in (target, target.replace(meeting["id"], quote(segment, safe="") or "x")):
        response = owner.call(method, url, params={"limit": query, "cursor": query, "scope": query})
        assert response.status_code < 500, (url, query, response.text)

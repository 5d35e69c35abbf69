"""The meetings endpoints over HTTP, for both providers, with round trips counted at the servers."""

import time
import uuid

import pytest
import requests

from shared import cursors
from shared.provider import ProviderClient
from tests import support
from tests.api.conftest import problem

LATER = "2031-03-02T09:30:00+01:00"
LATER_UTC = "2031-03-02T08:30:00Z"


def provider_meeting(app, meeting):
    """The provider's own view of the meeting, read through the stand-in's API."""
    session = requests.Session()
    client = (
        ProviderClient.for_dyte(app.provider.dyte_credentials(), session)
        if meeting["provider"] == "dyte"
        else ProviderClient.for_realtimekit(app.provider.realtimekit_credentials(), session)
    )
    return client.get_meeting(meeting["providerMeetingId"])


def test_create_answers_201_with_location_etag_and_the_meeting(app):
    owner = app.user("owner")
    counts = app.counts()
    response = owner.call(
        "POST",
        "/meetings",
        json={
            "title": "Planning",
            "description": "Q3",
            "startsAt": LATER,
            "endsAt": "2031-03-02T10:30:00+01:00",
            "timeZone": "Europe/Berlin",
            "settings": {"recordOnStart": True},
        },
    )
    assert response.status_code == 201, response.text
    meeting = response.json()
    assert response.headers["Location"] == f"/api/meetings/{meeting['id']}"
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Cache-Control"] == "no-store"
    assert meeting["version"] == 1
    assert meeting["status"] == "scheduled"
    assert meeting["startsAt"] == LATER_UTC
    assert meeting["endsAt"] == "2031-03-02T09:30:00Z"
    assert meeting["timeZone"] == "Europe/Berlin"
    assert meeting["myRole"] == "owner"
    assert meeting["owner"]["name"] == "Owner"
    assert meeting["provider"] == app.video_provider
    assert counts.storage() <= 2
    calls = counts.provider_calls()
    assert [(c["method"], c["path"]) for c in calls] == [("POST", "/meetings")]
    assert provider_meeting(app, meeting).status == "ACTIVE"


def test_get_is_one_storage_request_and_matches_create(app):
    owner = app.user("owner")
    meeting = owner.create(title="One read")
    counts = app.counts()
    response = owner.call("GET", f"/meetings/{meeting['id']}")
    assert response.status_code == 200
    assert response.json() == meeting
    assert response.headers["ETag"] == '"1"'
    assert counts.tables() == 1
    assert counts.provider_calls() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "/title"),
        ({"title": ""}, "/title"),
        ({"title": "   "}, "/title"),
        ({"title": "x" * 201}, "/title"),
        ({"title": 5}, "/title"),
        ({"title": "t", "description": "x" * 2001}, "/description"),
        ({"title": "t", "startsAt": "2031-03-02T09:30:00"}, "/startsAt"),
        ({"title": "t", "startsAt": "tomorrow"}, "/startsAt"),
        ({"title": "t", "startsAt": LATER, "endsAt": LATER}, "/endsAt"),
        ({"title": "t", "timeZone": "Mars/Olympus"}, "/timeZone"),
        ({"title": "t", "timeZone": "../../etc/passwd"}, "/timeZone"),
        ({"title": "t", "colour": "red"}, "/colour"),
        ({"title": "t", "settings": {"recordOnStart": "yes"}}, "/settings/recordOnStart"),
        ({"title": "t", "settings": {"x": 1}}, "/settings/x"),
        ({"title": "t", "invitees": [{"email": "not-an-address"}]}, "/invitees/0/email"),
        ({"title": "t", "invitees": [{"email": "a@b.test", "role": "owner"}]}, "/invitees/0/role"),
    ],
)
def test_invalid_create_bodies_are_400_and_change_nothing(app, body, field):
    owner = app.user("owner")
    counts = app.counts()
    response = owner.call("POST", "/meetings", json=body)
    found = problem(response, 400, "validation")
    assert found["errors"][0]["field"] == field
    assert counts.tables() == 0
    assert counts.provider_calls() == []


def test_non_json_and_malformed_json(app):
    owner = app.user("owner")
    problem(
        owner.call("POST", "/meetings", data="title=x", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported-media-type",
    )
    problem(owner.call("POST", "/meetings", data="{", headers={"Content-Type": "application/json"}), 400, "validation")
    problem(
        owner.call("POST", "/meetings", data="[1]", headers={"Content-Type": "application/json"}), 400, "validation"
    )
    problem(
        owner.call("POST", "/meetings", data='{"title": NaN}', headers={"Content-Type": "application/json"}),
        400,
        "validation",
    )
    problem(
        owner.call("POST", "/meetings", data=b"\xff\xfe", headers={"Content-Type": "application/json"}),
        400,
        "validation",
    )


def test_idempotency_key_replays_the_stored_201_and_creates_nothing(app):
    owner = app.user("owner")
    key = str(uuid.uuid4())
    counts = app.counts()
    first = owner.call("POST", "/meetings", json={"title": "Once"}, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    assert counts.storage() <= 3
    assert len(counts.provider_calls()) == 1
    counts = app.counts()
    again = owner.call("POST", "/meetings", json={"title": "Once"}, headers={"Idempotency-Key": key})
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert counts.provider_calls() == []
    conflict = owner.call("POST", "/meetings", json={"title": "Twice"}, headers={"Idempotency-Key": key})
    problem(conflict, 409, "conflict")
    other = app.user("other").call("POST", "/meetings", json={"title": "Once"}, headers={"Idempotency-Key": key})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    listed = owner.call("GET", "/meetings?scope=owned").json()["items"]
    assert [item["id"] for item in listed] == [first.json()["id"]]


def test_idempotency_key_must_be_printable_ascii(app):
    owner = app.user("owner")
    response = owner.call("POST", "/meetings", json={"title": "x"}, headers={"Idempotency-Key": "k" * 256})
    problem(response, 400, "validation")


def test_provider_failure_on_create_stores_nothing(app):
    owner = app.user("owner")
    counts = app.counts()
    app.provider.add_fault(method="POST", path="/meetings$", status=500, times=1)
    problem(
        owner.call("POST", "/meetings", json={"title": "x"}, headers={"Idempotency-Key": "k1"}),
        503,
        "provider-unavailable",
    )
    app.provider.add_fault(method="POST", path="/meetings$", status=400, times=1)
    problem(owner.call("POST", "/meetings", json={"title": "x"}), 502, "provider-rejected")
    assert owner.call("GET", "/meetings").json()["items"] == []
    # The failed attempt left no record: the same key now creates the meeting.
    retry = owner.call("POST", "/meetings", json={"title": "x"}, headers={"Idempotency-Key": "k1"})
    assert retry.status_code == 201
    assert counts.queue_puts() == 0


def test_provider_timeout_on_create_is_504(dyte_app):
    owner = dyte_app.user("owner")
    dyte_app.provider.add_fault(method="POST", path="/meetings$", delay=6.0, times=1, apply=False)
    problem(owner.call("POST", "/meetings", json={"title": "slow"}), 504, "provider-timeout")
    assert owner.call("GET", "/meetings").json()["items"] == []


def test_storage_failure_after_provider_create_deactivates_the_provider_meeting(app):
    owner = app.user("owner")
    key = str(uuid.uuid4())
    before = len(app.provider.request_log())
    app.storage.tables.fail("POST", r"\$batch", status=503, times=3)
    try:
        response = owner.call("POST", "/meetings", json={"title": "lost"}, headers={"Idempotency-Key": key})
    finally:
        app.storage.tables.clear_faults()
    problem(response, 503, "unavailable")
    calls = app.provider.request_log()[before:]
    assert [(c["method"], c["path"].split("/")[1]) for c in calls] == [("POST", "meetings"), ("PATCH", "meetings")]
    orphan = calls[1]["path"].split("/")[2]
    assert provider_meeting(app, {"provider": app.video_provider, "providerMeetingId": orphan}).status == "INACTIVE"
    assert owner.call("GET", "/meetings").json()["items"] == []
    retry = owner.call("POST", "/meetings", json={"title": "lost"}, headers={"Idempotency-Key": key})
    assert retry.status_code == 201
    assert retry.json()["providerMeetingId"] != orphan


def test_list_is_ordered_paged_and_costs_one_request_per_page(app):
    owner = app.user("owner")
    created = [
        owner.create(title="c", startsAt="2031-01-03T10:00:00Z"),
        owner.create(title="unscheduled-old"),
        owner.create(title="a", startsAt="2031-01-01T10:00:00+02:00"),
        owner.create(title="b", startsAt="2031-01-02T10:00:00Z"),
        owner.create(title="unscheduled-new"),
    ]
    expected = ["a", "b", "c", "unscheduled-new", "unscheduled-old"]
    counts = app.counts()
    page = owner.call("GET", "/meetings?scope=owned&limit=2").json()
    assert counts.tables() == 1
    titles = [item["title"] for item in page["items"]]
    while page["nextCursor"]:
        page = owner.call("GET", f"/meetings?scope=owned&limit=2&cursor={page['nextCursor']}").json()
        titles += [item["title"] for item in page["items"]]
    assert titles == expected
    assert len(created) == 5
    counts = app.counts()
    everything = owner.call("GET", "/meetings").json()
    assert [item["title"] for item in everything["items"]] == expected
    assert everything["nextCursor"] is None
    assert counts.tables() <= 2


def test_paging_a_list_the_caller_owns_and_is_invited_to_shows_each_meeting_once_as_owner(app):
    owner = app.user("owner")
    mine = [owner.create(title=f"own-{n}", startsAt=f"2031-02-0{n}T10:00:00Z") for n in (1, 3)]
    owner.create(title="own-2", startsAt="2031-02-02T10:00:00Z")
    for meeting in mine:  # the owner invites their own address: the meeting is in both of their index partitions
        body = {"invitees": [{"email": owner.email, "role": "participant"}]}
        assert owner.call("POST", f"/meetings/{meeting['id']}/invites", json=body).status_code == 201
    other = app.user("other")
    other.create(title="shared", startsAt="2031-02-02T11:00:00Z", invitees=[{"email": owner.email}])
    whole = [(m["title"], m["myRole"]) for m in owner.call("GET", "/meetings").json()["items"]]
    assert whole == [("own-1", "owner"), ("own-2", "owner"), ("shared", "participant"), ("own-3", "owner")]
    paged, cursor, requests_per_page = [], None, []
    while True:
        counts = app.counts()
        page = owner.call("GET", "/meetings", params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        requests_per_page.append(counts.tables())
        paged += [(m["title"], m["myRole"]) for m in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert paged == whole
    assert requests_per_page == [2] * len(whole)  # the owner partition and the one address's, each page


def test_later_pages_skip_an_index_partition_read_to_its_end(app):
    other, caller = app.user("other"), app.user("caller")
    other.create(title="invited", startsAt="2031-03-01T10:00:00Z", invitees=[{"email": caller.email}])
    for day in (2, 3, 4):
        caller.create(title=f"own-{day}", startsAt=f"2031-03-0{day}T10:00:00Z")
    titles, cursor, requests_per_page = [], None, []
    while True:
        counts = app.counts()
        page = caller.call("GET", "/meetings", params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        requests_per_page.append(counts.tables())
        titles += [m["title"] for m in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert titles == ["invited", "own-2", "own-3", "own-4"]
    assert requests_per_page == [2, 1, 1, 1]  # the address's partition ended on the first page


def test_a_meeting_whose_invitee_index_row_lags_an_edit_is_listed_once(dyte_app):
    from tests.api.test_convergence import converge  # it imports this module

    app = dyte_app
    owner = app.user("owner")
    meeting = owner.create(title="moved", startsAt="2031-04-02T10:00:00Z", invitees=[{"email": owner.email}])
    # The edit moves the owner-index row in its own batch; the invitee-index row follows in the follow-up, which
    # fails here: that row keeps the meeting's old key for a while.
    app.storage.tables.fail("PUT", rf"/{app.prefix}Invitations\(", status=503, times=3)
    try:
        moved = owner.call("PATCH", f"/meetings/{meeting['id']}", json={"startsAt": "2031-04-01T10:00:00Z"})
    finally:
        app.storage.tables.clear_faults()
    assert moved.status_code == 200, moved.text
    listed = [(m["id"], m["myRole"]) for m in owner.call("GET", "/meetings").json()["items"]]
    assert listed == [(meeting["id"], "owner")]
    converge(app)
    assert [(m["id"], m["myRole"]) for m in owner.call("GET", "/meetings").json()["items"]] == listed


def test_a_list_cursor_sealed_for_another_shape_of_position_is_400(app):
    owner = app.user("owner")
    caller_id = owner.call("GET", "/me").json()["id"]
    key = support.load().id_hash_key
    for position in ({"o": "s|0", "i0": None}, "s|0", {"after": "m|not-an-index-key", "done": []}, 3):
        cursor = cursors.seal(key, "meetings:all", caller_id, position)
        problem(owner.call("GET", "/meetings", params={"cursor": cursor}), 400, "validation")


@pytest.mark.parametrize(
    "query", ["scope=mine", "limit=0", "limit=101", "limit=x", "cursor=%%%", "colour=red", "cursor=eyJvIjogMX0"]
)
def test_bad_list_queries_are_400(app, query):
    problem(app.user().call("GET", f"/meetings?{query}"), 400, "validation")


def test_patch_is_a_merge_patch_with_versions_and_if_match(app):
    owner = app.user("owner")
    meeting = owner.create(title="Draft", description="old", startsAt=LATER)
    path = f"/meetings/{meeting['id']}"
    response = owner.call("PATCH", path, json={"title": "Final", "description": None}, headers={"If-Match": '"1"'})
    assert response.status_code == 200, response.text
    patched = response.json()
    assert (patched["title"], patched["description"], patched["version"]) == ("Final", "", 2)
    assert patched["startsAt"] == LATER_UTC
    assert response.headers["ETag"] == '"2"'
    problem(owner.call("PATCH", path, json={"title": "Stale"}, headers={"If-Match": '"1"'}), 412, "precondition-failed")
    cleared = owner.call("PATCH", path, json={"startsAt": None}).json()
    assert cleared["startsAt"] is None and cleared["version"] == 3
    problem(owner.call("PATCH", path, json={"title": None}), 400, "validation")
    problem(owner.call("PATCH", path, json={"startsAt": LATER, "endsAt": "2031-03-02T08:00:00Z"}), 400, "validation")
    problem(owner.call("PATCH", path, json={"status": "live"}), 400, "validation")
    assert owner.call("GET", path).json()["version"] == 3


def test_patch_moves_the_meeting_in_the_list(app):
    owner = app.user("owner")
    first = owner.create(title="first", startsAt="2031-01-01T10:00:00Z")
    owner.create(title="second", startsAt="2031-01-02T10:00:00Z")
    owner.call("PATCH", f"/meetings/{first['id']}", json={"startsAt": "2031-01-03T10:00:00Z"})
    items = owner.call("GET", "/meetings?scope=owned").json()["items"]
    assert [item["title"] for item in items] == ["second", "first"]


def test_strangers_get_404_and_cannot_tell_meetings_exist(app):
    owner, stranger = app.user("owner"), app.user("stranger")
    meeting = owner.create()
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/join"), ("GET", "/invites")):
        response = stranger.call(method, f"/meetings/{meeting['id']}{suffix}", json={"title": "x"})
        problem(response, 404, "not-found")
    missing = meeting["id"][:-4] + "AAAA"
    assert (
        stranger.call("GET", f"/meetings/{missing}").json()["detail"]
        == stranger.call("GET", f"/meetings/{meeting['id']}").json()["detail"]
    )
    problem(stranger.call("GET", "/meetings/..%2F..%2Fsecret"), 404, "not-found")


def test_cancel_commits_first_then_deactivates_and_is_idempotent(app):
    owner = app.user("owner")
    meeting = owner.create()
    path = f"/meetings/{meeting['id']}"
    problem(owner.call("DELETE", path, headers={"If-Match": '"7"'}), 412, "precondition-failed")
    assert owner.call("DELETE", path, headers={"If-Match": '"1"'}).status_code == 204
    assert provider_meeting(app, meeting).status == "INACTIVE"
    assert owner.call("DELETE", path).status_code == 204
    cancelled = owner.call("GET", path).json()
    assert (cancelled["status"], cancelled["version"]) == ("cancelled", 2)
    problem(owner.call("PATCH", path, json={"title": "again"}), 409, "cancelled")
    problem(owner.call("POST", f"{path}/join"), 409, "cancelled")


def test_cancel_survives_a_provider_outage_and_the_job_finishes_it(app):
    owner = app.user("owner")
    meeting = owner.create()
    fault = app.provider.add_fault(method="PATCH", path="/meetings/", status=503, times=1)
    counts = app.counts()
    assert owner.call("DELETE", f"/meetings/{meeting['id']}").status_code == 204
    assert counts.queue_puts() == 1
    assert fault.times == 0
    problem(owner.call("POST", f"/meetings/{meeting['id']}/join"), 409, "cancelled")
    deadline = time.monotonic() + 20
    while provider_meeting(app, meeting).status != "INACTIVE":
        assert time.monotonic() < deadline, "the clean-up job did not deactivate the provider meeting"
        time.sleep(0.2)


def test_create_rate_limit_is_429_with_retry_after(dyte_app):
    owner = dyte_app.user("busy")
    for _ in range(30):
        assert owner.call("POST", "/meetings", json={"title": "x"}).status_code == 201
    counts = dyte_app.counts()
    response = owner.call("POST", "/meetings", json={"title": "x"})
    body = problem(response, 429, "rate-limited")
    assert int(response.headers["Retry-After"]) == body["retryAfterSeconds"] >= 1
    assert counts.tables() == 0 and counts.provider_calls() == []
    assert dyte_app.user("calm").call("POST", "/meetings", json={"title": "x"}).status_code == 201

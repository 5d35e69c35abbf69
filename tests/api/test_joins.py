"""Joining over HTTP: who gets in, one provider participant per user, and the round-trip budgets."""

import concurrent.futures
import time
import uuid

import jwt
import pytest
import requests

from shared.auth import public_id
from shared.provider import ProviderClient
from tests import support
from tests.api.conftest import problem


def client(app, provider_name):
    session = requests.Session()
    if provider_name == "dyte":
        return ProviderClient.for_dyte(app.provider.dyte_credentials(), session)
    return ProviderClient.for_realtimekit(app.provider.realtimekit_credentials(), session)


def participants(app, meeting):
    """Every provider participant of the meeting, as the provider lists them."""
    provider = client(app, meeting["provider"])
    found, page = [], 1
    while True:
        answer = provider._call(
            "GET", f"/meetings/{meeting['providerMeetingId']}/participants", params={"page_no": page, "per_page": 100}
        )
        found += answer["data"]
        if len(answer["data"]) < 100:
            return found
        page += 1


def invited(app, role="participant", **meeting_fields):
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": role}], **meeting_fields)
    return owner, guest, meeting


def test_first_join_adds_one_participant_within_budget(app):
    owner, guest, meeting = invited(app)
    counts = app.counts()
    response = guest.call("POST", f"/meetings/{meeting['id']}/join")
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    joined = response.json()
    # The read, the claim, the participant (with the binding); and because this join binds the invite (once in
    # its life): the meeting in the user's participations (account closing finds it by identity) and the
    # binding in the invitee index (no other identity at this address lists it any more).
    assert counts.storage() <= 5
    calls = counts.provider_calls()
    assert [c["method"] for c in calls] == ["POST"] and calls[0]["path"].endswith("/participants")
    preset = "group_call_participant" if app.video_provider == "dyte" else "group-call-participant"
    assert joined["role"] == "participant" and joined["preset"] == preset
    assert joined["provider"] == app.video_provider
    assert joined["providerMeetingId"] == meeting["providerMeetingId"]
    claims = jwt.decode(joined["authToken"], options={"verify_signature": False})
    assert joined["expiresAt"].startswith(
        __import__("datetime")
        .datetime.fromtimestamp(claims["exp"], __import__("datetime").UTC)
        .strftime("%Y-%m-%dT%H:%M")
    )
    assert app.provider.token_check(joined["authToken"])["valid"]
    [participant] = participants(app, meeting)
    assert participant["id"] == joined["participantId"]
    assert participant["name"] == "Guest"
    assert participant["preset_name"] == preset
    oid = jwt.decode(guest.token, options={"verify_signature": False})["oid"]
    assert participant["custom_participant_id"] == public_id(
        support.load().id_hash_key, "participant", meeting["id"], support.TENANT, oid
    )
    assert guest.email not in participant["custom_participant_id"]
    invites = owner.call("GET", f"/meetings/{meeting['id']}/invites").json()["items"]
    assert invites[0]["status"] == "accepted" and invites[0]["acceptedAt"]


def test_rejoin_reuses_the_participant_within_budget(app):
    owner, guest, meeting = invited(app)
    first = guest.call("POST", f"/meetings/{meeting['id']}/join").json()
    counts = app.counts()
    again = guest.call("POST", f"/meetings/{meeting['id']}/join").json()
    assert counts.storage() <= 2
    assert len(counts.provider_calls()) <= 1
    assert all(c["method"] == "POST" and c["path"].endswith("/token") for c in counts.provider_calls())
    assert again["participantId"] == first["participantId"]
    assert len(participants(app, meeting)) == 1
    counts = app.counts()
    assert owner.call("POST", f"/meetings/{meeting['id']}/join").json()["role"] == "owner"
    assert counts.storage() <= 3  # a first join that binds nothing: the read, the claim, the participant
    assert len(participants(app, meeting)) == 2


def test_owner_and_hosts_get_the_host_preset(app):
    owner, host, meeting = invited(app, role="host")
    preset = "group_call_host" if app.video_provider == "dyte" else "group-call-host"
    assert host.call("POST", f"/meetings/{meeting['id']}/join").json()["preset"] == preset
    assert owner.call("POST", f"/meetings/{meeting['id']}/join").json()["preset"] == preset


def test_refused_joins_cost_no_provider_call(app):
    owner, guest, meeting = invited(app, startsAt="2031-01-01T10:00:00Z")
    stranger = app.user("stranger")
    foreign = app.token(guest.email, tenant="0b0b0b0b-1111-4222-8333-444444444444")
    counts = app.counts()
    problem(stranger.call("POST", f"/meetings/{meeting['id']}/join"), 404, "not-found")
    problem(app.call("POST", f"/meetings/{meeting['id']}/join", foreign), 401, "unauthorized")
    early = problem(guest.call("POST", f"/meetings/{meeting['id']}/join"), 409, "join-window")
    assert early["joinOpensAt"] == "2031-01-01T09:45:00Z"
    assert counts.provider_calls() == []
    assert owner.call("POST", f"/meetings/{meeting['id']}/join").status_code == 200


def test_nobody_joins_after_the_grace_period(app):
    owner, host, meeting = invited(app, role="host", startsAt="2020-01-01T10:00:00Z", endsAt="2020-01-01T11:00:00Z")
    for user in (owner, host):
        closed = problem(user.call("POST", f"/meetings/{meeting['id']}/join"), 409, "join-window")
        assert closed["joinClosesAt"] == "2020-01-01T12:00:00Z"


def test_a_second_account_with_the_same_address_is_refused_after_binding(app):
    _owner, guest, meeting = invited(app)
    assert guest.call("POST", f"/meetings/{meeting['id']}/join").status_code == 200
    impostor = app.token(guest.email, oid=str(uuid.uuid4()))
    problem(app.call("POST", f"/meetings/{meeting['id']}/join", impostor), 404, "not-found")
    problem(app.call("GET", f"/meetings/{meeting['id']}", impostor), 404, "not-found")
    assert len(participants(app, meeting)) == 1


def test_unverified_email_claim_gets_nothing(app):
    _owner, guest, meeting = invited(app)
    mallory = app.token("mallory@fabrikam.test", claims={"email": guest.email})
    explicit_false = app.token("mallory@fabrikam.test", claims={"email": guest.email, "xms_edov": False})
    counts = app.counts()
    for token in (mallory, explicit_false):
        problem(app.call("POST", f"/meetings/{meeting['id']}/join", token), 404, "not-found")
        problem(app.call("GET", f"/meetings/{meeting['id']}", token), 404, "not-found")
        assert app.call("GET", "/meetings", token).json()["items"] == []
    assert counts.provider_calls() == []
    verified = app.token("other@fabrikam.test", claims={"email": guest.email, "xms_edov": True})
    assert app.call("GET", f"/meetings/{meeting['id']}", verified).status_code == 200


@pytest.mark.parametrize("revokes", [False, True])
def test_twenty_simultaneous_joins_on_two_instances_make_one_participant(twin_apps, revokes):
    first, second = twin_apps
    owner, guest = first.user("owner"), first.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    first.provider.set_switches(refresh_revokes_old_token=revokes)
    try:

        def join(n):
            return (first if n % 2 else second).call("POST", f"/meetings/{meeting['id']}/join", guest.token)

        with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(join, range(20)))
        assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses if r.status_code != 200]
        assert len(participants(first, meeting)) == 1
        assert len({r.json()["participantId"] for r in responses}) == 1
        assert all(first.provider.token_check(r.json()["authToken"])["valid"] for r in responses)
    finally:
        first.provider.set_switches(refresh_revokes_old_token=False)


def test_after_a_provider_timeout_the_next_join_looks_the_participant_up(dyte_app):
    _owner, guest, meeting = invited(dyte_app)
    dyte_app.provider.add_fault(method="POST", path="/participants$", delay=6.0, times=1, apply=True)
    problem(guest.call("POST", f"/meetings/{meeting['id']}/join"), 504, "provider-timeout")
    deadline = time.monotonic() + 5
    while not participants(dyte_app, meeting):  # the slow add lands after our timeout, as it may for real
        assert time.monotonic() < deadline
        time.sleep(0.1)
    counts = dyte_app.counts()
    joined = guest.call("POST", f"/meetings/{meeting['id']}/join")
    assert joined.status_code == 200, joined.text
    methods = [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in counts.provider_calls()]
    assert ("POST", "participants") not in methods
    assert methods[0] == ("GET", "participants")
    assert len(participants(dyte_app, meeting)) == 1
    assert dyte_app.provider.token_check(joined.json()["authToken"])["valid"]


def test_end_kicks_everyone_and_needs_something_live(app):
    owner, host, meeting = invited(app, role="host")
    guest = app.user("guest")
    owner.call("POST", f"/meetings/{meeting['id']}/invites", json={"invitees": [{"email": guest.email}]})
    problem(owner.call("POST", f"/meetings/{meeting['id']}/end"), 409, "conflict")
    joined = guest.call("POST", f"/meetings/{meeting['id']}/join").json()
    app.provider.start_session(
        app.video_provider, meeting["providerMeetingId"], participant_ids=(joined["participantId"],)
    )
    problem(guest.call("POST", f"/meetings/{meeting['id']}/end"), 403, "forbidden")
    response = host.call("POST", f"/meetings/{meeting['id']}/end")
    assert response.status_code == 202
    assert client(app, meeting["provider"]).active_session(meeting["providerMeetingId"]) is None


def test_role_change_of_an_accepted_invitee_reaches_the_provider_at_once(app):
    owner, guest, meeting = invited(app)
    joined = guest.call("POST", f"/meetings/{meeting['id']}/join").json()
    app.provider.start_session(
        app.video_provider, meeting["providerMeetingId"], participant_ids=(joined["participantId"],)
    )
    # A provider that keeps the peer after a preset change (the stand-in drops it by default): the app kicks.
    app.provider.set_switches(preset_change_drops_peer=False)
    counts = app.counts()
    try:
        response = owner.call(
            "POST", f"/meetings/{meeting['id']}/invites", json={"invitees": [{"email": guest.email, "role": "host"}]}
        )
    finally:
        app.provider.set_switches(preset_change_drops_peer=True)
    assert response.status_code == 201
    host_preset = "group_call_host" if app.video_provider == "dyte" else "group-call-host"
    [participant] = participants(app, meeting)
    assert participant["preset_name"] == host_preset
    assert any(c["path"].endswith("/active-session/kick") for c in counts.provider_calls())
    rejoined = guest.call("POST", f"/meetings/{meeting['id']}/join").json()
    assert (rejoined["role"], rejoined["preset"]) == ("host", host_preset)
    assert rejoined["participantId"] == joined["participantId"]

"""Convergence under failure, attacked: the provider failing after it did the work, a failed kick, retention."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dev.provider import meeting_ended, meeting_started
from shared import retention, times
from tests.api.conftest import problem
from tests.api.test_convergence import converge, invite
from tests.api.test_joins import client, participants
from tests.api.test_meetings import provider_meeting
from tests.api.test_webhooks import quiet
from tests.hostile.tools import deliver, domain_context, poll


@pytest.mark.parametrize("duplicates_refused", [False, True], ids=["provider-allows-duplicates", "provider-refuses"])
def test_a_first_join_whose_add_answered_5xx_after_adding_leaves_one_participant(dyte_app, duplicates_refused):
    app = dyte_app
    owner, guest = app.user("owner"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    app.provider.add_fault(
        method="POST", path=f"/meetings/{meeting['providerMeetingId']}/participants$", status=500, apply=True, times=1
    )
    app.provider.set_switches(reject_duplicate_custom_participant_id=duplicates_refused)
    try:
        first = guest.call("POST", f"/meetings/{meeting['id']}/join")
        assert first.status_code == 503, first.text  # the provider's 5xx, and nothing of ours committed
        again = guest.call("POST", f"/meetings/{meeting['id']}/join")
        converge(app)
    finally:
        app.provider.set_switches(reject_duplicate_custom_participant_id=False)
    assert again.status_code == 200, again.text
    assert len(participants(app, meeting)) == 1
    assert app.provider.token_check(again.json()["authToken"])["valid"]


def test_a_demoted_live_host_is_kicked_even_when_the_first_kick_fails(dyte_app):
    app = dyte_app
    owner, host = app.user("owner"), app.user("host")
    meeting = owner.create(invitees=[{"email": host.email, "role": "host"}])
    pmid = meeting["providerMeetingId"]
    joined = host.call("POST", f"/meetings/{meeting['id']}/join").json()
    app.provider.set_switches(preset_change_drops_peer=False)
    try:
        app.provider.start_session("dyte", pmid, participant_ids=(joined["participantId"],))
        app.provider.add_fault(method="POST", path=f"/meetings/{pmid}/active-session/kick$", status=500, times=1)
        assert invite(owner, meeting, (host.email, "participant")).status_code == 201
        converge(app)
    finally:
        app.provider.set_switches(preset_change_drops_peer=True)
    [participant] = participants(app, meeting)
    assert participant["preset_name"] == "group_call_participant"
    assert client(app, "dyte").active_session(pmid) is None  # the only peer, kicked, ended the session


def test_a_meeting_deleted_by_retention_is_not_joinable_at_the_provider(dyte_app):
    app = dyte_app
    owner, member = app.user("owner"), app.user("member")
    meeting = owner.create(invitees=[{"email": member.email, "role": "participant"}])
    path = f"/meetings/{meeting['id']}"
    joined = member.call("POST", f"{path}/join").json()
    base = {"meeting_id": meeting["providerMeetingId"], "session_id": "s-old"}
    deliver(app, meeting_started(**base, started_at="2030-01-01T10:00:00Z"))
    deliver(app, meeting_ended(**base, started_at="2030-01-01T10:00:00Z", ended_at="2030-01-01T11:00:00Z"))
    poll(lambda: owner.call("GET", path).json()["status"] == "ended")
    quiet(app)  # both deliveries applied (one may be retried after a conflict with the other)
    converge(app)  # the end's follow-up indexes the meeting for retention
    ctx = domain_context(app)
    later = times.now() + timedelta(days=ctx.settings.meeting_retention_days + 30)
    ctx.clock = lambda: later
    retention.purge(ctx)  # the daily timer, a retention period and a month later
    problem(owner.call("GET", path), 404, "not-found")  # forgotten here
    assert provider_meeting(app, meeting).status == "INACTIVE"
    assert not app.provider.token_check(joined["authToken"])["valid"]

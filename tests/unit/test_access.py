"""Who may do what (contract sections 2 and 3): the allow-lists, the caller's relation to a meeting, presets."""

from __future__ import annotations

from enum import StrEnum

import pytest

from shared import access, problems
from shared.access import Access, Action, Role
from tests import factories, support

OWNER, HOST, PARTICIPANT, GUEST = Role.OWNER, Role.HOST, Role.PARTICIPANT, Role.GUEST

# The contract's table, action by action: who is granted it. Anything not listed is refused.
GRANTED = {
    Action.READ: {OWNER, HOST, PARTICIPANT},
    Action.READ_AS_GUEST: {GUEST},
    Action.EDIT: {OWNER},
    Action.CANCEL: {OWNER},
    Action.INVITE_HOSTS: {OWNER},
    Action.INVITE_PARTICIPANTS: {OWNER, HOST},
    Action.CHANGE_HOST_INVITES: {OWNER},
    Action.REINVITE_REVOKED: {OWNER},
    Action.SEE_INVITES: {OWNER, HOST},
    Action.REVOKE: {OWNER},
    Action.DECLINE: {HOST, PARTICIPANT},
    Action.SEE_SESSIONS: {OWNER, HOST},
    Action.SEE_RECORDINGS: {OWNER, HOST},
    Action.END: {OWNER, HOST},
    Action.JOIN: {OWNER, HOST, PARTICIPANT, GUEST},
    Action.JOIN_BEFORE_WINDOW: {OWNER, HOST},
}


def test_the_table_names_every_action():
    assert set(GRANTED) == set(Action)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_exactly_what_it_is_granted(role, action):
    assert access.allows(role, action) is (role in GRANTED[action])
    if role in GRANTED[action]:
        access.require(role, action, "refused")
    else:
        with pytest.raises(problems.Forbidden) as refused:
            access.require(role, action, "refused")
        assert refused.value.status == 403


def test_guests_get_403_for_every_owner_or_host_action():
    owner_or_host_actions = {action for action, roles in GRANTED.items() if roles & {OWNER, HOST}} - {Action.JOIN}
    assert not any(access.allows(GUEST, action) for action in owner_or_host_actions)
    assert {action for action in Action if access.allows(GUEST, action)} == {Action.READ_AS_GUEST, Action.JOIN}


def test_a_new_role_gets_nothing_until_granted():
    class Future(StrEnum):
        MODERATOR = "moderator"
        OWNER = "Owner"  # a near miss of a granted role's value is still another role

    for action in Action:
        assert not access.allows(None, action)
        for role in Future:
            assert not access.allows(role, action)  # type: ignore[arg-type]


@pytest.fixture
def people():
    owner, caller, other = factories.user("owner"), factories.user("carol"), factories.user("other")
    return owner, caller, other


def test_the_owner_is_the_owner_whatever_the_invites(people):
    owner, _, _ = people
    meeting = factories.meeting(owner)
    revoked = factories.invite(meeting, owner, role=HOST, status="revoked")
    assert access.relation(owner.id, meeting, [revoked]) == (OWNER, None)


@pytest.mark.parametrize("role", access.INVITE_ROLES)
@pytest.mark.parametrize("status", ["pending", "accepted"])
def test_an_invitee_acts_with_the_role_of_their_invite(people, role, status):
    owner, caller, _ = people
    meeting = factories.meeting(owner)
    invite = factories.invite(meeting, caller, role=role, status=status)
    assert access.relation(caller.id, meeting, [invite]) == (role, invite)


@pytest.mark.parametrize("bound", ["", "caller"])
def test_a_declined_invitee_is_no_longer_invited(people, bound):
    """Contract: invitees are "pending or accepted, not revoked or declined"; only a revocation wins over access."""
    owner, caller, _ = people
    for meeting, expected in (
        (factories.meeting(owner), None),
        (factories.meeting(owner, access=Access.ORGANIZATION), (GUEST, None)),
    ):
        declined = factories.invite(meeting, caller, role=HOST, status="declined", bound_to=caller if bound else "")
        assert access.relation(caller.id, meeting, [declined]) == expected
        assert access.usable_invite(caller.id, [declined]) is None
        assert access.declined_invite(caller.id, [declined]) == declined
        pending = factories.invite(meeting, "carol.alias@contoso.test")
        assert access.relation(caller.id, meeting, [declined, pending]) == (PARTICIPANT, pending)


def test_a_revocation_bound_to_the_caller_keeps_them_out_whatever_address_it_went_to(people):
    owner, caller, other = people
    meeting = factories.meeting(owner, access=Access.ORGANIZATION)
    revoked = factories.invite(meeting, "old.address@contoso.test", status="revoked", bound_to=caller)
    assert access.relation(caller.id, meeting, [], bound=[revoked]) is None
    assert access.relation(other.id, meeting, []) == (GUEST, None)
    # A live invite bound to them but sent to an address they no longer have gives no role: invites match by address.
    accepted = factories.invite(meeting, "old.address@contoso.test", role=HOST, status="accepted", bound_to=caller)
    assert access.relation(caller.id, meeting, [], bound=[accepted]) == (GUEST, None)
    assert access.relation(caller.id, factories.meeting(owner), [], bound=[accepted]) is None


@pytest.mark.parametrize("bound", ["", "caller"])
def test_a_revoked_invite_wins_over_organization_access(people, bound):
    owner, caller, _ = people
    for meeting in (factories.meeting(owner), factories.meeting(owner, access=Access.ORGANIZATION)):
        revoked = factories.invite(meeting, caller, role=HOST, status="revoked", bound_to=caller if bound else "")
        assert access.relation(caller.id, meeting, [revoked]) is None
        assert access.usable_invite(caller.id, [revoked]) is None


def test_an_invite_bound_to_another_identity_is_not_theirs(people):
    owner, caller, other = people
    meeting = factories.meeting(owner)
    taken = factories.invite(meeting, caller, status="accepted", bound_to=other)
    assert access.usable_invite(caller.id, [taken]) is None
    assert access.relation(caller.id, meeting, [taken]) is None
    assert access.relation(other.id, meeting, [taken]) == (PARTICIPANT, taken)
    # With organization access they are a guest like anyone signed in; the invite stays the other's.
    open_meeting = factories.meeting(owner, access=Access.ORGANIZATION)
    taken_there = factories.invite(open_meeting, caller, status="accepted", bound_to=other)
    assert access.relation(caller.id, open_meeting, [taken_there]) == (GUEST, None)


def test_a_revocation_bound_to_another_identity_does_not_shut_out_this_one(people):
    owner, caller, other = people
    meeting = factories.meeting(owner, access=Access.ORGANIZATION)
    revoked_for_other = factories.invite(meeting, caller, status="revoked", bound_to=other)
    assert access.relation(caller.id, meeting, [revoked_for_other]) == (GUEST, None)
    assert access.relation(other.id, meeting, [revoked_for_other]) is None


def test_a_guest_only_with_organization_access(people):
    owner, caller, _ = people
    assert access.relation(caller.id, factories.meeting(owner), []) is None
    assert access.relation(caller.id, factories.meeting(owner, access=Access.ORGANIZATION), []) == (GUEST, None)


def test_with_several_invites_the_strongest_role_then_an_accepted_one(people):
    owner, caller, _ = people
    meeting = factories.meeting(owner)
    upn, alias = "carol@contoso.test", "carol.alias@contoso.test"
    participant = factories.invite(meeting, upn, status="accepted")
    host = factories.invite(meeting, alias, role=HOST)
    assert access.relation(caller.id, meeting, [participant, host]) == (HOST, host)
    pending = factories.invite(meeting, upn)
    accepted = factories.invite(meeting, alias, status="accepted")
    assert access.usable_invite(caller.id, [pending, accepted]) == accepted
    revoked_host = factories.invite(meeting, alias, role=HOST, status="revoked")
    assert access.relation(caller.id, meeting, [revoked_host, participant]) == (PARTICIPANT, participant)


def test_the_strongest_of_several_roles():
    assert access.strongest([PARTICIPANT, GUEST, HOST]) == HOST
    assert access.strongest([GUEST, OWNER]) == OWNER
    assert access.strongest([GUEST]) == GUEST


@pytest.mark.parametrize("provider", ["dyte", "realtimekit"])
def test_each_role_joins_with_its_preset(provider):
    settings = support.load(PRESET_GUEST="lobby" if provider == "dyte" else "")
    presets = settings.presets_for(provider)
    assert access.preset(settings, provider, OWNER) == presets["host"]
    assert access.preset(settings, provider, HOST) == presets["host"]
    assert access.preset(settings, provider, PARTICIPANT) == presets["participant"]
    assert access.preset(settings, provider, GUEST) == presets["guest"]
    assert len({presets["host"], presets["participant"], presets["guest"]}) == 3
    if provider == "dyte":
        assert access.preset(settings, provider, GUEST) == "lobby"


def test_only_a_current_role_on_a_meeting_not_cancelled_keeps_a_place(people):
    owner, _, _ = people
    meeting = factories.meeting(owner)
    assert all(access.may_still_join(meeting, role) for role in Role)
    assert not access.may_still_join(meeting, None)
    cancelled = meeting.replace(cancelled_at=factories.CREATED_AT)
    assert not any(access.may_still_join(cancelled, role) for role in Role)

"""Who may do what (contract sections 2 and 3), as allow-lists, in one place.

Every role decision in the code goes through here: a role gets exactly what it is granted below, so
a new role gets nothing until someone grants it. A caller's role on a meeting comes from
`relation`: the owner; else their usable invite (pending or accepted: a declined invitee is no longer
invited and keeps none of its powers); else a guest, when the meeting's access is `organization` and no
invite revoked for them (addressed to them, or bound to their identity whatever address it went to) keeps
them out; else none (404: never reveal existence).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING

from shared import problems

if TYPE_CHECKING:
    from shared.model import Invite, Meeting
    from shared.settings import Settings


class Role(StrEnum):
    OWNER = "owner"
    HOST = "host"
    PARTICIPANT = "participant"
    GUEST = "guest"


class Action(StrEnum):
    READ = "read"  # the meeting as its members see it
    READ_AS_GUEST = "read-as-guest"  # the guest view: never the invites
    EDIT = "edit"
    CANCEL = "cancel"
    INVITE_HOSTS = "invite-hosts"
    INVITE_PARTICIPANTS = "invite-participants"
    CHANGE_HOST_INVITES = "change-host-invites"  # re-invite, or give another role to, a host's invite
    REINVITE_REVOKED = "reinvite-revoked"
    SEE_INVITES = "see-invites"
    REVOKE = "revoke"
    DECLINE = "decline"
    SEE_SESSIONS = "see-sessions"
    SEE_RECORDINGS = "see-recordings"
    END = "end"
    JOIN = "join"
    JOIN_BEFORE_WINDOW = "join-before-window"  # from any time before the start, not only 15 minutes


class Access(StrEnum):
    INVITED = "invited"
    ORGANIZATION = "organization"


_GRANTS: dict[Action, frozenset[Role]] = {
    Action.READ: frozenset({Role.OWNER, Role.HOST, Role.PARTICIPANT}),
    Action.READ_AS_GUEST: frozenset({Role.GUEST}),
    Action.EDIT: frozenset({Role.OWNER}),
    Action.CANCEL: frozenset({Role.OWNER}),
    Action.INVITE_HOSTS: frozenset({Role.OWNER}),
    Action.INVITE_PARTICIPANTS: frozenset({Role.OWNER, Role.HOST}),
    Action.CHANGE_HOST_INVITES: frozenset({Role.OWNER}),
    Action.REINVITE_REVOKED: frozenset({Role.OWNER}),
    Action.SEE_INVITES: frozenset({Role.OWNER, Role.HOST}),
    Action.REVOKE: frozenset({Role.OWNER}),
    Action.DECLINE: frozenset({Role.HOST, Role.PARTICIPANT}),
    Action.SEE_SESSIONS: frozenset({Role.OWNER, Role.HOST}),
    Action.SEE_RECORDINGS: frozenset({Role.OWNER, Role.HOST}),
    Action.END: frozenset({Role.OWNER, Role.HOST}),
    Action.JOIN: frozenset({Role.OWNER, Role.HOST, Role.PARTICIPANT, Role.GUEST}),
    Action.JOIN_BEFORE_WINDOW: frozenset({Role.OWNER, Role.HOST}),
}

# The roles an invite can carry, strongest first: a caller with several invites acts with the strongest.
INVITE_ROLES = (Role.HOST, Role.PARTICIPANT)
# Strongest first: what the list shows when a caller is related to a meeting in several ways.
STRENGTH = (Role.OWNER, Role.HOST, Role.PARTICIPANT, Role.GUEST)

_PRESET_OF = {Role.OWNER: "host", Role.HOST: "host", Role.PARTICIPANT: "participant", Role.GUEST: "guest"}
# The preset kinds, and the one whose holders moderate the call at the provider (admit from the waiting room,
# kick, mute, record): what the presets command creates and checks.
PRESET_KINDS = ("host", "participant", "guest")
_MODERATING_PRESETS = frozenset({"host"})
# Roles whose place in a meeting depends on its access being `organization` (re-checked when it narrows).
_BY_ORGANIZATION_ACCESS = frozenset({Role.GUEST})
# Roles whose first join is recorded in the user's participations (the owner's meetings are in their own
# partition): what account closing walks.
_RECORDED_PARTICIPATIONS = frozenset({Role.HOST, Role.PARTICIPANT, Role.GUEST})
# Roles named in attendance (an invitee's place is in the invites; a guest has none).
_NAMED_IN_ATTENDANCE = frozenset({Role.GUEST})
# Inviting with a role, and changing an invite that has a role, each need their own grant.
_INVITE_AS = {Role.HOST: Action.INVITE_HOSTS, Role.PARTICIPANT: Action.INVITE_PARTICIPANTS}
_CHANGE_INVITE_OF = {Role.HOST: Action.CHANGE_HOST_INVITES, Role.PARTICIPANT: Action.INVITE_PARTICIPANTS}


def allows(role: Role | None, action: Action) -> bool:
    return role is not None and role in _GRANTS[action]


def require(role: Role, action: Action, refusal: str) -> None:
    """403 unless `role` is granted `action` (the caller already sees the meeting)."""
    if not allows(role, action):
        raise problems.Forbidden(refusal)


def strongest(roles: Iterable[Role]) -> Role:
    return min(roles, key=STRENGTH.index)


def preset(settings: Settings, provider: str, role: Role) -> str:
    """The provider preset a role joins with: owner and host the host preset, and so on."""
    return settings.presets_for(provider)[_PRESET_OF[role]]


def usable_invite(caller_id: str, invites: Iterable[Invite]) -> Invite | None:
    """The caller's invite among those addressed to their verified addresses, or None.

    Only a pending or accepted invite gives its role: the contract's invitees are "pending or accepted, not
    revoked or declined", so a declined host is no host until invited again. An invite bound to another
    identity is not theirs; among several, the strongest role, then an accepted one.
    """
    usable = [invite for invite in invites if invite.active and invite.bound_to in ("", caller_id)]
    if not usable:
        return None
    return min(usable, key=lambda invite: (INVITE_ROLES.index(invite.role), invite.status != "accepted"))


def declined_invite(caller_id: str, invites: Iterable[Invite]) -> Invite | None:
    """The caller's declined invite among those addressed to them (declining it again changes nothing)."""
    return next((i for i in invites if i.status == "declined" and i.bound_to in ("", caller_id)), None)


def relation(
    caller_id: str, meeting: Meeting, invites: Iterable[Invite], bound: Iterable[Invite] = ()
) -> tuple[Role, Invite | None] | None:
    """The caller's role on the meeting and the invite it comes from; None: no relation (404).

    `invites` are those addressed to the caller's verified addresses; `bound`, any others bound to the
    caller's identity (sent to an address their token no longer carries). Those give no role (an invite
    matches by address), but one revoked keeps them out like any revocation: the explicit revocation wins.
    """
    if meeting.owner_id == caller_id:
        return Role.OWNER, None
    invites = list(invites)
    invite = usable_invite(caller_id, invites)
    if invite is not None:
        return invite.role, invite
    # Every invite of `bound` is bound to the caller, so the same test holds for both.
    revoked = any(invite.status == "revoked" and invite.bound_to in ("", caller_id) for invite in (*invites, *bound))
    if meeting.access == Access.ORGANIZATION and not revoked:
        # Signed in from an allowed tenant (authentication checked that) and holding the link.
        return Role.GUEST, None
    return None


def check_invite(inviter: Role, role: Role, current: Invite | None) -> None:
    """403 unless `inviter` may invite someone as `role`, over their `current` invite if any."""
    require(inviter, _INVITE_AS[role], f"A {inviter.value} cannot invite as {role.value}.")
    if current is not None:
        require(
            inviter,
            _CHANGE_INVITE_OF[current.role],
            f"A {inviter.value} cannot change a {current.role.value}'s invite.",
        )
        if current.status == "revoked":
            require(inviter, Action.REINVITE_REVOKED, "Only the owner can invite again whom the owner revoked.")


def moderates(preset_kind: str) -> bool:
    """Whether holders of this preset kind moderate the call at the provider."""
    return preset_kind in _MODERATING_PRESETS


def by_organization_access(role: Role | str) -> bool:
    return role in _BY_ORGANIZATION_ACCESS


def records_participation(role: Role) -> bool:
    return role in _RECORDED_PARTICIPATIONS


def named_in_attendance(role: Role | str) -> str | None:
    """The role attendance shows next to a participant, or None."""
    return str(Role(role).value) if role and role in _NAMED_IN_ATTENDANCE else None


def may_still_join(meeting: Meeting, role: Role | None) -> bool:
    """Whether a participant with this current role keeps a place at the provider (the reconciler's rule)."""
    return role is not None and not meeting.cancelled and allows(role, Action.JOIN)

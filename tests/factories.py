"""Test factories: users, meetings, invites and participants, built the way the app builds them.

`user` is a signed-in `Caller` (tenant, object id, verified addresses, name and the public id the app
derives from them). `meeting`, `invite` and `participant` are typed rows (`shared.model`) for pure
tests; `create_meeting` makes a meeting through the domain code (on a `Context`), as a request does.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from shared import schema
from shared.access import Access, Role
from shared.auth import Caller, user_id
from shared.model import Invite, Meeting, Participant, Schedule
from tests import support

# The example settings' ID_HASH_KEY: what `support.load()` and the domain_context fixture use.
ID_HASH_KEY = support.EXAMPLE_VALUES["ID_HASH_KEY"].encode("utf-8")
CREATED_AT = datetime(2031, 1, 1, 9, 0, tzinfo=UTC)


def user(
    name: str = "user",
    *,
    email: str | None = None,
    emails: tuple[str, ...] | None = None,
    tenant: str = support.TENANT,
    object_id: str | None = None,
    key: bytes = ID_HASH_KEY,
) -> Caller:
    """A signed-in caller: a fresh address and object id unless given (`emails=()`: no verified address)."""
    if emails is None:
        emails = (email or f"{name.lower()}-{uuid.uuid4().hex[:8]}@contoso.test",)
    object_id = object_id or str(uuid.uuid4())
    return Caller(tenant, object_id, name.title(), emails, user_id(key, tenant, object_id))


def meeting(
    owner: Caller,
    *,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    zone: str = "UTC",
    access: Access = Access.INVITED,
    created_at: datetime = CREATED_AT,
    **changes: Any,
) -> Meeting:
    """A meeting owned by `owner`, as create would store it (not written anywhere)."""
    values: dict[str, Any] = {
        "id": schema.new_meeting_id(owner.id),
        "owner_id": owner.id,
        "owner_name": owner.name,
        "version": 1,
        "title": "Weekly sync",
        "description": "",
        "schedule": Schedule(starts_at, ends_at, zone),
        "access": access,
        "provider": "dyte",
        "provider_meeting_id": str(uuid.uuid4()),
        "record_on_start": False,
        "created_at": created_at,
        "updated_at": created_at,
    }
    return Meeting(**{**values, **changes})


def invite(
    of: Meeting,
    to: Caller | str,
    *,
    role: Role = Role.PARTICIPANT,
    status: str = "pending",
    bound_to: Caller | str = "",
    invited_at: datetime = CREATED_AT,
    **changes: Any,
) -> Invite:
    """An invite to `of`, addressed to a caller's first address (or to an address)."""
    email = to.email if isinstance(to, Caller) else to
    return Invite(
        meeting_id=of.id,
        partition=of.partition,
        id=schema.invite_id(email),
        email=email,
        role=role,
        status=status,
        invited_at=invited_at,
        invited_by=of.owner_id,
        bound_to=bound_to.id if isinstance(bound_to, Caller) else bound_to,
        **changes,
    )


def participant(of: Meeting, who: Caller, *, role: Role = Role.PARTICIPANT, **changes: Any) -> Participant:
    """The caller's provider participant in `of`, as a finished join leaves it."""
    values: dict[str, Any] = {
        "meeting_id": of.id,
        "partition": of.partition,
        "user_id": who.id,
        "custom_participant_id": f"cp-{who.id}",
        "participant_id": str(uuid.uuid4()),
        "preset": "group_call_participant",
        "role": role.value,
        "invite_ids": tuple(schema.invite_id(address) for address in who.verified_emails),
    }
    return Participant(**{**values, **changes})


def create_meeting(ctx: Any, owner: Caller, idempotency_key: str | None = None, **body: Any) -> dict[str, Any]:
    """Create a meeting through the domain code, as `POST /api/meetings` does; the API's Meeting."""
    from shared import meetings

    body.setdefault("title", "Weekly sync")
    return meetings.create(ctx, owner, meetings.parse_create(body), body, idempotency_key).meeting

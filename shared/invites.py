"""Invitations (contract sections 2 and 3): who may see and join a meeting, and as what.

Invite rows live in the meeting's partition (RowKey `m|{meeting}|i|{invite id}`), so a change to a
meeting's invites and the meeting row's invite counter commit in one batch guarded by ETags: no
concurrent invite or revocation loses an update. Each change marks the meeting's follow-up in the same
batch (`shared.followups`): the invitee-index rows (what `GET /api/meetings?scope=invited` reads), the
emails, and the provider (a role change, a revocation, a decline) follow from there.

A change to an invite bound to a user also touches that user's participant row, so a join of theirs
that is in flight (between its claim and its final write) notices, and checks again.
"""

from __future__ import annotations

from typing import Any

from shared import access, cursors, followups, outbox, problems, schema, storage, times, validation
from shared.access import Action, Role
from shared.auth import Caller
from shared.context import Context
from shared.mail import INVITED, REVOKED
from shared.meetings import Invitee, load, load_everything, parse_invitees, read, relate
from shared.model import Invite, Participant
from shared.storage import Batch

MAX_INVITES_PER_MEETING = 500


def parse_invite_body(body: Any) -> tuple[Invitee, ...]:
    body = validation.obj(body, "")
    validation.reject_unknown(body, {"invitees"})
    return parse_invitees(body.get("invitees"), "/invitees", 1)


# Invite -----------------------------------------------------------------------------------------------------


def invite(ctx: Context, caller: Caller, meeting_id: str, invitees: tuple[Invitee, ...]) -> list[dict[str, Any]]:
    def change() -> list[dict[str, Any]]:
        everything = load_everything(ctx, caller, meeting_id)
        visible, existing, participants = everything.visible, everything.invites, everything.participants
        access.require(visible.role, Action.INVITE_PARTICIPANTS, "Participants cannot invite.")
        meeting = visible.meeting
        if meeting.cancelled:
            raise problems.Cancelled("A cancelled meeting cannot take invites.")
        _check_may_invite(visible.role, invitees, existing)
        now = ctx.clock()
        batch = ctx.storage.batch(schema.MEETINGS, meeting.partition)
        results: list[Invite] = []
        changed: list[str] = []
        count = sum(1 for row in existing.values() if row.status != "revoked")
        for invitee in invitees:
            current = existing.get(schema.invite_id(invitee.email))
            if current is None:
                row = Invite(
                    meeting.id,
                    meeting.partition,
                    schema.invite_id(invitee.email),
                    invitee.email,
                    invitee.role,
                    "pending",
                    now,
                    caller.id,
                )
                batch.create(row.row())
                count += 1
            elif current.status in ("revoked", "declined"):
                # Invited again: pending again. Only a revocation ends a binding (contract section 2): an
                # invitee who declined is still the one identity that can use the invite.
                row = current.replace(
                    role=invitee.role,
                    status="pending",
                    invited_at=now,
                    invited_by=caller.id,
                    accepted_at=None,
                    bound_to="" if current.status == "revoked" else current.bound_to,
                    mail_sequence=outbox.next_sequence(ctx, current),
                )
                batch.update(row.row(), current.etag)
                _touch(ctx, batch, participants.get(current.bound_to))
                count += current.status == "revoked"
            elif current.role != invitee.role:
                row = current.replace(role=invitee.role, mail_sequence=outbox.next_sequence(ctx, current))
                batch.update(row.row(), current.etag)
                _touch(ctx, batch, participants.get(current.bound_to))
            else:
                row = current
            if row is not current:
                changed.append(row.id)
            results.append(row)
        if count > MAX_INVITES_PER_MEETING:
            raise problems.Conflict(f"A meeting can have at most {MAX_INVITES_PER_MEETING} invites.")
        if changed:
            batch.update(
                {"PartitionKey": meeting.partition, "RowKey": meeting.key, "inviteCount": count},
                meeting.etag,
                merge=True,
            )
            mail = outbox.add(ctx, batch, meeting, INVITED, changed)
            followups.mark(ctx, batch, meeting, invites=changed, mail=mail)
            batch.commit()
        return [row.render() for row in results]

    return storage.retry(change, "The meeting's invites are changing concurrently; retry.")


def _check_may_invite(role: Role, invitees: tuple[Invitee, ...], existing: dict[str, Invite]) -> None:
    for invitee in invitees:
        access.check_invite(role, invitee.role, existing.get(schema.invite_id(invitee.email)))


def _touch(ctx: Context, batch: Batch, participant: Participant | None) -> None:
    """Change the participant row's ETag, so a join of that user in flight re-checks its right."""
    if participant is not None and participant.key not in batch:
        batch.touch(
            {"PartitionKey": participant.partition, "RowKey": participant.key, "touchedAt": times.stamp(ctx.clock())},
            participant.etag,
        )


# Read -------------------------------------------------------------------------------------------------------


def list_invites(ctx: Context, caller: Caller, meeting_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    listing = f"invites:{meeting_id}"
    after = cursors.open_(ctx.settings.id_hash_key, listing, caller.id, cursor)
    visible = load(ctx, caller, meeting_id)
    access.require(visible.role, Action.SEE_INVITES, "Only the owner and hosts see the invites.")
    low, high = schema.invite_range(meeting_id)
    if after is not None:
        if not isinstance(after, str):
            raise problems.Validation("The cursor is not valid.")
        low = schema.invite_key(meeting_id, after)
    pages = (
        ctx.storage.table(schema.MEETINGS)
        .query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": visible.meeting.partition, "low": low, "high": high},
            results_per_page=limit + 1,
        )
        .by_page()
    )
    rows = [Invite.from_row(row) for row in next(pages, [])]
    items = [row.render() for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = cursors.seal(ctx.settings.id_hash_key, listing, caller.id, rows[limit - 1].id) if more else None
    return {"items": items, "nextCursor": next_cursor}


# Revoke and decline -----------------------------------------------------------------------------------------


def revoke(ctx: Context, caller: Caller, meeting_id: str, invite_id: str) -> None:
    """Joins are refused once this commits; the provider participant goes right after (or later, retried)."""

    def change() -> None:
        everything = load_everything(ctx, caller, meeting_id)
        visible, existing, participants = everything.visible, everything.invites, everything.participants
        access.require(visible.role, Action.REVOKE, "Only the owner can revoke invites.")
        meeting = visible.meeting
        current = existing.get(invite_id)
        if current is None:
            raise problems.NotFound("No such invite.")
        if current.status == "revoked":
            return
        batch = ctx.storage.batch(schema.MEETINGS, meeting.partition)
        revoked = current.replace(status="revoked", mail_sequence=outbox.next_sequence(ctx, current))
        batch.update(revoked.row(), current.etag)
        _touch(ctx, batch, participants.get(current.bound_to))
        mail = outbox.add(ctx, batch, meeting, REVOKED, [current.id])
        followups.mark(ctx, batch, meeting, invites=[current.id], mail=mail)
        batch.commit()

    storage.retry(change, "The invite is changing concurrently; retry.")


def decline(ctx: Context, caller: Caller, meeting_id: str) -> None:
    def change() -> None:
        seen = read(ctx, caller, meeting_id)
        if access.usable_invite(caller.id, seen.invites) is None and access.declined_invite(caller.id, seen.invites):
            return  # declined already (a declined invitee is no longer invited: only this stays theirs)
        visible = relate(caller, seen)
        access.require(visible.role, Action.DECLINE, "Only an invitee can decline.")
        current = visible.invite
        if current is None:
            raise problems.Forbidden("You have no invite to decline.")
        batch = ctx.storage.batch(schema.MEETINGS, current.partition)
        batch.update(current.replace(status="declined").row(), current.etag)
        _touch(ctx, batch, visible.participant)
        followups.mark(ctx, batch, visible.meeting, invites=[current.id])
        batch.commit()

    storage.retry(change, "The invite is changing concurrently; retry.")

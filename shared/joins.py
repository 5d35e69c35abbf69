"""Joining a meeting: who may join when, and exactly one provider participant per user.

The caller's provider participant is a row in the meeting's partition (RowKey `m|{meeting}|p|{user id}`).
The first join claims it with a conditional insert, so concurrent joins on any number of instances create
one provider participant; the others wait for the claim to finish and reuse its fresh token. An add that
may have reached the provider without our knowing (a timeout, a 5xx, a broken connection) leaves the claim
`uncertain`, as does a claim taken over (its holder died): the next join first looks the participant up at
the provider and adopts it, so there is never a second participant for one user. A claim is `held` while its
join is adding: other joins wait for it, uncertain or not, and take over only once it gave up (or its lease
ended), so two joins never add at once.

The final write stores the participant and binds the invite (its first join with it) in one batch, so a
join that fails binds nothing. It is guarded by the claim's ETag: a revocation, decline, role change or
account closing that committed while this join was adding the participant touches the row, and the join
then checks the caller's right again (the closed-account gate too) and makes the provider match before
answering.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared import access, followups, meetings, problems, schema, times
from shared.access import Action, Role
from shared.auth import Caller, public_id
from shared.context import Context
from shared.meetings import Visible
from shared.model import Invite, Meeting, Participant
from shared.provider import ParticipantGone, ProviderClient
from shared.storage import Batch, Stale

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(seconds=20)
# Concurrent joins of one user share one fresh token instead of refreshing (and, with providers
# whose refresh revokes the previous token, invalidating) each other's.
TOKEN_REUSE = timedelta(seconds=10)
WAIT_FOR_CLAIM_SECONDS = 15.0


def custom_participant_id(ctx: Context, meeting_id: str, caller: Caller) -> str:
    """The provider's `custom_participant_id`: not reversible, not linkable across meetings."""
    return public_id(ctx.settings.id_hash_key, "participant", meeting_id, caller.tenant_id, caller.object_id)


def check_window(ctx: Context, meeting: Meeting, role: Role, now: datetime) -> None:
    opens, closes = meeting.schedule.join_window(ctx.settings.join_early_minutes, ctx.settings.join_grace_minutes)
    window = {"joinOpensAt": times.format_utc(opens), "joinClosesAt": times.format_utc(closes)}
    if closes is not None and now > closes:
        raise problems.JoinWindow(f"The meeting closed for joining at {window['joinClosesAt']}.", **window)
    if opens is not None and not access.allows(role, Action.JOIN_BEFORE_WINDOW) and now < opens:
        raise problems.JoinWindow(f"The meeting opens for joining at {window['joinOpensAt']}.", **window)


class _Changed(Exception):
    """The caller's participant row changed while this join relied on it (see `_remember`, `_wait_for_claim`)."""


ATTEMPTS = 3


def join(ctx: Context, caller: Caller, meeting_id: str) -> dict[str, Any]:
    for _ in range(ATTEMPTS):
        try:
            return _join(ctx, caller, meeting_id)
        except _Changed:
            # The caller's participant row moved while this join relied on it: someone changed the caller's
            # right while it added their participant (the follow-up makes the provider match our tables), or
            # the claim it waited for was given up. The join runs again from a fresh read, and answers from
            # what our tables say now (or 403, 404, 409). The change may have been the caller's own account
            # closing, which the gate passed before it committed.
            if ctx.closed is not None:
                ctx.closed.check(caller.id)
    raise problems.Unavailable("Joining is taking longer than usual; retry.", retry_after=2)


def _join(ctx: Context, caller: Caller, meeting_id: str) -> dict[str, Any]:
    visible = meetings.load(ctx, caller, meeting_id)
    access.require(visible.role, Action.JOIN, "You cannot join this meeting.")
    meeting = visible.meeting
    if meeting.cancelled:
        raise problems.Cancelled("The meeting is cancelled.")
    now = ctx.clock()
    check_window(ctx, meeting, visible.role, now)
    preset = access.preset(ctx.settings, meeting.provider, visible.role)
    participant = visible.participant
    if participant is None and access.records_participation(visible.role):
        # Before the claim: account closing finds the meetings of others a user was ever added to here.
        _note_participation(ctx, caller, meeting)
    if participant is not None and participant.participant_id and not participant.uncertain:
        return _rejoin(ctx, caller, visible, participant, preset, now)
    return _claim_and_add(ctx, caller, visible, preset, now, takeover=participant)


def _binds(visible: Visible) -> bool:
    """Whether this join binds the caller's invite (its first join with it)."""
    invite = visible.invite
    return invite is not None and (invite.status != "accepted" or not invite.bound_to)


def _bound(visible: Visible, caller: Caller, now: datetime) -> Invite | None:
    """The caller's invite bound to them and accepted, when this join is what binds it."""
    if not _binds(visible):
        return None
    invite = visible.invite
    return invite.replace(status="accepted", bound_to=caller.id, accepted_at=invite.accepted_at or now)


def _note_participation(ctx: Context, caller: Caller, meeting: Meeting) -> None:
    ctx.storage.table(schema.PARTICIPATIONS).upsert_entity(
        {"PartitionKey": caller.id, "RowKey": meeting.id, "ownerId": meeting.owner_id}
    )


def _rejoin(ctx: Context, caller: Caller, visible: Visible, participant: Participant, preset: str, now: datetime):
    meeting = visible.meeting
    if participant.preset == preset and _fresh(participant, now):
        return _join_body(meeting, participant.participant_id, participant.token, visible.role, preset)
    provider = ctx.provider(meeting.provider)
    try:
        # The role may have changed since the provider last heard (a demotion, a declined host invited again
        # as participant): then the preset follows now.
        token = _fresh_token(
            provider, meeting.provider_meeting_id, participant.participant_id, participant.preset, preset
        )
    except ParticipantGone:
        # Deleted at the provider behind our back: add it again under a new claim.
        return _claim_and_add(ctx, caller, visible, preset, now, takeover=participant)
    _remember(ctx, caller, visible, participant, participant.participant_id, token, preset, now)
    return _join_body(meeting, participant.participant_id, token, visible.role, preset)


@dataclass(frozen=True)
class _Joined:
    """Another request finished the claim we waited for: its answer is ours too."""

    body: dict[str, Any]


def _claim_and_add(ctx: Context, caller: Caller, visible: Visible, preset: str, now: datetime, takeover):
    claimed = _claim(ctx, caller, visible, preset, now, takeover)
    if isinstance(claimed, _Joined):
        return claimed.body
    if access.by_organization_access(visible.role):
        _recheck_access(ctx, caller, visible, claimed)
    return _add(ctx, caller, visible, claimed, preset, now)


def _recheck_access(ctx: Context, caller: Caller, visible: Visible, claim: Participant) -> None:
    """A guest's right comes from the meeting row, which no write of the join is guarded by (an invitee's
    comes from invites, whose changes touch the claim). Read it again now that the claim exists: access
    narrowed before this read is seen here; narrowed after it, its follow-up finds the claim and touches
    it, so the final write fails and the join starts over."""
    try:
        now = meetings.load(ctx, caller, visible.meeting.id)
    except problems.Problem:
        _release(ctx, claim)
        raise
    if now.role is not visible.role or now.meeting.cancelled:
        _release(ctx, claim)
        raise _Changed


def _fresh(participant: Participant, now: datetime) -> bool:
    return bool(participant.token) and participant.token_at is not None and now - participant.token_at <= TOKEN_REUSE


def _claim(ctx: Context, caller: Caller, visible: Visible, preset: str, now: datetime, takeover: Participant | None):
    """Claim the right to add the caller's participant (the claim row), or wait for whoever holds it."""
    meeting = visible.meeting
    claim = Participant(
        meeting_id=meeting.id,
        partition=meeting.partition,
        user_id=caller.id,
        custom_participant_id=custom_participant_id(ctx, meeting.id, caller),
        preset=preset,
        role=visible.role.value,
        claim_until=now + CLAIM_LEASE,
        # Taking over a claim whose holder died: it may have added the participant before dying.
        uncertain=takeover is not None,
        held=True,
        invite_ids=tuple(meetings.candidate_invite_ids(caller)),
    )
    batch = ctx.storage.batch(schema.MEETINGS, meeting.partition)
    if takeover is not None:
        if takeover.claim_in_flight(now):
            return _wait_for_claim(ctx, caller, visible, preset)
        batch.update(claim.row(), takeover.etag)
    else:
        batch.create(claim.row())
    try:
        results = batch.commit()
    except Stale:
        return _wait_for_claim(ctx, caller, visible, preset)
    return claim.replace(etag=results[0]["etag"])


def _index_binding(ctx: Context, invite: Invite, meeting: Meeting) -> None:
    """The invitee index learns the binding at once, so the list never shows the meeting to another identity
    with the same address; if this write fails, the meeting's follow-up writes it."""
    try:
        followups.index_now(ctx, invite, meeting)
    except AzureError as error:
        log.warning("join: the invitee index missed a binding (%s); the follow-up writes it", type(error).__name__)
        _follow_up(ctx, meeting, invites=[invite.id])


def _wait_for_claim(ctx: Context, caller: Caller, visible: Visible, preset: str):
    """Another request holds the claim: wait for its participant, then share its token."""
    meeting = visible.meeting
    table = ctx.storage.table(schema.MEETINGS)
    deadline = time.monotonic() + WAIT_FOR_CLAIM_SECONDS
    delay = 0.05
    while time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
        try:
            row = Participant.from_row(
                table.get_entity(meeting.partition, schema.participant_key(meeting.id, caller.id))
            )
        except ResourceNotFoundError:
            raise _Changed from None  # the holder failed and released its claim: try in our turn
        if row.participant_id and row.token:
            return _Joined(_join_body(meeting, row.participant_id, row.token, visible.role, row.preset))
        if not row.claim_in_flight(ctx.clock()):
            # The holder gave up or died. Take over from a fresh read, never with the right read before: the
            # row may have moved because that right changed (a revocation whose follow-up removed us).
            raise _Changed
    raise problems.Unavailable("Joining is taking longer than usual; retry.", retry_after=2)


def _add(ctx: Context, caller: Caller, visible: Visible, claim: Participant, preset: str, now: datetime):
    meeting = visible.meeting
    provider = ctx.provider(meeting.provider)
    try:
        participant_id, token = _provide(provider, meeting.provider_meeting_id, claim, caller, preset)
    except problems.ProviderRejected:
        if claim.uncertain:
            _mark_uncertain(ctx, claim)  # whatever an earlier add left is still unknown
        else:
            _release(ctx, claim)  # refused: the provider added nobody
        raise
    except problems.Problem:
        # A timeout, a 5xx (processed halfway, perhaps), a connection broken after sending: it may have been
        # added after all. The next join looks it up and adopts it instead of adding a second one.
        _mark_uncertain(ctx, claim)
        raise
    try:
        _remember(ctx, caller, visible, claim, participant_id, token, preset, now)
    except AzureError:
        # The provider has the participant, our row does not say so: the next join looks it up first.
        _mark_uncertain(ctx, claim)
        raise
    return _join_body(meeting, participant_id, token, visible.role, preset)


def _provide(provider: ProviderClient, pmid: str, claim: Participant, caller: Caller, preset: str) -> tuple[str, str]:
    """The caller's participant id and a fresh token: the participant an earlier add may have left when the
    claim is uncertain, else a new one."""
    if claim.uncertain:
        found = provider.find_participant(pmid, claim.custom_participant_id)
        if found is not None:
            try:
                return found.id, _fresh_token(provider, pmid, found.id, found.preset_name, preset)
            except ParticipantGone:
                pass  # deleted since it was listed: add it anew
    added = provider.add_participant(
        pmid, custom_participant_id=claim.custom_participant_id, name=caller.name or None, preset_name=preset
    )
    return added.id, added.token


def _fresh_token(provider: ProviderClient, pmid: str, participant_id: str, current: str, preset: str) -> str:
    """A new token for the participant, with `preset` set first when it has `current`, another one."""
    if current != preset:
        changed = provider.set_participant_preset(pmid, participant_id, preset)
        if changed is not None:
            return changed.token  # a token for the new preset
        # Cloudflare's schema lets the answer leave the participant out: the preset changed all the same.
    return provider.refresh_token(pmid, participant_id)


def _remember(
    ctx: Context,
    caller: Caller,
    visible: Visible,
    row: Participant,
    participant_id: str,
    token: str,
    preset: str,
    now: datetime,
) -> None:
    """Store the participant and its fresh token, binding the caller's invite on its first join, if the row
    is as we left it; else `_Changed`. A closed account is refused (403) and the participant removed."""
    stored = row.replace(
        participant_id=participant_id,
        token=token,
        token_at=now,
        preset=preset,
        role=visible.role.value,
        # Over an uncertain claim the lease stays (a rejoin keeps it): the add given up on may still land beside
        # this one until it ends.
        claim_until=row.claim_until if row.uncertain or row.participant_id else None,
        uncertain=False,
        held=False,
        invite_ids=tuple(meetings.candidate_invite_ids(caller)),
    )
    batch = ctx.storage.batch(schema.MEETINGS, row.partition)
    batch.update(stored.row(), row.etag, merge=True)
    # The first join binds the invite to this identity (from now on only it can use the invite), in the same
    # batch as the participant: a join that fails before this binds nothing.
    bound = _bound(visible, caller, now)
    if bound is not None:
        batch.update(bound.row(), visible.invite.etag)
    if row.uncertain:
        # The follow-up lists the provider once that add can no longer land, and removes a second participant.
        followups.mark(ctx, batch, visible.meeting, users=[caller.id], inline=False)
    try:
        batch.commit()
    except Stale:
        # The change may be the caller's account closing, committed after the gate let this request in: the
        # gate learns of it now, so that the follow-up removes the participant and the retry refuses.
        _refresh_gate(ctx)
        # Keep what the provider said, without a token to share, for the follow-up to adopt or remove.
        unsure = stored.replace(token="", token_at=None, uncertain=True)
        _follow_up(ctx, visible.meeting, users=[caller.id], before=lambda batch: batch.upsert(unsure.row(), merge=True))
        raise _Changed from None
    except AzureError:
        if not _stored(ctx, stored):
            raise
        # Only the answer was lost: the write (and any binding) committed, so the join succeeded.
    if bound is not None:
        _index_binding(ctx, bound, visible.meeting)
    if _closed_since(ctx, caller):
        # Closed while this join added them, and perhaps after the closing looked for their participants:
        # the provider must not keep them.
        _follow_up(ctx, visible.meeting, users=[caller.id])
        raise problems.Forbidden("This account was closed.")


def _stored(ctx: Context, stored: Participant) -> bool:
    """Whether a write whose answer failed committed after all (its token is unique to it)."""
    try:
        row = ctx.storage.table(schema.MEETINGS).get_entity(stored.partition, stored.key)
    except AzureError:
        return False
    return row.get("token") == stored.token


def _closed_since(ctx: Context, caller: Caller) -> bool:
    """Whether the gate, which let this request in, knows of the caller's account closing by now."""
    if ctx.closed is None:
        return False
    try:
        return ctx.closed.is_closed(caller.id)
    except problems.Unavailable:
        return False  # the gate could not refresh: our change committed, and a closing finds it


def _refresh_gate(ctx: Context) -> None:
    if ctx.closed is None:
        return
    try:
        ctx.closed.refresh()
    except AzureError as error:  # the gate's own freshness rule still holds; the follow-up retries on failure
        log.warning("join: could not refresh the closed-account gate: %s", type(error).__name__)


def _follow_up(ctx: Context, meeting: Meeting, before: Any = None, **marks: Any) -> None:
    """Mark (and run inline) a follow-up of the meeting, in a batch of its own."""
    batch = Batch(ctx.storage.table(schema.MEETINGS), meeting.partition)
    if before is not None:
        before(batch)
    followups.mark(ctx, batch, meeting, **marks)
    batch.commit()


def _mark_uncertain(ctx: Context, claim: Participant) -> None:
    try:
        ctx.storage.table(schema.MEETINGS).update_entity(
            # The lease stays: until it ends the add may still land, and a follow-up waits for it.
            {"PartitionKey": claim.partition, "RowKey": claim.key, "uncertain": True, "held": False},
            mode=UpdateMode.MERGE,
        )
    except Exception as error:  # the lease expires anyway; a takeover then looks the participant up
        log.warning("join: could not mark a claim uncertain: %s", type(error).__name__)


def _release(ctx: Context, claim: Participant) -> None:
    batch = ctx.storage.batch(schema.MEETINGS, claim.partition)
    batch.delete(claim.key, claim.etag)
    try:
        batch.commit()
    except Exception as error:  # the lease expires anyway
        log.warning("join: could not release a claim: %s", type(error).__name__)


def _join_body(meeting: Meeting, participant_id: str, token: str, role: Role, preset: str) -> dict[str, Any]:
    return {
        "provider": meeting.provider,
        "providerMeetingId": meeting.provider_meeting_id,
        "participantId": participant_id,
        "authToken": token,
        "role": role.value,
        "preset": preset,
        "expiresAt": token_expiry(token),
    }


def token_expiry(token: str) -> str | None:
    """The provider token's `exp` as RFC 3339, when it is a JWT that has one."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    try:
        return times.format_utc(times.from_timestamp(exp))
    except (OverflowError, OSError, ValueError):
        return None


def end(ctx: Context, caller: Caller, meeting_id: str) -> None:
    visible = meetings.load(ctx, caller, meeting_id)
    access.require(visible.role, Action.END, "Only the owner and hosts can end the meeting for everyone.")
    provider = ctx.provider(visible.meeting.provider)
    if provider.active_session(visible.meeting.provider_meeting_id) is None:
        raise problems.Conflict("Nothing is live in this meeting.")
    provider.kick_all(visible.meeting.provider_meeting_id)

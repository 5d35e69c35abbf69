"""Joining a meeting: who may join when, and exactly one provider participant per user.

The caller's provider participant is a row in the meeting's partition (RowKey
`m|{meeting}|p|{user id}`). The first join claims it with a conditional insert, batched with the
invite's binding, so concurrent joins on any number of instances create one provider participant;
the others wait for the claim to finish and reuse its fresh token.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared import jobs, meetings, problems, storage, times
from shared.auth import Caller, public_id
from shared.context import Context
from shared.provider import ParticipantGone

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(seconds=20)
# Concurrent joins of one user share one fresh token instead of refreshing (and, with providers
# whose refresh revokes the previous token, invalidating) each other's.
TOKEN_REUSE = timedelta(seconds=10)
WAIT_FOR_CLAIM_SECONDS = 15.0


def participant_row_key(meeting_id: str, user: str) -> str:
    return f"{meetings.meeting_row_key(meeting_id)}|p|{user}"


def custom_participant_id(ctx: Context, meeting_id: str, caller: Caller) -> str:
    """The provider's `custom_participant_id`: not reversible, not linkable across meetings."""
    return public_id(ctx.settings.id_hash_key, "participant", meeting_id, caller.tenant_id, caller.object_id)


def check_window(ctx: Context, row: dict[str, Any], role: str, now) -> None:
    starts_at = times.parse_rfc3339(row.get("startsAt") or "")
    ends_at = times.parse_rfc3339(row.get("endsAt") or "")
    opens = starts_at - timedelta(minutes=ctx.settings.join_early_minutes) if starts_at else None
    closes = ends_at + timedelta(minutes=ctx.settings.join_grace_minutes) if ends_at else None
    window = {"joinOpensAt": times.format_utc(opens), "joinClosesAt": times.format_utc(closes)}
    if closes is not None and now > closes:
        raise problems.JoinWindow(f"The meeting closed for joining at {window['joinClosesAt']}.", **window)
    if opens is not None and role == "participant" and now < opens:
        raise problems.JoinWindow(f"The meeting opens for joining at {window['joinOpensAt']}.", **window)


def join(ctx: Context, caller: Caller, meeting_id: str) -> dict[str, Any]:
    ctx.limits.take("join", caller.id)
    visible = meetings.load(ctx, caller, meeting_id)
    meeting = visible.row
    if meeting.get("cancelledAt"):
        raise problems.Cancelled("The meeting is cancelled.")
    now = ctx.clock()
    check_window(ctx, meeting, visible.role, now)
    host_preset, participant_preset = ctx.settings.presets_for(meeting["provider"])
    preset = participant_preset if visible.role == "participant" else host_preset
    provider = ctx.provider(meeting["provider"])
    table = ctx.storage.table(meetings.MEETINGS_TABLE)

    participant = visible.participant
    if participant is not None and participant.get("participantId"):
        if participant.get("preset") == preset and _fresh(participant, now):
            return _join_body(meeting, participant["participantId"], participant["token"], visible.role, preset)
        try:
            token = provider.refresh_token(meeting["providerMeetingId"], participant["participantId"])
        except ParticipantGone:
            # Deleted at the provider behind our back: add it again under a new claim.
            return _claim_and_add(ctx, caller, visible, preset, now, takeover=participant)
        _remember_token(table, participant, participant["participantId"], token, preset, now)
        return _join_body(meeting, participant["participantId"], token, visible.role, preset)
    return _claim_and_add(ctx, caller, visible, preset, now, takeover=participant)


@dataclass(frozen=True)
class _Joined:
    """Another request finished the claim we waited for: its answer is ours too."""

    body: dict[str, Any]


def _claim_and_add(ctx: Context, caller: Caller, visible: meetings.Visible, preset: str, now, takeover):
    claimed = _claim(ctx, caller, visible, preset, now, takeover)
    if isinstance(claimed, _Joined):
        return claimed.body
    return _add(ctx, caller, visible, claimed, preset, now)


def _fresh(participant: dict[str, Any], now) -> bool:
    token_at = times.parse_rfc3339(participant.get("tokenAt") or "")
    return bool(participant.get("token")) and token_at is not None and now - token_at <= TOKEN_REUSE


def _claim(ctx: Context, caller: Caller, visible: meetings.Visible, preset: str, now, takeover):
    """Claim the right to add the caller's participant (the claim row), or wait for whoever holds it."""
    meeting = visible.row
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    claim = {
        "PartitionKey": meeting["PartitionKey"],
        "RowKey": participant_row_key(meeting["id"], caller.id),
        "userId": caller.id,
        "customParticipantId": custom_participant_id(ctx, meeting["id"], caller),
        "preset": preset,
        "claimUntil": times.format_utc(now + CLAIM_LEASE),
        "uncertain": bool(takeover is not None and takeover.get("uncertain")),
        "participantId": "",
        "token": "",
        "tokenAt": "",
    }
    if takeover is not None:
        lease = times.parse_rfc3339(takeover.get("claimUntil") or "")
        if not takeover.get("participantId") and lease is not None and lease > now and not takeover.get("uncertain"):
            return _wait_for_claim(ctx, caller, visible, preset)
        operations: list[tuple] = [storage.if_unchanged(claim, takeover.metadata["etag"])]
    else:
        operations = [("create", claim)]
    invite = visible.invite
    if invite is not None and (invite["status"] != "accepted" or not invite.get("boundTo")):
        # The first join binds the invite to this identity: from now on only it can use the invite.
        bound = {
            **invite,
            "status": "accepted",
            "boundTo": caller.id,
            "acceptedAt": invite.get("acceptedAt") or times.format_utc(now),
        }
        operations.append(storage.if_unchanged(bound, invite.metadata["etag"]))
    try:
        results = table.submit_transaction(operations)
    except TableTransactionError as error:
        if error.status_code in (409, 412):
            return _wait_for_claim(ctx, caller, visible, preset)
        raise
    claim["etag"] = results[0]["etag"]
    return claim


def _wait_for_claim(ctx: Context, caller: Caller, visible: meetings.Visible, preset: str):
    """Another request holds the claim: wait for its participant, then share its token."""
    meeting = visible.row
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    deadline = time.monotonic() + WAIT_FOR_CLAIM_SECONDS
    delay = 0.05
    while time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
        try:
            row = table.get_entity(meeting["PartitionKey"], participant_row_key(meeting["id"], caller.id))
        except ResourceNotFoundError:
            # The holder failed and released its claim: this request may try in its turn.
            return _claim(ctx, caller, meetings.load(ctx, caller, meeting["id"]), preset, ctx.clock(), None)
        if row.get("participantId") and row.get("token"):
            return _Joined(_join_body(meeting, row["participantId"], row["token"], visible.role, row["preset"]))
        lease = times.parse_rfc3339(row.get("claimUntil") or "")
        if row.get("uncertain") or lease is None or lease <= ctx.clock():
            return _claim(ctx, caller, visible, preset, ctx.clock(), takeover=row)
    raise problems.Unavailable("Joining is taking longer than usual; retry.", retry_after=2)


def _add(ctx: Context, caller: Caller, visible: meetings.Visible, claim: dict[str, Any], preset: str, now):
    meeting = visible.row
    provider = ctx.provider(meeting["provider"])
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    provider_meeting = meeting["providerMeetingId"]
    try:
        found = (
            provider.find_participant(provider_meeting, claim["customParticipantId"]) if claim["uncertain"] else None
        )
        if found is not None:
            participant_id = found.id
            if found.preset_name != preset:
                provider.set_participant_preset(provider_meeting, participant_id, preset)
            token = provider.refresh_token(provider_meeting, participant_id)
        else:
            added = provider.add_participant(
                provider_meeting,
                custom_participant_id=claim["customParticipantId"],
                name=caller.name or None,
                preset_name=preset,
            )
            participant_id, token = added.id, added.token
    except problems.ProviderTimeout:
        # It may have been added after all: the next join looks it up before adding again.
        _mark_uncertain(table, claim)
        raise
    except problems.Problem:
        _release(table, claim)
        raise
    _remember_token(table, claim, participant_id, token, preset, now)
    return _join_body(meeting, participant_id, token, visible.role, preset)


def _mark_uncertain(table: Any, claim: dict[str, Any]) -> None:
    try:
        table.update_entity(
            {"PartitionKey": claim["PartitionKey"], "RowKey": claim["RowKey"], "uncertain": True},
            mode=UpdateMode.MERGE,
        )
    except Exception as error:  # the lease expires anyway; the next join then looks the participant up
        log.warning("join: could not mark a claim uncertain: %s", type(error).__name__)


def _release(table: Any, claim: dict[str, Any]) -> None:
    try:
        table.delete_entity(
            claim["PartitionKey"], claim["RowKey"], etag=claim["etag"], match_condition=MatchConditions.IfNotModified
        )
    except Exception as error:  # the lease expires anyway
        log.warning("join: could not release a claim: %s", type(error).__name__)


def _remember_token(table: Any, row: dict[str, Any], participant_id: str, token: str, preset: str, now) -> None:
    entity = {
        "PartitionKey": row["PartitionKey"],
        "RowKey": row["RowKey"],
        "participantId": participant_id,
        "token": token,
        "tokenAt": times.format_utc(now),
        "preset": preset,
        "claimUntil": "",
        "uncertain": False,
    }
    try:
        table.update_entity(entity, mode=UpdateMode.MERGE)
    except ResourceNotFoundError:
        # Revoked while we were joining: the revocation removes the provider participant.
        raise problems.NotFound("No such meeting.") from None


def _join_body(meeting: dict[str, Any], participant_id: str, token: str, role: str, preset: str) -> dict[str, Any]:
    return {
        "provider": meeting["provider"],
        "providerMeetingId": meeting["providerMeetingId"],
        "participantId": participant_id,
        "authToken": token,
        "role": role,
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


# Removing and changing participants ------------------------------------------------------------


def participant_for(ctx: Context, meeting: dict[str, Any], user: str) -> Any | None:
    if not user:
        return None
    try:
        return ctx.storage.table(meetings.MEETINGS_TABLE).get_entity(
            meeting["PartitionKey"], participant_row_key(meeting["id"], user)
        )
    except ResourceNotFoundError:
        return None


def remove_at_provider(ctx: Context, meeting: dict[str, Any], participant: dict[str, Any]) -> None:
    """Kick (if live) and delete the provider participant so its token stops working."""
    payload = {
        "provider": meeting["provider"],
        "providerMeetingId": meeting["providerMeetingId"],
        "participantId": participant.get("participantId") or "",
        "customParticipantId": participant["customParticipantId"],
    }
    jobs.now_or_later(ctx, jobs.Kind.REMOVE_PARTICIPANT, payload)


def remove_participant_job(ctx: Context, payload: dict[str, Any], inline: bool = False) -> None:
    provider = ctx.provider(payload["provider"])
    provider = provider.once() if inline else provider
    meeting_id = payload["providerMeetingId"]
    participant_id = payload["participantId"]
    if not participant_id:
        found = provider.find_participant(meeting_id, payload["customParticipantId"])
        if found is None:
            return
        participant_id = found.id
    if provider.active_session(meeting_id) is not None:
        provider.kick(meeting_id, custom_participant_ids=[payload["customParticipantId"]])
    provider.delete_participant(meeting_id, participant_id)


def apply_role_change(ctx: Context, meeting: dict[str, Any], invite: dict[str, Any]) -> None:
    """A changed role takes effect at once: new preset, and a kick if live (no lingering host powers)."""
    participant = participant_for(ctx, meeting, invite.get("boundTo") or "")
    if participant is None or not participant.get("participantId"):
        return
    host_preset, participant_preset = ctx.settings.presets_for(meeting["provider"])
    preset = host_preset if invite["role"] == "host" else participant_preset
    try:
        ctx.storage.table(meetings.MEETINGS_TABLE).update_entity(
            {
                "PartitionKey": participant["PartitionKey"],
                "RowKey": participant["RowKey"],
                "preset": preset,
                "token": "",
                "tokenAt": "",
            },
            mode=UpdateMode.MERGE,
            etag=participant.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    except ResourceModifiedError:
        log.info("role change: participant row changed meanwhile; the provider update still runs")
    payload = {
        "provider": meeting["provider"],
        "providerMeetingId": meeting["providerMeetingId"],
        "participantId": participant["participantId"],
        "customParticipantId": participant["customParticipantId"],
        "preset": preset,
    }
    jobs.now_or_later(ctx, jobs.Kind.SET_PARTICIPANT_PRESET, payload)


def set_preset_job(ctx: Context, payload: dict[str, Any], inline: bool = False) -> None:
    provider = ctx.provider(payload["provider"])
    provider = provider.once() if inline else provider
    provider.set_participant_preset(payload["providerMeetingId"], payload["participantId"], payload["preset"])
    if provider.active_session(payload["providerMeetingId"]) is not None:
        provider.kick(payload["providerMeetingId"], custom_participant_ids=[payload["customParticipantId"]])


def end(ctx: Context, caller: Caller, meeting_id: str) -> None:
    visible = meetings.load(ctx, caller, meeting_id)
    if visible.role == "participant":
        raise problems.Forbidden("Only the owner and hosts can end the meeting for everyone.")
    provider = ctx.provider(visible.row["provider"])
    if provider.active_session(visible.row["providerMeetingId"]) is None:
        raise problems.Conflict("Nothing is live in this meeting.")
    provider.kick_all(visible.row["providerMeetingId"])

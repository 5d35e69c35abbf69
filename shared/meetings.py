"""Meetings: create, read, list, edit and cancel, on Table Storage (design in docs/data-model.md).

An owner's meetings live in one partition of the `Meetings` table (PartitionKey = the owner's public
id): the meeting row, its invites, participants, outbox records and follow-up markers, its owner-index
row (sorted for listing) and the owner's idempotency records. One partition means one atomic batch per
change and one request per read. A meeting id is the owner's partition key followed by 16 random
characters, so a GET needs no lookup table.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared import (
    access,
    cursors,
    followups,
    outbox,
    problems,
    provider_meetings,
    retention,
    schema,
    storage,
    times,
    validation,
)
from shared.access import Access, Action, Role
from shared.auth import Caller
from shared.context import Context
from shared.events import state
from shared.mail import INVITED
from shared.model import Invite, Meeting, Participant, Schedule

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL = timedelta(hours=24)
IDEMPOTENCY_LEASE = timedelta(seconds=60)
MAX_INVITEES_PER_CALL = 50

CREATE_FIELDS = frozenset({"title", "description", "startsAt", "endsAt", "timeZone", "access", "invitees", "settings"})
PATCH_FIELDS = frozenset({"title", "description", "startsAt", "endsAt", "timeZone", "access"})
ACCESS_VALUES = tuple(value.value for value in Access)
INVITE_ROLES = tuple(role.value for role in access.INVITE_ROLES)


# Input ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invitee:
    email: str
    role: Role


@dataclass(frozen=True)
class Draft:
    title: str
    description: str
    schedule: Schedule
    access: Access
    record_on_start: bool
    invitees: tuple[Invitee, ...]


def parse_invitee(entry: Any, pointer: str) -> Invitee:
    entry = validation.obj(entry, pointer, "must be an object with email and role")
    validation.reject_unknown(entry, {"email", "role"}, pointer)
    email = validation.email(entry.get("email"), f"{pointer}/email")
    role = validation.choice(entry.get("role", Role.PARTICIPANT.value), f"{pointer}/role", INVITE_ROLES)
    return Invitee(email, Role(role))


def parse_invitees(value: Any, pointer: str, low: int) -> tuple[Invitee, ...]:
    if not isinstance(value, list) or not low <= len(value) <= MAX_INVITEES_PER_CALL:
        raise validation.invalid(pointer, f"must be a list of {low} to {MAX_INVITEES_PER_CALL} invitees")
    invitees = tuple(parse_invitee(entry, f"{pointer}/{i}") for i, entry in enumerate(value))
    seen: set[str] = set()
    for i, invitee in enumerate(invitees):
        if invitee.email in seen:
            raise validation.invalid(f"{pointer}/{i}/email", "is listed twice")
        seen.add(invitee.email)
    return invitees


def parse_create(body: Any) -> Draft:
    body = validation.obj(body, "")
    validation.reject_unknown(body, CREATE_FIELDS)
    fields = _parse_fields(body, required_title=True)
    settings = validation.obj(body.get("settings", {}), "/settings", "must be an object")
    validation.reject_unknown(settings, {"recordOnStart"}, "/settings")
    record_on_start = validation.boolean(settings.get("recordOnStart", False), "/settings/recordOnStart")
    invitees = parse_invitees(body.get("invitees", []), "/invitees", 0)
    schedule = Schedule(fields.get("startsAt"), fields.get("endsAt"), fields.get("timeZone") or "UTC")
    _check_schedule(schedule)
    return Draft(
        title=fields["title"],
        description=fields.get("description") or "",
        schedule=schedule,
        access=Access(fields.get("access") or Access.INVITED),
        record_on_start=record_on_start,
        invitees=invitees,
    )


def parse_patch(body: Any) -> dict[str, Any]:
    """The merge patch as {field: parsed value or None (clear)}."""
    body = validation.obj(body, "", "must be a JSON object (a merge patch)")
    validation.reject_unknown(body, PATCH_FIELDS)
    for name in ("title", "timeZone", "access"):
        if name in body and body[name] is None:
            raise validation.invalid(f"/{name}", "cannot be cleared")
    return _parse_fields(body, required_title=False)


def _parse_fields(body: dict[str, Any], required_title: bool) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    if "title" in body or required_title:
        parsed["title"] = validation.text(body.get("title"), "/title", low=1, high=200)
    if "description" in body:
        value = body["description"]
        parsed["description"] = (
            None if value is None else validation.text(value, "/description", low=0, high=2000, multiline=True)
        )
    for name in ("startsAt", "endsAt"):
        if name in body:
            parsed[name] = None if body[name] is None else validation.instant(body[name], f"/{name}")
    if body.get("timeZone") is not None:
        parsed["timeZone"] = validation.zone(body["timeZone"], "/timeZone")
    if body.get("access") is not None:
        parsed["access"] = Access(validation.choice(body["access"], "/access", ACCESS_VALUES))
    return parsed


def _check_schedule(schedule: Schedule) -> None:
    if schedule.starts_at and schedule.ends_at and schedule.ends_at <= schedule.starts_at:
        raise validation.invalid("/endsAt", "must be after startsAt")


# Read -------------------------------------------------------------------------------------------------------


@dataclass
class Visible:
    """A meeting as one caller may see it: the meeting, the caller's role, their invite and participant."""

    meeting: Meeting
    role: Role
    invite: Invite | None
    participant: Participant | None

    def render(self) -> dict[str, Any]:
        return self.meeting.render(self.role)


@dataclass
class Seen:
    """What a request read of a meeting for its caller, before their relation to it is decided."""

    meeting: Meeting
    invites: list[Invite]  # addressed to the caller's verified addresses
    bound: list[Invite]  # any others bound to the caller's identity (sent to an address they no longer have)
    participant: Participant | None


def load(ctx: Context, caller: Caller, meeting_id: str) -> Visible:
    """The meeting and the caller's relation to it, in one storage request; 404 when none."""
    return relate(caller, read(ctx, caller, meeting_id))


def read(ctx: Context, caller: Caller, meeting_id: str) -> Seen:
    """The meeting and what relates the caller to it, in one storage request (404 only for no meeting).

    One query picks the meeting row, the invites addressed to the caller's verified addresses or bound to their
    identity, the caller's provider participant and the meeting's webhook summary (its status), bounded to the
    keys between the first and the last of them: never the meeting's history (the webhook rows after its
    summary). The invites bound to the caller are found by the same query's filter (the service reads the
    rows between the bounds either way), so a revocation bound to an identity holds whatever address its
    token carries now, at no extra request.
    """
    partition = schema.owner_partition(meeting_id)
    if partition is None:
        raise problems.NotFound("No such meeting.")
    summary = schema.activity_key(meeting_id, schema.SUMMARY)
    addressed = candidate_invite_ids(caller)
    wanted = {"meeting": schema.meeting_key(meeting_id), "participant": schema.participant_key(meeting_id, caller.id)}
    for n, identifier in enumerate(addressed):
        wanted[f"invite{n}"] = schema.invite_key(meeting_id, identifier)
    wanted["summary"] = summary
    invite_low, invite_high = schema.invite_range(meeting_id)
    query = (
        "PartitionKey eq @pk and RowKey ge @meeting and RowKey le @summary and ( {} or "
        "( RowKey gt @inviteLow and RowKey lt @inviteHigh and boundTo eq @caller ) )"
    ).format(" or ".join(f"RowKey eq @{name}" for name in wanted))
    parameters = {"pk": partition, **wanted, "inviteLow": invite_low, "inviteHigh": invite_high, "caller": caller.id}
    meeting, participant, invites, bound, status = None, None, [], [], None
    for row in ctx.storage.table(schema.MEETINGS).query_entities(query, parameters=parameters):
        if row["RowKey"] == wanted["meeting"]:
            meeting = Meeting.from_row(row)
        elif row["RowKey"] == wanted["participant"]:
            participant = Participant.from_row(row)
        elif row["RowKey"] == summary:
            status = state.activity(row)
        else:
            invite = Invite.from_row(row)
            (invites if invite.id in addressed else bound).append(invite)
    if meeting is None:
        raise problems.NotFound("No such meeting.")
    if status is not None:
        # The webhooks' summary is the status; the meeting row's copy follows it a moment later.
        meeting = meeting.replace(activity=status)
    return Seen(meeting, invites, bound, participant)


def relate(caller: Caller, seen: Seen) -> Visible:
    """The caller's view of what was read; 404 when they have no relation to the meeting."""
    relation = access.relation(caller.id, seen.meeting, seen.invites, seen.bound)
    if relation is None:
        raise problems.NotFound("No such meeting.")
    role, invite = relation
    return Visible(seen.meeting, role, invite, seen.participant)


@dataclass
class Everything:
    """A meeting as one caller may see it, with all its invites and participants (for changing them)."""

    visible: Visible
    invites: dict[str, Invite]
    participants: dict[str, Participant]


def load_everything(ctx: Context, caller: Caller, meeting_id: str) -> Everything:
    """The meeting, the caller's relation, and every invite and participant of it, in one range query
    (outbox rows and markers lie between them: few; the webhook rows after them are not read)."""
    partition = schema.owner_partition(meeting_id)
    if partition is None:
        raise problems.NotFound("No such meeting.")
    low = schema.meeting_key(meeting_id)
    _, high = schema.participant_range(meeting_id)
    invite_low, invite_high = schema.invite_range(meeting_id)
    participant_low, _ = schema.participant_range(meeting_id)
    meeting, invites, participants = None, {}, {}
    for row in ctx.storage.table(schema.MEETINGS).query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": partition, "low": low, "high": high},
    ):
        key = row["RowKey"]
        if key == low:
            meeting = Meeting.from_row(row)
        elif invite_low <= key < invite_high:
            invite = Invite.from_row(row)
            invites[invite.id] = invite
        elif key.startswith(participant_low):
            participant = Participant.from_row(row)
            participants[participant.user_id] = participant
    if meeting is None:
        raise problems.NotFound("No such meeting.")
    addressed = candidate_invite_ids(caller)
    seen = Seen(
        meeting,
        [invites[identifier] for identifier in addressed if identifier in invites],
        [invite for invite in invites.values() if invite.bound_to == caller.id and invite.id not in addressed],
        participants.get(caller.id),
    )
    return Everything(relate(caller, seen), invites, participants)


def candidate_invite_ids(caller: Caller) -> list[str]:
    return [schema.invite_id(address) for address in caller.verified_emails]


# Create -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    meeting: dict[str, Any]
    replayed: bool = False


def create(ctx: Context, caller: Caller, draft: Draft, body: Any, idempotency_key: str | None) -> Created:
    now = ctx.clock()
    claim = None
    if idempotency_key is not None:
        claim = _claim_idempotency(ctx, caller, idempotency_key, body, now)
        if isinstance(claim, Created):
            return claim
    table = ctx.storage.table(schema.MEETINGS)
    provider_name = ctx.settings.video_provider
    provider = ctx.provider(provider_name)
    try:
        provider_meeting = provider.create_meeting(draft.title, record_on_start=draft.record_on_start)
    except problems.Problem:
        if claim is not None:
            _release(table, claim)
        raise
    meeting = Meeting(
        id=schema.new_meeting_id(caller.id),
        owner_id=caller.id,
        owner_name=caller.name,
        version=1,
        title=draft.title,
        description=draft.description,
        schedule=draft.schedule,
        access=draft.access,
        provider=provider_name,
        provider_meeting_id=provider_meeting.id,
        record_on_start=draft.record_on_start,
        created_at=now,
        updated_at=now,
        invite_count=len(draft.invitees),
    )
    rendered = meeting.render(Role.OWNER)
    batch = ctx.storage.batch(schema.MEETINGS, caller.id)
    batch.create(meeting.row())
    batch.create(meeting.owner_index_row())
    invites = [_new_invite(meeting, invitee, caller.id, now) for invitee in draft.invitees]
    for invite in invites:
        batch.create(invite.row())
    ids = [invite.id for invite in invites]
    mail = outbox.add(ctx, batch, meeting, INVITED, ids)
    followups.mark(ctx, batch, meeting, invites=ids, mail=mail)
    if claim is not None:
        batch.update(_completed_claim(claim, rendered), claim.etag, merge=True)
    try:
        # The mapping first: a webhook names the provider meeting, and must find ours.
        provider_meetings.write(ctx, provider_name, provider_meeting.id, caller.id, meeting.id)
        batch.commit()
    except storage.CommitUnknown:
        # The batch's answer was lost and could not be read back: the meeting may exist, so its provider meeting
        # stays active (an orphan is never visible through us, and nobody holds a token for it). The claim is
        # released only if the batch did not complete it, so a retry with the key replays or creates anew.
        log.error("create: whether the meeting was saved is unknown; its provider meeting stays active")
        if claim is not None:
            _release(table, claim)
        raise problems.Unavailable("The meeting may not have been saved; retry.", retry_after=2) from None
    except Exception as error:
        # Our state did not commit (a lost answer was read back by the batch): the provider meeting must not
        # stay joinable. It is never visible through us (no meeting row names it).
        log.warning("create: storage write failed after the provider created a meeting: %s", type(error).__name__)
        _deactivate_orphan(provider, provider_meeting.id)
        if claim is not None:
            _release(table, claim)
        raise problems.Unavailable("The meeting could not be saved; nothing was created.", retry_after=2) from None
    return Created(rendered)


def _new_invite(meeting: Meeting, invitee: Invitee, invited_by: str, now: datetime) -> Invite:
    return Invite(
        meeting_id=meeting.id,
        partition=meeting.partition,
        id=schema.invite_id(invitee.email),
        email=invitee.email,
        role=invitee.role,
        status="pending",
        invited_at=now,
        invited_by=invited_by,
    )


def _deactivate_orphan(provider: Any, provider_meeting_id: str) -> None:
    try:
        provider.once().set_meeting_status(provider_meeting_id, "INACTIVE")
    except problems.Problem as problem:
        log.error("create: could not deactivate orphan provider meeting (%s)", problem.slug)


@dataclass
class _Claim:
    row_key: str
    partition: str
    etag: str


def _claim_idempotency(ctx: Context, caller: Caller, key: str, body: Any, now: datetime) -> _Claim | Created:
    if not 1 <= len(key) <= 255 or any(not 0x20 <= ord(char) <= 0x7E for char in key):
        raise problems.Validation("Idempotency-Key must be 1 to 255 printable ASCII characters.")
    table = ctx.storage.table(schema.MEETINGS)
    body_hash = schema.hash22(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True))
    row_key = schema.idempotency_key(key)
    fresh = {
        "PartitionKey": caller.id,
        "RowKey": row_key,
        "state": "pending",
        "bodyHash": body_hash,
        "leaseUntil": times.stamp(now + IDEMPOTENCY_LEASE),
        "expiresAt": times.stamp(now + IDEMPOTENCY_TTL),
    }
    try:
        metadata = table.create_entity(fresh)
        return _Claim(row_key, caller.id, metadata["etag"])
    except ResourceExistsError:
        pass
    try:
        existing = table.get_entity(caller.id, row_key)
    except ResourceNotFoundError:
        raise problems.Conflict("A request with this Idempotency-Key is in flight; retry shortly.") from None
    if times.from_stamp(existing["expiresAt"]) > now:
        if existing["bodyHash"] != body_hash:
            raise problems.Conflict("This Idempotency-Key was used with a different request body.")
        if existing["state"] == "complete":
            return Created(json.loads(existing["response"]), replayed=True)
        if times.from_stamp(existing["leaseUntil"]) > now:
            raise problems.Conflict("A request with this Idempotency-Key is in flight; retry shortly.")
    # An expired record, or the lease of a request that died: take it over, if nobody else did.
    try:
        metadata = table.update_entity(
            fresh,
            mode=UpdateMode.REPLACE,
            etag=existing.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    except ResourceModifiedError:
        raise problems.Conflict("A request with this Idempotency-Key is in flight; retry shortly.") from None
    return _Claim(row_key, caller.id, metadata["etag"])


def _completed_claim(claim: _Claim, rendered: dict[str, Any]) -> dict[str, Any]:
    return {
        "PartitionKey": claim.partition,
        "RowKey": claim.row_key,
        "state": "complete",
        "response": json.dumps(rendered),
    }


def _release(table: Any, claim: _Claim) -> None:
    """Failures are not stored: forget the claim so the same key can be retried at once."""
    try:
        table.delete_entity(
            claim.partition, claim.row_key, etag=claim.etag, match_condition=MatchConditions.IfNotModified
        )
    except Exception as error:  # the lease expires by itself; a retry then takes the claim over
        log.warning("create: could not release an idempotency claim: %s", type(error).__name__)


# List -------------------------------------------------------------------------------------------------------

SCOPES = ("all", "owned", "invited")


def parse_list_query(params: dict[str, str]) -> tuple[str, int, str | None]:
    validation.query(params, {"scope", "limit", "cursor"})
    scope = params.get("scope", "all")
    if scope not in SCOPES:
        raise problems.Validation("scope must be all, owned or invited.")
    return scope, validation.limit(params), params.get("cursor")


@dataclass
class _Source:
    """One index partition: a row per meeting, keyed `s|{sortKey}|{meeting}` in the owner's and invitees' alike."""

    table: Any
    partition: str
    role: Role | None  # None: the row's own role (invitee index)
    viewer: str | None = None

    def page(self, after: str | None, size: int) -> list[dict[str, Any]]:
        low, high = schema.OWNER_INDEX_RANGE
        low_operator, low = ("gt", after) if after else ("ge", low)
        query = f"PartitionKey eq @pk and RowKey {low_operator} @low and RowKey lt @high"
        parameters = {"pk": self.partition, "low": low, "high": high}
        if self.viewer is not None:
            # Invitee index rows: live invites only, and not those bound to another identity at this address.
            query += " and ( status eq 'pending' or status eq 'accepted' ) and ( boundTo eq '' or boundTo eq @viewer )"
            parameters["viewer"] = self.viewer
        pages = self.table.query_entities(query, parameters=parameters, results_per_page=size).by_page()
        return list(next(pages, []))[:size]

    def role_of(self, row: dict[str, Any]) -> Role:
        return self.role or Role(row["role"])


def list_for(ctx: Context, caller: Caller, scope: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """The caller's meetings, owned and invited, in the contract's order; each meeting once, with the
    caller's strongest role (an owner who is also invited, or a user invited at two addresses).

    A meeting's index rows have the same key in every partition, so one position serves them all: a page reads
    the next `limit + 1` rows of each partition after the last meeting of the previous page and keeps the first
    `limit` meetings. Every row of those is among what was read (a partition whose page ended before one of them
    has `limit + 1` meetings before it), so a meeting comes on one page only, with all of the caller's roles. A
    partition with nothing left after that meeting is named in the cursor and not read again.
    """
    sources: dict[str, _Source] = {}
    if scope in ("all", "owned"):
        sources["o"] = _Source(ctx.storage.table(schema.MEETINGS), caller.id, Role.OWNER)
    if scope in ("all", "invited"):
        index = ctx.storage.table(schema.INVITATIONS)
        sources.update({key: _Source(index, key, None, viewer=caller.id) for key in candidate_invite_ids(caller)})
    after, done = _position(ctx, caller, scope, cursor)
    found: dict[str, list[tuple[Role, dict[str, Any]]]] = {}
    ended: dict[str, str] = {}  # the partitions read to their end, and the key of the last row each has
    for name, source in sources.items():
        if name in done:
            continue
        rows = source.page(after, limit + 1)
        if len(rows) <= limit:
            ended[name] = rows[-1]["RowKey"] if rows else ""
        for row in rows:
            found.setdefault(row["RowKey"], []).append((source.role_of(row), row))
    keys = sorted(found)
    # By meeting id too: an invitee-index row may still have the key the meeting had before an edit moved it.
    chosen: dict[str, list[tuple[Role, dict[str, Any]]]] = {}
    for key in keys[:limit]:
        for role, row in found[key]:
            chosen.setdefault(row["id"], []).append((role, row))
    items = [
        Meeting.from_row(row).render(role)
        for role, row in (min(pairs, key=lambda pair: access.STRENGTH.index(pair[0])) for pairs in chosen.values())
    ]
    if len(keys) <= limit:
        return {"items": items, "nextCursor": None}
    last = keys[limit - 1]
    position = {"after": last, "done": sorted({*done, *(name for name, final in ended.items() if final <= last)})}
    return {
        "items": items,
        "nextCursor": cursors.seal(ctx.settings.id_hash_key, f"meetings:{scope}", caller.id, position),
    }


def _position(ctx: Context, caller: Caller, scope: str, cursor: str | None) -> tuple[str | None, set[str]]:
    """The key of the last meeting of the previous page and the partitions it had read to their end."""
    position = cursors.open_(ctx.settings.id_hash_key, f"meetings:{scope}", caller.id, cursor)
    if position is None:
        return None, set()
    low, high = schema.OWNER_INDEX_RANGE
    after, done = (position.get("after"), position.get("done")) if isinstance(position, dict) else (None, None)
    if not (isinstance(after, str) and low < after < high and isinstance(done, list)):
        raise problems.Validation("The cursor is not valid (use the nextCursor of the previous page).")
    return after, {str(name) for name in done}


# Edit and cancel --------------------------------------------------------------------------------------------


def check_if_match(header: str | None, meeting: Meeting) -> None:
    if header is None:
        return
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    if "*" not in tags and meeting.etag_header() not in tags:
        raise problems.PreconditionFailed(f"The meeting is at version {meeting.version}.", version=meeting.version)


def update(ctx: Context, caller: Caller, meeting_id: str, patch: dict[str, Any], if_match: str | None) -> dict:
    def change() -> dict[str, Any]:
        visible = load(ctx, caller, meeting_id)
        access.require(visible.role, Action.EDIT, "Only the owner can edit the meeting.")
        before = visible.meeting
        check_if_match(if_match, before)
        if before.cancelled:
            raise problems.Cancelled("A cancelled meeting cannot be changed.")
        after = _apply_patch(before, patch)
        if after == before:
            return before.render(Role.OWNER)
        after = after.replace(version=before.version + 1, updated_at=ctx.clock())
        commit(ctx, before, after)
        return after.render(Role.OWNER)

    return storage.retry(change, "The meeting is changing concurrently; retry.")


def _apply_patch(meeting: Meeting, patch: dict[str, Any]) -> Meeting:
    schedule = meeting.schedule
    changes: dict[str, Any] = {}
    if "title" in patch:
        changes["title"] = patch["title"]
    if "description" in patch:
        changes["description"] = patch["description"] or ""
    if "access" in patch:
        changes["access"] = patch["access"]
    starts = patch.get("startsAt", schedule.starts_at)
    ends = patch.get("endsAt", schedule.ends_at)
    changes["schedule"] = Schedule(starts, ends, patch.get("timeZone") or schedule.zone)
    _check_schedule(changes["schedule"])
    return meeting.replace(**changes)


def commit(ctx: Context, before: Meeting, after: Meeting, *, inline: bool = True) -> None:
    """Write the meeting row (if unchanged since read), move its owner-index row, and mark what follows:
    the invitees' index rows, their email, the provider (cancelled, or guests no longer admitted)."""
    batch = ctx.storage.batch(schema.MEETINGS, before.partition)
    batch.update(after.row(), before.etag)
    if after.owner_index_key() != before.index_key and before.index_key:
        batch.delete(before.index_key)
    batch.upsert(after.owner_index_row())
    if after.cancelled and not before.cancelled:
        batch.before_commit(lambda: retention.schedule_meeting(ctx, after, after.cancelled_at))
    kind = outbox.meeting_change(before, after)
    mail = kind is not None and outbox.add(ctx, batch, after, kind)
    followups.mark(
        ctx,
        batch,
        after,
        cancelled=after.cancelled and not before.cancelled,
        access_narrowed=before.access == Access.ORGANIZATION and after.access != Access.ORGANIZATION,
        fields=after.invite_count > 0,
        mail=mail,
        inline=inline,
    )
    batch.commit()


def cancel(ctx: Context, caller: Caller, meeting_id: str, if_match: str | None) -> None:
    def change() -> None:
        visible = load(ctx, caller, meeting_id)
        access.require(visible.role, Action.CANCEL, "Only the owner can cancel the meeting.")
        before = visible.meeting
        check_if_match(if_match, before)
        if before.cancelled:
            return
        now = ctx.clock()
        commit(ctx, before, before.replace(cancelled_at=now, updated_at=now, version=before.version + 1))

    storage.retry(change, "The meeting is changing concurrently; retry.")

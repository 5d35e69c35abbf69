"""Meetings: create, read, list, edit and cancel, on Table Storage (design in docs/data-model.md).

An owner's meetings live in one partition of the `Meetings` table (PartitionKey = the owner's
public id): the meeting row, its invites, its owner-index row (sorted for listing) and the owner's
idempotency records. One partition means one atomic batch per change and one request per read.
A meeting id is the owner's partition key followed by 16 random characters, so a GET needs no
lookup table.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared import invites, jobs, joins, mail, problems, storage, times
from shared.auth import Caller
from shared.context import Context

log = logging.getLogger(__name__)

MEETINGS_TABLE = "Meetings"
PROVIDER_MEETINGS_TABLE = "ProviderMeetings"

OWNER_ID_LENGTH = 22
MEETING_ID = re.compile(r"^[A-Za-z0-9_-]{38}$")
IDEMPOTENCY_TTL = timedelta(hours=24)
IDEMPOTENCY_LEASE = timedelta(seconds=60)

CREATE_FIELDS = {"title", "description", "startsAt", "endsAt", "timeZone", "invitees", "settings"}
PATCH_FIELDS = {"title", "description", "startsAt", "endsAt", "timeZone"}


# Keys -------------------------------------------------------------------------------------------


def new_meeting_id(owner_id: str) -> str:
    return owner_id + secrets.token_urlsafe(12)


def owner_partition(meeting_id: str) -> str | None:
    """The partition holding the meeting, or None for an id that cannot be one of ours."""
    return meeting_id[:OWNER_ID_LENGTH] if isinstance(meeting_id, str) and MEETING_ID.match(meeting_id) else None


def meeting_row_key(meeting_id: str) -> str:
    return f"m|{meeting_id}"


def index_row_key(row: dict[str, Any]) -> str:
    """Owner-index key: scheduled meetings by start, then unscheduled ones newest first."""
    starts_at = row.get("startsAt")
    if starts_at:
        sort = "0" + times.parse_rfc3339(starts_at).strftime("%Y%m%dT%H%M%S%f")
    else:
        created = times.parse_rfc3339(row["createdAt"])
        sort = "1" + str(10**16 - int(created.timestamp() * 1000)).zfill(17)
    return f"s|{sort}|{row['id']}"


def _hash(value: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode("utf-8")).digest()).decode()[:22]


# Validation -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    title: str
    description: str
    starts_at: datetime | None
    ends_at: datetime | None
    time_zone: str
    record_on_start: bool
    invitees: tuple[dict[str, str], ...]


def parse_create(body: Any) -> Draft:
    if not isinstance(body, dict):
        raise problems.Validation.field("", "must be a JSON object")
    _reject_unknown(body, CREATE_FIELDS)
    fields = _parse_fields(body, required_title=True)
    settings = body.get("settings", {})
    if not isinstance(settings, dict):
        raise problems.Validation.field("/settings", "must be an object")
    _reject_unknown(settings, {"recordOnStart"}, "/settings")
    record_on_start = settings.get("recordOnStart", False)
    if not isinstance(record_on_start, bool):
        raise problems.Validation.field("/settings/recordOnStart", "must be true or false")
    invitees = body.get("invitees", [])
    if not isinstance(invitees, list) or len(invitees) > 50:
        raise problems.Validation.field("/invitees", "must be a list of at most 50 invitees")
    parsed = tuple(invites.parse_invitee(entry, f"/invitees/{i}") for i, entry in enumerate(invitees))
    draft = Draft(
        title=fields["title"],
        description=fields.get("description") or "",
        starts_at=fields.get("startsAt"),
        ends_at=fields.get("endsAt"),
        time_zone=fields.get("timeZone") or "UTC",
        record_on_start=record_on_start,
        invitees=parsed,
    )
    _check_schedule(draft.starts_at, draft.ends_at)
    return draft


def parse_patch(body: Any) -> dict[str, Any]:
    """The merge patch as {field: parsed value or None (clear)}."""
    if not isinstance(body, dict):
        raise problems.Validation.field("", "must be a JSON object (a merge patch)")
    _reject_unknown(body, PATCH_FIELDS)
    if "title" in body and body["title"] is None:
        raise problems.Validation.field("/title", "cannot be cleared")
    if "timeZone" in body and body["timeZone"] is None:
        raise problems.Validation.field("/timeZone", "cannot be cleared")
    return _parse_fields(body, required_title=False)


def _reject_unknown(body: dict[str, Any], allowed: set[str], prefix: str = "") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        pointer = f"{prefix}/{_escape_pointer(unknown[0])}"
        raise problems.Validation(
            f"Unknown field {pointer}.",
            errors=[{"field": f"{prefix}/{_escape_pointer(name)}", "message": "unknown field"} for name in unknown],
        )


def _escape_pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _parse_fields(body: dict[str, Any], required_title: bool) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    if "title" in body or required_title:
        title = body.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > 200:
            raise problems.Validation.field("/title", "must be a string of 1 to 200 characters")
        parsed["title"] = title
    if "description" in body:
        description = body["description"]
        if description is not None and (not isinstance(description, str) or len(description) > 2000):
            raise problems.Validation.field("/description", "must be a string of at most 2000 characters")
        parsed["description"] = description
    for name in ("startsAt", "endsAt"):
        if name in body:
            value = body[name]
            if value is None:
                parsed[name] = None
                continue
            instant = times.parse_rfc3339(value)
            if instant is None:
                raise problems.Validation.field(f"/{name}", "must be an RFC 3339 date-time with an offset")
            parsed[name] = instant
    if "timeZone" in body and body["timeZone"] is not None:
        if not times.valid_zone(body["timeZone"]):
            raise problems.Validation.field("/timeZone", "must be an IANA time zone name")
        parsed["timeZone"] = body["timeZone"]
    return parsed


def _check_schedule(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at and ends_at and ends_at <= starts_at:
        raise problems.Validation.field("/endsAt", "must be after startsAt")


# Rendering --------------------------------------------------------------------------------------


def status_of(row: dict[str, Any]) -> str:
    if row.get("cancelledAt"):
        return "cancelled"
    return {"live": "live", "ended": "ended"}.get(row.get("activity") or "", "scheduled")


def render(row: dict[str, Any], role: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "version": row["version"],
        "title": row["title"],
        "description": row.get("description") or "",
        "status": status_of(row),
        "startsAt": row.get("startsAt") or None,
        "endsAt": row.get("endsAt") or None,
        "timeZone": row["timeZone"],
        "owner": {"id": row["ownerId"], "name": row.get("ownerName") or ""},
        "myRole": role,
        "provider": row["provider"],
        "providerMeetingId": row["providerMeetingId"],
        "createdAt": row["createdAt"],
        "updatedAt": row["updatedAt"],
    }


def etag(row: dict[str, Any]) -> str:
    return f'"{row["version"]}"'


def meeting_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The meeting's own properties (what the index row copies), without table metadata."""
    return {key: value for key, value in row.items() if key not in ("PartitionKey", "RowKey") and value is not None}


# Create -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    meeting: dict[str, Any]
    replayed: bool = False


def create(ctx: Context, caller: Caller, body: Any, idempotency_key: str | None) -> Created:
    draft = parse_create(body)
    if draft.invitees:
        ctx.limits.take("invite", caller.id, len(draft.invitees))
    table = ctx.storage.table(MEETINGS_TABLE)
    now = ctx.clock()
    claim = None
    if idempotency_key is not None:
        claim = _claim_idempotency(ctx, caller, idempotency_key, body, now)
        if isinstance(claim, Created):
            return claim

    provider_name = ctx.settings.video_provider
    provider = ctx.provider(provider_name)
    try:
        provider_meeting = provider.create_meeting(draft.title, record_on_start=draft.record_on_start)
    except problems.Problem:
        if claim is not None:
            _release(table, claim)
        raise

    meeting_id = new_meeting_id(caller.id)
    stamp = times.format_utc(now)
    row: dict[str, Any] = {
        "PartitionKey": caller.id,
        "RowKey": meeting_row_key(meeting_id),
        "id": meeting_id,
        "version": 1,
        "title": draft.title,
        "description": draft.description,
        "startsAt": times.format_utc(draft.starts_at) or "",
        "endsAt": times.format_utc(draft.ends_at) or "",
        "timeZone": draft.time_zone,
        "ownerId": caller.id,
        "ownerName": caller.name,
        "provider": provider_name,
        "providerMeetingId": provider_meeting.id,
        "recordOnStart": draft.record_on_start,
        "createdAt": stamp,
        "updatedAt": stamp,
        "activity": "",
        "cancelledAt": "",
    }
    row["indexKey"] = index_row_key(row)
    rendered = render(row, "owner")
    operations: list[tuple] = [
        ("create", row),
        ("create", {**meeting_fields(row), "PartitionKey": caller.id, "RowKey": row["indexKey"]}),
    ]
    if draft.invitees:
        operations += [("create", invite) for invite in invites.initial_invite_rows(ctx, caller, row, draft.invitees)]
    outbox = mail.outbox_operations(ctx, row, mail.INVITED, [invites.invite_id(i["email"]) for i in draft.invitees])
    operations += outbox
    if claim is not None:
        operations.append(_complete_idempotency(claim, rendered))
    try:
        ctx.storage.table(PROVIDER_MEETINGS_TABLE).create_entity(
            {
                "PartitionKey": f"{provider_name}|{provider_meeting.id}",
                "RowKey": "",
                "ownerId": caller.id,
                "meetingId": meeting_id,
            }
        )
        table.submit_transaction(operations)
    except Exception as error:
        # Our state did not commit: the provider meeting must not stay joinable. It is never
        # visible through us (no meeting row names it).
        log.warning("create: storage write failed after the provider created a meeting: %s", type(error).__name__)
        _deactivate_orphan(provider, provider_meeting.id)
        if claim is not None:
            _release(table, claim)
        raise problems.Unavailable("The meeting could not be saved; nothing was created.", retry_after=2) from None
    if draft.invitees:
        invites.after_invites_committed(ctx, row, draft.invitees)
    mail.after_commit(ctx, outbox)
    return Created(rendered)


def _deactivate_orphan(provider: Any, provider_meeting_id: str) -> None:
    try:
        provider.set_meeting_status(provider_meeting_id, "INACTIVE")
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
    table = ctx.storage.table(MEETINGS_TABLE)
    body_hash = _hash(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    row_key = f"k|{_hash(key)}"
    fresh = {
        "PartitionKey": caller.id,
        "RowKey": row_key,
        "state": "pending",
        "bodyHash": body_hash,
        "leaseUntil": times.format_utc(now + IDEMPOTENCY_LEASE),
        "expiresAt": times.format_utc(now + IDEMPOTENCY_TTL),
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
    expired = times.parse_rfc3339(existing["expiresAt"]) <= now
    if not expired:
        if existing["bodyHash"] != body_hash:
            raise problems.Conflict("This Idempotency-Key was used with a different request body.")
        if existing["state"] == "complete":
            return Created(json.loads(existing["response"]), replayed=True)
        if times.parse_rfc3339(existing["leaseUntil"]) > now:
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


def _complete_idempotency(claim: _Claim, rendered: dict[str, Any]) -> tuple:
    return storage.if_unchanged(
        {
            "PartitionKey": claim.partition,
            "RowKey": claim.row_key,
            "state": "complete",
            "response": json.dumps(rendered),
        },
        claim.etag,
        UpdateMode.MERGE,
    )


def _release(table: Any, claim: _Claim) -> None:
    """Failures are not stored: forget the claim so the same key can be retried at once."""
    try:
        table.delete_entity(
            claim.partition, claim.row_key, etag=claim.etag, match_condition=MatchConditions.IfNotModified
        )
    except Exception as error:  # the lease expires by itself; a retry then takes the claim over
        log.warning("create: could not release an idempotency claim: %s", type(error).__name__)


# Read -------------------------------------------------------------------------------------------


@dataclass
class Visible:
    """A meeting as one caller may see it: the row, the caller's role, their invite and participant."""

    row: Any
    role: str
    invite: Any | None
    participant: Any | None


def load(ctx: Context, caller: Caller, meeting_id: str) -> Visible:
    """The meeting and the caller's relation to it, in one storage request; 404 when none.

    One range query bounded to the meeting's rows picks the meeting row, the invites addressed to
    the caller's verified addresses and the caller's provider participant.
    """
    partition = owner_partition(meeting_id)
    if partition is None:
        raise problems.NotFound("No such meeting.")
    meeting_key = meeting_row_key(meeting_id)
    wanted = {"meeting": meeting_key, "participant": joins.participant_row_key(meeting_id, caller.id)}
    for n, identifier in enumerate(invites.candidate_invite_ids(caller)):
        wanted[f"invite{n}"] = invites.invite_row_key(meeting_id, identifier)
    # The range bounds the server's work to this meeting's rows; the equalities pick a few of them.
    query = "PartitionKey eq @pk and RowKey ge @meeting and RowKey lt @end and ( {} )".format(
        " or ".join(f"RowKey eq @{name}" for name in wanted)
    )
    rows = ctx.storage.table(MEETINGS_TABLE).query_entities(
        query, parameters={"pk": partition, "end": meeting_key + "|~", **wanted}
    )
    meeting, participant, invite_rows = None, None, []
    for row in rows:
        if row["RowKey"] == meeting_key:
            meeting = row
        elif row["RowKey"] == wanted["participant"]:
            participant = row
        else:
            invite_rows.append(row)
    if meeting is None:
        raise problems.NotFound("No such meeting.")
    if meeting["ownerId"] == caller.id:
        return Visible(meeting, "owner", None, participant)
    invite = invites.relation(caller, invite_rows)
    if invite is None:
        raise problems.NotFound("No such meeting.")
    return Visible(meeting, invite["role"], invite, participant)


def get(ctx: Context, caller: Caller, meeting_id: str) -> Visible:
    return load(ctx, caller, meeting_id)


# List -------------------------------------------------------------------------------------------


def list_for(ctx: Context, caller: Caller, scope: str, limit: int, cursor: str | None) -> dict[str, Any]:
    sources: list[Source] = []
    if scope in ("all", "owned"):
        sources.append(Source("o", ctx.storage.table(MEETINGS_TABLE), caller.id, "s|", "s|~", "owner"))
    if scope in ("all", "invited"):
        sources.extend(invites.invited_sources(ctx, caller))
    positions = _decode_cursor(cursor, {source.name for source in sources})
    candidates: list[tuple[str, str, dict[str, Any], Source]] = []
    for source in sources:
        after = positions.get(source.name, "")
        if after is None:
            continue
        for row in source.page(after, limit + 1):
            candidates.append((row["RowKey"].split("|", 1)[1], source.name, row, source))
    candidates.sort(key=lambda item: (item[0], item[1]))
    chosen = candidates[:limit]
    items = [source.render(row) for _, _, row, source in chosen]
    if len(candidates) <= limit:
        return {"items": items, "nextCursor": None}
    next_positions: dict[str, str | None] = {}
    for source in sources:
        consumed = [row["RowKey"] for _, name, row, _ in chosen if name == source.name]
        remaining = any(name == source.name for _, name, _, _ in candidates[limit:])
        previous = positions.get(source.name, "")
        next_positions[source.name] = (consumed[-1] if consumed else previous) if remaining else None
    return {"items": items, "nextCursor": _encode_cursor(next_positions)}


@dataclass
class Source:
    """One index partition: rows sorted by the part of the RowKey after its prefix."""

    name: str
    table: Any
    partition: str
    low: str
    high: str
    role: str | None
    viewer: str | None = None

    def page(self, after: str, size: int) -> list[dict[str, Any]]:
        low_operator, low = ("gt", after) if after else ("ge", self.low)
        query = f"PartitionKey eq @pk and RowKey {low_operator} @low and RowKey lt @high"
        parameters = {"pk": self.partition, "low": low, "high": self.high}
        if self.viewer is not None:
            # Invitee index rows: hide invites bound to another identity with the same address.
            query += " and ( boundTo eq '' or boundTo eq @viewer )"
            parameters["viewer"] = self.viewer
        pages = self.table.query_entities(query, parameters=parameters, results_per_page=size).by_page()
        return list(next(pages, []))[:size]

    def render(self, row: dict[str, Any]) -> dict[str, Any]:
        return render(row, self.role or row.get("role", "participant"))


def _encode_cursor(positions: dict[str, str | None]) -> str:
    return base64.urlsafe_b64encode(json.dumps(positions, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None, names: set[str]) -> dict[str, str | None]:
    if cursor is None:
        return {}
    try:
        positions = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise problems.Validation("The cursor is not valid.") from None
    if (
        not isinstance(positions, dict)
        or set(positions) != names
        or not all(value is None or (isinstance(value, str) and len(value) < 512) for value in positions.values())
    ):
        raise problems.Validation("The cursor is not valid for this scope.")
    return positions


def parse_list_query(params: dict[str, str]) -> tuple[str, int, str | None]:
    unknown = sorted(set(params) - {"scope", "limit", "cursor"})
    if unknown:
        raise problems.Validation(f"Unknown query parameter '{unknown[0]}'.")
    scope = params.get("scope", "all")
    if scope not in ("all", "owned", "invited"):
        raise problems.Validation("scope must be all, owned or invited.")
    raw_limit = params.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise problems.Validation("limit must be a whole number from 1 to 100.")
    cursor = params.get("cursor")
    if cursor is not None and (not cursor or len(cursor) > 2048):
        raise problems.Validation("The cursor is not valid.")
    return scope, int(raw_limit), cursor


# Edit and cancel --------------------------------------------------------------------------------


def check_if_match(header: str | None, row: dict[str, Any]) -> None:
    if header is None:
        return
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    if "*" not in tags and etag(row) not in tags:
        raise problems.PreconditionFailed(f"The meeting is at version {row['version']}.")


def update(ctx: Context, caller: Caller, meeting_id: str, body: Any, if_match: str | None) -> dict[str, Any]:
    patch = parse_patch(body)
    for _ in storage.attempts():
        visible = load(ctx, caller, meeting_id)
        if visible.role != "owner":
            raise problems.Forbidden("Only the owner can edit the meeting.")
        row = visible.row
        check_if_match(if_match, row)
        if row.get("cancelledAt"):
            raise problems.Cancelled("A cancelled meeting cannot be changed.")
        changed = _apply_patch(row, patch)
        if changed == row:
            return render(row, "owner")
        changed["version"] = row["version"] + 1
        changed["updatedAt"] = times.format_utc(ctx.clock())
        try:
            commit(ctx, row, changed)
        except Stale:
            continue
        invites.after_meeting_changed(ctx, row, changed)
        return render(changed, "owner")
    raise problems.Conflict("The meeting is changing concurrently; retry.")


def _apply_patch(row: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    changed = dict(row)
    for name, value in patch.items():
        if name in ("startsAt", "endsAt"):
            changed[name] = times.format_utc(value) if value else ""
        elif name == "description":
            changed[name] = value or ""
        else:
            changed[name] = value
    _check_schedule(times.parse_rfc3339(changed["startsAt"]), times.parse_rfc3339(changed["endsAt"]))
    return changed


class Stale(Exception):
    """The row changed between our read and our write: read again."""


def commit(ctx: Context, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Write the meeting row (if unchanged since read) and move its owner-index row, atomically."""
    after = {**after}
    after["indexKey"] = index_row_key(after)
    operations: list[tuple] = [
        storage.if_unchanged(
            {**meeting_fields(after), "PartitionKey": before["PartitionKey"], "RowKey": before["RowKey"]},
            before.metadata["etag"],
        )
    ]
    index_entity = {**meeting_fields(after), "PartitionKey": before["PartitionKey"], "RowKey": after["indexKey"]}
    if after["indexKey"] != before["indexKey"]:
        operations.append(("delete", {"PartitionKey": before["PartitionKey"], "RowKey": before["indexKey"]}))
    operations.append(("upsert", index_entity, {"mode": UpdateMode.REPLACE}))
    outbox = mail.meeting_operations(ctx, before, after)
    operations += outbox
    try:
        ctx.storage.table(MEETINGS_TABLE).submit_transaction(operations)
    except TableTransactionError as error:
        if error.status_code == 412 or getattr(error, "error_code", None) == "UpdateConditionNotSatisfied":
            raise Stale from None
        raise
    mail.after_commit(ctx, outbox)


def cancel(ctx: Context, caller: Caller, meeting_id: str, if_match: str | None) -> None:
    for _ in storage.attempts():
        visible = load(ctx, caller, meeting_id)
        if visible.role != "owner":
            raise problems.Forbidden("Only the owner can cancel the meeting.")
        row = visible.row
        check_if_match(if_match, row)
        if row.get("cancelledAt"):
            return
        now = times.format_utc(ctx.clock())
        changed = {**row, "cancelledAt": now, "updatedAt": now, "version": row["version"] + 1}
        try:
            commit(ctx, row, changed)
        except Stale:
            continue
        break
    else:
        raise problems.Conflict("The meeting is changing concurrently; retry.")
    after_cancel(ctx, row, changed)


def after_cancel(ctx: Context, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Once the cancellation is committed (our state refuses joins): invitees' index, then the provider,
    which must not block the answer."""
    invites.after_meeting_changed(ctx, before, after)
    payload = {"provider": after["provider"], "providerMeetingId": after["providerMeetingId"]}
    jobs.now_or_later(ctx, jobs.Kind.DEACTIVATE_MEETING, payload)


def deactivate_at_provider(ctx: Context, payload: dict[str, Any], inline: bool = False) -> None:
    """Make the provider meeting unjoinable and end any live session (also a queued job).

    Inline, one attempt only: the answer must not wait; the queued job does the retrying.
    """
    provider = ctx.provider(payload["provider"])
    provider = provider.once() if inline else provider
    provider.set_meeting_status(payload["providerMeetingId"], "INACTIVE")
    if provider.active_session(payload["providerMeetingId"]) is not None:
        provider.kick_all(payload["providerMeetingId"])

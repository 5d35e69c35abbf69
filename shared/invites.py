"""Invitations (contract sections 2 and 3): who may see and join a meeting, and as what.

Invite rows live in the meeting's partition (RowKey `m|{meeting}|i|{invite id}`), so a change to a
meeting's invites and the meeting row's invite counter commit in one batch guarded by ETags: no
concurrent invite or revocation loses an update. Each invitee also has an index partition in the
`Invitations` table (PartitionKey = invite id), which is what `GET /api/meetings?scope=invited`
reads; it is derived data, written right after the commit and refreshed by a job after edits.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared import jobs, mail, meetings, problems, storage, times
from shared.auth import Caller
from shared.context import Context

log = logging.getLogger(__name__)

INVITATIONS_TABLE = "Invitations"
MAX_INVITES_PER_MEETING = 500
MAX_INVITEES_PER_CALL = 50
ROLES = ("host", "participant")
ACTIVE = ("pending", "accepted")
# Deliberately simple: the address only has to be deliverable-looking; Entra proves ownership.
_EMAIL = re.compile(
    r"^[^@\s\"(),:;<>\[\\\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


def invite_id(email: str) -> str:
    """The opaque invite id: base64url of the SHA-256 of the lower-cased address, 22 characters."""
    digest = hashlib.sha256(email.strip().lower().encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:22]


def invite_row_key(meeting_id: str, invite: str) -> str:
    return f"{meetings.meeting_row_key(meeting_id)}|i|{invite}"


def candidate_invite_ids(caller: Caller) -> list[str]:
    return [invite_id(address) for address in caller.verified_emails]


def relation(caller: Caller, invite_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The caller's invite among those addressed to their verified addresses, or None.

    Revoked invites give no relation; an invite bound to another identity is not theirs.
    """
    usable = [
        row for row in invite_rows if row.get("status") != "revoked" and row.get("boundTo") in ("", None, caller.id)
    ]
    if not usable:
        return None
    return min(usable, key=lambda row: (ROLES.index(row["role"]), row["status"] != "accepted"))


def render(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "email": row["email"],
        "role": row["role"],
        "status": row["status"],
        "invitedAt": row["invitedAt"],
        "invitedBy": row["invitedBy"],
        "acceptedAt": row.get("acceptedAt") or None,
    }


# Parsing ----------------------------------------------------------------------------------------


def parse_invitee(entry: Any, pointer: str) -> dict[str, str]:
    if not isinstance(entry, dict):
        raise problems.Validation.field(pointer, "must be an object with email and role")
    unknown = sorted(set(entry) - {"email", "role"})
    if unknown:
        raise problems.Validation.field(f"{pointer}/{unknown[0]}", "unknown field")
    email = entry.get("email")
    if not isinstance(email, str) or len(email) > 254 or not _EMAIL.match(email.strip()):
        raise problems.Validation.field(f"{pointer}/email", "must be an email address")
    role = entry.get("role", "participant")
    if role not in ROLES:
        raise problems.Validation.field(f"{pointer}/role", "must be host or participant")
    return {"email": email.strip().lower(), "role": role}


def parse_invite_body(body: Any) -> list[dict[str, str]]:
    if not isinstance(body, dict):
        raise problems.Validation.field("", "must be a JSON object")
    unknown = sorted(set(body) - {"invitees"})
    if unknown:
        raise problems.Validation.field(f"/{unknown[0]}", "unknown field")
    invitees = body.get("invitees")
    if not isinstance(invitees, list) or not 1 <= len(invitees) <= MAX_INVITEES_PER_CALL:
        raise problems.Validation.field("/invitees", f"must be a list of 1 to {MAX_INVITEES_PER_CALL} invitees")
    parsed = [parse_invitee(entry, f"/invitees/{i}") for i, entry in enumerate(invitees)]
    _reject_duplicates(parsed, "/invitees")
    return parsed


def _reject_duplicates(invitees: list[dict[str, str]] | tuple[dict[str, str], ...], pointer: str) -> None:
    seen: set[str] = set()
    for i, invitee in enumerate(invitees):
        if invitee["email"] in seen:
            raise problems.Validation.field(f"{pointer}/{i}/email", "is listed twice")
        seen.add(invitee["email"])


# Invite -----------------------------------------------------------------------------------------


def _new_row(meeting: dict[str, Any], invitee: dict[str, str], invited_by: str, now: str) -> dict[str, Any]:
    identifier = invite_id(invitee["email"])
    return {
        "PartitionKey": meeting["PartitionKey"],
        "RowKey": invite_row_key(meeting["id"], identifier),
        "id": identifier,
        "meetingId": meeting["id"],
        "email": invitee["email"],
        "role": invitee["role"],
        "status": "pending",
        "invitedAt": now,
        "invitedBy": invited_by,
        "acceptedAt": "",
        "boundTo": "",
    }


def initial_invite_rows(ctx: Context, caller: Caller, meeting: dict[str, Any], invitees) -> list[dict[str, Any]]:
    """Invite rows committed with a new meeting (same batch as the meeting row)."""
    _reject_duplicates(invitees, "/invitees")
    meeting["inviteCount"] = len(invitees)
    now = meeting["createdAt"]
    return [_new_row(meeting, invitee, caller.id, now) for invitee in invitees]


def after_invites_committed(ctx: Context, meeting: dict[str, Any], invitees) -> None:
    _write_index(ctx, meeting, [{"id": invite_id(i["email"]), "role": i["role"]} for i in invitees])


def invite(ctx: Context, caller: Caller, meeting_id: str, body: Any) -> list[dict[str, Any]]:
    invitees = parse_invite_body(body)
    ctx.limits.take("invite", caller.id, len(invitees))
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    for _ in storage.attempts():
        visible = meetings.load(ctx, caller, meeting_id)
        if visible.role == "participant":
            raise problems.Forbidden("Participants cannot invite.")
        meeting = visible.row
        if meeting.get("cancelledAt"):
            raise problems.Cancelled("A cancelled meeting cannot take invites.")
        existing = {row["id"]: row for row in _all_invites(ctx, meeting)}
        if visible.role == "host":
            _check_host_may_invite(invitees, existing)
        now = times.format_utc(ctx.clock())
        operations: list[tuple] = []
        results: list[dict[str, Any]] = []
        count = sum(1 for row in existing.values() if row["status"] != "revoked")
        for invitee in invitees:
            identifier = invite_id(invitee["email"])
            current = existing.get(identifier)
            if current is None:
                row = _new_row(meeting, invitee, caller.id, now)
                operations.append(("create", row))
                count += 1
            elif current["status"] in ("revoked", "declined"):
                # Invited again: pending again, and any earlier binding no longer holds.
                row = {
                    **current,
                    "role": invitee["role"],
                    "status": "pending",
                    "invitedAt": now,
                    "invitedBy": caller.id,
                    "acceptedAt": "",
                    "boundTo": "",
                    **mail.next_sequence(ctx, current),
                }
                operations.append(storage.if_unchanged(row, current.metadata["etag"]))
                count += current["status"] == "revoked"
            elif current["role"] != invitee["role"]:
                row = {**current, "role": invitee["role"], **mail.next_sequence(ctx, current)}
                operations.append(storage.if_unchanged(row, current.metadata["etag"]))
            else:
                row = dict(current)
            results.append(row)
        if count > MAX_INVITES_PER_MEETING:
            raise problems.Conflict(f"A meeting can have at most {MAX_INVITES_PER_MEETING} invites.")
        outbox = mail.outbox_operations(ctx, meeting, mail.INVITED, [operation[1]["id"] for operation in operations])
        operations += outbox
        if operations:
            counter = {"PartitionKey": meeting["PartitionKey"], "RowKey": meeting["RowKey"], "inviteCount": count}
            operations.append(storage.if_unchanged(counter, meeting.metadata["etag"], UpdateMode.MERGE))
            try:
                table.submit_transaction(operations)
            except TableTransactionError as error:
                if error.status_code in (409, 412):
                    continue
                raise
        _write_index(ctx, meeting, results)
        mail.after_commit(ctx, outbox)
        _after_role_changes(ctx, meeting, existing, results)
        return [render(row) for row in results]
    raise problems.Conflict("The meeting's invites are changing concurrently; retry.")


def _check_host_may_invite(invitees: list[dict[str, str]], existing: dict[str, dict[str, Any]]) -> None:
    for invitee in invitees:
        current = existing.get(invite_id(invitee["email"]))
        if invitee["role"] == "host":
            raise problems.Forbidden("Hosts can invite participants only.")
        if current is not None and (current["role"] == "host" or current["status"] == "revoked"):
            raise problems.Forbidden("Hosts cannot change host invites or revoked invites.")


def _after_role_changes(ctx: Context, meeting: dict[str, Any], before: dict[str, Any], after: list[dict]) -> None:
    """An accepted invitee whose role changed gets the new preset at the provider at once."""
    for row in after:
        previous = before.get(row["id"])
        if previous and previous["status"] == "accepted" and previous["role"] != row["role"] and row["boundTo"]:
            from shared import joins

            joins.apply_role_change(ctx, meeting, row)


def _all_invites(ctx: Context, meeting: dict[str, Any]) -> list[Any]:
    prefix = f"{meeting['RowKey']}|i|"
    return list(
        ctx.storage.table(meetings.MEETINGS_TABLE).query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": meeting["PartitionKey"], "low": prefix, "high": prefix + "~"},
        )
    )


# Read -------------------------------------------------------------------------------------------


def list_invites(ctx: Context, caller: Caller, meeting_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    visible = meetings.load(ctx, caller, meeting_id)
    if visible.role == "participant":
        raise problems.Forbidden("Only the owner and hosts see the invites.")
    prefix = f"{visible.row['RowKey']}|i|"
    if cursor is not None and (len(cursor) != 22 or not re.fullmatch(r"[A-Za-z0-9_-]+", cursor)):
        raise problems.Validation("The cursor is not valid.")
    low = prefix + cursor if cursor else prefix
    pages = (
        ctx.storage.table(meetings.MEETINGS_TABLE)
        .query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": visible.row["PartitionKey"], "low": low, "high": prefix + "~"},
            results_per_page=limit + 1,
        )
        .by_page()
    )
    rows = list(next(pages, []))
    items = [render(row) for row in rows[:limit]]
    return {"items": items, "nextCursor": rows[limit - 1]["id"] if len(rows) > limit else None}


def parse_page_query(params: dict[str, str]) -> tuple[int, str | None]:
    unknown = sorted(set(params) - {"limit", "cursor"})
    if unknown:
        raise problems.Validation(f"Unknown query parameter '{unknown[0]}'.")
    raw_limit = params.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise problems.Validation("limit must be a whole number from 1 to 100.")
    return int(raw_limit), params.get("cursor")


# Revoke and decline -----------------------------------------------------------------------------


def revoke(ctx: Context, caller: Caller, meeting_id: str, invite: str) -> None:
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    for _ in storage.attempts():
        visible = meetings.load(ctx, caller, meeting_id)
        if visible.role != "owner":
            raise problems.Forbidden("Only the owner can revoke invites.")
        meeting = visible.row
        try:
            current = table.get_entity(meeting["PartitionKey"], invite_row_key(meeting_id, invite))
        except ResourceNotFoundError:
            raise problems.NotFound("No such invite.") from None
        if current["status"] == "revoked":
            return
        from shared import joins

        participant = joins.participant_for(ctx, meeting, current.get("boundTo") or "")
        revoked = {**current, "status": "revoked", **mail.next_sequence(ctx, current)}
        operations: list[tuple] = [storage.if_unchanged(revoked, current.metadata["etag"])]
        if participant is not None:
            operations.append(storage.delete_if_unchanged(participant, participant.metadata["etag"]))
        outbox = mail.outbox_operations(ctx, meeting, mail.REVOKED, [current["id"]])
        operations += outbox
        try:
            table.submit_transaction(operations)
        except TableTransactionError as error:
            if error.status_code in (404, 409, 412):
                continue
            raise
        # Our state refuses their join from here on; now the provider, which may fail.
        _drop_index(ctx, meeting_id, current)
        mail.after_commit(ctx, outbox)
        if participant is not None:
            joins.remove_at_provider(ctx, meeting, participant)
        return
    raise problems.Conflict("The invite is changing concurrently; retry.")


def decline(ctx: Context, caller: Caller, meeting_id: str) -> None:
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    for _ in storage.attempts():
        visible = meetings.load(ctx, caller, meeting_id)
        if visible.role == "owner":
            raise problems.Forbidden("The owner has no invite to decline.")
        current = visible.invite
        if current["status"] == "declined":
            return
        try:
            table.submit_transaction(
                [storage.if_unchanged({**current, "status": "declined"}, current.metadata["etag"])]
            )
        except TableTransactionError as error:
            if error.status_code in (404, 409, 412):
                continue
            raise
        _drop_index(ctx, meeting_id, current)
        return
    raise problems.Conflict("The invite is changing concurrently; retry.")


# The invitee index ------------------------------------------------------------------------------


def index_row(meeting: dict[str, Any], invite: str, role: str) -> dict[str, Any]:
    fields = meetings.meeting_fields(meeting)
    sort_key = meetings.index_row_key(meeting).split("|", 1)[1]
    return {**fields, "PartitionKey": invite, "RowKey": f"s|{sort_key}", "role": role, "boundTo": ""}


def _write_index(ctx: Context, meeting: dict[str, Any], invites: list[dict[str, Any]]) -> None:
    table = ctx.storage.table(INVITATIONS_TABLE)
    rows = [index_row(meeting, row["id"], row["role"]) for row in invites]

    def upsert(row: dict[str, Any]) -> None:
        table.upsert_entity(row, mode=UpdateMode.REPLACE)

    if len(rows) == 1:
        upsert(rows[0])
    elif rows:
        with ThreadPoolExecutor(max_workers=min(8, len(rows))) as pool:
            list(pool.map(upsert, rows))


def _drop_index(ctx: Context, meeting_id: str, invite_row: dict[str, Any]) -> None:
    table = ctx.storage.table(INVITATIONS_TABLE)
    for row in table.query_entities(
        "PartitionKey eq @pk and id eq @meeting", parameters={"pk": invite_row["id"], "meeting": meeting_id}
    ):
        table.delete_entity(row["PartitionKey"], row["RowKey"])


def invited_sources(ctx: Context, caller: Caller) -> list[meetings.Source]:
    table = ctx.storage.table(INVITATIONS_TABLE)
    return [
        meetings.Source(f"i{n}", table, key, "s|", "s|~", None, viewer=caller.id)
        for n, key in enumerate(candidate_invite_ids(caller))
    ]


def after_meeting_changed(ctx: Context, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Invitees' index rows copy the meeting: refresh them in the background (they may lag)."""
    if after.get("inviteCount"):
        jobs.enqueue(ctx, jobs.Kind.REFRESH_INVITEE_INDEX, {"meetingId": after["id"]})


def refresh_index(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: rewrite every active invitee's index row from the meeting as it is now."""
    meeting_id = payload["meetingId"]
    partition = meetings.owner_partition(meeting_id)
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    try:
        meeting = table.get_entity(partition, meetings.meeting_row_key(meeting_id))
    except ResourceNotFoundError:
        return
    index = ctx.storage.table(INVITATIONS_TABLE)
    for invite_row in _all_invites(ctx, meeting):
        for stale in index.query_entities(
            "PartitionKey eq @pk and id eq @meeting", parameters={"pk": invite_row["id"], "meeting": meeting_id}
        ):
            index.delete_entity(stale["PartitionKey"], stale["RowKey"])
        if invite_row["status"] in ACTIVE:
            row = {**index_row(meeting, invite_row["id"], invite_row["role"]), "boundTo": invite_row["boundTo"]}
            index.upsert_entity(row, mode=UpdateMode.REPLACE)

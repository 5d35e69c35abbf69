"""Follow-ups: one reconciler per meeting brings the provider and every derived row to what our tables say.

Our tables are the truth. A change the provider or a derived row must follow writes, in its own batch,
a marker row under the meeting (`m|{meeting}|f|...`, see `mark`): the meeting was cancelled, its access
narrowed, its fields changed, an invite changed, a participant needs checking, an email is owed. Before
that batch commits, the meeting gets an entry in the pending index (`shared.pending`), so a crash between
the commit and the work can never lose it; right after the commit the work runs once inline (where the
request can afford it) and otherwise from the `jobs` queue; the sweep re-drives what failed, with backoff.

`run` reads every row of the meeting (one range query), and for each marker makes the world match:

- the provider: a cancelled meeting is INACTIVE and its live session ended; each participant to check is
  kept (with the preset of their current role, kicked if live when it changed), adopted (a participant
  the provider has and our row lost track of), or deleted (and kicked if live) when they may no longer
  join: revoked, declined, demoted to nothing, a guest after access narrowed, a closed account. Before
  it changes any preset it writes a marker of the kicks that change owes (`k|`), so a kick that fails
  is retried even though the preset is already right by then;
- the invitee index: each invite's index row says what the invite and the meeting say (with the binding);
- the mail outbox: new records are expanded into one message per recipient.

It is idempotent and safe to run concurrently and any number of times. It clears a marker only when the
work is done, and only if the marker is unchanged since it was read (a change that marked it again is
then seen by the next round). A provider 404 for something we want gone is success; other failures keep
the markers and the pending entry, and are retried with backoff.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError
from azure.data.tables import UpdateMode

from shared import access, jobs, outbox, pending, problems, retention, schema, times
from shared.access import Role
from shared.events import state
from shared.model import Invite, Meeting, Participant
from shared.provider import ParticipantGone, ProviderClient, ProviderParticipant
from shared.storage import Batch, Stale

if TYPE_CHECKING:
    from shared.context import Context

log = logging.getLogger(__name__)

ROUNDS = 3
BATCH_LIMIT = 100


# Marking (in the change's own batch) ----------------------------------------------------------------------


def mark(
    ctx: Context,
    batch: Batch,
    meeting: Meeting,
    *,
    cancelled: bool = False,
    access_narrowed: bool = False,
    fields: bool = False,
    mail: bool = False,
    invites: Iterable[str] = (),
    users: Iterable[str] = (),
    inline: bool = True,
    announce: bool = True,
) -> None:
    """Add the meeting's follow-up markers to `batch`, announce them before it commits, run them after.

    `inline`: run once right after the commit in this request (provider calls without retries); the
    queue and the sweep do the retrying. Otherwise the work is queued at once. `announce=False` is for a
    caller whose own retries re-queue the work until it is queued (the webhook applier).
    """
    invites, users = sorted(set(invites)), sorted(set(users))
    marks: dict[str, str] = {
        **({schema.CANCELLED_MARK: ""} if cancelled else {}),
        **({schema.ACCESS_MARK: ""} if access_narrowed else {}),
        **({schema.FIELDS_MARK: ""} if fields else {}),
        **({schema.MAIL_MARK: ""} if mail else {}),
        # One row for a change's invites or users (a change may name fifty): a fresh name, so that two
        # changes never overwrite each other's lists.
        **({schema.INVITE_MARK + secrets.token_urlsafe(6): ",".join(invites)} if invites else {}),
        **({schema.PARTICIPANT_MARK + secrets.token_urlsafe(6): ",".join(users)} if users else {}),
    }
    if not marks:
        return
    first = not batch.has_prefix(schema.marker_range(meeting.id)[0])
    now = times.stamp(ctx.clock())
    for name, ids in marks.items():
        row_key = schema.marker_key(meeting.id, name)
        if row_key not in batch:
            batch.upsert({"PartitionKey": meeting.partition, "RowKey": row_key, "markedAt": now, "ids": ids})
    if not first:
        return  # announced and followed up once per batch
    announced: dict[str, str] = {}

    def announce_work() -> None:
        announced["etag"] = pending.announce(
            ctx, schema.pending_follow_up(meeting.id), schema.JOBS_QUEUE, _job(meeting.id)
        )

    def follow() -> None:
        if inline:
            run(ctx, meeting.id, inline=True, pending_etag=announced.get("etag"))
        else:
            jobs.enqueue(ctx, jobs.Kind.FOLLOW_UP, {"meetingId": meeting.id})

    if announce:
        batch.before_commit(announce_work)
    batch.after_commit(follow)


def mark_status(ctx: Context, batch: Batch, owner: str, meeting_id: str) -> None:
    """The webhook applier's mark: the meeting's status changed (its summary, in `batch`, owes this until the
    follow-up copies it). The applier queues the job itself once the batch committed, and settles its
    delivery only after that put: the summary and the unsettled delivery, not a pending entry, keep it."""
    row_key = schema.marker_key(meeting_id, schema.FIELDS_MARK)
    if row_key not in batch:
        batch.upsert({"PartitionKey": owner, "RowKey": row_key, "markedAt": times.stamp(ctx.clock()), "ids": ""})


def _job(meeting_id: str) -> dict[str, Any]:
    return jobs.message(jobs.Kind.FOLLOW_UP, {"meetingId": meeting_id})


# Reading ---------------------------------------------------------------------------------------------------


@dataclass
class Rows:
    """Every row of one meeting, as one range query returns them."""

    meeting: Meeting | None = None
    summary: Any = None  # what the webhooks say of the meeting's sessions (its status)
    invites: dict[str, Invite] = field(default_factory=dict)
    participants: dict[str, Participant] = field(default_factory=dict)  # by user id
    outbox: list[Any] = field(default_factory=list)
    markers: dict[str, str | None] = field(default_factory=dict)  # mark -> ETag
    invite_marks: set[str] = field(default_factory=set)  # invites the markers name
    user_marks: set[str] = field(default_factory=set)  # users the markers name
    kick_marks: set[str] = field(default_factory=set)  # users still owed a kick after their preset changed
    waiting: dict[str, datetime] = field(default_factory=dict)  # user -> until when a join's add may still land


def read(ctx: Context, meeting_id: str) -> Rows:
    """The meeting, its markers, invites, outbox and participants, and its webhook summary: one range, up to
    the summary, which is the first of the rows the webhooks built (their history after it is not read)."""
    partition = schema.owner_partition(meeting_id)
    low = schema.meeting_key(meeting_id)
    summary = schema.activity_key(meeting_id, schema.SUMMARY)
    rows = Rows()
    invite_low, invite_high = schema.invite_range(meeting_id)
    participant_low, participant_high = schema.participant_range(meeting_id)
    marker_low, marker_high = schema.marker_range(meeting_id)
    for row in ctx.storage.table(schema.MEETINGS).query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey le @summary",
        parameters={"pk": partition, "low": low, "summary": summary},
    ):
        key = row["RowKey"]
        if key == low:
            rows.meeting = Meeting.from_row(row)
        elif key == summary:
            rows.summary = row
        elif invite_low <= key < invite_high:
            invite = Invite.from_row(row)
            rows.invites[invite.id] = invite
        elif participant_low <= key < participant_high:
            participant = Participant.from_row(row)
            rows.participants[participant.user_id] = participant
        elif marker_low <= key < marker_high:
            mark = key.removeprefix(marker_low)
            rows.markers[mark] = row.metadata.get("etag")
            ids = set(filter(None, (row.get("ids") or "").split(",")))
            if mark.startswith(schema.INVITE_MARK):
                rows.invite_marks |= ids
            elif mark.startswith(schema.PARTICIPANT_MARK):
                rows.user_marks |= ids
            elif mark.startswith(schema.KICK_MARK):
                rows.kick_marks |= ids
        elif outbox.is_record(meeting_id, key) and row.get("mailState") == "new":
            rows.outbox.append(row)
    return rows


# Running ---------------------------------------------------------------------------------------------------


class _Failed(Exception):
    """A dependency failed: keep the markers, back off, try again."""


def run_job(ctx: Context, payload: dict[str, Any]) -> None:
    """Job `follow-up`: run; when a dependency fails, put the message back with the entry's backoff."""
    meeting_id = payload.get("meetingId")
    if schema.owner_partition(meeting_id) is None:
        log.error(json.dumps({"operation": "followups.run", "status": "bad-payload"}))
        return
    run(ctx, meeting_id)


def run(ctx: Context, meeting_id: str, *, inline: bool = False, pending_etag: str | None = None) -> bool:
    """Do the meeting's follow-ups; True when nothing is left. Never raises for a dependency's failure."""
    key = schema.pending_follow_up(meeting_id)
    try:
        if pending_etag is None:
            entry = pending.get(ctx, key)
            pending_etag = entry.etag if entry else None
            announced_at = entry.created_at if entry else None
        else:
            announced_at = ctx.clock()
        for _ in range(ROUNDS):
            rows = read(ctx, meeting_id)
            if not rows.markers:
                # A change that announced itself may still be committing its markers: leave a fresh entry be.
                if pending_etag is not None and ctx.clock() - announced_at >= pending.GRACE:
                    pending.complete(ctx, key, pending_etag)
                return True
            try:
                updates = _reconcile(ctx, rows, inline)
                return _clear(ctx, meeting_id, rows, updates, key, pending_etag)
            except Stale:
                continue
        raise _Failed("contended: the meeting's rows kept changing")
    except (_Failed, problems.Problem, AzureError, ParticipantGone) as failure:
        reason = failure.slug if isinstance(failure, problems.Problem) else f"{type(failure).__name__}: {failure}"
        _retry_later(ctx, meeting_id, key, reason)
        return False


def _retry_later(ctx: Context, meeting_id: str, key: str, reason: str) -> None:
    try:
        delay = pending.failed(ctx, key, reason, schema.JOBS_QUEUE, _job(meeting_id))
        jobs.enqueue(ctx, jobs.Kind.FOLLOW_UP, {"meetingId": meeting_id}, delay=delay.total_seconds())
    except Exception as error:  # the entry is due soon anyway: the sweep takes it from here
        log.warning("followups: could not schedule a retry: %s", type(error).__name__)
        return
    log.warning(
        json.dumps(
            {"operation": "followups.run", "meetingId": meeting_id, "status": "retrying", "reason": reason[:200]}
        )
    )


def _look_again(ctx: Context, meeting_id: str, key: str, until: datetime) -> None:
    """Run again once the adds still in flight can no longer land (not a failure: no backoff, no count)."""
    try:
        pending.later(ctx, key, until, schema.JOBS_QUEUE, _job(meeting_id))
        delay = (until - ctx.clock()).total_seconds() + 1
        jobs.enqueue(ctx, jobs.Kind.FOLLOW_UP, {"meetingId": meeting_id}, delay=max(1.0, delay))
    except Exception as error:  # the marker stays; the entry (as read, or pushed back) brings the work back
        log.warning("followups: could not schedule the next look: %s", type(error).__name__)
        return
    log.info(json.dumps({"operation": "followups.run", "meetingId": meeting_id, "status": "waiting-for-adds"}))


# Changes the reconciliation owes our own rows (merges, each guarded by the ETag read), written with the
# markers' clearing.
Updates = list[tuple[dict[str, Any], str | None]]


def _reconcile(ctx: Context, rows: Rows, inline: bool) -> Updates:
    meeting = rows.meeting
    updates: Updates = []
    if meeting is not None:
        meeting = _project_status(ctx, meeting, rows, updates)
        _provider(ctx, meeting, rows, inline, updates)
        _index(ctx, meeting, rows, updates)
        if schema.FIELDS_MARK in rows.markers and meeting.activity == "ended" and not meeting.cancelled:
            # Its webhooks say every session ended: retention counts from here (the purge checks again).
            retention.schedule_meeting(ctx, meeting, max(filter(None, [meeting.ended_at, meeting.schedule.ends_at])))
        if rows.outbox:
            outbox.expand(ctx, meeting, rows.outbox, rows.invites)
    return updates


def _project_status(ctx: Context, meeting: Meeting, rows: Rows, updates: Updates) -> Meeting:
    """The meeting row and its owner-index row take the status its webhook summary says (the invitee-index
    rows follow with `_index`); the summary then owes nothing."""
    if rows.summary is None:
        return meeting
    wanted = state.activity(rows.summary)
    if wanted != meeting.activity:
        ended_at = ctx.clock() if wanted == "ended" else meeting.ended_at
        meeting = meeting.replace(activity=wanted, ended_at=ended_at)
        fields = {"activity": wanted, "endedAt": times.stamp(ended_at)}
        updates.append(({"PartitionKey": meeting.partition, "RowKey": meeting.key, **fields}, meeting.etag))
        updates.append(({"PartitionKey": meeting.partition, "RowKey": meeting.index_key, **fields}, None))
    if rows.summary.get("owesSince"):
        owed = {"PartitionKey": meeting.partition, "RowKey": rows.summary["RowKey"], "owesSince": "", "owedBy": ""}
        updates.append((owed, rows.summary.metadata.get("etag")))
    return meeting


def _clear(ctx: Context, meeting_id: str, rows: Rows, updates: Updates, key: str, pending_etag: str | None) -> bool:
    """Write what the reconciliation owes our rows and delete the markers it handled, if all unchanged."""
    partition = schema.owner_partition(meeting_id)
    table = ctx.storage.table(schema.MEETINGS)
    deletes = [(schema.marker_key(meeting_id, mark), etag) for mark, etag in rows.markers.items()]
    operations = len(updates) + len(deletes)
    batch = Batch(table, partition)

    def room() -> Batch:
        """The batch to write to next: a full one commits and a new one starts."""
        nonlocal batch
        if len(batch) == BATCH_LIMIT:
            batch.commit()
            batch = Batch(table, partition)
        return batch

    for entity, etag in updates:
        room().update(entity, etag, merge=True)
    for row_key, etag in deletes:
        room().delete(row_key, etag)
    if rows.waiting:
        # The work is done but for adds that may still land: their users are marked again, for a later round.
        name = schema.PARTICIPANT_MARK + secrets.token_urlsafe(6)
        marker = {"RowKey": schema.marker_key(meeting_id, name), "markedAt": times.stamp(ctx.clock())}
        room().upsert({"PartitionKey": partition, **marker, "ids": ",".join(sorted(rows.waiting))})
    batch.commit()
    if rows.waiting:
        _look_again(ctx, meeting_id, key, max(rows.waiting.values()))
        return False
    if pending_etag is not None:  # only the entry as read: one announced since stays for its own work
        pending.complete(ctx, key, pending_etag)
    log.info(
        json.dumps({"operation": "followups.run", "meetingId": meeting_id, "status": "done", "operations": operations})
    )
    return True


# The provider ----------------------------------------------------------------------------------------------


def standing(ctx: Context, meeting: Meeting, rows: Rows, participant: Participant) -> Role | None:
    """The role a participant may still join with now; None: they must leave the provider.

    As `access.relation` decides at join time, from the invites addressed to their addresses at their last
    join and those bound to them (a declined invite gives no role, as at join time: only being invited again
    restores it), and a closed account keeps nothing.
    """
    if ctx.closed is not None and ctx.closed.is_closed(participant.user_id):
        return None
    theirs = [
        invite
        for invite in rows.invites.values()
        if invite.id in participant.invite_ids or invite.bound_to == participant.user_id
    ]
    relation = access.relation(participant.user_id, meeting, theirs)
    if relation is None:
        return None
    role, _ = relation
    return role if access.may_still_join(meeting, role) else None


def _to_check(meeting: Meeting, rows: Rows) -> list[Participant]:
    """The participants the markers concern."""
    users = rows.user_marks | rows.kick_marks
    for invite in rows.invite_marks:
        bound = rows.invites[invite].bound_to if invite in rows.invites else ""
        users.update(p.user_id for p in rows.participants.values() if invite in p.invite_ids or p.user_id == bound)
    if schema.ACCESS_MARK in rows.markers:
        users.update(p.user_id for p in rows.participants.values() if access.by_organization_access(p.role))
    return [rows.participants[user] for user in sorted(users) if user in rows.participants]


def _provider(ctx: Context, meeting: Meeting, rows: Rows, inline: bool, updates: Updates) -> None:
    checks = _to_check(meeting, rows)
    if schema.CANCELLED_MARK not in rows.markers and not checks:
        return
    client = ctx.provider(meeting.provider)
    client = client.once() if inline else client
    if meeting.cancelled:
        # Joins are refused by our tables already; the provider meeting stops accepting tokens.
        client.set_meeting_status(meeting.provider_meeting_id, "INACTIVE")
        if client.active_session(meeting.provider_meeting_id) is not None:
            client.kick_all(meeting.provider_meeting_id)
        return
    live: list[bool] = []

    def is_live() -> bool:
        if not live:
            live.append(client.active_session(meeting.provider_meeting_id) is not None)
        return live[0]

    now = ctx.clock()
    listing: list[ProviderParticipant] | None = None
    standings: list[tuple[Participant, Role | None, list[ProviderParticipant]]] = []
    for participant in checks:
        role = standing(ctx, meeting, rows, participant)
        found: list[ProviderParticipant]
        if participant.participant_id and not participant.uncertain and not participant.duplicates_unchecked():
            one = client.get_participant(meeting.provider_meeting_id, participant.participant_id)
            found = [one] if one is not None else []
        else:
            if listing is None:
                listing = client.participants(meeting.provider_meeting_id)
            found = [p for p in listing if p.custom_participant_id == participant.custom_participant_id]
        standings.append((participant, role, found))
    changing = [
        participant.user_id
        for participant, role, found in standings
        if role is not None and found and _kept(participant, found).preset_name != _wanted(ctx, meeting, role)
    ]
    if changing:
        _owe_kicks(ctx, meeting, rows, changing)
    for participant, role, found in standings:
        owed = participant.user_id in rows.kick_marks or participant.user_id in changing
        _settle_participant(ctx, meeting, participant, role, found, client, is_live, owed, updates, now)
        if (role is None and participant.adding(now)) or participant.duplicates_may_land(now):
            # A join is adding them, or gave up on an add the provider may still apply: what it adds must go
            # too (they may not join again to adopt it, or it would be their second participant).
            rows.waiting[participant.user_id] = participant.claim_until


def _owe_kicks(ctx: Context, meeting: Meeting, rows: Rows, users: list[str]) -> None:
    """Mark the kicks these users' preset changes owe, before the first change: a kick that fails after its
    preset changed would otherwise never happen (the next round finds the preset right), and the real
    providers keep a live peer's old powers until it rejoins. Cleared with the other markers once done."""
    name = schema.KICK_MARK + secrets.token_urlsafe(6)
    entity = {
        "PartitionKey": meeting.partition,
        "RowKey": schema.marker_key(meeting.id, name),
        "markedAt": times.stamp(ctx.clock()),
        "ids": ",".join(users),
    }
    rows.markers[name] = ctx.storage.table(schema.MEETINGS).create_entity(entity).get("etag")


def _kept(participant: Participant, found: list[ProviderParticipant]) -> ProviderParticipant:
    """Of the provider's participants for this user, the one to keep: ours if listed, else the first."""
    return next((p for p in found if p.id == participant.participant_id), found[0])


def _wanted(ctx: Context, meeting: Meeting, role: Role) -> str:
    return access.preset(ctx.settings, meeting.provider, role)


def _settle_participant(
    ctx: Context,
    meeting: Meeting,
    participant: Participant,
    role: Role | None,
    found: list[ProviderParticipant],
    client: ProviderClient,
    is_live: Any,
    kick_owed: bool,
    updates: Updates,
    now: datetime,
) -> None:
    """`found`: the provider's participants for this user, as read at `now` or after it."""
    pmid = meeting.provider_meeting_id
    in_flight = participant.adding(now)
    # Listed once the kept lease ended: no add given up on can land any more, a point get will do from now on.
    checked = {"claimUntil": ""} if participant.duplicates_unchecked() and participant.claim_expired(now) else {}
    if role is None:
        if found and is_live():
            client.kick(pmid, custom_participant_ids=[participant.custom_participant_id])
        for stale in found:
            client.delete_participant(pmid, stale.id)
        if participant.participant_id or participant.token or participant.preset:
            # A kept lease goes too: this row is no join's claim (the next join would wait for it), and with no
            # participant id the follow-up that waits for that lease lists the provider anyway.
            lease = {"claimUntil": ""} if participant.participant_id else {}
            updates.append(_participant_patch(participant, participantId="", token="", tokenAt="", preset="", **lease))
        return
    if not found:
        if checked:
            updates.append(_participant_patch(participant, **checked))
        return  # nothing at the provider: their next join adds them with the right preset
    keep = _kept(participant, found)
    for duplicate in found:
        if duplicate.id != keep.id:
            client.delete_participant(pmid, duplicate.id)  # one user, one provider participant
    wanted = _wanted(ctx, meeting, role)
    patch: dict[str, Any] = {}
    if keep.preset_name != wanted:
        client.set_participant_preset(pmid, keep.id, wanted)
        patch.update(preset=wanted, token="", tokenAt="")
    if kick_owed and is_live():
        # The real providers keep a live peer's old powers until it rejoins: make it rejoin.
        client.kick(pmid, custom_participant_ids=[participant.custom_participant_id])
    if role.value != participant.role:
        patch["role"] = role.value
    if participant.uncertain and not in_flight:
        patch["uncertain"] = False
    if participant.participant_id != keep.id and not in_flight:
        patch.update(participantId=keep.id, uncertain=False, claimUntil="")  # adopted
    patch.update(checked)
    if patch:
        updates.append(_participant_patch(participant, **patch))


def _participant_patch(participant: Participant, **changes: Any) -> tuple[dict[str, Any], str | None]:
    return {"PartitionKey": participant.partition, "RowKey": participant.key, **changes}, participant.etag


# The invitee index -----------------------------------------------------------------------------------------


def _index(ctx: Context, meeting: Meeting, rows: Rows, updates: Updates) -> None:
    if schema.FIELDS_MARK in rows.markers or schema.CANCELLED_MARK in rows.markers:
        chosen = list(rows.invites.values())
    else:
        chosen = [rows.invites[invite] for invite in sorted(rows.invite_marks) if invite in rows.invites]
    stale = [invite for invite in chosen if invite.indexed != _indexed(invite, meeting)]
    if not stale:
        return
    table = ctx.storage.table(schema.INVITATIONS)

    def write(invite: Invite) -> None:
        row = invite.index_row(meeting)
        previous = invite.indexed.split("#", 1)[0]
        table.upsert_entity(row, mode=UpdateMode.REPLACE)
        if previous and previous != row["RowKey"]:
            table.delete_entity(invite.id, previous)  # the meeting moved in the invitee's list

    with ThreadPoolExecutor(max_workers=min(8, len(stale))) as pool:
        list(pool.map(write, stale))
    for invite in stale:
        updates.append(
            (
                {"PartitionKey": invite.partition, "RowKey": invite.key, "indexed": _indexed(invite, meeting)},
                invite.etag,
            )
        )


def _indexed(invite: Invite, meeting: Meeting) -> str:
    return f"{schema.invitee_index_key(meeting.sort_key(), meeting.id)}#{invite.index_fingerprint(meeting)}"


def index_now(ctx: Context, invite: Invite, meeting: Meeting) -> None:
    """Write one invitee-index row at once (the first join's binding, so the list never shows the meeting
    to another identity with the same address); the next follow-up of the meeting repairs it if this fails."""
    ctx.storage.table(schema.INVITATIONS).upsert_entity(invite.index_row(meeting), mode=UpdateMode.REPLACE)

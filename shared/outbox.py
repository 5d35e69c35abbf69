"""The mail outbox (contract section 4, `MAIL_*`): a record beside each change, expanded and delivered.

Outbox. A change an invitee must hear about adds one record to its own batch (the owner's partition,
RowKey `m|{meeting}|o|c|{change}`), so the email is exactly as durable as the change: invites created,
re-invited or given another role (`invited`), an invite revoked (`revoked`), a meeting rescheduled or
renamed (`updated`), a meeting cancelled (`cancelled`). The same batch marks the meeting's follow-up
(`shared.followups`), which expands new records, so no record can be forgotten.

Fan-out. A record expands into one message per recipient on the `mail-outbox` queue: the record's
invitees, or for a meeting change every pending or accepted invitee, as far as the owner's daily cap
allows. The record turns `expanded` and the day's count grows in one batch.

Delivery. A recipient's message renders the meeting and the invite as they are *when it is sent*, with
SEQUENCE = the meeting's `version` + the invite's `mailSequence`. A message overtaken by a later change
is skipped: that change has its own record. Once Graph accepts a message, `m|{meeting}|o|d|{invite}`
records what was delivered; any message that would deliver the same state again sends nothing. Graph
has no idempotency key, so delivery is at least once (a duplicate needs a failure between Graph's 202
and that record).

Failures. A message that cannot be sent now (Graph or storage down, Graph throttling for longer than is
worth waiting) gets an entry in the pending index and comes back with backoff, from seconds to an hour,
for up to a day; then it is given up with an error log. A crash mid-send leaves the queue's own retries,
then the poison queue, which health reports.

With `MAIL_SENDER` empty nothing here writes a row, queues a message or sends a request.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared import mail, pending, schema, storage, times
from shared.mail import CANCELLED, INVITED, REVOKED, UPDATED
from shared.model import Invite, Meeting
from shared.storage import Batch, Stale

if TYPE_CHECKING:
    from shared.context import Context

log = logging.getLogger(__name__)

# Emails per owner and UTC day: far above what a person organising meetings sends, far below what
# would get the shared sender mailbox throttled for everyone (Exchange: 10,000 recipients a day).
DAILY_EMAIL_CAP = 500
GIVE_UP_AFTER = timedelta(hours=24)
_SCHEDULE_FIELDS = ("title", "schedule")


# Writing the outbox (in the change's own batch) -------------------------------------------------------------


def next_sequence(ctx: Context, invite: Invite) -> int:
    """The invite's mail counter, bumped by a role change, re-invite or revocation (when email is on)."""
    return invite.mail_sequence + 1 if ctx.settings.mail is not None else invite.mail_sequence


def add(ctx: Context, batch: Batch, meeting: Meeting, kind: str, invite_ids: Iterable[str] = ()) -> bool:
    """Add the record of a change to `batch`; whether there is one (email on, and someone to tell)."""
    recipients = list(invite_ids)
    if ctx.settings.mail is None or (kind in (INVITED, REVOKED) and not recipients):
        return False
    change = secrets.token_urlsafe(9)
    batch.create(
        {
            "PartitionKey": meeting.partition,
            "RowKey": schema.outbox_key(meeting.id, change),
            "meetingId": meeting.id,
            "change": change,
            "kind": kind,
            "invites": ",".join(recipients),
            "mailState": "new",
            "createdAt": times.stamp(ctx.clock()),
        }
    )
    return True


def meeting_change(before: Meeting, after: Meeting) -> str | None:
    """The kind of email a meeting edit or cancellation owes its invitees, if any."""
    if not after.invite_count:
        return None
    if after.cancelled and not before.cancelled:
        return CANCELLED
    if before.title != after.title or before.schedule != after.schedule:
        return UPDATED
    return None


def is_record(meeting_id: str, row_key: str) -> bool:
    return row_key.startswith(schema.outbox_key(meeting_id, ""))


# Expansion (a follow-up of the meeting) ---------------------------------------------------------------------


def expand(ctx: Context, meeting: Meeting, records: list[Any], invites: Mapping[str, Invite]) -> None:
    """Queue one message per recipient of each new record, and count them against the owner's day."""
    if ctx.settings.mail is None:
        return
    table = ctx.storage.table(schema.MEETINGS)
    for record in sorted(records, key=lambda row: row["createdAt"]):
        recipients = _recipients(record, invites)
        storage.retry(lambda record=record, recipients=recipients: _expand(ctx, table, meeting, record, recipients))


def _expand(ctx: Context, table: Any, meeting: Meeting, record: Any, recipients: list[str]) -> None:
    quota = _get(table, meeting.partition, schema.MAIL_QUOTA_KEY)
    today = ctx.clock().date().isoformat()
    used = int(quota["sent"]) if quota is not None and quota["day"] == today else 0
    allowed = recipients[: max(0, DAILY_EMAIL_CAP - used)]
    if len(allowed) < len(recipients):
        # The change itself stands; only its email is not sent (ids only: no addresses in logs).
        skipped = {"skipped": len(recipients) - len(allowed), "reason": f"the owner's cap of {DAILY_EMAIL_CAP}/day"}
        log.warning(json.dumps({"operation": "mail.expand", "meetingId": meeting.id, **skipped}))
    send = {"step": "send", "meeting": meeting.id, "change": record["change"], "kind": record["kind"]}
    # Queued before the record turns `expanded`: a crash in between expands again, and delivery skips repeats.
    _enqueue_all(ctx, [{**send, "invite": invite} for invite in allowed])
    batch = Batch(table, meeting.partition)
    batch.update(
        {
            "PartitionKey": meeting.partition,
            "RowKey": record["RowKey"],
            "mailState": "expanded",
            "recipients": len(allowed),
        },
        record.metadata["etag"],
        merge=True,
    )
    counted = {
        "PartitionKey": meeting.partition,
        "RowKey": schema.MAIL_QUOTA_KEY,
        "day": today,
        "sent": used + len(allowed),
    }
    if quota is None:
        batch.create(counted)
    else:
        batch.update(counted, quota.metadata["etag"])
    batch.commit()


def _recipients(record: Any, invites: Mapping[str, Invite]) -> list[str]:
    if record["kind"] in (INVITED, REVOKED):
        return [invite for invite in record["invites"].split(",") if invite]
    return [invite.id for invite in invites.values() if invite.active]


def _enqueue_all(ctx: Context, messages: list[dict[str, Any]]) -> None:
    if len(messages) <= 1:
        for message in messages:
            _enqueue(ctx, message)
        return
    # A queue put is one request each; a reschedule of a 500-invite meeting should not take 500 in a row.
    with ThreadPoolExecutor(max_workers=min(8, len(messages))) as pool:
        list(pool.map(lambda message: _enqueue(ctx, message), messages))


def _enqueue(ctx: Context, message: dict[str, Any], delay: float = 0) -> None:
    text = json.dumps(message, separators=(",", ":"))
    ctx.storage.queue(schema.MAIL_QUEUE).send_message(text, visibility_timeout=round(delay) or None)


# Delivery (queue `mail-outbox`) ----------------------------------------------------------------------------


def deliver(ctx: Context, text: str) -> None:
    """Queue trigger: deliver one recipient's message, or put it back for later when it cannot be now."""
    message = json.loads(text)
    if ctx.settings.mail is None:
        log.warning("mail: a queued message arrived while email is off; dropped")
        return
    key = schema.pending_mail(message["meeting"], message["change"], message["invite"])
    from shared.graph import MailError, Throttled  # imported here: only the sender needs it (cold start)

    try:
        _deliver(ctx, message)
    except Throttled as throttled:
        _later(ctx, key, message, f"throttled by Graph for {throttled.retry_after:g} s", throttled.retry_after)
        return
    except (MailError, AzureError, OSError) as error:
        _later(ctx, key, message, f"{type(error).__name__}: {error}"[:200], None)
        return
    if message.get("retried"):
        pending.complete(ctx, key)


def _later(ctx: Context, key: str, message: dict[str, Any], reason: str, wait: float | None) -> None:
    """Keep the message for a later attempt (pending index, backoff), or give it up after a day."""
    entry = pending.get(ctx, key)
    first = entry.first_failed_at if entry and entry.first_failed_at else ctx.clock()
    if ctx.clock() - first >= GIVE_UP_AFTER:
        pending.complete(ctx, key)
        log.error(
            json.dumps(
                {
                    "operation": "mail.send",
                    "meetingId": message["meeting"],
                    "invite": message["invite"],
                    "status": "given-up",
                    "since": times.format_utc(first),
                    "reason": reason,
                }
            )
        )
        return
    retried = {**message, "retried": True}
    delay = pending.failed(ctx, key, reason, schema.MAIL_QUEUE, retried)
    seconds = max(delay.total_seconds(), math.ceil(wait or 0))
    _enqueue(ctx, retried, seconds)
    log.warning(
        json.dumps(
            {
                "operation": "mail.send",
                "meetingId": message["meeting"],
                "status": "deferred",
                "delaySeconds": round(seconds),
                "reason": reason,
            }
        )
    )


def _deliver(ctx: Context, message: dict[str, Any]) -> None:
    meeting_id, invite_id, kind = message["meeting"], message["invite"], message["kind"]
    table = ctx.storage.table(schema.MEETINGS)
    meeting, invite, delivered = _delivery_rows(table, meeting_id, invite_id)
    decision = _decide(meeting, invite, delivered, kind)
    outcome = {"operation": "mail.send", "meetingId": meeting_id, "change": message["change"], "invite": invite_id}
    if isinstance(decision, str):
        log.info(json.dumps({**outcome, "status": "skipped", "reason": decision}))
        return
    method, sequence = decision
    now = ctx.clock()
    ctx.mail().send(mail.compose(ctx.settings, meeting, invite, kind, method, sequence, now))
    _remember(
        table, meeting, invite_id, delivered, {"sequence": sequence, "method": method, "sentAt": times.stamp(now)}
    )
    log.info(json.dumps({**outcome, "status": "sent", "method": method, "sequence": sequence}))


def _delivery_rows(table: Any, meeting_id: str, invite_id: str) -> tuple[Meeting | None, Invite | None, Any]:
    """The meeting, the invite and what was delivered to it, in one request bounded to the meeting's rows."""
    low, high = schema.meeting_range(meeting_id)
    wanted = {
        "meeting": low,
        "invite": schema.invite_key(meeting_id, invite_id),
        "delivered": schema.delivered_key(meeting_id, invite_id),
    }
    rows = table.query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        " and ( RowKey eq @meeting or RowKey eq @invite or RowKey eq @delivered )",
        parameters={"pk": schema.owner_partition(meeting_id), "low": low, "high": high, **wanted},
    )
    found = {row["RowKey"]: row for row in rows}
    meeting, invite = found.get(wanted["meeting"]), found.get(wanted["invite"])
    return (
        Meeting.from_row(meeting) if meeting else None,
        Invite.from_row(invite) if invite else None,
        found.get(wanted["delivered"]),
    )


def _decide(meeting: Meeting | None, invite: Invite | None, delivered: Any, kind: str) -> tuple[str, int] | str:
    """(METHOD, SEQUENCE) to send, or why nothing is sent."""
    if meeting is None or invite is None:
        return "gone"
    if invite.status == "declined":
        return "declined"
    method = "CANCEL" if meeting.cancelled or invite.status == "revoked" else "REQUEST"
    if method != ("CANCEL" if kind in (REVOKED, CANCELLED) else "REQUEST"):
        return "overtaken by a later change"
    sequence = meeting.version + invite.mail_sequence
    if delivered is None:
        return "never sent an invitation" if method == "CANCEL" else (method, sequence)
    if delivered["sequence"] >= sequence or delivered["method"] == method == "CANCEL":
        return "delivered already"
    return method, sequence


def _remember(table: Any, meeting: Meeting, invite_id: str, current: Any, delivery: dict[str, Any]) -> None:
    entity = {"PartitionKey": meeting.partition, "RowKey": schema.delivered_key(meeting.id, invite_id), **delivery}
    for _ in storage.attempts(4):
        try:
            if current is None:
                table.create_entity(entity)
            else:
                table.update_entity(
                    entity, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified
                )
            return
        except (ResourceExistsError, ResourceModifiedError):
            current = _get(table, entity["PartitionKey"], entity["RowKey"])
            if current is not None and current["sequence"] >= delivery["sequence"]:
                return  # a concurrent message delivered this state or a newer one
    log.warning("mail: could not record a delivery for invite %s; a repeat may send it again", invite_id)


def _get(table: Any, partition: str, row_key: str) -> Any:
    try:
        return table.get_entity(partition, row_key)
    except ResourceNotFoundError:
        return None


__all__ = ["CANCELLED", "INVITED", "REVOKED", "UPDATED", "Stale"]

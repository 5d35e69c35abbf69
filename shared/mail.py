"""Invitation email (contract section 4, `MAIL_*`): an outbox beside each change, sent through Graph.

Outbox. A change that an invitee must hear about writes one record in the same batch as the
change itself (the owner's partition, RowKey `m|{meeting}|o|c|{change}`), so the email is exactly
as durable as the change: invites created, re-invited or given another role (`invited`), an
invite revoked (`revoked`), a meeting rescheduled or renamed (`updated`), a meeting cancelled
(`cancelled`). After the commit the record is put on the `mail-outbox` queue. A put that never
happened (the process died, the queue failed) is made good by `sweep`, a timer that enqueues
records still `new` a few minutes after they were written.

Fan-out. A record's message expands into one message per recipient: the record's invitees, or for
a meeting change every pending or accepted invitee, as far as the owner's daily cap allows. The
record turns `expanded` and the day's count grows in one batch, so a repeated expansion neither
counts twice nor loses a recipient (it only repeats messages, which delivery absorbs).

Delivery. A recipient's message renders the meeting and the invite as they are *when it is sent*,
with SEQUENCE = the meeting's `version` (bumped by every owner edit and cancel) + the invite's
`mailSequence` (bumped by a role change, a re-invite and a revocation). Both only grow, so no email
can put an older state into a calendar, and 500 invite rows need no rewrite on a reschedule. A
message overtaken by a later change (an invitation to an invite revoked since, an update to a
meeting cancelled since) is skipped: that change has its own record. Once Graph accepts a message,
`m|{meeting}|o|d|{invite}` records what was delivered (SEQUENCE and METHOD); a retry of a message
already delivered, or any message that would deliver the same state again, sends nothing. Graph has
no idempotency key, so delivery is at least once: a duplicate needs a failure between Graph's 202
and that record.

Failures. Graph's 429 and 5xx are retried here while its Retry-After is short. A longer throttle
puts the message back on the queue for when Graph asks, without using up its attempts (throttling
is expected with large meetings: Exchange takes about 30 messages a minute from one mailbox).
Anything else raises: the Functions host retries the message and after 5 attempts moves it to
`mail-outbox-poison`, which an alert watches.

Trust: the Graph and token calls use a `requests.Session` left at requests' defaults, so in Azure
they verify against the default CA bundle. Tests of a running app point it at a test CA with
`REQUESTS_CA_BUNDLE` in that process's environment (see dev/graph.py); nothing here can turn
verification off.

With `MAIL_SENDER` empty every function here returns at once: no row, no queue message, no request.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import requests
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode
from requests.adapters import HTTPAdapter

from shared import invites, meetings, storage, times
from shared.context import Context
from shared.settings import MailSettings, Settings

log = logging.getLogger(__name__)

QUEUE = "mail-outbox"
# Emails per owner and UTC day: far above what a person organising meetings sends, far below what
# would get the shared sender mailbox throttled for everyone (Exchange: 10,000 recipients a day).
DAILY_EMAIL_CAP = 500
# Records younger than this are still being enqueued by the request that wrote them.
SWEEP_AFTER = timedelta(minutes=3)
SEND_ATTEMPTS = 3
INLINE_WAIT_SECONDS = 10.0
MAX_DEFERRALS = 12
MAX_DEFER_SECONDS = 900
TIMEOUT = (3.05, 30.0)

INVITED, REVOKED, UPDATED, CANCELLED = "invited", "revoked", "updated", "cancelled"
SEQUENCE = "mailSequence"
QUOTA_KEY = "q|mail"
_SCHEDULE_FIELDS = ("title", "startsAt", "endsAt", "timeZone")
_PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", re.S)
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def record_key(meeting_id: str, change: str) -> str:
    return f"{meetings.meeting_row_key(meeting_id)}|o|c|{change}"


def delivered_key(meeting_id: str, invite_id: str) -> str:
    return f"{meetings.meeting_row_key(meeting_id)}|o|d|{invite_id}"


# Writing the outbox (in the change's own batch) -----------------------------------------------


def next_sequence(ctx: Context, invite_row: dict[str, Any]) -> dict[str, int]:
    """The invite's counter, bumped: merged into the invite row a role change, re-invite or revocation writes."""
    if ctx.settings.mail is None:
        return {}
    return {SEQUENCE: int(invite_row.get(SEQUENCE) or 0) + 1}


def outbox_operations(ctx: Context, meeting: dict[str, Any], kind: str, invite_ids: Iterable[str]) -> list[tuple]:
    """The record of an invite change (`invited` or `revoked`) to add to the change's batch."""
    recipients = list(invite_ids)
    if ctx.settings.mail is None or not recipients:
        return []
    return [_record(ctx, meeting, kind, recipients)]


def meeting_operations(ctx: Context, before: dict[str, Any], after: dict[str, Any]) -> list[tuple]:
    """The record of a meeting edit or cancellation, when it is one invitees must hear about."""
    if ctx.settings.mail is None or not after.get("inviteCount"):
        return []
    if after.get("cancelledAt") and not before.get("cancelledAt"):
        return [_record(ctx, after, CANCELLED, [])]
    if any(before.get(name) != after.get(name) for name in _SCHEDULE_FIELDS):
        return [_record(ctx, after, UPDATED, [])]
    return []


def _record(ctx: Context, meeting: dict[str, Any], kind: str, recipients: list[str]) -> tuple:
    change = secrets.token_urlsafe(9)
    return (
        "create",
        {
            "PartitionKey": meeting["PartitionKey"],
            "RowKey": record_key(meeting["id"], change),
            "meetingId": meeting["id"],
            "change": change,
            "kind": kind,
            "invites": ",".join(recipients),
            "mailState": "new",
            "createdAt": ctx.clock(),
        },
    )


def after_commit(ctx: Context, operations: list[tuple]) -> None:
    """Queue the records of a committed batch; a put that fails is left to the sweep."""
    for _, record, *_ in operations:
        try:
            _enqueue(ctx, {"step": "expand", "meeting": record["meetingId"], "change": record["change"]})
        except Exception as error:  # the change and its record are committed: the sweep sends it
            log.warning("mail: could not queue change %s (%s); the sweep will", record["change"], type(error).__name__)


def _enqueue(ctx: Context, message: dict[str, Any], delay: int = 0) -> None:
    text = json.dumps(message, separators=(",", ":"))
    ctx.storage.queue(QUEUE).send_message(text, visibility_timeout=delay or None)


def sweep(ctx: Context) -> int:
    """Timer: queue the records whose own request never did (older than SWEEP_AFTER, still new)."""
    if ctx.settings.mail is None:
        return 0
    # Records live in every owner's partition, so this scans the table (filtered by the service,
    # every 5 minutes); a table of its own could not share the change's transaction.
    rows = ctx.storage.table(meetings.MEETINGS_TABLE).query_entities(
        "mailState eq 'new' and createdAt lt @cutoff",
        parameters={"cutoff": ctx.clock() - SWEEP_AFTER},
        select=["meetingId", "change"],
    )
    swept = 0
    for row in rows:
        _enqueue(ctx, {"step": "expand", "meeting": row["meetingId"], "change": row["change"]})
        swept += 1
    if swept:
        log.warning(json.dumps({"operation": "mail.sweep", "requeued": swept}))
    return swept


# The queue: expansion and delivery ----------------------------------------------------------


def process(ctx: Context, text: str, graph: Graph | None = None) -> None:
    """Queue trigger: expand a record into per-recipient messages, or deliver one of them."""
    message = json.loads(text)
    if ctx.settings.mail is None:
        log.warning("mail: a queued message arrived while email is off; dropped")
        return
    if message["step"] == "expand":
        _expand(ctx, message)
    else:
        _deliver(ctx, message, graph or _process_graph(ctx.settings.mail))


def _expand(ctx: Context, message: dict[str, Any]) -> None:
    meeting_id, change = message["meeting"], message["change"]
    partition = meetings.owner_partition(meeting_id)
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    key = record_key(meeting_id, change)
    record, quota = _get(table, partition, key), _get(table, partition, QUOTA_KEY)
    if record is None or record["mailState"] != "new":
        return  # expanded already: this is a repeat or the sweep's copy
    recipients = _recipients(table, partition, meeting_id, record)
    today = ctx.clock().date().isoformat()
    used = _used(quota, today)
    allowed = recipients[: max(0, DAILY_EMAIL_CAP - used)]
    if len(allowed) < len(recipients):
        # The change itself stands; only its email is not sent (ids only: no addresses in logs).
        log.warning(
            json.dumps(
                {
                    "operation": "mail.expand",
                    "meetingId": meeting_id,
                    "change": change,
                    "skipped": len(recipients) - len(allowed),
                    "reason": f"the owner's daily cap of {DAILY_EMAIL_CAP} emails",
                }
            )
        )
    send = {"step": "send", "meeting": meeting_id, "change": change, "kind": record["kind"]}
    _enqueue_all(ctx, [{**send, "invite": invite} for invite in allowed])
    for _ in storage.attempts():
        expanded = {"PartitionKey": partition, "RowKey": key, "mailState": "expanded", "recipients": len(allowed)}
        counted = {"PartitionKey": partition, "RowKey": QUOTA_KEY, "day": today, "sent": used + len(allowed)}
        operations = [("update", expanded, _unchanged(record, UpdateMode.MERGE))]
        operations.append(("create", counted) if quota is None else ("update", counted, _unchanged(quota)))
        try:
            table.submit_transaction(operations)
            return
        except TableTransactionError as error:
            if error.status_code not in (409, 412):
                raise
        record, quota = _get(table, partition, key), _get(table, partition, QUOTA_KEY)
        if record is None or record["mailState"] != "new":
            return  # a concurrent expansion counted these recipients
        used = _used(quota, today)
    raise RuntimeError("mail: the owner's email count is changing concurrently; the queue retries")


def _recipients(table: Any, partition: str, meeting_id: str, record: dict[str, Any]) -> list[str]:
    if record["kind"] in (INVITED, REVOKED):
        return [invite for invite in record["invites"].split(",") if invite]
    prefix = f"{meetings.meeting_row_key(meeting_id)}|i|"
    rows = table.query_entities(
        "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
        parameters={"pk": partition, "low": prefix, "high": prefix + "~"},
        select=["id", "status"],
    )
    return [row["id"] for row in rows if row["status"] in invites.ACTIVE]


def _used(quota: dict[str, Any] | None, today: str) -> int:
    return int(quota["sent"]) if quota is not None and quota["day"] == today else 0


def _enqueue_all(ctx: Context, messages: list[dict[str, Any]]) -> None:
    if len(messages) <= 1:
        for message in messages:
            _enqueue(ctx, message)
        return
    # A queue put is one request each; a reschedule of a 500-invite meeting should not take 500 in a row.
    with ThreadPoolExecutor(max_workers=min(8, len(messages))) as pool:
        list(pool.map(lambda message: _enqueue(ctx, message), messages))


def _deliver(ctx: Context, message: dict[str, Any], graph: Graph) -> None:
    meeting_id, invite_id, kind = message["meeting"], message["invite"], message["kind"]
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    meeting, invite, delivered = _delivery_rows(table, meeting_id, invite_id)
    decision = _decide(meeting, invite, delivered, kind)
    outcome = {"operation": "mail.send", "meetingId": meeting_id, "change": message["change"], "invite": invite_id}
    if isinstance(decision, str):
        log.info(json.dumps({**outcome, "status": "skipped", "reason": decision}))
        return
    method, sequence = decision
    now = ctx.clock()
    try:
        graph.send(compose(ctx.settings, meeting, invite, kind, method, sequence, now))
    except Throttled as throttled:
        _defer(ctx, message, throttled.retry_after)
        return
    _remember(table, meeting, invite_id, delivered, {"sequence": sequence, "method": method, "sentAt": now})
    log.info(json.dumps({**outcome, "status": "sent", "method": method, "sequence": sequence}))


def _delivery_rows(table: Any, meeting_id: str, invite_id: str) -> tuple[Any, Any, Any]:
    """The meeting, the invite and what was delivered to it, in one request bounded to the meeting's rows."""
    wanted = {
        "meeting": meetings.meeting_row_key(meeting_id),
        "invite": invites.invite_row_key(meeting_id, invite_id),
        "delivered": delivered_key(meeting_id, invite_id),
    }
    rows = table.query_entities(
        "PartitionKey eq @pk and RowKey ge @meeting and RowKey lt @end"
        " and ( RowKey eq @meeting or RowKey eq @invite or RowKey eq @delivered )",
        parameters={"pk": meetings.owner_partition(meeting_id), "end": wanted["meeting"] + "|~", **wanted},
    )
    found = {row["RowKey"]: row for row in rows}
    return tuple(found.get(wanted[name]) for name in ("meeting", "invite", "delivered"))


def _decide(meeting: Any, invite: Any, delivered: Any, kind: str) -> tuple[str, int] | str:
    """(METHOD, SEQUENCE) to send, or why nothing is sent."""
    if meeting is None or invite is None:
        return "gone"
    if invite["status"] == "declined":
        return "declined"
    method = "CANCEL" if meeting.get("cancelledAt") or invite["status"] == "revoked" else "REQUEST"
    if method != ("CANCEL" if kind in (REVOKED, CANCELLED) else "REQUEST"):
        return "overtaken by a later change"
    sequence = int(meeting["version"]) + int(invite.get(SEQUENCE) or 0)
    if delivered is None:
        return "never sent an invitation" if method == "CANCEL" else (method, sequence)
    if delivered["sequence"] >= sequence or delivered["method"] == method == "CANCEL":
        return "delivered already"
    return method, sequence


def _remember(table: Any, meeting: Any, invite_id: str, current: Any, delivery: dict[str, Any]) -> None:
    entity = {"PartitionKey": meeting["PartitionKey"], "RowKey": delivered_key(meeting["id"], invite_id), **delivery}
    for _ in storage.attempts(4):
        try:
            if current is None:
                table.create_entity(entity)
            else:
                table.update_entity(entity, **_unchanged(current))
            return
        except (ResourceExistsError, ResourceModifiedError):
            current = _get(table, entity["PartitionKey"], entity["RowKey"])
            if current is not None and current["sequence"] >= delivery["sequence"]:
                return  # a concurrent message delivered this state or a newer one
    log.warning("mail: could not record a delivery for invite %s; a repeat may send it again", invite_id)


def _defer(ctx: Context, message: dict[str, Any], retry_after: float) -> None:
    deferrals = int(message.get("deferrals", 0)) + 1
    if deferrals > MAX_DEFERRALS:
        raise MailError(f"Graph kept throttling this message through {MAX_DEFERRALS} deferrals")
    # Jitter: a throttled burst should not all come back in the same second.
    delay = min(MAX_DEFER_SECONDS, math.ceil(retry_after)) + random.randint(0, 15)  # noqa: S311 - jitter
    _enqueue(ctx, {**message, "deferrals": deferrals}, delay)
    log.warning(
        json.dumps({"operation": "mail.send", "change": message["change"], "status": "deferred", "delaySeconds": delay})
    )


def _get(table: Any, partition: str, row_key: str) -> Any:
    try:
        return table.get_entity(partition, row_key)
    except ResourceNotFoundError:
        return None


def _unchanged(row: Any, mode: UpdateMode = UpdateMode.REPLACE) -> dict[str, Any]:
    return {"mode": mode, "etag": row.metadata["etag"], "match_condition": MatchConditions.IfNotModified}


# The message ----------------------------------------------------------------------------------


def compose(
    settings: Settings,
    meeting: dict[str, Any],
    invite: dict[str, Any],
    kind: str,
    method: str,
    sequence: int,
    now: datetime,
) -> dict[str, Any]:
    """The sendMail request body for one invitee: subject, HTML body and, with a start, an iCalendar file."""
    title = " ".join(meeting["title"].split())
    owner = " ".join((meeting.get("ownerName") or "").split()) or "The organizer"
    link = f"{settings.app_base_url}/meetings/{meeting['id']}"
    role = "a host" if invite["role"] == "host" else "a participant"
    subject, lead = {
        INVITED: (f"Invitation: {title}", f"{owner} invited you to “{title}” as {role}."),
        UPDATED: (f"Updated: {title}", f"{owner} changed “{title}”."),
        CANCELLED: (f"Cancelled: {title}", f"{owner} cancelled “{title}”."),
        REVOKED: (f"Invitation withdrawn: {title}", f"{owner} withdrew your invitation to “{title}”."),
    }[kind]
    paragraphs = [html.escape(lead), f"When: {html.escape(_when(meeting))}"]
    if kind != REVOKED:  # a revoked invitee has no access left to link to
        paragraphs.append(f'Join: <a href="{html.escape(link)}">{html.escape(link)}</a>')
    message: dict[str, Any] = {
        "subject": subject,
        "body": {"contentType": "HTML", "content": "".join(f"<p>{p}</p>" for p in paragraphs)},
        "toRecipients": [{"emailAddress": {"address": invite["email"]}}],
    }
    if meeting.get("startsAt"):  # an event needs a start: without one there is nothing to put in a calendar
        calendar = calendar_file(settings, meeting, invite, method, sequence, now)
        message["attachments"] = [
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": "cancel.ics" if method == "CANCEL" else "invite.ics",
                "contentType": f"text/calendar; charset=utf-8; method={method}",
                "contentBytes": base64.b64encode(calendar).decode("ascii"),
            }
        ]
    # The sender is a shared no-reply mailbox: its Sent Items would only grow.
    return {"message": message, "saveToSentItems": False}


def _when(meeting: dict[str, Any]) -> str:
    starts = times.parse_rfc3339(meeting.get("startsAt") or "")
    if starts is None:
        return "not scheduled yet"
    zone_name = meeting["timeZone"]
    start = starts.astimezone(ZoneInfo(zone_name))
    text = f"{start:%A} {start.day} {start:%B %Y, %H:%M}"
    ends = times.parse_rfc3339(meeting.get("endsAt") or "")
    if ends is not None:
        end = ends.astimezone(ZoneInfo(zone_name))
        text += f"–{end:%H:%M}" if end.date() == start.date() else f" – {end:%A} {end.day} {end:%B %Y, %H:%M}"
    return f"{text} ({zone_name})"


def calendar_file(
    settings: Settings, meeting: dict[str, Any], invite: dict[str, Any], method: str, sequence: int, now: datetime
) -> bytes:
    """An iCalendar REQUEST or CANCEL for one invitee (UID per meeting and invitee), with its VTIMEZONE."""
    from icalendar import Calendar, Event, vCalAddress  # imported here: only the sender needs it (cold start)

    sender = settings.mail.sender
    # UTC events are written as UTC times (`Z`), which need no VTIMEZONE; any other zone gets one.
    zone = UTC if meeting["timeZone"] == "UTC" else ZoneInfo(meeting["timeZone"])
    start = times.parse_rfc3339(meeting["startsAt"]).astimezone(zone)
    ends = times.parse_rfc3339(meeting.get("endsAt") or "")
    end = ends.astimezone(zone) if ends else None
    link = f"{settings.app_base_url}/meetings/{meeting['id']}"
    organizer = vCalAddress(f"mailto:{sender}")
    if meeting.get("ownerName"):
        organizer.params["CN"] = meeting["ownerName"]
    attendee = vCalAddress(f"mailto:{invite['email']}")
    # RSVP=FALSE: replies would go to the sender mailbox, which nobody reads.
    attendee.params.update(
        {
            "CUTYPE": "INDIVIDUAL",
            "ROLE": "CHAIR" if invite["role"] == "host" else "REQ-PARTICIPANT",
            "PARTSTAT": "NEEDS-ACTION",
            "RSVP": "FALSE",
        }
    )
    event = Event()
    event.add("uid", f"{meeting['id']}.{invite['id']}@{sender.rsplit('@', 1)[1]}")
    event.add("sequence", sequence)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", start)
    if end is not None:
        event.add("dtend", end)
    event.add("summary", meeting["title"])
    event.add("description", "\n\n".join(filter(None, [meeting.get("description"), f"Join: {link}"])))
    event.add("location", link)
    event.add("url", link)
    event.add("organizer", organizer)
    event.add("attendee", attendee)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    calendar = Calendar()
    calendar.add("prodid", "-//Meetings backend//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    calendar.add_component(event)
    # The zone's rules for a year either side of the event: enough to place it, and a small file.
    calendar.add_missing_timezones(
        first_date=start.date() - timedelta(days=366), last_date=(end or start).date() + timedelta(days=366)
    )
    return calendar.to_ical()


# Microsoft Graph ------------------------------------------------------------------------------


class MailError(Exception):
    """Graph did not take the message; raised so that the queue retries it (and poisons it at last)."""


class Throttled(MailError):
    """Graph asked us to wait longer than is worth holding an invocation for."""

    def __init__(self, retry_after: float):
        super().__init__(f"Graph throttled sendMail for {retry_after:g} s")
        self.retry_after = retry_after


class Graph:
    """sendMail as the app itself (client credentials, `Mail.Send`); msal caches the token per process."""

    def __init__(
        self,
        settings: MailSettings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self._settings = settings
        self._session = session or _default_session()
        self._sleep = sleep or time.sleep
        graph = urlsplit(settings.graph_base_url)
        self._scopes = [f"{graph.scheme}://{graph.netloc}/.default"]
        self._application: Any = None
        self._lock = threading.Lock()

    def send(self, body: dict[str, Any]) -> None:
        url = f"{self._settings.graph_base_url}/users/{quote(self._settings.sender, safe='@')}/sendMail"
        for attempt in range(1, SEND_ATTEMPTS + 1):
            # A connection failure propagates: for an unreachable Graph the queue's retries are the back-off.
            response = self._session.post(
                url, json=body, headers={"Authorization": f"Bearer {self._token()}"}, timeout=TIMEOUT
            )
            status = response.status_code
            if 200 <= status < 300:
                return
            if status != 429 and status < 500:
                raise MailError(f"Graph refused sendMail: HTTP {status} {_graph_error_code(response)}")
            retry_after = _retry_after(response)
            wait = float(attempt) if retry_after is None else retry_after
            if attempt < SEND_ATTEMPTS and wait <= INLINE_WAIT_SECONDS:
                log.info("mail: Graph answered HTTP %d; retrying in %.1f s", status, wait)
                self._sleep(wait)
                continue
            if status == 429:
                raise Throttled(wait)
            raise MailError(f"Graph is unavailable: HTTP {status} {_graph_error_code(response)}")

    def _token(self) -> str:
        result = self._msal().acquire_token_for_client(scopes=self._scopes)
        if not result or "access_token" not in result:
            # The error code only: msal's description can quote the request.
            raise MailError(f"no Graph token: {(result or {}).get('error', 'no answer')}")
        return result["access_token"]

    def _msal(self) -> Any:
        with self._lock:
            if self._application is None:
                import msal  # imported here: only the sender needs it (cold start)

                settings = self._settings
                self._application = msal.ConfidentialClientApplication(
                    settings.client_id,
                    client_credential=_credential(settings),
                    authority=f"{settings.authority_host}/{settings.tenant_id}",
                    http_client=self._session,
                    # The authority is our own setting: no need for the public cloud's discovery
                    # endpoint to vouch for it (which it could not do for a sovereign cloud).
                    instance_discovery=False,
                )
            return self._application


def _credential(settings: MailSettings) -> str | dict[str, str]:
    if not settings.client_certificate:
        return settings.client_secret
    keys = _PEM_KEY.findall(settings.client_certificate)
    certificates = _PEM_CERTIFICATE.findall(settings.client_certificate)
    if not keys or not certificates:
        raise MailError("MAIL_CLIENT_CERTIFICATE must be PEM holding the private key and its certificate")
    # From the certificate msal computes its SHA-256 thumbprint (x5t#S256, PS256 assertions): the
    # SHA-1 `thumbprint` key is what msal deprecates.
    return {"private_key": keys[0], "public_certificate": "\n".join(certificates)}


class _Session(requests.Session):
    """requests' defaults, with a timeout on every call: msal passes none of its own to an http_client."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = TIMEOUT
        return super().request(method, url, *args, **kwargs)


def _default_session() -> requests.Session:
    session = _Session()
    # One connection per worker thread (PYTHON_THREADPOOL_THREAD_COUNT, 16 by default).
    session.mount("https://", HTTPAdapter(pool_maxsize=16))
    return session


_graph: Graph | None = None
_graph_lock = threading.Lock()


def _process_graph(settings: MailSettings) -> Graph:
    """This process's Graph client: one msal application, so one cached token, for every invocation."""
    global _graph
    with _graph_lock:
        if _graph is None:
            _graph = Graph(settings)
        return _graph


def _retry_after(response: requests.Response) -> float | None:
    """Graph's Retry-After, which it gives in seconds."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _graph_error_code(response: requests.Response) -> str:
    """Graph's error code, for the log (never its message, which may quote the recipient)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return str(error.get("code", "")) if isinstance(error, dict) else ""

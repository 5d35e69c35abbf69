"""The storage layout: every table and queue name, every key builder and key range (docs/data-model.md).

Domain modules build keys here and nowhere else, so the layout can be read (and changed) in one place.
This module imports nothing from the domain. Keys are built only from values the backend makes itself
(public ids, HMACs, hashes, provider ids made safe by `key_part`), never from raw input.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import UTC, datetime

# Tables ----------------------------------------------------------------------------------------------

MEETINGS = "Meetings"  # one partition per owner: meetings, invites, participants, activity, outbox, markers, index
INVITATIONS = "Invitations"  # the invitee index: one partition per invite id (address hash)
PROVIDER_MEETINGS = "ProviderMeetings"  # a provider meeting (as a webhook names it) -> our meeting
DELIVERIES = "WebhookDeliveries"  # raw webhook deliveries, 16 partitions by the key's first hex digit
CLOSED_ACCOUNTS = "ClosedAccounts"  # closed-account tombstones, one partition per hour of closing
PENDING = "Pending"  # the one index of pending background work: follow-ups, account closings, mail retries
EXPIRING = "Expiring"  # the index of what retention deletes, one partition per day it falls due
PARTICIPATIONS = "Participations"  # per user: the meetings of others they were added to the provider in
STATUS = "Status"  # small operational rows: the last webhook, the sweep's counts for health

# Queues ----------------------------------------------------------------------------------------------

JOBS_QUEUE = "jobs"
WEBHOOK_QUEUE = "webhook-events"
MAIL_QUEUE = "mail-outbox"
QUEUES = (JOBS_QUEUE, WEBHOOK_QUEUE, MAIL_QUEUE)
POISON_SUFFIX = "-poison"

# What retention, account closing and export walk: the tables holding rows of one meeting, and of one user.
PER_MEETING_TABLES = (MEETINGS, INVITATIONS, PROVIDER_MEETINGS, PARTICIPATIONS, PENDING, EXPIRING)
PER_USER_TABLES = (MEETINGS, INVITATIONS, PARTICIPATIONS, CLOSED_ACCOUNTS)

# Blob containers -------------------------------------------------------------------------------------

RECORDINGS_CONTAINER = "recordings"  # private: one block blob per stored recording, under its meeting's prefix


def after(prefix: str) -> str:
    """The least string above every string that starts with `prefix` (a range query's end)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def hash22(value: str) -> str:
    """base64url of the SHA-256 of `value`, 22 characters: an opaque, key-safe digest."""
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode("utf-8")).digest()).decode("ascii")[:22]


_PLAIN_KEY = re.compile(r"[A-Za-z0-9._-]{1,64}")


def key_part(value: str) -> str:
    """A provider id as part of a key: itself when plainly safe, else `~` and its hash.

    Keys may not hold `/ \\ # ?` or control characters; `|` separates key parts here.
    """
    if _PLAIN_KEY.fullmatch(value):
        return value
    digest = hashlib.sha256(value.encode("utf-8")).digest()
    return "~" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


# Meetings: PartitionKey = the owner's public id --------------------------------------------------------

OWNER_ID_LENGTH = 22
_MEETING_ID = re.compile(r"^[A-Za-z0-9_-]{38}$")


def new_meeting_id(owner_id: str) -> str:
    """The owner's partition key and 16 random characters: a GET names its partition without a lookup."""
    return owner_id + secrets.token_urlsafe(12)


def owner_partition(meeting_id: object) -> str | None:
    """The partition holding the meeting, or None for an id that cannot be one of ours."""
    if isinstance(meeting_id, str) and _MEETING_ID.match(meeting_id):
        return meeting_id[:OWNER_ID_LENGTH]
    return None


def meeting_key(meeting_id: str) -> str:
    return f"m|{meeting_id}"


def meeting_range(meeting_id: str) -> tuple[str, str]:
    """Every row of the meeting (the meeting row itself included), in one partition."""
    return meeting_key(meeting_id), meeting_key(meeting_id) + "|~"


def invite_key(meeting_id: str, invite_id: str) -> str:
    return f"m|{meeting_id}|i|{invite_id}"


def invite_range(meeting_id: str) -> tuple[str, str]:
    return f"m|{meeting_id}|i|", f"m|{meeting_id}|i|~"


def participant_key(meeting_id: str, user_id: str) -> str:
    return f"m|{meeting_id}|p|{user_id}"


def participant_range(meeting_id: str) -> tuple[str, str]:
    return f"m|{meeting_id}|p|", f"m|{meeting_id}|p|~"


def outbox_key(meeting_id: str, change: str) -> str:
    """A change invitees must hear about by email (written in the change's own batch)."""
    return f"m|{meeting_id}|o|c|{change}"


def delivered_key(meeting_id: str, invite_id: str) -> str:
    """What was last emailed to one invitee (SEQUENCE and METHOD)."""
    return f"m|{meeting_id}|o|d|{invite_id}"


# Follow-up markers: what the provider and the derived rows still owe the meeting's rows (shared.followups).
CANCELLED_MARK, ACCESS_MARK, FIELDS_MARK, MAIL_MARK = "c", "a", "x", "o"
INVITE_MARK, PARTICIPANT_MARK = "i|", "p|"
# Written by the follow-up itself before it changes live participants' presets: the kicks it still owes them.
KICK_MARK = "k|"


def marker_key(meeting_id: str, mark: str) -> str:
    return f"m|{meeting_id}|f|{mark}"


def marker_range(meeting_id: str) -> tuple[str, str]:
    return f"m|{meeting_id}|f|", f"m|{meeting_id}|f|~"


def owner_index_key(sort_key: str, meeting_id: str) -> str:
    return f"s|{sort_key}|{meeting_id}"


OWNER_INDEX_RANGE = ("s|", "s|~")


def idempotency_key(key: str) -> str:
    return f"k|{hash22(key)}"


IDEMPOTENCY_RANGE = ("k|", "k|~")
MAIL_QUOTA_KEY = "q|mail"

# Invitations: PartitionKey = invite id -----------------------------------------------------------------


def invite_id(email: str) -> str:
    """The opaque invite id: base64url of the SHA-256 of the lower-cased address, 22 characters."""
    return hash22(email.strip().lower())


def invitee_index_key(sort_key: str, meeting_id: str) -> str:
    return f"s|{sort_key}|{meeting_id}"


INVITEE_INDEX_RANGE = ("s|", "s|~")

# Participations: PartitionKey = user id, RowKey = meeting id (written by a binding or a guest's first join)


# ProviderMeetings: PartitionKey = `{provider}|{provider meeting id}`, RowKey "" -> our owner and meeting id.


def provider_meeting_partition(provider: str, provider_meeting_id: str) -> str:
    return f"{provider}|{provider_meeting_id}"


PROVIDER_MEETING_KEY = ""

# What the webhooks say, under the meeting in its owner's partition (`m|{meeting}|w|...`): so one query reads
# every row an event touches (the meeting row too) and one batch writes them, the meeting's status included.

SESSION, INTERVAL, RECORDING, ERASED, SUMMARY = "s|", "t|", "r|", "e|", "a"
SESSION_ORDER, RECORDING_ORDER = "o|", "n|"  # listing order rows: newest first, written at first sight
_NEWEST_FIRST = 10**17


def activity_key(meeting_id: str, relative: str) -> str:
    """A webhook-built row of the meeting: `relative` is one of the keys below (`s|...`, `t|...`, ...)."""
    return f"m|{meeting_id}|w|{relative}"


def activity_range(meeting_id: str, relative_prefix: str = "") -> tuple[str, str]:
    low = activity_key(meeting_id, relative_prefix)
    return low, after(low) if relative_prefix else low + "~"


def newest_first(instant_stamp: str) -> str:
    """A key part that sorts later instants first (microseconds before an epoch far ahead, fixed width)."""
    moment = datetime.strptime(instant_stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return str(_NEWEST_FIRST - int(moment.timestamp() * 1_000_000)).zfill(18)


def session_key(session_id: str) -> str:
    return SESSION + key_part(session_id)


def interval_key(session_id: str, peer_id: str) -> str:
    return f"{INTERVAL}{key_part(session_id)}|{key_part(peer_id)}"


def recording_key(recording_id: str) -> str:
    return RECORDING + key_part(recording_id)


def erased_key(custom_participant_id: str) -> str:
    """A closed account's tombstone in one meeting: later deliveries for this participant stay nameless."""
    return ERASED + key_part(custom_participant_id)


def recording_blob(meeting_id: str, recording_id: str) -> str:
    """A stored recording's blob in `RECORDINGS_CONTAINER`: a meeting's recordings share a prefix."""
    return recording_blobs(meeting_id) + key_part(recording_id)


def recording_blobs(meeting_id: str) -> str:
    return f"{meeting_id}/"


def session_order_key(first_seen: str, session_id: str) -> str:
    return f"{SESSION_ORDER}{newest_first(first_seen)}|{key_part(session_id)}"


def recording_order_key(first_seen: str, recording_id: str) -> str:
    return f"{RECORDING_ORDER}{newest_first(first_seen)}|{key_part(recording_id)}"


# WebhookDeliveries: PartitionKey = the key's first hex digit ----------------------------------------------

DELIVERY_SHARDS = "0123456789abcdef"
DELIVERY, DELIVERY_PENDING, LAST_DELIVERY = "d|", "p|", "l"


def delivery_partition(key: str) -> str:
    return key[0]


def delivery_row(key: str) -> str:
    return DELIVERY + key


def delivery_pending_row(key: str) -> str:
    return DELIVERY_PENDING + key


# ClosedAccounts ------------------------------------------------------------------------------------------

CLOSED_PARTITION_PREFIX = "closed|"


def closed_partition(hour: str) -> str:
    """Tombstones by the hour they were written (`YYYYMMDDHH`): a refresh reads only the recent hours."""
    return CLOSED_PARTITION_PREFIX + hour


# Pending: the index of background work -------------------------------------------------------------------

PENDING_PARTITION = "work"
FOLLOW_UP, CLOSE_ACCOUNT, MAIL_RETRY, RECORDING_COPY = "f|", "c|", "m|", "r|"


def pending_follow_up(meeting_id: str) -> str:
    return FOLLOW_UP + meeting_id


def pending_close(user_id: str) -> str:
    return CLOSE_ACCOUNT + user_id


def pending_mail(meeting_id: str, change: str, invite_id: str) -> str:
    return f"{MAIL_RETRY}{meeting_id}|{change}|{invite_id}"


def pending_copy(meeting_id: str, recording_id: str) -> str:
    return f"{RECORDING_COPY}{meeting_id}|{key_part(recording_id)}"


# Expiring: the retention index ----------------------------------------------------------------------------

EXPIRING_PREFIX = "x|"


def expiring_partition(day: str) -> str:
    """Entries falling due on `day` (`YYYYMMDD`): the purge reads the days up to today, nothing else."""
    return EXPIRING_PREFIX + day


def expiring_meeting(meeting_id: str) -> str:
    return "m|" + meeting_id


def expiring_delivery(key: str) -> str:
    return "d|" + key


EXPIRING_RECORDING = "r|"


def expiring_recording(meeting_id: str, recording_id: str) -> str:
    return f"{EXPIRING_RECORDING}{meeting_id}|{key_part(recording_id)}"


# Status ----------------------------------------------------------------------------------------------------

SWEEP_REPORT = ("sweep", "last")

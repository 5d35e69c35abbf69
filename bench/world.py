"""A world of meetings written straight into storage: the rows the app would have written, built by its own code.

Owners have `per_owner` meetings each, one a day, from `past_days` ago on (so with the defaults 70 % of
them are over); each meeting invites the next owner of its block by address. A past meeting has ended:
one session, the owner and the invitee joined, its two session deliveries recorded and settled, each
with its retention entry, and the meeting's own. Rows come from `shared.model` (meetings, owner-index
rows, invites, invitee-index rows), `shared.events.state` (sessions, intervals, the summary: the
applier's merge), `shared.events.deliveries` and `shared.retention` (delivery records and retention
entries), keyed by `shared.schema`, so the layout is the app's.

Left out, on purpose: provider participants (`m|...|p|`) and `Participations` (nothing measured reads
them at scale), and the provider-meeting mappings, which `mappings` writes for the meetings a bench
actually delivers to: in Azurite a point read of a table whose RowKeys are all empty walks every row
(its `findOne` starts from the RowKey index), which would make seeding 100,000 of them quadratic and
every lookup slow in a way Table Storage is not.

Blocks (`block(start, count)`) are disjoint in partitions, so a world can grow (1,000 meetings, then
99,000 more) and be measured at each size.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dev.issuer import user_object_id
from dev.provider import webhooks
from shared import retention, schema, times
from shared.access import Access, Role
from shared.auth import public_id, user_id
from shared.events import deliveries, state
from shared.followups import _indexed as indexed
from shared.model import Invite, Meeting, Schedule

PROVIDER = "dyte"


@dataclass(frozen=True)
class Settings:
    """What the rows depend on: the app's ID_HASH_KEY and tenant, retention days, and now."""

    id_hash_key: bytes
    tenant: str
    event_retention_days: int
    meeting_retention_days: int
    now: datetime


@dataclass(frozen=True)
class Owner:
    number: int
    email: str
    id: str


@dataclass(frozen=True)
class Seeded:
    """One meeting of the world, and what a bench needs to act on it."""

    meeting: Meeting
    invitee: Owner
    past: bool
    session_id: str


@dataclass
class Block:
    """Meetings `start` to `start + count - 1`: their owners, meetings and every row, by table."""

    settings: Settings
    start: int
    count: int
    per_owner: int = 10
    past_days: int = 7

    def __post_init__(self) -> None:
        if self.start % self.per_owner or self.count % self.per_owner:
            raise ValueError("a block holds whole owners")
        first = self.start // self.per_owner
        self.owners = [self.owner(first + n) for n in range(self.count // self.per_owner)]
        # Owners in partition-key order, so rows arrive in key order (Azurite's indexes grow at the end).
        self.owners.sort(key=lambda owner: owner.id)
        self._emails = {owner.id: owner.email for owner in self.owners}
        # Each meeting, its invite and its deliveries are built once, whichever table asks first.
        self._meetings: dict[int, list[Seeded]] = {}
        self._invites: dict[str, Invite] = {}
        self._payloads: dict[str, list[tuple[dict[str, Any], datetime]]] = {}

    def owner(self, number: int) -> Owner:
        email = f"scale-owner{number}@contoso.test"
        return Owner(number, email, user_id(self.settings.id_hash_key, self.settings.tenant, self._oid(email)))

    def _oid(self, email: str) -> str:
        return user_object_id(self.settings.tenant, email)

    def email_of(self, owner_id: str) -> str:
        return self._emails[owner_id]

    def participant_id(self, meeting_id: str, email: str) -> str:
        """The custom participant id the app gives a user at the provider."""
        return public_id(self.settings.id_hash_key, "participant", meeting_id, self.settings.tenant, self._oid(email))

    def meetings(self, position: int) -> Iterator[Seeded]:
        """The meetings of the owner at `position` (in key order); each invites a different next owner."""
        built = self._meetings.get(position)
        if built is None:
            owner = self.owners[position]
            built = self._meetings[position] = [
                self._meeting(owner, k, self.owners[(position + 1 + k) % len(self.owners)])
                for k in range(self.per_owner)
            ]
        yield from built

    def all(self) -> Iterator[Seeded]:
        for position in range(len(self.owners)):
            yield from self.meetings(position)

    def _meeting(self, owner: Owner, k: int, invitee: Owner) -> Seeded:
        now = self.settings.now
        day = (now - timedelta(days=self.past_days - k)).replace(hour=8 + owner.number % 9, minute=0, second=0)
        starts, ends = day.replace(microsecond=0), day.replace(microsecond=0) + timedelta(hours=1)
        meeting_id = owner.id + schema.hash22(f"meeting|{owner.number}|{k}")[:16]
        created = starts - timedelta(days=3)
        past = ends < now
        meeting = Meeting(
            id=meeting_id,
            owner_id=owner.id,
            owner_name=f"Owner {owner.number}",
            version=1,
            title=f"Sync {owner.number}-{k}",
            description="Seeded by the scale bench.",
            schedule=Schedule(starts, ends, "Europe/Berlin"),
            access=Access.INVITED,
            provider=PROVIDER,
            provider_meeting_id=str(uuid.uuid5(uuid.NAMESPACE_URL, meeting_id)),
            record_on_start=False,
            created_at=created,
            updated_at=created,
            activity="ended" if past else "",
            ended_at=ends if past else None,
            invite_count=1,
        )
        return Seeded(meeting, invitee, past, f"session-{meeting_id}")

    def invite(self, seeded: Seeded) -> Invite:
        found = self._invites.get(seeded.meeting.id)
        if found is None:
            found = self._invites[seeded.meeting.id] = self._invite(seeded)
        return found

    def _invite(self, seeded: Seeded) -> Invite:
        invitee = seeded.invitee
        meeting = seeded.meeting
        invite = Invite(
            meeting_id=meeting.id,
            partition=meeting.partition,
            id=schema.invite_id(invitee.email),
            email=invitee.email,
            role=Role.PARTICIPANT,
            status="accepted" if seeded.past else "pending",
            invited_at=meeting.created_at,
            invited_by=meeting.owner_id,
            accepted_at=meeting.schedule.starts_at if seeded.past else None,
            bound_to=invitee.id if seeded.past else "",
        )
        # What its invitee-index row says, as the follow-up that wrote it records it.
        return invite.replace(indexed=indexed(invite, meeting))

    # The provider's deliveries of a past meeting's session ------------------------------------------

    def session_payloads(self, seeded: Seeded) -> list[tuple[dict[str, Any], datetime]]:
        """(payload, when received): the session's start, both joins, and its end."""
        found = self._payloads.get(seeded.meeting.id)
        if found is None:
            found = self._payloads[seeded.meeting.id] = self._session_payloads(seeded)
        return found

    def _session_payloads(self, seeded: Seeded) -> list[tuple[dict[str, Any], datetime]]:
        meeting = seeded.meeting
        starts, ends = meeting.schedule.starts_at, meeting.schedule.ends_at
        provider_id, session = meeting.provider_meeting_id, seeded.session_id
        iso = times.format_utc
        joins = [
            webhooks.participant_joined(
                provider_id,
                session,
                custom_participant_id=self.participant_id(meeting.id, email),
                peer_id=f"peer-{n}-{meeting.id}",
                name=name,
                joined_at=iso(starts + timedelta(minutes=n)),
                started_at=iso(starts),
            )
            for n, (email, name) in enumerate(
                [(self._emails[meeting.owner_id], meeting.owner_name), (seeded.invitee.email, "Invitee")]
            )
        ]
        return [
            (webhooks.meeting_started(provider_id, session, started_at=iso(starts)), starts),
            *((join, starts + timedelta(minutes=n)) for n, join in enumerate(joins)),
            (webhooks.meeting_ended(provider_id, session, started_at=iso(starts), ended_at=iso(ends)), ends),
        ]

    # Rows, table by table -----------------------------------------------------------------------------

    def meeting_rows(self) -> Iterator[dict[str, Any]]:
        """`Meetings`, partition by partition in key order: each owner's `m|` rows, then its owner-index rows."""
        for position in range(len(self.owners)):
            rows: list[dict[str, Any]] = []
            for seeded in self.meetings(position):
                rows += [seeded.meeting.row(), seeded.meeting.owner_index_row(), self.invite(seeded).row()]
                if seeded.past:
                    rows += self._activity_rows(seeded)
            yield from sorted(rows, key=lambda row: row["RowKey"])

    def _activity_rows(self, seeded: Seeded) -> list[dict[str, Any]]:
        return applied_rows(seeded.meeting, self.session_payloads(seeded))

    def invitation_rows(self) -> list[dict[str, Any]]:
        """`Invitations`: one row per invite, in its invitee's partition (key order)."""
        rows = [self.invite(seeded).index_row(seeded.meeting) for seeded in self.all()]
        return sorted(rows, key=lambda row: (row["PartitionKey"], row["RowKey"]))

    def delivery_rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(`WebhookDeliveries` records, `Expiring` entries): the past meetings' session starts and ends,
        received, applied and settled, with the retention entries of the deliveries and of the meetings."""
        records, expiring = [], []
        settings = self.settings
        for seeded in self.all():
            if seeded.past:
                payloads = self.session_payloads(seeded)
                for payload, received in (payloads[0], payloads[-1]):
                    body = json.dumps(payload, separators=(",", ":")).encode()
                    key = deliveries.delivery_key(body)
                    record = deliveries.entities(key, body, PROVIDER, {}, received)[0]
                    settled = times.stamp(received + timedelta(seconds=1))
                    records.append(
                        {**record, "settledAt": settled, "outcome": "applied", "meetingId": seeded.meeting.id}
                    )
                    expiring.append(retention.delivery_entry(received, key, settings.event_retention_days))
                ended = seeded.meeting.schedule.ends_at
                due = ended + timedelta(days=settings.meeting_retention_days)
                expiring.append(
                    {
                        "PartitionKey": schema.expiring_partition(retention.day_of(due)),
                        "RowKey": schema.expiring_meeting(seeded.meeting.id),
                        "meetingId": seeded.meeting.id,
                    }
                )
        key_order = lambda row: (row["PartitionKey"], row["RowKey"])  # noqa: E731
        return sorted(records, key=key_order), sorted(expiring, key=key_order)

    def closed_rows(self, count: int) -> list[dict[str, Any]]:
        """`ClosedAccounts`: tombstones of accounts closed over the last 30 days, none in the last two hours."""
        now = self.settings.now
        rows = []
        for n in range(count):
            closed_at = now - timedelta(hours=3) - timedelta(minutes=(n * 7919) % (30 * 24 * 60))
            rows.append(
                {
                    "PartitionKey": schema.closed_partition(closed_at.strftime("%Y%m%d%H")),
                    "RowKey": public_id(self.settings.id_hash_key, "closed", str(self.start), str(n)),
                    "closedAt": times.stamp(closed_at),
                }
            )
        return sorted(rows, key=lambda row: (row["PartitionKey"], row["RowKey"]))


def applied_rows(meeting: Meeting, delivered: list[tuple[dict[str, Any], datetime]]) -> list[dict[str, Any]]:
    """What applying these deliveries leaves under the meeting (sessions, intervals, recordings, their order
    rows, the summary): the applier's own merge and keys, without its I/O."""
    rows: dict[str, dict[str, Any]] = {}
    summary: dict[str, Any] = {}
    for payload, received in delivered:
        event = state.parse(payload, times.stamp(received))
        if event is None:
            raise ValueError(f"not an event the applier handles: {payload.get('event')}")
        for relative, update in state.facts(event, "").items():
            if relative not in rows and relative.startswith(schema.RECORDING):
                rows[schema.recording_order_key(event.received_at, update["recordingId"])] = {"row": relative}
            elif relative not in rows and relative.startswith(schema.SESSION):
                rows[schema.session_order_key(event.received_at, event.session_id)] = {"row": relative}
            rows[relative] = state.merge(rows.get(relative, {}), update)
        if event.name in state.SESSION_EVENTS:
            summary = state.summarize(summary, event.session_id, rows[schema.session_key(event.session_id)])
    if summary:
        rows[schema.SUMMARY] = summary
    return [
        {"PartitionKey": meeting.partition, "RowKey": schema.activity_key(meeting.id, relative), **row}
        for relative, row in rows.items()
    ]


def last_delivery_rows(now: datetime) -> list[dict[str, Any]]:
    """The shards' last-delivery rows (health's `lastWebhookAt`), as the receiver's batches leave them."""
    return [
        {"PartitionKey": shard, "RowKey": schema.LAST_DELIVERY, "receivedAt": times.stamp(now - timedelta(minutes=5))}
        for shard in schema.DELIVERY_SHARDS
    ]


def mapping_row(meeting: Meeting) -> dict[str, Any]:
    return {
        "PartitionKey": schema.provider_meeting_partition(meeting.provider, meeting.provider_meeting_id),
        "RowKey": schema.PROVIDER_MEETING_KEY,
        "ownerId": meeting.owner_id,
        "meetingId": meeting.id,
    }


def now_utc() -> datetime:
    return datetime.now(UTC)

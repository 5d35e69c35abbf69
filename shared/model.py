"""The stored things, as typed values: a meeting with its schedule, an invite, a provider participant.

Each knows its row (`row()`) and is read from one (`from_row`), so no other module spells out a
property name or a stored time format. Instants are stored as `times.stamp`s.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared import schema, times
from shared.access import Access, Role

ACTIVE_INVITE = ("pending", "accepted")


def _etag(row: Any) -> str | None:
    metadata = getattr(row, "metadata", None)
    return metadata.get("etag") if metadata else None


@dataclass(frozen=True)
class Schedule:
    starts_at: datetime | None
    ends_at: datetime | None
    zone: str

    def join_window(self, early_minutes: int, grace_minutes: int) -> tuple[datetime | None, datetime | None]:
        """(opens, closes): participants join from `starts_at - early`; nobody after `ends_at + grace`."""
        opens = self.starts_at - timedelta(minutes=early_minutes) if self.starts_at else None
        closes = self.ends_at + timedelta(minutes=grace_minutes) if self.ends_at else None
        return opens, closes

    def sort_key(self, created_at: datetime) -> str:
        """The list order: scheduled meetings by start, then unscheduled ones newest first."""
        if self.starts_at is not None:
            return "0" + times.stamp(self.starts_at)
        return "1" + str(10**16 - int(created_at.timestamp() * 1000)).zfill(17)

    def is_past(self, cutoff: datetime) -> bool:
        """Whether its end (or, without one, its start) is before `cutoff`; an unscheduled meeting never is."""
        last = self.ends_at or self.starts_at
        return last is not None and last < cutoff


@dataclass(frozen=True)
class Meeting:
    id: str
    owner_id: str
    owner_name: str
    version: int
    title: str
    description: str
    schedule: Schedule
    access: Access
    provider: str
    provider_meeting_id: str
    record_on_start: bool
    created_at: datetime
    updated_at: datetime
    activity: str = ""  # "", "live" or "ended": what the webhooks say (never changes `version`)
    cancelled_at: datetime | None = None
    ended_at: datetime | None = None  # when the webhooks last said every session ended
    invite_count: int = 0
    index_key: str = ""  # the owner-index row's key as last written
    etag: str | None = None

    @property
    def partition(self) -> str:
        return self.owner_id

    @property
    def key(self) -> str:
        return schema.meeting_key(self.id)

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def status(self) -> str:
        if self.cancelled:
            return "cancelled"
        return self.activity if self.activity in ("live", "ended") else "scheduled"

    def sort_key(self) -> str:
        return self.schedule.sort_key(self.created_at)

    def owner_index_key(self) -> str:
        return schema.owner_index_key(self.sort_key(), self.id)

    def replace(self, **changes: Any) -> Meeting:
        return dataclasses.replace(self, **changes)

    def fields(self) -> dict[str, Any]:
        """The meeting's stored properties (what the index rows copy)."""
        return {
            "id": self.id,
            "ownerId": self.owner_id,
            "ownerName": self.owner_name,
            "version": self.version,
            "title": self.title,
            "description": self.description,
            "startsAt": times.stamp(self.schedule.starts_at),
            "endsAt": times.stamp(self.schedule.ends_at),
            "timeZone": self.schedule.zone,
            "access": self.access.value,
            "provider": self.provider,
            "providerMeetingId": self.provider_meeting_id,
            "recordOnStart": self.record_on_start,
            "createdAt": times.stamp(self.created_at),
            "updatedAt": times.stamp(self.updated_at),
            "activity": self.activity,
            "cancelledAt": times.stamp(self.cancelled_at),
            "endedAt": times.stamp(self.ended_at),
            "inviteCount": self.invite_count,
        }

    def row(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.partition,
            "RowKey": self.key,
            **self.fields(),
            "indexKey": self.owner_index_key(),
        }

    def owner_index_row(self) -> dict[str, Any]:
        return {"PartitionKey": self.partition, "RowKey": self.owner_index_key(), **self.fields()}

    @classmethod
    def from_row(cls, row: Any) -> Meeting:
        return cls(
            id=row["id"],
            owner_id=row["ownerId"],
            owner_name=row.get("ownerName") or "",
            version=int(row["version"]),
            title=row["title"],
            description=row.get("description") or "",
            schedule=Schedule(
                times.from_stamp(row.get("startsAt")), times.from_stamp(row.get("endsAt")), row["timeZone"]
            ),
            access=Access(row.get("access") or Access.INVITED),
            provider=row["provider"],
            provider_meeting_id=row["providerMeetingId"],
            record_on_start=bool(row.get("recordOnStart")),
            created_at=times.from_stamp(row["createdAt"]),
            updated_at=times.from_stamp(row["updatedAt"]),
            activity=row.get("activity") or "",
            cancelled_at=times.from_stamp(row.get("cancelledAt")),
            ended_at=times.from_stamp(row.get("endedAt")),
            invite_count=int(row.get("inviteCount") or 0),
            index_key=row.get("indexKey") or "",
            etag=_etag(row),
        )

    def render(self, role: Role) -> dict[str, Any]:
        """The API's Meeting (contract section 3) as `role` sees it."""
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "description": self.description,
            "status": self.status,
            "startsAt": times.format_utc(self.schedule.starts_at),
            "endsAt": times.format_utc(self.schedule.ends_at),
            "timeZone": self.schedule.zone,
            "access": self.access.value,
            "owner": {"id": self.owner_id, "name": self.owner_name},
            "myRole": role.value,
            "provider": self.provider,
            "providerMeetingId": self.provider_meeting_id,
            "createdAt": times.format_utc(self.created_at),
            "updatedAt": times.format_utc(self.updated_at),
        }

    def etag_header(self) -> str:
        return f'"{self.version}"'


@dataclass(frozen=True)
class Invite:
    meeting_id: str
    partition: str
    id: str
    email: str
    role: Role
    status: str  # pending | accepted | declined | revoked
    invited_at: datetime
    invited_by: str
    accepted_at: datetime | None = None
    bound_to: str = ""  # the identity the first join bound the invite to
    mail_sequence: int = 0  # bumped by a role change, re-invite or revocation (the email's SEQUENCE)
    indexed: str = ""  # fingerprint of the invitee-index row as last written (see followups)
    etag: str | None = None

    @property
    def key(self) -> str:
        return schema.invite_key(self.meeting_id, self.id)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_INVITE

    def replace(self, **changes: Any) -> Invite:
        return dataclasses.replace(self, **changes)

    def row(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.partition,
            "RowKey": self.key,
            "id": self.id,
            "meetingId": self.meeting_id,
            "email": self.email,
            "role": self.role.value,
            "status": self.status,
            "invitedAt": times.stamp(self.invited_at),
            "invitedBy": self.invited_by,
            "acceptedAt": times.stamp(self.accepted_at),
            "boundTo": self.bound_to,
            "indexed": self.indexed,
            # Only once there was an email to number (never with email off).
            **({"mailSequence": self.mail_sequence} if self.mail_sequence else {}),
        }

    @classmethod
    def from_row(cls, row: Any) -> Invite:
        return cls(
            meeting_id=row["meetingId"],
            partition=row["PartitionKey"],
            id=row["id"],
            email=row["email"],
            role=Role(row["role"]),
            status=row["status"],
            invited_at=times.from_stamp(row["invitedAt"]),
            invited_by=row["invitedBy"],
            accepted_at=times.from_stamp(row.get("acceptedAt")),
            bound_to=row.get("boundTo") or "",
            mail_sequence=int(row.get("mailSequence") or 0),
            indexed=row.get("indexed") or "",
            etag=_etag(row),
        )

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role.value,
            "status": self.status,
            "invitedAt": times.format_utc(self.invited_at),
            "invitedBy": self.invited_by,
            "acceptedAt": times.format_utc(self.accepted_at),
        }

    def index_row(self, meeting: Meeting) -> dict[str, Any]:
        """The invitee-index row: what the invitee's list shows, and whose identity may see it."""
        return {
            **meeting.fields(),
            "PartitionKey": self.id,
            "RowKey": schema.invitee_index_key(meeting.sort_key(), meeting.id),
            "role": self.role.value,
            "status": self.status,
            "boundTo": self.bound_to,
        }

    def index_fingerprint(self, meeting: Meeting) -> str:
        """What the index row says, in short: the invite records it once written, so repairs skip the rest."""
        row = self.index_row(meeting)
        return schema.hash22(json.dumps(row, sort_keys=True, default=str))


@dataclass(frozen=True)
class Participant:
    """The user's provider participant in one meeting (RowKey `m|{meeting}|p|{user}`), also the join claim."""

    meeting_id: str
    partition: str
    user_id: str
    custom_participant_id: str
    participant_id: str = ""  # the provider's id; "" while claimed, or after removal at the provider
    preset: str = ""
    role: str = ""  # the role it was added or last reconciled with
    token: str = ""  # cached a few seconds, for concurrent joins
    token_at: datetime | None = None
    claim_until: datetime | None = None
    uncertain: bool = False  # an add may have reached the provider: look it up before adding again
    held: bool = False  # a join holds the claim and is adding now (until it stores, releases or gives up)
    invite_ids: tuple[str, ...] = ()  # the invites addressed to the user's verified addresses at their last join
    etag: str | None = None

    @property
    def key(self) -> str:
        return schema.participant_key(self.meeting_id, self.user_id)

    def claim_expired(self, now: datetime) -> bool:
        return self.claim_until is None or self.claim_until <= now

    def adding(self, now: datetime) -> bool:
        """Whether an add of this claim may still land at the provider: until its lease ends, even once the
        join gave up on an answer (the provider may apply a request after our client stopped waiting)."""
        return not self.participant_id and not self.claim_expired(now)

    def claim_in_flight(self, now: datetime) -> bool:
        """Whether a join holds this claim and may still finish it: another join of the user waits for it. An
        uncertain claim nobody holds (its join gave up) is taken over at once."""
        return self.adding(now) and (self.held or not self.uncertain)

    def duplicates_may_land(self, now: datetime) -> bool:
        """Whether an earlier add may still land beside this participant: one added or adopted over an uncertain
        claim keeps that claim's lease, which covers the add that was given up on."""
        return bool(self.participant_id) and not self.claim_expired(now)

    def duplicates_unchecked(self) -> bool:
        """Whether that lease is still kept: no follow-up has listed the provider since it ended (one that looked
        while it ran may have come too early, and a point get of this participant would miss a second one)."""
        return bool(self.participant_id) and self.claim_until is not None

    def replace(self, **changes: Any) -> Participant:
        return dataclasses.replace(self, **changes)

    def row(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.partition,
            "RowKey": self.key,
            "meetingId": self.meeting_id,
            "userId": self.user_id,
            "customParticipantId": self.custom_participant_id,
            "participantId": self.participant_id,
            "preset": self.preset,
            "role": self.role,
            "token": self.token,
            "tokenAt": times.stamp(self.token_at),
            "claimUntil": times.stamp(self.claim_until),
            "uncertain": self.uncertain,
            "held": self.held,
            "inviteIds": ",".join(self.invite_ids),
        }

    @classmethod
    def from_row(cls, row: Any) -> Participant:
        return cls(
            meeting_id=row["meetingId"],
            partition=row["PartitionKey"],
            user_id=row["userId"],
            custom_participant_id=row["customParticipantId"],
            participant_id=row.get("participantId") or "",
            preset=row.get("preset") or "",
            role=row.get("role") or "",
            token=row.get("token") or "",
            token_at=times.from_stamp(row.get("tokenAt")),
            claim_until=times.from_stamp(row.get("claimUntil")),
            uncertain=bool(row.get("uncertain")),
            held=bool(row.get("held")),
            invite_ids=tuple(filter(None, (row.get("inviteIds") or "").split(","))),
            etag=_etag(row),
        )

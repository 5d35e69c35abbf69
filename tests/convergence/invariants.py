"""The invariant checker: our tables against the provider's state, every divergence as a readable line.

Our tables are the truth; after the faults clear and the background work has run, the provider and every
derived row must say what they say. `divergences` reads nothing itself: it is given every row of every table
(read straight from Azurite, past the fault-injecting proxies), the provider stand-in's meetings, and the
people the test knows (their identities and addresses, so that a provider participant can be traced to a
person even when our rows lost track of it).

Who may hold a place at the provider is decided here from the contract's rules, written again on purpose
and not imported from `shared/access.py`, so that the checker is not the code checking itself:

- nobody in a cancelled meeting; the provider meeting must be INACTIVE, with no live session;
- nobody whose account is closed;
- the owner, as owner;
- an invitee, with their strongest pending or accepted invite (host over participant); an invite counts for a
  person when it is addressed to one of their addresses and not bound to someone else, or bound to them;
- nobody revoked who has no such invite (an explicit revocation wins over the access);
- a guest, in a meeting whose access is `organization`, when none of the above applies: a declined invite is
  no invite, and keeps no place of its own, but keeps nobody out either (only a revocation does);
- nobody else (a declined invitee of a meeting open to invitees only, say);
- each with the preset of that role: owner and host the host preset, participant the participant preset,
  guest the guest preset (the deployment's settings name them).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.auth import public_id

# Not copied fields: the keys, the owner-index row's own key, and the invite counter (kept on the meeting row
# for the 500-invite cap; the index rows carry a copy no list ever shows, refreshed only when a row is rewritten).
_SYSTEM = {"PartitionKey", "RowKey", "Timestamp", "indexKey", "inviteCount", "commitId"}
ROLE_PRESET = {"owner": "host", "host": "host", "participant": "participant", "guest": "guest"}


@dataclass(frozen=True)
class Person:
    label: str
    tenant_id: str
    object_id: str
    name: str
    emails: tuple[str, ...]
    user_id: str

    @property
    def invite_ids(self) -> set[str]:
        return {invite_id(email) for email in self.emails}


def invite_id(email: str) -> str:
    """The contract's invite id: base64url of the SHA-256 of the lower-cased address, 22 characters."""
    return base64.urlsafe_b64encode(hashlib.sha256(email.strip().lower().encode()).digest()).decode()[:22]


def _sort_key(meeting: Mapping[str, Any]) -> str:
    """The list order of data-model.md: scheduled by start, then unscheduled newest first."""
    if meeting.get("startsAt"):
        return "0" + meeting["startsAt"]
    created = datetime.strptime(meeting["createdAt"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return "1" + str(10**16 - int(created.timestamp() * 1000)).zfill(17)


def _copied(meeting: Mapping[str, Any], index: Mapping[str, Any]) -> list[str]:
    """The meeting's own properties an index row states otherwise."""
    return sorted(name for name in meeting if name not in _SYSTEM and index.get(name) != meeting.get(name))


@dataclass(frozen=True)
class Place:
    role: str | None  # None: may not hold a place at the provider now
    reason: str


def place(person: Person, meeting: Mapping[str, Any], invites: Iterable[Mapping[str, Any]], closed: set[str]) -> Place:
    """The role `person` may hold at the provider in `meeting` now, from our tables (see the module's rules)."""
    if person.user_id in closed:
        return Place(None, "closed account")
    if meeting.get("cancelledAt"):
        return Place(None, "cancelled meeting")
    if meeting["ownerId"] == person.user_id:
        return Place("owner", "owner")
    theirs = [
        invite
        for invite in invites
        if (invite["id"] in person.invite_ids and invite.get("boundTo", "") in ("", person.user_id))
        or invite.get("boundTo") == person.user_id
    ]
    current = [invite["role"] for invite in theirs if invite["status"] in ("pending", "accepted")]
    if current:
        return Place("host" if "host" in current else "participant", "invited")
    statuses = {invite["status"] for invite in theirs}
    if "revoked" in statuses:
        return Place(None, "revoked")
    if meeting.get("access") == "organization":
        return Place("guest", "guest")
    if "declined" in statuses:
        return Place(None, "declined")
    return Place(None, "not invited, and access is invited only")


def divergences(
    tables: Mapping[str, list[Mapping[str, Any]]],
    provider: Mapping[str, Mapping[str, Mapping[str, Any]]],
    people: Iterable[Person],
    id_hash_key: bytes,
    presets: Mapping[str, Mapping[str, str]],
    views: Iterable[tuple[str, str]] = (),
) -> list[str]:
    """Every way the provider and the derived rows disagree with our tables, and every leftover of work.

    `tables`: table name (without prefix) -> rows; `provider`: mode -> the stand-in's `snapshot(mode)`;
    `presets`: provider -> {"host", "participant", "guest"} preset names; `views`: (label, text) of what
    owners are shown (GET meeting, invites, sessions), searched for closed accounts' names and addresses.
    """
    people = list(people)
    found: list[str] = []
    meetings_rows = tables.get("Meetings", [])
    meetings: dict[str, Mapping[str, Any]] = {}
    invites: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    owner_index: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    summaries: dict[str, Mapping[str, Any]] = {}  # the webhooks' summary of each meeting (its status)
    for row in meetings_rows:
        key = row["RowKey"]
        parts = key.split("|")
        if parts[0] == "m" and len(parts) == 2:
            meetings[parts[1]] = row
        elif parts[0] == "m" and len(parts) == 4 and parts[2] == "i":
            invites[parts[1]].append(row)
        elif parts[0] == "m" and len(parts) >= 3 and parts[2] == "f":
            found.append(f"follow-up marker {key} is still there after convergence")
        elif parts[0] == "m" and len(parts) >= 4 and parts[2:4] == ["o", "c"] and row.get("mailState") == "new":
            found.append(f"outbox record {key} was never expanded into messages")
        elif parts[0] == "s":
            owner_index[row.get("id", "")].append(row)
        elif parts[0] == "m" and parts[2:] == ["w", "a"]:
            summaries[parts[1]] = row
    closed = {row["RowKey"] for row in tables.get("ClosedAccounts", [])}
    by_custom = {}
    for meeting_id in meetings:
        for person in people:
            custom = public_id(id_hash_key, "participant", meeting_id, person.tenant_id, person.object_id)
            by_custom[custom] = (meeting_id, person)

    # The provider.
    named = set()
    for meeting_id, meeting in meetings.items():
        mode, pmid = meeting["provider"], meeting["providerMeetingId"]
        named.add((mode, pmid))
        held = provider.get(mode, {}).get(pmid)
        title = f"meeting {meeting_id}"
        if held is None:
            found.append(f"{title}: the provider has no meeting {pmid}")
            continue
        if meeting.get("cancelledAt"):
            if held["status"] != "INACTIVE":
                found.append(f"{title} is cancelled but ACTIVE at the provider")
            if held["live"] is not None:
                found.append(f"{title} is cancelled but has a live session at the provider")
            continue
        if held["status"] != "ACTIVE":
            found.append(f"{title} is not cancelled but INACTIVE at the provider (nobody can join it)")
        seen: dict[str, list[str]] = defaultdict(list)
        presets_now = {}
        for participant in held["participants"]:
            presets_now[participant["id"]] = participant["preset_name"]
            custom = participant["custom_participant_id"]
            seen[custom].append(participant["id"])
            owner = by_custom.get(custom)
            if owner is None or owner[0] != meeting_id:
                found.append(f"{title}: provider participant {participant['id']} is nobody we know here")
                continue
            person = owner[1]
            standing = place(person, meeting, invites[meeting_id], closed)
            if standing.role is None:
                found.append(
                    f"{title}: {person.label} has a provider participant but may not join now ({standing.reason})"
                )
                continue
            wanted = presets[mode][ROLE_PRESET[standing.role]]
            if participant["preset_name"] != wanted:
                found.append(
                    f"{title}: {person.label} ({standing.role}) has preset {participant['preset_name']!r}, "
                    f"not {wanted!r}"
                )
        for custom, ids in seen.items():
            if len(ids) > 1:
                who = by_custom[custom][1].label if custom in by_custom else custom
                found.append(f"{title}: {len(ids)} provider participants for {who}")
        # (The stand-in drops a live peer when its participant is deleted, as the providers do; a preset change
        # reaches a live peer only when it is kicked and rejoins: the `k|` kicks the follow-up owes.)
        for live, entered_with in (held["live"] or {}).items():
            if live in presets_now and presets_now[live] != entered_with:
                custom = next(p["custom_participant_id"] for p in held["participants"] if p["id"] == live)
                who = by_custom[custom][1].label if custom in by_custom else custom
                found.append(
                    f"{title}: {who}'s live peer still has the rights of {entered_with!r} "
                    f"(its preset is {presets_now[live]!r} now): a preset change not followed by a kick"
                )
    for mode, held_meetings in provider.items():
        for pmid, held in held_meetings.items():
            if (mode, pmid) not in named and held["status"] == "ACTIVE":
                found.append(f"provider meeting {pmid} ({mode}) is ACTIVE but no meeting of ours names it")

    # The meeting's status, as its webhooks' summary says it (data-model.md: live while a session is open, else
    # ended once one was seen); the follow-up copies it onto the meeting row and owes nothing after.
    for meeting_id, summary in summaries.items():
        meeting = meetings.get(meeting_id)
        if meeting is None:
            found.append(f"webhook summary of meeting {meeting_id}, which does not exist")
            continue
        wanted = ("live" if json.loads(summary.get("open") or "[]") else "ended") if summary.get("seen") else ""
        if meeting.get("activity", "") != wanted:
            found.append(f"meeting {meeting_id}: activity {meeting.get('activity', '')!r}, its webhooks say {wanted!r}")
        if summary.get("owesSince"):
            found.append(f"meeting {meeting_id}: its webhook summary still owes the follow-up")

    # The owner index.
    for meeting_id, meeting in meetings.items():
        rows = owner_index.pop(meeting_id, [])
        expected = f"s|{_sort_key(meeting)}|{meeting_id}"
        if [row["RowKey"] for row in rows] != [expected]:
            found.append(f"meeting {meeting_id}: owner-index rows {[r['RowKey'] for r in rows]}, expected [{expected}]")
        for row in rows:
            if row["PartitionKey"] != meeting["PartitionKey"]:
                found.append(f"meeting {meeting_id}: owner-index row in another partition")
            differ = _copied(meeting, row)
            if differ:
                found.append(f"meeting {meeting_id}: owner-index row disagrees on {', '.join(differ)}")
    for meeting_id, rows in owner_index.items():
        found.append(f"owner-index rows {[r['RowKey'] for r in rows]} name no meeting ({meeting_id})")

    # The invitee index.
    index: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in tables.get("Invitations", []):
        index[(row["PartitionKey"], row.get("id", ""))].append(row)
    for meeting_id, meeting in meetings.items():
        for invite in invites[meeting_id]:
            rows = index.pop((invite["id"], meeting_id), [])
            title = f"meeting {meeting_id}, invite {invite['id']} ({invite['status']})"
            if not rows:
                if invite["status"] in ("pending", "accepted"):
                    found.append(f"{title}: no invitee-index row")
                continue
            expected = f"s|{_sort_key(meeting)}|{meeting_id}"
            if [row["RowKey"] for row in rows] != [expected]:
                found.append(f"{title}: invitee-index rows {[r['RowKey'] for r in rows]}, expected [{expected}]")
            for row in rows:
                differ = _copied(meeting, row) + [
                    name for name in ("role", "status", "boundTo") if row.get(name, "") != invite.get(name, "")
                ]
                if differ:
                    found.append(f"{title}: invitee-index row disagrees on {', '.join(differ)}")
    for (invite, meeting_id), rows in index.items():
        statuses = sorted({row.get("status", "") for row in rows})
        found.append(f"invitee-index rows of invite {invite} in meeting {meeting_id} ({statuses}) have no invite")

    # Work left over.
    for row in tables.get("Pending", []):
        detail = f"attempts {row.get('attempts', 0)}, last error {row.get('lastError') or 'none'}"
        found.append(f"pending entry {row['RowKey']} is still there after convergence ({detail})")
    for row in tables.get("WebhookDeliveries", []):
        if row["RowKey"].startswith("p|"):
            found.append(f"webhook delivery {row['RowKey'][2:14]}... was recorded but never applied")

    # Closed accounts: their names and addresses are nowhere.
    for person in people:
        if person.user_id not in closed:
            continue
        needles = [email.lower() for email in person.emails] + [person.name.lower()]
        places = []
        for table, rows in tables.items():
            for row in rows:
                for name, value in row.items():
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                    if isinstance(text, str) and any(needle in text.lower() for needle in needles):
                        places.append(f"{table} {row['RowKey'][:60]} ({name})")
        for label, text in views:
            if any(needle in text.lower() for needle in needles):
                places.append(f"the owner's view: {label}")
        if places:
            shown = "; ".join(places[:10]) + (f"; and {len(places) - 10} more" if len(places) > 10 else "")
            found.append(f"closed account {person.label}'s name or address is still stored or shown: {shown}")
    return found

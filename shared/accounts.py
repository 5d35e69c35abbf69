"""Closing an account (`DELETE /api/me`), the gate every signed-in request passes, and export.

A closed account leaves a tombstone in the `ClosedAccounts` table. Each instance keeps a snapshot of
the tombstones, refreshed in the background every second, and serves a signed-in request only with
a snapshot younger than `MAX_SNAPSHOT_AGE` (refreshing first when it is older, and answering 503
when it cannot). `DELETE /api/me` commits the tombstone and answers only once that age has passed,
so when the caller sees the 204, every instance already refuses them — without a storage request
added to every operation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared import invites, jobs, joins, mail, meetings, problems, storage, times
from shared.auth import Caller, public_id
from shared.context import Context
from shared.events import deliveries
from shared.events import state as events_state
from shared.storage import Storage

log = logging.getLogger(__name__)

CLOSED_TABLE = "ClosedAccounts"
PARTITION = "closed"
REFRESH_SECONDS = 1.0
MAX_SNAPSHOT_AGE = 2.0
OVERLAP = timedelta(seconds=30)


class ClosedAccounts:
    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        background: bool = True,
    ):
        self._storage = storage
        self._clock = clock
        self._sleep = sleep
        self._closed: set[str] = set()
        self._newest: datetime | None = None
        self._taken_at: float | None = None
        self._lock = threading.Lock()
        self._background = background
        self._thread: threading.Thread | None = None

    def check(self, user_id: str) -> None:
        """Refuse a closed account; 503 when this instance cannot know."""
        self._ensure_fresh()
        if user_id in self._closed:
            raise problems.Forbidden("This account was closed.")

    def is_closed(self, user_id: str) -> bool:
        self._ensure_fresh()
        return user_id in self._closed

    def close(self, user_id: str) -> float:
        """Commit the tombstone (again, harmlessly, when already closed); the commit's time."""
        table = self._storage.table(CLOSED_TABLE)
        with contextlib.suppress(ResourceExistsError):
            table.create_entity(
                {"PartitionKey": PARTITION, "RowKey": user_id, "closedAt": times.format_utc(times.now())}
            )
        committed = self._clock()
        with self._lock:
            self._closed.add(user_id)
        return committed

    def wait_until_everywhere(self, committed: float) -> None:
        """Return once no instance can still be using a snapshot from before `committed`."""
        remaining = MAX_SNAPSHOT_AGE - (self._clock() - committed)
        if remaining > 0:
            self._sleep(remaining + 0.05)

    def _ensure_fresh(self) -> None:
        if self._background and self._thread is None:
            self._start()
        taken_at = self._taken_at
        if taken_at is None or self._clock() - taken_at > MAX_SNAPSHOT_AGE:
            try:
                self.refresh()
            except AzureError as error:
                log.warning("closed accounts: refresh failed: %s", type(error).__name__)
                raise problems.Unavailable("Storage is unavailable; retry.", retry_after=2) from None

    def refresh(self) -> None:
        """Read tombstones written since the last refresh (with an overlap: commit order is not
        visibility order), so the steady state reads almost nothing."""
        started = self._clock()
        query, parameters = "PartitionKey eq @pk", {"pk": PARTITION}
        if self._newest is not None:
            query += " and Timestamp ge @since"
            parameters["since"] = self._newest - OVERLAP
        rows = list(self._storage.table(CLOSED_TABLE).query_entities(query, parameters=parameters))
        with self._lock:
            self._closed.update(row["RowKey"] for row in rows)
            stamps = [row.metadata["timestamp"] for row in rows if row.metadata.get("timestamp")]
            if stamps:
                self._newest = max([*stamps, self._newest] if self._newest else stamps)
            # The snapshot is as old as the moment its read began.
            self._taken_at = started if self._taken_at is None else max(self._taken_at, started)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="closed-accounts", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception as error:  # keep refreshing; requests fall back to a refresh of their own
                log.warning("closed accounts: background refresh failed: %s", type(error).__name__)
            self._sleep(REFRESH_SECONDS)


# Closing ----------------------------------------------------------------------------------------

ERASED_TABLE = "ErasedParticipants"
ATTENDANCE_TABLE = "UserAttendance"
JOB_TIME_BUDGET = 20.0


def close(ctx: Context, gate: ClosedAccounts, caller: Caller) -> None:
    """`DELETE /api/me`: refuse the caller everywhere, then queue the clean-up (idempotent)."""
    committed = gate.close(caller.id)
    jobs.enqueue(
        ctx,
        jobs.Kind.CLOSE_ACCOUNT,
        {
            "userId": caller.id,
            "tenantId": caller.tenant_id,
            "objectId": caller.object_id,
            # Hashes of the addresses, not the addresses: the queue must not carry what is being erased.
            "inviteIds": invites.candidate_invite_ids(caller),
        },
    )
    gate.wait_until_everywhere(committed)


def anonymous_id(ctx: Context, user_id: str) -> str:
    """The id attendance keeps for a closed account: owners' totals stay right, the person is gone."""
    return "anon-" + public_id(ctx.settings.id_hash_key, "anonymous", user_id)[:16]


def close_job(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: cancel and anonymize what the account owned, remove its invites, anonymize its attendance.

    Every step finds only what is left to do, so the job can stop at its time budget and continue
    in a fresh message, and running it again is harmless.
    """
    deadline = time.monotonic() + JOB_TIME_BUDGET
    closed = Caller(payload["tenantId"], payload["objectId"], "", (), payload["userId"])
    for step in (_owned_meetings, _idempotency_records, _invites, _attendance):
        if not step(ctx, closed, payload, deadline):
            jobs.enqueue(ctx, jobs.Kind.CLOSE_ACCOUNT, payload)
            return
    log.info(json.dumps({"operation": "accounts.closed", "callerId": closed.id}))


def _owned_meetings(ctx: Context, closed: Caller, payload: dict[str, Any], deadline: float) -> bool:
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    index = table.query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": closed.id, "low": "s|", "high": "s|~"},
        select=["id"],
    )
    for entry in index:
        if time.monotonic() > deadline:
            return False
        for _ in storage.attempts():
            try:
                row = table.get_entity(closed.id, meetings.meeting_row_key(entry["id"]))
            except ResourceNotFoundError:
                break
            if row.get("cancelledAt") and not row.get("ownerName"):
                break
            now = times.format_utc(ctx.clock())
            changed = {**row, "ownerName": "", "cancelledAt": row.get("cancelledAt") or now, "updatedAt": now}
            if not row.get("cancelledAt"):
                changed["version"] = row["version"] + 1
            try:
                meetings.commit(ctx, row, changed)
            except meetings.Stale:
                continue
            meetings.after_cancel(ctx, row, changed)
            break
    return True


def _idempotency_records(ctx: Context, closed: Caller, payload: dict[str, Any], deadline: float) -> bool:
    """They hold the stored 201, which names the owner."""
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    for row in table.query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": closed.id, "low": "k|", "high": "k|~"},
        select=["RowKey"],
    ):
        if time.monotonic() > deadline:
            return False
        with contextlib.suppress(ResourceNotFoundError):
            table.delete_entity(closed.id, row["RowKey"])
    return True


def _invites(ctx: Context, closed: Caller, payload: dict[str, Any], deadline: float) -> bool:
    """Invites addressed to the account's addresses: gone, with their participants and mail rows."""
    index = ctx.storage.table(invites.INVITATIONS_TABLE)
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    for invite in payload["inviteIds"]:
        for entry in index.query_entities("PartitionKey eq @pk", parameters={"pk": invite}, select=["RowKey", "id"]):
            if time.monotonic() > deadline:
                return False
            meeting_id = entry["id"]
            partition = meetings.owner_partition(meeting_id)
            participant = joins.participant_for(ctx, {"PartitionKey": partition, "id": meeting_id}, closed.id)
            doomed = [
                invites.invite_row_key(meeting_id, invite),
                joins.participant_row_key(meeting_id, closed.id),
                mail.delivered_key(meeting_id, invite),
            ]
            for row_key in doomed:
                with contextlib.suppress(ResourceNotFoundError):
                    table.delete_entity(partition, row_key)
            if participant is not None and participant.get("participantId"):
                with contextlib.suppress(ResourceNotFoundError):
                    meeting = table.get_entity(partition, meetings.meeting_row_key(meeting_id))
                    joins.remove_at_provider(ctx, meeting, participant)
            index.delete_entity(invite, entry["RowKey"])
    return True


def _attendance(ctx: Context, closed: Caller, payload: dict[str, Any], deadline: float) -> bool:
    """Intervals keep their times under an anonymous id; names leave them and the raw deliveries."""
    anonymous = anonymous_id(ctx, closed.id)
    attended = ctx.storage.table(ATTENDANCE_TABLE)
    activity = ctx.storage.table(events_state.ACTIVITY_TABLE)
    for entry in attended.query_entities("PartitionKey eq @pk", parameters={"pk": closed.id}):
        if time.monotonic() > deadline:
            return False
        meeting_id = entry["RowKey"]
        custom = joins.custom_participant_id(ctx, meeting_id, closed)
        # First the tombstone: from here on, no event can write the name again.
        ctx.storage.table(ERASED_TABLE).upsert_entity({"PartitionKey": custom, "RowKey": "", "userId": anonymous})
        for row in activity.query_entities(
            "PartitionKey eq @pk and customParticipantId eq @custom", parameters={"pk": meeting_id, "custom": custom}
        ):
            activity.update_entity(
                {"PartitionKey": meeting_id, "RowKey": row["RowKey"], "userId": anonymous, "name": ""},
                mode=UpdateMode.MERGE,
            )
        deliveries.redact_participant(ctx, meeting_id, custom)
        attended.delete_entity(closed.id, meeting_id)
    return True


def erased_participant(ctx: Context, custom_participant_id: str) -> str:
    """The anonymous id of a closed account's provider participant, or "" for everyone else."""
    if not custom_participant_id or not storage.valid_key(custom_participant_id):
        return ""
    try:
        return ctx.storage.table(ERASED_TABLE).get_entity(custom_participant_id, "")["userId"]
    except ResourceNotFoundError:
        return ""


def note_attendance(ctx: Context, user_id: str, owner: str, meeting_id: str) -> None:
    """Remember that the user attended the meeting: what export and closing start from."""
    ctx.storage.table(ATTENDANCE_TABLE).upsert_entity({"PartitionKey": user_id, "RowKey": meeting_id, "ownerId": owner})


# Export -----------------------------------------------------------------------------------------


def export(ctx: Context, caller: Caller) -> dict[str, Any]:
    """`GET /api/me/export`: everything this backend stores about the caller, as one document."""
    table = ctx.storage.table(meetings.MEETINGS_TABLE)
    owned = [
        meetings.render(row, "owner")
        for row in table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            parameters={"pk": caller.id, "low": "s|", "high": "s|~"},
        )
    ]
    invited = []
    for invite in invites.candidate_invite_ids(caller):
        for entry in ctx.storage.table(invites.INVITATIONS_TABLE).query_entities(
            "PartitionKey eq @pk", parameters={"pk": invite}
        ):
            with contextlib.suppress(ResourceNotFoundError):
                row = table.get_entity(
                    meetings.owner_partition(entry["id"]), invites.invite_row_key(entry["id"], invite)
                )
                if row.get("boundTo") in ("", caller.id):
                    invited.append({"meetingId": entry["id"], "title": entry["title"], **invites.render(row)})
    attendance = []
    for entry in ctx.storage.table(ATTENDANCE_TABLE).query_entities(
        "PartitionKey eq @pk", parameters={"pk": caller.id}
    ):
        for row in ctx.storage.table(events_state.ACTIVITY_TABLE).query_entities(
            "PartitionKey eq @pk and userId eq @user", parameters={"pk": entry["RowKey"], "user": caller.id}
        ):
            attendance.append(
                {
                    "meetingId": entry["RowKey"],
                    "sessionId": row.get("sessionId"),
                    "name": row.get("name") or None,
                    "joinedAt": events_state.render_time(row.get("joinedAt")),
                    "leftAt": events_state.render_time(row.get("leftAt")),
                }
            )
    return {
        "exportedAt": times.format_utc(ctx.clock()),
        "profile": caller.profile(),
        "meetings": owned,
        "invites": invited,
        "attendance": attendance,
    }

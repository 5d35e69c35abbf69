"""The gate every signed-in request passes: closed accounts are refused everywhere (contract: `DELETE /api/me`).

A closed account leaves a tombstone in `ClosedAccounts`, in the partition of the hour it was written. Each
instance keeps a snapshot of the tombstones: all of them once at start, then, every second in the
background, only the partitions of the last hours (what can have changed), so the steady state reads a
partition or two of recent closings whatever the number of closed accounts. A signed-in request is served
only with a snapshot younger than `MAX_SNAPSHOT_AGE` (refreshing first when it is older, 503 when it
cannot). `DELETE /api/me` commits the tombstone and answers only once that age has passed, so when the
caller sees the 204, every instance already refuses them, without a storage request added to every operation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from azure.core.exceptions import AzureError, ResourceExistsError

from shared import problems, schema, times
from shared.storage import Storage

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
MAX_SNAPSHOT_AGE = 2.0
# Commit order is not visibility order, and clocks differ a little: read the previous hour too.
OVERLAP = timedelta(minutes=5)


def hour_of(instant: datetime) -> str:
    return instant.strftime("%Y%m%d%H")


def _exists(table, partition: str, row_key: str) -> bool:
    try:
        table.get_entity(partition, row_key)
    except AzureError:
        return False
    return True


class ClosedAccounts:
    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = times.now,
        background: bool = True,
    ):
        self._storage = storage
        self._clock = clock
        self._sleep = sleep
        self._now = now
        self._closed: set[str] = set()
        self._read_since: datetime | None = None  # the wall-clock start of the last refresh that succeeded
        self._taken_at: float | None = None
        self._lock = threading.Lock()
        self._background = background
        self._thread: threading.Thread | None = None

    def check(self, user_id: str) -> None:
        """Refuse a closed account (403); 503 when this instance cannot know."""
        if self.is_closed(user_id):
            raise problems.Forbidden("This account was closed.")

    def is_closed(self, user_id: str) -> bool:
        self._ensure_fresh()
        return user_id in self._closed

    def committed(self, user_id: str) -> bool:
        """Whether the account's tombstone is committed, by a read begun now: `is_closed` may answer from a
        snapshot taken just before a commit the caller knows happened (a job queued after it)."""
        self.refresh()
        return user_id in self._closed

    def close(self, user_id: str) -> float:
        """Commit the tombstone; the commit's time on this instance's clock."""
        now = self._now()
        table = self._storage.table(schema.CLOSED_ACCOUNTS)
        partition = schema.closed_partition(hour_of(now))
        try:
            table.create_entity({"PartitionKey": partition, "RowKey": user_id, "closedAt": times.stamp(now)})
        except ResourceExistsError:
            pass
        except AzureError:
            # Perhaps only the answer was lost: a committed closing answers 204, like any committed change.
            # Unknown or not committed: the error stands (503), and the pending entry's job checks again.
            if not _exists(table, partition, user_id):
                raise
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
        """All tombstones the first time, then the partitions from the hour of the last successful refresh
        (less an overlap) on: usually one or two, and never a gap, however long refreshing failed."""
        started, wall = self._clock(), self._now()
        table = self._storage.table(schema.CLOSED_ACCOUNTS)
        if self._read_since is None:
            low = schema.CLOSED_PARTITION_PREFIX
        else:
            low = schema.closed_partition(hour_of(self._read_since - OVERLAP))
        rows = table.query_entities(
            "PartitionKey ge @low and PartitionKey lt @high",
            parameters={"low": low, "high": schema.after(schema.CLOSED_PARTITION_PREFIX)},
            select=["RowKey"],
        )
        found = {row["RowKey"] for row in rows}
        with self._lock:
            self._closed.update(found)
            self._read_since = wall if self._read_since is None else max(self._read_since, wall)
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

"""Provider meetings mapped to ours: a webhook names the provider's meeting, the tables are keyed by ours.

Written once by create (before the meeting's batch), deleted by retention; cached per process, since a
mapping never changes once written (a cached mapping whose meeting was purged finds no meeting row).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError

from shared import schema

if TYPE_CHECKING:
    from shared.context import Context


def write(ctx: Context, provider: str, provider_meeting_id: str, owner_id: str, meeting_id: str) -> None:
    ctx.storage.table(schema.PROVIDER_MEETINGS).create_entity(
        {
            "PartitionKey": schema.provider_meeting_partition(provider, provider_meeting_id),
            "RowKey": schema.PROVIDER_MEETING_KEY,
            "ownerId": owner_id,
            "meetingId": meeting_id,
        }
    )


class Mappings:
    """Provider meetings mapped to ours, cached per process: a mapping never changes once written, and is
    forgotten after a few minutes, so a meeting retention deleted is not written to for longer than that."""

    def __init__(self, size: int = 10_000, keep_seconds: float = 600.0, clock: Callable[[], float] = time.monotonic):
        self._size = size
        self._keep = keep_seconds
        self._clock = clock
        self._known: OrderedDict[str, tuple[tuple[str, str], float]] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, ctx: Context, provider: str, provider_meeting_id: str) -> tuple[str, str] | None:
        """(owner id, meeting id), or None when it is not one of ours."""
        key = schema.provider_meeting_partition(provider, provider_meeting_id)
        with self._lock:
            known = self._known.get(key)
            if known is not None and self._clock() - known[1] < self._keep:
                self._known.move_to_end(key)
                return known[0]
        try:
            row = ctx.storage.table(schema.PROVIDER_MEETINGS).get_entity(key, schema.PROVIDER_MEETING_KEY)
        except ResourceNotFoundError:
            return None
        found = (row["ownerId"], row["meetingId"])
        with self._lock:
            self._known[key] = (found, self._clock())
            self._known.move_to_end(key)
            while len(self._known) > self._size:
                self._known.popitem(last=False)
        return found

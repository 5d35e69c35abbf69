"""Per-caller abuse limits (contract section 3): in memory, per instance, a sliding minute."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from shared import problems

DEFAULTS = {"create": 30, "invite": 300, "join": 60, "end": 60}
WINDOW_SECONDS = 60.0


class RateLimits:
    def __init__(self, per_minute: dict[str, int] | None = None, clock: Callable[[], float] = time.monotonic):
        self._per_minute = {**DEFAULTS, **(per_minute or {})}
        self._clock = clock
        self._events: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, action: str, caller_id: str, amount: int = 1) -> None:
        """Count `amount` uses of `action` by the caller, or raise RateLimited (nothing counted).

        `amount=0` only checks that the caller is not already at the limit.
        """
        limit = self._per_minute[action]
        now = self._clock()
        with self._lock:
            events = self._events.setdefault((action, caller_id), deque())
            while events and now - events[0] >= WINDOW_SECONDS:
                events.popleft()
            if len(events) + max(amount, 1) > limit:
                wait = WINDOW_SECONDS - (now - events[0]) if events else WINDOW_SECONDS
                raise problems.RateLimited(f"Too many {action} requests; try again later.", retry_after=wait)
            events.extend([now] * amount)
            if len(self._events) > 10_000:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        idle = [key for key, events in self._events.items() if not events or now - events[-1] >= WINDOW_SECONDS]
        for key in idle:
            del self._events[key]

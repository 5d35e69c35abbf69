"""`GET /api/health`: is this deployment able to serve, and is background work keeping up? No secrets,
no personal data: setting names, counts and one timestamp.

`degraded` when a setting is missing or malformed (the app answers 503 `misconfigured` everywhere else),
when a provider is not configured, or when work is stuck: follow-ups (reconciliations), account closings
or mails waiting more than ten minutes, deliveries recorded and not applied for ten minutes, or messages in
a poison queue. The counts come from the pending index and the queues, and are cached for a minute per
instance, so a health probe every few seconds costs almost nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from shared import pending, schema

if TYPE_CHECKING:
    from shared.context import Context

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0


class Report:
    """The stuck-work counts, computed at most once a minute per instance."""

    def __init__(self) -> None:
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def stuck(self, ctx: Context) -> dict[str, Any]:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
        counts = _stuck(ctx)
        with self._lock:
            self._cached = (time.monotonic(), counts)
        return counts


def check(ctx: Context) -> tuple[dict[str, Any], int]:
    """(report, HTTP status): 503 when tables are unreachable."""
    settings = ctx.settings
    from shared.events import deliveries  # imported here: health is its only reader outside events

    last_webhook_at = None
    try:
        last_webhook_at = deliveries.last_received(ctx)
        tables = "ok"
    except ResourceNotFoundError:
        # No delivery recorded yet (or no table yet): storage answered, so it is reachable.
        tables = "ok"
    except AzureError as error:
        log.warning("health: tables unreachable: %s", error.__class__.__name__)
        tables = "error"
    configured = (settings.dyte if settings.video_provider == "dyte" else settings.realtimekit) is not None
    checks: dict[str, Any] = {
        "tables": tables,
        "provider": "configured" if configured else "missing",
        "lastWebhookAt": last_webhook_at,
    }
    degraded = tables != "ok" or not configured
    if settings.problems:
        checks["settings"] = [problem.split(":", 1)[0] for problem in settings.problems]
        degraded = True
    if tables == "ok" and not settings.problems:
        try:
            stuck = ctx.report.stuck(ctx)
        except AzureError as error:
            log.warning("health: could not count stuck work: %s", error.__class__.__name__)
            stuck = None
        if stuck is not None and any(stuck.values()):
            checks["stuck"] = stuck
            degraded = True
    report = {"status": "degraded" if degraded else "ok", "checks": checks}
    return report, 200 if tables == "ok" else 503


def _stuck(ctx: Context) -> dict[str, int]:
    from shared.events import deliveries

    now = ctx.clock()
    counts = pending.stuck(ctx, now)
    counts["deliveries"] = deliveries.stuck_count(ctx, now)
    poisoned = 0
    for queue in schema.QUEUES:
        try:
            properties = ctx.storage.queue(queue + schema.POISON_SUFFIX).get_queue_properties()
            poisoned += properties.approximate_message_count or 0
        except ResourceNotFoundError:
            continue
    counts["poisonMessages"] = poisoned
    return counts

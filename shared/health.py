"""`GET /api/health`: is this deployment able to serve, and is background work keeping up? No secrets,
no personal data: setting names, counts and one timestamp.

`degraded` when a setting is missing or malformed (the app answers 503 `misconfigured` everywhere else),
when a provider is not configured, or when work is stuck: follow-ups (reconciliations), account closings,
mails or recording copies waiting more than ten minutes, deliveries recorded and not applied for ten
minutes, messages in a poison queue. The counts are taken by the pending sweep every minute and kept in
one status row, so a health probe costs two reads.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from shared import pending, schema, times

if TYPE_CHECKING:
    from shared.context import Context

log = logging.getLogger(__name__)


def check(ctx: Context) -> tuple[dict[str, Any], int]:
    """(report, HTTP status): 503 when tables are unreachable."""
    from shared.events import deliveries  # imported here: health is its only reader outside events

    settings = ctx.settings
    last_webhook_at, report = None, None
    try:
        last_webhook_at = deliveries.last_received(ctx)
        report = _report(ctx)
        tables = "ok"
    except ResourceNotFoundError:
        # Nothing recorded yet (or no table yet): storage answered, so it is reachable.
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
    if report is not None:
        stuck = json.loads(report["stuck"])
        if any(stuck.values()):
            checks["stuck"] = stuck
            degraded = True
    return {"status": "degraded" if degraded else "ok", "checks": checks}, 200 if tables == "ok" else 503


def _report(ctx: Context) -> Any:
    try:
        return ctx.storage.table(schema.STATUS, create=False).get_entity(*schema.SWEEP_REPORT)
    except ResourceNotFoundError:
        return None  # no sweep has run yet (a deployment's first minute)


def record(ctx: Context) -> dict[str, int]:
    """Count stuck work and keep the counts for health (the pending sweep calls this every minute)."""
    from shared.events import deliveries

    now = ctx.clock()
    counts = pending.stuck(ctx, now)
    counts["deliveries"] = deliveries.stuck_count(ctx, now)
    poisoned = 0
    for queue in schema.QUEUES:
        try:
            properties = ctx.storage.queue(queue + schema.POISON_SUFFIX, create=False).get_queue_properties()
            poisoned += properties.approximate_message_count or 0
        except ResourceNotFoundError:
            continue
    counts["poisonMessages"] = poisoned
    partition, row = schema.SWEEP_REPORT
    ctx.storage.table(schema.STATUS).upsert_entity(
        {"PartitionKey": partition, "RowKey": row, "at": times.stamp(now), "stuck": json.dumps(counts)}
    )
    return counts

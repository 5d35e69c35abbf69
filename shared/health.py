"""`GET /api/health`: is this instance able to serve? One storage read, no secrets."""

from __future__ import annotations

import logging
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from shared.settings import Settings
from shared.storage import STATUS_TABLE, Storage

log = logging.getLogger(__name__)

WEBHOOK_STATUS_KEY = ("webhooks", "last")


def check(settings: Settings, storage: Storage) -> tuple[dict[str, Any], int]:
    """(report, HTTP status): 503 when tables are unreachable."""
    last_webhook_at = None
    try:
        row = storage.table(STATUS_TABLE, create=False).get_entity(*WEBHOOK_STATUS_KEY)
        last_webhook_at = row.get("at")
        tables = "ok"
    except ResourceNotFoundError:
        # No delivery recorded yet (or no table yet): storage answered, so it is reachable.
        tables = "ok"
    except AzureError as error:
        log.warning("health: tables unreachable: %s", error.__class__.__name__)
        tables = "error"
    provider = "configured" if _provider_configured(settings) else "missing"
    status = "ok" if tables == "ok" and provider == "configured" else "degraded"
    report = {
        "status": status,
        "checks": {"tables": tables, "provider": provider, "lastWebhookAt": last_webhook_at},
    }
    return report, 200 if tables == "ok" else 503


def _provider_configured(settings: Settings) -> bool:
    return (settings.dyte if settings.video_provider == "dyte" else settings.realtimekit) is not None

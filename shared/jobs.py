"""Background jobs on the `jobs` queue: their kinds, how they are queued, and how a message is run.

Which function handles which kind is wired in `function_app.py`, beside the queue trigger, so the route
table shows every piece of background work. Every job is idempotent and keeps its own entry in the
pending index (`shared.pending`) until it is done, so a lost or poisoned message is found by the sweep.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared import schema

if TYPE_CHECKING:
    from shared.context import Context

log = logging.getLogger(__name__)


class Kind(StrEnum):
    FOLLOW_UP = "follow-up"  # a meeting's follow-ups: provider, invitee index, mail (shared.followups)
    CLOSE_ACCOUNT = "close-account"  # an account's closing (shared.accounts)
    COPY_RECORDING = "copy-recording"  # an uploaded recording into our own storage (shared.recordings)


Handler = Callable[["Context", dict[str, Any]], None]


def message(kind: Kind, payload: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind.value, "payload": payload}


def enqueue(ctx: Context, kind: Kind, payload: dict[str, Any], delay: float = 0) -> None:
    text = json.dumps(message(kind, payload), separators=(",", ":"))
    ctx.storage.queue(schema.JOBS_QUEUE).send_message(text, visibility_timeout=round(delay) or None)


def run(ctx: Context, text: str, handlers: Mapping[Kind, Handler]) -> None:
    """Run one queued job. A message this app could not have written is logged and dropped (retrying
    cannot help); a handler's failure raises, so the queue retries it and the sweep backs it up."""
    try:
        parsed = json.loads(text)
        kind, payload = Kind(parsed["kind"]), parsed["payload"]
        if not isinstance(payload, dict):
            raise TypeError("payload")
    except (ValueError, KeyError, TypeError):
        log.error(json.dumps({"operation": "jobs.run", "status": "bad-message"}))
        return
    handlers[kind](ctx, payload)
    log.info(json.dumps({"operation": "jobs.run", "kind": kind.value, "status": "done"}))

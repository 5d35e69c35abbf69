"""Background jobs on the `jobs` queue: provider clean-ups and derived-data refreshes.

A security action (cancel, revoke, account closing) commits our own state first and then calls the
provider; when the provider fails, the clean-up becomes a job here. A job whose dependency is
unavailable is put back with a growing delay, so it is retried until it succeeds; any other
failure goes through the queue's own retries to the poison queue, where an operator sees it.
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from typing import Any

from shared import problems
from shared.context import Context

log = logging.getLogger(__name__)

QUEUE = "jobs"
MAX_DELAY_SECONDS = 3600
# A dependency that may come back: the job is retried later, not failed.
UNAVAILABLE = (problems.ProviderUnavailable, problems.ProviderTimeout, problems.Unavailable)


class Kind(StrEnum):
    DEACTIVATE_MEETING = "deactivate-meeting"
    REMOVE_PARTICIPANT = "remove-participant"
    SET_PARTICIPANT_PRESET = "set-participant-preset"
    REFRESH_INVITEE_INDEX = "refresh-invitee-index"
    CLOSE_ACCOUNT = "close-account"


def _handlers() -> dict[Kind, Any]:
    from shared import accounts, invites, joins, meetings

    return {
        Kind.CLOSE_ACCOUNT: accounts.close_job,
        Kind.DEACTIVATE_MEETING: meetings.deactivate_at_provider,
        Kind.REMOVE_PARTICIPANT: joins.remove_participant_job,
        Kind.SET_PARTICIPANT_PRESET: joins.set_preset_job,
        Kind.REFRESH_INVITEE_INDEX: invites.refresh_index,
    }


def enqueue(ctx: Context, kind: Kind, payload: dict[str, Any], attempt: int = 0, delay: int = 0) -> None:
    message = json.dumps({"kind": kind.value, "payload": payload, "attempt": attempt}, separators=(",", ":"))
    ctx.storage.queue(QUEUE).send_message(message, visibility_timeout=delay or None)


def now_or_later(ctx: Context, kind: Kind, payload: dict[str, Any]) -> None:
    """Run the job once, now, without retries (the answer must not wait); queue it when its dependency fails."""
    try:
        _handlers()[kind](ctx, payload, inline=True)
    except UNAVAILABLE:
        enqueue(ctx, kind, payload)


def run(ctx: Context, text: str) -> None:
    message = json.loads(text)
    kind = Kind(message["kind"])
    payload = message["payload"]
    try:
        _handlers()[kind](ctx, payload)
    except UNAVAILABLE as problem:
        attempt = int(message.get("attempt", 0)) + 1
        delay = min(MAX_DELAY_SECONDS, 2**attempt)
        log.warning(
            json.dumps(
                {
                    "operation": "jobs.run",
                    "kind": kind.value,
                    "retryInSeconds": delay,
                    "attempt": attempt,
                    "problem": problem.slug,
                }
            )
        )
        enqueue(ctx, kind, payload, attempt, delay)
        return
    log.info(json.dumps({"operation": "jobs.run", "kind": kind.value, "status": "done"}))

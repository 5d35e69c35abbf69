"""A faithful in-memory stand-in for the Dyte v2 REST API and Cloudflare RealtimeKit, for local runs and tests.

Run it with `python -m dev.provider --port 7073`, or in-process:

    with ProviderStandIn().start(port=0) as provider:
        ... provider.url, provider.add_fault(...), provider.deliver(...) ...

Requests are checked against Dyte's own OpenAPI document and, in RealtimeKit mode, Cloudflare's own
subset (`openapi.py`); state and rules live in `model.py`, webhook keys, signing, payload builders and
the background outbox in `webhooks.py`, the local room and recording files in `room.py`, the server
and the admin API (`/__admin/...`) in `server.py`.
"""

from dev.provider.server import Fault, ProviderStandIn
from dev.provider.webhooks import meeting_ended, meeting_started, participant_joined, participant_left, recording_status

__all__ = [
    "Fault",
    "ProviderStandIn",
    "meeting_ended",
    "meeting_started",
    "participant_joined",
    "participant_left",
    "recording_status",
]

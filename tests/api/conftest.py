"""The real app over real HTTP: `function_app.py` on the dev host, in its own process.

Around it: Azurite behind counting proxies (tables and queues), the provider stand-in and the
token issuer, both in this process so tests can steer them and count what reaches them. One app
process per provider serves the whole session; tests keep out of each other's way with their own
users (fresh addresses), never by sharing state. The parts themselves live in `dev/harness.py`,
which the bench starts too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import requests

from dev.harness import App, start_app
from dev.harness import app_environment as app_environment  # tests import it from here


@pytest.fixture(scope="session", params=["dyte", "realtimekit"])
def app(request, storage, provider, issuer):
    running = start_app(storage, provider, issuer, request.param)
    _warm_up(running)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def dyte_app(storage, provider, issuer):
    running = start_app(storage, provider, issuer, "dyte")
    _warm_up(running)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def twin_apps(storage, provider, issuer):
    """Two app processes on the same storage: two instances of one deployment."""
    first = start_app(storage, provider, issuer, "dyte")
    second = start_app(storage, provider, issuer, "dyte", prefix=first.prefix)
    _warm_up(first)
    _warm_up(second)
    yield first, second
    first.stop()
    second.stop()


def _warm_up(app: App) -> None:
    """Create this process's tables and queues once, so budgets measure the steady state."""
    owner, guest = app.user("warm"), app.user("guest")
    meeting = owner.create(invitees=[{"email": guest.email, "role": "participant"}])
    assert guest.call("POST", f"/meetings/{meeting['id']}/join").status_code == 200
    owner.call("GET", "/meetings")
    guest.call("GET", "/meetings")
    assert owner.call("DELETE", f"/meetings/{meeting['id']}").status_code == 204


def problem(response: requests.Response, status: int, slug: str) -> dict[str, Any]:
    """Assert `response` is the problem `slug` with `status`, and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:meetings:problem:{slug}"
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


@dataclass
class FuzzTarget:
    app: App
    tokens: list[str]
    meeting_id: str


@pytest.fixture(scope="session")
def fuzz_target(dyte_app) -> FuzzTarget:
    """Signed-in callers, the first owning a meeting (with an invitee), for the schema fuzzer to aim at."""
    owner = dyte_app.user("fuzzer")
    meeting = owner.create(title="Fuzzed", invitees=[{"email": "fuzz-guest@contoso.test", "role": "host"}])
    others = [dyte_app.user(f"fuzzer{n}").token for n in range(7)]
    return FuzzTarget(dyte_app, [owner.token, *others], meeting["id"])


@pytest.fixture(scope="session")
def webhook_key():
    """The private half of the webhook key configured as PEM in `pem_app` (Dyte's, in that mode)."""
    from dev.provider import webhooks

    return webhooks.new_key()


@pytest.fixture(scope="session")
def pem_app(storage, provider, issuer, webhook_key):
    """An app with Dyte's webhook key configured as PEM (newlines escaped, as app settings carry them);
    RealtimeKit's key is fetched from the stand-in as usual."""
    from dev.provider import webhooks

    pem = webhooks.public_pem(webhook_key).replace("\n", "\\n")
    running = start_app(storage, provider, issuer, "dyte", WEBHOOK_PUBLIC_KEY=pem)
    yield running
    running.stop()

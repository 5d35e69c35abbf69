"""The real app over real HTTP: `function_app.py` on the dev host, in its own process.

Around it: Azurite behind counting proxies (tables and queues), the provider stand-in and the
token issuer, both in this process so tests can steer them and count what reaches them. One app
process per provider serves the whole session; tests keep out of each other's way with their own
users (fresh addresses), never by sharing state.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from dev.issuer import Issuer
from dev.provider import ProviderStandIn
from tests import support

SPA_ORIGIN = "http://localhost:5173"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_environment(storage, provider, issuer, **overrides: str) -> dict[str, str]:
    values = support.values(
        AzureWebJobsStorage=storage.connection_string,
        DYTE_API_BASE_URL=provider.dyte_base_url,
        REALTIMEKIT_API_BASE_URL=provider.realtimekit_base_url,
        WEBHOOK_PUBLIC_KEY_URL=f"{provider.url}/.well-known/webhooks.json",
        REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL=f"{provider.url}/realtimekit/.well-known/webhooks.json",
        AUTH_ISSUER=issuer.issuer_template,
        AUTH_JWKS_URI=issuer.jwks_uri,
        **overrides,
    )
    return {**os.environ, **values, "PYTHONUNBUFFERED": "1"}


@dataclass
class App:
    """One running app process and the servers it talks to."""

    url: str
    process: subprocess.Popen
    storage: Any
    provider: ProviderStandIn
    issuer: Issuer
    video_provider: str
    prefix: str

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until no background job is queued or running, so counts see only the test's own work."""
        from azure.storage.queue import QueueClient

        jobs = QueueClient.from_connection_string(self.storage.server.connection_string, f"{self.prefix}jobs")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if jobs.get_queue_properties().approximate_message_count == 0:
                    return
            except Exception:  # the queue does not exist yet: nothing is queued
                return
            time.sleep(0.05)
        raise AssertionError("background jobs did not finish")

    def token(self, email: str, **options: Any) -> str:
        options.setdefault("audience", support.CLIENT_ID)
        options.setdefault("tenant", support.TENANT)
        return self.issuer.token(email=email, **options)

    def user(self, name: str = "user", **options: Any) -> User:
        email = f"{name}-{uuid.uuid4().hex[:10]}@contoso.test"
        return User(self, email, self.token(email, name=name.title(), **options))

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, f"{self.url}/api{path}", headers=headers, timeout=30, **kwargs)

    def counts(self) -> Counts:
        return Counts(self)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@dataclass
class User:
    app: App
    email: str
    token: str

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.app.call(method, path, self.token, **kwargs)

    def create(self, **body: Any) -> dict[str, Any]:
        body.setdefault("title", "Weekly sync")
        response = self.call("POST", "/meetings", json=body)
        assert response.status_code == 201, response.text
        return response.json()


class Counts:
    """Requests that reached storage and the provider since this object was made."""

    def __init__(self, app: App):
        app.settle()
        self._app = app
        self._tables = app.storage.tables.snapshot()
        self._queues = app.storage.queues.snapshot()
        self._provider = len(app.provider.request_log())

    def tables(self) -> int:
        return sum((self._app.storage.tables.snapshot() - self._tables).values())

    def queue_puts(self) -> int:
        grown = self._app.storage.queues.snapshot() - self._queues
        return sum(count for (method, path), count in grown.items() if method == "POST" and path.endswith("/messages"))

    def storage(self) -> int:
        return self.tables() + self.queue_puts()

    def provider_calls(self) -> list[dict[str, Any]]:
        return self._app.provider.request_log()[self._provider :]


def start_app(storage, provider, issuer, video_provider: str, prefix: str | None = None, **overrides: str) -> App:
    port = free_port()
    prefix = prefix or "t" + uuid.uuid4().hex[:10]
    environment = app_environment(
        storage, provider, issuer, VIDEO_PROVIDER=video_provider, TABLE_PREFIX=prefix, **overrides
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "dev.host", "--port", str(port), "--cors", SPA_ORIGIN],
        cwd=support.ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=None,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the dev host exited with {process.returncode}")
        try:
            if requests.get(f"{url}/api/health", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the dev host did not become healthy")
        time.sleep(0.05)
    return App(url, process, storage, provider, issuer, video_provider, prefix)


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

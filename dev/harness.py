"""The real app over real HTTP, as parts the test suite and the bench both start.

Azurite behind counting proxies (tables and queues, so storage round trips are counted at the server
side), the provider stand-in and the token issuer (in the caller's process, so it can steer them and
count what reaches them), and `function_app.py` on the dev host in a process of its own (`start_app`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests

from dev import azurite as azurite_module
from dev.counting_proxy import CountingProxy
from dev.issuer import Issuer
from dev.provider import ProviderStandIn

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_VALUES: dict[str, str] = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
TENANT = EXAMPLE_VALUES["AUTH_TENANT_ID"]
CLIENT_ID = EXAMPLE_VALUES["AUTH_CLIENT_ID"]
SPA_ORIGIN = "http://localhost:5173"
# The closed-account gate reads this table in the background, once a second per app instance: that is
# not a cost of any one operation, so per-operation counts leave it out.
BACKGROUND_TABLES = ("ClosedAccounts",)


def values(**overrides: str) -> dict[str, str]:
    """Every setting of the example file, with overrides; hermetic (no local.settings.json)."""
    return {**EXAMPLE_VALUES, **overrides}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Storage:
    """Azurite reached through counting proxies for tables and queues (blob goes direct)."""

    server: azurite_module.Azurite
    tables: CountingProxy
    queues: CountingProxy

    @classmethod
    def start(cls, server: azurite_module.Azurite, proxy: type[CountingProxy] = CountingProxy) -> Storage:
        """`proxy`: the proxy class in front of each endpoint (the scale bench keeps every request's bytes)."""
        return cls(server, proxy(server.table_port).start(), proxy(server.queue_port).start())

    def stop(self) -> None:
        self.tables.stop()
        self.queues.stop()

    @property
    def connection_string(self) -> str:
        return azurite_module.connection_string(self.server.blob_port, self.queues.port, self.tables.port)

    def reset_counts(self) -> None:
        self.tables.reset()
        self.queues.reset()


def app_environment(storage: Storage, provider: ProviderStandIn, issuer: Issuer, **overrides: str) -> dict[str, str]:
    settings = values(
        AzureWebJobsStorage=storage.connection_string,
        DYTE_API_BASE_URL=provider.dyte_base_url,
        REALTIMEKIT_API_BASE_URL=provider.realtimekit_base_url,
        WEBHOOK_PUBLIC_KEY_URL=f"{provider.url}/.well-known/webhooks.json",
        REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL=f"{provider.url}/realtimekit/.well-known/webhooks.json",
        AUTH_ISSUER=issuer.issuer_template,
        AUTH_JWKS_URI=issuer.jwks_uri,
        **overrides,
    )
    return {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}


@dataclass
class App:
    """One running app process and the servers it talks to."""

    url: str
    process: subprocess.Popen
    storage: Storage
    provider: ProviderStandIn
    issuer: Issuer
    video_provider: str
    prefix: str

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until no background job is queued or running, so counts see only the caller's own work."""
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
        options.setdefault("audience", CLIENT_ID)
        options.setdefault("tenant", TENANT)
        return self.issuer.token(email=email, **options)

    def user(self, name: str = "user", **options: Any) -> User:
        email = f"{name}-{uuid.uuid4().hex[:10]}@contoso.test"
        return User(self, email, self.token(email, name=name.title(), **options))

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        session = kwargs.pop("session", None) or requests
        return session.request(method, f"{self.url}/api{path}", headers=headers, timeout=30, **kwargs)

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

    def __init__(self, app: App, settle: bool = True):
        if settle:  # the bench pauses the app's queue consumers instead, so jobs cannot be waited for
            app.settle()
        self._app = app
        self._tables = app.storage.tables.snapshot()
        self._queues = app.storage.queues.snapshot()
        self._provider = len(app.provider.request_log())

    def tables(self) -> int:
        grown = self._app.storage.tables.snapshot() - self._tables
        return sum(count for (_, path), count in grown.items() if self._ours(path))

    def _ours(self, path: str) -> bool:
        """This app's requests: its own tables (another app on the same Azurite works on its own), batches and
        table creation (which name no table in the path), never its background refresh of tombstones."""
        if any(table in path for table in BACKGROUND_TABLES):
            return False
        return f"/{self._app.prefix}" in path or path.endswith(("/$batch", "/Tables"))

    def queue_puts(self) -> int:
        grown = self._app.storage.queues.snapshot() - self._queues
        return sum(count for (method, path), count in grown.items() if method == "POST" and path.endswith("/messages"))

    def storage(self) -> int:
        return self.tables() + self.queue_puts()

    def provider_calls(self) -> list[dict[str, Any]]:
        return self._app.provider.request_log()[self._provider :]


def start_app(
    storage: Storage,
    provider: ProviderStandIn,
    issuer: Issuer,
    video_provider: str,
    prefix: str | None = None,
    stderr: IO[Any] | None = None,
    cors: str = SPA_ORIGIN,
    **overrides: str,
) -> App:
    """The dev host serving `function_app.py` on a free port, healthy; `stderr` takes its log (default: ours);
    `cors`: the SPA origin it allows."""
    port = free_port()
    prefix = prefix or "t" + uuid.uuid4().hex[:10]
    environment = app_environment(
        storage, provider, issuer, VIDEO_PROVIDER=video_provider, TABLE_PREFIX=prefix, **overrides
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "dev.host", "--port", str(port), "--cors", cors],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
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

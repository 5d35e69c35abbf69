"""Storage queues as the WebJobs extensions reach them: connection names resolved to clients (a connection
string, else an identity-based service URI), queue names resolved and checked, and sends that create a
missing queue. Shared by the queue trigger listener and the queue output binding."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from dev.host.configuration import resolve_expression
from dev.host.diagnostics import DevHostError

DEFAULT_CONNECTION = "AzureWebJobsStorage"
_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")


def queue_name(raw: str, settings: Mapping[str, str], where: str) -> str:
    # QueueTriggerAttributeBindingProvider lower-cases and validates the name.
    name = resolve_expression(raw, settings, where).lower()
    if not (3 <= len(name) <= 63 and _QUEUE_NAME.match(name)):
        raise DevHostError(f"{where}: invalid queue name {name!r}")
    return name


class Connections:
    """A queue client factory per connection name, each over its own pooled HTTP session; closed together."""

    def __init__(self, settings: Mapping[str, str], pool_size: int):
        self._settings, self._pool_size = settings, pool_size
        self._factories: dict[str, Callable[[str], Any]] = {}
        self._sessions: list[Any] = []
        self._lock = threading.Lock()

    def clients(self, connection: str) -> Callable[[str], Any]:
        """A factory of clients (queue name -> QueueClient) for the connection."""
        with self._lock:
            if connection not in self._factories:
                session = _session(self._pool_size)
                self._sessions.append(session)
                self._factories[connection] = _client_factory(connection, self._settings, session)
            return self._factories[connection]

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions, self._factories = self._sessions, [], {}
        for session in sessions:
            session.close()


def _session(pool_size: int) -> Any:
    import requests

    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _client_factory(connection: str, settings: Mapping[str, str], session: Any) -> Callable[[str], Any]:
    """Connection names resolve like WebJobs: `AzureWebJobs<name>`, then `<name>`, then identity settings."""
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.queue import LinearRetry, QueueClient

    # Short SDK retries: the listener backs off on its own, and a stop must not wait out 15 s SDK backoffs.
    options = {
        "retry_policy": LinearRetry(backoff=0.3, random_jitter_range=0.1, retry_total=2),
        "connection_timeout": 5,
    }
    connection_string = settings.get(f"AzureWebJobs{connection}") or settings.get(connection)
    if connection_string:
        return lambda queue: QueueClient.from_connection_string(
            connection_string, queue, transport=RequestsTransport(session=session, session_owner=False), **options
        )
    uri = settings.get(f"{connection}__queueServiceUri") or settings.get(f"{connection}__serviceUri")
    account = settings.get(f"{connection}__accountName")
    if not uri and account:
        uri = f"https://{account}.queue.core.windows.net"
    if not uri:
        raise DevHostError(f"connection {connection!r}: no connection string and no {connection}__accountName")
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential()
    return lambda queue: QueueClient(
        uri, queue, credential=credential, transport=RequestsTransport(session=session, session_owner=False), **options
    )


def send_creating(client: Any, text: str) -> None:
    """Send, creating the queue if it does not exist (AddMessageAndCreateIfNotExistsAsync)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        client.send_message(text)
    except ResourceNotFoundError:
        with contextlib.suppress(Exception):
            client.create_queue()
        client.send_message(text)


def error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", "") or "")

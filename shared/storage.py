"""Table and queue clients, named with TABLE_PREFIX, created once per process and reused.

Locally the storage is a connection string (Azurite); in Azure it is identity-based
(`AzureWebJobsStorage__accountName` and the app's managed identity). Each table and queue is
created the first time this process uses it, so the steady state costs no extra round trip.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient

from shared.settings import Settings

# Tables and queues of the app; names are prefixed with TABLE_PREFIX (lower-case alphanumerics).
STATUS_TABLE = "Status"
WRITE_ATTEMPTS = 16


def attempts(limit: int = WRITE_ATTEMPTS) -> Iterator[int]:
    """Optimistic-concurrency rounds: read, change, write if unchanged; on a conflict, go again.

    Sleeps a short random, growing delay between rounds so that contending writers spread out.
    """
    for attempt in range(limit):
        if attempt:
            time.sleep(random.uniform(0, min(0.3, 0.005 * 2**attempt)))  # noqa: S311 - jitter, not security
        yield attempt


class Storage:
    def __init__(self, settings: Settings, credential: Any = None):
        self._settings = settings
        self._credential = credential
        self._tables: dict[str, TableClient] = {}
        self._queues: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._table_service: TableServiceClient | None = None
        self._queue_service: Any = None

    def table_name(self, name: str) -> str:
        return f"{self._settings.table_prefix}{name}"

    def queue_name(self, name: str) -> str:
        return f"{self._settings.table_prefix}{name}"

    def table(self, name: str, create: bool = True) -> TableClient:
        """The table's client; with `create`, the table is created on this process's first use."""
        key = name if create else f"{name}?"
        client = self._tables.get(key)
        if client is None:
            with self._lock:
                client = self._tables.get(key)
                if client is None:
                    client = self._service().get_table_client(self.table_name(name))
                    if create:
                        with contextlib.suppress(ResourceExistsError):
                            client.create_table()
                    self._tables[key] = client
        return client

    def queue(self, name: str) -> Any:
        """The queue's client (base64 messages, as the Functions host expects), created on first use."""
        client = self._queues.get(name)
        if client is None:
            from azure.storage.queue import QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy

            with self._lock:
                client = self._queues.get(name)
                if client is None:
                    if self._queue_service is None:
                        self._queue_service = self._build(QueueServiceClient, "queue")
                    client = self._queue_service.get_queue_client(
                        self.queue_name(name),
                        message_encode_policy=TextBase64EncodePolicy(),
                        message_decode_policy=TextBase64DecodePolicy(),
                    )
                    with contextlib.suppress(ResourceExistsError):
                        client.create_queue()
                    self._queues[name] = client
        return client

    def _service(self) -> TableServiceClient:
        if self._table_service is None:
            self._table_service = self._build(TableServiceClient, "table")
        return self._table_service

    def _build(self, service_class: Any, kind: str) -> Any:
        # Fail fast when storage is unreachable: the caller gets a 503 rather than a long hang.
        options = {"retry_total": 2, "retry_backoff_factor": 0.2, "connection_timeout": 3, "read_timeout": 10}
        if self._settings.storage_connection_string:
            return service_class.from_connection_string(self._settings.storage_connection_string, **options)
        credential = self._credential
        if credential is None:
            # Imported here: azure.identity is heavy and only needed with identity-based storage.
            from azure.identity import DefaultAzureCredential

            credential = self._credential = DefaultAzureCredential()
        account = self._settings.storage_account_name
        return service_class(endpoint=f"https://{account}.{kind}.core.windows.net", credential=credential, **options)

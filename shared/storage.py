"""Table, queue and blob clients, named with TABLE_PREFIX, created once per process and reused.

Locally the storage is a connection string (Azurite); in Azure it is identity-based
(`AzureWebJobsStorage__accountName` and the app's managed identity). Each table and queue is
created the first time this process uses it, so the steady state costs no extra round trip.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from shared import problems
from shared.settings import Settings

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 16
T = TypeVar("T")


def attempts(limit: int = WRITE_ATTEMPTS) -> Iterator[int]:
    """Optimistic-concurrency rounds: read, change, write if unchanged; on a conflict, go again.

    Sleeps a short random, growing delay between rounds so that contending writers spread out.
    """
    for attempt in range(limit):
        if attempt:
            time.sleep(random.uniform(0, min(0.3, 0.005 * 2**attempt)))  # noqa: S311 - jitter, not security
        yield attempt


# Table Storage's limits (Azurite enforces only some of them, so they are enforced here).
MAX_ENTITY_BYTES = 1024 * 1024
MAX_CUSTOM_PROPERTIES = 252
MAX_VALUE_BYTES = 64 * 1024
MAX_KEY_CHARACTERS = 1024
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_BATCH_OPERATIONS = 100
_FORBIDDEN_KEY_CHARACTERS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def valid_key(value: str) -> bool:
    """Whether `value` may be a PartitionKey or RowKey as it is."""
    return len(value) <= MAX_KEY_CHARACTERS and not _FORBIDDEN_KEY_CHARACTERS.search(value)


def check_entity(entity: dict[str, Any]) -> None:
    """Raise PayloadTooLarge (or ValueError for a bad key) unless Table Storage would accept `entity`.

    `entity` is the JSON the SDK sends: annotations (`name@odata.type`) mark binary and 64-bit values.
    """
    size = 4
    custom = 0
    for name, value in entity.items():
        if "@odata." in name or name.startswith("odata."):
            continue
        if name in ("PartitionKey", "RowKey"):
            if not isinstance(value, str) or not valid_key(value):
                raise ValueError(f"{name} is not a valid Table Storage key")
            size += len(value) * 2
            continue
        custom += 1
        edm = entity.get(f"{name}@odata.type")
        if edm == "Edm.Binary":
            value_bytes = len(base64.b64decode(value))
        elif isinstance(value, str):
            value_bytes = len(value.encode("utf-16-le"))
        else:
            value_bytes = 8
        if value_bytes > MAX_VALUE_BYTES:
            raise problems.PayloadTooLarge(f"A stored value would exceed {MAX_VALUE_BYTES} bytes.")
        size += 8 + len(name) * 2 + value_bytes
    if custom > MAX_CUSTOM_PROPERTIES:
        raise problems.PayloadTooLarge(f"A stored entity would have more than {MAX_CUSTOM_PROPERTIES} properties.")
    if size > MAX_ENTITY_BYTES:
        raise problems.PayloadTooLarge("A stored entity would exceed 1 MiB.")


def check_request(request: Any) -> None:
    """Checks every entity write before it is sent, whatever code path built it.

    Installed as the table clients' `raw_request_hook`, which azure-core calls for each request.
    """
    http = request.http_request
    if getattr(http, "multipart_mixed_info", None):
        # A transaction: a batch holding a changeset holding the operations, each still a request
        # of its own until the transport joins them.
        operations = [
            operation
            for changeset in http.multipart_mixed_info[0]
            for operation in (changeset.multipart_mixed_info or ((),))[0]
        ]
        if len(operations) > MAX_BATCH_OPERATIONS:
            raise ValueError(f"a storage transaction may hold at most {MAX_BATCH_OPERATIONS} operations")
        bodies = [_bytes(operation.body) for operation in operations]
        if sum(len(body) for body in bodies) > MAX_BATCH_BYTES:
            raise problems.PayloadTooLarge("A storage transaction would exceed 4 MiB.")
    elif http.method in ("POST", "PUT", "PATCH", "MERGE"):
        bodies = [_bytes(http.body)]
    else:
        return
    for body in bodies:
        if body[:1] == b"{":
            entity = json.loads(body)
            if "TableName" not in entity:
                check_entity(entity)


def _bytes(body: Any) -> bytes:
    if not body:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


class Stale(Exception):
    """A row changed since it was read, or a row to create exists already: read again and redo the change."""


def retry(change: Callable[[], T], conflict: str = "The resource is changing concurrently; retry.") -> T:
    """Run a read-change-write `change` until it commits without meeting a concurrent writer.

    `change` reads, decides and commits a `Batch`; a `Stale` sends it round again after a short
    jittered wait (`attempts`). After `WRITE_ATTEMPTS` rounds the caller gets a 409.
    """
    for _ in attempts():
        try:
            return change()
        except Stale:
            continue
    raise problems.Conflict(conflict)


class CommitUnknown(AzureError):
    """A transaction was sent, its answer was lost, and reading back could not tell whether it committed."""


# The property a transaction writes on its anchor row (its first row written), with a random value of its own:
# read back after a lost answer, it says whether that transaction committed.
COMMIT_ID = "commitId"
# Sent, with no answer to tell whether it committed: a connection dropped or timed out after the request went out
# (`ServiceRequestError`, raised before anything was sent, is not among them), or an answer cut short.
_ANSWER_LOST = (ServiceResponseError, IncompleteReadError)


class Batch:
    """A unit of work: changes to one partition of one table, committed atomically, and follow-ups.

    Operations are collected, then sent as one entity-group transaction (ETag-guarded where a row was
    read first). Steps registered with `before_commit` run first, and a failure there commits nothing;
    steps registered with `after_commit` run only once the batch committed, and never undo it: their
    failures are logged, since the answer must reflect what committed. Outbox rows, index rows and
    markers are added to the batch, never written after it by hand.

    A transaction whose answer is lost (the connection dropped or timed out after it was sent, or the SDK
    sent it again after a 5xx and the second attempt was refused) may have committed: its anchor row is read
    back, and the id the transaction wrote there says which. Committed, it goes on as if answered;
    not, the failure stands; unreadable, `CommitUnknown`.
    """

    def __init__(self, table: TableClient, partition: str):
        self._table = table
        self.partition = partition
        self._operations: list[tuple] = []
        self._touches: list[tuple] = []
        self._keys: set[str] = set()
        self._before: list[Callable[[], Any]] = []
        self._after: list[Callable[[], Any]] = []

    def __len__(self) -> int:
        return len(self._operations) + len(self._touches)

    def __contains__(self, row_key: str) -> bool:
        return row_key in self._keys

    def has_prefix(self, prefix: str) -> bool:
        return any(key.startswith(prefix) for key in self._keys)

    def _add(self, operation: tuple, into: list[tuple] | None = None) -> None:
        entity = operation[1]
        if entity["PartitionKey"] != self.partition:
            raise ValueError(f"a batch for partition {self.partition!r} cannot write {entity['PartitionKey']!r}")
        if entity["RowKey"] in self._keys:
            raise ValueError(f"row {entity['RowKey']!r} is already written by this batch")
        self._keys.add(entity["RowKey"])
        (self._operations if into is None else into).append(operation)

    def create(self, entity: dict[str, Any]) -> None:
        """Insert; the batch is `Stale` if the row exists."""
        self._add(("create", entity))

    def upsert(self, entity: dict[str, Any], merge: bool = False) -> None:
        """Write whatever is there (REPLACE, or MERGE the given properties)."""
        self._add(("upsert", entity, {"mode": UpdateMode.MERGE if merge else UpdateMode.REPLACE}))

    def update(self, entity: dict[str, Any], etag: str | None, merge: bool = False) -> None:
        """Overwrite (or merge into) a row read earlier, only if it is unchanged since (`etag`)."""
        self._add(("update", entity, _guarded(UpdateMode.MERGE if merge else UpdateMode.REPLACE, etag)))

    def touch(self, entity: dict[str, Any], etag: str | None) -> None:
        """Merge `entity` into a row read earlier only so that its ETag changes: a writer guarding on that ETag
        (a join in flight) then reads again and sees this change.

        In the transaction, guarded by `etag`, as far as the operation limit leaves room; the touches beyond it
        are written right after the commit, unguarded, before any after-commit step runs, so that nothing that
        follows the change sees those rows as they were. If that write fails, the after-commit steps are left
        to the pending work they announced (a follow-up then runs from the sweep, after any join in flight).
        """
        self._add(("update", entity, _guarded(UpdateMode.MERGE, etag)), into=self._touches)

    def delete(self, row_key: str, etag: str | None = None) -> None:
        """Delete a row; with `etag`, only if unchanged since read (a missing row makes the batch `Stale`)."""
        options: dict[str, Any] = {}
        if etag is not None:
            options = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        self._add(("delete", {"PartitionKey": self.partition, "RowKey": row_key}, options))

    def before_commit(self, step: Callable[[], Any]) -> None:
        self._before.append(step)

    def after_commit(self, step: Callable[[], Any]) -> None:
        self._after.append(step)

    def commit(self) -> list[dict[str, Any]]:
        """Send the batch; the rows' new metadata (ETags) in operation order. `Stale` on a conflict.

        After a lost answer read back as committed, only the anchor row's metadata is known (the first row
        written); the others' are empty.
        """
        for step in self._before:
            step()
        room = max(MAX_BATCH_OPERATIONS - len(self._operations), 0)
        operations = self._operations + self._touches[:room]
        results = self._submit(operations) if operations else []
        if not self._spill(self._touches[room:]):
            return results
        for step in self._after:
            try:
                step()
            except Exception as error:  # committed: a follow-up's failure is left to the sweep, not the answer
                log.warning("a follow-up after commit failed: %s", type(error).__name__)
        return results

    def _submit(self, operations: list[tuple]) -> list[dict[str, Any]]:
        anchor = next((n for n, operation in enumerate(operations) if operation[0] != "delete"), None)
        commit_id = secrets.token_urlsafe(12)
        if anchor is not None:
            kind, entity, *options = operations[anchor]
            operations = [*operations]
            operations[anchor] = (kind, {**entity, COMMIT_ID: commit_id}, *options)
        answers: list[int] = []
        try:
            return list(
                self._table.submit_transaction(
                    operations, raw_response_hook=lambda response: answers.append(response.http_response.status_code)
                )
            )
        except TableTransactionError as error:
            if error.status_code not in (404, 409, 412):
                raise
            # Refused; but when the SDK sent it again (it resends a POST answered 500, 503 or 504), the refusal
            # may be of our own first attempt, which committed before a gateway lost its answer.
            row = self._committed(operations, anchor, commit_id, error) if len(answers) > 1 else None
            if row is None:
                raise Stale(error.error_code or error.status_code) from None
            return self._recovered(operations, anchor, row)
        except _ANSWER_LOST as error:
            row = self._committed(operations, anchor, commit_id, error)
            if row is None:
                raise
            return self._recovered(operations, anchor, row)

    def _committed(self, operations: list[tuple], anchor: int | None, commit_id: str, error: Exception) -> Any:
        """The anchor row when it carries this transaction's id (it committed), else None."""
        if anchor is None:
            raise CommitUnknown("a transaction of deletions lost its answer") from error
        entity = operations[anchor][1]
        try:
            row = self._table.get_entity(entity["PartitionKey"], entity["RowKey"])
        except ResourceNotFoundError:
            return None
        except AzureError as reading:
            raise CommitUnknown("a transaction lost its answer, and reading it back failed") from reading
        return row if row.get(COMMIT_ID) == commit_id else None

    def _recovered(self, operations: list[tuple], anchor: int | None, row: Any) -> list[dict[str, Any]]:
        log.warning("storage: a transaction committed though its answer was lost")
        return [dict(row.metadata) if n == anchor else {} for n in range(len(operations))]

    def _spill(self, touches: list[tuple]) -> bool:
        """Write the touches the transaction had no room for (see `touch`); False if that failed."""
        try:
            for start in range(0, len(touches), MAX_BATCH_OPERATIONS):
                batch = Batch(self._table, self.partition)
                for _, entity, _ in touches[start : start + MAX_BATCH_OPERATIONS]:
                    batch.update(entity, None, merge=True)
                batch.commit()
        except Exception as error:  # committed: the sweep runs the follow-ups once any join in flight is done
            log.warning("storage: touches after a commit failed, follow-ups left: %s", type(error).__name__)
            return False
        return True


def _guarded(mode: UpdateMode, etag: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"mode": mode}
    if etag is not None:
        options.update(etag=etag, match_condition=MatchConditions.IfNotModified)
    return options


class Storage:
    def __init__(self, settings: Settings, credential: Any = None):
        self._settings = settings
        self._credential = credential
        self._tables: dict[str, TableClient] = {}
        self._queues: dict[str, Any] = {}
        self._containers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._table_service: TableServiceClient | None = None
        self._queue_service: Any = None
        self._blob_service: Any = None

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

    def batch(self, table: str, partition: str) -> Batch:
        return Batch(self.table(table), partition)

    def queue(self, name: str, create: bool = True) -> Any:
        """The queue's client (base64 messages, as the Functions host expects); with `create`, the queue is
        created on this process's first use."""
        key = name if create else f"{name}?"
        client = self._queues.get(key)
        if client is None:
            from azure.storage.queue import QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy

            with self._lock:
                client = self._queues.get(key)
                if client is None:
                    if self._queue_service is None:
                        self._queue_service = self._build(QueueServiceClient, "queue")
                    client = self._queue_service.get_queue_client(
                        self.queue_name(name),
                        message_encode_policy=TextBase64EncodePolicy(),
                        message_decode_policy=TextBase64DecodePolicy(),
                    )
                    if create:
                        with contextlib.suppress(ResourceExistsError):
                            client.create_queue()
                    self._queues[key] = client
        return client

    def container_name(self, name: str) -> str:
        return f"{self._settings.table_prefix}{name}"

    def container(self, name: str) -> Any:
        """The blob container's client (private: no public access), created on this process's first use."""
        client = self._containers.get(name)
        if client is None:
            with self._lock:
                client = self._containers.get(name)
                if client is None:
                    client = self.blob_service().get_container_client(self.container_name(name))
                    try:
                        client.create_container()
                    except ResourceExistsError:
                        pass
                    except HttpResponseError as error:
                        # An identity granted the container alone may not create it: the infrastructure did.
                        if error.status_code != 403:
                            raise
                    self._containers[name] = client
        return client

    def blob_service(self) -> Any:
        if self._blob_service is None:
            from azure.storage.blob import BlobServiceClient  # imported here: only recordings need it

            self._blob_service = self._build(BlobServiceClient, "blob")
        return self._blob_service

    def _service(self) -> TableServiceClient:
        if self._table_service is None:
            self._table_service = self._build(TableServiceClient, "table")
        return self._table_service

    def _build(self, service_class: Any, kind: str) -> Any:
        # Fail fast when storage is unreachable: the caller gets a 503 rather than a long hang.
        options: dict[str, Any] = {
            "retry_total": 2,
            "retry_backoff_factor": 0.2,
            "connection_timeout": 3,
            "read_timeout": 10,
            **({"raw_request_hook": check_request} if kind == "table" else {}),
        }
        if kind == "queue":
            # azure-storage-queue ignores retry_backoff_factor: its default waits 15 s before retrying.
            from azure.storage.queue import LinearRetry

            options["retry_policy"] = LinearRetry(backoff=0.2, random_jitter_range=0.1, retry_total=2)
        elif kind == "blob":
            from azure.storage.blob import LinearRetry  # the same default as the queue's

            options["retry_policy"] = LinearRetry(backoff=0.5, random_jitter_range=0.2, retry_total=2)
        if self._settings.storage_connection_string:
            return service_class.from_connection_string(self._settings.storage_connection_string, **options)
        # Positional: the table client calls it `endpoint`, the queue and blob clients `account_url`.
        return service_class(self.endpoint(kind), credential=self.credential(), **options)

    def endpoint(self, kind: str) -> str:
        """The service's URL: from `AzureWebJobsStorage__{kind}ServiceUri` (any cloud), else the public cloud's."""
        configured = self._settings.storage_service_uris.get(kind)
        if configured:
            return configured
        return f"https://{self._settings.storage_account_name}.{kind}.core.windows.net"

    def credential(self) -> Any:
        if self._credential is None:
            # Imported here: azure.identity is heavy and only needed with identity-based storage.
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        return self._credential

"""What background work, webhook applying and pages cost, counted at the storage server.

The domain code runs in the test's process on a `Context` whose storage goes through a `Ledger` (the counting
proxy of `dev/` that also keeps each request), in front of the session's Azurite. Besides requests, a test can
ask what the requests read: the rows their filters' keys bound, counted in Azurite (`bench/ledger.py`), which
is what Table Storage reads for them, whatever Azurite does. Unrelated rows are seeded straight into storage by
`bench/world.py` (the app's own row builders), through no proxy.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from azure.data.tables import TableClient

from bench import world
from bench.bulk import Writer
from bench.ledger import Ledger, Reader, Window
from bench.workload import run_jobs, take_deliveries
from dev import azurite as azurite_module
from dev.provider import webhooks
from shared import schema
from shared.context import Context
from shared.events import apply, deliveries, signing
from shared.provider import ProviderClient
from shared.storage import Storage as AppStorage
from tests import support


@pytest.fixture(scope="session")
def ledgers(azurite):
    """Ledger proxies for tables and queues, for this directory's tests alone."""
    tables, queues = Ledger(azurite.table_port).start(), Ledger(azurite.queue_port).start()
    yield tables, queues
    tables.stop()
    queues.stop()


@pytest.fixture(scope="session")
def webhook_key():
    return webhooks.new_key()


@dataclass(frozen=True)
class Cost:
    requests: int  # table requests and queue puts
    table_requests: int
    queue_puts: int
    bytes: int
    entities: int
    rows_in_bounds: int  # what the keys of the filters bound
    rows_in_partition: int  # the same, with an `or` over RowKey values read as a scan of its partition
    tables: Window
    result: Any  # what the action returned


@dataclass
class Costs:
    """The domain code on a ledgered context, and ways to seed and to measure."""

    ctx: Context
    tables: Ledger
    queues: Ledger
    reader: Reader
    writer: Writer
    server: azurite_module.Azurite
    keys: signing.SigningKeys
    webhook_key: Any

    def name(self, table: str) -> str:
        return self.ctx.storage.table_name(table)

    def measure(self, action: Callable[[], Any]) -> Cost:
        table_mark, queue_mark = self.tables.mark(), self.queues.mark()
        result = action()
        tables, queues = self.tables.since(table_mark), self.queues.since(queue_mark)
        puts = [request for request in queues.requests if request.method == "POST"]
        self.reader.forget()
        read = self.reader.read(tables)
        return Cost(
            len(tables) + len(puts),
            len(tables),
            len(puts),
            tables.bytes + sum(request.bytes for request in puts),
            tables.entities,
            read["rowsInBounds"],
            read["rowsInPartition"],
            tables,
            result,
        )

    def world(self, now: datetime | None = None) -> world.Settings:
        settings = self.ctx.settings
        return world.Settings(
            settings.id_hash_key,
            support.TENANT,
            settings.event_retention_days,
            settings.meeting_retention_days,
            now or datetime.now(UTC),
        )

    def seed(self, block: world.Block, closed: int = 0) -> int:
        """Every row of `block` (and `closed` old tombstones), straight into storage; how many rows."""
        before = self.writer.rows
        self.writer.insert_all(self.name(schema.MEETINGS), block.meeting_rows())
        self.writer.insert_all(self.name(schema.INVITATIONS), block.invitation_rows())
        records, expiring = block.delivery_rows()
        self.writer.insert_all(self.name(schema.DELIVERIES), records)
        self.writer.insert_all(self.name(schema.EXPIRING), expiring)
        if closed:
            self.writer.insert_all(self.name(schema.CLOSED_ACCOUNTS), block.closed_rows(closed))
        self.reader.forget()
        return self.writer.rows - before

    def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        self.writer.insert_all(self.name(table), sorted(rows, key=lambda row: (row["PartitionKey"], row["RowKey"])))
        self.reader.forget()

    def direct(self, table: str) -> TableClient:
        return TableClient.from_connection_string(self.server.connection_string, self.name(table))

    def deliver(self, payload: dict[str, Any]) -> str:
        """The receiver, here: the message it queued for the applier."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"dyte-signature": webhooks.sign(self.webhook_key, body), "dyte-uuid": str(uuid.uuid4())}
        key = deliveries.receive(self.ctx, self.keys, body, headers)["id"]
        return take_deliveries(self.server.connection_string, self.ctx.storage.queue_name(schema.WEBHOOK_QUEUE))[key]

    def apply(self, message: str) -> Cost:
        """Apply one queued delivery (measured), then run the jobs it queued, as the jobs queue would."""
        cost = self.measure(lambda: apply.run(self.ctx, message))
        run_jobs(self.ctx, self.server.connection_string)
        return cost


@pytest.fixture
def costs(azurite, ledgers, provider, prefix, webhook_key) -> Costs:
    tables, queues = ledgers
    connection = azurite_module.connection_string(azurite.blob_port, queues.port, tables.port)
    settings = support.load(
        AzureWebJobsStorage=connection,
        TABLE_PREFIX=prefix,
        DYTE_API_BASE_URL=provider.dyte_base_url,
        WEBHOOK_PUBLIC_KEY=webhooks.public_pem(webhook_key),
        REALTIMEKIT_WEBHOOK_PUBLIC_KEY_URL=f"{provider.url}/realtimekit/.well-known/webhooks.json",
    )
    client = ProviderClient.for_dyte(provider.dyte_credentials(), requests.Session())
    ctx = Context(settings, AppStorage(settings), {"dyte": client})
    for table in (*schema.PER_MEETING_TABLES, schema.DELIVERIES, schema.CLOSED_ACCOUNTS):
        ctx.storage.table(table)  # created before anything is measured
    for queue in schema.QUEUES:
        ctx.storage.queue(queue)
    return Costs(
        ctx,
        tables,
        queues,
        Reader(azurite.connection_string),
        Writer(azurite.table_port, threads=1),
        azurite,
        signing.SigningKeys.from_settings(settings),
        webhook_key,
    )

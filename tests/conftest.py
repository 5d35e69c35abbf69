"""Session-wide real parts: Azurite on free ports behind counting proxies.

Every test that touches storage isolates itself with its own `TABLE_PREFIX` (fixture `prefix`),
so one Azurite serves the whole session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from dev import azurite as azurite_module
from dev.counting_proxy import CountingProxy
from dev.issuer import Issuer
from dev.provider import ProviderStandIn


@dataclass
class Storage:
    """Azurite reached through counting proxies for tables and queues (blob goes direct)."""

    server: azurite_module.Azurite
    tables: CountingProxy
    queues: CountingProxy

    @property
    def connection_string(self) -> str:
        return azurite_module.connection_string(self.server.blob_port, self.queues.port, self.tables.port)

    def reset_counts(self) -> None:
        self.tables.reset()
        self.queues.reset()


@pytest.fixture(scope="session")
def azurite():
    with azurite_module.Azurite() as server:
        yield server


@pytest.fixture(scope="session")
def storage(azurite) -> Storage:
    tables = CountingProxy(azurite.table_port).start()
    queues = CountingProxy(azurite.queue_port).start()
    yield Storage(azurite, tables, queues)
    tables.stop()
    queues.stop()


@pytest.fixture
def prefix() -> str:
    """A TABLE_PREFIX unique to the test: tables and queues of other tests stay out of its way."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def provider():
    """The provider stand-in (Dyte and RealtimeKit), in this process."""
    with ProviderStandIn().start() as running:
        yield running


@pytest.fixture(scope="session")
def issuer():
    """The token issuer (OIDC metadata and JWKS over HTTP), in this process."""
    with Issuer().start() as running:
        yield running

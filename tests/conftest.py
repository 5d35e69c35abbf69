"""Session-wide real parts: Azurite on free ports behind counting proxies.

Every test that touches storage isolates itself with its own `TABLE_PREFIX` (fixture `prefix`),
so one Azurite serves the whole session.
"""

from __future__ import annotations

import uuid

import pytest

from dev import azurite as azurite_module
from dev.harness import Storage
from dev.issuer import Issuer
from dev.provider import ProviderStandIn


@pytest.fixture(scope="session")
def azurite():
    with azurite_module.Azurite() as server:
        yield server


@pytest.fixture(scope="session")
def storage(azurite) -> Storage:
    running = Storage.start(azurite)
    yield running
    running.stop()


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

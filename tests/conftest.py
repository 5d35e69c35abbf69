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


class Clock:
    """An injected clock for domain code: `ctx.clock.now` is whatever the test says."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def domain_context(storage, provider, prefix):
    """Build a `shared.context.Context` on Azurite and the Dyte stand-in, with settings overrides."""
    import requests

    from shared.context import Context
    from shared.provider import ProviderClient
    from shared.storage import Storage as AppStorage
    from tests import support

    def build(now, **overrides):
        settings = support.load(
            AzureWebJobsStorage=storage.connection_string,
            TABLE_PREFIX=prefix,
            DYTE_API_BASE_URL=provider.dyte_base_url,
            **overrides,
        )
        client = ProviderClient.for_dyte(provider.dyte_credentials(), requests.Session())
        return Context(settings, AppStorage(settings), {"dyte": client}, clock=Clock(now))

    return build

"""Fixtures for the hostile review: the same real app processes as `tests/api/` (imported, not copied)."""

import pytest

from tests.api.conftest import dyte_app, twin_apps  # noqa: F401 - fixtures, used by name
from tests.hostile.tools import lossy_app


@pytest.fixture(scope="module")
def lossy(storage, provider, issuer):
    """An app whose storage answers can be lost after the request took effect (`proxy.lose`)."""
    app, proxy = lossy_app(storage, provider, issuer)
    yield app, proxy
    app.stop()
    proxy.stop()

"""Fixtures for the hostile review: the same real app processes as `tests/api/` (imported, not copied)."""

from tests.api.conftest import dyte_app, twin_apps  # noqa: F401 - fixtures, used by name

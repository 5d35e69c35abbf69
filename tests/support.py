"""Shared test helpers: settings values built from the example file, so tests track it."""

from __future__ import annotations

from dev.harness import CLIENT_ID, EXAMPLE_VALUES, ROOT, TENANT, values
from shared import settings

__all__ = ["CLIENT_ID", "EXAMPLE_VALUES", "NO_FILE", "ROOT", "TENANT", "load", "values"]

NO_FILE = ROOT / "tests" / "no-such-local.settings.json"


def load(**overrides: str) -> settings.Settings:
    return settings.load(environ=values(**overrides), local_settings=NO_FILE)

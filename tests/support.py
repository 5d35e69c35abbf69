"""Shared test helpers: settings values built from the example file, so tests track it."""

from __future__ import annotations

import json
from pathlib import Path

from shared import settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_VALUES: dict[str, str] = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
NO_FILE = ROOT / "tests" / "no-such-local.settings.json"

TENANT = EXAMPLE_VALUES["AUTH_TENANT_ID"]
CLIENT_ID = EXAMPLE_VALUES["AUTH_CLIENT_ID"]


def values(**overrides: str) -> dict[str, str]:
    """Every setting of the example file, with overrides; hermetic (no local.settings.json)."""
    return {**EXAMPLE_VALUES, **overrides}


def load(**overrides: str) -> settings.Settings:
    return settings.load(environ=values(**overrides), local_settings=NO_FILE)

"""Serves `openapi.yaml` (repo root, deployed with the app), read once per process."""

from __future__ import annotations

import functools
from pathlib import Path

import azure.functions as func

DOCUMENT = Path(__file__).resolve().parent.parent / "openapi.yaml"


@functools.cache
def _document() -> bytes:
    return DOCUMENT.read_bytes()


def response() -> func.HttpResponse:
    return func.HttpResponse(
        _document(),
        status_code=200,
        mimetype="application/yaml",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )

"""A Functions project on disk, read as Core Tools reads it: `local.settings.json` (Values into the
environment, the Host section), `host.json` (HTTP, queues, logging) and the FunctionApp of `function_app.py`."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import azure.functions as func

from dev.host.configuration import DEFAULT_ROUTE_PREFIX, QueueOptions, ci_get, truthy
from dev.host.diagnostics import DevHostError


def read(root: Path, settings_override: Mapping[str, str] | None = None) -> tuple[dict[str, Any], int | None]:
    """DevHost options from the project's files, and its `Host.LocalHttpPort` if set.

    Merges `local.settings.json` `Values` into os.environ: the process environment wins over them (as app
    settings do in Azure); `settings_override` wins over both.
    """
    local = read_json(root / "local.settings.json")
    host_json = read_json(root / "host.json")
    for name, value in (local.get("Values") or {}).items():
        os.environ.setdefault(name, _setting_text(value))
    for name, value in (settings_override or {}).items():
        os.environ[name] = value
    local_host = local.get("Host") or {}
    extensions = host_json.get("extensions") or {}
    http = ci_get(extensions, "http") or {}
    prefix = ci_get(http, "routePrefix")
    options = {
        "route_prefix": DEFAULT_ROUTE_PREFIX if prefix is None else str(prefix),
        "custom_headers": ci_get(http, "customHeaders") or {},
        "queues": QueueOptions.from_host_json(ci_get(extensions, "queues")),
        "cors_origins": [o for o in str(ci_get(local_host, "CORS") or "").split(",") if o],
        "cors_credentials": truthy(ci_get(local_host, "CORSCredentials", False)),
        "function_directory": root,
    }
    port = ci_get(local_host, "LocalHttpPort")
    return options, int(port) if port else None


def import_app(root: Path) -> func.FunctionApp:
    """`function_app` imported afresh from `root`; errors of the app's own import propagate."""
    if str(root) in sys.path:
        sys.path.remove(str(root))
    sys.path.insert(0, str(root))
    sys.modules.pop("function_app", None)
    module = importlib.import_module("function_app")
    app = getattr(module, "app", None)
    if not isinstance(app, func.FunctionApp):
        app = next((v for v in vars(module).values() if isinstance(v, func.FunctionApp)), None)
    if app is None:
        raise DevHostError(f"{root / 'function_app.py'} defines no func.FunctionApp")
    return app


def log_level(root: Path) -> int | None:
    """host.json `logging.logLevel` (Function, else default) as a `logging` level; None for `None`."""
    levels = (read_json(root / "host.json").get("logging") or {}).get("logLevel") or {}
    text = str(ci_get(levels, "Function") or ci_get(levels, "default") or "Information").lower()
    return {
        "trace": logging.DEBUG,
        "debug": logging.DEBUG,
        "information": logging.INFO,
        "warning": logging.WARNING,
        "error": logging.ERROR,
        "critical": logging.CRITICAL,
        "none": None,
    }.get(text, logging.INFO)


def read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise DevHostError(f"{path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)

"""A deployment with a missing or malformed setting still indexes every function, answers 503
`misconfigured` naming the setting on every route but health and the OpenAPI document, and health
says so (before, the settings error was raised at import: the worker indexed no function at all, so
the portal showed nothing and every URL was a 404)."""

from __future__ import annotations

import ast

import pytest
import requests

from dev.harness import ROOT, start_app
from tests.api.conftest import problem


def routes() -> list[tuple[str, str]]:
    """(method, route) of every HTTP function in function_app.py, read from its decorators."""
    found = []
    tree = ast.parse((ROOT / "function_app.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "route":
                    keywords = {k.arg: k.value for k in decorator.keywords}
                    route = keywords["route"].value
                    for method in keywords["methods"].elts:
                        found.append((method.value, route))
    return found


def background_functions() -> list[str]:
    tree = ast.parse((ROOT / "function_app.py").read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") in (
                    "queue_trigger",
                    "timer_trigger",
                ):
                    names.append(node.name)
    return names


@pytest.fixture(scope="module")
def broken_app(storage, provider, issuer):
    running = start_app(storage, provider, issuer, "dyte", AUTH_CLIENT_ID="", JOIN_GRACE_MINUTES="forever")
    yield running
    running.stop()


def test_every_route_answers_503_misconfigured_naming_the_settings(broken_app):
    assert len(routes()) >= 18
    for method, route in routes():
        if route in ("health", "openapi.yaml"):
            continue
        path = "/" + route.replace("{meetingId}", "A" * 38).replace("{inviteId}", "B" * 22)
        body = problem(broken_app.call(method, path, json={}), 503, "misconfigured")
        assert "AUTH_CLIENT_ID" in body["detail"] and "JOIN_GRACE_MINUTES" in body["detail"], (method, path)
        assert body["retryAfterSeconds"] >= 1


def test_health_and_the_openapi_document_still_answer_and_say_so(broken_app):
    report = broken_app.call("GET", "/health")
    assert report.status_code == 200
    assert report.json()["status"] == "degraded"
    assert report.json()["checks"]["settings"] == ["AUTH_CLIENT_ID", "JOIN_GRACE_MINUTES"]
    assert broken_app.call("GET", "/openapi.yaml").status_code == 200


def test_background_functions_are_indexed_and_do_nothing(broken_app):
    names = background_functions()
    assert {"run_job", "send_mail", "apply_webhook_event", "sweep_pending", "purge_expired"} <= set(names)
    for name in ("sweep_pending", "purge_expired", "sweep_webhook_events"):
        invoked = requests.post(f"{broken_app.url}/admin/functions/{name}", json={"input": ""}, timeout=10)
        assert invoked.status_code == 202  # indexed: the host knows it, and runs it

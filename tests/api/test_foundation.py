"""Health, the OpenAPI document, /me and the API's conventions, through the dev host."""

import base64
import importlib
import re

import pytest
import yaml
from openapi_spec_validator import validate

from shared import schema, times
from tests import support
from tests.api.conftest import problem


def test_health_reports_tables_ok_without_auth(dyte_app):
    response = dyte_app.call("GET", "/health")
    assert response.status_code == 200
    body = response.json()
    last = body["checks"].pop("lastWebhookAt")
    assert body == {"status": "ok", "checks": {"tables": "ok", "provider": "configured"}}
    assert last is None or times.parse_rfc3339(last) is not None  # other tests may have sent webhooks


def test_health_is_503_when_tables_are_unreachable(dyte_app):
    # Health reads the webhook deliveries' last-delivery rows: the table it reaches storage through.
    dyte_app.storage.tables.fail("GET", re.escape(dyte_app.prefix + schema.DELIVERIES), status=503, times=100)
    try:
        response = dyte_app.call("GET", "/health")
    finally:
        dyte_app.storage.tables.clear_faults()
    assert response.status_code == 503
    assert response.json()["checks"]["tables"] == "error"


def test_openapi_document_is_served_valid_and_lists_every_http_route(dyte_app, monkeypatch):
    response = dyte_app.call("GET", "/openapi.yaml")
    assert response.status_code == 200
    document = yaml.safe_load(response.text)
    assert document["openapi"].startswith("3.1")
    validate(document)
    for name, value in support.values().items():
        monkeypatch.setenv(name, value)
    function_app = importlib.import_module("function_app")

    routes = set()
    for function in function_app.app.get_functions():
        trigger = function.get_trigger()
        if function.is_http_function():
            for method in trigger.methods:
                routes.add(("/" + trigger.route, str(method).split(".")[-1].lower()))
    documented = {
        (path, method) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    assert routes == documented


def test_me_answers_the_caller(dyte_app):
    user = dyte_app.user("alice")
    response = user.call("GET", "/me")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["email"] == user.email
    assert body["tenantId"]
    assert body["name"] == "Alice"
    assert len(body["id"]) == 22


def test_me_without_a_token_is_a_401_problem(dyte_app):
    response = dyte_app.call("GET", "/me")
    problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    "header",
    [
        "Basic " + base64.b64encode(b"alice:secret").decode(),
        "Bearer garbage",
        "Bearer",
    ],
)
def test_bad_authorization_is_401_and_reaches_neither_storage_nor_provider(dyte_app, header):
    counts = dyte_app.counts()
    for path, method in (("/me", "GET"), ("/meetings", "GET"), ("/meetings", "POST"), ("/meetings/x/join", "POST")):
        response = dyte_app.call(method, path, headers={"Authorization": header}, json={"title": "x"})
        problem(response, 401, "unauthorized")
    assert counts.tables() == 0
    assert counts.provider_calls() == []


def test_token_from_a_disallowed_tenant_or_without_scope_touches_nothing(dyte_app):
    counts = dyte_app.counts()
    foreign = dyte_app.token("mallory@fabrikam.test", tenant="0b0b0b0b-1111-4222-8333-444444444444")
    problem(dyte_app.call("POST", "/meetings", foreign, json={"title": "x"}), 401, "unauthorized")
    no_scope = dyte_app.token("alice@contoso.test", scope="User.Read")
    response = dyte_app.call("POST", "/meetings", no_scope, json={"title": "x"})
    problem(response, 403, "insufficient-scope")
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert counts.tables() == 0
    assert counts.provider_calls() == []


def test_oversized_body_is_413_before_auth(dyte_app):
    response = dyte_app.call("POST", "/meetings", data=b"x" * (64 * 1024 + 1))
    problem(response, 413, "payload-too-large")


def test_unknown_route_is_404(dyte_app):
    assert dyte_app.call("GET", "/nope").status_code == 404


def test_cors_preflight_from_the_spa_origin(dyte_app):
    response = dyte_app.call(
        "OPTIONS",
        "/meetings",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]

"""The dev host over real HTTP (and real Azurite queues), with a small test-only FunctionApp."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import requests
from azure.storage.queue import QueueClient

from dev.host import DevHost, QueueOptions

ROOT = Path(__file__).resolve().parents[2]
BODY_LIMIT = 1024


class Recorder:
    """What the test functions saw, for tests to wait on."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._changed = threading.Condition()

    def add(self, name: str, **data: Any) -> None:
        with self._changed:
            self.calls.append((name, data))
            self._changed.notify_all()

    def of(self, name: str) -> list[dict[str, Any]]:
        with self._changed:
            return [data for call, data in self.calls if call == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.of(name)) >= count, timeout)
        calls = self.of(name)
        assert len(calls) >= count, f"{name} was called {len(calls)} times, expected {count}"
        return calls


def _json(data: dict[str, Any], status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(data), status_code=status, mimetype="application/json")


def build_app(recorder: Recorder) -> func.FunctionApp:
    """A fresh app each time: get_functions() works once per FunctionApp instance."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo/{id:int}/{name?}", methods=["GET", "POST", "PUT"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        recorder.add("echo")
        response = _json(
            {
                "method": req.method,
                "url": req.url,
                "route": dict(req.route_params),
                "params": dict(req.params),
                "headers": {k: v for k, v in req.headers.items() if k.startswith("x-")},
                "body": req.get_body().hex(),
            },
            201 if req.method == "PUT" else 200,
        )
        response.headers.add("X-Multi", "one")
        response.headers.add("X-Multi", "two")
        return response

    # Registered before the literal route: the host's route ordering, not registration, must decide.
    @app.route(route="meetings/{id}/invites/{inviteId}", methods=["POST", "DELETE"])
    def invite(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"fn": "invite", **req.route_params})

    @app.route(route="meetings/{id}/invites/mine/decline", methods=["POST"])
    def decline(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"fn": "decline", **req.route_params})

    @app.route(route="things/{value}")
    def thing_any(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"fn": "any", **req.route_params})

    @app.route(route="things/{value:int}")
    def thing_int(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"fn": "int", **req.route_params})

    @app.route(route="things/{value:guid}")
    def thing_guid(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"fn": "guid", **req.route_params})

    @app.route(route=r"things/{value:regex(^k-\d+$)}")
    def thing_regex(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"fn": "regex", **req.route_params})

    @app.route(route="things/{value:alpha:minlength(3)}")
    def thing_alpha(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"fn": "alpha", **req.route_params})

    @app.route(route="files/{*path}", methods=["GET"])
    def files(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"fn": "files", **req.route_params})

    @app.route(route="only-post", methods=["POST"])
    def only_post(req: func.HttpRequest) -> func.HttpResponse:
        return _json({"fn": "only-post"})

    @app.route(route="text")
    def text(req: func.HttpRequest) -> str:
        return "plain text"

    @app.route(route="header-override")
    def header_override(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("x", headers={"X-Content-Type-Options": "set-by-function"})

    @app.route(route="async")
    async def async_handler(req: func.HttpRequest) -> func.HttpResponse:
        await asyncio.sleep(0)
        return _json({"thread": threading.current_thread().name, "loop": asyncio.get_running_loop().is_running()})

    @app.route(route="boom")
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        recorder.add("boom")
        raise RuntimeError("boom for the test")

    @app.queue_trigger(arg_name="msg", queue_name="%QUEUE_PREFIX%-in", connection="AzureWebJobsStorage")
    def consume(msg: func.QueueMessage) -> None:
        recorder.add("consume", body=msg.get_body(), dequeue_count=msg.dequeue_count, id=msg.id)

    @app.queue_trigger(arg_name="msg", queue_name="%QUEUE_PREFIX%-fail", connection="AzureWebJobsStorage")
    def always_fails(msg: func.QueueMessage) -> None:
        recorder.add("fail", dequeue_count=msg.dequeue_count)
        raise RuntimeError("this function always fails")

    @app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=False)
    def tick(timer: func.TimerRequest) -> None:
        recorder.add("tick", past_due=timer.past_due, kind=type(timer).__name__)

    return app


# --------------------------------------------------------------------------------------------------
# HTTP, against one host for the module (queues not polled: no storage needed)


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def host(recorder: Recorder):
    dev_host = DevHost(
        build_app(recorder),
        settings={"QUEUE_PREFIX": "unused"},
        cors_origins=["http://spa.test", "http://other.test"],
        custom_headers={"X-Content-Type-Options": "nosniff"},
        max_request_body=BODY_LIMIT,
        poll_queues=False,
    )
    before = set(threading.enumerate())
    with dev_host.start() as started:
        yield started
    assert not _threads_left(before)


def test_route_params_query_headers_and_body_reach_the_function(host: DevHost) -> None:
    response = requests.post(
        f"{host.url}/api/echo/42/alice?a=1&a=2&b=%20x&empty",
        data=b"\x00raw\xffbytes",
        headers={"X-Test": "yes", "Content-Type": "application/octet-stream"},
        timeout=5,
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["url"] == f"{host.url}/api/echo/42/alice?a=1&a=2&b=%20x&empty"
    assert seen["route"] == {"id": "42", "name": "alice"}
    assert seen["params"] == {"a": "1,2", "b": " x", "empty": ""}
    assert seen["headers"] == {"x-test": "yes"}
    assert bytes.fromhex(seen["body"]) == b"\x00raw\xffbytes"


def test_optional_parameter_absent_and_trailing_slash(host: DevHost) -> None:
    seen = requests.get(f"{host.url}/api/echo/7/", timeout=5).json()
    assert seen["route"] == {"id": "7"}


def test_unmatched_routes_constraints_and_methods_are_404(host: DevHost) -> None:
    for method, path in [
        ("GET", "/api/nothing-here"),
        ("GET", "/echo/1"),  # no route prefix
        ("GET", "/api/echo/abc"),  # {id:int}
        ("DELETE", "/api/echo/1"),  # methods GET, POST, PUT
        ("GET", "/api/only-post"),
        ("GET", "/api/meetings/1/invites/mine/decline"),
    ]:
        response = requests.request(method, host.url + path, timeout=5)
        assert response.status_code == 404, (method, path)
        assert response.content == b""
    assert requests.post(f"{host.url}/api/only-post", timeout=5).status_code == 200


def test_literal_segments_beat_parameters_and_match_case_insensitively(host: DevHost) -> None:
    decline = requests.post(f"{host.url}/API/Meetings/m1/INVITES/mine/DECLINE", timeout=5).json()
    assert decline == {"fn": "decline", "id": "m1"}
    invite = requests.post(f"{host.url}/api/meetings/m1/invites/abc", timeout=5).json()
    assert invite == {"fn": "invite", "id": "m1", "inviteId": "abc"}
    assert requests.delete(f"{host.url}/api/meetings/m1/invites/mine", timeout=5).json()["fn"] == "invite"


def test_constrained_parameters_beat_unconstrained_ones(host: DevHost) -> None:
    expected = {
        "42": "int",
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301": "guid",
        "k-17": "regex",
        "abcd": "alpha",
        "ab": "any",  # alpha but shorter than minlength(3)
        "x-1": "any",
    }
    for value, fn in expected.items():
        assert requests.get(f"{host.url}/api/things/{value}", timeout=5).json() == {"fn": fn, "value": value}


def test_catch_all_takes_the_rest_of_the_path(host: DevHost) -> None:
    seen = requests.get(f"{host.url}/api/files/a/b%2Fc/d%20e.txt", timeout=5).json()
    assert seen == {"fn": "files", "path": "a/b%2Fc/d e.txt"}  # %2F stays encoded, as Kestrel leaves it
    assert requests.get(f"{host.url}/api/files", timeout=5).json() == {"fn": "files"}


def test_response_status_headers_and_custom_headers(host: DevHost) -> None:
    response = requests.put(f"{host.url}/api/echo/1", timeout=5)
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    assert response.raw.headers.getlist("X-Multi") == ["one", "two"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert int(response.headers["Content-Length"]) == len(response.content)

    text = requests.get(f"{host.url}/api/text", timeout=5)
    assert (text.status_code, text.text, text.headers["Content-Type"]) == (
        200,
        "plain text",
        "text/plain; charset=utf-8",
    )
    # host.json customHeaders are added only when the function did not set them (TryAdd).
    override = requests.get(f"{host.url}/api/header-override", timeout=5)
    assert override.headers["X-Content-Type-Options"] == "set-by-function"
    assert override.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_cors_preflight_from_an_allowed_origin(host: DevHost, recorder: Recorder) -> None:
    calls = len(recorder.of("echo"))
    response = requests.options(
        f"{host.url}/api/echo/1",
        headers={
            "Origin": "http://spa.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=5,
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://spa.test"
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    assert response.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert response.headers["Vary"] == "Origin"
    assert "Access-Control-Max-Age" not in response.headers  # Core Tools' policy sets no max age
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert len(recorder.of("echo")) == calls


def test_cors_preflight_from_another_origin_gets_no_cors_headers(host: DevHost, recorder: Recorder) -> None:
    calls = len(recorder.of("echo"))
    response = requests.options(
        f"{host.url}/api/echo/1",
        headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
        timeout=5,
    )
    assert response.status_code == 204
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    assert len(recorder.of("echo")) == calls


def test_cors_on_actual_requests(host: DevHost) -> None:
    allowed = requests.get(f"{host.url}/api/echo/1", headers={"Origin": "http://other.test"}, timeout=5)
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://other.test"
    assert allowed.headers["Vary"] == "Origin"
    other = requests.get(f"{host.url}/api/echo/1", headers={"Origin": "http://evil.test"}, timeout=5)
    assert other.status_code == 200
    assert "Access-Control-Allow-Origin" not in other.headers


def test_body_over_the_host_limit_is_413_and_never_reaches_the_function(host: DevHost, recorder: Recorder) -> None:
    calls = len(recorder.of("echo"))
    assert requests.post(f"{host.url}/api/echo/1", data=b"x" * BODY_LIMIT, timeout=5).status_code == 200
    too_big = requests.post(f"{host.url}/api/echo/1", data=b"x" * (BODY_LIMIT + 1), timeout=5)
    assert too_big.status_code == 413
    chunked = requests.post(f"{host.url}/api/echo/1", data=iter([b"y" * 700, b"y" * 700]), timeout=5)
    assert chunked.status_code == 413
    assert len(recorder.of("echo")) == calls + 1
    # The host closed those connections (unread bodies); new requests are served as usual.
    assert requests.get(f"{host.url}/api/echo/1", timeout=5).status_code == 200


def test_async_handler_runs_on_the_event_loop(host: DevHost) -> None:
    seen = requests.get(f"{host.url}/api/async", timeout=5).json()
    assert seen == {"thread": "dev-host-loop", "loop": True}


def test_exception_is_500_with_empty_body_and_logged(host: DevHost, capsys: pytest.CaptureFixture[str]) -> None:
    response = requests.get(f"{host.url}/api/boom", timeout=5)
    assert (response.status_code, response.content) == (500, b"")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    err = capsys.readouterr().err
    assert "boom:" in err and "Traceback" in err and "RuntimeError: boom for the test" in err


def test_keep_alive_reuses_one_connection_with_nodelay(host: DevHost) -> None:
    before = host.connections_accepted
    nodelay_before = host.nodelay_connections
    with requests.Session() as session:
        for index in range(50):
            response = session.get(f"{host.url}/api/echo/{index}", timeout=5)
            assert response.status_code == 200
    assert host.connections_accepted - before == 1
    assert host.nodelay_connections - nodelay_before == 1


def test_admin_route_runs_a_timer_and_answers_202(host: DevHost, recorder: Recorder) -> None:
    response = requests.post(f"{host.url}/admin/functions/tick", json={"input": ""}, timeout=5)
    assert (response.status_code, response.content) == (202, b"")
    assert recorder.wait_for("tick")[-1] == {"past_due": False, "kind": "TimerRequest"}


def test_admin_route_feeds_a_queue_function_its_input(host: DevHost, recorder: Recorder) -> None:
    response = requests.post(f"{host.url}/admin/functions/CONSUME", json={"input": "by hand"}, timeout=5)
    assert response.status_code == 202
    call = recorder.wait_for("consume")[-1]
    assert call == {"body": b"by hand", "dequeue_count": 0, "id": None}


def test_admin_route_errors(host: DevHost) -> None:
    assert requests.post(f"{host.url}/admin/functions/nope", json={"input": ""}, timeout=5).status_code == 404
    assert requests.post(f"{host.url}/admin/functions/tick", data=b"not json", timeout=5).status_code == 400
    assert requests.post(f"{host.url}/admin/functions/echo", json={"input": ""}, timeout=5).status_code == 400


def test_run_function_in_process(host: DevHost, recorder: Recorder) -> None:
    count = len(recorder.of("tick"))
    host.run_function("tick")
    assert len(recorder.of("tick")) == count + 1


# --------------------------------------------------------------------------------------------------
# Queue triggers against Azurite


def _wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def queue_host(storage, prefix):
    recorder = Recorder()
    clients = {
        name: QueueClient.from_connection_string(storage.connection_string, f"{prefix}-{name}")
        for name in ("in", "fail", "fail-poison", "in-poison")
    }
    clients["in"].create_queue()
    clients["fail"].create_queue()
    dev_host = DevHost(
        build_app(recorder),
        settings={"QUEUE_PREFIX": prefix, "AzureWebJobsStorage": storage.connection_string},
        queues=QueueOptions(max_polling_interval=0.1, visibility_timeout=0),
    )
    before = set(threading.enumerate())
    with dev_host.start():
        yield recorder, clients
    assert not _threads_left(before)
    for client in clients.values():
        client.close()


def _threads_left(before: set[threading.Thread]) -> list[str]:
    """Threads a stopped host left behind: pollers, queue workers, event loop, connection handlers."""
    return [t.name for t in threading.enumerate() if t not in before and t.name.startswith("dev-host")]


def _stored(client: QueueClient) -> int:
    """Messages in the queue, invisible ones included."""
    return client.get_queue_properties().approximate_message_count


def test_queue_trigger_gets_the_decoded_message(queue_host) -> None:
    recorder, clients = queue_host
    sent = clients["in"].send_message(base64.b64encode(b"hello \xff bytes").decode())
    call = recorder.wait_for("consume")[0]
    assert call == {"body": b"hello \xff bytes", "dequeue_count": 1, "id": sent.id}
    assert _wait_until(lambda: _stored(clients["in"]) == 0)  # deleted after success
    assert not recorder.of("fail")


def test_failing_queue_function_ends_in_poison_after_five_attempts(queue_host) -> None:
    recorder, clients = queue_host
    original = base64.b64encode(b'{"job": 1}').decode()
    clients["fail"].send_message(original)
    poisoned = _wait_until(lambda: _peek(clients["fail-poison"]), timeout=20)
    assert [m.content for m in poisoned] == [original]
    assert [call["dequeue_count"] for call in recorder.of("fail")] == [1, 2, 3, 4, 5]
    assert _wait_until(lambda: _stored(clients["fail"]) == 0)
    time.sleep(0.3)
    assert len(recorder.of("fail")) == 5


def test_message_that_is_not_base64_goes_straight_to_poison(queue_host) -> None:
    recorder, clients = queue_host
    clients["in"].send_message("not base64 at all!")
    poisoned = _wait_until(lambda: _peek(clients["in-poison"]))
    assert [m.content for m in poisoned] == ["not base64 at all!"]
    assert not recorder.of("consume")


def test_queue_functions_sharing_a_connection_all_fit_its_pool(storage, prefix, caplog) -> None:
    """More queue triggers on one connection: a full batch in flight on each, nothing outgrows the shared pool."""
    queues, batch = ("one", "two", "three"), 16
    in_flight, release = threading.Semaphore(0), threading.Event()
    app = func.FunctionApp()
    for name in queues:

        @app.function_name(f"hold_{name}")
        @app.queue_trigger(arg_name="msg", queue_name=f"{prefix}-{name}", connection="AzureWebJobsStorage")
        async def hold(msg: func.QueueMessage) -> None:
            in_flight.release()
            while not release.is_set():
                await asyncio.sleep(0.01)

    clients = [QueueClient.from_connection_string(storage.connection_string, f"{prefix}-{name}") for name in queues]
    for client in clients:
        client.create_queue()
        for _ in range(batch):
            client.send_message(base64.b64encode(b"job").decode())
    dev_host = DevHost(
        app,
        settings={"AzureWebJobsStorage": storage.connection_string},
        queues=QueueOptions(batch_size=batch, max_polling_interval=0.1),
    )
    with dev_host.start():
        for _ in range(batch * len(queues)):
            assert in_flight.acquire(timeout=10)
        release.set()  # every message is deleted at about the same time
        assert _wait_until(lambda: all(_stored(client) == 0 for client in clients))
    assert not [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
    for client in clients:
        client.close()


def _peek(client: QueueClient) -> list[Any]:
    try:
        return list(client.peek_messages(max_messages=32))
    except Exception:
        return []


# --------------------------------------------------------------------------------------------------
# The CLI: `python -m dev.host` against a tiny project in tmp_path

SMOKE_APP = """
import json
import os

import azure.functions as func

from shared.settings import SettingsError

if os.environ.get("SMOKE_FAIL"):
    raise SettingsError("SMOKE_FAIL is set, so this app refuses to start")

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="env", methods=["GET"])
def env(req: func.HttpRequest) -> func.HttpResponse:
    names = ("SMOKE_FILE_ONLY", "SMOKE_BOTH")
    return func.HttpResponse(json.dumps({n: os.environ.get(n) for n in names}), mimetype="application/json")


@app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    if os.environ.get("SMOKE_TIMER_FAIL"):
        raise RuntimeError("the timer failed")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "function_app.py").write_text(SMOKE_APP)
    (tmp_path / "host.json").write_text(
        json.dumps(
            {
                "version": "2.0",
                "extensions": {"http": {"routePrefix": "v1", "customHeaders": {"X-Smoke": "yes"}}},
            }
        )
    )
    (tmp_path / "local.settings.json").write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {"SMOKE_FILE_ONLY": "from-file", "SMOKE_BOTH": "from-file"},
                "Host": {"LocalHttpPort": 1, "CORS": "http://spa.test"},
            }
        )
    )
    return tmp_path


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMOKE_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_cli_serves_with_settings_merged_and_stops_on_sigterm(project: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dev.host", "--port", str(port)],
        cwd=project,
        env=_environment(SMOKE_BOTH="from-env"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        banner = []
        deadline = time.monotonic() + 15
        while not any("Request body limit" in line for line in banner):
            banner.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        text = "".join(banner)
        assert f"http://127.0.0.1:{port}" in text
        assert f"[GET] http://127.0.0.1:{port}/v1/env" in text
        assert "tick" in text and "not scheduled" in text and "NOT scheduled" in text

        response = requests.get(f"http://127.0.0.1:{port}/v1/env", headers={"Origin": "http://spa.test"}, timeout=5)
        assert response.json() == {"SMOKE_FILE_ONLY": "from-file", "SMOKE_BOTH": "from-env"}
        assert response.headers["X-Smoke"] == "yes"
        assert response.headers["Access-Control-Allow-Origin"] == "http://spa.test"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
        stderr = process.stderr.read()
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_cli_settings_error_is_one_line_and_exit_1(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dev.host", "--port", str(_free_port())],
        cwd=project,
        env=_environment(SMOKE_FAIL="1"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "settings: SMOKE_FAIL is set, so this app refuses to start"
    assert result.stdout == ""


@pytest.mark.parametrize(("extra", "code"), [({}, 0), ({"SMOKE_TIMER_FAIL": "1"}, 1)])
def test_cli_run_timer(project: Path, extra: dict[str, str], code: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dev.host", "--run-timer", "tick"],
        cwd=project,
        env=_environment(**extra),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == code, result.stderr
    assert ("the timer failed" in result.stderr) == bool(code)

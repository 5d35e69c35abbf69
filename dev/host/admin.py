"""The admin API, `POST /admin/functions/NAME` with `{"input": ...}`: how a non-HTTP function runs on request,
as under Core Tools. It is the only way timers run, since the dev host schedules none (any timer, whatever its
name or schedule); a queue function gets the input as its message. Answered 202 at once, run in the background."""

from __future__ import annotations

import concurrent.futures
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from dev.host.diagnostics import DevHostError, warn_failure
from dev.host.functions import Function
from dev.host.server import BodyTooLarge, Handler


def on_request_trigger(function: Function, input: str = "") -> Any:
    """The trigger value the host gives a non-HTTP function invoked on request."""
    if function.is_timer:
        return TimerRequest(past_due=False, schedule={"AdjustForDST": True}, schedule_status=None)
    if function.is_queue:
        # StringToStorageQueueMessageConverter: QueueMessage(null id, null pop receipt, input, dequeueCount 0)
        return QueueMessage(id=None, body=(input or "").encode("utf-8"), dequeue_count=0, pop_receipt=None)
    raise DevHostError(f"{function.name} is an HTTP function: call it over HTTP")


class AdminApi:
    """Answers `/admin/...` requests and runs what they ask for on a few background threads."""

    def __init__(
        self,
        by_name: Mapping[str, Function],
        invoke: Callable[[Function, Any], Any],
        max_request_body: int,
    ):
        self._by_name, self._invoke, self._max_request_body = by_name, invoke, max_request_body
        self._runs = self._pool()

    @staticmethod
    def _pool() -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dev-host-admin")

    def handle(self, handler: Handler, method: str, path: str, cors: list[tuple[str, str]]) -> tuple[int, str]:
        match = re.fullmatch(r"/admin/functions/([^/]+)/?", path, re.IGNORECASE)
        if not match or method != "POST":
            handler.skip_body()
            handler.send(404, cors)
            return 404, ""
        try:
            body = handler.read_body(self._max_request_body)
        except (BodyTooLarge, ValueError):
            handler.close_connection = True
            handler.send(413, cors)
            return 413, ""
        function = self._by_name.get(match.group(1).lower())
        try:
            invocation = json.loads(body) if body.strip() else None
        except ValueError:
            invocation = None
        if not isinstance(invocation, dict):
            handler.send(400, cors)
            return 400, ' (admin: body must be JSON {"input": ...})'
        if function is None:
            handler.send(404, cors)
            return 404, " (admin: no such function)"
        if function.is_http:
            message = b"HTTP functions are invoked over HTTP"
            handler.send(400, [*cors, ("Content-Type", "text/plain; charset=utf-8")], message)
            return 400, f" (admin: {function.name} is an HTTP function)"
        input_value = invocation.get("input")
        text = input_value if isinstance(input_value, str) else ("" if input_value is None else json.dumps(input_value))
        self._runs.submit(self._run, function, text)  # the host runs it in the background: 202 at once
        handler.send(202, cors)
        return 202, f" (admin: {function.name})"

    def _run(self, function: Function, text: str) -> None:
        try:
            self._invoke(function, on_request_trigger(function, text))
        except Exception:
            warn_failure(f"{function.name}: invocation through the admin API failed")

    def drain(self) -> None:
        """Wait for the runs under way; the API takes new ones after (a host can be started again)."""
        self._runs.shutdown(wait=True)
        self._runs = self._pool()

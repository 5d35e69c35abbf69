"""One invocation as the Python worker runs it: sync functions on a bounded set of threads, async ones on one
event loop, a `context` argument when asked for, the trigger converted to the parameter's type, and queue
output bindings written only when the function succeeds, as the host does."""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from dev.host.functions import Function
from dev.host.storage import DEFAULT_CONNECTION, Connections, queue_name, send_creating


class Context(func.Context):
    """What the Python worker passes to a parameter named `context`."""

    def __init__(self, function_name: str, function_directory: str):
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._local = threading.local()
        self._local.invocation_id = self._invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


class Out(func.Out):
    """What the worker passes to a `func.Out` output parameter."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class Invoker:
    """Runs invocations the way the worker does (see the module's docstring); one per host."""

    def __init__(self, thread_count: int, function_directory: str, settings: Mapping[str, str]):
        self._slots = threading.BoundedSemaphore(thread_count)
        self._function_directory = function_directory
        self._settings = settings
        self._outputs = Connections(settings, pool_size=8)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def invoke(self, function: Function, trigger_value: Any) -> Any:
        """Run one invocation; raises what the function raises, and then writes no output."""
        kwargs: dict[str, Any] = {function.trigger_arg: _convert_trigger(function, trigger_value)}
        if function.wants_context:
            kwargs["context"] = Context(function.name, self._function_directory)
        outputs = {b["name"]: Out() for b in function.queue_outputs if b["name"] != "$return"}
        kwargs.update(outputs)
        result = self._call(function, kwargs)
        for binding in function.queue_outputs:
            value = result if binding["name"] == "$return" else outputs[binding["name"]].get()
            if value is not None:
                self._write_queue_output(function, binding, value)
        return result

    def _call(self, function: Function, kwargs: dict[str, Any]) -> Any:
        if function.is_async:
            return asyncio.run_coroutine_threadsafe(function.user(**kwargs), self._event_loop()).result()
        with self._slots:
            return function.user(**kwargs)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="dev-host-loop", daemon=True)
                self._thread.start()
            return self._loop

    def _write_queue_output(self, function: Function, binding: Mapping[str, Any], value: Any) -> None:
        items = value if isinstance(value, list) else [value]
        payloads = []
        for item in items:
            if isinstance(item, func.QueueMessage):
                item = item.get_body()
            if isinstance(item, str):
                item = item.encode("utf-8")
            if not isinstance(item, bytes):
                raise TypeError(f"{function.name}: unsupported queue output {type(item).__name__}")
            payloads.append(base64.b64encode(item).decode("ascii"))
        clients = self._outputs.clients(binding.get("connection") or DEFAULT_CONNECTION)
        with clients(queue_name(binding["queueName"], self._settings, function.name)) as client:
            for payload in payloads:
                send_creating(client, payload)  # the output binding creates its queue

    def close(self) -> None:
        """Stop the event loop and close the output clients' sessions; both come back on the next use."""
        self._outputs.close()
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


def _convert_trigger(function: Function, value: Any) -> Any:
    if isinstance(value, func.QueueMessage) and function.trigger_annotation in (str, bytes):
        body = value.get_body()
        return body if function.trigger_annotation is bytes else body.decode("utf-8")
    return value

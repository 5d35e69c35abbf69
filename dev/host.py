"""The repo's own Functions host: serves every trigger of `function_app.py` without Core Tools.

`python -m dev.host --port PORT` (or `DevHost(app).start()` in tests) reads the app through the
azure-functions library's own introspection and behaves like the Functions host under Core Tools:
HTTP routes with the route-template syntax, the route prefix, custom headers and request-size limit
of host.json, CORS from `local.settings.json`, queue triggers polled like the Storage extension, and
timer (or any non-HTTP) functions run on request through the admin API (`POST /admin/functions/NAME`).

Why not pycactus 0.5.0 (`cactus.flask.build_app_v2`): it adds Flask for HTTP only (no queue, timer, CORS,
size limit or custom headers), and its route mapping is not the host's: Werkzeug rules (case-sensitive
literals, Werkzeug's ordering), no `api` prefix for v2 apps, "no methods" means GET only, only `regex`
constraints (which need a converter it never registers; any other constraint hits a NameError on `tup`),
`req.path` as the URL, one value per header, and `logging.basicConfig(DEBUG)` on import.

Host behaviour reproduced here was read from the host's sources (azure-functions-host, the WebJobs
Storage Queues extension, Core Tools, ASP.NET Core CORS); see the comments next to each piece.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import email.utils
import functools
import importlib
import inspect
import json
import logging
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

# The host's Kestrel limit when FUNCTIONS_REQUEST_BODY_SIZE_LIMIT is not set
# (ScriptConstants.DefaultMaxRequestBodySize, azure-functions-host).
DEFAULT_MAX_REQUEST_BODY = 104_857_600
DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_PORT = 7071
DEFAULT_THREAD_COUNT = 16
# The queue listener receives messages invisible for 10 minutes (QueueListener._visibilityTimeout).
RECEIVE_VISIBILITY_TIMEOUT = 600
# Kestrel's default keep-alive timeout.
KEEP_ALIVE_TIMEOUT = 130
_SUPPORTED_TRIGGERS = ("httpTrigger", "queueTrigger", "timerTrigger")
_LOG = "[dev.host]"


class DevHostError(Exception):
    """The app or its configuration cannot be served (the real host would refuse it too)."""


def _warn(message: str) -> None:
    sys.stderr.write(f"{_LOG} {message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------------------------------
# host.json / settings helpers

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$")


def parse_timespan(value: str) -> float:
    """A .NET TimeSpan string (`[d.]hh:mm:ss[.fffffff]`, as host.json uses) in seconds."""
    match = _TIMESPAN.match(str(value).strip())
    if not match:
        raise DevHostError(f"not a TimeSpan (hh:mm:ss): {value!r}")
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return total + (float("0." + fraction) if fraction else 0.0)


def _ci_get(mapping: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """.NET configuration keys are case-insensitive."""
    for name, value in mapping.items():
        if name.lower() == key.lower():
            return value
    return default


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true")


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, in seconds; defaults are the Storage extension's."""

    batch_size: int = 16
    new_batch_threshold: int | None = None  # None: batch_size // 2
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"  # or "none"
    min_polling_interval: float = 0.1  # QueuePollingIntervals.Minimum, not configurable in host.json

    @property
    def threshold(self) -> int:
        return self.batch_size // 2 if self.new_batch_threshold is None else self.new_batch_threshold

    @classmethod
    def from_host_json(cls, section: Mapping[str, Any] | None) -> QueueOptions:
        section = section or {}
        kwargs: dict[str, Any] = {}
        for key, attribute in (
            ("batchSize", "batch_size"),
            ("newBatchThreshold", "new_batch_threshold"),
            ("maxDequeueCount", "max_dequeue_count"),
        ):
            value = _ci_get(section, key)
            if value is not None:
                kwargs[attribute] = int(value)
        for key, attribute in (
            ("maxPollingInterval", "max_polling_interval"),
            ("visibilityTimeout", "visibility_timeout"),
        ):
            value = _ci_get(section, key)
            if value is not None:
                kwargs[attribute] = parse_timespan(value)
        encoding = _ci_get(section, "messageEncoding")
        if encoding is not None:
            kwargs["message_encoding"] = str(encoding).lower()
        return cls(**kwargs)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.batch_size > 32:
            raise DevHostError("queues.batchSize must be 1..32")
        if self.max_dequeue_count < 1:
            raise DevHostError("queues.maxDequeueCount must be greater than zero")
        if self.message_encoding not in ("base64", "none"):
            raise DevHostError("queues.messageEncoding must be base64 or none")


def _resolve_expression(value: str, settings: Mapping[str, str], where: str) -> str:
    """Binding expressions `%NAME%` resolve from app settings; an unknown one fails indexing."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if not settings.get(name):
            raise DevHostError(f"{where}: '%{name}%' does not resolve to a value (app setting {name} is missing)")
        return settings[name]

    return re.sub(r"%([^%]+)%", replace, value)


_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")


def _queue_name(raw: str, settings: Mapping[str, str], where: str) -> str:
    # QueueTriggerAttributeBindingProvider lower-cases and validates the name.
    name = _resolve_expression(raw, settings, where).lower()
    if not (3 <= len(name) <= 63 and _QUEUE_NAME.match(name)):
        raise DevHostError(f"{where}: invalid queue name {name!r}")
    return name


# --------------------------------------------------------------------------------------------------
# Route templates (ASP.NET Core template syntax, as the Functions host parses them)

_INT_TEXT = re.compile(r"\s*[+-]?\d+\s*")
_DECIMAL_TEXT = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*")
_DOUBLE_TEXT = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_GUID_CORE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_GUID_TEXT = re.compile(rf"\s*(?:[0-9a-f]{{32}}|{_GUID_CORE}|\{{{_GUID_CORE}\}}|\({_GUID_CORE}\))\s*", re.I)
_ALPHA_TEXT = re.compile(r"[a-z]*", re.I)


def _integer_between(low: int, high: int) -> Callable[[str], bool]:
    return lambda value: bool(_INT_TEXT.fullmatch(value)) and low <= int(value) <= high


def _is_datetime(value: str) -> bool:
    text = value.strip()
    with contextlib.suppress(ValueError):
        datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    for fmt in ("%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%Y/%m/%d"):
        with contextlib.suppress(ValueError):
            datetime.strptime(text, fmt)
            return True
    return False


def _is_file(value: str) -> bool:
    last = value.rsplit("/", 1)[-1]
    dot = last.rfind(".")
    return 0 <= dot < len(last) - 1


_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_SIMPLE_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": _integer_between(*_INT32),
    "long": _integer_between(*_INT64),
    "bool": lambda value: value.strip().lower() in ("true", "false"),
    "datetime": _is_datetime,
    "decimal": lambda value: bool(_DECIMAL_TEXT.fullmatch(value)),
    "double": lambda value: bool(_DOUBLE_TEXT.fullmatch(value)),
    "float": lambda value: bool(_DOUBLE_TEXT.fullmatch(value)),
    "guid": lambda value: bool(_GUID_TEXT.fullmatch(value)),
    "alpha": lambda value: bool(_ALPHA_TEXT.fullmatch(value)),
    "required": lambda value: value != "",
    "file": _is_file,
    "nonfile": lambda value: not _is_file(value),
}


def _constraint(name: str, argument: str | None, template: str) -> Callable[[str], bool]:
    key = name.lower()
    if argument is None and key in _SIMPLE_CONSTRAINTS:
        return _SIMPLE_CONSTRAINTS[key]
    if argument is not None:
        if key == "regex":
            pattern = re.compile(argument, re.I)  # ASP.NET: IsMatch, IgnoreCase | CultureInvariant
            return lambda value: pattern.search(value) is not None
        args = [part.strip() for part in argument.split(",")]
        try:
            numbers = [int(part) for part in args]
        except ValueError:
            numbers = []
        if numbers:
            long_value = _integer_between(*_INT64)
            if key == "minlength" and len(numbers) == 1:
                return lambda value: len(value) >= numbers[0]
            if key == "maxlength" and len(numbers) == 1:
                return lambda value: len(value) <= numbers[0]
            if key == "length" and len(numbers) == 1:
                return lambda value: len(value) == numbers[0]
            if key == "length" and len(numbers) == 2:
                return lambda value: numbers[0] <= len(value) <= numbers[1]
            if key == "min" and len(numbers) == 1:
                return lambda value: long_value(value) and int(value) >= numbers[0]
            if key == "max" and len(numbers) == 1:
                return lambda value: long_value(value) and int(value) <= numbers[0]
            if key == "range" and len(numbers) == 2:
                return lambda value: long_value(value) and numbers[0] <= int(value) <= numbers[1]
    shown = name if argument is None else f"{name}({argument})"
    raise DevHostError(f"route {template!r}: unknown or malformed route constraint {shown!r}")


@dataclass
class _Param:
    name: str
    group: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    checks: tuple[Callable[[str], bool], ...] = ()


def _closing_parenthesis(text: str) -> int:
    depth = 0
    for position, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if depth == 0:
            return position
    return -1


def _parse_parameter(text: str, group: str, template: str) -> _Param:
    catch_all = text.startswith("*")
    body = text.lstrip("*")
    match = re.match(r"[^:=?]+", body)
    if not match:
        raise DevHostError(f"route {template!r}: empty parameter name")
    name, rest = match.group(0), body[match.end() :]
    checks: list[Callable[[str], bool]] = []
    optional = False
    default = None
    while rest:
        if rest[0] == ":":
            rest = rest[1:]
            constraint = re.match(r"[A-Za-z]+", rest)
            if not constraint:
                raise DevHostError(f"route {template!r}: malformed constraint in {{{text}}}")
            rest = rest[constraint.end() :]
            argument = None
            if rest.startswith("("):
                close = _closing_parenthesis(rest)
                if close < 0:
                    raise DevHostError(f"route {template!r}: unbalanced parentheses in {{{text}}}")
                argument, rest = rest[1:close], rest[close + 1 :]
            checks.append(_constraint(constraint.group(0), argument, template))
        elif rest[0] == "=":
            default, rest = rest[1:], ""
        elif rest == "?":
            optional, rest = True, ""
        else:
            raise DevHostError(f"route {template!r}: malformed parameter {{{text}}}")
    if optional and default is not None:
        raise DevHostError(f"route {template!r}: an optional parameter cannot have a default value")
    return _Param(name, group, optional, catch_all, default, tuple(checks))


def _parse_segment(segment: str, template: str, counter: list[int]) -> list[str | _Param]:
    parts: list[str | _Param] = []
    literal = ""
    index = 0
    while index < len(segment):
        char = segment[index]
        pair = segment[index : index + 2]
        if pair in ("{{", "}}"):
            literal += char
            index += 2
        elif char == "{":
            end, text = index + 1, ""
            while end < len(segment):
                if segment[end : end + 2] in ("{{", "}}"):
                    text += segment[end]
                    end += 2
                elif segment[end] == "}":
                    break
                else:
                    text += segment[end]
                    end += 1
            else:
                raise DevHostError(f"route {template!r}: unclosed '{{'")
            if literal:
                parts.append(literal)
                literal = ""
            counter[0] += 1
            parts.append(_parse_parameter(text, f"p{counter[0]}", template))
            index = end + 1
        elif char == "}":
            raise DevHostError(f"route {template!r}: unmatched '}}'")
        else:
            literal += char
            index += 1
    if literal:
        parts.append(literal)
    return parts


@dataclass
class _Route:
    function: _Function
    template: str  # with the route prefix
    methods: frozenset[str] | None  # None: every method
    segments: list[list[str | _Param]] = field(default_factory=list)
    params: list[_Param] = field(default_factory=list)
    regex: re.Pattern[str] | None = None

    @classmethod
    def compile(cls, function: _Function, template: str, methods: frozenset[str] | None) -> _Route:
        route = cls(function, template, methods)
        counter = [0]
        text = template.strip("/")
        route.segments = [_parse_segment(segment, template, counter) for segment in text.split("/")] if text else []
        pattern, closers = "^", 0
        for position, parts in enumerate(route.segments):
            if not parts:
                raise DevHostError(f"route {template!r}: empty segment")
            params = [part for part in parts if isinstance(part, _Param)]
            route.params.extend(params)
            if any(param.catch_all for param in params) and (position != len(route.segments) - 1 or len(parts) != 1):
                raise DevHostError(f"route {template!r}: a catch-all parameter must be the whole last segment")
            single = parts[0] if len(parts) == 1 and isinstance(parts[0], _Param) else None
            if single is not None and (single.optional or single.catch_all or single.default is not None):
                value = ".*" if single.catch_all else "[^/]+"
                pattern += f"(?:/(?P<{single.group}>{value})"
                closers += 1
                continue
            if closers:
                raise DevHostError(f"route {template!r}: optional parameters must come last")
            pattern += "/" + cls._complex(parts, template)
        route.regex = re.compile(pattern + ")?" * closers + "/?$", re.IGNORECASE)
        return route

    @staticmethod
    def _complex(parts: list[str | _Param], template: str) -> str:
        out: list[str] = []
        for index, part in enumerate(parts):
            if isinstance(part, str):
                out.append(re.escape(part))
                continue
            if part.catch_all:
                raise DevHostError(f"route {template!r}: catch-all inside a complex segment")
            group = f"(?P<{part.group}>[^/]+)"
            if part.optional:
                # `{name}.{ext?}`: the literal before a trailing optional parameter is optional too.
                if index != len(parts) - 1 or index == 0 or not isinstance(parts[index - 1], str):
                    raise DevHostError(f"route {template!r}: optional parameter inside a segment must come last")
                out[-1] = f"(?:{out[-1]}{group})?"
            else:
                out.append(group)
        return "".join(out)

    def match(self, path: str, method: str) -> dict[str, str] | None:
        assert self.regex is not None
        found = self.regex.match(path)
        if not found:
            return None
        values: dict[str, str] = {}
        for param in self.params:
            value = found.group(param.group)
            if value is None or (param.catch_all and value == ""):
                if param.default is None:
                    continue  # absent optional parameters are not passed to the worker
                value = param.default
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        # The host maps the trigger's methods to an HttpMethodRouteConstraint: a method that does not
        # match makes the route not match, so the next route is tried and the final answer is 404.
        if self.methods is not None and method not in self.methods:
            return None
        return values


def _compare_routes(x: _Route, y: _Route) -> int:
    """WebJobsRouteBuilder.RouteComparison: the order the Functions host tries its routes in."""
    for index, x_parts in enumerate(x.segments):
        if len(y.segments) <= index:
            return -1
        xp, yp = x_parts[0], y.segments[index][0]
        x_param, y_param = isinstance(xp, _Param), isinstance(yp, _Param)
        if not x_param and y_param:
            return -1
        if x_param and not y_param:
            return 1
        if isinstance(xp, _Param) and isinstance(yp, _Param):
            if len(xp.checks) != len(yp.checks):
                return -1 if len(xp.checks) > len(yp.checks) else 1
        elif isinstance(xp, str) and isinstance(yp, str):
            a, b = xp.upper(), yp.upper()  # OrdinalIgnoreCase
            if a != b:
                return -1 if a < b else 1
    return 1 if len(y.segments) > len(x.segments) else 0


def _decode_path(raw_path: str) -> str:
    # Kestrel decodes the path except for %2F, which stays encoded.
    return unquote(re.sub(r"%2[fF]", "%252F", raw_path))


# --------------------------------------------------------------------------------------------------
# CORS (Core Tools: UseCors(WithOrigins(Host.CORS).AllowAnyHeader().AllowAnyMethod()[.AllowCredentials()]))


class _Cors:
    def __init__(self, origins: Iterable[str], credentials: bool):
        cleaned = [origin.strip() for origin in origins if origin.strip()]
        self.any_origin = "*" in cleaned
        # CorsPolicyBuilder.WithOrigins normalizes configured origins to lower case.
        self.origins = frozenset(origin.lower() for origin in cleaned if origin != "*")
        self.credentials = credentials
        if self.any_origin and credentials:
            raise DevHostError("Host.CORS '*' cannot be combined with Host.CORSCredentials (ASP.NET Core refuses it)")
        self.vary = (not self.any_origin and len(self.origins) > 1) or (self.any_origin and credentials)

    def allowed(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    def headers(self, origin: str, preflight: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
        """CorsService.ApplyResult: nothing at all for an origin that is not allowed."""
        if not self.allowed(origin):
            return []
        out = [("Access-Control-Allow-Origin", "*" if self.any_origin else origin)]
        if self.credentials:
            out.append(("Access-Control-Allow-Credentials", "true"))
        if preflight is not None:
            requested = [h.strip() for h in (preflight.get("Access-Control-Request-Headers") or "").split(",")]
            requested = [h for h in requested if h]
            if requested:
                out.append(("Access-Control-Allow-Headers", ",".join(requested)))
            out.append(("Access-Control-Allow-Methods", preflight.get("Access-Control-Request-Method") or ""))
            # No Access-Control-Max-Age: Core Tools' policy sets no PreflightMaxAge.
        if self.vary:
            out.append(("Vary", "Origin"))
        return out


# --------------------------------------------------------------------------------------------------
# Functions as indexed by the worker


class _Context(func.Context):
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


class _Out(func.Out):
    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


@dataclass
class _Function:
    name: str
    user: Callable[..., Any]
    is_async: bool
    trigger: dict[str, Any]
    trigger_type: str
    trigger_arg: str
    trigger_annotation: Any
    wants_context: bool
    queue_outputs: list[dict[str, Any]]
    disabled: bool
    retry: bool
    queue_name: str | None = None
    connection: str | None = None

    @property
    def is_http(self) -> bool:
        return self.trigger_type == "httpTrigger"


def _direction(binding: Mapping[str, Any]) -> str:
    direction = binding.get("direction")
    return str(getattr(direction, "name", direction)).upper()


def _binding_methods(binding: Mapping[str, Any]) -> frozenset[str] | None:
    methods = binding.get("methods")
    if not methods:
        return None
    return frozenset(str(getattr(method, "value", method)).upper() for method in methods)


def _index(app: func.FunctionApp, settings: Mapping[str, str]) -> list[_Function]:
    try:
        functions = app.get_functions()
    except ValueError as exc:
        raise DevHostError(
            f"{exc} (FunctionApp.get_functions() works once per app instance: build a fresh app per DevHost)"
        ) from exc
    indexed: list[_Function] = []
    problems: list[str] = []
    for function in functions:
        name = function.get_function_name()
        bindings = function.get_bindings_dict()["bindings"]
        trigger = function.get_trigger()
        trigger_type = trigger.get_binding_name() if trigger is not None else None
        trigger_binding = next((b for b in bindings if b.get("type") == trigger_type), None)
        if trigger_binding is None or trigger_binding["type"] not in _SUPPORTED_TRIGGERS:
            kind = trigger_binding["type"] if trigger_binding else "none"
            problems.append(f"{name}: trigger {kind!r} is not served by the dev host")
            continue
        user = function.get_user_function()
        signature = inspect.signature(user)
        queue_outputs, names = [], {trigger_binding["name"]}
        for binding in bindings:
            if binding is trigger_binding:
                continue
            kind, arg = binding.get("type"), binding.get("name")
            if kind == "http" and _direction(binding) == "OUT" and function.is_http_function():
                continue  # the route decorator's `$return`: the HTTP response
            if kind == "queue" and _direction(binding) == "OUT":
                queue_outputs.append(binding)
                names.add(arg)
            else:
                problems.append(f"{name}: binding {kind!r} ({arg}) is not served by the dev host")
        extra = [p for p in signature.parameters if p not in names and p != "context"]
        if extra:
            problems.append(f"{name}: parameters {extra} are not bindings (the Python worker refuses this)")
        trigger_param = signature.parameters.get(trigger_binding["name"])
        indexed.append(
            _Function(
                name=name,
                user=user,
                is_async=inspect.iscoroutinefunction(user),
                trigger=trigger_binding,
                trigger_type=trigger_binding["type"],
                trigger_arg=trigger_binding["name"],
                trigger_annotation=trigger_param.annotation if trigger_param else inspect.Parameter.empty,
                wants_context="context" in signature.parameters,
                queue_outputs=queue_outputs,
                disabled=_truthy(settings.get(f"AzureWebJobs.{name}.Disabled", "")),
                retry=function.get_setting("retry") is not None,
            )
        )
        if trigger_binding["type"] == "queueTrigger" and not indexed[-1].disabled:
            where = f"function {name}"
            indexed[-1].queue_name = _queue_name(trigger_binding["queueName"], settings, where)
            indexed[-1].connection = trigger_binding.get("connection") or "AzureWebJobsStorage"
    if problems:
        raise DevHostError("cannot serve this app:\n  " + "\n  ".join(problems))
    return indexed


# --------------------------------------------------------------------------------------------------
# Invocation: sync functions on a bounded set of threads, async ones on one event loop (the worker's model)


class _Invoker:
    def __init__(self, thread_count: int):
        self._slots = threading.BoundedSemaphore(thread_count)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="dev-host-loop", daemon=True)
                self._thread.start()
            return self._loop

    def call(self, function: _Function, kwargs: dict[str, Any]) -> Any:
        if function.is_async:
            return asyncio.run_coroutine_threadsafe(function.user(**kwargs), self._event_loop()).result()
        with self._slots:
            return function.user(**kwargs)

    def close(self) -> None:
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


# --------------------------------------------------------------------------------------------------
# Storage clients


def _session(pool_size: int) -> Any:
    import requests

    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _client_factory(connection: str, settings: Mapping[str, str], session: Any) -> Callable[[str], Any]:
    """Connection names resolve like WebJobs: `AzureWebJobs<name>`, then `<name>`, then identity settings."""
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.queue import LinearRetry, QueueClient

    # Short SDK retries: the listener backs off on its own, and a stop must not wait out 15 s SDK backoffs.
    options = {
        "retry_policy": LinearRetry(backoff=0.3, random_jitter_range=0.1, retry_total=2),
        "connection_timeout": 5,
    }
    connection_string = settings.get(f"AzureWebJobs{connection}") or settings.get(connection)
    if connection_string:
        return lambda queue: QueueClient.from_connection_string(
            connection_string, queue, transport=RequestsTransport(session=session, session_owner=False), **options
        )
    uri = settings.get(f"{connection}__queueServiceUri") or settings.get(f"{connection}__serviceUri")
    account = settings.get(f"{connection}__accountName")
    if not uri and account:
        uri = f"https://{account}.queue.core.windows.net"
    if not uri:
        raise DevHostError(f"connection {connection!r}: no connection string and no {connection}__accountName")
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential()
    return lambda queue: QueueClient(
        uri, queue, credential=credential, transport=RequestsTransport(session=session, session_owner=False), **options
    )


def _storage_error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", "") or "")


# --------------------------------------------------------------------------------------------------
# Queue trigger listener (WebJobs Storage Queues extension: QueueListener + QueueProcessor)


class _Backoff:
    """RandomizedExponentialBackoffStrategy(QueuePollingIntervals.Minimum, maxPollingInterval)."""

    def __init__(self, minimum: float, maximum: float):
        self.minimum, self.maximum = minimum, max(minimum, maximum)
        self.current, self.exponent = minimum, 0

    def next(self, succeeded: bool) -> float:
        import random

        if succeeded:
            self.current, self.exponent = self.minimum, 1
        elif self.current != self.maximum:
            interval = self.minimum
            if self.exponent > 0:
                interval += random.uniform(0.8, 1.2) * 2 ** (self.exponent - 1) * self.minimum
            if interval < self.maximum:
                self.current = interval
                self.exponent += 1
            else:
                self.current = self.maximum
        return self.current


class _QueueListener:
    def __init__(self, host: DevHost, function: _Function, options: QueueOptions, clients: Callable[[str], Any]):
        assert function.queue_name is not None
        self.host, self.function, self.options = host, function, options
        self.queue = clients(function.queue_name)
        # QueueListenerFactory.CreatePoisonQueueReference: none for a poison queue or a too long name.
        poison = function.queue_name + "-poison"
        self.poison = None if function.queue_name.endswith("-poison") or len(poison) > 63 else clients(poison)
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.batch_size + options.threshold, thread_name_prefix=f"dev-host-queue-{function.name}"
        )
        self.thread = threading.Thread(target=self._run, name=f"dev-host-poll-{function.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        self.thread.join()
        self.executor.shutdown(wait=True)
        with contextlib.suppress(Exception):
            self.queue.close()
            if self.poison is not None:
                self.poison.close()

    def _run(self) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        stop, options = self.host._stopping, self.options
        backoff = _Backoff(options.min_polling_interval, options.max_polling_interval)
        found_since_delay, exists, failing = False, False, False
        processing: set[concurrent.futures.Future[None]] = set()
        while not stop.is_set():
            batch = []
            try:
                if not exists:
                    # The listener checks that the queue exists and backs off while it does not; it never
                    # creates the trigger queue.
                    self.queue.get_queue_properties()
                    exists = True
                batch = list(
                    self.queue.receive_messages(
                        messages_per_page=options.batch_size,
                        max_messages=options.batch_size,
                        visibility_timeout=RECEIVE_VISIBILITY_TIMEOUT,
                    )
                )
                failing = False
            except ResourceNotFoundError:
                if exists or not failing:
                    _warn(f"{self.function.name}: queue {self.function.queue_name!r} does not exist yet; polling")
                exists, failing = False, True
            except Exception as exc:  # storage down or unreachable: back off
                if not failing:
                    _warn(f"{self.function.name}: polling {self.function.queue_name!r} failed: {exc!r}")
                exists, failing = False, True
            if not batch:
                stop.wait(backoff.next(found_since_delay))
                found_since_delay = False
                continue
            for message in batch:
                processing.add(self.executor.submit(self._process, message))
            found_since_delay = True
            # WaitForNewBatchThreshold: fetch again once no more than newBatchThreshold are in flight.
            while len(processing) > options.threshold and not stop.is_set():
                _, processing = concurrent.futures.wait(
                    processing, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED
                )
            processing = {future for future in processing if not future.done()}

    def _process(self, message: Any) -> None:
        text: str = message.content or ""
        if message.dequeue_count > self.options.max_dequeue_count:
            self._poison(message, text)  # BeginProcessingMessageAsync
            return
        if self.options.message_encoding == "base64":
            try:
                body = base64.b64decode("".join(text.split()), validate=True)
            except (binascii.Error, ValueError):
                # The extension's MessageDecodingFailed handler moves undecodable messages to the poison queue.
                _warn(f"{self.function.name}: message {message.id} is not base64; moving it to the poison queue")
                self._poison(message, text)
                return
        else:
            body = text.encode("utf-8")
        trigger = QueueMessage(
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        try:
            self.host._invoke(self.function, trigger)
        except Exception:
            _warn(
                f"{self.function.name}: message {message.id} failed (dequeue count {message.dequeue_count}):\n"
                + traceback.format_exc().rstrip()
            )
            if self.poison is None:
                return  # no poison queue: the message stays invisible (no fast infinite loop)
            if message.dequeue_count >= self.options.max_dequeue_count:
                self._poison(message, text)
            else:
                self._storage(
                    "release",
                    lambda: self.queue.update_message(
                        message.id, message.pop_receipt, visibility_timeout=int(self.options.visibility_timeout)
                    ),
                )
            return
        self._storage("delete", lambda: self.queue.delete_message(message.id, message.pop_receipt))

    def _poison(self, message: Any, text: str) -> None:
        if self.poison is None:
            return
        from azure.core.exceptions import ResourceNotFoundError

        _warn(
            f"{self.function.name}: message {message.id} reached MaxDequeueCount of "
            f"{self.options.max_dequeue_count}; moving it to {self.function.queue_name}-poison"
        )

        def add() -> None:
            try:
                self.poison.send_message(text)
            except ResourceNotFoundError:  # AddMessageAndCreateIfNotExistsAsync
                with contextlib.suppress(Exception):
                    self.poison.create_queue()
                self.poison.send_message(text)

        if self._storage("poison", add):
            self._storage("delete", lambda: self.queue.delete_message(message.id, message.pop_receipt))

    def _storage(self, what: str, action: Callable[[], Any]) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            action()
            return True
        except ResourceNotFoundError:
            return False  # message or queue gone: nothing to do
        except Exception as exc:
            if _storage_error_code(exc) == "PopReceiptMismatch":
                return False  # someone else took the message over
            _warn(f"{self.function.name}: {what} failed: {exc!r}")
            return False


# --------------------------------------------------------------------------------------------------
# HTTP front end


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], host: DevHost):
        self.dev_host = host
        self.connections: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        self.lock = threading.Lock()
        self.accepted = 0
        self.nodelay = 0
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # One thread per connection (keep-alive), tracked so that server_close() can join them all.
        thread = threading.Thread(target=self._serve, args=(request, client_address), name="dev-host-connection")
        with self.lock:
            self.threads.add(thread)
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.lock:
                self.threads.discard(threading.current_thread())

    def server_close(self) -> None:
        super().server_close()
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join()

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's getfqdn() reverse lookup
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.accepted += 1
            self.nodelay += bool(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            self.connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def end_idle_connections(self) -> None:
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)  # a blocked read returns EOF; a response in flight completes


class _BodyTooLarge(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "dev.host"
    timeout = KEEP_ALIVE_TIMEOUT
    expect_continue = False
    server: _Server

    def handle_expect_100(self) -> bool:
        self.expect_continue = True  # answer 100 only once the body is actually wanted
        return True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        started = time.perf_counter()
        try:
            status, note = self.server.dev_host._handle_http(self)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        finally:
            self.expect_continue = False
        if self.server.dev_host.access_log:
            elapsed = (time.perf_counter() - started) * 1000
            _warn(f"{self.command} {self.path} -> {status} in {elapsed:.1f} ms{note}")

    def read_body(self, limit: int) -> bytes:
        """The raw body; over `limit` raises _BodyTooLarge before reading it (Content-Length) or on the way."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._continue()
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(8192).strip():
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > limit:
                    raise _BodyTooLarge
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = self.content_length()
        if length > limit:
            raise _BodyTooLarge
        if length == 0:
            return b""
        self._continue()
        data = self.rfile.read(length)
        if len(data) < length:
            raise ConnectionError("request body cut short")
        return data

    def content_length(self) -> int:
        value = self.headers.get("Content-Length")
        if value is None:
            return 0
        if not value.strip().isdigit():
            raise ValueError("bad Content-Length")
        return int(value)

    def skip_body(self) -> None:
        """Answering without reading the body: drain a small one to keep the connection, else close it."""
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        try:
            length = self.content_length()
        except ValueError:
            length = -1
        if chunked or length < 0 or (length and self.expect_continue) or length > 1_048_576:
            self.close_connection = True
        elif length:
            self.rfile.read(length)

    def _continue(self) -> None:
        if self.expect_continue:
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.expect_continue = False

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {email.utils.formatdate(usegmt=True)}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        bodiless = status < 200 or status in (204, 304)
        if not bodiless:
            lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if bodiless or self.command == "HEAD" else head + body)


def _response_parts(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """What the worker's HttpResponseConverter and the host's HTTP binding make of a return value."""
    if result is None:
        return 200, [], b""  # no response set: the host answers OkResult
    if isinstance(result, str):
        return 200, [("Content-Type", "text/plain; charset=utf-8")], result.encode("utf-8")
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function must return func.HttpResponse or str, not {type(result).__name__}")
    headers = [(str(name), str(value)) for name, value in result.headers.items()]
    names = {name.lower() for name, _ in headers}
    if "content-type" not in names:
        mimetype = result.mimetype
        headers.append(
            ("Content-Type", f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype)
        )
    for name, value in headers:
        # ASP.NET refuses control characters and non-Latin-1 text in headers: the request fails with 500.
        if not name or any(char in name + value for char in "\r\n") or not (name + value).isascii():
            raise ValueError(f"invalid response header {name!r}")
    headers = [(n, v) for n, v in headers if n.lower() not in ("content-length", "transfer-encoding", "connection")]
    return int(result.status_code), headers, result.get_body() or b""


# --------------------------------------------------------------------------------------------------
# The host


class DevHost:
    """Serves a `func.FunctionApp`: HTTP routes, queue triggers, admin invocations (timers)."""

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        route_prefix: str = DEFAULT_ROUTE_PREFIX,
        cors_origins: Iterable[str] = (),
        cors_credentials: bool = False,
        custom_headers: Mapping[str, str] | None = None,
        settings: Mapping[str, str] | None = None,
        queues: QueueOptions | None = None,
        max_request_body: int | None = None,
        thread_count: int | None = None,
        poll_queues: bool = True,
        access_log: bool = False,
        function_directory: str | os.PathLike[str] | None = None,
    ):
        self.settings: dict[str, str] = dict(os.environ if settings is None else settings)
        self.route_prefix = route_prefix.strip("/")
        self.custom_headers = dict(custom_headers or {})
        self.queue_options = queues or QueueOptions()
        self.max_request_body = (
            max_request_body
            if max_request_body is not None
            else self._setting_int("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", DEFAULT_MAX_REQUEST_BODY)
        )
        self.thread_count = thread_count or self._setting_int("PYTHON_THREADPOOL_THREAD_COUNT", DEFAULT_THREAD_COUNT)
        self.poll_queues = poll_queues
        self.access_log = access_log
        self.function_directory = str(function_directory or Path.cwd())
        self.default_port = DEFAULT_PORT
        self.cors = _Cors(cors_origins, cors_credentials) if any(o.strip() for o in cors_origins) else None
        self.functions = _index(app, self.settings)
        self._by_name = {function.name.lower(): function for function in self.functions}
        routes = []
        for function in self.functions:
            if function.is_http and not function.disabled:
                route = function.trigger.get("route") or function.name
                template = f"{self.route_prefix}/{route.lstrip('/')}" if self.route_prefix else route
                routes.append(_Route.compile(function, template, _binding_methods(function.trigger)))
        self.routes = sorted(routes, key=functools.cmp_to_key(_compare_routes))
        self._invoker = _Invoker(self.thread_count)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._listeners: list[_QueueListener] = []
        self._admin = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dev-host-admin")
        self._output_clients: dict[str, Callable[[str], Any]] = {}
        self._sessions: list[Any] = []

    def _setting_int(self, name: str, default: int) -> int:
        value = (self.settings.get(name) or "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else default

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> DevHost:
        if self._server is not None:
            raise DevHostError("already started")
        self._stopping.clear()
        if self.poll_queues:
            factories: dict[str, Callable[[str], Any]] = {}
            pool = self.queue_options.batch_size + self.queue_options.threshold + 4
            for function in self.functions:
                if function.trigger_type == "queueTrigger" and not function.disabled:
                    assert function.connection is not None
                    if function.connection not in factories:
                        session = _session(pool)
                        self._sessions.append(session)
                        factories[function.connection] = _client_factory(function.connection, self.settings, session)
                    self._listeners.append(
                        _QueueListener(self, function, self.queue_options, factories[function.connection])
                    )
        self._server = _Server((host, port), self)
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="dev-host-http", daemon=True
        )
        self._serve_thread.start()
        for listener in self._listeners:
            listener.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise DevHostError("not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (keep-alive clients reuse one)."""
        return self._server.accepted if self._server else 0

    @property
    def nodelay_connections(self) -> int:
        """Accepted connections on which TCP_NODELAY is confirmed set."""
        return self._server.nodelay if self._server else 0

    def stop(self) -> None:
        """Stop accepting, let in-flight work finish, stop pollers; leaves no threads behind."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.end_idle_connections()
            server.server_close()  # joins the connection threads
            assert self._serve_thread is not None
            self._serve_thread.join()
        for listener in self._listeners:
            listener.join()
        self._listeners = []
        for session in self._sessions:
            session.close()
        self._sessions, self._output_clients = [], {}
        self._admin.shutdown(wait=True)
        self._admin = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dev-host-admin")
        self._invoker.close()

    def __enter__(self) -> DevHost:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- invocation --------------------------------------------------------------------------------

    def function(self, name: str) -> _Function:
        function = self._by_name.get(name.lower())
        if function is None:
            raise DevHostError(f"no function named {name!r}")
        return function

    def _invoke(self, function: _Function, trigger_value: Any) -> Any:
        """Run one invocation; output bindings are written only when it succeeds, as the host does."""
        kwargs: dict[str, Any] = {function.trigger_arg: self._convert_trigger(function, trigger_value)}
        if function.wants_context:
            kwargs["context"] = _Context(function.name, self.function_directory)
        outputs = {b["name"]: _Out() for b in function.queue_outputs if b["name"] != "$return"}
        kwargs.update(outputs)
        result = self._invoker.call(function, kwargs)
        for binding in function.queue_outputs:
            value = result if binding["name"] == "$return" else outputs[binding["name"]].get()
            if value is not None:
                self._write_queue_output(function, binding, value)
        return result

    @staticmethod
    def _convert_trigger(function: _Function, value: Any) -> Any:
        if isinstance(value, func.QueueMessage) and function.trigger_annotation in (str, bytes):
            body = value.get_body()
            return body if function.trigger_annotation is bytes else body.decode("utf-8")
        return value

    def _write_queue_output(self, function: _Function, binding: Mapping[str, Any], value: Any) -> None:
        from azure.core.exceptions import ResourceNotFoundError

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
        connection = binding.get("connection") or "AzureWebJobsStorage"
        if connection not in self._output_clients:
            session = _session(8)
            self._sessions.append(session)
            self._output_clients[connection] = _client_factory(connection, self.settings, session)
        client = self._output_clients[connection](_queue_name(binding["queueName"], self.settings, function.name))
        with client:
            for payload in payloads:
                try:
                    client.send_message(payload)
                except ResourceNotFoundError:  # the output binding creates its queue
                    with contextlib.suppress(Exception):
                        client.create_queue()
                    client.send_message(payload)

    def run_function(self, name: str, input: str = "") -> Any:
        """Invoke a non-HTTP function now, like the admin API; raises what the function raises."""
        function = self.function(name)
        if function.trigger_type == "timerTrigger":
            trigger: Any = TimerRequest(past_due=False, schedule={"AdjustForDST": True}, schedule_status=None)
        elif function.trigger_type == "queueTrigger":
            # StringToStorageQueueMessageConverter: QueueMessage(null id, null pop receipt, input, dequeueCount 0)
            trigger = QueueMessage(id=None, body=(input or "").encode("utf-8"), dequeue_count=0, pop_receipt=None)
        else:
            raise DevHostError(f"{function.name} is an HTTP function: call it over HTTP")
        return self._invoke(function, trigger)

    def _run_admin(self, function: _Function, input_text: str) -> None:
        try:
            self.run_function(function.name, input_text)
        except Exception:
            _warn(f"{function.name}: invocation through the admin API failed:\n" + traceback.format_exc().rstrip())

    # -- HTTP --------------------------------------------------------------------------------------

    def _handle_http(self, handler: _Handler) -> tuple[int, str]:
        method = handler.command.upper()
        target = urlsplit(handler.path)
        raw_path = target.path or "/"
        headers = handler.headers
        origin = headers.get("Origin")
        if self.cors and origin and method == "OPTIONS" and "Access-Control-Request-Method" in headers:
            # CorsMiddleware short-circuits every preflight with 204, with headers only for allowed origins.
            handler.skip_body()
            handler.send(204, self.cors.headers(origin, headers))
            return 204, " (CORS preflight)"
        cors_headers = self.cors.headers(origin) if self.cors and origin else []
        path = _decode_path(raw_path)
        if path.lower().startswith("/admin/"):
            return self._handle_admin(handler, method, path, cors_headers)
        for route in self.routes:
            route_params = route.match(path, method)
            if route_params is not None:
                break
        else:
            handler.skip_body()
            handler.send(404, self._with_custom(cors_headers))
            return 404, ""
        function = route.function
        try:
            body = handler.read_body(self.max_request_body)
        except _BodyTooLarge:
            handler.close_connection = True
            handler.send(413, self._with_custom(cors_headers))
            return 413, f" ({function.name})"
        except ValueError:
            handler.close_connection = True
            handler.send(400, cors_headers)
            return 400, ""
        request = func.HttpRequest(
            method,
            self._request_url(handler, target),
            headers=self._request_headers(headers),
            params=self._query(target.query),
            route_params=route_params,
            body=body,
        )
        try:
            status, response_headers, response_body = _response_parts(self._invoke(function, request))
        except Exception:  # the host answers 500, empty body
            _warn(f"{function.name}: {method} {handler.path} failed:\n" + traceback.format_exc().rstrip())
            handler.send(500, self._with_custom(cors_headers))
            return 500, f" ({function.name})"
        handler.send(status, self._with_cors(self._with_custom(response_headers), cors_headers), response_body)
        return status, f" ({function.name})"

    def _handle_admin(self, handler: _Handler, method: str, path: str, cors: list[tuple[str, str]]) -> tuple[int, str]:
        match = re.fullmatch(r"/admin/functions/([^/]+)/?", path, re.IGNORECASE)
        if not match or method != "POST":
            handler.skip_body()
            handler.send(404, cors)
            return 404, ""
        try:
            body = handler.read_body(self.max_request_body)
        except (_BodyTooLarge, ValueError):
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
        self._admin.submit(self._run_admin, function, text)  # the host runs it in the background: 202 at once
        handler.send(202, cors)
        return 202, f" (admin: {function.name})"

    def _with_custom(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        # CustomHttpHeadersMiddleware: Response.Headers.TryAdd for each host.json customHeaders entry.
        present = {name.lower() for name, _ in headers}
        return headers + [(k, v) for k, v in self.custom_headers.items() if k.lower() not in present]

    @staticmethod
    def _with_cors(headers: list[tuple[str, str]], cors: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if not cors:
            return headers
        replaced = {name.lower() for name, _ in cors if name.lower() != "vary"}
        return [(n, v) for n, v in headers if n.lower() not in replaced] + cors

    @staticmethod
    def _request_url(handler: _Handler, target: Any) -> str:
        host = handler.headers.get("Host") or "{}:{}".format(*handler.server.server_address[:2])
        query = f"?{target.query}" if target.query else ""
        return f"http://{host}{target.path or '/'}{query}"

    @staticmethod
    def _request_headers(headers: Any) -> dict[str, str]:
        merged: dict[str, str] = {}
        for name, value in headers.items():
            key = name.lower()
            merged[key] = f"{merged[key]},{value}" if key in merged else value
        return merged

    @staticmethod
    def _query(query: str) -> dict[str, str]:
        # ASP.NET's query collection is case-insensitive; repeated keys join with ",".
        merged: dict[str, str] = {}
        keys: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            key = keys.setdefault(name.lower(), name)
            merged[key] = f"{merged[key]},{value}" if key in merged else value
        return merged

    # -- description -------------------------------------------------------------------------------

    def describe(self, base_url: str | None = None) -> list[str]:
        base = base_url or (self.url if self._server else f"http://127.0.0.1:{self.default_port}")
        lines = []
        width = max((len(function.name) for function in self.functions), default=0)
        for function in self.functions:
            if function.disabled:
                detail = "disabled (AzureWebJobs.<name>.Disabled)"
            elif function.is_http:
                methods = _binding_methods(function.trigger)
                shown = ",".join(sorted(methods)) if methods else "all methods"
                route = function.trigger.get("route") or function.name
                prefix = f"/{self.route_prefix}" if self.route_prefix else ""
                detail = f"[{shown}] {base}{prefix}/{route.lstrip('/')}"
            elif function.trigger_type == "queueTrigger":
                detail = f"queue {function.queue_name!r} (connection {function.connection})"
                if not self.poll_queues:
                    detail += ", not polled"
            else:
                schedule = function.trigger.get("schedule")
                detail = f"timer {schedule!r}, not scheduled: POST {base}/admin/functions/{function.name}"
            if function.retry:
                detail += " (retry policy ignored by the dev host)"
            lines.append(f"  {function.name.ljust(width)}  {detail}")
        return lines

    def banner(self) -> str:
        lines = [f"dev.host: Functions app on {self.url} (Core Tools stand-in; Ctrl-C or SIGTERM stops it)"]
        lines.append("Functions:")
        lines += self.describe() or ["  (none)"]
        lines.append(
            "Timer triggers are NOT scheduled by the dev host: run one with "
            'POST /admin/functions/<name> {"input": ""} or `python -m dev.host --run-timer NAME`.'
        )
        if self.cors:
            origins = "*" if self.cors.any_origin else ", ".join(sorted(self.cors.origins))
            lines.append(f"CORS: {origins} (credentials {'on' if self.cors.credentials else 'off'})")
        lines.append(f"Request body limit: {self.max_request_body} bytes; worker threads: {self.thread_count}")
        return "\n".join(lines)

    # -- project loading ---------------------------------------------------------------------------

    @classmethod
    def from_project(cls, root: Path, settings_override: Mapping[str, str] | None = None, **kwargs: Any) -> DevHost:
        """Read host.json and local.settings.json, merge settings into os.environ, import `function_app`.

        The process environment wins over `local.settings.json` `Values` (as app settings do in Azure);
        `settings_override` wins over both. Import errors (the app's own SettingsError) propagate.
        """
        root = Path(root).resolve()
        local = _read_json(root / "local.settings.json")
        host_json = _read_json(root / "host.json")
        for name, value in (local.get("Values") or {}).items():
            os.environ.setdefault(name, _setting_text(value))
        for name, value in (settings_override or {}).items():
            os.environ[name] = value
        local_host = local.get("Host") or {}
        extensions = host_json.get("extensions") or {}
        http = _ci_get(extensions, "http") or {}
        prefix = _ci_get(http, "routePrefix")
        kwargs.setdefault("route_prefix", DEFAULT_ROUTE_PREFIX if prefix is None else str(prefix))
        kwargs.setdefault("custom_headers", _ci_get(http, "customHeaders") or {})
        kwargs.setdefault("queues", QueueOptions.from_host_json(_ci_get(extensions, "queues")))
        kwargs.setdefault("cors_origins", [o for o in str(_ci_get(local_host, "CORS") or "").split(",") if o])
        kwargs.setdefault("cors_credentials", _truthy(_ci_get(local_host, "CORSCredentials", False)))
        kwargs.setdefault("function_directory", root)
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
        host = cls(app, settings=dict(os.environ), **kwargs)
        port = _ci_get(local_host, "LocalHttpPort")
        host.default_port = int(port) if port else DEFAULT_PORT
        return host


def _read_json(path: Path) -> dict[str, Any]:
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


def _host_json_log_level(root: Path) -> int | None:
    levels = (_read_json(root / "host.json").get("logging") or {}).get("logLevel") or {}
    text = str(_ci_get(levels, "Function") or _ci_get(levels, "default") or "Information").lower()
    return {
        "trace": logging.DEBUG,
        "debug": logging.DEBUG,
        "information": logging.INFO,
        "warning": logging.WARNING,
        "error": logging.ERROR,
        "critical": logging.CRITICAL,
        "none": None,
    }.get(text, logging.INFO)


def _is_settings_error(exc: BaseException) -> bool:
    try:
        from shared.settings import SettingsError
    except ImportError:
        return type(exc).__name__ == "SettingsError"
    return isinstance(exc, SettingsError)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dev.host",
        description="Serve ./function_app.py like `func start`: HTTP routes, queue triggers, admin API for timers.",
    )
    parser.add_argument("--port", type=int, help="port (default: local.settings.json Host.LocalHttpPort, else 7071)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--run-timer", metavar="NAME", help="run the timer function NAME once in-process and exit")
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request to stderr")
    parser.add_argument("--cors", help="comma-separated allowed origins, over Host.CORS (as `func start --cors`)")
    parser.add_argument("--cors-credentials", action="store_true", help="allow credentials (`func start` flag)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    root = Path.cwd()
    level = _host_json_log_level(root)
    if level is not None:
        logging.basicConfig(level=level, stream=sys.stderr, format="[%(asctime)s] %(name)s: %(message)s")
        logging.getLogger("azure").setLevel(max(level, logging.WARNING))
    try:
        cors = {"cors_origins": [o.strip() for o in args.cors.split(",") if o.strip()]} if args.cors else {}
        if args.cors_credentials:
            cors["cors_credentials"] = True
        host = DevHost.from_project(root, access_log=args.access_log, poll_queues=not args.run_timer, **cors)
    except DevHostError as exc:
        print(f"dev.host: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if _is_settings_error(exc):
            print(f"settings: {exc}", file=sys.stderr)
            return 1
        raise

    if args.run_timer:
        try:
            function = host.function(args.run_timer)
            if function.trigger_type != "timerTrigger":
                raise DevHostError(f"{function.name} is not a timer function")
            host.run_function(function.name)
            return 0
        except DevHostError as exc:
            print(f"dev.host: {exc}", file=sys.stderr)
            return 1
        except Exception:
            traceback.print_exc()
            return 1
        finally:
            host.stop()

    port = args.port if args.port is not None else host.default_port
    try:
        host.start(args.host, port)
    except OSError as exc:
        print(f"dev.host: cannot listen on {args.host}:{port}: {exc}", file=sys.stderr)
        host.stop()
        return 1
    print(host.banner(), flush=True)
    while not stop.wait(0.5):
        pass
    host.stop()
    print("dev.host: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

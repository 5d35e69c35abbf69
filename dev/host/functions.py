"""The app's functions as the Python worker indexes them (trigger, output bindings, parameters), and the
refusal, naming each problem at once, of an app that uses what the dev host does not serve."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from dev.host.configuration import truthy
from dev.host.diagnostics import DevHostError
from dev.host.storage import DEFAULT_CONNECTION, queue_name

HTTP, QUEUE, TIMER = "httpTrigger", "queueTrigger", "timerTrigger"


@dataclass
class Function:
    """One function of the app: its trigger, its queue outputs and how its Python function is called."""

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
        return self.trigger_type == HTTP

    @property
    def is_queue(self) -> bool:
        return self.trigger_type == QUEUE

    @property
    def is_timer(self) -> bool:
        return self.trigger_type == TIMER

    @property
    def route(self) -> str:
        """The HTTP trigger's route template, before the prefix: the function's name when it sets none."""
        return self.trigger.get("route") or self.name

    @property
    def methods(self) -> frozenset[str] | None:
        """The HTTP trigger's methods, upper case; None: every method."""
        methods = self.trigger.get("methods")
        if not methods:
            return None
        return frozenset(str(getattr(method, "value", method)).upper() for method in methods)


def _direction(binding: Mapping[str, Any]) -> str:
    direction = binding.get("direction")
    return str(getattr(direction, "name", direction)).upper()


def index(app: func.FunctionApp, settings: Mapping[str, str]) -> list[Function]:
    try:
        functions = app.get_functions()
    except ValueError as exc:
        raise DevHostError(
            f"{exc} (FunctionApp.get_functions() works once per app instance: build a fresh app per DevHost)"
        ) from exc
    indexed: list[Function] = []
    problems: list[str] = []
    for function in functions:
        name = function.get_function_name()
        bindings = function.get_bindings_dict()["bindings"]
        trigger = function.get_trigger()
        trigger_type = trigger.get_binding_name() if trigger is not None else None
        trigger_binding = next((b for b in bindings if b.get("type") == trigger_type), None)
        if trigger_binding is None or trigger_binding["type"] not in (HTTP, QUEUE, TIMER):
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
            Function(
                name=name,
                user=user,
                is_async=inspect.iscoroutinefunction(user),
                trigger=trigger_binding,
                trigger_type=trigger_binding["type"],
                trigger_arg=trigger_binding["name"],
                trigger_annotation=trigger_param.annotation if trigger_param else inspect.Parameter.empty,
                wants_context="context" in signature.parameters,
                queue_outputs=queue_outputs,
                disabled=truthy(settings.get(f"AzureWebJobs.{name}.Disabled", "")),
                retry=function.get_setting("retry") is not None,
            )
        )
        if indexed[-1].is_queue and not indexed[-1].disabled:
            indexed[-1].queue_name = queue_name(trigger_binding["queueName"], settings, f"function {name}")
            indexed[-1].connection = trigger_binding.get("connection") or DEFAULT_CONNECTION
    if problems:
        raise DevHostError("cannot serve this app:\n  " + "\n  ".join(problems))
    return indexed

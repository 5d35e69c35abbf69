"""The HTTP API's conventions (contract section 1), in one place for every handler.

`Endpoints(settings)` wraps each handler: on a deployment missing a setting, 503 `misconfigured`
naming it (every route but health and the OpenAPI document); the body-size limit; problems turned
into problem responses, any other exception logged and answered with a 500 problem without
internals; and one JSON log line per request: operation, meetingId, callerId (the public id),
status, problem (its slug, or null) and durationMs. The Python worker forwards only the message to
Application Insights, so the fields live in the message for KQL's `parse_json(message)`
(docs/operations.md). `background` does the same for queue and timer functions: on a misconfigured
deployment they do nothing but log why.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError

from shared import problems
from shared.settings import Settings

log = logging.getLogger("meetings.api")

MAX_BODY_BYTES = 64 * 1024

_caller_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("caller_id", default=None)

Handler = Callable[[func.HttpRequest], func.HttpResponse]


class Endpoints:
    def __init__(self, settings: Settings):
        self._problems = settings.problems

    def __call__(self, operation: str, always: bool = False) -> Callable[[Handler], Handler]:
        """The wrapper of one HTTP function; `always`: serve even on a misconfigured deployment."""
        return endpoint(operation, () if always else self._problems)

    def background(self, function: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> None:
            if self._problems:
                log.error("%s skipped: the deployment is misconfigured (%s)", function.__name__, _names(self._problems))
                return
            function(*args, **kwargs)

        return run


def _names(settings_problems: tuple[str, ...]) -> str:
    return ", ".join(problem.split(":", 1)[0] for problem in settings_problems)


def endpoint(operation: str, misconfigured: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(req: func.HttpRequest) -> func.HttpResponse:
            started = time.perf_counter()
            token = _caller_id.set(None)
            # The problem's slug tells apart answers that share a status (503: storage or the provider).
            failure: problems.Problem | None = None
            try:
                if misconfigured:
                    raise problems.Misconfigured(
                        f"This deployment is missing or has a malformed setting: {_names(misconfigured)}.",
                        retry_after=300,
                    )
                if len(req.get_body() or b"") > MAX_BODY_BYTES:
                    raise problems.PayloadTooLarge(f"The body must be at most {MAX_BODY_BYTES} bytes.")
                response = handler(req)
            except problems.Problem as problem:
                failure = problem
            except AzureError as error:
                # Storage answered with a failure, or not at all: a dependency problem, not ours.
                log.warning("storage failure in %s: %s", operation, type(error).__name__)
                failure = problems.Unavailable("Storage is unavailable; retry.", retry_after=2)
            except Exception:
                log.exception("unhandled error in %s", operation)
                failure = problems.Internal("An unexpected error occurred.")
            finally:
                caller_id = _caller_id.get()
                _caller_id.reset(token)
            if failure is not None:
                response = problems.to_response(failure)
            log.info(
                json.dumps(
                    {
                        "operation": operation,
                        "meetingId": req.route_params.get("meetingId"),
                        "callerId": caller_id,
                        "status": response.status_code,
                        "problem": failure.slug if failure is not None else None,
                        "durationMs": round((time.perf_counter() - started) * 1000, 1),
                    }
                )
            )
            return response

        return run

    return wrap


def identify(caller_id: str) -> None:
    """Record the caller's public id for this request's log line."""
    _caller_id.set(caller_id)


def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        mimetype="application/json",
        charset="utf-8",
    )


def no_content(headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(status_code=204, headers={"Cache-Control": "no-store", **(headers or {})})


def json_body(req: func.HttpRequest) -> Any:
    """The request's JSON body: 415 unless it is JSON, 400 unless it parses."""
    content_type = (req.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise problems.UnsupportedMediaType("Send the body as application/json.")
    try:
        return json.loads(req.get_body().decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise problems.Validation("The body is not valid JSON (UTF-8).") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")

"""Domain errors and their RFC 9457 problem responses (contract section 1).

Each exception carries its HTTP status and problem type; `to_response` is the one place that turns
them into `application/problem+json`. Handlers raise, never build error responses themselves.
"""

from __future__ import annotations

import json
import math
from typing import Any

import azure.functions as func

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = dict(headers or {})
        self.extensions = extensions

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:meetings:problem:{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extensions)
        return body


class Validation(Problem):
    status, slug, title = 400, "validation", "The request is not valid"

    @classmethod
    def field(cls, pointer: str, message: str) -> Validation:
        return cls(f"{pointer or '/'}: {message}", errors=[{"field": pointer, "message": message}])


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "A valid bearer token is required"

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class InsufficientScope(Problem):
    status, slug, title = 403, "insufficient-scope", "The token lacks the required scope"

    def __init__(self, scope: str):
        super().__init__(
            f"The token must carry the '{scope}' scope.",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "This action is not allowed for your role"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "The request conflicts with the current state"


class Cancelled(Problem):
    status, slug, title = 409, "cancelled", "The meeting is cancelled"


class JoinWindow(Problem):
    status, slug, title = 409, "join-window", "The meeting cannot be joined now"


class PreconditionFailed(Problem):
    status, slug, title = 412, "precondition-failed", "The resource has changed (If-Match does not match)"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "The request body is too large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "The request body must be application/json"


class _RetryLater(Problem):
    def __init__(self, detail: str | None = None, *, retry_after: float = 1, **extensions: Any):
        seconds = max(1, math.ceil(retry_after))
        super().__init__(detail, headers={"Retry-After": str(seconds)}, retryAfterSeconds=seconds, **extensions)


class RateLimited(_RetryLater):
    status, slug, title = 429, "rate-limited", "Too many requests"


class ProviderRejected(Problem):
    status, slug, title = 502, "provider-rejected", "The video provider rejected the request"


class ProviderUnavailable(_RetryLater):
    status, slug, title = 503, "provider-unavailable", "The video provider is unavailable"


class ProviderTimeout(Problem):
    status, slug, title = 504, "provider-timeout", "The video provider did not answer in time"


class Unavailable(_RetryLater):
    status, slug, title = 503, "unavailable", "A dependency is unavailable"


class Misconfigured(_RetryLater):
    status, slug, title = 503, "misconfigured", "This deployment is missing a required setting"


class Internal(Problem):
    status, slug, title = 500, "internal", "Internal error"


def to_response(problem: Problem) -> func.HttpResponse:
    headers = {"Cache-Control": "no-store", **problem.headers}
    return func.HttpResponse(
        json.dumps(problem.body(), ensure_ascii=False),
        status_code=problem.status,
        headers=headers,
        mimetype=PROBLEM_JSON,
        charset="utf-8",
    )

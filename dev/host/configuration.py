"""host.json and app-setting values as the Functions host reads them: case-insensitive keys, .NET TimeSpans,
`%NAME%` binding expressions, and the queue options of `extensions.queues` with the Storage extension's defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dev.host.diagnostics import DevHostError

# host.json extensions.http.routePrefix when it is not set.
DEFAULT_ROUTE_PREFIX = "api"
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$")


def parse_timespan(value: str) -> float:
    """A .NET TimeSpan string (`[d.]hh:mm:ss[.fffffff]`, as host.json uses) in seconds."""
    match = _TIMESPAN.match(str(value).strip())
    if not match:
        raise DevHostError(f"not a TimeSpan (hh:mm:ss): {value!r}")
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return total + (float("0." + fraction) if fraction else 0.0)


def ci_get(mapping: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """.NET configuration keys are case-insensitive."""
    for name, value in mapping.items():
        if name.lower() == key.lower():
            return value
    return default


def truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true")


def resolve_expression(value: str, settings: Mapping[str, str], where: str) -> str:
    """Binding expressions `%NAME%` resolve from app settings; an unknown one fails indexing."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if not settings.get(name):
            raise DevHostError(f"{where}: '%{name}%' does not resolve to a value (app setting {name} is missing)")
        return settings[name]

    return re.sub(r"%([^%]+)%", replace, value)


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
        for key, attribute, convert in (
            ("batchSize", "batch_size", int),
            ("newBatchThreshold", "new_batch_threshold", int),
            ("maxDequeueCount", "max_dequeue_count", int),
            ("maxPollingInterval", "max_polling_interval", parse_timespan),
            ("visibilityTimeout", "visibility_timeout", parse_timespan),
            ("messageEncoding", "message_encoding", lambda text: str(text).lower()),
        ):
            value = ci_get(section, key)
            if value is not None:
                kwargs[attribute] = convert(value)
        return cls(**kwargs)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.batch_size > 32:
            raise DevHostError("queues.batchSize must be 1..32")
        if self.max_dequeue_count < 1:
            raise DevHostError("queues.maxDequeueCount must be greater than zero")
        if self.message_encoding not in ("base64", "none"):
            raise DevHostError("queues.messageEncoding must be base64 or none")

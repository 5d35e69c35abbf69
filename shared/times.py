"""Instants and time zones: RFC 3339 in, RFC 3339 UTC with `Z` out, IANA zones checked."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# RFC 3339 date-time: an explicit offset is required (a local time is ambiguous).
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def now() -> datetime:
    return datetime.now(UTC)


def parse_rfc3339(value: str) -> datetime | None:
    """The instant, in UTC, or None when `value` is not an RFC 3339 date-time with an offset."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return None
    text = value.upper().replace("Z", "+00:00")
    fraction = re.search(r"\.(\d+)", text)
    if fraction and len(fraction.group(1)) > 6:
        text = text.replace(fraction.group(0), "." + fraction.group(1)[:6])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.year < 1601:
        return None
    return parsed.astimezone(UTC)


def format_utc(instant: datetime | None) -> str | None:
    if instant is None:
        return None
    instant = instant.astimezone(UTC)
    if instant.microsecond:
        return instant.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0") + "Z"
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.cache
def _zone_names() -> frozenset[str]:
    from zoneinfo import available_timezones

    return frozenset(available_timezones())


def valid_zone(name: str) -> bool:
    """A real IANA zone name (not a file path, not 'localtime')."""
    if not isinstance(name, str) or name not in _zone_names():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def from_timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)

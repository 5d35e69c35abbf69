"""Instants and time zones: RFC 3339 in, RFC 3339 UTC with `Z` out, one stored form, IANA zones checked.

Stored instants are `stamp`s: UTC, microseconds, fixed width (`2026-11-25T10:00:00.000000Z`), so that
comparing the strings compares the instants, in filters and in keys alike. Nothing is stored in any
other form.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime

# RFC 3339 date-time: an explicit offset is required (a local time is ambiguous). ASCII digits only.
_RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> datetime:
    return datetime.now(UTC)


def parse_rfc3339(value: object) -> datetime | None:
    """The instant, in UTC, or None when `value` is not an RFC 3339 date-time with an offset (or no instant
    this code can compute with: years before 1601, or an offset pushing it past year 9999)."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return None
    text = value.upper().replace("Z", "+00:00")
    fraction = re.search(r"\.([0-9]+)", text)
    if fraction and len(fraction.group(1)) > 6:
        text = text.replace(fraction.group(0), "." + fraction.group(1)[:6])
    try:
        parsed = datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    if parsed.year < 1601:
        return None
    return parsed


def format_utc(instant: datetime | None) -> str | None:
    """The API's form: RFC 3339 UTC with `Z`, fractions only when there are some."""
    if instant is None:
        return None
    instant = instant.astimezone(UTC)
    if instant.microsecond:
        return instant.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0") + "Z"
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(instant: datetime | None) -> str:
    """The stored form of an instant ("" for none): fixed width, so string order is time order."""
    if instant is None:
        return ""
    return instant.astimezone(UTC).strftime(_STAMP)


def from_stamp(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value, _STAMP).replace(tzinfo=UTC)


def render(value: str | None) -> str | None:
    """A stored stamp in the API's form."""
    return format_utc(from_stamp(value))


def seconds_between(start: str | None, end: str | None) -> int | None:
    """Whole seconds between two stamps, or None when either is missing or they are out of order."""
    if not start or not end or end < start:
        return None
    return round((from_stamp(end) - from_stamp(start)).total_seconds())


def from_timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# Zones that tzdata lists but that name no place a meeting happens in.
_NOT_MEETING_ZONES = frozenset({"Factory", "localtime", "posixrules"})


@functools.cache
def _zone_names() -> frozenset[str]:
    """Every zone name tzdata lists, canonical or alias: its own list, not the files on this machine."""
    from importlib import resources

    names = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return frozenset(names) - _NOT_MEETING_ZONES


def valid_zone(name: object) -> bool:
    """A real IANA zone name (not a file path, not `localtime`, `posixrules` or `Factory`)."""
    return isinstance(name, str) and name in _zone_names()

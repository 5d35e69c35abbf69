"""Input rules every request body and query shares (contract section 1: 400, never a 5xx, nothing changed).

Strings are checked for lone UTF-16 surrogates (JSON may carry `"\\udfff"`, which no storage or provider
accepts), and names and addresses also for control and bidirectional-override characters (which make
one address or name display as another). Integers are ASCII digits within range; instants are RFC 3339
with an offset, in years this code can schedule (2000 to 2200); zones are names tzdata lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared import problems, times

_SURROGATE = re.compile(r"[\ud800-\udfff]")
# C0 and C1 controls, DEL; and the bidirectional embeddings, overrides and isolates (Trojan Source).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# Deliberately simple: the address only has to be deliverable-looking; Entra proves ownership.
_EMAIL = re.compile(
    r"^[^@\s\"(),:;<>\[\\\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
EARLIEST_YEAR, LATEST_YEAR = 2000, 2200


def invalid(pointer: str, message: str) -> problems.Validation:
    return problems.Validation.field(pointer, message)


def reject_unknown(body: Mapping[str, Any], allowed: set[str] | frozenset[str], prefix: str = "") -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        pointer = f"{prefix}/{escape(unknown[0])}"
        raise problems.Validation(
            f"Unknown field {pointer}.",
            errors=[{"field": f"{prefix}/{escape(name)}", "message": "unknown field"} for name in unknown],
        )


def escape(name: str) -> str:
    """A JSON Pointer reference token (RFC 6901), safe to echo: surrogates and controls shown escaped."""
    token = name.replace("~", "~0").replace("/", "~1")
    return _SURROGATE.sub(_escaped, _CONTROL.sub(_escaped, token))


def _escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group(0)):04x}"


def obj(value: Any, pointer: str, what: str = "must be a JSON object") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(pointer, what)
    return value


def text(value: Any, pointer: str, *, low: int, high: int, multiline: bool = False) -> str:
    """A string of `low` to `high` characters, no lone surrogates, no control characters (but line
    breaks and tabs where `multiline`), no bidirectional overrides."""
    if not isinstance(value, str) or not low <= len(value) <= high or (low and not value.strip()):
        raise invalid(pointer, f"must be a string of {low} to {high} characters")
    if _SURROGATE.search(value):
        raise invalid(pointer, "must not contain unpaired surrogates")
    controls = _CONTROL.findall(value)
    if any(char not in "\n\r\t" for char in controls) or (controls and not multiline):
        raise invalid(pointer, "must not contain control characters")
    if _BIDI.search(value):
        raise invalid(pointer, "must not contain bidirectional control characters")
    return value


def email(value: Any, pointer: str) -> str:
    """A deliverable-looking address, lower-cased."""
    if not isinstance(value, str) or len(value) > 254 or _SURROGATE.search(value) or _BIDI.search(value):
        raise invalid(pointer, "must be an email address")
    stripped = value.strip()
    if _CONTROL.search(stripped) or not _EMAIL.match(stripped):
        raise invalid(pointer, "must be an email address")
    return stripped.lower()


def instant(value: Any, pointer: str) -> datetime:
    parsed = times.parse_rfc3339(value)
    if parsed is None:
        raise invalid(pointer, "must be an RFC 3339 date-time with an offset")
    if not EARLIEST_YEAR <= parsed.year <= LATEST_YEAR:
        raise invalid(pointer, f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return parsed


def zone(value: Any, pointer: str) -> str:
    if not times.valid_zone(value):
        raise invalid(pointer, "must be an IANA time zone name, such as Europe/Berlin")
    return value


def boolean(value: Any, pointer: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(pointer, "must be true or false")
    return value


def choice(value: Any, pointer: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise invalid(pointer, "must be one of " + ", ".join(allowed))
    return value


def query(params: Mapping[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise problems.Validation(f"Unknown query parameter '{escape(unknown[0])[:50]}'.")


def limit(params: Mapping[str, str], default: int = 50, high: int = 100) -> int:
    """`?limit=`: ASCII digits only (no `²`, `①` or thousands of digits), 1 to `high`."""
    raw = params.get("limit")
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,3}", raw) or not 1 <= int(raw) <= high:
        raise problems.Validation(f"limit must be a whole number from 1 to {high}.")
    return int(raw)

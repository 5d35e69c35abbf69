"""Opaque list cursors, sealed with an HMAC: the server accepts only cursors it issued, for that caller
and that list, so a forged cursor cannot steer a query anywhere (not even into the caller's own other rows).

A cursor is base64url(JSON position) + "." + base64url(HMAC-SHA256 over the list's name, the caller and
the position), the key derived from ID_HASH_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

from shared import problems

MAX_CHARACTERS = 2048
# Exactly what `seal` writes: unpadded base64url, and a 16-byte seal (22 characters, the last one of four).
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_SEAL = re.compile(r"[A-Za-z0-9_-]{21}[AQgw]")


def seal(key: bytes, listing: str, caller_id: str, position: Any) -> str:
    body = _b64(json.dumps(position, separators=(",", ":"), ensure_ascii=True).encode("ascii"))
    return f"{body}.{_b64(_mac(key, listing, caller_id, body))}"


def open_(key: bytes, listing: str, caller_id: str, cursor: str | None) -> Any:
    """The position a cursor holds, or None for no cursor; 400 for anything this server did not issue."""
    if cursor is None:
        return None
    body, dot, signature = cursor.partition(".")
    if not dot or len(cursor) > MAX_CHARACTERS or not _BASE64URL.fullmatch(body) or not _SEAL.fullmatch(signature):
        raise _invalid()
    given = base64.urlsafe_b64decode(signature + "==")
    if not hmac.compare_digest(given, _mac(key, listing, caller_id, body)):
        raise _invalid()
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def _mac(key: bytes, listing: str, caller_id: str, body: str) -> bytes:
    derived = hmac.new(key, b"cursor", hashlib.sha256).digest()
    # The listing names a meeting id from the path, which may be any text (a cursor for it is then simply not
    # ours); "surrogatepass" so that even an unpaired surrogate is bytes here, not an exception.
    message = f"{listing}\x1f{caller_id}\x1f{body}".encode("utf-8", "surrogatepass")
    return hmac.new(derived, message, hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _invalid() -> problems.Validation:
    return problems.Validation("The cursor is not valid (use the nextCursor of the previous page).")

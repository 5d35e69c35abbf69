"""Recording files: generated, deterministic bytes behind expiring signed links, as the providers' storage serves them.

A recording's link is `{stand-in}/__files/recordings/{id}?expires=...&sig=...` (an HMAC over the id and the
expiry, as a presigned storage URL is); once `expires` has passed the file answers 403 and the provider's
recording API (`GET /recordings/{id}`) hands out a fresh link to the same bytes. Byte ranges are served as
S3 and R2 serve them (`Range: bytes=N-`, 206 with `Content-Range`), so a download can resume.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class LinkError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def link(base_url: str, secret: bytes, recording_id: str, expires: int) -> tuple[str, str]:
    """A recording's download link valid until `expires` (epoch seconds), and that time as RFC 3339."""
    query = f"expires={expires}&sig={_signature(secret, recording_id, expires)}"
    expiry = datetime.fromtimestamp(expires, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{base_url}/__files/recordings/{recording_id}?{query}", expiry


def check_link(secret: bytes, recording_id: str, query: Mapping[str, list[str]], now: float) -> None:
    """LinkError 403 unless the link is ours and has not expired."""
    try:
        expires = int(query.get("expires", [""])[-1])
    except ValueError:
        raise LinkError(403, "not a valid download link") from None
    given = query.get("sig", [""])[-1]
    if not hmac.compare_digest(given.encode(), _signature(secret, recording_id, expires).encode()):
        raise LinkError(403, "not a valid download link")
    if now > expires:
        raise LinkError(403, "the download link has expired; ask the recordings API for a fresh one")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte a `Range` header asks for; None for the whole file; LinkError 416 when unsatisfiable."""
    match = _RANGE.fullmatch((header or "").strip())
    if match is None:
        return None  # absent or a form this stand-in does not serve: the whole file, as servers may answer
    first = int(match.group(1))
    last = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    if first >= size or last < first:
        raise LinkError(416, "range not satisfiable")
    return first, last


def content(recording_id: str, size: int, first: int = 0, last: int | None = None) -> Iterator[bytes]:
    """Bytes `first`..`last` of a recording: the same for the same id and size, generated chunk by chunk."""
    last = size - 1 if last is None else last
    index = first // CHUNK
    skip = first - index * CHUNK
    while index * CHUNK <= last:
        start = index * CHUNK
        chunk = hashlib.shake_256(f"{recording_id}:{index}".encode()).digest(min(CHUNK, size - start))
        end = min(len(chunk), last - start + 1)
        yield chunk[skip:end]
        skip = 0
        index += 1


def _signature(secret: bytes, recording_id: str, expires: int) -> str:
    digest = hmac.new(secret, f"{recording_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

"""The HTTP trigger and its `$return`: the `func.HttpRequest` the worker builds from a request (the URL as the
client sent it, the path decoded as Kestrel decodes it, repeated headers and query keys joined with ","), and
the HTTP answer the host makes of what the function returns."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote

import azure.functions as func


def decode_path(raw_path: str) -> str:
    # Kestrel decodes the path except for %2F, which stays encoded.
    return unquote(re.sub(r"%2[fF]", "%252F", raw_path))


def http_request(
    method: str,
    target: SplitResult,
    headers: Any,
    server_address: tuple[Any, ...],
    route_params: dict[str, str],
    body: bytes,
) -> func.HttpRequest:
    host = headers.get("Host") or "{}:{}".format(*server_address[:2])
    query = f"?{target.query}" if target.query else ""
    return func.HttpRequest(
        method,
        f"http://{host}{target.path or '/'}{query}",
        headers={name.lower(): value for name, value in _joined(headers.items()).items()},
        # ASP.NET's query collection is case-insensitive too.
        params=_joined(parse_qsl(target.query, keep_blank_values=True)),
        route_params=route_params,
        body=body,
    )


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Values of a repeated name (compared case-insensitively) joined with ",", under its first spelling."""
    merged: dict[str, str] = {}
    keys: dict[str, str] = {}
    for name, value in pairs:
        key = keys.setdefault(name.lower(), name)
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    return merged


def response_parts(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
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

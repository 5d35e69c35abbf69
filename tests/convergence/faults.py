"""Fault injection at the servers: an operation's steps, counted where they arrive, and a fault aimed at one.

Every request an operation makes reaches one of three servers the tests own: the counting proxy in front of
Azurite's tables, the one in front of its queues, and the provider stand-in. The `Injector` sits in all three
(their `interceptor` hooks), so it sees the requests in the order they arrive, whichever process sent them. A
clean run of an operation, recorded, is its list of steps: each a request shape (`signature`) and which one of
that shape it was (its ordinal), so the fault matrix follows the code rather than a list written by hand.

Fault kinds, and what they do to the step they aim at:

- storage (`table`, `queue`): `503` (refused, not applied; the same request shape keeps failing until the
  operation has answered, so the SDK's own retries fail too), `drop` (applied, then the connection closes
  without an answer: the client cannot know, and its SDK retries), `kill` (applied, then the process dies);
- provider: `4xx` and `5xx` (refused, not applied; the shape keeps failing, so the client's retries fail too),
  `timeout` (applied, but answered only after the client gave up), `kill`.

A kill needs the process to stop right there. Against the app on the dev host it is a real SIGKILL (the
interceptor kills the process before the server answers). In-process it is `Killed`, raised in the
operation's thread by its transports (`Gate`): a BaseException, so no `except Exception` in the app catches it,
and once the gate has tripped every further request of that instance fails before it is sent, from any of its
threads, so nothing more of it reaches a server: what a dead process would do.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter

from dev.counting_proxy import Intercept
from dev.provider import Fault

KINDS: dict[str, tuple[str, ...]] = {
    "table": ("503", "drop", "kill"),
    "queue": ("503", "drop", "kill"),
    "provider": ("4xx", "5xx", "timeout", "kill"),
}
# The provider client's read timeout in-process, and how late a `timeout` fault answers.
READ_TIMEOUT = 0.5
LATE_BY = 0.8


class Killed(BaseException):
    """The process died here (in-process stand-in for SIGKILL)."""


class Gate:
    """One app instance's life: once tripped, every request of that instance fails (`Killed`)."""

    def __init__(self) -> None:
        self._tripped = threading.Event()

    def trip(self) -> None:
        self._tripped.set()

    @property
    def tripped(self) -> bool:
        return self._tripped.is_set()

    def check(self) -> None:
        if self._tripped.is_set():
            raise Killed

    def answered(self) -> None:
        """A request of the instance got its answer (or failed): the last moment it may die at."""
        self.check()


class Countdown(Gate):
    """An instance that dies right after its `requests`-th request (counted at the client: the model-based
    test picks a moment at random, where the matrix aims at one step)."""

    def __init__(self, requests: int):
        super().__init__()
        self._left = requests
        self._lock = threading.Lock()

    def answered(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self.trip()
        self.check()


class KillableTransport(RequestsTransport):
    """The storage SDK's transport, refusing to send for a dead instance, and dying on the answer it was
    killed in."""

    def __init__(self, gate: Gate):
        # No proxies or .netrc from the environment (looking them up costs a scan of it per request).
        session = requests.Session()
        session.trust_env = False
        super().__init__(session=session, session_owner=True)
        self.gate = gate

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.gate.check()
        try:
            return super().send(request, **kwargs)
        finally:
            self.gate.answered()


class KillableAdapter(HTTPAdapter):
    """The same for `requests` (the provider client, Graph)."""

    def __init__(self, gate: Gate, **kwargs: Any):
        super().__init__(**kwargs)
        self.gate = gate

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.gate.check()
        try:
            return super().send(request, *args, **kwargs)
        finally:
            self.gate.answered()


# Request shapes ---------------------------------------------------------------------------------------------

QUEUE_BUSY = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
    "<Message>The server is busy (injected).</Message></Error>"
)
_ENTITY = re.compile(r"^(?P<table>[^(/]+)(?P<args>\(.*\))?$")
_ROW_KEY = re.compile(r"RowKey='(?P<key>[^']*)'")
_BATCH_LINE = re.compile(r"^(POST|PUT|PATCH|MERGE|DELETE) https?://[^/]+/[^/]+/(?P<target>\S+) HTTP/1\.1", re.M)
_BODY_ROW_KEY = re.compile(r'"RowKey": "(?P<key>[^"]*)"')
_PROVIDER_IDS = re.compile(r"/(meetings|participants|webhooks)/[^/]+")


def row_kind(row_key: str) -> str:
    """What a Meetings row is, from its key (docs/data-model.md), for readable step names."""
    parts = row_key.split("|")
    if parts[0] == "s":
        return "index"
    if parts[0] == "k":
        return "idempotency"
    if parts[0] == "q":
        return "quota"
    if parts[0] != "m":
        return row_key.split("|", 1)[0] or "row"
    if len(parts) == 2:
        return "meeting"
    return {"i": "invite", "p": "participant", "f": "marker", "o": "outbox", "w": "activity"}.get(parts[2], parts[2])


def _table_target(target: str, prefix: str) -> tuple[str, str] | None:
    """(table, row kind) of an entity URL path `Table(...)`/`Table()`/`Table`; None when not this prefix's."""
    match = _ENTITY.match(unquote(target.split("?", 1)[0]))
    if match is None or not match.group("table").startswith(prefix):
        return None
    table = match.group("table")[len(prefix) :]
    key = _ROW_KEY.search(match.group("args") or "")
    if table == "Meetings" and key is not None:
        return table, row_kind(key.group("key"))
    return table, ""


def storage_signature(server: str, method: str, target: str, body: bytes | None, prefix: str) -> str | None:
    """A storage request's shape, e.g. `table batch Meetings[invite,marker,meeting]`, `queue put jobs`;
    None for requests that are not this prefix's, or are background noise (the closed-account gate's reads)."""
    path = urlsplit(target).path
    name = unquote(path.split("/", 2)[2]) if path.count("/") >= 2 else ""
    if server == "queue":
        queue, _, rest = name.partition("/")
        if not queue.startswith(prefix):
            return None
        queue = queue[len(prefix) :]
        if rest.startswith("messages"):
            verb = {"POST": "put", "GET": "get", "DELETE": "delete", "PUT": "update"}.get(method, method)
            return f"queue {verb} {queue}"
        return f"queue {method} {queue}"
    if name == "$batch":
        text = (body or b"").decode("utf-8", "replace")
        tables, kinds = set(), set()
        for line in _BATCH_LINE.finditer(text):
            found = _table_target(line.group("target"), prefix)
            if found is None:
                return None
            tables.add(found[0])
            kinds.add(found[1])
        if not tables:
            return None
        kinds.update(row_kind(key) for key in _BODY_ROW_KEY.findall(text) if "Meetings" in tables)
        kinds.discard("")
        return f"table batch {','.join(sorted(tables))}[{','.join(sorted(kinds))}]"
    if name == "Tables":
        return "table create-table" if prefix in (body or b"").decode("utf-8", "replace") else None
    found = _table_target(name, prefix)
    if found is None:
        return None
    table, kind = found
    if table == "ClosedAccounts" and method == "GET":
        return None  # every instance's gate refreshes its snapshot once a second: no step of any operation
    if method == "POST" and table == "Meetings":
        key = _BODY_ROW_KEY.search((body or b"").decode("utf-8", "replace"))
        kind = row_kind(key.group("key")) if key else ""
    shape = "query" if method == "GET" and name.endswith("()") else method
    return f"table {shape} {table}" + (f"[{kind}]" if kind else "")


def provider_signature(mode: str, method: str, path: str) -> str:
    return f"provider {method} " + _PROVIDER_IDS.sub(lambda m: f"/{m.group(1)}/{{id}}", path)


@dataclass(frozen=True)
class Step:
    """One request of an operation: its shape and which of that shape it was (1 = the first)."""

    server: str  # table | queue | provider
    signature: str
    ordinal: int

    @property
    def label(self) -> str:
        return f"{self.signature}#{self.ordinal}"


@dataclass
class Aim:
    step: Step
    kind: str
    kill: Callable[[], None] | None
    fired_at: float | None = None


class Injector:
    """Installed in the tables proxy, the queues proxy and the provider stand-in; records or aims."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prefix: str | None = None
        self._recording: list[Step] | None = None
        self._counts: Counter[str] = Counter()
        self._aim: Aim | None = None
        self._hot = False

    def install(self, tables: Any, queues: Any, provider: Any) -> None:
        tables.interceptor = lambda method, target, body: self._storage("table", method, target, body)
        queues.interceptor = lambda method, target, body: self._storage("queue", method, target, body)
        provider.interceptor = self._provider

    # Control

    def record(self, prefix: str) -> list[Step]:
        """Start recording the steps of this prefix's requests; the list fills as they arrive."""
        with self._lock:
            self._prefix, self._counts, self._aim = prefix, Counter(), None
            self._recording = []
            return self._recording

    def aim(self, prefix: str, step: Step, kind: str, kill: Callable[[], None] | None) -> Aim:
        with self._lock:
            self._prefix, self._counts, self._recording, self._hot = prefix, Counter(), None, False
            self._aim = Aim(step, kind, kill)
            return self._aim

    def stop(self) -> Aim | None:
        """Stop recording or aiming (the faults clear); the aim, telling whether and when it fired."""
        with self._lock:
            aim, self._aim, self._recording, self._prefix = self._aim, None, None, None
            return aim

    def settle(self, aim: Aim | None) -> None:
        """Wait out a late answer still on its way (a `timeout` fault applies after the client gave up)."""
        if aim is not None and aim.kind == "timeout" and aim.fired_at is not None:
            remaining = aim.fired_at + LATE_BY + 0.2 - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)

    # The servers' hooks

    def _see(self, server: str, signature: str | None) -> Aim | None:
        """Count the request; the aim when this request is (or, for a failing shape, follows) its target."""
        if signature is None:
            return None
        with self._lock:
            self._counts[signature] += 1
            ordinal = self._counts[signature]
            if self._recording is not None:
                self._recording.append(Step(server, signature, ordinal))
                return None
            aim = self._aim
            if aim is None or aim.step.signature != signature:
                return None
            if ordinal == aim.step.ordinal:
                aim.fired_at = time.monotonic()
                return aim
            if ordinal > aim.step.ordinal and aim.kind in ("503", "4xx", "5xx"):
                return aim  # the same request again (a retry): it keeps failing until the operation answered
            return None

    def _storage(self, server: str, method: str, target: str, body: bytes | None) -> Intercept | None:
        prefix = self._prefix
        if prefix is None:
            return None
        aim = self._see(server, storage_signature(server, method, target, body, prefix))
        if aim is None:
            return None
        if aim.kind == "503":
            return Intercept(status=503, body=QUEUE_BUSY if server == "queue" else "")
        if aim.kind == "drop":
            return Intercept(drop=True)
        return Intercept(drop=True, then=aim.kill)

    def _provider(self, mode: str, method: str, path: str, query: str) -> Fault | None:
        if self._prefix is None or path.startswith("/webhooks"):
            return None
        aim = self._see("provider", provider_signature(mode, method, path))
        if aim is None:
            return None
        if aim.kind == "4xx":
            return Fault(status=400)
        if aim.kind == "5xx":
            return Fault(status=500)
        if aim.kind == "timeout":
            return Fault(delay=LATE_BY, apply=True)
        return Fault(apply=True, drop=True, then=aim.kill)

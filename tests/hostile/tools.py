"""What the hostile tests share: polling with a deadline, the app's tables, a domain context on the app's own
storage, and a table proxy that commits a request and then loses its answer."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from azure.data.tables import TableServiceClient

from dev.counting_proxy import CountingProxy
from dev.provider import participant_joined
from tests import support


def poll(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.02) -> Any:
    """The predicate's first truthy value; TimeoutError at the deadline (not an AssertionError: the xfail markers
    here expect the defect's assertion, so a setup that never got there fails loudly)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting")
        time.sleep(interval)


def table(app, name: str):
    service = TableServiceClient.from_connection_string(app.storage.server.connection_string)
    return service.get_table_client(f"{app.prefix}{name}")


def row(app, name: str, partition: str, row_key: str) -> dict | None:
    try:
        return table(app, name).get_entity(partition, row_key)
    except Exception:  # missing row or table
        return None


def every_value(app):
    """Every string and binary value of every table of this app (for erasure checks)."""
    service = TableServiceClient.from_connection_string(app.storage.server.connection_string)
    for listed in service.list_tables():
        if not listed.name.startswith(app.prefix):
            continue
        for entity in service.get_table_client(listed.name).list_entities():
            for key in ("PartitionKey", "RowKey", *entity):
                value = entity.get(key)
                if isinstance(value, bytes):
                    yield listed.name, value.decode("utf-8", "replace")
                elif isinstance(value, str):
                    yield listed.name, value


def leftovers(app, *needles: str) -> list[tuple[str, str]]:
    lowered = [needle.lower() for needle in needles]
    return [(name, value[:120]) for name, value in every_value(app) if any(n in value.lower() for n in lowered)]


def domain_context(app):
    """A `Context` on the app's own tables, queues and provider (as a second instance of it would build)."""
    from shared.closed_accounts import ClosedAccounts
    from shared.context import Context
    from shared.provider import ProviderClient
    from shared.storage import Storage as AppStorage

    settings = support.load(
        AzureWebJobsStorage=app.storage.connection_string,
        TABLE_PREFIX=app.prefix,
        DYTE_API_BASE_URL=app.provider.dyte_base_url,
    )
    ctx = Context(
        settings,
        AppStorage(settings),
        {"dyte": ProviderClient.for_dyte(app.provider.dyte_credentials(), requests.Session())},
    )
    ctx.closed = ClosedAccounts(ctx.storage, background=False)
    return ctx


def deliver(app, payload) -> None:
    statuses = app.provider.deliver(app.video_provider, payload, url=f"{app.url}/api/webhooks/dyte")
    assert {entry["status"] for entry in statuses} == {200}, statuses


def attend(app, meeting, joined: dict, name: str, session_id: str, peer_id: str) -> None:
    """The provider reports the joined participant (by the join answer) in a session, with its display name."""
    from tests.api.test_joins import participants

    custom = next(p["custom_participant_id"] for p in participants(app, meeting) if p["id"] == joined["participantId"])
    deliver(
        app,
        participant_joined(
            meeting["providerMeetingId"],
            session_id,
            peer_id=peer_id,
            custom_participant_id=custom,
            name=name,
            joined_at="2031-01-01T10:00:00Z",
        ),
    )


class _Lost(ConnectionError):
    """Raised after forwarding: the proxy's handler ends quietly and the client sees the connection close."""


class LossyProxy(CountingProxy):
    """A table proxy that forwards matching requests to Azurite (so they commit) and then loses the answer,
    as a connection reset or a timeout after the server committed does, or replaces it with a 5xx, as a
    gateway that timed out after the server committed does."""

    def __init__(self, upstream_port: int):
        super().__init__(upstream_port)
        self._losses: list[list] = []
        self._holds: list[list] = []

    def lose(self, pattern: str, times: int = 1, status: int | None = None) -> None:
        """Lose the answers of the next `times` requests whose path or body matches; with `status`, answer that."""
        with self._lock:
            self._losses.append([re.compile(pattern), times, status])

    def unspent(self) -> int:
        """How many answers asked for are not lost yet (a test whose pattern matched nothing tests nothing)."""
        with self._lock:
            return sum(loss[1] for loss in self._losses)

    def hold(self, pattern: str, most: float = 8.0) -> tuple[threading.Event, threading.Event]:
        """Hold the next request whose path or body matches before forwarding it, until released (at most
        `most` seconds, under the storage client's read timeout): a slow storage request at an exact step.
        (arrived, release): `arrived` is set once it is held; set `release` to let it go on."""
        arrived, release = threading.Event(), threading.Event()
        with self._lock:
            self._holds.append([re.compile(pattern), arrived, release, most])
        return arrived, release

    def _send(self, method, path, body, headers):
        text = (body or b"").decode("utf-8", "replace")
        with self._lock:
            held = next((h for h in self._holds if h[0].search(path) or h[0].search(text)), None)
            if held is not None:
                self._holds.remove(held)
        if held is not None:
            held[1].set()
            held[2].wait(held[3])
        answer = super()._send(method, path, body, headers)
        with self._lock:
            for loss in self._losses:
                if loss[1] > 0 and (loss[0].search(path) or loss[0].search(text)):
                    loss[1] -= 1
                    if loss[2] is None:
                        raise _Lost
                    return loss[2], "Gateway Timeout", [("Content-Type", "text/plain")], b"lost"
        return answer


def lossy_app(storage, provider, issuer):
    """The app on its own process whose table requests pass through a `LossyProxy`; (app, proxy)."""
    from dev.harness import Storage, start_app

    proxy = LossyProxy(storage.server.table_port).start()
    lossy = Storage(storage.server, proxy, storage.queues)
    return start_app(lossy, provider, issuer, "dyte"), proxy

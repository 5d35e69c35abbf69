"""Bulk writes straight to Azurite, for seeding the scale bench: entity-group transactions built by hand.

The SDK's `submit_transaction` spends about half a millisecond of Python per entity building and
parsing multipart bodies with the `email` package; seeding a million rows that way takes longer than
the bench may. This sends the same wire format (one changeset of up to 100 inserts in one partition,
Shared Key signed as the SDK signs it) from a few threads on kept-alive connections. It only seeds:
the app's own code never writes this way.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import http.client
import json
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from email.utils import formatdate
from typing import Any

from dev.azurite import ACCOUNT, KEY

MAX_OPERATIONS = 100  # Table Storage's limit per entity-group transaction


def edm(entity: dict[str, Any]) -> dict[str, Any]:
    """The entity as the SDK puts it on the wire: typed values annotated (`name@odata.type`)."""
    wire: dict[str, Any] = {}
    for name, value in entity.items():
        if isinstance(value, bool) or value is None:
            wire[name] = value
        elif isinstance(value, int):
            if not -(2**31) <= value < 2**31:
                raise TypeError(f"{name}: the app never stores 64-bit integers (the SDK refuses them)")
            wire[name] = value
        elif isinstance(value, float):
            wire[name], wire[f"{name}@odata.type"] = value, "Edm.Double"
        elif isinstance(value, bytes):
            wire[name], wire[f"{name}@odata.type"] = base64.b64encode(value).decode("ascii"), "Edm.Binary"
        elif isinstance(value, str):
            wire[name] = value
        else:
            raise TypeError(f"{name}: {type(value).__name__} is not a stored type here")
    return wire


class Writer:
    """Inserts into Azurite's table endpoint: `insert_all` groups rows into transactions by partition."""

    def __init__(self, table_port: int, threads: int = 3, host: str = "127.0.0.1"):
        self._host, self._port, self._threads = host, table_port, threads
        self._local = threading.local()
        self._key = base64.b64decode(KEY)
        self.requests = 0
        self.rows = 0
        self.rows_by_table: dict[str, int] = {}
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=300)
            self._local.connection = connection
        return connection

    def _signed(self, method: str, path: str, content_type: str) -> dict[str, str]:
        date = formatdate(usegmt=True)
        # Shared Key for the Table service: verb, Content-MD5, Content-Type, x-ms-date, canonicalized resource.
        to_sign = f"{method}\n\n{content_type}\n{date}\n/{ACCOUNT}{path}"
        signature = base64.b64encode(hmac.new(self._key, to_sign.encode("utf-8"), hashlib.sha256).digest())
        return {
            "x-ms-date": date,
            "x-ms-version": "2019-02-02",
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": content_type,
            "Accept": "application/json",
            "Authorization": f"SharedKey {ACCOUNT}:{signature.decode('ascii')}",
        }

    def _send(self, method: str, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, path, body=body, headers=self._signed(method, path, content_type))
                response = connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _transaction(self, table: str, rows: list[dict[str, Any]]) -> None:
        if len(rows) == 1:
            status, data = self._send(
                "POST", f"/{ACCOUNT}/{table}", json.dumps(edm(rows[0])).encode(), "application/json"
            )
            if status != 201:
                raise RuntimeError(f"insert into {table} answered {status}: {data[:300]!r}")
        else:
            batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
            parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
            url = f"http://{self._host}:{self._port}/{ACCOUNT}/{table}"
            for n, row in enumerate(rows):
                body = json.dumps(edm(row))
                parts.append(
                    f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                    f"Content-ID: {n}\r\n\r\nPOST {url} HTTP/1.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body.encode())}\r\nDataServiceVersion: 3.0\r\n"
                    f"Accept: application/json;odata=minimalmetadata\r\nPrefer: return-no-content\r\n\r\n{body}\r\n"
                )
            parts.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n")
            status, data = self._send(
                "POST", f"/{ACCOUNT}/$batch", "".join(parts).encode(), f"multipart/mixed; boundary={batch}"
            )
            text = data.decode("utf-8", "replace")
            if status != 202 or text.count("HTTP/1.1 20") != len(rows):
                raise RuntimeError(f"transaction on {table} answered {status}: {text[:600]}")
        with self._lock:
            self.requests += 1
            self.rows += len(rows)
            self.rows_by_table[table] = self.rows_by_table.get(table, 0) + len(rows)

    def insert_all(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        """Insert every row (none may exist), as transactions of up to 100 rows of one partition."""
        in_flight: collections.deque[Future] = collections.deque()
        with ThreadPoolExecutor(self._threads, thread_name_prefix="seed") as pool:
            for group in _groups(rows):
                in_flight.append(pool.submit(self._transaction, table, group))
                if len(in_flight) >= 4 * self._threads:  # a bounded window: rows are generated as they go
                    in_flight.popleft().result()
            for future in in_flight:
                future.result()


def _groups(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive rows of one partition, at most MAX_OPERATIONS at a time (rows come partition by partition)."""
    group: list[dict[str, Any]] = []
    for row in rows:
        if group and (row["PartitionKey"] != group[0]["PartitionKey"] or len(group) == MAX_OPERATIONS):
            yield group
            group = []
        group.append(row)
    if group:
        yield group

"""What storage was asked, request by request: a counting proxy that keeps each request, and what a query reads.

`Ledger` is the counting proxy of `dev/counting_proxy.py` that also keeps, for every request it forwards,
the method, the target (path and query), the status and the size of the answer, and how many entities a
table answer held. `Window` is the requests since a mark, by table.

Table Storage keeps one index, clustered on (PartitionKey, RowKey), and a query reads the rows its key
conditions bound, whatever else its filter says ("Design for querying", MicrosoftDocs/azure-docs
`articles/storage/tables/table-storage-design-for-query.md`): a point query reads one row, a range query
the rows between its RowKey bounds in one partition, a partition scan the whole partition, a query with no
PartitionKey equality every partition in its PartitionKey range (the whole table without one). The same
page says an `or` over RowKey values is a partition scan, not a range query. `bounds` reads a filter's
top-level conjunction the same way, so `Reader.rows_in_bounds` can count, in Azurite, the rows the
service would read for it. Azurite itself evaluates every query against every row of the table, so its
latency says nothing about this; the counts do.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from azure.data.tables import TableServiceClient

from dev.counting_proxy import CountingProxy


@dataclass(frozen=True)
class Request:
    method: str
    table: str  # the table (prefix included) or queue the request names; "" for the service itself
    key: tuple[str, str] | None  # a point request's (PartitionKey, RowKey)
    filter: str  # a query's $filter, "" otherwise
    status: int
    bytes: int  # the answer's body
    entities: int  # entities in a table answer (a page of a query, or one for a point read)


class Ledger(CountingProxy):
    """A counting proxy that also keeps every forwarded request (`Request`)."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        super().__init__(upstream_port, upstream_host)
        self.requests: list[Request] = []
        self._entries_lock = threading.Lock()

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]):
        status, reason, response_headers, data = super()._send(method, path, body, headers)
        request = _describe(method, path, status, data, body)
        with self._entries_lock:
            self.requests.append(request)
        return status, reason, response_headers, data

    def mark(self) -> int:
        with self._entries_lock:
            return len(self.requests)

    def since(self, mark: int) -> Window:
        with self._entries_lock:
            return Window(self.requests[mark:])


_POINT = re.compile(r"^(?P<table>[^(]+)\(PartitionKey='(?P<pk>(?:[^']|'')*)',RowKey='(?P<rk>(?:[^']|'')*)'\)$")


_BATCH_TABLE = re.compile(rb"\r\n(?:POST|PUT|PATCH|MERGE|DELETE) https?://[^/\s]+/[^/\s]+/([A-Za-z0-9]+)[(\s]")


def _describe(method: str, target: str, status: int, data: bytes, body: bytes | None) -> Request:
    parts = urlsplit(target)
    segments = unquote(parts.path).strip("/").split("/", 1)  # /devstoreaccount1/<table or queue>...
    resource = segments[1] if len(segments) > 1 else ""
    if resource == "$batch":
        # A transaction names its table in each operation; all are in one table (and one partition).
        named = _BATCH_TABLE.search(body or b"")
        resource = named.group(1).decode() if named else resource
    key = None
    point = _POINT.match(resource)
    if point:
        table = point["table"]
        key = (point["pk"].replace("''", "'"), point["rk"].replace("''", "'"))
    else:
        table = resource.split("(", 1)[0].split("/", 1)[0]
    query = parse_qs(parts.query)
    entities = 0
    if method == "GET" and status == 200 and data[:1] == b"{" and not table.startswith("Tables"):
        try:
            document = json.loads(data)
        except ValueError:
            document = {}
        entities = len(document["value"]) if isinstance(document.get("value"), list) else 1
    return Request(method, table, key, query.get("$filter", [""])[0], status, len(data), entities)


@dataclass
class Window:
    """Requests in order, with the sums the benches report."""

    requests: list[Request] = field(default_factory=list)

    def without(self, *tables: str, prefix: str = "") -> Window:
        names = {prefix + table for table in tables}
        return Window([request for request in self.requests if request.table not in names])

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def bytes(self) -> int:
        return sum(request.bytes for request in self.requests)

    @property
    def entities(self) -> int:
        return sum(request.entities for request in self.requests)


# What a filter's keys bound ----------------------------------------------------------------------------

_KEY_TERM = re.compile(r"^(PartitionKey|RowKey) (eq|ge|gt|le|lt) '((?:[^']|'')*)'$")


def conjuncts(text: str) -> list[str]:
    """The top-level `and` terms of an OData filter, outer parentheses removed."""
    terms, depth, quoted, start, n = [], 0, False, 0, 0
    while n < len(text):
        char = text[n]
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(" and ", n):
            terms.append(text[start:n])
            start = n + 5
            n += 4
        n += 1
    terms.append(text[start:])
    return [_unwrap(term.strip()) for term in terms if term.strip()]


def _unwrap(term: str) -> str:
    while term.startswith("(") and term.endswith(")") and _balanced(term[1:-1]):
        term = term[1:-1].strip()
    return term


def _balanced(text: str) -> bool:
    depth, quoted = 0, False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                return False
    return depth == 0


@dataclass(frozen=True)
class Bounds:
    """The key conditions of a filter's top-level conjunction (each as an OData term), and its shape."""

    partition: tuple[str, ...]  # PartitionKey terms
    rows: tuple[str, ...]  # RowKey terms (they bound the read only under a PartitionKey equality)
    partition_equality: bool
    or_on_row_key: bool  # an `or` over RowKey values: the design guide's partition scan

    @property
    def kind(self) -> str:
        if not self.partition:
            return "table scan"
        if not self.partition_equality:
            return "partition range"
        if self.or_on_row_key:
            return "partition scan (or on RowKey)"
        if any(" eq " in term for term in self.rows):
            return "point"
        return "range" if self.rows else "partition scan"

    def filter(self, partition_only: bool = False) -> str:
        terms = list(self.partition)
        if self.partition_equality and not partition_only:
            terms += self.rows
        return " and ".join(terms)


def bounds(filter_text: str) -> Bounds:
    partition: list[str] = []
    rows: list[str] = []
    or_on_row_key = False
    for term in conjuncts(filter_text):
        match = _KEY_TERM.match(term)
        if match and match[1] == "PartitionKey":
            partition.append(term)
        elif match:
            rows.append(term)
        elif " or " in term and "RowKey" in term:
            or_on_row_key = True
    equality = any(" eq " in term for term in partition)
    return Bounds(tuple(partition), tuple(rows), equality, or_on_row_key)


class Reader:
    """Counts, straight in Azurite (not through a proxy), the rows a query's keys bound."""

    def __init__(self, connection_string: str):
        self._service = TableServiceClient.from_connection_string(connection_string)
        self._cache: dict[tuple[str, str], int] = {}

    def count(self, table: str, key_filter: str) -> int:
        cached = self._cache.get((table, key_filter))
        if cached is None:
            client = self._service.get_table_client(table)
            rows = (
                client.query_entities(key_filter, select=["RowKey"])
                if key_filter
                else client.list_entities(select=["RowKey"])
            )
            cached = self._cache[(table, key_filter)] = sum(1 for _ in rows)
        return cached

    def forget(self) -> None:
        """Counts are cached until the tables change."""
        self._cache.clear()

    def rows_in_bounds(self, request: Request) -> dict[str, Any]:
        """What the service reads for one request: by the keys' bounds, and the whole partition when the
        design guide says the filter makes a partition scan of it."""
        if request.key is not None:
            return {"kind": "point", "rowsInBounds": 1, "rowsInPartition": 1}
        found = bounds(request.filter)
        in_bounds = self.count(request.table, found.filter())
        in_partition = self.count(request.table, found.filter(partition_only=True)) if found.or_on_row_key else None
        return {
            "kind": found.kind,
            "rowsInBounds": in_bounds,
            "rowsInPartition": in_partition if in_partition is not None else in_bounds,
        }

    def read(self, window: Window) -> dict[str, Any]:
        """The rows a window's requests read, summed by the keys' bounds and by the design guide's rule, and
        the kinds of read they were (point, range, partition scan ...)."""
        total: dict[str, Any] = {"rowsInBounds": 0, "rowsInPartition": 0, "kinds": []}
        for request in window.requests:
            if request.method != "GET" or request.status != 200 or not (request.key or request.filter):
                continue
            found = self.rows_in_bounds(request)
            total["rowsInBounds"] += found["rowsInBounds"]
            total["rowsInPartition"] += found["rowsInPartition"]
            total["kinds"].append(found["kind"])
        return total

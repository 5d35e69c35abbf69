"""`make bench-scale` (`python -m bench.scale`): what the background work, the reads and webhook applying cost
when the tables are large, at 1,000 meetings and again at 100,000.

Seeds the world of `bench/world.py` straight into Azurite (transactions of 100 rows in key order,
`bench/bulk.py`), then, at each size:

- every sweep with nothing pending, and with K items pending of its kind: storage requests (table requests
  and queue puts), bytes and entities answered, and the rows their keys bound (what Table Storage would
  read, `bench/ledger.py`); the sweeps run here, in this process, on the app's settings, through a
  proxy of their own;
- get, list, the sessions page and invite, over HTTP from the app on the dev host, as a signed-in owner:
  latency at the client (with a bare point read at that size as the unit), requests and rows read;
- webhook accept and apply per event, run here on the app's code: requests, bytes, rows read, latency.

At the first size, a 1,000-person meeting's joins are applied one by one (the rows each reads) and by eight
threads at once (what a join costs depends on the meeting, not on the tables' size; Azurite's latency does).
Prints a table, writes everything to bench/scale-results.json (gitignored) and exits 1 if a sweep with
nothing pending costs more (requests, bytes or rows read) at the full size than at the first, or an apply
took more than 5 requests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from bench import workload, world
from bench.bulk import Writer
from bench.ledger import Ledger, Reader, Window
from dev.azurite import Azurite
from dev.harness import ROOT, TENANT, App, Storage, User, app_environment, start_app
from dev.issuer import Issuer
from dev.provider import ProviderStandIn, webhooks
from shared import jobs, pending, retention, schema, times
from shared import settings as app_settings
from shared.closed_accounts import ClosedAccounts, hour_of
from shared.context import Context
from shared.events import apply, deliveries, signing
from shared.provider import clients_from_settings
from shared.storage import Storage as AppStorage

RESULTS = ROOT / "bench" / "scale-results.json"
APPLY_BUDGET = 5  # storage requests per session event (docs/data-model.md)
# A million rows in Azurite's memory: more heap than Node's default.
AZURITE_HEAP_MB = 8192
OLD = 10**7  # meeting numbers of the world's long-past meetings (retention deletes them)


@dataclass
class Parts:
    server: Azurite
    app: App
    mine: Storage  # the proxies this process's own storage calls go through (the app has its own)
    ctx: Context
    keys: signing.SigningKeys
    webhook_key: Any
    reader: Reader
    writer: Writer
    world: world.Settings
    log: Path

    def name(self, table: str) -> str:
        return self.app.prefix + table

    def direct(self, table: str) -> TableClient:
        """A table straight in Azurite: for setting up and cleaning, never counted."""
        return TableClient.from_connection_string(self.server.connection_string, self.name(table))


@contextlib.contextmanager
def parts() -> Iterator[Parts]:
    key = webhooks.new_key()
    pem = webhooks.public_pem(key)
    os.environ["NODE_OPTIONS"] = f"--max-old-space-size={AZURITE_HEAP_MB}"  # read by Azurite's node only
    with contextlib.ExitStack() as stop:
        server = stop.enter_context(Azurite())
        app_storage = Storage.start(server, proxy=Ledger)
        stop.callback(app_storage.stop)
        mine = Storage.start(server, proxy=Ledger)
        stop.callback(mine.stop)
        provider = stop.enter_context(ProviderStandIn().start())
        issuer = stop.enter_context(Issuer().start())
        log = stop.enter_context(tempfile.NamedTemporaryFile("w", prefix="bench-scale-", suffix=".log", delete=False))
        app = start_app(app_storage, provider, issuer, "dyte", stderr=log, WEBHOOK_PUBLIC_KEY=pem.replace("\n", "\\n"))
        stop.callback(app.stop)
        # The app serves HTTP only: its queue consumers stay paused (everything queued here is applied here).
        queues = "|".join(schema.QUEUES)
        app_storage.queues.fail("GET", rf"/{app.prefix}({queues})/messages", times=10**9)
        environment = app_environment(
            mine, provider, issuer, VIDEO_PROVIDER="dyte", TABLE_PREFIX=app.prefix, WEBHOOK_PUBLIC_KEY=pem
        )
        settings = app_settings.load(environ=environment, local_settings=workload.NO_LOCAL_SETTINGS)
        ctx = Context(settings=settings, storage=AppStorage(settings), providers=clients_from_settings(settings))
        for table in (*schema.PER_MEETING_TABLES, schema.DELIVERIES, schema.CLOSED_ACCOUNTS):
            ctx.storage.table(table)  # created now, so no measurement pays for it
        for queue in schema.QUEUES:
            ctx.storage.queue(queue)
        seeded_world = world.Settings(
            settings.id_hash_key,
            TENANT,
            settings.event_retention_days,
            settings.meeting_retention_days,
            world.now_utc(),
        )
        yield Parts(
            server,
            app,
            mine,
            ctx,
            signing.SigningKeys.from_settings(settings),
            key,
            Reader(server.connection_string),
            Writer(server.table_port),
            seeded_world,
            Path(log.name),
        )


# Measuring ---------------------------------------------------------------------------------------------------


def measured(parts: Parts, action: Callable[[], Any], rows: bool = True) -> tuple[dict[str, Any], Any]:
    """Run `action` through this process's proxies: requests, bytes, entities, rows read, milliseconds."""
    tables, queues = parts.mine.tables, parts.mine.queues
    assert isinstance(tables, Ledger) and isinstance(queues, Ledger)
    table_mark, queue_mark = tables.mark(), queues.mark()
    started = time.perf_counter()
    result = action()
    elapsed = (time.perf_counter() - started) * 1000
    return describe(parts, tables.since(table_mark), queues.since(queue_mark), elapsed, rows), result


def describe(parts: Parts, tables: Window, queues: Window, ms: float, rows: bool) -> dict[str, Any]:
    puts = sum(1 for request in queues.requests if request.method == "POST")
    found: dict[str, Any] = {
        "requests": len(tables) + puts,
        "tableRequests": len(tables),
        "queuePuts": puts,
        "bytes": tables.bytes + sum(request.bytes for request in queues.requests if request.method == "POST"),
        "entities": tables.entities,
        "ms": round(ms, 2),
    }
    if rows:
        parts.reader.forget()
        found.update(parts.reader.read(tables))
    return found


# Seeding -------------------------------------------------------------------------------------------------------


def seed(parts: Parts, start: int, count: int) -> tuple[world.Block, dict[str, Any]]:
    """Meetings `start` to `start + count - 1`, table by table, each in key order: Azurite keeps an index per
    key property as a sorted array, and rows arriving in key order join it at the end, not in the middle."""
    writer = parts.writer
    before_rows, before_requests = writer.rows, writer.requests
    started = time.perf_counter()
    block = world.Block(parts.world, start, count)
    if start == 0:
        writer.insert_all(parts.name(schema.DELIVERIES), world.last_delivery_rows(parts.world.now))
    records, expiring = block.delivery_rows()
    for table, rows in (
        (schema.MEETINGS, block.meeting_rows()),
        (schema.INVITATIONS, block.invitation_rows()),
        (schema.DELIVERIES, records),
        (schema.EXPIRING, expiring),
        (schema.CLOSED_ACCOUNTS, block.closed_rows(count // 100)),
    ):
        writer.insert_all(parts.name(table), rows)
        elapsed = time.perf_counter() - started
        print(f"  {table}: {writer.rows - before_rows:,} rows so far, {elapsed:.0f} s", flush=True)
    parts.reader.forget()
    return block, {
        "meetings": count,
        "rows": writer.rows - before_rows,
        "transactions": writer.requests - before_requests,
        "seconds": round(time.perf_counter() - started, 1),
    }


def table_sizes(parts: Parts) -> dict[str, int]:
    """Rows seeded so far, by table (counted as written: listing a large table in Azurite takes minutes)."""
    tables = (schema.MEETINGS, schema.INVITATIONS, schema.DELIVERIES, schema.EXPIRING, schema.CLOSED_ACCOUNTS)
    return {table: parts.writer.rows_by_table.get(parts.name(table), 0) for table in tables}


# Sweeps -------------------------------------------------------------------------------------------------------


def sweeps(parts: Parts, gate: ClosedAccounts) -> dict[str, Callable[[], Any]]:
    """What runs in the background whatever the load: the timers' sweeps, the gate's refresh, health's counts
    (`gate` has made its first load, which reads every tombstone once per instance)."""
    ctx = parts.ctx
    return {
        "pending.sweep": lambda: pending.sweep(ctx),
        "deliveries.sweep": lambda: deliveries.sweep(ctx),
        "retention.purge": lambda: retention.purge(ctx),
        "closed accounts refresh": gate.refresh,
        "health: stuck work": lambda: (pending.stuck(ctx, ctx.clock()), deliveries.stuck_count(ctx, ctx.clock())),
        "health: last webhook": lambda: deliveries.last_received(ctx),
    }


def idle_sweeps(parts: Parts, runs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Each sweep with nothing pending (the second run; the first warms its clients)."""
    results = {}
    for name, run in runs.items():
        run()
        results[name], _ = measured(parts, run)
    return results


def busy_sweeps(parts: Parts, runs: dict[str, Callable[[], Any]], k: int, seeded: list[world.Seeded]) -> dict:
    """Each sweep with K items of its kind pending, and what one item adds."""
    ctx, now = parts.ctx, parts.ctx.clock()
    results: dict[str, Any] = {}

    # Follow-ups (and, alike, account closings and mail retries): K pending entries due.
    keys = [schema.pending_follow_up(item.meeting.id) for item in seeded[:k]]
    message = jobs.message(jobs.Kind.FOLLOW_UP, {"meetingId": seeded[0].meeting.id})
    for key in keys:
        pending.announce(ctx, key, schema.JOBS_QUEUE, message, due_in=timedelta(seconds=-1))
    results["pending.sweep"], _ = measured(parts, runs["pending.sweep"], rows=False)
    for key in keys:
        pending.complete(ctx, key)
    clear_queue(parts, schema.JOBS_QUEUE)

    # Deliveries recorded and not applied for 15 minutes.
    rows = []
    for n in range(k):
        body = json.dumps({"event": "meeting.participantJoined", "bench": str(uuid.uuid4()), "n": n}).encode()
        rows += deliveries.entities(deliveries.delivery_key(body), body, "dyte", {}, now - timedelta(minutes=15))
    parts.writer.insert_all(parts.name(schema.DELIVERIES), sorted(rows, key=_key_order))
    results["deliveries.sweep"], _ = measured(parts, runs["deliveries.sweep"], rows=False)
    with parts.direct(schema.DELIVERIES) as table:
        for row in rows:
            table.delete_entity(row["PartitionKey"], row["RowKey"])
    clear_queue(parts, schema.WEBHOOK_QUEUE)

    # Deliveries past their retention: K retention entries due yesterday, and their records.
    days = parts.world.event_retention_days
    records, entries = [], []
    for n in range(k):
        body = json.dumps({"event": "meeting.started", "bench": str(uuid.uuid4()), "n": n}).encode()
        key = deliveries.delivery_key(body)
        received = now - timedelta(days=days + 1)
        records.append({**deliveries.entities(key, body, "dyte", {}, received)[0], "settledAt": times.stamp(received)})
        entries.append(retention.delivery_entry(received, key, days))
    parts.writer.insert_all(parts.name(schema.DELIVERIES), sorted(records, key=_key_order))
    parts.writer.insert_all(parts.name(schema.EXPIRING), sorted(entries, key=_key_order))
    results["retention.purge (deliveries)"], _ = measured(parts, runs["retention.purge"], rows=False)

    # Meetings past their retention: K meetings that ended 400 days ago, entries due yesterday.
    old = world.Block(replace(parts.world, now=now - timedelta(days=400)), OLD + len(seeded) * 10, k, past_days=10)
    parts.writer.insert_all(parts.name(schema.MEETINGS), old.meeting_rows())
    parts.writer.insert_all(parts.name(schema.INVITATIONS), old.invitation_rows())
    for item in old.all():
        parts.writer.insert_all(parts.name(schema.PROVIDER_MEETINGS), [world.mapping_row(item.meeting)])
    yesterday = schema.expiring_partition(retention.day_of(now - timedelta(days=1)))
    due = [
        {"PartitionKey": yesterday, "RowKey": schema.expiring_meeting(item.meeting.id), "meetingId": item.meeting.id}
        for item in old.all()
    ]
    parts.writer.insert_all(parts.name(schema.EXPIRING), sorted(due, key=_key_order))
    results["retention.purge (meetings)"], _ = measured(parts, runs["retention.purge"], rows=False)

    # Accounts closed within the hour.
    hour = schema.closed_partition(hour_of(now))
    tombstones = [
        {"PartitionKey": hour, "RowKey": f"bench{uuid.uuid4().hex}", "closedAt": times.stamp(now)} for _ in range(k)
    ]
    parts.writer.insert_all(parts.name(schema.CLOSED_ACCOUNTS), sorted(tombstones, key=_key_order))
    results["closed accounts refresh"], _ = measured(parts, runs["closed accounts refresh"], rows=False)
    with parts.direct(schema.CLOSED_ACCOUNTS) as table:
        for row in tombstones:
            table.delete_entity(row["PartitionKey"], row["RowKey"])
    parts.reader.forget()
    return results


def _key_order(row: dict[str, Any]) -> tuple[str, str]:
    return row["PartitionKey"], row["RowKey"]


def clear_queue(parts: Parts, name: str) -> None:
    queue = QueueClient.from_connection_string(parts.server.connection_string, parts.name(name))
    with queue, contextlib.suppress(ResourceNotFoundError):
        queue.clear_messages()


# Reads over HTTP ----------------------------------------------------------------------------------------------


def bare_read(parts: Parts, meeting_id: str, samples: int = 50) -> dict[str, float]:
    """A point read of a meeting row straight from Azurite: the unit of the latency ratios at this size."""
    keys = (schema.owner_partition(meeting_id), schema.meeting_key(meeting_id))
    with parts.direct(schema.MEETINGS) as table:
        for _ in range(5):
            table.get_entity(*keys)
        times_ms = []
        for _ in range(samples):
            started = time.perf_counter()
            table.get_entity(*keys)
            times_ms.append((time.perf_counter() - started) * 1000)
    return workload.percentiles(times_ms)


def reads(parts: Parts, block: world.Block, samples: int, analysed: int) -> dict[str, Any]:
    """get, list, the sessions page and invite by owners of seeded past meetings, over HTTP."""
    app = parts.app
    ledger = app.storage.tables
    assert isinstance(ledger, Ledger)
    past = [item for item in block.all() if item.past]
    step = max(1, len(past) // samples)
    chosen = past[::step][:samples]
    session = requests.Session()
    samples_by: dict[str, list[dict[str, Any]]] = {"get": [], "list": [], "sessions page": [], "invite": []}
    # The app's first use of each table creates its client (and the table): not part of any read.
    warm = chosen[-1]
    email = block.email_of(warm.meeting.owner_id)
    token = app.token(email, name=warm.meeting.owner_name)
    for target in (f"/meetings/{warm.meeting.id}", "/meetings", f"/meetings/{warm.meeting.id}/sessions"):
        app.call("GET", target, token, session=session)
    warm_invitee = {"invitees": [{"email": f"scale-warm-{uuid.uuid4().hex[:8]}@contoso.test", "role": "participant"}]}
    app.call("POST", f"/meetings/{warm.meeting.id}/invites", token, session=session, json=warm_invitee)
    for n, item in enumerate(chosen):
        email = block.email_of(item.meeting.owner_id)
        owner = User(app, email, app.token(email, name=item.meeting.owner_name))
        path = f"/meetings/{item.meeting.id}"
        calls = [
            ("get", "GET", path, 200, {}),
            ("list", "GET", "/meetings", 200, {}),
            ("sessions page", "GET", f"{path}/sessions", 200, {}),
        ]
        if n < analysed:
            invitee = {
                "invitees": [{"email": f"scale-guest-{uuid.uuid4().hex[:8]}@contoso.test", "role": "participant"}]
            }
            calls.append(("invite", "POST", f"{path}/invites", 201, {"json": invitee}))
        for name, method, target, expect, extra in calls:
            mark = ledger.mark()
            started = time.perf_counter()
            response = app.call(method, target, owner.token, session=session, **extra)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != expect:
                raise workload.BenchError(f"{method} {target} answered {response.status_code}: {response.text[:300]}")
            window = ledger.since(mark).without(schema.CLOSED_ACCOUNTS, prefix=app.prefix)
            sample: dict[str, Any] = {"ms": elapsed, "requests": len(window), "bytes": window.bytes}
            if n < analysed:
                parts.reader.forget()
                sample.update(parts.reader.read(window))
            samples_by[name].append(sample)
    return {name: summarize(found) for name, found in samples_by.items() if found}


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    latency = workload.percentiles([sample["ms"] for sample in samples])
    found: dict[str, Any] = {"samples": len(samples), **latency}
    for name in ("requests", "bytes", "entities", "rowsInBounds", "rowsInPartition"):
        values = [sample[name] for sample in samples if name in sample]
        if values:
            found[name] = {"mean": round(statistics.mean(values), 1), "max": max(values)}
    return found


# Webhooks -------------------------------------------------------------------------------------------------


def receive(parts: Parts, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The receiver, here: (its cost, the message it queued for the applier)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"dyte-signature": webhooks.sign(parts.webhook_key, body), "dyte-uuid": str(uuid.uuid4())}
    cost, answer = measured(parts, lambda: deliveries.receive(parts.ctx, parts.keys, body, headers), rows=False)
    queued = workload.take_deliveries(parts.server.connection_string, parts.name(schema.WEBHOOK_QUEUE))
    return cost, queued[answer["id"]]


def webhooks_at_size(parts: Parts, block: world.Block, meetings: int, analysed: int) -> dict[str, Any]:
    """A session (start, two joins, two leaves, end) and a recording for future meetings: accept and apply."""
    future = [item for item in block.all() if not item.past][:meetings]
    accepted: list[dict[str, Any]] = []
    applied: dict[str, list[dict[str, Any]]] = {}
    for n, item in enumerate(future):
        meeting = item.meeting
        parts.writer.insert_all(parts.name(schema.PROVIDER_MEETINGS), [world.mapping_row(meeting)])
        provider_id, session = meeting.provider_meeting_id, f"bench-{uuid.uuid4().hex}"
        people = [
            block.participant_id(meeting.id, block.email_of(meeting.owner_id)),
            block.participant_id(meeting.id, item.invitee.email),
        ]
        story = [webhooks.meeting_started(provider_id, session)]
        story += [webhooks.participant_joined(provider_id, session, custom_participant_id=p) for p in people]
        story += [webhooks.participant_left(provider_id, session, custom_participant_id=p) for p in people]
        story += [webhooks.meeting_ended(provider_id, session)]
        story += [webhooks.recording_status(provider_id, str(uuid.uuid4()), status="UPLOADED")]
        for payload in story:
            cost, message = receive(parts, payload)
            accepted.append(cost)
            found, _ = measured(parts, lambda message=message: apply.run(parts.ctx, message), rows=n < analysed)
            applied.setdefault(payload["event"], []).append(found)
            workload.run_jobs(parts.ctx, parts.server.connection_string)
    return {"accept": summarize(accepted), "apply": {event: summarize(found) for event, found in applied.items()}}


def big_meeting(parts: Parts, block: world.Block, people: int, threads: int) -> dict[str, Any]:
    """A meeting whose `people` join at once: each join applied alone (the rows each reads), then another
    meeting's joins applied by `threads` at once (throughput here, and the retries contention costs)."""
    future = [item for item in block.all() if not item.past]
    results: dict[str, Any] = {"people": people}
    for label, item, workers in (("one by one", future[-1], 1), (f"{threads} at once", future[-2], threads)):
        meeting = item.meeting
        parts.writer.insert_all(parts.name(schema.PROVIDER_MEETINGS), [world.mapping_row(meeting)])
        provider_id, session = meeting.provider_meeting_id, f"bench-{uuid.uuid4().hex}"
        _, message = receive(parts, webhooks.meeting_started(provider_id, session))
        apply.run(parts.ctx, message)
        workload.run_jobs(parts.ctx, parts.server.connection_string)
        messages = []
        for n in range(people):
            custom = f"bench-person-{n}-{uuid.uuid4().hex[:8]}"
            joined = webhooks.participant_joined(
                provider_id, session, custom_participant_id=custom, peer_id=f"peer-{n}"
            )
            messages.append(receive(parts, joined)[1])
        low, high = schema.meeting_range(meeting.id)
        in_meeting = f"PartitionKey eq '{meeting.partition}' and RowKey ge '{low}' and RowKey lt '{high}'"
        in_partition = f"PartitionKey eq '{meeting.partition}'"
        if workers == 1:
            costs, reads_at = [], {}
            checkpoints = {1, people // 4, people // 2, 3 * people // 4, people}
            for n, message in enumerate(messages, start=1):
                cost, _ = measured(parts, partial(apply.run, parts.ctx, message), rows=n in checkpoints)
                costs.append(cost)
                if n in checkpoints:
                    # What this join's reads bound, next to what the meeting and its owner's partition hold.
                    reads_at[n] = {
                        "rowsRead": cost["rowsInBounds"],
                        "rowsReadByPartition": cost["rowsInPartition"],
                        "rowsInMeeting": parts.reader.count(parts.name(schema.MEETINGS), in_meeting),
                        "rowsInPartition": parts.reader.count(parts.name(schema.MEETINGS), in_partition),
                    }
            requests_per_join = [cost["requests"] for cost in costs]
            results[label] = {
                "requests": {"mean": round(statistics.mean(requests_per_join), 2), "max": max(requests_per_join)},
                **workload.percentiles([cost["ms"] for cost in costs]),
                "rowsAfterJoin": reads_at,
            }
        else:
            tables = parts.mine.tables
            assert isinstance(tables, Ledger)
            mark = tables.mark()
            started = time.perf_counter()
            with ThreadPoolExecutor(workers, thread_name_prefix="joins") as pool:
                list(pool.map(lambda message: apply.run(parts.ctx, message), messages))
            elapsed = time.perf_counter() - started
            window = tables.since(mark)
            results[label] = {
                "seconds": round(elapsed, 1),
                "joinsPerSecond": round(people / elapsed, 1),
                "requests": len(window),
                "requestsPerJoin": round(len(window) / people, 2),
            }
    return results


# The run ------------------------------------------------------------------------------------------------------


def at_size(parts: Parts, label: str, block: world.Block, args: argparse.Namespace) -> dict[str, Any]:
    print(f"measuring at {label} meetings ...", flush=True)
    gate = ClosedAccounts(parts.ctx.storage, background=False)
    result: dict[str, Any] = {"tables": table_sizes(parts)}
    result["closedAccountsFirstLoad"], _ = measured(parts, gate.refresh)
    runs = sweeps(parts, gate)
    past = [item for item in block.all() if item.past]
    result["sweepsIdle"] = idle_sweeps(parts, runs)
    result["sweepsBusy"] = busy_sweeps(parts, runs, args.pending, past)
    result["bareRead"] = bare_read(parts, past[0].meeting.id)
    result["reads"] = reads(parts, block, args.samples, args.analysed)
    result["webhooks"] = webhooks_at_size(parts, block, args.webhook_meetings, args.analysed)
    return result


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    sizes = list(results["sizes"])
    lines = [
        f"Machine: {m['cpus']} CPUs ({m['cpuModel']}), Python {m['python']}, {m['system']}, Azurite {m['azurite']}",
        "Load average (1, 5, 15 min) at the start {}, at the end {}".format(
            *(", ".join(f"{value:.1f}" for value in results["loadAverage"][when]) for when in ("start", "end"))
        ),
    ]
    for label, seeded in results["seeding"].items():
        lines.append(
            f"Seeded {label}: {seeded['meetings']:,} meetings, {seeded['rows']:,} rows in {seeded['transactions']:,} "
            f"requests, {seeded['seconds']} s"
        )
    for size in sizes:
        tables = results["sizes"][size]["tables"]
        lines.append(f"  rows at {size} meetings: " + ", ".join(f"{name} {count:,}" for name, count in tables.items()))
    lines += ["", "Sweeps with nothing pending (requests / bytes answered / rows their keys bound, per run):"]
    header = f"{'':<26}" + "".join(f"{size + ' meetings':>28}" for size in sizes)
    lines.append(header)
    for name in results["sizes"][sizes[0]]["sweepsIdle"]:
        cells = []
        for size in sizes:
            found = results["sizes"][size]["sweepsIdle"][name]
            cells.append(f"{found['requests']:>6} / {found['bytes']:>7,} B / {found['rowsInPartition']:>7,}")
        lines.append(f"{name:<26}" + "".join(f"{cell:>28}" for cell in cells))
    lines += ["", f"Sweeps with K = {results['settings']['pending']} pending (requests, and per item over idle):"]
    for name in results["sizes"][sizes[0]]["sweepsBusy"]:
        cells = []
        for size in sizes:
            busy = results["sizes"][size]["sweepsBusy"][name]
            idle = results["sizes"][size]["sweepsIdle"][name.split(" (")[0]]
            per_item = (busy["requests"] - idle["requests"]) / results["settings"]["pending"]
            cells.append(f"{busy['requests']:>6} ({per_item:+.2f}/item, {busy['bytes']:,} B)")
        lines.append(f"{name:<30}" + "".join(f"{cell:>34}" for cell in cells))
    lines += [
        "",
        "Reads over HTTP (latency at the client; x bare = over a point read straight from Azurite at that size):",
    ]
    for size in sizes:
        at = results["sizes"][size]
        bare = at["bareRead"]["medianMs"]
        lines.append(f"  at {size} meetings (bare point read {bare} ms):")
        for name, found in at["reads"].items():
            rows = found.get("rowsInPartition", {})
            lines.append(
                f"    {name:<14} median {found['medianMs']:>7.1f} ms  p95 {found['p95Ms']:>7.1f}  "
                f"x bare {found['medianMs'] / bare:>5.1f}  requests {found['requests']['max']}  "
                f"rows read (bounds/partition) {found.get('rowsInBounds', {}).get('max', '-')}/{rows.get('max', '-')}"
            )
    lines += ["", "Webhooks (run here on the app's code):"]
    for size in sizes:
        hooks = results["sizes"][size]["webhooks"]
        lines.append(f"  at {size} meetings: accept {hooks['accept']['requests']['max']} requests max")
        for event, found in hooks["apply"].items():
            lines.append(
                f"    apply {event:<26} requests mean {found['requests']['mean']:>4} max {found['requests']['max']}  "
                f"median {found['medianMs']:>6.1f} ms  rows read (bounds/partition) "
                f"{found.get('rowsInBounds', {}).get('max', '-')}/{found.get('rowsInPartition', {}).get('max', '-')}"
            )
    big = results.get("bigMeeting")
    if big:
        lines += ["", f"A {big['people']:,}-person meeting joining at once (at {sizes[0]} meetings):"]
        alone = big["one by one"]
        lines.append(
            f"  one by one: requests per join mean {alone['requests']['mean']} max {alone['requests']['max']}, "
            f"median {alone['medianMs']} ms; rows the join's reads bound (bounds/partition), of the meeting's, "
            "at join "
            + ", ".join(
                f"{n}: {found['rowsRead']}/{found['rowsReadByPartition']} of {found['rowsInMeeting']:,}"
                for n, found in alone["rowsAfterJoin"].items()
            )
        )
        for label, found in big.items():
            if label not in ("people", "one by one"):
                lines.append(
                    f"  {label}: {found['joinsPerSecond']} joins/s here, {found['requestsPerJoin']} requests per join"
                )
    return "\n".join(lines)


def failures(results: dict[str, Any]) -> list[str]:
    sizes = list(results["sizes"])
    found = []
    first, last = results["sizes"][sizes[0]], results["sizes"][sizes[-1]]
    for name, idle in last["sweepsIdle"].items():
        for measure in ("requests", "bytes", "rowsInPartition"):
            small, large = first["sweepsIdle"][name][measure], idle[measure]
            if large > small:
                found.append(
                    f"{name} with nothing pending: {measure} {small:,} at {sizes[0]}, {large:,} at {sizes[-1]}"
                )
    for size in sizes:
        for event, applied in results["sizes"][size]["webhooks"]["apply"].items():
            if applied["requests"]["max"] > APPLY_BUDGET:
                found.append(f"apply {event} at {size}: {applied['requests']['max']} requests")
    big = results.get("bigMeeting")
    if big and big["one by one"]["requests"]["max"] > APPLY_BUDGET:
        found.append(f"a join of the big meeting took {big['one by one']['requests']['max']} requests")
    return found


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=100_000, help="meetings at the full size (default 100,000)")
    parser.add_argument("--baseline", type=int, default=1_000, help="meetings at the first size (default 1,000)")
    parser.add_argument("--pending", type=int, default=50, help="K, items pending per sweep (default 50)")
    parser.add_argument("--samples", type=int, default=60, help="samples of each read (default 60)")
    parser.add_argument("--analysed", type=int, default=10, help="samples whose rows read are counted (default 10)")
    parser.add_argument("--webhook-meetings", type=int, default=10, help="meetings given a session (default 10)")
    parser.add_argument("--big-meeting", type=int, default=1_000, help="people in the big meeting (0: none)")
    parser.add_argument("--threads", type=int, default=8, help="appliers at once for the big meeting (default 8)")
    args = parser.parse_args(argv)
    if args.baseline % 10 or args.meetings % 10 or not 0 < args.baseline < args.meetings or args.pending % 10:
        parser.error("sizes and K are whole tens (owners have ten meetings), the baseline below the full size")
    if min(args.samples, args.webhook_meetings) < 2 or not 0 < args.analysed <= args.samples:
        parser.error("percentiles need at least 2 samples and 2 meetings; 1 to --samples of them analysed")
    signal.signal(signal.SIGTERM, _interrupt)
    results: dict[str, Any] = {
        "machine": workload.machine(),
        "settings": vars(args),
        "loadAverage": {"start": os.getloadavg()},
        "seeding": {},
        "sizes": {},
    }
    try:
        with parts() as running:
            try:
                print(f"seeding {args.baseline:,} meetings ...", flush=True)
                baseline, results["seeding"]["baseline"] = seed(running, 0, args.baseline)
                results["sizes"][f"{args.baseline:,}"] = at_size(running, f"{args.baseline:,}", baseline, args)
                if args.big_meeting:
                    # What a join costs depends on the meeting, not on the tables' size; Azurite's latency does
                    # (it reads every row of a table for every query), so this runs while the tables are small.
                    print(f"a {args.big_meeting:,}-person meeting ...", flush=True)
                    results["bigMeeting"] = big_meeting(running, baseline, args.big_meeting, args.threads)
                print(f"seeding up to {args.meetings:,} meetings ...", flush=True)
                rest, results["seeding"]["rest"] = seed(running, args.baseline, args.meetings - args.baseline)
                results["sizes"][f"{args.meetings:,}"] = at_size(running, f"{args.meetings:,}", rest, args)
                results["azuriteRssMb"] = _rss_mb(running.server)
            except Exception:
                print(f"the app's log: {running.log}", file=sys.stderr)
                raise
            running.log.unlink()
    except KeyboardInterrupt:
        print("interrupted; everything the bench started is stopped", file=sys.stderr)
        return 130
    results["loadAverage"]["end"] = os.getloadavg()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(report(results))
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    found = failures(results)
    for failure in found:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if found else 0


def _rss_mb(server: Azurite) -> float:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


if __name__ == "__main__":
    sys.exit(main())

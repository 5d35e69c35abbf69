"""The bench's stack and its two workloads.

Stack: the parts of `dev/harness.py` (Azurite behind counting proxies, the provider stand-in, the
issuer, `function_app.py` on the dev host in its own process), with Dyte's webhook key configured as
PEM so that the bench signs deliveries itself, before any clock starts.

Per operation: one request at a time on a kept-alive connection, timed at the client, counted at the
servers (storage at the proxies, provider calls at the stand-in). Meanwhile the app's queue consumers
are paused (the proxy answers their polls 503), so nothing in the background adds to a sample's counts.
Webhook apply is `shared.events.apply.run` itself, called here against the same storage through the
proxy with the message the receiver queued for each delivery: the function's own latency, without queue
polling. The follow-up a status change queues is run here after its sample (as the jobs queue would run
it within seconds), uncounted, so the next event meets the meeting as a deployment would.

Concurrent: `clients` threads play a morning of meetings, each running one meeting's story after
another (create, invite, lists, gets, joins, a rejoin, the provider's webhooks) with every consumer
on; afterwards the lag from receiving each delivery to having applied it is read from its row.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import statistics
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from dev.azurite import Azurite
from dev.harness import ROOT, TENANT, App, Counts, Storage, User, app_environment, start_app
from dev.issuer import Issuer, user_object_id
from dev.provider import ProviderStandIn, webhooks
from shared import accounts, followups, jobs, recordings, schema, times
from shared import settings as app_settings
from shared.auth import public_id
from shared.context import Context
from shared.events import apply, deliveries
from shared.joins import TOKEN_REUSE
from shared.provider import clients_from_settings
from shared.storage import Storage as AppStorage

OWNERS = 10  # per-operation creates are spread over owners, well inside 30 a minute each
KEYED_OWNERS = 20  # creates with an Idempotency-Key and their replays (both count against the limit)
HOSTS = 20  # creates with seven invitees (the capacity workload's meeting of eight)
STRANGERS = 10  # refused joins, well inside 60 a minute each
MEETINGS_PER_OWNER = 5  # the concurrent phase: five meetings a morning per owner
NO_LOCAL_SETTINGS = ROOT / "bench" / "no-local.settings.json"  # hermetic: settings from the environment only


class BenchError(Exception):
    """The stack answered something the workload did not expect."""


@dataclass
class Stack:
    app: App
    ctx: Context  # the app's settings and storage, in this process: for applying deliveries here
    webhook_key: Any
    log: Path
    keep_log: bool = False  # set when something failed: the app's log is then left for reading

    @property
    def storage(self) -> Storage:
        return self.app.storage


@contextlib.contextmanager
def stack() -> Iterator[Stack]:
    """Everything started, and stopped again whatever happens."""
    key = webhooks.new_key()
    pem = webhooks.public_pem(key)
    with contextlib.ExitStack() as stop:
        server = stop.enter_context(Azurite())
        storage = Storage.start(server)
        stop.callback(storage.stop)
        provider = stop.enter_context(ProviderStandIn().start())
        issuer = stop.enter_context(Issuer().start())
        # One JSON line per request: kept in a file, and pointed to only when something fails.
        log = stop.enter_context(tempfile.NamedTemporaryFile("w", prefix="bench-app-", suffix=".log", delete=False))
        try:
            # PEM newlines escaped, as app settings carry them.
            app = start_app(storage, provider, issuer, "dyte", stderr=log, WEBHOOK_PUBLIC_KEY=pem.replace("\n", "\\n"))
        except RuntimeError as error:
            raise BenchError(f"{error}; its log: {log.name}") from None
        stop.callback(app.stop)
        environment = app_environment(
            storage, provider, issuer, VIDEO_PROVIDER="dyte", TABLE_PREFIX=app.prefix, WEBHOOK_PUBLIC_KEY=pem
        )
        settings = app_settings.load(environ=environment, local_settings=NO_LOCAL_SETTINGS)
        ctx = Context(settings=settings, storage=AppStorage(settings), providers=clients_from_settings(settings))
        running = Stack(app, ctx, key, Path(log.name))
        stop.callback(lambda: running.keep_log or running.log.unlink())
        yield running


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or "unknown",
        )
        if cpuinfo.exists()
        else platform.processor()
    )
    package = json.loads((ROOT / "node_modules" / "azurite" / "package.json").read_text())
    return {
        "cpus": len(os.sched_getaffinity(0)),  # what `nproc` prints
        "cpuModel": model,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "azurite": package["version"],
    }


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"medianMs": round(statistics.median(values), 2), "p95Ms": round(cuts[94], 2), "p99Ms": round(cuts[98], 2)}


# What the provider sends --------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]
    key: str


def signed(stack: Stack, payload: dict[str, Any]) -> Delivery:
    body = json.dumps(payload, separators=(",", ":")).encode()
    signature = webhooks.sign(stack.webhook_key, body)
    headers = {"Content-Type": "application/json", "dyte-signature": signature, "dyte-uuid": str(uuid.uuid4())}
    return Delivery(body, headers, deliveries.delivery_key(body))


def participant_id(stack: Stack, meeting_id: str, user: User) -> str:
    """The custom participant id the app gives `user` at the provider (contract section 2)."""
    oid = user_object_id(TENANT, user.email)
    return public_id(stack.ctx.settings.id_hash_key, "participant", meeting_id, TENANT, oid)


def session_events(stack: Stack, meeting: dict[str, Any], people: list[User]) -> tuple[list[dict], list[dict]]:
    """One session as the provider reports it: (start and joins, leaves and end)."""
    provider_id, session = meeting["providerMeetingId"], str(uuid.uuid4())
    ids = [participant_id(stack, meeting["id"], person) for person in people]
    opening = [webhooks.meeting_started(provider_id, session)] + [
        webhooks.participant_joined(provider_id, session, custom_participant_id=pid) for pid in ids
    ]
    closing = [webhooks.participant_left(provider_id, session, custom_participant_id=pid) for pid in ids]
    return opening, [*closing, webhooks.meeting_ended(provider_id, session)]


def starts_soon() -> str:
    """A start five minutes ahead: the meeting is scheduled and already open to participants."""
    return times.format_utc(datetime.now(UTC) + timedelta(minutes=5))


# Per operation ------------------------------------------------------------------------------------


@dataclass
class Sample:
    ms: float
    tables: int
    queue_puts: int
    provider_calls: int


@dataclass
class Recorder:
    app: App
    session: requests.Session = field(default_factory=requests.Session)
    samples: dict[str, list[Sample]] = field(default_factory=lambda: defaultdict(list))

    def timed(self, operation: str, action: Callable[[], Any]) -> Any:
        counts = Counts(self.app, settle=False)
        started = time.perf_counter()
        result = action()
        elapsed = (time.perf_counter() - started) * 1000
        self.samples[operation].append(
            Sample(elapsed, counts.tables(), counts.queue_puts(), len(counts.provider_calls()))
        )
        return result

    def request(self, operation: str | None, user: User | None, method: str, path: str, expect: int, **kw: Any) -> Any:
        """One request; timed and counted under `operation` (None: set-up, not measured)."""
        token = user.token if user else None

        def send() -> requests.Response:
            return self.app.call(method, path, token, session=self.session, **kw)

        response = self.timed(operation, send) if operation else send()
        if response.status_code != expect:
            raise BenchError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    def deliver(self, operation: str | None, delivery: Delivery) -> None:
        self.request(operation, None, "POST", "/webhooks/dyte", 200, data=delivery.body, headers=delivery.headers)


def _consumers(stack: Stack, paused: bool) -> None:
    proxy = stack.storage.queues
    if paused:
        queues = "|".join(re.escape(name) for name in schema.QUEUES)
        proxy.fail("GET", rf"/{stack.app.prefix}({queues})/messages", times=10**9)
    else:
        proxy.clear_faults()


def _clear_queues(stack: Stack) -> None:
    """Drop what piled up while the consumers were paused (applied here already, or jobs nobody needs)."""
    for name in schema.QUEUES:
        queue = QueueClient.from_connection_string(stack.storage.server.connection_string, stack.app.prefix + name)
        with queue, contextlib.suppress(ResourceNotFoundError):
            queue.clear_messages()


def queued_deliveries(stack: Stack) -> dict[str, str]:
    """Take every message off the webhook queue (its consumer paused): the message as the applier gets it,
    by delivery key."""
    return take_deliveries(stack.storage.server.connection_string, stack.app.prefix + schema.WEBHOOK_QUEUE)


# As function_app.py wires them (it is not imported here: it reads the settings of a deployment).
JOB_HANDLERS = {
    jobs.Kind.FOLLOW_UP: followups.run_job,
    jobs.Kind.CLOSE_ACCOUNT: accounts.close_job,
    jobs.Kind.COPY_RECORDING: recordings.copy_job,
}


def take_jobs(ctx: Context, connection_string: str) -> list[str]:
    """Take every message off the jobs queue (its consumer paused), in the order queued."""
    name = ctx.storage.queue_name(schema.JOBS_QUEUE)
    found = []
    with QueueClient.from_connection_string(
        connection_string, name, message_decode_policy=TextBase64DecodePolicy()
    ) as queue:
        while True:
            batch = list(queue.receive_messages(messages_per_page=32, visibility_timeout=300, max_messages=32))
            if not batch:
                return found
            for message in batch:
                found.append(message.content)
                queue.delete_message(message)


def kind_of(text: str) -> str:
    return json.loads(text)["kind"]


def run_each(ctx: Context, queued: list[str]) -> None:
    for text in queued:
        jobs.run(ctx, text, JOB_HANDLERS)


def run_jobs(ctx: Context, connection_string: str) -> int:
    """Run what the jobs queue holds here, as its consumer would (the app's consumers are paused), and what
    those jobs queue in turn: the follow-up a status change queued clears its marker, as it does within
    seconds in a deployment. How many."""
    done = 0
    while queued := take_jobs(ctx, connection_string):
        run_each(ctx, queued)
        done += len(queued)
    return done


def take_deliveries(connection_string: str, name: str) -> dict[str, str]:
    found: dict[str, str] = {}
    with QueueClient.from_connection_string(
        connection_string, name, message_decode_policy=TextBase64DecodePolicy()
    ) as queue:
        while True:
            batch = list(queue.receive_messages(messages_per_page=32, visibility_timeout=300, max_messages=32))
            if not batch:
                return found
            for message in batch:
                text = message.content
                key = text if deliveries.KEY.fullmatch(text) else json.loads(text)["key"]
                found[key] = text
                queue.delete_message(message)


@dataclass
class Sequential:
    samples: dict[str, list[Sample]]
    applied_by_event: dict[str, list[Sample]]  # the webhook apply samples again, by the delivery's event
    meeting_id: str  # a meeting that exists, for the bare round trip


def per_operation(stack: Stack, samples: int) -> Sequential:
    app = stack.app
    recorder = Recorder(app)
    owners = [app.user(f"owner{n}") for n in range(OWNERS)]
    keyed_owners = [app.user(f"keyed{n}") for n in range(KEYED_OWNERS)]
    strangers = [app.user(f"stranger{n}") for n in range(STRANGERS)]
    hosts = [app.user(f"host{n}") for n in range(HOSTS)]
    guests = [app.user(f"guest{n}") for n in range(samples)]
    _warm_up(stack, recorder)
    _consumers(stack, paused=True)
    try:
        _warm_up_here(stack, recorder)
        created = []
        for n in range(samples):
            body = {"title": f"Bench {n}", "startsAt": starts_soon(), "timeZone": "Europe/Berlin"}
            created.append(recorder.request("create", owners[n % OWNERS], "POST", "/meetings", 201, json=body))
        for n in range(samples):
            body = {"title": f"Keyed {n}", "startsAt": starts_soon(), "timeZone": "Europe/Berlin"}
            keyed = {"Idempotency-Key": str(uuid.uuid4())}
            owner = keyed_owners[n % KEYED_OWNERS]
            recorder.request("create (key)", owner, "POST", "/meetings", 201, json=body, headers=keyed)
            recorder.request("create (replay)", owner, "POST", "/meetings", 201, json=body, headers=keyed)
        for n in range(samples):
            invitees = [{"email": f"team{n}-{k}@contoso.test", "role": "participant"} for k in range(7)]
            body = {"title": f"Team {n}", "startsAt": starts_soon(), "timeZone": "Europe/Berlin", "invitees": invitees}
            recorder.request("create (7 invitees)", hosts[n % HOSTS], "POST", "/meetings", 201, json=body)
        paths = [f"/meetings/{meeting['id']}" for meeting in created]
        for n, path in enumerate(paths):
            recorder.request("get", owners[n % OWNERS], "GET", path, 200)
        for n in range(samples):
            recorder.request("list", owners[n % OWNERS], "GET", "/meetings", 200)
        for n, path in enumerate(paths):
            body = {"invitees": [{"email": guests[n].email, "role": "participant"}]}
            recorder.request("invite", owners[n % OWNERS], "POST", f"{path}/invites", 201, json=body)
        joined_at = []
        for n, path in enumerate(paths):
            recorder.request("first join", guests[n], "POST", f"{path}/join", 200)
            joined_at.append(time.monotonic())
        for n, path in enumerate(paths):
            recorder.request("refused join", strangers[n % STRANGERS], "POST", f"{path}/join", 404)
        for n, path in enumerate(paths):
            # Past the token-reuse window, so each rejoin takes the path the budget is for: a token refresh.
            time.sleep(max(0.0, joined_at[n] + TOKEN_REUSE.total_seconds() + 0.2 - time.monotonic()))
            recorder.request("rejoin", guests[n], "POST", f"{path}/join", 200)
        # Each meeting's session, as the provider reports it: five events with a recording.
        stories, told = [], []
        for n, meeting in enumerate(created):
            opening, closing = session_events(stack, meeting, [guests[n]])
            recording = webhooks.recording_status(meeting["providerMeetingId"], str(uuid.uuid4()), status="UPLOADED")
            story = [*opening, *closing, recording]
            if len(stories) + len(story) > samples and stories:
                break
            stories += story
            told.append(n)
        accepted = [(payload["event"], signed(stack, payload)) for payload in stories]
        by_event = defaultdict(list)
        for event, delivery in accepted:
            recorder.deliver("webhook accept", delivery)
            message = queued_deliveries(stack)[delivery.key]
            recorder.timed("webhook apply", lambda message=message: apply.run(stack.ctx, message))
            by_event[event].append(recorder.samples["webhook apply"][-1])
            queued = take_jobs(stack.ctx, stack.storage.server.connection_string)
            follow_ups = [text for text in queued if kind_of(text) == jobs.Kind.FOLLOW_UP]
            if follow_ups:
                follow_up = Recorder(app)
                follow_up.timed("status follow-up", lambda follow_ups=follow_ups: run_each(stack.ctx, follow_ups))
                recorder.samples["status follow-up"] += follow_up.samples["status follow-up"]
            # The copy an UPLOADED recording owes is no status follow-up: run uncounted (the bench's link is no
            # real file, so the copy ends `gone` after one provider call; tests/api/test_recordings.py counts a
            # real copy's requests).
            run_each(stack.ctx, [text for text in queued if kind_of(text) != jobs.Kind.FOLLOW_UP])
            run_jobs(stack.ctx, stack.storage.server.connection_string)
            # The provider sends the same body again (our answer was lost): recognised, and not queued, as applied.
            recorder.deliver("webhook repeat", delivery)
        for n in told:
            owner = owners[n % OWNERS]
            recorder.request("sessions page", owner, "GET", f"{paths[n]}/sessions", 200)
            recorder.request("recordings page", owner, "GET", f"{paths[n]}/recordings", 200)
    finally:
        _clear_queues(stack)
        _consumers(stack, paused=False)
    return Sequential(recorder.samples, dict(by_event), created[0]["id"])


def _warm_up(stack: Stack, recorder: Recorder) -> None:
    """Let the app create its tables and queues, so that samples see the steady state."""
    app = stack.app
    owner, guest = app.user("warm"), app.user("warmguest")
    body = {"title": "Warm-up", "invitees": [{"email": guest.email, "role": "participant"}]}
    meeting = recorder.request(None, owner, "POST", "/meetings", 201, json=body)
    path = f"/meetings/{meeting['id']}"
    recorder.request(None, guest, "POST", f"{path}/join", 200)
    for user in (owner, guest):
        recorder.request(None, user, "GET", "/meetings", 200)
    opening, closing = session_events(stack, meeting, [guest])
    for payload in (*opening, *closing):
        recorder.deliver(None, signed(stack, payload))
    stack.app.settle()


def _warm_up_here(stack: Stack, recorder: Recorder) -> None:
    """The same for this process's clients: apply one session of a meeting with an invitee, and run the
    follow-ups it queues (jobs queue too)."""
    owner, guest = stack.app.user("warmhere"), stack.app.user("warmhereguest")
    body = {"title": "Warm-up here", "invitees": [{"email": guest.email, "role": "participant"}]}
    meeting = recorder.request(None, owner, "POST", "/meetings", 201, json=body)
    opening, closing = session_events(stack, meeting, [guest])
    for delivery in (signed(stack, payload) for payload in (*opening, *closing)):
        recorder.deliver(None, delivery)
        apply.run(stack.ctx, queued_deliveries(stack)[delivery.key])
        run_jobs(stack.ctx, stack.storage.server.connection_string)  # its follow-ups, so no sample runs them


def bare_round_trip(stack: Stack, meeting_id: str, samples: int) -> dict[str, Any]:
    """A point read of an existing entity (a meeting row) with the SDK the app uses, on a kept-alive
    connection: straight to Azurite (the unit of the ratios), and through the counting proxy as the app goes."""
    name = f"{stack.app.prefix}{schema.MEETINGS}"
    keys = (schema.owner_partition(meeting_id), schema.meeting_key(meeting_id))
    result: dict[str, Any] = {"what": "TableClient.get_entity of a meeting row"}
    for label, connection in (("direct", stack.storage.server.connection_string), ("proxied", None)):
        with TableClient.from_connection_string(connection or stack.storage.connection_string, name) as table:
            for _ in range(20):  # connection and SDK warm-up
                table.get_entity(*keys)
            measured = []
            for _ in range(samples):
                started = time.perf_counter()
                table.get_entity(*keys)
                measured.append((time.perf_counter() - started) * 1000)
        result[label] = percentiles(measured)
    return result


# Concurrent ---------------------------------------------------------------------------------------


@dataclass
class Load:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    delivered: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, operation: str, ms: float, error: str | None) -> None:
        with self.lock:
            self.requests += 1
            self.latencies[operation].append(ms)
            if error:
                self.errors.append(error)


def concurrent(stack: Stack, meetings_count: int, clients: int) -> dict[str, Any]:
    app = stack.app
    owners = [app.user(f"morning{n}") for n in range(-(-meetings_count // MEETINGS_PER_OWNER))]
    casts = [(owners[n // MEETINGS_PER_OWNER], app.user(f"a{n}"), app.user(f"b{n}")) for n in range(meetings_count)]
    load = Load()
    counts = Counts(app, settle=False)
    local = threading.local()
    pending = iter(casts)
    take = threading.Lock()

    def call(operation: str, user: User | None, method: str, path: str, expect: int, **kw: Any) -> Any:
        if not hasattr(local, "session"):
            local.session = requests.Session()  # one kept-alive connection per client, as a browser has
        token = user.token if user else None
        started = time.perf_counter()
        try:
            response = app.call(method, path, token, session=local.session, **kw)
            error = None
            if response.status_code != expect:
                error = f"{operation}: {response.status_code} {response.text[:200]}"
        except requests.RequestException as failure:
            response, error = None, f"{operation}: {type(failure).__name__}"
        load.record(operation, (time.perf_counter() - started) * 1000, error)
        if error:
            raise BenchError(error)
        return response.json() if response.content else None

    def deliver(payloads: list[dict[str, Any]]) -> None:
        for delivery in (signed(stack, payload) for payload in payloads):
            call("webhook", None, "POST", "/webhooks/dyte", 200, data=delivery.body, headers=delivery.headers)
            with load.lock:
                load.delivered.append(delivery.key)

    def morning(owner: User, first: User, second: User) -> None:
        body = {"title": "Morning sync", "startsAt": starts_soon(), "timeZone": "Europe/Berlin"}
        meeting = call("create", owner, "POST", "/meetings", 201, json=body)
        path = f"/meetings/{meeting['id']}"
        invitees = [{"email": person.email, "role": "participant"} for person in (first, second)]
        call("invite", owner, "POST", f"{path}/invites", 201, json={"invitees": invitees})
        for person in (owner, first, second):
            call("list", person, "GET", "/meetings", 200)
            call("get", person, "GET", path, 200)
        for person in (owner, first, second):
            call("join", person, "POST", f"{path}/join", 200)
        opening, closing = session_events(stack, meeting, [owner, first, second])
        deliver(opening)
        call("rejoin", first, "POST", f"{path}/join", 200)  # a dropped connection, back at once
        call("list", owner, "GET", "/meetings", 200)
        deliver(closing)
        call("get", owner, "GET", path, 200)

    def client() -> None:
        while True:
            with take:
                cast = next(pending, None)
            if cast is None:
                return
            with contextlib.suppress(BenchError):  # counted as an error; the client goes on
                morning(*cast)

    cpu_before = _cpu_seconds(stack)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="bench-client") as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    elapsed = time.perf_counter() - started
    cpu = {name: round(seconds - cpu_before[name], 1) for name, seconds in _cpu_seconds(stack).items()}
    result = {
        "clients": clients,
        "meetings": meetings_count,
        "requests": load.requests,
        "seconds": round(elapsed, 2),
        "throughputPerSecond": round(load.requests / elapsed, 1),
        "errors": len(load.errors),
        "firstErrors": load.errors[:5],
        "latency": {operation: percentiles(values) for operation, values in sorted(load.latencies.items())},
        "storagePerRequest": round(counts.storage() / load.requests, 2),
        "providerCallsPerRequest": round(len(counts.provider_calls()) / load.requests, 2),
        # Where the machine's time went: the app, Azurite, and this process (clients, proxies, stand-ins).
        "cpuSeconds": {**cpu, "available": round(elapsed * len(os.sched_getaffinity(0)), 1)},
    }
    result["webhookLag"] = _lag(stack, set(load.delivered))
    return result


def _cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time (user + system) used so far by the app, by Azurite and by this process."""

    def of(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    own = os.times()
    assert stack.storage.server.process is not None
    return {
        "app": of(stack.app.process.pid),
        "azurite": of(stack.storage.server.process.pid),
        "bench": own.user + own.system,
    }


def _lag(stack: Stack, keys: set[str], timeout: float = 120.0) -> dict[str, Any]:
    """Receive -> applied, per delivery, from the rows' `receivedAt` and `settledAt` (both the app's clock)."""
    name = stack.app.prefix + schema.DELIVERIES
    deadline = time.monotonic() + timeout
    with TableClient.from_connection_string(stack.storage.server.connection_string, name) as table:
        while True:
            rows = {}
            for shard in deliveries.SHARDS:
                query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
                found = table.query_entities(
                    query,
                    parameters={"pk": shard, "low": deliveries.RECORD, "high": schema.after(deliveries.RECORD)},
                    select=["RowKey", "receivedAt", "settledAt"],
                )
                rows.update({row["RowKey"].removeprefix(deliveries.RECORD): row for row in found})
            settled = [rows[key] for key in keys if key in rows and rows[key]["settledAt"]]
            if len(settled) == len(keys) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    lags = [
        (times.parse_rfc3339(row["settledAt"]) - times.parse_rfc3339(row["receivedAt"])).total_seconds() * 1000
        for row in settled
    ]
    return {"deliveries": len(keys), "applied": len(settled), **(percentiles(lags) if lags else {})}

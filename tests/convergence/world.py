"""The app's domain code in-process, on real servers the tests own, and the convergence driver.

`Rig`: Azurite behind two counting proxies (tables, queues), the provider stand-in and the Graph stand-in,
with the fault `Injector` in all three; one per test session (`rig()`), private to this package so that no
other test's traffic reaches its faults or its step counts.

`World`: one isolated deployment on the rig (its own TABLE_PREFIX, the stand-ins reset), an injected clock,
the people the test knows, and its app instances: `instance()` builds a `Context` as `function_app.py` does,
over transports that a `Gate` can kill. Its operations run the domain functions the HTTP routes run, after the
same closed-account gate, and map failures as `shared.api.endpoint` does (a problem's status; storage failing,
503; anything else, 500), so an `Answer` is what the client would have got (None: the instance died first).

`converge()` is "after the faults clear and the background work runs", on a fresh instance (a restart: what
the dead one held in memory is gone): drain the `jobs`, `webhook-events` and `mail-outbox` queues through the
functions `function_app.py` wires to them, move the clock on past every backoff (so every pending entry and
unsettled delivery is due), run the timers' sweeps (`sweep_pending`, `sweep_webhook_events`), and repeat until
a round finds nothing to do.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import json
import logging
import queue as queue_module
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from azure.core.exceptions import AzureError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from dev import azurite as azurite_module
from dev.counting_proxy import CountingProxy
from dev.graph import GraphStandIn
from dev.provider import ProviderStandIn
from shared import accounts, invites, jobs, meetings, outbox, pending, problems, schema
from shared.auth import Caller, public_id, user_id
from shared.closed_accounts import ClosedAccounts
from shared.context import Context
from shared.events import apply as events_apply
from shared.events import deliveries, signing, views
from shared.graph import Graph
from shared.provider import ProviderClient
from shared.storage import Storage
from tests import support
from tests.convergence.faults import READ_TIMEOUT, Gate, Injector, KillableAdapter, KillableTransport, Killed
from tests.convergence.invariants import Person, divergences

log = logging.getLogger(__name__)

SENDER = "noreply@contoso.test"
APP_URL = "https://app.contoso.test"
PRESETS = {
    "PRESET_HOST": "group_call_host",
    "PRESET_PARTICIPANT": "group_call_participant",
    "PRESET_GUEST": "group_call_guest",
}
TABLES = (
    schema.MEETINGS,
    schema.INVITATIONS,
    schema.PROVIDER_MEETINGS,
    schema.DELIVERIES,
    schema.CLOSED_ACCOUNTS,
    schema.PENDING,
    schema.EXPIRING,
    schema.PARTICIPATIONS,
    schema.STATUS,
)
# Longer than the longest backoff (an hour, +10 % jitter, + the grace): one step of the clock makes all due.
ROUND = timedelta(minutes=70)


# The servers ----------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Rig:
    azurite: azurite_module.Azurite
    tables: CountingProxy
    queues: CountingProxy
    provider: ProviderStandIn
    graph: GraphStandIn
    injector: Injector
    _graph: Graph | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _preparer: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=1))
    _ready: queue_module.Queue[str] = field(default_factory=queue_module.Queue)

    @classmethod
    def start(cls, azurite: tuple[int, int, int] | None = None) -> Rig:
        """Servers of its own; on an Azurite already running (blob, queue, table ports), or a new one."""
        server = azurite_module.Azurite().start() if azurite is None else azurite_module.Azurite(*azurite)
        rig = cls(
            server,
            CountingProxy(server.table_port).start(),
            CountingProxy(server.queue_port).start(),
            ProviderStandIn().start(),
            GraphStandIn().start(),
            Injector(),
        )
        rig.injector.install(rig.tables, rig.queues, rig.provider)
        return rig

    @property
    def azurite_ports(self) -> tuple[int, int, int]:
        return self.azurite.blob_port, self.azurite.queue_port, self.azurite.table_port

    def stop(self) -> None:
        self._preparer.shutdown(wait=True)
        for part in (self.tables, self.queues, self.provider, self.graph, self.azurite):
            with contextlib.suppress(Exception):
                part.stop()  # an Azurite this rig did not start has no process: stopping it does nothing

    def mail(self, settings: Any) -> Graph:
        """One Graph client for every instance (it only holds the app's token): every world's mail settings
        are the same, and sign-in to the stand-in costs a TLS handshake and a token each time."""
        with self._lock:
            if self._graph is None:
                session = requests.Session()
                session.trust_env = False
                session.verify = self.graph.ca_path
                self._graph = Graph(settings.mail, session=session, sleep=lambda seconds: None)
            return self._graph

    def fresh_prefix(self) -> str:
        """A TABLE_PREFIX of its own for a new world, its tables and queues made already: made in the
        background, one ahead, while the previous world runs."""
        self._preparer.submit(self._prepare)
        return self._ready.get()

    def _prepare(self) -> None:
        prefix = "c" + uuid.uuid4().hex[:12]
        for table in TABLES:
            self.direct_tables.create_table(prefix + table)
        queues = QueueServiceClient.from_connection_string(self.direct_connection_string, transport=_plain_transport())
        for queue in schema.QUEUES:
            queues.create_queue(prefix + queue)
        self._ready.put(prefix)

    @property
    def connection_string(self) -> str:
        """Through the proxies: what the app uses."""
        return azurite_module.connection_string(self.azurite.blob_port, self.queues.port, self.tables.port)

    @functools.cached_property
    def direct_tables(self) -> TableServiceClient:
        return TableServiceClient.from_connection_string(self.direct_connection_string, transport=_plain_transport())

    @property
    def direct_connection_string(self) -> str:
        """Straight to Azurite: what the checker reads and new worlds are made with (never counted or faulted)."""
        return self.azurite.connection_string


def _plain_transport() -> RequestsTransport:
    session = requests.Session()
    session.trust_env = False
    return RequestsTransport(session=session, session_owner=True)


_rig: Rig | None = None
_rig_lock = threading.Lock()


def rig() -> Rig:
    """The session's rig, started on first use (the fault matrix needs it already when tests are collected)."""
    global _rig
    with _rig_lock:
        if _rig is None:
            _rig = Rig.start()
            atexit.register(_rig.stop)
        return _rig


# App instances ------------------------------------------------------------------------------------------


class Clock:
    """The domain's clock: what the test says."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class _VirtualTime:
    """The provider client's clock and sleep: its retries wait no real time, yet keep their budget."""

    def __init__(self) -> None:
        self._slept = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return time.monotonic() + self._slept

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._slept += seconds


class InstanceStorage(Storage):
    """The app's storage clients over a killable transport. The SDKs' retries keep their number of attempts;
    only their waits are cut, so a storage outage costs the test milliseconds, not seconds."""

    def __init__(self, settings: Any, gate: Gate):
        super().__init__(settings)
        self._gate = gate

    def table(self, name: str, create: bool = True) -> Any:
        return super().table(name, create=False)  # the world made its tables: no instance creates them again

    def _build(self, service_class: Any, kind: str) -> Any:
        gate = self._gate

        class Built(service_class):
            def get_queue_client(self, queue: str, **options: Any) -> Any:
                client = super().get_queue_client(queue, **options)
                client.create_queue = lambda **_: None  # the world made its queues too
                return client

            @classmethod
            def from_connection_string(cls, conn_str: str, **options: Any) -> Any:
                options["transport"] = KillableTransport(gate)
                if "retry_policy" in options:
                    # The queue's and the blob's own policy class, as Storage._build chose it.
                    retry = type(options["retry_policy"])
                    total = options["retry_policy"].total_retries
                    options["retry_policy"] = retry(backoff=0.01, random_jitter_range=0, retry_total=total)
                else:
                    options["retry_backoff_factor"] = 0.01
                return service_class.from_connection_string(conn_str, **options)

        return super()._build(Built, kind)


def _session(gate: Gate, verify: str | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    if verify is not None:
        session.verify = verify
    adapter = KillableAdapter(gate)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass
class Instance(Context):
    """A Context with what `function_app.py` keeps beside it: the webhook keys, and the instance's life."""

    signing_keys: Any = None
    gate: Gate | None = None


@dataclass
class Answer:
    """What the client got: a status (None: the instance died before answering) and the body."""

    status: int | None
    body: Any = None
    slug: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def __repr__(self) -> str:
        return f"Answer({self.status}{' ' + self.slug if self.slug else ''})"


def answer(ctx: Context, caller: Caller | None, action: Callable[[], Any], status: int = 200) -> Answer:
    """Run one request's domain code as the route does: the closed-account gate, then the action; failures
    as `shared.api.endpoint` maps them."""
    try:
        if caller is not None:
            ctx.closed.check(caller.id)
        return Answer(status, action())
    except problems.Problem as problem:
        return Answer(problem.status, problem.body(), problem.slug)
    except AzureError as error:
        return Answer(503, {"error": type(error).__name__}, "unavailable")
    except Killed:
        return Answer(None)
    except Exception as error:  # what the route answers with 500: always a defect
        log.exception("unhandled")
        return Answer(500, {"error": repr(error)}, "internal")


# A world --------------------------------------------------------------------------------------------------


class World:
    def __init__(self, rig: Rig, start: datetime | None = None):
        self.rig = rig
        self.prefix = rig.fresh_prefix()
        self.clock = Clock(start or datetime(2031, 3, 3, 9, 0, tzinfo=UTC))
        values = {
            "AzureWebJobsStorage": rig.connection_string,
            "TABLE_PREFIX": self.prefix,
            "DYTE_API_BASE_URL": rig.provider.dyte_base_url,
            "WEBHOOK_PUBLIC_KEY_URL": f"{rig.provider.url}/.well-known/webhooks.json",
            "APP_BASE_URL": APP_URL,
            **PRESETS,
        }
        self.settings = support.load(**values, **rig.graph.settings(SENDER))
        self.quiet_settings = support.load(**values)  # the same deployment with email off
        # The same deployment straight to Azurite, past the proxies: for what needs no fault and no count (a
        # scene's history, the background work once the faults cleared), at about half the cost per request.
        direct = {**values, "AzureWebJobsStorage": rig.direct_connection_string}
        self._settings = {  # (direct, mail) -> the settings
            (False, True): self.settings,
            (False, False): self.quiet_settings,
            (True, True): support.load(**direct, **rig.graph.settings(SENDER)),
            (True, False): support.load(**direct),
        }
        self.people: dict[str, Person] = {}
        rig.provider.reset()
        # A provider that keeps a live peer through a preset change (until kicked) is the stricter one for us:
        # only the follow-up's kicks (`k|` markers) give the peer its new rights.
        rig.provider.set_switches(preset_change_drops_peer=False)
        rig.graph.reset()
        self.ctx = self.instance()

    # People

    def person(self, label: str) -> Person:
        """Someone with a name and an address found nowhere else (so erasure can be searched for); known by
        `label` (or `label2`, `label3`... when the world knows someone by that label already)."""
        label = next(
            f"{label}{n or ''}" for n in itertools.count() if n != 1 and f"{label}{n or ''}" not in self.people
        )
        oid = str(uuid.uuid4())
        tag = secrets.token_hex(3)
        person = Person(
            label=label,
            tenant_id=support.TENANT,
            object_id=oid,
            name=f"{label.title()} Quillfeather-{tag}",
            emails=(f"{label}.{tag}@contoso.test",),
            user_id=user_id(self.settings.id_hash_key, support.TENANT, oid),
        )
        self.people[label] = person
        return person

    @staticmethod
    def caller(person: Person) -> Caller:
        return Caller(person.tenant_id, person.object_id, person.name, person.emails, person.user_id)

    def custom_id(self, meeting_id: str, person: Person) -> str:
        return public_id(self.settings.id_hash_key, "participant", meeting_id, person.tenant_id, person.object_id)

    # Instances

    def instance(
        self, gate: Gate | None = None, warm: bool = False, mail: bool = True, direct: bool = False
    ) -> Instance:
        """An app instance as `function_app.py` builds one; `gate` can kill it. `mail=False`: the deployment
        with email off (a scene's history needs no emails of its own; the operation under test has them).
        `direct`: its storage requests bypass the proxies, so no fault reaches them and no step counts them."""
        gate = gate or Gate()
        settings = self._settings[direct, mail]
        store = InstanceStorage(settings, gate)
        clock = _VirtualTime()
        client = ProviderClient.for_dyte(
            self.rig.provider.dyte_credentials(),
            _session(gate),
            read_timeout=READ_TIMEOUT,
            sleep=clock.sleep,
            clock=clock.monotonic,
        )
        ctx = Instance(settings, store, {"dyte": client}, clock=self.clock, gate=gate)
        ctx.closed = ClosedAccounts(store, sleep=lambda seconds: None, background=False)
        ctx.graph = self.rig.mail(self.settings)
        ctx.signing_keys = signing.SigningKeys.from_settings(settings, _session(gate))
        if warm:
            # Clients made and the closed accounts read: no step of an operation is an instance's first use.
            for table in TABLES:
                store.table(table)
            for queue in schema.QUEUES:
                store.queue(queue)
            ctx.closed.is_closed("")
        return ctx

    # The routes' domain calls

    def create(self, ctx: Context, owner: Person, body: dict[str, Any], key: str | None = None) -> Answer:
        def action() -> Any:
            draft = meetings.parse_create(body)
            return meetings.create(ctx, self.caller(owner), draft, body, key).meeting

        return answer(ctx, self.caller(owner), action, 201)

    def invite(self, ctx: Context, who: Person, meeting_id: str, invitees: list[dict[str, str]]) -> Answer:
        caller = self.caller(who)
        parsed = invites.parse_invite_body({"invitees": invitees})
        return answer(ctx, caller, lambda: {"items": invites.invite(ctx, caller, meeting_id, parsed)}, 201)

    def revoke(self, ctx: Context, owner: Person, meeting_id: str, invitee: Person) -> Answer:
        caller, invite = self.caller(owner), sorted(invitee.invite_ids)[0]
        return answer(ctx, caller, lambda: invites.revoke(ctx, caller, meeting_id, invite), 204)

    def decline(self, ctx: Context, who: Person, meeting_id: str) -> Answer:
        caller = self.caller(who)
        return answer(ctx, caller, lambda: invites.decline(ctx, caller, meeting_id), 204)

    def cancel(self, ctx: Context, owner: Person, meeting_id: str) -> Answer:
        caller = self.caller(owner)
        return answer(ctx, caller, lambda: meetings.cancel(ctx, caller, meeting_id, None), 204)

    def patch(self, ctx: Context, owner: Person, meeting_id: str, patch: dict[str, Any]) -> Answer:
        caller = self.caller(owner)
        parsed = meetings.parse_patch(patch)
        return answer(ctx, caller, lambda: meetings.update(ctx, caller, meeting_id, parsed, None))

    def join(self, ctx: Context, who: Person, meeting_id: str) -> Answer:
        from shared import joins

        caller = self.caller(who)
        return answer(ctx, caller, lambda: joins.join(ctx, caller, meeting_id))

    def close(self, ctx: Context, who: Person) -> Answer:
        # Not behind the gate: closing again is a 204 too.
        return answer(ctx, None, lambda: accounts.close(ctx, self.caller(who)), 204)

    def webhook(self, ctx: Instance, payload: dict[str, Any]) -> Answer:
        """A delivery signed by the stand-in's key, handed to the receiver (`POST /api/webhooks/dyte`)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = self.rig.provider.signed_headers("dyte", body)
        return answer(ctx, None, lambda: deliveries.receive(ctx, ctx.signing_keys, body, headers))

    def start_session(self, meeting_id: str, *people: Person) -> str:
        """People present in the provider meeting's live session (as their UI kits would make them)."""
        meeting = self.meeting_row(meeting_id)
        customs = [self.custom_id(meeting_id, person) for person in people]
        return self.rig.provider.start_session("dyte", meeting["providerMeetingId"], custom_participant_ids=customs)

    # Background work

    def drain(self, ctx: Context) -> int:
        """Run every visible message of the app's queues (and those they add) as the queue triggers do;
        a message whose function fails stays invisible (the sweeps re-drive its work). How many ran."""
        import function_app  # the route table: which function handles which job kind

        handlers: dict[str, Callable[[str], None]] = {
            schema.JOBS_QUEUE: lambda text: jobs.run(ctx, text, function_app.JOB_HANDLERS),
            schema.WEBHOOK_QUEUE: lambda text: events_apply.run(ctx, text),
            schema.MAIL_QUEUE: lambda text: outbox.deliver(ctx, text),
        }
        ran = 0
        for _ in range(100):
            batch_ran = 0
            for name, handle in handlers.items():
                queue = ctx.storage.queue(name)
                for message in queue.receive_messages(max_messages=32, visibility_timeout=600):
                    batch_ran += 1
                    try:
                        handle(message.content)
                    except Exception as error:
                        log.warning("converge: %s failed on a message: %r", name, error)
                        continue
                    queue.delete_message(message)
            ran += batch_ran
            if not batch_ran:
                return ran
        raise AssertionError("the queues never emptied")

    def converge(self, rounds: int = 8) -> int:
        """Background work on a fresh instance until nothing is left to run; the rounds it took.

        A round drains the queues (until they are empty), moves the clock past every backoff, and runs the
        sweeps; it is the last when the sweeps found nothing due. (Messages queued with a delay are the
        retries of work that has a pending entry: the sweep puts that work back at once, since it is due.)
        The webhook sweep reads 16 shards: it runs only while some delivery is unsettled.
        """
        ctx = self.instance(direct=True)
        for done in range(1, rounds + 1):
            self.drain(ctx)
            self.clock.now += ROUND
            requeued = pending.sweep(ctx)["requeued"]
            if any(row["RowKey"].startswith(deliveries.PENDING) for row in self.rows(schema.DELIVERIES)):
                requeued += deliveries.sweep(ctx)
            if not requeued:
                return done
        return rounds

    # What the checker reads

    def rows(self, table: str) -> list[dict[str, Any]]:
        try:
            return list(self.rig.direct_tables.get_table_client(self.prefix + table).list_entities())
        except AzureError:
            return []

    def meeting_row(self, meeting_id: str) -> dict[str, Any]:
        table = self.rig.direct_tables.get_table_client(self.prefix + schema.MEETINGS)
        return table.get_entity(schema.owner_partition(meeting_id), schema.meeting_key(meeting_id))

    def owner_views(self, tables: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
        """What each meeting's owner is shown: the meeting, its invites, its sessions."""
        ctx = self.instance(direct=True)
        by_id = {person.user_id: person for person in self.people.values()}
        shown = []
        for row in tables.get(schema.MEETINGS, []):
            owner = by_id.get(row["PartitionKey"])
            if owner is None or not row["RowKey"].startswith("m|") or row["RowKey"].count("|") != 1:
                continue
            caller, meeting_id = self.caller(owner), row["id"]
            for label, view in (
                ("GET meeting", meetings.load(ctx, caller, meeting_id).render()),
                ("invites", invites.list_invites(ctx, caller, meeting_id, 100, None)),
                ("sessions", views.list_sessions(ctx, caller, meeting_id, 100, None)),
            ):
                shown.append((f"{label} of {meeting_id}", json.dumps(view, ensure_ascii=False)))
        return shown

    def divergences(self, views_too: bool = True) -> list[str]:
        tables = {table: self.rows(table) for table in TABLES}
        presets = {"dyte": self.settings.presets_for("dyte")}
        return divergences(
            tables,
            {"dyte": self.rig.provider.snapshot("dyte")},
            self.people.values(),
            self.settings.id_hash_key,
            presets,
            self.owner_views(tables) if views_too else (),
        )

    def cleanup(self) -> None:
        """Forget this world. Its tables and queues stay: the rig's Azurite is in memory and this session's
        own, and dropping a world's dozen tables would cost more than every table ever made."""
        self.rig.provider.reset()

"""The operations the fault matrix puts faults into: each a scene, the operation, and what it commits.

Every change the provider or a derived row must follow is here (create with and without an Idempotency-Key and
invitees, invite, role change, revoke, decline, cancel, narrowing the access, first join as invitee and as
guest, rejoin, closing an account), and the background work that carries the heaviest follow-ups: the
account's clean-up job, and receiving and applying a webhook delivery.

`setup` builds the scene on a plain instance (people, a meeting with a joined and live invitee, ...); `act` runs
the operation on the instance under test and returns its `Answer` (background work has none: None); `committed`
reads our tables straight from Azurite and says whether the operation's change is there (None: the operation
changes nothing a client could see); `verify` lists what must hold once everything converged, beyond the
invariant checker (an idempotent create replays, a delivered event took effect, a join's token works).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import jwt

from dev.provider import meeting_started
from shared import jobs, schema
from shared.events import apply as events_apply
from tests.convergence.invariants import Person
from tests.convergence.world import Answer, Instance, World


@dataclass
class Scene:
    people: dict[str, Person]
    meeting_id: str = ""
    other_meeting_id: str = ""
    message: Any = None  # a queue message the background operation runs
    first: Answer | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Person:
        try:
            return self.__dict__["people"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class Operation:
    name: str
    setup: Callable[[World, Instance], Scene]
    act: Callable[[World, Instance, Scene], Answer | None]
    committed: Callable[[World, Scene], bool | None]
    verify: Callable[[World, Scene, Answer | None], list[str]] = lambda world, scene, answer: []

    @property
    def background(self) -> bool:
        return self.name in BACKGROUND


# Scenes -----------------------------------------------------------------------------------------------------


def people(world: World, *labels: str) -> dict[str, Person]:
    return {label: world.person(label) for label in labels}


def _meeting(world: World, ctx: Instance, owner: Person, invitees: list[tuple[Person, str]], **fields: Any) -> str:
    body = {"title": "Design review", **fields}
    if invitees:
        body["invitees"] = [{"email": person.emails[0], "role": role} for person, role in invitees]
    created = world.create(ctx, owner, body)
    assert created.status == 201, created
    return created.body["id"]


def _joined(world: World, ctx: Instance, meeting_id: str, *who: Person) -> None:
    for person in who:
        joined = world.join(ctx, person, meeting_id)
        assert joined.status == 200, joined


def invited_scene(world: World, ctx: Instance, *, joined: bool = True, live: bool = True) -> Scene:
    """Olga's meeting, Ann invited as participant (joined, present), Hal as host."""
    scene = Scene(people(world, "olga", "ann", "hal"))
    scene.meeting_id = _meeting(world, ctx, scene.olga, [(scene.ann, "participant"), (scene.hal, "host")])
    if joined:
        _joined(world, ctx, scene.meeting_id, scene.ann)
    if live:
        world.start_session(scene.meeting_id, scene.ann)
    return scene


def organization_scene(world: World, ctx: Instance, *, joined: bool = True) -> Scene:
    """Olga's meeting open to the organization, Ann invited; Gus, uninvited, joined as a guest and present."""
    scene = Scene(people(world, "olga", "ann", "gus"))
    scene.meeting_id = _meeting(world, ctx, scene.olga, [(scene.ann, "participant")], access="organization")
    if joined:
        _joined(world, ctx, scene.meeting_id, scene.gus)
        world.start_session(scene.meeting_id, scene.gus)
    return scene


def closing_scene(world: World, ctx: Instance) -> Scene:
    """Ann, about to close her account: invited to Olga's meeting (joined, present, named in a delivery), and
    owner of a meeting of her own with Bea invited and joined."""
    scene = invited_scene(world, ctx)
    scene.people["bea"] = world.person("bea")
    scene.other_meeting_id = _meeting(world, ctx, scene.ann, [(scene.bea, "participant")])
    _joined(world, ctx, scene.other_meeting_id, scene.bea)
    meeting = world.meeting_row(scene.meeting_id)
    from dev.provider import participant_joined

    custom = world.custom_id(scene.meeting_id, scene.ann)
    delivered = world.webhook(
        ctx,
        participant_joined(
            meeting["providerMeetingId"], "session-1", custom_participant_id=custom, name=scene.ann.name
        ),
    )
    assert delivered.status == 200, delivered
    world.drain(ctx)
    return scene


# What committed ---------------------------------------------------------------------------------------------


def _meetings_of(world: World, owner: Person) -> list[dict[str, Any]]:
    return [
        row
        for row in world.rows(schema.MEETINGS)
        if row["PartitionKey"] == owner.user_id and row["RowKey"].startswith("m|") and row["RowKey"].count("|") == 1
    ]


def _invite(world: World, meeting_id: str, person: Person) -> dict[str, Any] | None:
    key = schema.invite_key(meeting_id, sorted(person.invite_ids)[0])
    return next((row for row in world.rows(schema.MEETINGS) if row["RowKey"] == key), None)


def _participant(world: World, meeting_id: str, person: Person) -> dict[str, Any] | None:
    key = schema.participant_key(meeting_id, person.user_id)
    return next((row for row in world.rows(schema.MEETINGS) if row["RowKey"] == key), None)


def _closed(world: World, person: Person) -> bool:
    return any(row["RowKey"] == person.user_id for row in world.rows(schema.CLOSED_ACCOUNTS))


# Checks once converged --------------------------------------------------------------------------------------


def _token_works(world: World, answer: Answer | None, preset: str) -> list[str]:
    """A join's 2xx hands out a token that gets its holder in, with the preset of their role."""
    if answer is None or not answer.ok:
        return []
    check = world.rig.provider.token_check(answer.body["authToken"])
    problems = [] if check["valid"] else [f"the token the join answered with does not work: {check['reason']}"]
    claims = jwt.decode(answer.body["authToken"], options={"verify_signature": False})
    expected = world.settings.presets_for("dyte")[preset]
    with world.rig.provider._lock:  # the preset ids are the stand-in's
        preset_ids = {name: preset.id for name, preset in world.rig.provider._tenants["dyte"].presets.items()}
    if claims.get("presetId") != preset_ids.get(expected):
        problems.append(f"the token's preset is not {expected}")
    return problems


def _replays(world: World, scene: Scene, answer: Answer | None) -> list[str]:
    """The client repeats its create with the same Idempotency-Key: one meeting, the first answer's if it had one."""
    again = world.create(world.instance(direct=True), scene.olga, scene.extra["body"], scene.extra["key"])
    found = []
    if again.status != 201:
        found.append(f"repeating the create with its Idempotency-Key answered {again}")
    elif answer is not None and answer.ok and again.body["id"] != answer.body["id"]:
        found.append("repeating the create with its Idempotency-Key created another meeting")
    count = len(_meetings_of(world, scene.olga))
    if count != 1:
        found.append(f"{count} meetings after a create and its repetition with the same Idempotency-Key")
    return found


def _live(world: World, scene: Scene, answer: Answer | None) -> list[str]:
    if world.meeting_row(scene.meeting_id).get("activity") != "live":
        return ["the delivered meeting.started never took effect (the meeting is not live)"]
    return []


def _refused(world: World, scene: Scene, answer: Answer | None) -> list[str]:
    if _closed(world, scene.ann) and not world.instance(direct=True).closed.is_closed(scene.ann.user_id):
        return ["a closed account is not refused"]
    return []


# The operations ---------------------------------------------------------------------------------------------


def _create(invitees: bool, key: bool) -> Operation:
    def setup(world: World, ctx: Instance) -> Scene:
        scene = Scene(people(world, "olga", "ann", "hal"))
        body: dict[str, Any] = {"title": "Kick-off"}
        if invitees:
            body["invitees"] = [
                {"email": scene.ann.emails[0], "role": "participant"},
                {"email": scene.hal.emails[0], "role": "host"},
            ]
        scene.extra.update(body=body, key="retry-safe-1" if key else None)
        return scene

    name = "create" + (" with key" if key else "") + (" and invitees" if invitees else "")
    return Operation(
        name,
        setup,
        lambda world, ctx, scene: world.create(ctx, scene.olga, scene.extra["body"], scene.extra["key"]),
        lambda world, scene: bool(_meetings_of(world, scene.olga)),
        _replays if key else (lambda world, scene, answer: []),
    )


def _first_join_setup(world: World, ctx: Instance) -> Scene:
    return invited_scene(world, ctx, joined=False, live=False)


def _rejoin_setup(world: World, ctx: Instance) -> Scene:
    scene = invited_scene(world, ctx, live=False)
    world.clock.now += timedelta(seconds=11)  # past the few seconds a fresh token is shared
    return scene


def _first_join_committed(world: World, scene: Scene) -> bool:
    invite = _invite(world, scene.meeting_id, scene.ann)
    participant = _participant(world, scene.meeting_id, scene.ann)
    return bool(invite and invite["boundTo"]) or bool(participant and participant.get("participantId"))


def _guest_join_committed(world: World, scene: Scene) -> bool:
    participant = _participant(world, scene.meeting_id, scene.gus)
    return bool(participant and participant.get("participantId"))


def _close_job_setup(world: World, ctx: Instance) -> Scene:
    scene = closing_scene(world, ctx)
    closed = world.close(ctx, scene.ann)
    assert closed.status == 204, closed
    queue = ctx.storage.queue(schema.JOBS_QUEUE)
    scene.message = next(iter(queue.receive_messages(max_messages=1, visibility_timeout=600)))
    return scene


def _run_message(queue_name: str, handle: Callable[[Instance, str], None]):
    def act(world: World, ctx: Instance, scene: Scene) -> None:
        # The queue trigger: the function runs; the message is deleted only when it succeeded (else it comes
        # back after its visibility timeout, or its work's pending entry is swept).
        handle(ctx, scene.message.content)
        ctx.storage.queue(queue_name).delete_message(scene.message)

    return act


def _apply_setup(world: World, ctx: Instance) -> Scene:
    scene = _webhook_setup(world, ctx)
    received = world.webhook(ctx, scene.extra["event"])
    assert received.status == 200, received
    queue = ctx.storage.queue(schema.WEBHOOK_QUEUE)
    scene.message = next(iter(queue.receive_messages(max_messages=1, visibility_timeout=600)))
    return scene


def _webhook_setup(world: World, ctx: Instance) -> Scene:
    scene = invited_scene(world, ctx, live=False)
    meeting = world.meeting_row(scene.meeting_id)
    scene.extra["event"] = meeting_started(meeting["providerMeetingId"], "session-1")
    return scene


def _redelivered(world: World, scene: Scene, answer: Answer | None) -> list[str]:
    """The provider retries a delivery that was not answered 2xx (it is the same body)."""
    if answer is None or not answer.ok:
        again = world.webhook(world.instance(direct=True), scene.extra["event"])
        if again.status != 200:
            return [f"the provider's retry of the delivery was answered {again}"]
        world.converge()
    return _live(world, scene, answer)


def _field(name: str, person: str, value: str) -> Callable[[World, Scene], bool]:
    def committed(world: World, scene: Scene) -> bool:
        invite = _invite(world, scene.meeting_id, scene.people[person])
        return invite is not None and invite[name] == value

    return committed


OPERATIONS: tuple[Operation, ...] = (
    _create(invitees=False, key=False),
    _create(invitees=False, key=True),
    _create(invitees=True, key=False),
    _create(invitees=True, key=True),
    Operation(
        "invite",
        lambda world, ctx: invited_scene(world, ctx),
        lambda world, ctx, scene: world.invite(
            ctx,
            scene.olga,
            scene.meeting_id,
            [
                {"email": world.person("bea").emails[0], "role": "participant"},
                {"email": world.person("cy").emails[0], "role": "host"},
            ],
        ),
        lambda world, scene: _invite(world, scene.meeting_id, world.people["bea"]) is not None,
    ),
    Operation(
        "role change",
        lambda world, ctx: invited_scene(world, ctx),
        lambda world, ctx, scene: world.invite(
            ctx, scene.olga, scene.meeting_id, [{"email": scene.ann.emails[0], "role": "host"}]
        ),
        _field("role", "ann", "host"),
    ),
    Operation(
        "revoke",
        lambda world, ctx: invited_scene(world, ctx),
        lambda world, ctx, scene: world.revoke(ctx, scene.olga, scene.meeting_id, scene.ann),
        _field("status", "ann", "revoked"),
    ),
    Operation(
        "decline",
        lambda world, ctx: invited_scene(world, ctx),
        lambda world, ctx, scene: world.decline(ctx, scene.ann, scene.meeting_id),
        _field("status", "ann", "declined"),
    ),
    Operation(
        "cancel",
        lambda world, ctx: invited_scene(world, ctx),
        lambda world, ctx, scene: world.cancel(ctx, scene.olga, scene.meeting_id),
        lambda world, scene: bool(world.meeting_row(scene.meeting_id).get("cancelledAt")),
    ),
    Operation(
        "narrow access",
        lambda world, ctx: organization_scene(world, ctx),
        lambda world, ctx, scene: world.patch(ctx, scene.olga, scene.meeting_id, {"access": "invited"}),
        lambda world, scene: world.meeting_row(scene.meeting_id).get("access") == "invited",
    ),
    Operation(
        "first join",
        _first_join_setup,
        lambda world, ctx, scene: world.join(ctx, scene.ann, scene.meeting_id),
        _first_join_committed,
        lambda world, scene, answer: _token_works(world, answer, "participant"),
    ),
    Operation(
        "guest join",
        lambda world, ctx: organization_scene(world, ctx, joined=False),
        lambda world, ctx, scene: world.join(ctx, scene.gus, scene.meeting_id),
        _guest_join_committed,
        lambda world, scene, answer: _token_works(world, answer, "guest"),
    ),
    Operation(
        "rejoin",
        _rejoin_setup,
        lambda world, ctx, scene: world.join(ctx, scene.ann, scene.meeting_id),
        lambda world, scene: None,
        lambda world, scene, answer: _token_works(world, answer, "participant"),
    ),
    Operation(
        "close account",
        closing_scene,
        lambda world, ctx, scene: world.close(ctx, scene.ann),
        lambda world, scene: _closed(world, scene.ann),
        _refused,
    ),
    Operation(
        "close account job",
        _close_job_setup,
        _run_message(schema.JOBS_QUEUE, lambda ctx, text: jobs.run(ctx, text, _job_handlers())),
        lambda world, scene: None,
    ),
    Operation(
        "webhook receive",
        _webhook_setup,
        lambda world, ctx, scene: world.webhook(ctx, scene.extra["event"]),
        # Contract section 5 answers 503 when the enqueue fails though the delivery is recorded: a 503 here
        # means "deliver again", and `_redelivered` checks that nothing recorded is lost.
        lambda world, scene: None,
        _redelivered,
    ),
    Operation(
        "webhook apply",
        _apply_setup,
        _run_message(schema.WEBHOOK_QUEUE, events_apply.run),
        lambda world, scene: None,
        _live,
    ),
)
BACKGROUND = ("close account job", "webhook apply")


def _job_handlers() -> Any:
    import function_app

    return function_app.JOB_HANDLERS

"""The invariant checker finds what it must: each divergence made by hand, against a converged world.

A checker that finds nothing proves nothing unless it is seen to find things: here every kind of divergence
is made on purpose (at the provider, in a derived row, or as leftover work) and must be reported.
"""

from __future__ import annotations

import pytest
import requests
from azure.data.tables import UpdateMode

from shared import schema
from shared.provider import ProviderClient
from tests.convergence.invariants import Person, place
from tests.convergence.operations import invited_scene, organization_scene
from tests.convergence.world import World


def provider(world: World) -> ProviderClient:
    session = requests.Session()
    session.trust_env = False
    return ProviderClient.for_dyte(world.rig.provider.dyte_credentials(), session)


def table(world: World, name: str):
    return world.rig.direct_tables.get_table_client(world.prefix + name)


def found(world: World, *fragments: str) -> list[str]:
    divergences = world.divergences()
    for fragment in fragments:
        assert any(fragment in line for line in divergences), f"{fragment!r} not in {divergences}"
    return divergences


@pytest.fixture
def scene(world: World):
    made = invited_scene(world, world.ctx)
    world.converge()
    assert world.divergences() == []
    return made


def test_a_converged_world_has_no_divergence(world: World, scene) -> None:
    assert world.divergences() == []


def test_someone_uninvited_at_the_provider(world: World, scene) -> None:
    bea = world.person("bea")
    meeting = world.meeting_row(scene.meeting_id)
    provider(world).add_participant(
        meeting["providerMeetingId"],
        custom_participant_id=world.custom_id(scene.meeting_id, bea),
        name=None,
        preset_name="group_call_participant",
    )
    found(world, "bea has a provider participant but may not join now (not invited")


def test_a_stranger_at_the_provider(world: World, scene) -> None:
    meeting = world.meeting_row(scene.meeting_id)
    provider(world).add_participant(
        meeting["providerMeetingId"], custom_participant_id="who-is-this", name=None, preset_name="group_call_host"
    )
    found(world, "is nobody we know here")


def test_a_preset_that_is_not_the_role(world: World, scene) -> None:
    meeting = world.meeting_row(scene.meeting_id)
    client = provider(world)
    ann = client.find_participant(meeting["providerMeetingId"], world.custom_id(scene.meeting_id, scene.ann))
    client.set_participant_preset(meeting["providerMeetingId"], ann.id, "group_call_host")
    found(world, "ann (participant) has preset 'group_call_host', not 'group_call_participant'")


def test_two_participants_for_one_person(world: World, scene) -> None:
    meeting = world.meeting_row(scene.meeting_id)
    provider(world).add_participant(
        meeting["providerMeetingId"],
        custom_participant_id=world.custom_id(scene.meeting_id, scene.ann),
        name=None,
        preset_name="group_call_participant",
    )
    found(world, "2 provider participants for ann")


def test_a_live_peer_not_kicked_after_a_preset_change(world: World, scene) -> None:
    # Ann is a host now in our tables and at the provider, but her live peer entered as a participant.
    key = schema.invite_key(scene.meeting_id, sorted(scene.ann.invite_ids)[0])
    table(world, schema.MEETINGS).update_entity(
        {"PartitionKey": scene.olga.user_id, "RowKey": key, "role": "host"}, UpdateMode.MERGE
    )
    meeting = world.meeting_row(scene.meeting_id)
    client = provider(world)
    ann = client.find_participant(meeting["providerMeetingId"], world.custom_id(scene.meeting_id, scene.ann))
    client.set_participant_preset(meeting["providerMeetingId"], ann.id, "group_call_host")
    divergences = found(world, "ann's live peer still has the rights of 'group_call_participant'")
    assert not any("has preset" in line for line in divergences), divergences


def test_a_revoked_or_declined_invitee_still_at_the_provider(world: World, scene) -> None:
    key = schema.invite_key(scene.meeting_id, sorted(scene.ann.invite_ids)[0])
    invites = table(world, schema.MEETINGS)
    invites.update_entity({"PartitionKey": scene.olga.user_id, "RowKey": key, "status": "revoked"}, UpdateMode.MERGE)
    found(
        world, "ann has a provider participant but may not join now (revoked)", "invitee-index row disagrees on status"
    )
    invites.update_entity({"PartitionKey": scene.olga.user_id, "RowKey": key, "status": "declined"}, UpdateMode.MERGE)
    found(world, "ann has a provider participant but may not join now (declined)")


def test_a_cancelled_meeting_still_active_or_live(world: World, scene) -> None:
    assert world.cancel(world.ctx, scene.olga, scene.meeting_id).status == 204
    world.converge()
    assert world.divergences() == []
    meeting = world.meeting_row(scene.meeting_id)
    client = provider(world)
    client.set_meeting_status(meeting["providerMeetingId"], "ACTIVE")
    custom = world.custom_id(scene.meeting_id, scene.ann)
    client.add_participant(
        meeting["providerMeetingId"], custom_participant_id=custom, name=None, preset_name="group_call_participant"
    )
    world.rig.provider.start_session("dyte", meeting["providerMeetingId"], custom_participant_ids=[custom])
    found(world, "is cancelled but ACTIVE at the provider", "is cancelled but has a live session")


def test_a_guest_after_the_access_narrowed(world: World) -> None:
    made = organization_scene(world, world.ctx)
    world.converge()
    assert world.divergences() == []
    table(world, schema.MEETINGS).update_entity(
        {"PartitionKey": made.olga.user_id, "RowKey": schema.meeting_key(made.meeting_id), "access": "invited"},
        UpdateMode.MERGE,
    )
    found(world, "gus has a provider participant but may not join now", "owner-index row disagrees on access")


def test_derived_rows_that_disagree_or_are_missing(world: World, scene) -> None:
    meetings = table(world, schema.MEETINGS)
    index_row = next(row for row in world.rows(schema.MEETINGS) if row["RowKey"].startswith("s|"))
    meetings.update_entity({**index_row, "title": "Something else"}, UpdateMode.MERGE)
    invitations = table(world, schema.INVITATIONS)
    for row in world.rows(schema.INVITATIONS):
        if row["PartitionKey"] in scene.ann.invite_ids:
            invitations.update_entity({**row, "boundTo": ""}, UpdateMode.MERGE)
        else:
            invitations.delete_entity(row["PartitionKey"], row["RowKey"])
    found(
        world,
        "owner-index row disagrees on title",
        "invitee-index row disagrees on boundTo",
        "(pending): no invitee-index row",
    )


def test_a_status_the_follow_up_never_copied(world: World, scene) -> None:
    # The webhooks' summary says a session is open, and owes the follow-up that never ran.
    table(world, schema.MEETINGS).create_entity(
        {
            "PartitionKey": scene.olga.user_id,
            "RowKey": schema.activity_key(scene.meeting_id, schema.SUMMARY),
            "open": '["s|session-1"]',
            "seen": True,
            "owesSince": "2031-03-03T09:00:00.000000Z",
        }
    )
    found(world, "activity '', its webhooks say 'live'", "summary still owes the follow-up")


def test_work_left_over(world: World, scene) -> None:
    table(world, schema.PENDING).create_entity(
        {"PartitionKey": "work", "RowKey": "f|" + scene.meeting_id, "attempts": 3, "lastError": "provider-timeout"}
    )
    table(world, schema.MEETINGS).create_entity(
        {"PartitionKey": scene.olga.user_id, "RowKey": schema.marker_key(scene.meeting_id, "x")}
    )
    found(world, "pending entry f|", "follow-up marker", "provider-timeout")


def test_a_closed_account_still_named(world: World, scene) -> None:
    assert world.close(world.ctx, scene.ann).status == 204
    world.converge()
    assert world.divergences() == []
    table(world, schema.STATUS).create_entity({"PartitionKey": "x", "RowKey": "y", "note": scene.ann.emails[0]})
    found(world, "closed account ann's name or address is still stored or shown: Status y (note)")


def test_a_closed_account_still_at_the_provider(world: World, scene) -> None:
    # The tombstone without the clean-up: what the checker sees if the clean-up never ran.
    world.ctx.closed.close(scene.ann.user_id)
    found(world, "ann has a provider participant but may not join now (closed account)", "closed account ann's name")


def test_the_rules_of_who_may_hold_a_place() -> None:
    ann = Person("ann", "t", "o", "Ann", ("ann@contoso.test",), "ann-id")
    (invite_id,) = ann.invite_ids
    meeting = {"ownerId": "olga-id", "access": "invited", "cancelledAt": ""}
    org = {**meeting, "access": "organization"}

    def invite(status: str, role: str = "participant", bound: str = "", address: str = invite_id) -> dict:
        return {"id": address, "status": status, "role": role, "boundTo": bound}

    assert place(ann, meeting, [], set()).role is None
    assert place(ann, org, [], set()).role == "guest"
    assert place(ann, org, [invite("revoked")], set()).reason == "revoked"  # a revocation wins over the access
    assert place(ann, meeting, [invite("declined")], set()).reason == "declined"
    assert place(ann, org, [invite("declined")], set()).role == "guest"  # declining is no revocation
    assert place(ann, meeting, [invite("pending"), invite("accepted", "host", address="other")], set()).role == (
        "participant"  # the other invite is addressed to someone else and not bound to ann
    )
    assert place(ann, meeting, [invite("accepted", "host", bound="ann-id", address="other")], set()).role == "host"
    assert place(ann, meeting, [invite("accepted", bound="someone-else")], set()).role is None
    assert (
        place(ann, meeting, [invite("pending"), invite("pending", "host", bound="ann-id", address="x")], set()).role
        == "host"
    )
    assert place(ann, {**meeting, "ownerId": "ann-id"}, [invite("revoked")], set()).role == "owner"
    assert place(ann, {**meeting, "ownerId": "ann-id"}, [], {"ann-id"}).reason == "closed account"
    assert (
        place(ann, {**meeting, "cancelledAt": "2031-01-01T00:00:00.000000Z"}, [invite("pending")], set()).role is None
    )

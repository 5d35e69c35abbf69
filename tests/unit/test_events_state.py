"""What deliveries say and how they merge: the pure part of webhook ingestion, order independence included."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dev.provider import webhooks
from shared import schema, storage
from shared.events import state

MEETING = "50c8940e-1b97-402a-97d6-2708b7feca41"
SESSIONS = ("05e57591-d89e-45c9-ae44-08dc1eaad0e0", "79365b9b-e5ef-452f-934e-e171d75d254b")
PEERS = ("peer-a", "peer-b", "peer-c")
PEOPLE = {"cp-owner": "user-owner", "cp-guest": "user-guest"}
RECORDINGS = ("ab920f84-2d19-4013-99c7-5b80291d0188", "rec/with?odd#chars")
MINUTES = range(0, 60, 7)


def at(minute: int) -> str:
    return f"2026-11-25T10:{minute:02d}:00.000Z"


def spaced(minute: int) -> str:
    return f"2026-11-25 10:{minute:02d}:00.306221Z"


def received(minute: int, second: int) -> str:
    return f"2026-11-25T10:{minute:02d}:{second:02d}.000000Z"


@st.composite
def deliveries(draw) -> tuple[dict, str]:
    """One delivery as the provider sends it (the stand-in's payload builders) and when it was received."""
    kind = draw(st.sampled_from((*state.HANDLED, "meeting.chatSynced")))
    mode = draw(st.sampled_from(("dyte", "realtimekit")))
    session = draw(st.sampled_from(SESSIONS))
    start = draw(st.sampled_from(MINUTES))
    common = {"mode": mode, "started_at": at(start)}
    person = draw(st.sampled_from(sorted(PEOPLE)))
    peer = {"custom_participant_id": person, "peer_id": draw(st.sampled_from(PEERS)), "name": person.title()}
    if kind == state.MEETING_STARTED:
        payload = webhooks.meeting_started(MEETING, session, **common)
    elif kind == state.MEETING_ENDED:
        reason = draw(st.sampled_from(("HOST_ENDED_MEETING", "ALL_PARTICIPANTS_LEFT")))
        payload = webhooks.meeting_ended(
            MEETING, session, reason=reason, ended_at=at(draw(st.sampled_from(MINUTES))), **common
        )
    elif kind == state.PARTICIPANT_JOINED:
        payload = webhooks.participant_joined(
            MEETING, session, joined_at=at(draw(st.sampled_from(MINUTES))), **peer, **common
        )
    elif kind == state.PARTICIPANT_LEFT:
        joined, left = sorted(draw(st.lists(st.sampled_from(MINUTES), min_size=2, max_size=2)))
        payload = webhooks.participant_left(MEETING, session, joined_at=at(joined), left_at=at(left), **peer, **common)
    elif kind == state.RECORDING_STATUS:
        payload = webhooks.recording_status(
            MEETING,
            session,
            mode=mode,
            status=draw(st.sampled_from(sorted(state.RECORDING_RANK))),
            recording_id=draw(st.sampled_from(RECORDINGS)),
            file_size=draw(st.sampled_from((0, 2044680, 7 * 10**9))),
            started_time=spaced(start),
            stopped_time=spaced(draw(st.sampled_from(MINUTES))),
        )
    else:
        payload = {"event": kind, "sessionId": session, "meetingId": MEETING, "chatDownloadUrl": "https://x.test/c"}
    # Older payloads leave times and ids out: the receipt time stands in, or the applier places the event.
    for field in draw(st.sets(st.sampled_from(("startedAt", "sessionId", "joinedAt", "roomUUID")))):
        for part in (payload.get("meeting"), payload.get("participant"), payload.get("recording")):
            if isinstance(part, dict):
                part.pop(field, None)
    return payload, received(draw(st.sampled_from(MINUTES)), draw(st.integers(0, 59)))


def fold(sequence) -> dict[str, dict]:
    """Apply deliveries in this order, as the applier does row by row, without storage."""
    rows: dict[str, dict] = {}
    for payload, received_at in sequence:
        event = state.parse(payload, received_at)
        if event is None:
            continue
        user = PEOPLE.get(event.participant.custom_participant_id, "") if event.participant else ""
        for key, update in state.facts(event, user).items():
            rows[key] = state.merge(rows.get(key, {}), update)
    return rows


def summary_of(sequence, summary=None) -> dict:
    """The meeting's summary row after these deliveries in this order, as the applier folds it: each session
    event with its session's row as merged so far."""
    summary = dict(summary or {})
    rows: dict[str, dict] = {}
    for payload, received_at in sequence:
        event = state.parse(payload, received_at)
        if event is None:
            continue
        for key, update in state.facts(event, "").items():
            rows[key] = state.merge(rows.get(key, {}), update)
        if event.name in state.SESSION_EVENTS and event.session_id:  # a session-less one waits to be placed
            summary = state.summarize(summary, event.session_id, rows[schema.session_key(event.session_id)])
    return summary


def status(sequence) -> str:
    return state.activity(summary_of(sequence))


@settings(max_examples=300, deadline=None)
@given(st.lists(deliveries(), min_size=1, max_size=30), st.lists(st.integers(min_value=0), max_size=15), st.randoms())
def test_any_permutation_with_duplicates_yields_the_same_state(sequence, repeats, shuffler):
    reordered = list(sequence) + [sequence[index % len(sequence)] for index in repeats]
    shuffler.shuffle(reordered)
    expected = fold(sequence)
    assert fold(reordered) == expected
    assert summary_of(reordered) == summary_of(sequence)
    assert status(reordered) == status(sequence)


# The meeting's summary: the sessions seen and those ended, from session events only.
MORE_SESSIONS = (*SESSIONS, "s-3", "a|b")


@st.composite
def session_deliveries(draw) -> tuple[dict, str]:
    """A session event (started, ended, a participant joined or left) of one of a few sessions."""
    kind = draw(st.sampled_from(state.SESSION_EVENTS))
    session = draw(st.sampled_from(MORE_SESSIONS))
    minute = draw(st.sampled_from(MINUTES))
    peer = {"custom_participant_id": "cp-guest", "peer_id": draw(st.sampled_from(PEERS))}
    if kind == state.MEETING_STARTED:
        payload = webhooks.meeting_started(MEETING, session, started_at=at(minute))
    elif kind == state.MEETING_ENDED:
        payload = webhooks.meeting_ended(MEETING, session, started_at=at(0), ended_at=at(minute))
    elif kind == state.PARTICIPANT_JOINED:
        payload = webhooks.participant_joined(MEETING, session, joined_at=at(minute), **peer)
    else:
        payload = webhooks.participant_left(MEETING, session, joined_at=at(0), left_at=at(minute), **peer)
    return payload, received(minute, draw(st.integers(0, 59)))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(session_deliveries(), min_size=1, max_size=25),
    st.lists(st.integers(min_value=0), max_size=15),
    st.randoms(),
)
def test_the_summary_and_status_are_the_same_for_any_permutation_with_duplicates(sequence, repeats, shuffler):
    reordered = list(sequence) + [sequence[index % len(sequence)] for index in repeats]
    shuffler.shuffle(reordered)
    assert summary_of(reordered) == summary_of(sequence)
    assert state.activity(summary_of(reordered)) == state.activity(summary_of(sequence))
    # The status is what the merged session rows say: live while any session has no end.
    sessions = [row for key, row in fold(sequence).items() if key.startswith(schema.SESSION)]
    expected = "" if not sessions else "live" if any(not row.get("endedAt") for row in sessions) else "ended"
    assert state.activity(summary_of(reordered)) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(session_deliveries(), min_size=1, max_size=10))
def test_folding_the_events_again_into_the_summary_changes_nothing(sequence):
    summary = summary_of(sequence)
    assert summary_of(sequence, summary) == summary


def uuid_sessions(count: int) -> list[str]:
    """Provider session ids as UUIDs make them."""
    return [f"{n:08x}-1b97-402a-97d6-2708b7feca41" for n in range(count)]


def test_the_summary_row_stays_small_however_many_sessions_a_meeting_had():
    """Only the sessions open at once are listed: a standing room used daily for years stays one small row."""
    sequence = []
    for n, session in enumerate(uuid_sessions(2000)):
        sequence.append((webhooks.meeting_started(MEETING, session, started_at=at(0)), received(0, n % 60)))
        sequence.append((webhooks.meeting_ended(MEETING, session, started_at=at(0), ended_at=at(30)), received(30, 1)))
    summary = summary_of(sequence)
    storage.check_entity({"PartitionKey": "p", "RowKey": "r", **summary})
    assert (json.loads(summary["open"]), state.activity(summary)) == ([], "ended")


def test_a_late_duplicate_start_of_an_ended_session_does_not_make_the_meeting_live_again():
    [session] = uuid_sessions(1)
    started = (webhooks.meeting_started(MEETING, session, started_at=at(0)), received(0, 1))
    ended = (webhooks.meeting_ended(MEETING, session, started_at=at(0), ended_at=at(30)), received(30, 1))
    assert state.activity(summary_of([started, ended, started])) == "ended"
    assert state.activity(summary_of([ended, started])) == "ended"


@settings(max_examples=200, deadline=None)
@given(st.lists(deliveries(), min_size=1, max_size=10))
def test_merging_a_row_with_itself_changes_nothing(sequence):
    for row in fold(sequence).values():
        assert state.merge(row, row) == row


def test_a_session_stays_live_until_its_own_end_arrives_whatever_the_order():
    first, second = SESSIONS
    started = (webhooks.meeting_started(MEETING, first, started_at=at(0)), received(0, 1))
    ended = (webhooks.meeting_ended(MEETING, first, started_at=at(0), ended_at=at(30)), received(30, 1))
    other = (webhooks.meeting_started(MEETING, second, started_at=at(40)), received(40, 1))
    assert status([]) == ""
    assert status([started]) == "live"
    assert status([ended, started]) == "ended"
    assert status([ended, other, started]) == "live"
    # A participant event of a session whose start was lost still opens it.
    joined = webhooks.participant_joined(MEETING, second, custom_participant_id="cp-guest", joined_at=at(41))
    assert status([ended, started, (joined, received(41, 0))]) == "live"


def test_recording_status_moves_forward_only_and_ties_go_to_the_later_delivery():
    def recording(status, minute):
        payload = webhooks.recording_status(MEETING, SESSIONS[0], status=status, recording_id=RECORDINGS[0])
        return payload, received(minute, 0)

    def final(*sequence):
        (row,) = fold(sequence).values()
        return row["status"]

    assert final(recording("UPLOADED", 5), recording("UPLOADING", 6)) == "UPLOADED"
    assert final(recording("ERRORED", 5), recording("UPLOADING", 6)) == "ERRORED"
    assert final(recording("UPLOADED", 5), recording("ERRORED", 6)) == "UPLOADED"
    assert final(recording("PAUSED", 7), recording("RECORDING", 6), recording("INVOKED", 8)) == "PAUSED"
    assert final(recording("PAUSED", 7), recording("RECORDING", 9)) == "RECORDING"


def test_a_rejoin_is_a_new_interval_and_an_interval_keeps_its_explicit_leave():
    session = SESSIONS[0]
    base = {"custom_participant_id": "cp-guest", "name": "Guest"}
    rows = fold(
        [
            (
                webhooks.participant_left(MEETING, session, peer_id="p1", joined_at=at(1), left_at=at(5), **base),
                received(9, 0),
            ),
            (webhooks.participant_joined(MEETING, session, peer_id="p1", joined_at=at(1), **base), received(9, 0)),
            (webhooks.participant_joined(MEETING, session, peer_id="p2", joined_at=at(6), **base), received(9, 0)),
        ]
    )
    first, second = rows[schema.interval_key(session, "p1")], rows[schema.interval_key(session, "p2")]
    assert (first["joinedAt"], first["leftAt"], first["userId"]) == (
        state.instant(at(1)),
        state.instant(at(5)),
        "user-guest",
    )
    assert (second["joinedAt"], second.get("leftAt")) == (state.instant(at(6)), None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-04-14 04:46:08.306221Z", "2023-04-14T04:46:08.306221Z"),
        ("2022-12-13T06:57:09.736Z", "2022-12-13T06:57:09.736000Z"),
        ("2022-12-13T06:57:09Z", "2022-12-13T06:57:09.000000Z"),
        ("2022-12-13T08:57:09.1234567+02:00", "2022-12-13T06:57:09.123456Z"),
        ("2022-12-13T06:57:09.5", "2022-12-13T06:57:09.500000Z"),
        (1681447566346, "2023-04-14T04:46:06.346000Z"),
        ("1681447566346", "2023-04-14T04:46:06.346000Z"),
        (1681447566, "2023-04-14T04:46:06.000000Z"),
        ("2023-02-30T00:00:00Z", ""),
        ("yesterday", ""),
        (True, ""),
        (None, ""),
        (float("nan"), ""),
        (10**30, ""),
        ("0900-01-01T00:00:00Z", ""),
    ],
)
def test_timestamps_in_every_format_the_provider_sends(value, expected):
    assert state.instant(value) == expected


def test_lenient_numbers_urls_reasons_and_ids():
    assert state.count("2044680") == state.count(2044680) == 2044680.0
    assert state.count("-1") is state.count("12abc") is state.count(True) is state.count(float("inf")) is None
    assert state.stop_reason("{'reason':'ALL_PEERS_LEFT','caller':{'type':'INTERNAL'}}") == "ALL_PEERS_LEFT"
    assert state.stop_reason({"reason": "STOPPED_BY_HOST"}) == "STOPPED_BY_HOST"
    assert state.stop_reason("ALL_PEERS_LEFT") == "ALL_PEERS_LEFT"
    assert state.stop_reason("{not: a reason}") == state.stop_reason(7) == ""
    assert state.url("https://r.test/a.mp4") == "https://r.test/a.mp4"
    assert state.url("javascript:alert(1)") == state.url("https://a b") == ""
    assert state.ident("x\x00y") == state.ident("") == state.ident("x" * 257) == state.ident(5) == ""


@pytest.mark.parametrize("value", ["a/b", "a\\b", "a#b", "a?b", "a|b", "~x", "é", "x" * 65, "a\tb"])
def test_provider_ids_never_break_a_key(value):
    part = schema.key_part(value)
    assert part.startswith("~") and len(part) == 44
    assert all(char.isalnum() or char in "-_~" for char in part)


def test_unhandled_or_incomplete_events_give_nothing():
    assert state.parse({"event": "meeting.transcript", "meeting": {"id": MEETING}}, "x") is None
    assert state.parse({"event": state.MEETING_STARTED, "meeting": {"id": MEETING}}, "x") is None  # no session
    assert state.parse({"event": state.MEETING_STARTED, "meeting": "nope"}, "x") is None
    assert state.parse({"event": state.PARTICIPANT_JOINED, "meeting": {"id": MEETING, "sessionId": "s"}}, "x") is None
    odd_status = webhooks.recording_status(MEETING, SESSIONS[0], status="PROCESSING")
    assert state.parse(odd_status, "x") is None
    with pytest.raises(state.Malformed):
        state.document(b"{not json")
    with pytest.raises(state.Malformed):
        state.document(b"[1]")
    with pytest.raises(state.Malformed):
        state.document(b'{"a": NaN}')


def test_a_session_event_without_startedat_starts_its_session_at_its_own_earliest_time():
    first = received(5, 0)
    started = {"event": state.MEETING_STARTED, "meeting": {"id": MEETING, "sessionId": SESSIONS[0]}}
    (row,) = fold([(started, first)]).values()
    assert row["startedAt"] == first  # no "session with no start"
    joined = webhooks.participant_joined(MEETING, SESSIONS[0], custom_participant_id="cp-guest", joined_at=at(2))
    del joined["meeting"]["startedAt"]
    rows = fold([(started, first), (joined, received(9, 0))])
    assert rows[state.session_key(SESSIONS[0])]["startedAt"] == state.instant(at(2))  # a join proves an earlier start
    explicit = webhooks.meeting_started(MEETING, SESSIONS[0], started_at=at(1))
    rows = fold([(joined, received(9, 0)), (explicit, received(9, 30)), (started, first)])
    assert rows[state.session_key(SESSIONS[0])]["startedAt"] == state.instant(at(1))  # a real start wins


def test_a_join_without_joinedat_happened_by_its_receipt_and_an_explicit_leftat_counts_anywhere():
    joined = webhooks.participant_joined(MEETING, SESSIONS[0], custom_participant_id="cp-guest", peer_id="p")
    del joined["participant"]["joinedAt"]
    event = state.parse(joined, received(3, 0))
    assert (event.participant.joined_at, event.participant.left_at) == (received(3, 0), "")
    # Dyte's v1 webhook log shows a participantJoined that carries the peer's leftAt too.
    joined["participant"].update(joinedAt=at(1), leftAt=at(4))
    event = state.parse(joined, received(9, 0))
    assert (event.participant.joined_at, event.participant.left_at) == (state.instant(at(1)), state.instant(at(4)))


def test_a_recording_belongs_to_the_meetings_session_before_its_roomuuid():
    payload = webhooks.recording_status(MEETING, SESSIONS[0], status="UPLOADED", recording_id=RECORDINGS[0])
    payload["recording"]["roomUUID"] = SESSIONS[1]  # as in Dyte's own UPLOADED example
    assert state.parse(payload, received(1, 0)).recording.session_id == SESSIONS[0]
    del payload["meeting"]["sessionId"]  # as in Dyte's UPLOADING example
    assert state.parse(payload, received(1, 0)).recording.session_id == SESSIONS[1]
    del payload["recording"]["roomUUID"]  # as in the 2022 sample: a recording without a session
    assert state.parse(payload, received(1, 0)).recording.session_id == ""


def test_a_participant_event_without_a_session_waits_to_be_placed_in_the_session_live_at_its_time():
    joined = webhooks.participant_joined(MEETING, SESSIONS[0], custom_participant_id="cp-guest", peer_id="p")
    del joined["meeting"]["sessionId"]
    event = state.parse(joined, received(3, 0))
    assert (event.session_id, event.participant.peer_id) == ("", "p")
    assert state.facts(event, "user-guest") == {}  # nothing can be written before it is placed
    ended = {"sessionId": SESSIONS[1], "startedAt": state.instant(at(0)), "endedAt": state.instant(at(14))}
    live = {"sessionId": SESSIONS[0], "startedAt": state.instant(at(21)), "endedAt": ""}
    assert state.session_at([ended, live], state.instant(at(7))) == SESSIONS[1]  # it was live then, ended since
    assert state.session_at([ended, live], state.instant(at(28))) == SESSIONS[0]
    assert state.session_at([ended, live], state.instant(at(14))) == SESSIONS[1]
    assert state.session_at([ended, live], state.instant(at(15))) == ""  # between sessions
    overlapping = {"sessionId": "another", "startedAt": state.instant(at(0)), "endedAt": ""}
    assert state.session_at([ended, live, overlapping], state.instant(at(28))) == ""  # which one? unknown
    assert state.session_at([], state.instant(at(28))) == ""
    placed = state.facts(state.in_session(event, SESSIONS[0]), "user-guest")
    assert placed[state.session_key(SESSIONS[0])] == {"sessionId": SESSIONS[0], "startedAt": ""}  # start not inferred
    interval = placed[state.interval_key(SESSIONS[0], "p")]
    assert (interval["userId"], interval["joinedAt"]) == (
        "user-guest",
        state.instant(joined["participant"]["joinedAt"]),
    )


def test_an_ended_event_without_times_still_ends_the_session_at_its_receipt():
    payload = {"event": state.MEETING_ENDED, "meeting": {"id": MEETING, "sessionId": SESSIONS[0]}}
    (row,) = fold([(payload, "2026-11-25T10:00:00.000000Z")]).values()
    assert row["endedAt"] == "2026-11-25T10:00:00.000000Z"

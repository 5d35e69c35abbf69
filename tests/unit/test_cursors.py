"""Sealed list cursors: the server opens only cursors it issued, for the same caller and the same list."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import cursors, problems

KEY = b"local-only-id-hash-key-not-a-secret"
LISTING, CALLER = "meetings:all", "C8_a-ejhuef2Rl8xum048w"

positions = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(positions)
def test_a_cursor_opens_to_the_position_it_sealed(position):
    cursor = cursors.seal(KEY, LISTING, CALLER, position)
    assert cursor.isascii() and "." in cursor
    assert cursors.open_(KEY, LISTING, CALLER, cursor) == position


def test_no_cursor_is_the_first_page():
    assert cursors.open_(KEY, LISTING, CALLER, None) is None


def refused(cursor: str, key: bytes = KEY, listing: str = LISTING, caller: str = CALLER) -> None:
    with pytest.raises(problems.Validation) as failure:
        cursors.open_(key, listing, caller, cursor)
    assert failure.value.status == 400


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def test_a_cursor_for_another_caller_list_or_key_is_refused():
    cursor = cursors.seal(KEY, LISTING, CALLER, {"o": "s|0x"})
    refused(cursor, caller="someone-else")
    refused(cursor, listing="meetings:owned")
    refused(cursor, listing="invites:" + CALLER)
    refused(cursor, key=b"another-deployment-key-of-length")


def test_a_forged_or_damaged_cursor_is_refused():
    cursor = cursors.seal(KEY, LISTING, CALLER, {"o": "s|0x"})
    body, _, signature = cursor.partition(".")
    forged_body = b64(json.dumps({"o": "s|~"}).encode())
    for bad in (
        f"{forged_body}.{signature}",  # another position under the old seal
        f"{body}.{b64(b'0' * 16)}",  # a made-up seal
        f"{body}.",  # no seal
        body,  # no separator
        cursor[:-1],  # truncated
        cursor[:-4],
        cursor[: len(body) - 2] + cursor[len(body) :],
        "." + signature,
        ".",
        "",
        "not a cursor",
        "%%%.%%%",
        cursor + "é",
        cursor + "." + signature,
        "a" * (cursors.MAX_CHARACTERS - 2) + "." + signature,
    ):
        refused(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_other_string_is_a_400(text):
    cursor = cursors.seal(KEY, LISTING, CALLER, "s|0x")
    if text == cursor:
        return
    refused(text)


def test_only_the_string_issued_opens():
    cursor = cursors.seal(KEY, LISTING, CALLER, {"o": "s|0x"})
    body, _, signature = cursor.partition(".")
    for variant in (cursor + "!!!!", cursor + "====", f"{body}.{signature[:5]}!!!!{signature[5:]}"):
        refused(variant)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_a_listing_named_by_any_text_refuses_a_cursor_not_issued_for_it(meeting_id):
    """The listing names a meeting id from the URL path: whatever its characters, a cursor is a 400, never a 500."""
    well_formed = "WyJzfCJd.AAAAAAAAAAAAAAAAAAAAAA"
    for listing in (f"invites:{meeting_id}", f"sessions:{meeting_id}\udc80"):
        refused(well_formed, listing=listing)
        cursor = cursors.seal(KEY, listing, CALLER, "x")
        assert cursors.open_(KEY, listing, CALLER, cursor) == "x"

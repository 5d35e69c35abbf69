"""Input rules every request shares: a clear 400 naming the field, never a 5xx, for anything a body can carry."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import problems, validation

LONE_SURROGATES = ["\ud800", "\udfff", "a\udc00b"]
CONTROLS = ["\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\x9f"]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f"]
BIDI.append("\u061c")


def refused(call, *args, **kwargs) -> dict:
    with pytest.raises(problems.Validation) as failure:
        call(*args, **kwargs)
    body = failure.value.body()
    assert failure.value.status == 400 and body["type"] == "urn:meetings:problem:validation"
    json.dumps(body, ensure_ascii=False).encode("utf-8")  # the answer itself must be encodable
    return body


@pytest.mark.parametrize("bad", LONE_SURROGATES + CONTROLS + BIDI)
def test_names_refuse_surrogates_controls_and_bidi_characters(bad):
    body = refused(validation.text, f"Team{bad}sync", "/title", low=1, high=200)
    assert body["errors"] == [{"field": "/title", "message": body["errors"][0]["message"]}]
    refused(validation.text, f"Notes{bad}", "/description", low=0, high=2000, multiline=True)


def test_line_breaks_and_tabs_only_where_text_is_multiline():
    assert validation.text("a\r\n\tb", "/description", low=0, high=10, multiline=True) == "a\r\n\tb"
    for break_ in ("\n", "\r", "\t"):
        refused(validation.text, f"a{break_}b", "/title", low=1, high=10)


def test_length_edges_and_blank_titles():
    assert validation.text("x" * 200, "/title", low=1, high=200) == "x" * 200
    refused(validation.text, "x" * 201, "/title", low=1, high=200)
    refused(validation.text, "", "/title", low=1, high=200)
    refused(validation.text, " \u3000 ", "/title", low=1, high=200)
    assert validation.text("", "/description", low=0, high=10) == ""
    for value in (None, 5, ["a"], {"a": 1}, True):
        refused(validation.text, value, "/title", low=1, high=200)


@pytest.mark.parametrize("bad", LONE_SURROGATES + CONTROLS + BIDI)
def test_addresses_refuse_surrogates_controls_and_bidi_characters(bad):
    body = refused(validation.email, f"ali{bad}ce@contoso.test", "/invitees/0/email")
    assert body["errors"][0]["field"] == "/invitees/0/email"
    try:
        trimmed = validation.email(f"alice@contoso.test{bad}", "/invitees/0/email")
    except problems.Validation:
        return
    assert trimmed == "alice@contoso.test"  # a trailing one Python counts as white space is trimmed away


# The characters themselves (controls, format characters, surrogates), without the letters around them.
UNSAFE = "".join(sorted({c for c in "".join(LONE_SURROGATES + CONTROLS + BIDI) if unicodedata.category(c)[0] == "C"}))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aZ.@-_ é" + UNSAFE), max_size=40))
def test_whatever_text_comes_in_what_is_accepted_is_safe(raw):
    for call in (
        lambda: validation.text(raw, "/title", low=1, high=200),
        lambda: validation.email(raw + "@contoso.test", "/email"),
    ):
        try:
            accepted = call()
        except problems.Validation as failure:
            assert failure.status == 400
            continue
        assert not any(char in UNSAFE for char in accepted), ascii(accepted)


@pytest.mark.parametrize(
    "bad",
    ["", "alice", "alice@", "@contoso.test", "alice@contoso", "alice@-contoso.test", "a b@contoso.test",
     "alice@contoso..test", "al<ice>@contoso.test", "x" * 65 + "@contoso.test", "a@" + "b" * 250 + ".test", None, 7],
)  # fmt: skip
def test_other_malformed_addresses_are_refused(bad):
    refused(validation.email, bad, "/email")


def test_addresses_are_trimmed_and_lower_cased():
    assert validation.email("  Alice.Example@Contoso.TEST ", "/email") == "alice.example@contoso.test"


@pytest.mark.parametrize(
    "raw", ["²", "①", "٣", "５", "5" * 5000, "1e2", "+5", "-1", " 5", "5 ", "0", "101", "", "0x10", "5.0", "\x00"]
)
def test_limit_is_ascii_digits_from_1_to_100(raw):
    refused(validation.limit, {"limit": raw})


def test_limit_accepts_1_to_100_and_defaults_to_50():
    assert validation.limit({}) == 50
    assert [validation.limit({"limit": raw}) for raw in ("1", "100", "050")] == [1, 100, 50]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_any_limit_is_a_number_from_1_to_100_or_a_400(raw):
    try:
        limit = validation.limit({"limit": raw})
    except problems.Validation as failure:
        assert failure.status == 400
        return
    assert 1 <= limit <= 100 and raw.isascii() and raw.isdigit()


def test_unknown_fields_are_named_as_json_pointers_safe_to_echo():
    body = refused(validation.reject_unknown, {"a/b": 1, "c~d": 2, "\udfff": 3, "ok": 4}, {"ok"})
    assert [error["field"] for error in body["errors"]] == ["/a~1b", "/c~0d", "/\\udfff"]
    body = refused(validation.query, {"li\x00mit": "5"}, {"limit"})
    assert "\x00" not in body["detail"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2000-01-01T00:00:00Z", True),
        ("2200-12-31T23:59:59Z", True),
        ("1999-12-31T23:59:59Z", False),
        ("2201-01-01T00:00:00Z", False),
        ("2000-01-01T00:30:00+01:00", False),  # 1999 in UTC
        ("2026-11-25T10:00:00", False),
    ],
)
def test_instants_are_rfc3339_with_an_offset_in_years_2000_to_2200(value, ok):
    if ok:
        assert validation.instant(value, "/startsAt").year in (2000, 2200)
    else:
        assert refused(validation.instant, value, "/startsAt")["errors"][0]["field"] == "/startsAt"


def test_zones_are_tzdata_names():
    assert validation.zone("Europe/Berlin", "/timeZone") == "Europe/Berlin"
    for bad in ("localtime", "posixrules", "Factory", "../../etc/passwd", "CET\x00", 3):
        refused(validation.zone, bad, "/timeZone")

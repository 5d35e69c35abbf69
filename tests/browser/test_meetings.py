"""What people do in the SPA, end to end: sign in, create, invite, meet in the local room, see
attendance, revoke, cancel; a guest knocking; problems read as sentences; the account screen."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

from tests.browser.conftest import Person, Stack, expect

ROOT = Path(__file__).resolve().parents[2]


def wall_time(delta: timedelta, zone: str) -> str:
    """A `datetime-local` value: now plus `delta`, in `zone`."""
    return (datetime.now(ZoneInfo(zone)) + delta).strftime("%Y-%m-%dT%H:%M")


def create_meeting(
    person: Person, title: str, *, starts: timedelta | None = None, organization: bool = False, record: bool = False
) -> str:
    """Through the form; returns the new meeting's id (from the address the SPA moves to)."""
    page = person.page
    page.get_by_role("navigation").get_by_role("link", name="New meeting").click()
    person.heading("New meeting")
    page.get_by_label("Title").fill(title)
    if starts is not None:
        zone = page.get_by_label("Time zone").input_value()
        page.get_by_label("Starts (optional)").fill(wall_time(starts, zone))
        page.get_by_label("Ends (optional)").fill(wall_time(starts + timedelta(hours=1), zone))
    if organization:
        page.get_by_label("Anyone in my organization with the link").check()
    if record:
        page.get_by_label("Record the meeting when it starts").check()
    page.get_by_role("button", name="Create meeting").click()
    person.heading(title)
    return page.url.rsplit("/", 1)[1]


def eventually(check, timeout: float = 15.0, every: float = 0.5) -> None:
    """Webhooks reach the app asynchronously: try `check` until it passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(every)


def test_owner_and_invitee_meet_in_the_local_room(alice: Person, bob: Person):
    alice.sign_in()
    alice.heading("My meetings")
    alice.check_accessibility("my meetings (empty)")

    page = alice.page
    page.get_by_role("navigation").get_by_role("link", name="New meeting").click()
    alice.check_accessibility("new meeting")
    title = "Design review"
    meeting_id = create_meeting(alice, title, starts=timedelta(minutes=-5), record=True)
    expect(page.locator(".details")).to_contain_text("(Europe/Berlin)")

    page.get_by_label("Email address").fill(bob.email)
    page.get_by_label("Role").select_option("participant")
    page.get_by_role("button", name="Invite", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(f"Invitation sent to {bob.email}.")
    invite = page.get_by_role("row", name=re.compile(re.escape(bob.email)))
    expect(invite).to_contain_text("Participant")
    expect(invite).to_contain_text("Invited")
    alice.check_accessibility("meeting page (owner)")

    # Bob, in New York, sees the meeting in his list: in Berlin's time and in his own.
    bob.sign_in()
    card = bob.page.get_by_role("listitem").filter(has_text=title)
    expect(card).to_contain_text("(Europe/Berlin)")
    expect(card).to_contain_text("your time (America/New York)")
    expect(card).to_contain_text("You are invited")
    bob.check_accessibility("my meetings (invitee)")
    card.get_by_role("link", name=title).click()
    bob.heading(title)
    expect(bob.page.get_by_role("button", name="Decline invitation")).to_be_visible()
    bob.check_accessibility("meeting page (invitee)")

    bob.page.get_by_role("link", name="Join", exact=True).click()
    expect(bob.page.get_by_role("heading", name="In the call (1)")).to_be_visible()
    bob.check_accessibility("call (participant)")

    page.get_by_role("link", name="Join", exact=True).click()
    expect(page.get_by_role("heading", name="In the call (2)")).to_be_visible()
    expect(page.get_by_role("listitem").filter(has_text="Bob Example")).to_be_visible()
    expect(bob.page.get_by_role("heading", name="In the call (2)")).to_be_visible()
    alice.check_accessibility("call (owner)")

    # Going back to the meeting page leaves the call; attendance comes from the room's webhooks.
    page.get_by_role("link", name="Back to the meeting").click()
    expect(bob.page.get_by_role("heading", name="In the call (1)")).to_be_visible()
    attendance = page.get_by_role("region", name="Attendance")

    def both_attended():
        # Refreshing attendance refreshes the meeting too: the webhooks made it live.
        attendance.get_by_role("button", name="Refresh attendance").click()
        expect(attendance.get_by_role("row", name=re.compile("Bob Example"))).to_contain_text("Still there")
        expect(attendance.get_by_role("row", name=re.compile("Alice Example"))).not_to_contain_text("Still there")
        expect(page.locator(".details")).to_contain_text("Live now", timeout=2_000)

    eventually(both_attended)
    alice.check_accessibility("meeting page with attendance")

    # The owner ends the session, and Bob is told so; the owner's page follows without a reload.
    page.get_by_role("button", name="End the session for everyone").click()
    page.get_by_role("dialog").get_by_role("button", name="End it for everyone").click()
    expect(bob.page.get_by_role("status")).to_have_text("The session was ended for everyone.")
    bob.check_accessibility("session ended")
    expect(page.locator(".details")).to_contain_text("Last session ended")
    expect(page.get_by_role("button", name="End the session for everyone")).to_have_count(0)
    bob.page.get_by_role("button", name="Join again").click()
    expect(bob.page.get_by_role("heading", name="In the call (1)")).to_be_visible()

    # The ended session's recording, with a download link that works until the time it gives.
    recordings = page.get_by_role("region", name="Recordings")
    download = recordings.get_by_role("link", name=re.compile("^Download the recording")).first

    def recorded():
        recordings.get_by_role("button", name="Refresh recordings").click()
        expect(download).to_be_visible()

    eventually(recorded)
    expect(recordings).to_contain_text("link works until")
    assert requests.get(download.get_attribute("href"), timeout=10).status_code == 200
    alice.check_accessibility("meeting page with a recording")

    # Revoking Bob takes him out of the call, and he is told why.
    page.get_by_role("button", name=f"Revoke {bob.email}").click()
    dialog = page.get_by_role("dialog")
    alice.check_accessibility("revoke confirmation")
    dialog.get_by_role("button", name="Revoke").click()
    expect(bob.page.get_by_role("status")).to_have_text(
        "You were removed from this meeting: your invitation was withdrawn."
    )
    expect(bob.page.get_by_role("button", name="Join again")).to_have_count(0)
    bob.check_accessibility("removed from the call")
    expect(page.get_by_role("row", name=re.compile(re.escape(bob.email)))).to_contain_text("Revoked")

    page.get_by_role("button", name="Cancel meeting").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel the meeting").click()
    expect(page.get_by_role("status")).to_have_text("The meeting is cancelled.")
    expect(page.locator(".details")).to_contain_text("Cancelled")

    bob.open(f"/meetings/{meeting_id}")
    expect(bob.page.get_by_role("alert")).to_have_text("This meeting does not exist or you were removed from it.")
    bob.check_accessibility("meeting not found")


def test_a_guest_asks_to_join_and_the_owner_lets_them_in(stack: Stack, alice: Person, carol: Person):
    alice.sign_in()
    meeting_id = create_meeting(alice, "Open office hours", organization=True)
    expect(alice.page.get_by_text("Anyone in the organization with the link")).to_be_visible()

    # Carol was not invited: the shared link shows her the guest view.
    carol.sign_in(f"/meetings/{meeting_id}")
    carol.heading("Open office hours")
    expect(carol.page.get_by_text("You are not invited")).to_be_visible()
    carol.check_accessibility("meeting page (guest)")
    carol.page.get_by_role("link", name="Ask to join").click()
    expect(carol.page.get_by_role("status")).to_have_text("You asked to join. Waiting for a host to let you in…")
    carol.check_accessibility("waiting to be let in")

    alice.page.get_by_role("link", name="Join", exact=True).click()
    expect(alice.page.get_by_role("heading", name="Asking to join (1)")).to_be_visible()
    alice.check_accessibility("call with someone waiting")
    alice.page.get_by_role("button", name="Let Carol Example in").click()
    expect(carol.page.get_by_role("heading", name="In the call (2)")).to_be_visible()
    expect(alice.page.get_by_role("heading", name="Asking to join (0)")).to_be_visible()
    # Let in, Carol is in a call like anyone's; the others see she came as a guest.
    carol.heading("Call: Open office hours")
    expect(alice.page.get_by_role("listitem").filter(has_text="Carol Example")).to_have_text("Carol Example (guest)")
    expect(carol.page.get_by_role("listitem").filter(has_text="Alice Example")).to_have_text("Alice Example")
    carol.page.get_by_role("button", name="Leave the call").click()
    expect(carol.page.get_by_role("status")).to_have_text("You left the call.")
    carol.heading("Call: Open office hours")

    # Cancelled: everyone who still sees the meeting is told so, not only its owner.
    cancelled = stack.app.call("DELETE", f"/meetings/{meeting_id}", stack.token(alice.email), headers={"If-Match": "*"})
    assert cancelled.status_code == 204, cancelled.text
    carol.page.get_by_role("link", name="Back to the meeting").click()
    carol.heading("Open office hours")
    expect(carol.page.get_by_role("status")).to_have_text("The meeting is cancelled.")


def test_problems_read_as_sentences(stack: Stack, alice: Person, bob: Person):
    alice.sign_in()
    # A meeting two days ahead (never today anywhere), with Bob invited on the form.
    page = alice.page
    page.get_by_role("navigation").get_by_role("link", name="New meeting").click()
    page.get_by_label("Title").fill("Planning")
    page.get_by_label("Starts (optional)").fill(wall_time(timedelta(days=2), "Europe/Berlin"))
    page.get_by_label("Invite people (optional)").fill(bob.email)
    page.get_by_role("button", name="Create meeting").click()
    alice.heading("Planning")
    meeting_id = page.url.rsplit("/", 1)[1]

    # The same meeting edited elsewhere meanwhile: saving says so instead of overwriting.
    page.get_by_role("link", name="Edit").click()
    alice.heading("Edit Planning")
    alice.check_accessibility("edit meeting")
    elsewhere = stack.app.call(
        "PATCH",
        f"/meetings/{meeting_id}",
        stack.token(alice.email),
        json={"title": "Planning (moved)"},
        headers={"If-Match": "*"},
    )
    assert elsewhere.status_code == 200, elsewhere.text
    page.get_by_label("Title").fill("Planning, day two")
    page.get_by_label("Description (optional)").fill("Agenda first")
    page.get_by_role("button", name="Save changes").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("This meeting was changed elsewhere. Reload to see the latest version")
    alice.check_accessibility("edit conflict")
    # Reloading keeps her change where nobody else changed the same field; the title was, so theirs wins.
    alert.get_by_role("button", name="Reload").click()
    expect(page.get_by_label("Title")).to_have_value("Planning (moved)")
    expect(page.get_by_label("Description (optional)")).to_have_value("Agenda first")
    expect(page.get_by_role("status")).to_contain_text("Your change to the title was not kept")

    # Too early to join: Bob is told when he can, in his own time, with the date (it is not today).
    bob.sign_in(f"/meetings/{meeting_id}")
    bob.page.get_by_role("link", name="Join", exact=True).click()
    expect(bob.page.get_by_role("alert")).to_contain_text(
        re.compile(r"The meeting opens for joining at \d{2}:\d{2} on \w{3},? \d{1,2} \w{3}(?: \d{4})? your time\.")
    )
    bob.check_accessibility("join refused (too early)")

    # Bob declines; the owner sees it.
    bob.page.get_by_role("link", name="Back to the meeting").click()
    bob.page.get_by_role("button", name="Decline invitation").click()
    bob.page.get_by_role("dialog").get_by_role("button", name="Decline").click()
    expect(bob.page.get_by_role("status")).to_have_text(
        "You declined the invitation. The meeting is no longer in your list."
    )
    page.goto(f"/meetings/{meeting_id}")
    expect(page.get_by_role("row", name=re.compile(re.escape(bob.email)))).to_contain_text("Declined")


def test_account_export_and_closing(erin: Person):
    erin.sign_in("/no/such/page")
    erin.heading("Page not found")
    erin.check_accessibility("page not found")
    erin.page.get_by_role("link", name="Go to my meetings").click()
    erin.heading("My meetings")
    erin.page.get_by_role("link", name="My account").click()
    erin.heading("My account")
    expect(erin.page.get_by_text(erin.email)).to_be_visible()
    erin.check_accessibility("my account")

    with erin.page.expect_download() as download:
        erin.page.get_by_role("button", name="Download my data").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["profile"]["email"] == erin.email
    assert download.value.suggested_filename.startswith("meetings-export-")

    erin.page.get_by_role("button", name="Close my account").click()
    erin.check_accessibility("close account confirmation")
    erin.page.get_by_role("dialog").get_by_role("button", name="Close my account for good").click()
    erin.heading("Sign in")
    expect(erin.page.get_by_role("status")).to_have_text("Your account is closed.")
    # The sign-out return's `?state=` is gone, so signing in again does not bring it back either.
    expect(erin.page).not_to_have_url(re.compile(r"[?&]state="))
    erin.check_accessibility("sign in")

    # Signing in again, the closed account is told so in the API's words, not a role's refusal.
    erin.sign_in()
    erin.heading("Account closed")
    expect(erin.page.get_by_role("alert")).to_have_text("This account was closed.")
    expect(erin.page).not_to_have_url(re.compile(r"[?&]state="))
    erin.check_accessibility("account closed")


def test_the_first_page_leaves_the_video_kits_for_later(carol: Person):
    """The provider UI kits (megabytes each) load only on joining: the first page's scripts stay small."""
    scripts: list[str] = []

    def loaded(response) -> None:
        if response.request.resource_type == "script":
            scripts.append(response.url)

    carol.page.on("response", loaded)
    carol.open("/")
    expect(carol.page.get_by_role("button", name="Sign in")).to_be_visible()
    carol.page.wait_for_load_state("networkidle")
    sizes = {url: len(carol.page.request.get(url).body()) for url in scripts}
    # React, MSAL and the app come to about 550 kB; either kit alone is over 2 MB.
    assert 0 < sum(sizes.values()) < 1_000_000, sizes

"""Invitation emails: the message and its iCalendar file, for one invitee and one state of the meeting.

Pure: what to send and when is decided by `shared.outbox`, and it is sent by `shared.graph`. SEQUENCE =
the meeting's `version` + the invite's `mailSequence`; both only grow, so no email can put an older state
into a calendar.
"""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.access import Role
from shared.model import Invite, Meeting
from shared.settings import Settings

INVITED, REVOKED, UPDATED, CANCELLED = "invited", "revoked", "updated", "cancelled"
# How an invite's role reads in the email, and its RFC 5545 attendee role in the calendar file.
_AS = {Role.HOST: "a host", Role.PARTICIPANT: "a participant"}
_CALENDAR_ROLE = {Role.HOST: "CHAIR", Role.PARTICIPANT: "REQ-PARTICIPANT"}


def compose(
    settings: Settings, meeting: Meeting, invite: Invite, kind: str, method: str, sequence: int, now: datetime
) -> dict[str, Any]:
    """The sendMail request body for one invitee: subject, HTML body and, with a start, an iCalendar file."""
    title = " ".join(meeting.title.split())
    owner = " ".join(meeting.owner_name.split()) or "The organizer"
    link = f"{settings.app_base_url}/meetings/{meeting.id}"
    role = _AS[invite.role]
    subject, lead = {
        INVITED: (f"Invitation: {title}", f"{owner} invited you to “{title}” as {role}."),
        UPDATED: (f"Updated: {title}", f"{owner} changed “{title}”."),
        CANCELLED: (f"Cancelled: {title}", f"{owner} cancelled “{title}”."),
        REVOKED: (f"Invitation withdrawn: {title}", f"{owner} withdrew your invitation to “{title}”."),
    }[kind]
    paragraphs = [html.escape(lead), f"When: {html.escape(when(meeting))}"]
    if kind != REVOKED:  # a revoked invitee has no access left to link to
        paragraphs.append(f'Join: <a href="{html.escape(link)}">{html.escape(link)}</a>')
    message: dict[str, Any] = {
        "subject": subject,
        "body": {"contentType": "HTML", "content": "".join(f"<p>{p}</p>" for p in paragraphs)},
        "toRecipients": [{"emailAddress": {"address": invite.email}}],
    }
    if meeting.schedule.starts_at is not None:  # an event needs a start: nothing to put in a calendar without
        calendar = calendar_file(settings, meeting, invite, method, sequence, now)
        message["attachments"] = [
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": "cancel.ics" if method == "CANCEL" else "invite.ics",
                "contentType": f"text/calendar; charset=utf-8; method={method}",
                "contentBytes": base64.b64encode(calendar).decode("ascii"),
            }
        ]
    # The sender is a shared no-reply mailbox: its Sent Items would only grow.
    return {"message": message, "saveToSentItems": False}


def when(meeting: Meeting) -> str:
    starts = meeting.schedule.starts_at
    if starts is None:
        return "not scheduled yet"
    zone_name = meeting.schedule.zone
    start = starts.astimezone(ZoneInfo(zone_name))
    text = f"{start:%A} {start.day} {start:%B %Y, %H:%M}"
    ends = meeting.schedule.ends_at
    if ends is not None:
        end = ends.astimezone(ZoneInfo(zone_name))
        text += f"–{end:%H:%M}" if end.date() == start.date() else f" – {end:%A} {end.day} {end:%B %Y, %H:%M}"
    return f"{text} ({zone_name})"


def calendar_file(
    settings: Settings, meeting: Meeting, invite: Invite, method: str, sequence: int, now: datetime
) -> bytes:
    """An iCalendar REQUEST or CANCEL for one invitee (UID per meeting and invitee), with its VTIMEZONE."""
    from icalendar import Calendar, Event, vCalAddress  # imported here: only the sender needs it (cold start)

    sender = settings.mail.sender
    # UTC events are written as UTC times (`Z`), which need no VTIMEZONE; any other zone gets one.
    zone = UTC if meeting.schedule.zone == "UTC" else ZoneInfo(meeting.schedule.zone)
    start = meeting.schedule.starts_at.astimezone(zone)
    ends = meeting.schedule.ends_at
    end = ends.astimezone(zone) if ends else None
    link = f"{settings.app_base_url}/meetings/{meeting.id}"
    organizer = vCalAddress(f"mailto:{sender}")
    if meeting.owner_name:
        organizer.params["CN"] = meeting.owner_name
    attendee = vCalAddress(f"mailto:{invite.email}")
    # RSVP=FALSE: replies would go to the sender mailbox, which nobody reads.
    attendee.params.update(
        {
            "CUTYPE": "INDIVIDUAL",
            "ROLE": _CALENDAR_ROLE[invite.role],
            "PARTSTAT": "NEEDS-ACTION",
            "RSVP": "FALSE",
        }
    )
    event = Event()
    event.add("uid", f"{meeting.id}.{invite.id}@{sender.rsplit('@', 1)[1]}")
    event.add("sequence", sequence)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", start)
    if end is not None:
        event.add("dtend", end)
    event.add("summary", meeting.title)
    event.add("description", "\n\n".join(filter(None, [meeting.description, f"Join: {link}"])))
    event.add("location", link)
    event.add("url", link)
    event.add("organizer", organizer)
    event.add("attendee", attendee)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    calendar = Calendar()
    calendar.add("prodid", "-//Meetings backend//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    calendar.add_component(event)
    # The zone's rules for a year either side of the event: enough to place it, and a small file.
    calendar.add_missing_timezones(
        first_date=start.date() - timedelta(days=366), last_date=(end or start).date() + timedelta(days=366)
    )
    return calendar.to_ical()

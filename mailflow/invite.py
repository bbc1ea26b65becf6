"""Calendar invites as iTIP/iMIP (RFC 5546 / RFC 6047) objects, built with icalendar.

One VEVENT per calendar object: iTIP wants one UID per message, so a budget of two
sessions is two invites. Times are written in UTC, which every client converts to the
reader's zone. Updates keep the UID and raise SEQUENCE; withdrawals use METHOD:CANCEL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from icalendar import Calendar, Event, vCalAddress, vText

PRODID = "-//mailflow//micro mentoring//EN"


@dataclass(frozen=True)
class Attendee:
    email: str
    name: str
    role: str = "REQ-PARTICIPANT"


@dataclass(frozen=True)
class CalendarPart:
    """A calendar ready to attach: its METHOD and its bytes."""

    method: str
    data: bytes
    filename: str = "invite.ics"


def build_invite(
    *,
    method: str,
    uid: str,
    sequence: int,
    start: datetime,
    end: datetime,
    stamp: datetime,
    summary: str,
    description: str,
    organizer: Attendee,
    attendees: list[Attendee],
    location: str = "",
    url: str = "",
) -> CalendarPart:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp)
    event.add("sequence", sequence)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", summary)
    event.add("description", description)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    if location:
        event.add("location", location)
    if url:
        event.add("url", url)
    event.add("organizer", _address(organizer, organizer_role=True))
    for person in attendees:
        event.add("attendee", _address(person), encode=False)
    calendar.add_component(event)
    return CalendarPart(
        method=method,
        data=calendar.to_ical(),
        filename="cancel.ics" if method == "CANCEL" else "invite.ics",
    )


def _address(person: Attendee, organizer_role: bool = False) -> vCalAddress:
    address = vCalAddress(f"mailto:{person.email}")
    address.params["cn"] = vText(person.name or person.email)
    if not organizer_role:
        address.params["role"] = vText(person.role)
        address.params["partstat"] = vText("NEEDS-ACTION")
        address.params["rsvp"] = vText("TRUE")
        address.params["cutype"] = vText("INDIVIDUAL")
    return address

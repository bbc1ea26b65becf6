"""Reading the invitations a test received back with icalendar, and checking them the way
a calendar client would: the MIME shape, the iTIP properties, the times in each zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from mailflow.availability import parse_availability
from mailflow.model import Window

from .programme import calendar_parts


@dataclass(frozen=True)
class Zone:
    """Someone's time zone and weekly windows, as the directory or the request says them."""

    name: str
    windows: tuple[Window, ...]

    @classmethod
    def of(cls, name: str, *windows: str) -> Zone:
        return cls(name, tuple(parse_availability(list(windows))))

    def holds(self, start: datetime, end: datetime) -> bool:
        """The whole session inside one of the windows, on one local day."""
        first, last = start.astimezone(ZoneInfo(self.name)), end.astimezone(ZoneInfo(self.name))
        return first.date() == last.date() and any(
            first.weekday() in w.weekdays and w.start <= first.time() and last.time() <= w.end
            for w in self.windows
        )


def invite_of(message: EmailMessage, method: str = "REQUEST") -> Event:
    """The one VEVENT of a message's iTIP part, after checking what every client relies on."""
    (part,) = calendar_parts(message)
    raw_type = next(str(v) for k, v in part.raw_items() if k.lower() == "content-type")
    assert raw_type == f"text/calendar; method={method}; charset=UTF-8"  # as Outlook and Google write it
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    calendar = Calendar.from_ical(data)
    assert str(calendar["METHOD"]) == method == part.get_param("method")
    assert str(calendar["VERSION"]) == "2.0" and str(calendar["PRODID"])
    (event,) = calendar.walk("VEVENT")
    for line in data.split(b"\r\n"):
        assert len(line) <= 75, line  # RFC 5545 3.1: folded at 75 octets
        assert b"\n" not in line and b"\r" not in line
    assert data.endswith(b"END:VCALENDAR\r\n")
    (attachment,) = [p for p in message.walk() if p.get_content_type() == "application/ics"]
    assert attachment.get_payload(decode=True) == data  # the same calendar again, attached
    assert attachment.get_filename() in ("invite.ics", "cancel.ics")
    for name in ("UID", "DTSTAMP", "SEQUENCE", "DTSTART", "DTEND", "SUMMARY", "ORGANIZER"):
        assert name in event, name
    for name in ("DTSTART", "DTEND", "DTSTAMP"):
        assert event.decoded(name).utcoffset() == timedelta(0), f"{name} is not in UTC"
    assert str(event["ORGANIZER"]) == "mailto:mentoring@library.org"
    return event


def attendees(event: Event) -> dict[str, dict[str, str]]:
    """mailto address -> its parameters."""
    found = event.get("ATTENDEE")
    found = found if isinstance(found, list) else [found]
    return {str(a).removeprefix("mailto:"): {k: str(v) for k, v in a.params.items()} for a in found}


def span(event: Event) -> tuple[datetime, datetime]:
    return event.decoded("DTSTART"), event.decoded("DTEND")


def minutes(event: Event) -> int:
    start, end = span(event)
    return int((end - start).total_seconds() // 60)

"""Calendar objects, built and read with icalendar: the only module that imports it.

Writing (RFC 5545, RFC 5546 section 3.2). `build_invite` makes one iTIP message with
one VEVENT; iTIP wants one UID per message, so a budget of two sessions is two invites:

    METHOD:REQUEST  a new session, or a moved one: same UID, SEQUENCE + 1 (RFC 5546 2.1.4)
    METHOD:CANCEL   a withdrawn session: same UID, SEQUENCE + 1, STATUS:CANCELLED (3.2.5)

Times are written in UTC (RFC 5545 3.3.5, form 2: `20261208T160000Z`), which needs no
VTIMEZONE and which every client shows in its reader's zone; daylight saving is settled
when the slot is chosen (slots.py). icalendar escapes TEXT values (3.3.11) and folds
lines at 75 octets without splitting a UTF-8 sequence (3.1); a parameter value cannot
hold DQUOTE or control characters (3.2), so names are cleaned before they become CN.

Reading. `read_itip` turns the calendar part of an incoming message into plain data
(METHOD, and per VEVENT the UID, SEQUENCE, DTSTAMP and every ATTENDEE's PARTSTAT) for
rsvp.py; `busy_periods` turns a free/busy calendar (VFREEBUSY periods and opaque
VEVENTs, recurring ones expanded) into UTC intervals for freebusy.py. `build_reply`
makes the REPLY an attendee's calendar would send; the demo and the tests use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from icalendar import Calendar, Event, vCalAddress

from .errors import CalendarError

PRODID = "-//mailflow//micro mentoring//EN"
MAX_INSTANCES = 5000  # occurrences of one recurring event read from a free/busy file
Interval = tuple[datetime, datetime]


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


@dataclass(frozen=True)
class ItipAttendee:
    """One ATTENDEE of a received iTIP message (RFC 5545 3.8.4.1)."""

    email: str
    partstat: str
    name: str = ""
    comment: str = ""  # Google's X-RESPONSE-COMMENT parameter
    delegated_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItipEvent:
    uid: str
    sequence: int
    stamp: datetime | None
    attendees: tuple[ItipAttendee, ...]
    comment: str = ""  # COMMENT properties (Outlook writes the reply's note there)
    summary: str = ""
    recurrence: bool = False


@dataclass(frozen=True)
class ItipMessage:
    method: str
    prodid: str
    events: tuple[ItipEvent, ...]


# -- writing ----------------------------------------------------------------------------
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
    """A REQUEST or CANCEL for one session (RFC 5546 3.2.2 and 3.2.5)."""
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"mailflow sends METHOD:REQUEST or METHOD:CANCEL, not {method}")
    calendar = _calendar(method)
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("sequence", sequence)
    event.add("dtstart", start.astimezone(UTC))
    event.add("dtend", end.astimezone(UTC))
    event.add("summary", summary)
    event.add("description", description)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    if location:
        event.add("location", location)
    if url:
        event.add("url", url)
    event.add("organizer", _address(organizer))
    for person in attendees:
        address = _address(person)
        address.params["CUTYPE"] = "INDIVIDUAL"
        address.params["ROLE"] = person.role
        if method == "REQUEST":  # a cancellation asks for no answer
            address.params["PARTSTAT"] = "NEEDS-ACTION"
            address.params["RSVP"] = "TRUE"
        event.add("attendee", address, encode=False)
    calendar.add_component(event)
    return CalendarPart(
        method=method,
        data=calendar.to_ical(),
        filename="cancel.ics" if method == "CANCEL" else "invite.ics",
    )


def build_reply(
    *,
    uid: str,
    sequence: int,
    attendee: Attendee,
    partstat: str,
    organizer: Attendee,
    stamp: datetime,
    summary: str = "",
    comment: str = "",
    prodid: str = "-//mailflow//correspondent//EN",
) -> CalendarPart:
    """The METHOD:REPLY an attendee's calendar sends (RFC 5546 3.2.3)."""
    calendar = _calendar("REPLY", prodid)
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("sequence", sequence)
    if summary:
        event.add("summary", summary)
    if comment:
        event.add("comment", comment)
    event.add("organizer", _address(organizer))
    address = _address(attendee)
    address.params["PARTSTAT"] = partstat
    event.add("attendee", address, encode=False)
    calendar.add_component(event)
    return CalendarPart(method="REPLY", data=calendar.to_ical(), filename="reply.ics")


def _calendar(method: str, prodid: str = PRODID) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", prodid)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    return calendar


def _address(person: Attendee) -> vCalAddress:
    address = vCalAddress(f"mailto:{person.email}")
    address.params["CN"] = clean_name(person.name or person.email)
    return address


def clean_name(name: str) -> str:
    """A name fit for a parameter value: no DQUOTE, no control characters (RFC 5545 3.2)."""
    printable = "".join(c if c.isprintable() else " " for c in name).replace('"', "'")
    return " ".join(printable.split())


# -- reading iTIP -----------------------------------------------------------------------
def read_itip(data: bytes | str) -> ItipMessage:
    """The METHOD and the VEVENTs of an iTIP message; `CalendarError` if it is not one."""
    calendar = _parse(data)
    events = []
    for component in calendar.walk("VEVENT"):
        events.append(
            ItipEvent(
                uid=str(component.get("UID", "")).strip(),
                sequence=_integer(component.get("SEQUENCE")),
                stamp=_stamp(component),
                attendees=tuple(_attendee(a) for a in _as_list(component.get("ATTENDEE"))),
                comment=" ".join(str(c).strip() for c in _as_list(component.get("COMMENT"))).strip(),
                summary=str(component.get("SUMMARY", "")),
                recurrence="RECURRENCE-ID" in component,
            )
        )
    return ItipMessage(
        method=str(calendar.get("METHOD", "")).strip().upper(),
        prodid=str(calendar.get("PRODID", "")).strip(),
        events=tuple(events),
    )


def _parse(data: bytes | str) -> Calendar:
    try:
        calendar = Calendar.from_ical(data)
    except Exception as error:  # icalendar raises ValueError, KeyError, IndexError …
        raise CalendarError(f"not an iCalendar object ({error})") from error
    if not isinstance(calendar, Calendar):
        raise CalendarError("not an iCalendar object (no VCALENDAR)")
    return calendar


def _attendee(value: Any) -> ItipAttendee:
    params = getattr(value, "params", {})
    text = str(value).strip()
    email = text[7:] if text.lower().startswith("mailto:") else str(params.get("EMAIL", ""))
    delegated = params.get("DELEGATED-TO", [])
    return ItipAttendee(
        email=email.strip().strip('"<>').lower(),
        partstat=str(params.get("PARTSTAT", "NEEDS-ACTION")).upper(),
        name=str(params.get("CN", "")),
        comment=str(params.get("X-RESPONSE-COMMENT", "")),
        delegated_to=tuple(_mailto(d) for d in ([delegated] if isinstance(delegated, str) else delegated)),
    )


def _mailto(text: object) -> str:
    value = str(text).strip().strip('"')
    return (value[7:] if value.lower().startswith("mailto:") else value).lower()


def _stamp(component: Any) -> datetime | None:
    if "DTSTAMP" not in component:
        return None
    value = component.decoded("DTSTAMP")
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _integer(value: object) -> int:
    try:
        return int(str(value)) if value is not None else 0
    except ValueError:
        return 0


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


# -- reading free/busy ------------------------------------------------------------------
def busy_periods(data: bytes | str, start: datetime, end: datetime, zone: str) -> list[Interval]:
    """Busy UTC intervals between `start` and `end` in a free/busy calendar.

    VFREEBUSY FREEBUSY periods count unless FBTYPE=FREE (RFC 5545 3.8.2.6); VEVENTs
    count unless TRANSP:TRANSPARENT or STATUS:CANCELLED. Recurring events are expanded
    on their own wall clock (RRULE, RDATE, EXDATE, overridden RECURRENCE-IDs), so a
    weekly 09:00 meeting stays at 09:00 across a DST change. Dates and floating times
    are read in `zone`, the mentor's time zone.
    """
    calendar = _parse(data)
    local = ZoneInfo(zone)
    found: list[Interval] = []
    for component in calendar.walk("VFREEBUSY"):
        for period in _as_list(component.get("FREEBUSY")):
            if str(period.params.get("FBTYPE", "BUSY")).upper() == "FREE":
                continue
            begin, until = _period(period)
            if begin is not None and until is not None:
                found.append((begin, until))
    overridden: dict[str, set[datetime]] = {}
    for component in calendar.walk("VEVENT"):
        if "RECURRENCE-ID" in component:
            moved = _moment(component.decoded("RECURRENCE-ID"), local)
            if moved is not None:
                overridden.setdefault(str(component.get("UID", "")), set()).add(moved)
    for component in calendar.walk("VEVENT"):
        if str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            continue
        if str(component.get("STATUS", "")).upper() == "CANCELLED":
            continue
        span = _event_span(component, local)
        if span is None:
            continue
        first, length = span
        skip = (
            overridden.get(str(component.get("UID", "")), set())
            if "RECURRENCE-ID" not in component
            else set()
        )
        for begin in _occurrences(component, first, length, start, end, skip):
            found.append((begin.astimezone(UTC), (begin + length).astimezone(UTC)))
    return sorted((b, e) for b, e in found if e > start and b < end and e > b)


def _period(period: Any) -> tuple[datetime | None, datetime | None]:
    value = getattr(period, "dt", None)
    if not isinstance(value, tuple) or len(value) != 2:
        return None, None
    begin, other = value
    if not isinstance(begin, datetime):
        return None, None
    begin = begin.replace(tzinfo=UTC) if begin.tzinfo is None else begin.astimezone(UTC)
    if isinstance(other, timedelta):
        return begin, begin + other
    if isinstance(other, datetime):
        return begin, other.replace(tzinfo=UTC) if other.tzinfo is None else other.astimezone(UTC)
    return None, None


def _moment(value: object, local: ZoneInfo) -> datetime | None:
    """A DATE or DATE-TIME as an aware datetime (dates at local midnight)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=local) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=local)
    return None


def _event_span(component: Any, local: ZoneInfo) -> tuple[datetime, timedelta] | None:
    if "DTSTART" not in component:
        return None
    raw_start = component.decoded("DTSTART")
    first = _moment(raw_start, local)
    if first is None:
        return None
    all_day = not isinstance(raw_start, datetime)
    if "DTEND" in component:
        last = _moment(
            component.decoded("DTEND"), first.tzinfo if isinstance(first.tzinfo, ZoneInfo) else local
        )
        length = (last - first) if last is not None else timedelta(0)
    elif "DURATION" in component and isinstance(component.decoded("DURATION"), timedelta):
        length = component.decoded("DURATION")
    else:
        length = timedelta(days=1) if all_day else timedelta(0)
    if length <= timedelta(0):
        return None
    return first, length


def _occurrences(
    component: Any, first: datetime, length: timedelta, start: datetime, end: datetime, skip: set[datetime]
) -> Iterator[datetime]:
    """Every start of the event that overlaps [start, end), on the event's own wall clock."""
    if "RRULE" not in component or "RECURRENCE-ID" in component:
        yield first
        return
    zone = first.tzinfo
    naive_first = first.replace(tzinfo=None)
    rule = component.get("RRULE")
    parts = dict(rule)
    until = parts.get("UNTIL")
    if until:  # dateutil wants UNTIL in the same (here: naive local) form as DTSTART
        value = until[0]
        parts["UNTIL"] = [
            value.astimezone(zone).replace(tzinfo=None)
            if isinstance(value, datetime) and value.tzinfo is not None
            else (datetime.combine(value, time(23, 59, 59)) if not isinstance(value, datetime) else value)
        ]
    text = ";".join(f"{key}={','.join(_rule_value(v) for v in values)}" for key, values in parts.items())
    try:
        recurrence = rrulestr(text, dtstart=naive_first)
    except (ValueError, TypeError) as error:
        raise CalendarError(f"RRULE {rule.to_ical().decode()!r} cannot be read ({error})") from error
    excluded = {moment.replace(tzinfo=None) for moment in _dates(component, "EXDATE", zone)}
    excluded |= {moment.astimezone(zone).replace(tzinfo=None) for moment in skip}
    window_start = (start - length).astimezone(zone).replace(tzinfo=None)
    window_end = end.astimezone(zone).replace(tzinfo=None)
    starts = set()
    for count, occurrence in enumerate(recurrence.xafter(window_start, inc=True)):
        if occurrence >= window_end or count >= MAX_INSTANCES:
            break
        starts.add(occurrence)
    for extra in _dates(component, "RDATE", zone):
        starts.add(extra.replace(tzinfo=None))
    for occurrence in sorted(starts - excluded):
        yield occurrence.replace(tzinfo=zone)


def _rule_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y%m%dT%H%M%S")
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    return str(value)


def _dates(component: Any, name: str, zone: Any) -> Iterable[datetime]:
    for item in _as_list(component.get(name)):
        for entry in getattr(item, "dts", []):
            value = entry.dt
            if isinstance(value, datetime):
                yield value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)
            elif isinstance(value, date):
                yield datetime.combine(value, time(0), tzinfo=zone)

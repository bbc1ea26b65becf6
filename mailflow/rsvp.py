"""Calendar answers: the iTIP REPLY a calendar sends when someone accepts, declines or
says maybe (RFC 5546 3.2.3, carried by email as RFC 6047 iMIP).

route.py calls `find_calendar_answer` before any noise rule, because calendars send
their answers as automatic mail. What the four clients send, as far as mailflow reads it:

    Outlook / Exchange   multipart/alternative: text/plain, text/html, text/calendar;
                         method=REPLY (base64); subject `Accepted: <summary>`; the note
                         typed by the person in COMMENT; DTSTART with a Windows zone name
    Google Calendar      multipart/mixed: alternative (text/plain, text/html,
                         text/calendar; method=REPLY) + application/ics invite.ics;
                         subject `Accepted: <summary> @ <when> (<address>)`; the note in
                         the ATTENDEE's X-RESPONSE-COMMENT parameter
    Apple Calendar       the REPLY as a text/calendar part (attached, with a file name);
                         ATTENDEE carries an EMAIL parameter
    Thunderbird          multipart/mixed: alternative (text/plain, text/calendar;
                         method=REPLY, 8bit) + application/ics invite.ics; subject
                         `Accepted:`, `Tentative:` or `Invitation Declined: <summary>`

A part counts when it is text/calendar, application/ics or a `.ics` file, outside any
forwarded message (message/rfc822) and not in a delivery report. The METHOD inside the
calendar decides, not the Content-Type parameter, which some clients leave out.
`subject_answer` reads `Accepted: …` subjects, for a client that sends the answer
without its calendar part.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import Message

from .errors import CalendarError
from .invite import ItipMessage, read_itip

log = logging.getLogger(__name__)

ATTENDEE_METHODS = ("REPLY", "COUNTER", "REFRESH")  # what an attendee sends an organizer
ANSWERS = ("ACCEPTED", "TENTATIVE", "DECLINED", "DELEGATED")
MAX_CALENDAR_BYTES = 512 * 1024
MAX_DEPTH = 10
_SUBJECT = re.compile(
    r"^\s*(?:(?:re|aw|fw|fwd)\s*:\s*)*"
    r"(?P<word>accepted|tentatively accepted|tentative|declined|invitation declined|"
    r"aceptado|aceptada|provisional|rechazado|rechazada)\s*:\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_SUBJECT_WORDS = {
    "accepted": "ACCEPTED",
    "aceptado": "ACCEPTED",
    "aceptada": "ACCEPTED",
    "tentative": "TENTATIVE",
    "tentatively accepted": "TENTATIVE",
    "provisional": "TENTATIVE",
    "declined": "DECLINED",
    "invitation declined": "DECLINED",
    "rechazado": "DECLINED",
    "rechazada": "DECLINED",
}


@dataclass(frozen=True)
class Rsvp:
    """One person's answer to one session."""

    uid: str
    attendee: str  # the address the answer is for, lower-cased
    partstat: str  # ACCEPTED | TENTATIVE | DECLINED | DELEGATED
    sequence: int = 0
    stamp: datetime | None = None
    comment: str = ""
    delegated_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class CalendarAnswer:
    """What a calendar sent back: its METHOD, the client, and the answers it holds."""

    method: str
    client: str  # from PRODID, for the history
    uids: tuple[str, ...]
    rsvps: tuple[Rsvp, ...]


def find_calendar_answer(message: Message) -> CalendarAnswer | None:
    """The iTIP message an attendee sent (REPLY, COUNTER, REFRESH), or None."""
    if message.get_content_type() == "multipart/report":
        return None  # a bounce quoting one of our invitations is not an answer
    for data in _calendar_parts(message, 0):
        try:
            itip = read_itip(data)
        except CalendarError as error:
            log.info("a calendar part could not be read: %s", error)
            continue
        if itip.method in ATTENDEE_METHODS:
            return _answer(itip)
    return None


def _answer(itip: ItipMessage) -> CalendarAnswer:
    rsvps = []
    for event in itip.events:
        for attendee in event.attendees:
            if attendee.partstat in ANSWERS and attendee.email:
                rsvps.append(
                    Rsvp(
                        uid=event.uid,
                        attendee=attendee.email,
                        partstat=attendee.partstat,
                        sequence=event.sequence,
                        stamp=event.stamp,
                        comment=(attendee.comment or event.comment).strip()[:500],
                        delegated_to=attendee.delegated_to,
                    )
                )
    return CalendarAnswer(
        method=itip.method,
        client=client_name(itip.prodid),
        uids=tuple(dict.fromkeys(e.uid for e in itip.events if e.uid)),
        rsvps=tuple(rsvps),
    )


def _calendar_parts(part: Message, depth: int) -> Iterator[bytes]:
    if depth > MAX_DEPTH:
        return
    if part.is_multipart():
        payload = part.get_payload()
        for child in payload if isinstance(payload, list) else []:
            if isinstance(child, Message) and child.get_content_type() != "message/rfc822":
                yield from _calendar_parts(child, depth + 1)
        return
    kind = part.get_content_type()
    name = (part.get_filename() or "").lower()
    if kind in ("text/calendar", "application/ics") or name.endswith(".ics"):
        data = part.get_payload(decode=True)
        if isinstance(data, bytes) and 0 < len(data) <= MAX_CALENDAR_BYTES:
            yield data


def client_name(prodid: str) -> str:
    """`-//Google Inc//Google Calendar 70.9054//EN` -> `Google Calendar`."""
    text = prodid.lower()
    for needle, name in (
        ("microsoft", "Outlook"),
        ("google", "Google Calendar"),
        ("apple", "Apple Calendar"),
        ("mozilla", "Thunderbird"),
    ):
        if needle in text:
            return name
    parts = [p.replace("NONSGML", "").strip() for p in prodid.split("//") if p.strip("-/ ")]
    return " ".join(p for p in parts[:2] if p) or "a calendar"


def subject_answer(subject: str) -> tuple[str, str] | None:
    """`Accepted: Micro mentoring …` -> (`ACCEPTED`, `Micro mentoring …`), or None."""
    match = _SUBJECT.match(subject or "")
    if not match:
        return None
    return _SUBJECT_WORDS[" ".join(match["word"].lower().split())], match["rest"].strip()

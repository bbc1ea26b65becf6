"""Building outgoing messages with the standard library's EmailMessage API.

Headers are set through `email.headerregistry`, never by formatting strings, so a
name or subject holding CR/LF cannot add a header. Every message says it was sent
automatically (RFC 3834 `Auto-Submitted`) and carries mailflow's own loop header,
which is checked on the way in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from .invite import CalendarPart
from .mailpolicy import POLICY
from .model import Person
from .render import Rendered

LOOP_HEADER = "X-Mailflow-Loop"
PURPOSE_HEADER = "X-Mailflow-Purpose"


@dataclass
class Envelope:
    to: list[Person]
    cc: list[Person] = field(default_factory=list)
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    auto: str = "auto-generated"  # or "auto-replied" when answering a message


def header_safe(text: str) -> str:
    """Collapse every kind of line break and control character to a space."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def address(person: Person) -> Address:
    local, _, domain = person.email.partition("@")
    return Address(display_name=header_safe(person.name), username=local, domain=domain)


def new_message_id(domain: str) -> str:
    return make_msgid(idstring="mailflow", domain=domain)


def compose(
    *,
    sender: Person,
    envelope: Envelope,
    rendered: Rendered,
    message_id: str,
    date: datetime,
    loop_token: str,
    purpose: str = "",
    calendars: list[CalendarPart] | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    message = EmailMessage(policy=POLICY)
    message["From"] = address(sender)
    message["To"] = [address(p) for p in envelope.to]
    if envelope.cc:
        message["Cc"] = [address(p) for p in envelope.cc]
    if envelope.reply_to:
        message["Reply-To"] = envelope.reply_to
    message["Subject"] = header_safe(rendered.subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    if envelope.in_reply_to:
        message["In-Reply-To"] = envelope.in_reply_to
    if envelope.references:
        message["References"] = " ".join(envelope.references[-10:])
    message["Auto-Submitted"] = envelope.auto
    message["X-Auto-Response-Suppress"] = "DR, RN, NRN, AutoReply"
    message["Precedence"] = "bulk" if envelope.auto == "auto-generated" else "auto_reply"
    message[LOOP_HEADER] = loop_token
    if purpose:
        message[PURPOSE_HEADER] = purpose
    for name, value in (headers or {}).items():
        message[name] = header_safe(value)
    message.set_content(rendered.text)
    if calendars:  # an invitation: text, HTML and calendar side by side, as every client expects
        message.add_alternative(rendered.html, subtype="html")
    for part in calendars or []:
        add_calendar(message, part)
    for part in calendars or []:
        attach_calendar(message, part)
    return message


def add_calendar(message: EmailMessage, part: CalendarPart) -> None:
    """The iTIP part of an iMIP message, inside the multipart/alternative (RFC 6047 2.4).

    Its `method` parameter equals the METHOD property and it names its charset. It is
    base64, so the calendar's CRLF line ends and UTF-8 survive any relay, and its
    Content-Type is written as Outlook and Google write it (unquoted values).
    """
    message.add_alternative(part.data, maintype="text", subtype="calendar", cte="base64")
    parts = message.get_payload()
    assert isinstance(parts, list)
    calendar = parts[-1]
    assert isinstance(calendar, EmailMessage)
    del calendar["Content-Type"]
    calendar.set_raw("Content-Type", f"text/calendar; method={part.method}; charset=UTF-8")


def attach_calendar(message: EmailMessage, part: CalendarPart) -> None:
    """The same calendar again as an `application/ics` attachment: the multipart/mixed
    shape of the CalConnect iMIP best practices, for clients that only look at
    attachments. `application/ics` (not `text/calendar`) so no client reads the
    attachment as a second invitation."""
    message.add_attachment(
        part.data,
        maintype="application",
        subtype="ics",
        filename=part.filename,
        params={"name": part.filename},
    )


def recipients(message: EmailMessage) -> list[str]:
    found: list[str] = []
    for name in ("To", "Cc", "Bcc"):
        header = message.get(name)
        if header is not None:
            found.extend(a.addr_spec for a in header.addresses)
    return found

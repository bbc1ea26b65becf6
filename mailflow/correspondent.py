"""People answering mail, for the demo and the tests: replies built the way mail
clients build them (Re: subject, In-Reply-To, References, quoted original below), and
answers to calendar invitations built the way a calendar builds them (an iTIP REPLY
to the ORGANIZER, in Thunderbird's shape: text/plain and text/calendar; method=REPLY
in a multipart/alternative, the same calendar attached as invite.ics).
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from .compose import PURPOSE_HEADER, add_calendar, attach_calendar
from .invite import Attendee, build_reply, read_itip
from .mailtext import body_text, read_message
from .model import Person

ANSWER_WORDS = {"ACCEPTED": "Accepted", "TENTATIVE": "Tentative", "DECLINED": "Invitation Declined"}


def purpose(message: EmailMessage) -> str:
    return str(message.get(PURPOSE_HEADER, ""))


def reply(
    original: EmailMessage, sender: Person, text: str, when: datetime, *, quote_style: str = "gmail"
) -> bytes:
    """A reply from `sender` to `original`, sent to its Reply-To (else From)."""
    message = EmailMessage()
    message["From"] = f"{sender.name} <{sender.email}>" if sender.name else sender.email
    message["To"] = str(original.get("Reply-To") or original["From"])
    subject = str(original["Subject"])
    message["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    message["Date"] = format_datetime(when)
    message["Message-ID"] = make_msgid(domain=sender.email.partition("@")[2] or "example.org")
    message["In-Reply-To"] = str(original["Message-ID"])
    references = str(original.get("References", "")).split()
    message["References"] = " ".join([*references, str(original["Message-ID"])])
    quoted = "\n".join("> " + line for line in body_text(original).splitlines())
    if quote_style == "outlook":
        history = (
            f"\n\n________________________________\nFrom: {original['From']}\n"
            f"Sent: {original['Date']}\nTo: {original['To']}\nSubject: {subject}\n\n" + body_text(original)
        )
    else:
        history = f"\n\nOn {original['Date']}, {original['From']} wrote:\n{quoted}\n"
    message.set_content(text.rstrip() + "\n" + history)
    return message.as_bytes()


def answer_invitation(
    original: EmailMessage, sender: Person, partstat: str, when: datetime, *, comment: str = ""
) -> bytes:
    """`sender` accepts, declines or tentatively accepts the invitation in `original`."""
    part = next(p for p in original.walk() if p.get_content_type() == "text/calendar")
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    event = read_itip(data).events[0]
    organizer = original["From"].addresses[0]
    calendar = build_reply(
        uid=event.uid,
        sequence=event.sequence,
        attendee=Attendee(sender.email, sender.name),
        partstat=partstat,
        organizer=Attendee(organizer.addr_spec, organizer.display_name),
        stamp=when,
        summary=event.summary,
        comment=comment,
        prodid="-//mailflow//demo calendar//EN",
    )
    message = EmailMessage()
    message["From"] = f"{sender.name} <{sender.email}>" if sender.name else sender.email
    message["To"] = organizer.addr_spec
    message["Subject"] = f"{ANSWER_WORDS.get(partstat, 'Invitation Reply')}: {event.summary}"
    message["Date"] = format_datetime(when)
    message["Message-ID"] = make_msgid(domain=sender.email.partition("@")[2] or "example.org")
    verb = {"ACCEPTED": "accepted", "TENTATIVE": "tentatively accepted"}.get(partstat, "declined")
    message.set_content(f"{sender.name or sender.email} has {verb} your event invitation.\n")
    add_calendar(message, calendar)
    attach_calendar(message, calendar)
    return message.as_bytes()


def read(raw: bytes) -> EmailMessage:
    return read_message(raw)

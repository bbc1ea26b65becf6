"""People answering mail, for the demo and the tests: replies built the way mail
clients build them (Re: subject, In-Reply-To, References, quoted original below).
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from .compose import PURPOSE_HEADER
from .mailtext import body_text, read_message
from .model import Person


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


def read(raw: bytes) -> EmailMessage:
    return read_message(raw)

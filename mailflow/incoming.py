"""An incoming message as plain data: who sent it, to which addresses, in reply to
what, and the text they wrote. Reading never raises: a message too broken to read
still becomes an `Incoming` (with `defects`), so it can be parked, not lost.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

from .mailtext import body_text, header_text, new_text, read_message
from .model import Person

_ID = re.compile(r"<[^<>\s]+>")


@dataclass
class Incoming:
    key: str  # identity for "already processed?": Message-ID plus a digest of the bytes
    message_id: str
    sender: Person
    subject: str
    recipients: list[str]  # To, Cc, Delivered-To, X-Original-To, lower-cased
    refers_to: list[str]  # In-Reply-To and References, newest first
    text: str  # what the sender wrote this time
    full_text: str
    message: EmailMessage
    size: int
    defects: list[str] = field(default_factory=list)

    def header(self, name: str) -> str:
        return header_text(self.message, name)


def read_incoming(raw: bytes) -> Incoming:
    message = read_message(raw)
    digest = hashlib.sha256(raw).hexdigest()[:16]
    message_id = _first_id(header_text(message, "Message-ID")) or f"<no-id-{digest}@mailflow>"
    name, email = parseaddr(header_text(message, "From"))
    recipients: list[str] = []
    for header in ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To"):
        for value in _all(message, header):
            recipients.extend(addr.lower() for _, addr in getaddresses([value]) if addr)
    refers_to = _ids(header_text(message, "In-Reply-To"))
    refers_to += [i for i in reversed(_ids(header_text(message, "References"))) if i not in refers_to]
    defects = [type(d).__name__ for d in message.defects]
    try:
        full = body_text(message)
    except Exception as error:  # a body no decoder can read is parked, not fatal
        full = ""
        defects.append(f"unreadable body: {error}")
    try:
        text = new_text(full)
    except Exception as error:
        text = full
        defects.append(f"reply text: {error}")
    return Incoming(
        key=f"{message_id}|{digest}",
        message_id=message_id,
        sender=Person(email=email.lower().strip(), name=" ".join(name.split())),
        subject=header_text(message, "Subject"),
        recipients=list(dict.fromkeys(recipients)),
        refers_to=refers_to,
        text=text,
        full_text=full,
        message=message,
        size=len(raw),
        defects=defects,
    )


def _all(message: EmailMessage, name: str) -> list[str]:
    try:
        return [" ".join(str(v).split()) for v in message.get_all(name) or []]
    except Exception:
        return []


def _ids(text: str) -> list[str]:
    return _ID.findall(text or "")


def _first_id(text: str) -> str | None:
    found = _ids(text)
    return found[0] if found else None

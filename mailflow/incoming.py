"""An incoming message as plain data: who sent it, to which addresses, in reply to
what, and the text they wrote. Reading never raises: a message too broken to read
still becomes an `Incoming` (with `defects`), so it can be parked, not lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parseaddr

from .mailtext import body_text, clean, header_text, new_text, read_incoming_message
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
    message: Message
    size: int
    defects: list[str] = field(default_factory=list)

    def header(self, name: str) -> str:
        return header_text(self.message, name)


def read_incoming(raw: bytes) -> Incoming:
    message = read_incoming_message(raw)
    digest = hashlib.sha256(raw).hexdigest()[:16]
    message_id = _first_id(header_text(message, "Message-ID")) or f"<no-id-{digest}@mailflow>"
    name, email = _sender(message)
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


def _sender(message: Message) -> tuple[str, str]:
    """The From address, read from the raw header so that a display name holding anything
    (even an encoded CR/LF, which the standard library refuses to decode) cannot hide it."""
    raw = next((str(v) for k, v in message.raw_items() if k.lower() == "from"), "")
    name, email = parseaddr(" ".join(raw.split()))
    with contextlib.suppress(Exception):  # an undecodable display name is kept as written
        name = str(make_header(decode_header(name)))
    return clean(" ".join(name.split())), clean(email)


def _all(message: Message, name: str) -> list[str]:
    try:
        return [clean(" ".join(str(v).split())) for v in message.get_all(name) or []]
    except Exception:
        return []


def _ids(text: str) -> list[str]:
    return _ID.findall(text or "")


def _first_id(text: str) -> str | None:
    found = _ids(text)
    return found[0] if found else None

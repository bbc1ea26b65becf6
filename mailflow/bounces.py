"""Reading bounces: which message of ours failed, for whom, and why (RFC 3464 DSNs).

A DSN is `multipart/report; report-type=delivery-status` with a human part, a
`message/delivery-status` part (one block per recipient: Final-Recipient, Action,
Status, Diagnostic-Code) and the original message or its headers. Older MTAs send
plain text; then the original Message-ID is looked for in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message

from .mailtext import body_text

_ID = re.compile(r"<[^<>\s@]+@[^<>\s]+>")


@dataclass
class Failure:
    recipient: str
    status: str = ""
    diagnostic: str = ""

    def describe(self) -> str:
        detail = " ".join(part for part in (self.status, self.diagnostic) if part)
        return f"{self.recipient}: {detail}" if detail else self.recipient


@dataclass
class Bounce:
    original_ids: list[str] = field(default_factory=list)  # candidates, most likely first
    failures: list[Failure] = field(default_factory=list)


def read_bounce(message: Message) -> Bounce:
    bounce = Bounce()
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            bounce.failures.extend(_failures(part))
        elif ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                bounce.original_ids.append(str(inner["Message-ID"]).strip())
        elif ctype == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            headers = raw if isinstance(raw, bytes) else str(part.get_payload()).encode()
            found = re.search(rb"^Message-ID:\s*(<[^>]+>)", headers, re.IGNORECASE | re.MULTILINE)
            if found:
                bounce.original_ids.append(found.group(1).decode("ascii", "replace"))
    if not bounce.original_ids:
        text = body_text(message)
        own = [m for m in re.findall(r"^\s*>?\s*Message-ID:\s*(<[^>]+>)", text, re.I | re.M)]
        bounce.original_ids.extend(own or _ID.findall(text))
    return bounce


def _failures(part: Message) -> list[Failure]:
    blocks = part.get_payload()
    failures = []
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, Message):
            continue
        recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        action = str(block.get("Action", "")).lower()
        if not recipient or action not in ("failed", "delayed", ""):
            continue
        failures.append(
            Failure(
                recipient=recipient.split(";", 1)[-1].strip(),
                status=f"{action} {block.get('Status', '')}".strip(),
                diagnostic=" ".join(str(block.get("Diagnostic-Code", "")).split(";", 1)[-1].split()),
            )
        )
    return failures

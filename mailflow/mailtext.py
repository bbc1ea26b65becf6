"""From raw bytes to the text a person wrote.

`read_message` parses bytes without ever raising; `body_text` finds the readable body
(text/plain preferred, HTML turned into text, any declared charset, broken ones
forgiven); `new_text` keeps only what the sender wrote this time, without quoted
history or signature.
"""

from __future__ import annotations

import contextlib
import email
import re
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.policy import compat32

import html2text
from mailparser_reply.parser import EmailMessage as ReplyText

from .mailpolicy import POLICY

MAX_DEPTH = 20
_REPLY_LANGUAGES = ["en", "es", "fr", "de"]
# What mail-parser-reply misses: a quote header line in any of these forms, then quoted lines.
_QUOTE_HEADER = re.compile(
    r"^(?:on\b.*\bwrote:|el\b.*\bescribi[oó]:|le\b.*\ba [ée]crit ?:|am\b.*\bschrieb.*:|"
    r"-{2,}\s*(?:original message|mensaje original|forwarded message)\s*-{2,}|"
    r"from:\s.*|de:\s.*)\s*$",
    re.IGNORECASE,
)


def read_message(raw: bytes) -> EmailMessage:
    """Parse a message with the modern policy (structured headers); never raises."""
    message = email.message_from_bytes(raw, policy=POLICY)
    assert isinstance(message, EmailMessage)
    return message


def read_incoming_message(raw: bytes) -> Message:
    """Parse incoming mail with the compat32 policy: headers stay as written and are decoded
    only when read (`header_text`). On the path every message takes, this is several times
    faster than the modern policy, which parses a header again at each access. Never raises."""
    return email.message_from_bytes(raw, policy=compat32)


def body_text(message: Message) -> str:
    """The readable body: the first text/plain part, else the first text/html part as text."""
    plain = html = None
    for part in _walk(message, 0):
        if part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and plain is None:
            plain = decode_part(part)
        elif ctype == "text/html" and html is None:
            html = decode_part(part)
    if plain is not None and plain.strip():
        return normalise_newlines(plain)
    if html is not None:
        return html_to_text(html)
    return normalise_newlines(plain or "")


def _walk(part: Message, depth: int) -> Iterator[Message]:
    """Like Message.walk, but stops at MAX_DEPTH so hostile nesting cannot exhaust the stack."""
    if depth > MAX_DEPTH:
        return
    if part.is_multipart():
        payload = part.get_payload()
        if isinstance(payload, list):
            for child in payload:
                if isinstance(child, Message):
                    yield from _walk(child, depth + 1)
    else:
        yield part


def decode_part(part: Message) -> str:
    """Decode a text part by its declared charset; latin-1 is read as its superset windows-1252."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return clean(str(part.get_payload() or ""))
    charset = (part.get_content_charset() or "utf-8").lower()
    if charset in ("latin-1", "latin1", "iso-8859-1", "us-ascii", "ascii"):
        charset = "windows-1252"
    for candidate in (charset, "utf-8", "windows-1252"):
        try:
            return payload.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("utf-8", errors="replace")


def html_to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_links = False
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    converter.ignore_tables = True  # a form laid out as a table reads as "Key: value" lines
    html = re.sub(r"(?i)(</t[dh]\s*>)", "\u00a0\\1", html)  # keep a space between cells
    text = converter.handle(html)
    # html2text escapes characters that mean something in Markdown; people did not type those.
    text = re.sub(r"\\([-*_+.#!\[\]()`>])", r"\1", text)
    return normalise_newlines(text)


def normalise_newlines(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    return text.replace("\u200b", "").replace("\ufeff", "")


def new_text(text: str) -> str:
    """Only what was written this time: no quoted history, no signature."""
    parsed = ReplyText(text, languages=list(_REPLY_LANGUAGES), keep_hyphen_lists=True).read()
    body = parsed.replies[0].body if parsed.replies else text
    kept: list[str] = []
    for line in body.split("\n"):
        stripped = line.strip()
        if stripped.startswith(">") or _QUOTE_HEADER.match(stripped):
            break
        if stripped in ("--", "-- ", "__"):
            break
        kept.append(line.rstrip())
    return "\n".join(kept).strip()


def header_text(message: Message, name: str) -> str:
    """A header as one line of text; unreadable encodings give what can be read."""
    try:
        value = message.get(name)
    except Exception:  # a header the parser cannot decode is treated as absent
        return ""
    if value is None:
        return ""
    text = str(value)
    if "=?" in text:  # RFC 2047 encoded words, left encoded by the compat32 parser
        with contextlib.suppress(Exception):  # undecodable: kept as written
            text = str(make_header(decode_header(text)))
    return clean(" ".join(text.split()))


def clean(text: str) -> str:
    """Text safe to store and log: raw bytes the parser kept as surrogates become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")

"""A mentoring programme on disk, driven the way its users drive it.

Tests write request emails into the inbox Maildir, run `mailflow run --once --now …`
through the real command line, read what lands in the outbox Maildir, and answer it
with replies built like a mail client builds them.
"""

from __future__ import annotations

import base64
import email
import quopri
import shutil
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from click.testing import CliRunner
from icalendar import Calendar

from mailflow.cli import main
from mailflow.clock import parse_iso
from mailflow.correspondent import purpose, read, reply
from mailflow.model import Person, Request
from mailflow.store import Store
from mailflow.tokens import find_ref

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
RSVP = DATA / "rsvp"
SAMPLE_REF = "MM-7F3K2"  # what the stored calendar answers name
SAMPLE_UID = "mm-7f3k2-1-1796511600@library.org"
START = "2026-12-01T15:00:00+00:00"  # a Tuesday

CONFIG = """
[programme]
name = "Library Micro Mentoring"
address = "mentoring@library.org"
coordinator = "coordinator@library.org"
cc_coordinator = true
time_zone = "America/Chicago"
default_format = "video"
{programme_lines}
[mail]
{mail}

[paths]
rules = "rules"
templates = "{templates}"
state = "var/state.json"

[digest]
enabled = false  # the weekly digest has its own tests (test_digest.py)
"""


def request_mail(
    sender: str,
    body: str,
    *,
    subject: str = "Mentoring request",
    name: str = "",
    headers: dict[str, str] | None = None,
    when: str = START,
) -> bytes:
    message = EmailMessage()
    message["From"] = f"{name} <{sender}>" if name else sender
    message["To"] = "Library Mentoring <mentoring@library.org>"
    message["Subject"] = subject
    message["Date"] = format_datetime(parse_iso(when))
    message["Message-ID"] = make_msgid(domain=sender.partition("@")[2])
    for key, value in (headers or {}).items():
        message[key] = value
    message.set_content(body)
    return message.as_bytes()


MAILDIRS = """inbox = "maildir:mailbox"
outbox = "maildir:outbox"
"""


class Programme:
    def __init__(
        self,
        root: Path,
        rules: Path = DATA / "rules",
        extra_config: str = "",
        programme_lines: str = "",
        mail: str = MAILDIRS,
    ) -> None:
        self.root = root
        shutil.copytree(rules, root / "rules")
        self.config_path = root / "config.toml"
        self.config_path.write_text(
            CONFIG.format(templates=REPO / "templates", programme_lines=programme_lines, mail=mail)
            + extra_config
        )
        self.now = parse_iso(START)
        self.seen: set[str] = set()
        self.counter = 0
        for sub in ("tmp", "new", "cur"):
            (root / "mailbox" / sub).mkdir(parents=True, exist_ok=True)

    # -- mail in ---------------------------------------------------------------------
    def deliver(self, raw: bytes | Path) -> None:
        data = raw.read_bytes() if isinstance(raw, Path) else raw
        self.counter += 1
        name = f"{self.counter:05d}.test"
        (self.root / "mailbox" / "tmp" / name).write_bytes(data)
        (self.root / "mailbox" / "tmp" / name).rename(self.root / "mailbox" / "new" / name)

    def request(self, sender: str, body: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.deliver(request_mail(sender, body, when=self.now.isoformat(), **kwargs))

    def answer(
        self,
        message: EmailMessage,
        text: str,
        sender: str | None = None,
        quote_style: str = "gmail",
    ) -> None:
        """Reply to `message` as its recipient (or as `sender`)."""
        to = message["To"].addresses[0]
        person = Person(sender, "") if sender else Person(to.addr_spec, to.display_name)
        self.deliver(reply(message, person, text, self.now, quote_style=quote_style))

    # -- running ---------------------------------------------------------------------
    def run(self, at: str | None = None, *, after: timedelta | None = None) -> str:
        if at:
            self.now = parse_iso(at)
        if after:
            self.now = self.now + after
        result = CliRunner().invoke(
            main,
            [
                "run",
                "--once",
                "--quiet",
                "--now",
                self.now.isoformat(),
                "--config",
                str(self.config_path),
            ],
        )
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result.output

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(main, [*args, "--config", str(self.config_path)])
        assert result.exit_code == 0, result.output
        return result.output

    # -- mail out --------------------------------------------------------------------
    def outbox(self) -> list[EmailMessage]:
        folder = self.root / "outbox" / "new"
        if not folder.exists():
            return []
        paths = sorted(folder.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [read(p.read_bytes()) for p in paths]

    def new(self) -> list[EmailMessage]:
        fresh = [m for m in self.outbox() if str(m["Message-ID"]) not in self.seen]
        self.seen.update(str(m["Message-ID"]) for m in fresh)
        return fresh

    def folder(self, name: str) -> list[EmailMessage]:
        path = self.root / "mailbox" / f".{name}" / "cur"
        return [read(p.read_bytes()) for p in sorted(path.iterdir())] if path.exists() else []

    def inbox_waiting(self) -> int:
        return sum(1 for sub in ("new", "cur") for _ in (self.root / "mailbox" / sub).iterdir())

    # -- state -----------------------------------------------------------------------
    def request_of(self, ref: str) -> Request:
        store = Store(self.root / "var" / "state.json", readonly=True)
        found = store.find(ref)
        assert found is not None, ref
        return found


def only(messages: list[EmailMessage], kind: str, to: str | None = None) -> EmailMessage:
    matching = of(messages, kind, to)
    assert len(matching) == 1, f"expected one {kind} to {to}, got " + str(
        [(purpose(m), str(m["To"])) for m in messages]
    )
    return matching[0]


def of(messages: list[EmailMessage], kind: str, to: str | None = None) -> list[EmailMessage]:
    return [
        m
        for m in messages
        if purpose(m) == kind and (to is None or to in [a.addr_spec for a in m["To"].addresses])
    ]


def ref_of(message: EmailMessage) -> str:
    ref = find_ref(str(message["Subject"]))
    assert ref, message["Subject"]
    return ref


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return body.get_content()


def calendars_of(message: EmailMessage) -> list[Calendar]:
    """The text/calendar parts (not the .ics attachments) of a message."""
    found = []
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            found.append(Calendar.from_ical(part.get_content()))
    return found


def events_of(message: EmailMessage):  # type: ignore[no-untyped-def]
    return [event for calendar in calendars_of(message) for event in calendar.walk("VEVENT")]


def minutes(event) -> int:  # type: ignore[no-untyped-def]
    return int((event.decoded("dtend") - event.decoded("dtstart")).total_seconds() // 60)


def later(at: datetime, **delta: float) -> str:
    return (at + timedelta(**delta)).isoformat()


def calendar_answer(name: str, uid: str, swaps: dict[str, str] | None = None) -> bytes:
    """A stored client's calendar answer (`tests/data/rsvp/NAME.eml`) aimed at a session
    of this run: its sample UID and reference become `uid` and its reference, in the
    headers and inside every part (re-encoded as it was: base64, quoted-printable, 8bit)."""
    ref = find_ref(uid)
    assert ref, uid
    changes = {SAMPLE_UID: uid, SAMPLE_REF: ref, SAMPLE_REF.lower(): ref.lower(), **(swaps or {})}

    def swap(text: str) -> str:
        for old, new in changes.items():
            text = text.replace(old, new)
        return text

    message = email.message_from_bytes((RSVP / f"{name}.eml").read_bytes(), policy=policy.compat32)
    for part in message.walk():
        for key, value in list(part.items()):
            if swap(value) != value:
                part.replace_header(key, swap(value))
        if part.is_multipart():
            continue
        raw = part.get_payload(decode=True)
        assert isinstance(raw, bytes)
        data = swap(raw.decode("utf-8")).encode("utf-8")
        encoding = str(part.get("Content-Transfer-Encoding", "7bit")).lower()
        if encoding == "base64":
            part.set_payload(base64.encodebytes(data).decode("ascii"))
        elif encoding == "quoted-printable":
            part.set_payload(quopri.encodestring(data).decode("ascii"))
        else:
            part.set_payload(data.decode("utf-8"))
    return message.as_bytes()


def with_headers(raw: bytes, headers: dict[str, str]) -> bytes:
    """The same message with more header fields in front (as a relay or a client adds them)."""
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + raw


def calendar_parts(message: EmailMessage) -> list[EmailMessage]:
    return [p for p in message.walk() if p.get_content_type() == "text/calendar"]

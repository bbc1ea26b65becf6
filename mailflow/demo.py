"""`mailflow demo`: the whole workflow on the embedded default, with a transcript.

A fresh `var/demo/` gets its own config, Maildir inbox and outbox and state. The
example requests are delivered; scripted mentors and protégés answer what lands in
the outbox (an accept, a counter-offer, a decline then an accept, an incomplete
request completed by reply, a time-out, a cancellation, reflections) and answer the
invitations from their calendars (accepted, tentative, a mentor's decline that sends
the request to the next mentor, a reschedule); the clock is moved forward to fire
time-outs and reflection requests. The same engine,
templates and rules as `mailflow run` do all the work.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from . import status as show
from .clock import FixedClock
from .config import load_config
from .correspondent import answer_invitation, purpose, read, reply
from .engine import Engine
from .errors import MailflowError
from .mailboxes.maildir import MaildirSender, MaildirSource
from .model import Person, Request
from .store import Store
from .tokens import find_ref

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # a Tuesday morning in the Americas
MARKER = ".mailflow-demo"
REPO = Path(__file__).resolve().parent.parent

# What each scripted person does, by protégé address.
MENTOR_ANSWERS: dict[str, list[str]] = {
    "danielle.jones@example.org": ["Yes, happy to help!"],
    "rosa.delgado@example.org": ["accept"],
    "mariana.lopez@example.org": ["Sí, con gusto."],
    "chris.nakamura@example.org": [
        "Decline - I'm at a conference most of December, sorry.",
        "accept",
    ],
    "beth.morgan@example.org": ["accept 45 minutes"],
    "priya.raman@example.org": ["Of course - good to hear from Priya again."],
    "jordan.ellis@example.org": ["Happy to. Our board meets on Thursdays."],
    "ngozi.adeyemi@example.org": ["", "yes"],  # the first mentor never answers: a time-out
    "kevin.obrien@example.org": ["accept"],
    "sam.patel@example.org": ["accept"],
}
COMPLETIONS = {
    "kevin.obrien@example.org": "Time budget: 30 minutes\nAvailability: weekday mornings",
    "sam.patel@example.org": "Time budget: 2 x 1 hour over 4 weeks",
}
CANCELS = {"sam.patel@example.org": "cancel - I have been asked to cover another branch."}
REFLECTIONS = {
    "protege": "What worked: concrete examples from a real library\nWhat didn't: we ran out "
    "of time for questions\nWhat you'll try: a pilot next month\nMore help later? yes",
    "mentor": "What worked: a clear question to start from\nWhat didn't: nothing really\n"
    "What you'll try: sending notes afterwards\nMore help later? happy to",
}
SILENT_MENTOR_REFLECTIONS = {"rosa.delgado@example.org"}  # the reminder path
# Calendar answers to invitations, by protégé: everyone else accepts.
TENTATIVE_PROTEGES = {"priya.raman@example.org"}
MENTOR_DECLINES_INVITATION = {"danielle.jones@example.org": "I am travelling that week after all, sorry."}
RESCHEDULES = {"beth.morgan@example.org": "reschedule - that afternoon is our board meeting"}


@dataclass
class Demo:
    folder: Path
    echo: Callable[[str], None]
    clock: FixedClock = field(default_factory=lambda: FixedClock(START))
    seen_outbox: set[str] = field(default_factory=set)
    history_shown: dict[str, int] = field(default_factory=dict)
    asks_answered: dict[str, int] = field(default_factory=dict)
    calendar_scripts_used: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.config = load_config(_write_config(self.folder))
        self.store = Store(self.config.state_path)
        self.inbox = MaildirSource(self.folder / "mailbox")
        self.outbox_path = self.folder / "outbox"
        self.engine = Engine(self.config, self.store, self.inbox, MaildirSender(self.outbox_path), self.clock)

    def deliver(self, raw: bytes) -> None:
        name = f"{int(self.clock.now().timestamp())}.{len(list(self.folder.glob('**/*')))}.demo"
        (self.folder / "mailbox" / "tmp" / name).write_bytes(raw)
        (self.folder / "mailbox" / "tmp" / name).rename(self.folder / "mailbox" / "new" / name)

    def run(self, title: str) -> list[EmailMessage]:
        self.echo(f"\n=== {self.clock.now():%a %d %b %Y %H:%M} UTC: {title}")
        report = self.engine.run_once()
        for request in sorted(
            self.store.open_requests() + self._recently_finished(), key=lambda r: r.created
        ):
            shown = self.history_shown.get(request.ref, 0)
            for event in request.history[shown:]:
                if event.what.startswith("sent "):
                    continue
                self.echo(f"  {request.ref} {event.what}" + (f": {event.reason}" if event.reason else ""))
            self.history_shown[request.ref] = len(request.history)
        new = self._new_outbox()
        for message in new:
            subject = " ".join(str(message["Subject"]).split())
            self.echo(
                f"    -> {message['To']}"
                + (f" (cc {message['Cc']})" if message["Cc"] else "")
                + f"\n       {subject}"
            )
        if report.outcomes and not new:
            self.echo("    (nothing sent)")
        return new

    def _recently_finished(self) -> list[Request]:
        return [r for r in self.store.archived() if self.history_shown.get(r.ref, 0) < len(r.history)]

    def _new_outbox(self) -> list[EmailMessage]:
        messages = []
        for path in sorted((self.outbox_path / "new").iterdir(), key=lambda p: p.stat().st_mtime_ns):
            if path.name not in self.seen_outbox:
                self.seen_outbox.add(path.name)
                messages.append(read(path.read_bytes()))
        return messages

    def protege_of(self, message: EmailMessage) -> str:
        ref = find_ref(str(message["Subject"]))
        request = self.store.find(ref) if ref else None
        return request.protege.email if request else ""

    def react(self, messages: list[EmailMessage]) -> int:
        """Scripted answers to what mailflow just sent; returns how many were written."""
        written = 0
        for message in messages:
            kind = purpose(message)
            protege = self.protege_of(message)
            to = Person(message["To"].addresses[0].addr_spec, message["To"].addresses[0].display_name)
            text = ""
            if kind == "ask":
                answers = MENTOR_ANSWERS.get(protege, ["accept"])
                index = self.asks_answered.get(protege, 0)
                self.asks_answered[protege] = index + 1
                text = answers[min(index, len(answers) - 1)]
            elif kind == "completion request":
                text = COMPLETIONS.get(protege, "")
            elif kind in ("reflection", "reflection reminder"):
                is_mentor = to.email != protege
                if is_mentor and protege in SILENT_MENTOR_REFLECTIONS:
                    text = ""
                elif kind == "reflection" and not is_mentor and protege in SILENT_MENTOR_REFLECTIONS:
                    text = ""  # this protégé answers only after the reminder
                else:
                    text = REFLECTIONS["mentor" if is_mentor else "protege"]
            elif kind == "introduction" or kind.startswith(("invite for session", "new time for session")):
                written += self.answer_calendar(message, protege)
            if text:
                self.echo(f"  <- {to.email} answers {message['Subject']!s:.60}...: {text.splitlines()[0]!r}")
                self.deliver(reply(message, to, text, self.clock.now()))
                written += 1
        return written

    def answer_calendar(self, message: EmailMessage, protege: str) -> int:
        """Both people answer an invitation from their calendars (or ask to reschedule)."""
        if not any(p.get_content_type() == "text/calendar" for p in message.walk()):
            return 0
        written = 0
        for address in message["To"].addresses:
            who = Person(address.addr_spec, address.display_name)
            is_protege = who.email == protege
            once = f"{protege}:{'protege' if is_protege else 'mentor'}"
            if is_protege and protege in RESCHEDULES and once not in self.calendar_scripts_used:
                self.calendar_scripts_used.add(once)
                self.echo(f"  <- {who.email} writes: {RESCHEDULES[protege]!r}")
                self.deliver(reply(message, who, RESCHEDULES[protege], self.clock.now()))
            elif (
                not is_protege
                and protege in MENTOR_DECLINES_INVITATION
                and once not in self.calendar_scripts_used
            ):
                self.calendar_scripts_used.add(once)
                note = MENTOR_DECLINES_INVITATION[protege]
                self.echo(f"  <- {who.email} declines the invitation in their calendar: {note!r}")
                self.deliver(answer_invitation(message, who, "DECLINED", self.clock.now(), comment=note))
            else:
                answer = "TENTATIVE" if is_protege and protege in TENTATIVE_PROTEGES else "ACCEPTED"
                self.echo(f"  <- {who.email} answers the invitation in their calendar: {answer}")
                self.deliver(answer_invitation(message, who, answer, self.clock.now()))
            written += 1
        return written

    def converse(self, title: str) -> None:
        new = self.run(title)
        while self.react(new):
            self.clock.advance(timedelta(hours=2))
            new = self.run("replies arrive")

    def cancel_introduced(self) -> None:
        for request in self.store.open_requests():
            text = CANCELS.get(request.protege.email)
            intro = next(
                (
                    m
                    for m in self._all_outbox()
                    if purpose(m) == "introduction" and find_ref(str(m["Subject"])) == request.ref
                ),
                None,
            )
            if text and intro is not None:
                self.echo(f"  <- {request.protege.email} writes: {text!r}")
                self.deliver(reply(intro, request.protege, text, self.clock.now()))

    def _all_outbox(self) -> list[EmailMessage]:
        return [read(p.read_bytes()) for p in sorted((self.outbox_path / "new").iterdir())]


def run_demo(folder: Path, echo: Callable[[str], None], summary: Callable[[str], None]) -> None:
    demo = Demo(folder, echo)
    try:
        echo(f"mailflow demo in {folder}/ (inbox: mailbox/, outbox: outbox/)")
        for path in sorted((REPO / "examples").glob("*.eml")):
            demo.deliver(path.read_bytes())
        demo.converse(f"{len(list((REPO / 'examples').glob('*.eml')))} example requests arrive")
        for _ in range(3):  # ask time-outs: the next candidate is asked
            demo.clock.advance(timedelta(days=2, hours=1))
            demo.converse("two days later: unanswered asks time out")
        demo.clock.advance(timedelta(hours=3))
        demo.cancel_introduced()
        demo.converse("a protégé cancels")
        for _ in range(12):  # sessions happen, reflections are asked, one reminder, closing
            due = demo.store.next_due()
            if due is None:
                break
            demo.clock.set(due + timedelta(minutes=5))
            demo.converse("timers fire: reflections, reminders, closing")
        now = demo.clock.now()
        summary(f"\n=== Where every request ended ({now:%Y-%m-%d}):")
        summary(show.table([show.request_row(r, now) for r in show.all_requests(demo.store)]))
        count = len(list((folder / "outbox" / "new").iterdir()))
        summary(f"\n{count} messages are in {folder}/outbox/new; the state is {demo.config.state_path}.")
        summary(f"See one request's history with: ./dev mailflow status --config {folder}/config.toml REF")
    finally:
        demo.engine.close()
        demo.store.close()


def _write_config(folder: Path) -> Path:
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists():
        raise MailflowError(
            f"{folder} exists and is not a mailflow demo folder; choose another --dir, or empty it"
        )
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("created by mailflow demo; deleted and recreated by the next one\n")
    config = folder / "config.toml"
    config.write_text(f"""# Written by `mailflow demo`.
[programme]
name = "Library Micro Mentoring"
address = "mentoring@library.org"
coordinator = "coordinator@library.org"
time_zone = "America/Chicago"

[mail]
inbox = "maildir:mailbox"
outbox = "maildir:outbox"

[paths]
rules = "{REPO / "rules"}"
templates = "{REPO / "templates"}"
state = "state.json"
""")
    return config

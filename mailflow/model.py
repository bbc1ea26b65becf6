"""Plain data passed between the stages, and the request's state machine.

A `Request` changes state only through `Request.move`, which checks the transition
against `TRANSITIONS` and records the reason in its history. Everything here is a
dataclass of plain values, so the store can write it as JSON and read it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum


class State(StrEnum):
    RECEIVED = "received"
    INCOMPLETE = "incomplete"  # waiting for the protégé to complete the form
    ASKING = "asking"  # a mentor has been asked and has not answered yet
    ESCALATED = "escalated"  # no mentor could be found; the coordinator decides
    INTRODUCED = "introduced"  # both introduced, sessions booked
    REFLECTING = "reflecting"  # reflection asked, waiting for answers
    CLOSED = "closed"
    CANCELLED = "cancelled"


TRANSITIONS: dict[State, set[State]] = {
    State.RECEIVED: {State.INCOMPLETE, State.ASKING, State.ESCALATED, State.CANCELLED},
    State.INCOMPLETE: {State.INCOMPLETE, State.ASKING, State.ESCALATED, State.CANCELLED},
    State.ASKING: {State.ASKING, State.INTRODUCED, State.ESCALATED, State.CANCELLED},
    State.ESCALATED: {State.ASKING, State.ESCALATED, State.CANCELLED},
    # ASKING / ESCALATED / INCOMPLETE again when the mentor declines the calendar invitation
    State.INTRODUCED: {
        State.REFLECTING,
        State.ASKING,
        State.ESCALATED,
        State.INCOMPLETE,
        State.CANCELLED,
    },
    State.REFLECTING: {State.CLOSED, State.CANCELLED},
    State.CLOSED: set(),
    State.CANCELLED: set(),
}

OPEN_STATES = frozenset(s for s, nexts in TRANSITIONS.items() if nexts)


class Role(StrEnum):
    PROTEGE = "protege"
    MENTOR = "mentor"
    COORDINATOR = "coordinator"


class TimerKind(StrEnum):
    ASK_TIMEOUT = "ask_timeout"
    REFLECTION_DUE = "reflection_due"
    REFLECTION_REMINDER = "reflection_reminder"
    REFLECTION_CLOSE = "reflection_close"


@dataclass(frozen=True)
class SessionSpec:
    """One session of a budget: what kind and how long."""

    kind: str  # "call", "shadowing" or "debrief"
    minutes: int
    assumed: bool = False  # the length was not written; the configured default was used

    def describe(self) -> str:
        """`45-minute conversation`, `2-hour shadowing slot`."""
        label = {"call": "conversation", "shadowing": "shadowing slot", "debrief": "debrief"}
        size = f"{self.minutes // 60}-hour" if self.minutes % 60 == 0 else f"{self.minutes}-minute"
        return f"{size} {label.get(self.kind, self.kind)}"


@dataclass(frozen=True)
class Budget:
    """The agreed time: the sessions, and the period they are spread over."""

    sessions: tuple[SessionSpec, ...]
    span_days: int | None = None
    text: str = ""

    @property
    def total_minutes(self) -> int:
        return sum(s.minutes for s in self.sessions)

    @property
    def total(self) -> timedelta:
        return timedelta(minutes=self.total_minutes)

    def describe(self) -> str:
        """`one 45-minute conversation`, `2 x 30-minute conversation over 2 weeks`."""
        parts = [s.describe() for s in self.sessions]
        text = "one " + parts[0] if len(parts) == 1 else "a " + ", then a ".join(parts)
        if len(self.sessions) > 1 and len(set(self.sessions)) == 1:
            text = f"{len(parts)} x {self.sessions[0].describe()}s"
        if self.span_days:
            weeks, days = divmod(self.span_days, 7)
            text += (
                f" over {weeks} weeks"
                if not days and weeks > 1
                else (" over 1 week" if not days else f" over {self.span_days} days")
            )
        return text


@dataclass(frozen=True)
class Window:
    """A weekly availability window in someone's local time: Tue/Thu 14:00-17:00."""

    weekdays: tuple[int, ...]  # 0 = Monday
    start: time
    end: time

    def describe(self) -> str:
        names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        days = "/".join(names[d] for d in self.weekdays)
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M}"


@dataclass
class Person:
    email: str
    name: str = ""
    library: str = ""

    def display(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass
class RequestForm:
    """What the protégé asked for, as understood from the request email."""

    topic: str | None = None
    budget_text: str | None = None
    budget: Budget | None = None
    format: str | None = None
    skills: list[str] = field(default_factory=list)
    goal: str | None = None
    prior_relationship: str = "not needed"  # "not needed" | "preferred" | "required"
    preferred_mentor: str | None = None
    availability_text: str | None = None
    availability: list[Window] = field(default_factory=list)
    time_zone: str | None = None
    recording: bool = False
    questions: list[str] = field(default_factory=list)
    name: str | None = None
    library: str | None = None
    language: str = "en"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request form, said so the protégé can fix it."""

    field: str
    message: str


@dataclass(frozen=True)
class Policy:
    """The timing and limits of the rule that matched (defaults filled in)."""

    ask_timeout: timedelta = timedelta(days=3)
    reflection_delay: timedelta = timedelta(days=1)
    reflection_reminder: timedelta = timedelta(days=4)
    max_candidates: int = 3
    max_budget: timedelta = timedelta(hours=6)
    on_mentor_decline: str = "rematch"  # or "escalate": when the mentor declines the invitation


@dataclass
class Candidate:
    """A mentor who qualified, with the reasons behind their place in the ranking."""

    email: str
    name: str
    reasons: list[str] = field(default_factory=list)


@dataclass
class Rejected:
    """A mentor who did not qualify, and the filter that removed them."""

    email: str
    name: str
    reason: str


@dataclass
class Decision:
    """What matching decided, and why."""

    rule: str | None
    rule_file: str | None = None
    skipped_rules: list[str] = field(default_factory=list)
    ranked: list[Candidate] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    # Mentors who qualified but ranked below the first `max_candidates`, in rank order.
    also_qualified: list[str] = field(default_factory=list)
    policy: Policy = field(default_factory=Policy)
    # Each mentor's (minutes booked this month, requests in hand) when the match was made,
    # so `mailflow simulate --replay` can match again in the same situation (None: not kept).
    loads: dict[str, tuple[int, int]] | None = None


@dataclass
class Ask:
    """One mentor asked, and how it ended."""

    mentor: str
    asked_at: datetime
    due: datetime
    outcome: str | None = None  # accepted | declined | timed out | withdrawn
    reason: str = ""
    answered_at: datetime | None = None


@dataclass
class Booking:
    """One session as sent in a calendar invite (its UID is stable; SEQUENCE counts changes)."""

    uid: str
    kind: str
    start: datetime
    end: datetime
    sequence: int = 0
    status: str = "confirmed"  # confirmed | cancelled
    rsvp: dict[str, str] = field(default_factory=dict)  # attendee email -> PARTSTAT
    rsvp_at: dict[str, datetime] = field(default_factory=dict)  # attendee email -> the answer's DTSTAMP
    earlier: list[datetime] = field(default_factory=list)  # starts it had before each reschedule


@dataclass
class Reflection:
    role: Role
    received_at: datetime
    text: str
    answers: dict[str, str] = field(default_factory=dict)


@dataclass
class Timer:
    kind: TimerKind
    due: datetime


@dataclass
class Event:
    """One line of a request's history: what happened, when, and why."""

    at: datetime
    what: str
    reason: str = ""
    state: State | None = None


@dataclass
class Request:
    ref: str
    protege: Person
    created: datetime
    state: State = State.RECEIVED
    form: RequestForm = field(default_factory=RequestForm)
    problems: list[Problem] = field(default_factory=list)
    decision: Decision | None = None
    asks: list[Ask] = field(default_factory=list)
    mentor: Person | None = None
    agreed: Budget | None = None
    bookings: list[Booking] = field(default_factory=list)
    withdrawn: list[Booking] = field(default_factory=list)  # sessions of a mentor who declined
    reschedules: int = 0
    reflections: dict[str, Reflection] = field(default_factory=dict)
    reminded: bool = False
    timer: Timer | None = None
    clarifications: dict[str, int] = field(default_factory=dict)
    round_start: int = 0  # asks before this index belong to an earlier round (before a retry)
    message_ids: list[str] = field(default_factory=list)
    sent_to: dict[str, list[str]] = field(default_factory=dict)  # our Message-ID -> recipients
    history: list[Event] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def current_ask(self) -> Ask | None:
        if self.state is State.ASKING and self.asks and self.asks[-1].outcome is None:
            return self.asks[-1]
        return None

    def find_booking(self, uid: str) -> Booking | None:
        """The session with this calendar UID, current or withdrawn."""
        return next((b for b in [*self.bookings, *self.withdrawn] if b.uid == uid), None)

    def note(self, at: datetime, what: str, reason: str = "") -> None:
        self.history.append(Event(at=at, what=what, reason=reason))

    def move(self, to: State, at: datetime, reason: str) -> None:
        """Change state; the only way a request's state changes."""
        if to not in TRANSITIONS[self.state]:
            raise ValueError(f"{self.ref}: cannot go from {self.state} to {to} ({reason})")
        what = f"{self.state.value} -> {to.value}" if to is not self.state else f"stays {to.value}"
        self.history.append(Event(at=at, what=what, reason=reason, state=to))
        self.state = to
        if not self.is_open:
            self.timer = None


@dataclass
class Outgoing:
    """A message ready to leave, recorded in the outbox before it is delivered."""

    message_id: str
    ref: str | None
    purpose: str
    recipients: list[str]
    raw: bytes
    auto_reply_to: str | None = None  # the sender this message answers automatically

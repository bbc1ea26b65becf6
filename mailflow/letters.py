"""The messages the workflow sends, one method each: deciding is in workflow.py, doing is here.

Each method gathers what its template needs, builds any calendar parts, and returns
the `Outgoing` messages (recorded on the request by `Messages.build`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .config import Config
from .directory import Mentor
from .incoming import Incoming
from .invite import Attendee, CalendarPart, build_invite
from .messages import PAIR, Messages
from .model import Booking, Budget, Outgoing, Person, Problem, Request, Role
from .render import local_time

SESSION_LABELS = {"call": "Conversation", "shadowing": "Shadowing", "debrief": "Debrief"}
MENTOR_CHOICES = [
    ("accept", "yes, with the time budget asked for"),
    ("accept 45 minutes", "yes, with the time you name"),
    ("decline", "not this time"),
]
COORDINATOR_CHOICES = [
    ("assign someone@example.org", "ask that mentor now"),
    ("retry", "run the rules again"),
    ("cancel", "close the request and tell the protégé"),
]


class Letters:
    def __init__(self, config: Config, messages: Messages) -> None:
        self.config = config
        self.messages = messages
        self.coordinator = Person(config.programme.coordinator, "Programme coordinator")

    # -- to the protégé ----------------------------------------------------------------
    def completion_request(
        self,
        request: Request,
        problems: list[Problem],
        max_budget: timedelta,
        now: datetime,
        answering: Incoming | None,
    ) -> Outgoing:
        return self.messages.build(
            template="incomplete",
            purpose="completion request",
            to=[request.protege],
            now=now,
            request=request,
            reply_role=Role.PROTEGE,
            answering=answering,
            context={
                "problems": [{"field": p.field, "message": p.message} for p in problems],
                "example": self._example(request),
                "max_budget": hours(max_budget),
            },
        )

    def _example(self, request: Request) -> dict[str, str]:
        """A filled-in form, keeping what the protégé already gave right."""
        form = request.form
        budget_ok = form.budget and not any(p.field == "Time budget" for p in request.problems)
        return {
            "topic": form.topic or "Launching a teen advisory council",
            "budget": (form.budget_text or "") if budget_ok else "one 45-minute conversation",
            "format": form.format or self.config.programme.default_format,
            "skills": ", ".join(form.skills) or "teen services, youth development",
            "goal": form.goal or "a plan for the council's first meeting",
            "availability": form.availability_text or "Tue/Thu 2-5pm",
            "time_zone": form.time_zone or self.config.programme.time_zone,
        }

    def acknowledgement(self, request: Request, now: datetime, answering: Incoming | None) -> Outgoing:
        return self.messages.build(
            template="acknowledgement",
            purpose="acknowledgement",
            to=[request.protege],
            now=now,
            request=request,
            reply_role=Role.PROTEGE,
            answering=answering,
        )

    # -- to mentors --------------------------------------------------------------------
    def ask(
        self, request: Request, mentor: Mentor, reasons: list[str], due: datetime, now: datetime
    ) -> Outgoing:
        return self.messages.build(
            template="ask",
            purpose="ask",
            to=[person(mentor)],
            now=now,
            request=request,
            reply_role=Role.MENTOR,
            context={
                "mentor": mentor_context(mentor),
                "reasons": reasons,
                "due": local_time(due, mentor.time_zone),
            },
        )

    def withdrawal(
        self, request: Request, mentor: Mentor, why: str, due: datetime, now: datetime
    ) -> Outgoing:
        return self.messages.build(
            template="withdrawn",
            purpose="withdrawal",
            to=[person(mentor)],
            now=now,
            request=request,
            reply_role=Role.MENTOR,
            context={
                "mentor": mentor_context(mentor),
                "reason": why,
                "due": local_time(due, mentor.time_zone),
            },
        )

    def clarification(
        self,
        request: Request,
        role: Role,
        recipient: Person,
        problem: str,
        now: datetime,
        answering: Incoming,
    ) -> Outgoing:
        return self.messages.build(
            template="clarify",
            purpose="clarification",
            to=[recipient],
            now=now,
            request=request,
            reply_role=role,
            answering=answering,
            context={
                "recipient": {"name": recipient.name or recipient.email, "email": recipient.email},
                "choices": MENTOR_CHOICES if role is Role.MENTOR else COORDINATOR_CHOICES,
                "problem": problem,
            },
        )

    # -- to both -----------------------------------------------------------------------
    def introduction(
        self, request: Request, mentor: Mentor, agreed: Budget, no_slot: str, now: datetime
    ) -> list[Outgoing]:
        """The introduction (with the first session's invite), then one invite per further session."""
        zone = self.protege_zone(request)
        sessions = [self.session_context(request, mentor, b, zone) for b in request.bookings]
        context = {
            "mentor": mentor_context(mentor),
            "agreed": agreed.describe(),
            "sessions": sessions,
            "no_slot": no_slot,
            "where": where(mentor, request),
        }
        pair = [request.protege, person(mentor)]
        cc = [self.coordinator] if self.config.programme.cc_coordinator else []
        first = (
            [self.calendar(request, mentor, request.bookings[0], "REQUEST", now)] if request.bookings else []
        )
        sent = [
            self.messages.build(
                template="introduction",
                purpose="introduction",
                to=pair,
                cc=cc,
                now=now,
                request=request,
                reply_role=PAIR,
                calendars=first,
                context=context,
            )
        ]
        for number, booking in enumerate(request.bookings[1:], start=1):
            sent.append(
                self.messages.build(
                    template="session_invite",
                    purpose=f"invite for session {number + 1}",
                    to=pair,
                    now=now,
                    request=request,
                    reply_role=PAIR,
                    calendars=[self.calendar(request, mentor, booking, "REQUEST", now)],
                    context={**context, "session": sessions[number]},
                )
            )
        return sent

    def rescheduled(
        self,
        request: Request,
        mentor: Mentor,
        moved: list[Booking],
        requester: Person,
        reason: str,
        now: datetime,
        *,
        new: bool,
    ) -> list[Outgoing]:
        """One update per moved session: METHOD:REQUEST, same UID, SEQUENCE + 1 (RFC 5546 2.1.4);
        `new` when no time had been found before, so these are first invitations."""
        zone = self.protege_zone(request)
        sent = []
        for index, booking in enumerate(moved):
            session = self.session_context(request, mentor, booking, zone)
            sent.append(
                self.messages.build(
                    template="session_moved",
                    purpose=f"new time for session {session['number']}",
                    to=[request.protege, person(mentor)],
                    now=now,
                    request=request,
                    reply_role=PAIR,
                    calendars=[self.calendar(request, mentor, booking, "REQUEST", now)],
                    context={
                        "mentor": mentor_context(mentor),
                        "session": session,
                        "by": requester.name or requester.email,
                        "reason": reason,
                        "first": index == 0,
                        "new": new,
                        "where": where(mentor, request),
                    },
                )
            )
        return sent

    def reschedule_failed(
        self, request: Request, mentor: Mentor, requester: Person, reason: str, problem: str, now: datetime
    ) -> Outgoing:
        zone = self.protege_zone(request)
        return self.messages.build(
            template="reschedule_failed",
            purpose="no new time found",
            to=[request.protege, person(mentor)],
            cc=[self.coordinator],
            now=now,
            request=request,
            reply_role=PAIR,
            context={
                "mentor": mentor_context(mentor),
                "by": requester.name or requester.email,
                "reason": reason,
                "problem": problem,
                "sessions": [
                    self.session_context(request, mentor, b, zone)
                    for b in request.bookings
                    if b.status == "confirmed" and b.start > now
                ],
            },
        )

    def mentor_declined(
        self,
        request: Request,
        mentor: Mentor | None,
        comment: str,
        withdrawn: list[Booking],
        next_step: str,
        now: datetime,
    ) -> list[Outgoing]:
        """The mentor declined the invitation: each party is told, and every session is
        withdrawn (METHOD:CANCEL; the first rides with the note, the rest follow)."""
        sent = []
        parties = [(request.protege, Role.PROTEGE)]
        if request.mentor is not None:
            parties.append((request.mentor, Role.MENTOR))
        for party, role in parties:
            sent.append(
                self.messages.build(
                    template="mentor_declined",
                    purpose="mentor declined the invitation",
                    to=[party],
                    now=now,
                    request=request,
                    reply_role=role,
                    calendars=[self.calendar(request, mentor, b, "CANCEL", now) for b in withdrawn[:1]],
                    context={
                        "greeting": party.name,
                        "to_mentor": role is Role.MENTOR,
                        "comment": comment,
                        "next_step": next_step,
                        "withdrawn_sessions": len(withdrawn),
                    },
                )
            )
            sent.extend(self._further_cancellations(request, mentor, party, role, withdrawn[1:], now))
        return sent

    def _further_cancellations(
        self,
        request: Request,
        mentor: Mentor | None,
        party: Person,
        role: Role,
        bookings: list[Booking],
        now: datetime,
    ) -> list[Outgoing]:
        """One METHOD:CANCEL message per withdrawn session after the first (iTIP: one UID
        per message); the first rides with the note that explains why."""
        zone = self.protege_zone(request)
        return [
            self.messages.build(
                template="session_cancelled",
                purpose="session cancellation",
                to=[party],
                now=now,
                request=request,
                reply_role=role,
                calendars=[self.calendar(request, mentor, booking, "CANCEL", now)],
                context={
                    "greeting": party.name,
                    "session": self.session_context(request, mentor, booking, zone),
                },
            )
            for booking in bookings
        ]

    def reflection(self, request: Request, role: Role, now: datetime, *, reminder: bool) -> Outgoing:
        mentor = request.mentor or Person("")
        recipient, other = (request.protege, mentor) if role is Role.PROTEGE else (mentor, request.protege)
        template = "reflection_reminder" if reminder else "reflection"
        return self.messages.build(
            template=template,
            purpose=template.replace("_", " "),
            to=[recipient],
            now=now,
            request=request,
            reply_role=role,
            context={
                "recipient": {"name": recipient.name, "email": recipient.email},
                "other": {"name": other.name, "email": other.email},
            },
        )

    def cancellation(
        self,
        request: Request,
        mentor: Mentor | None,
        canceller: Person,
        reason: str,
        withdrawn: list[Booking],
        now: datetime,
        answering: Incoming | None,
    ) -> list[Outgoing]:
        """A note to each party; the first withdrawn session's CANCEL rides with it, the rest
        follow one message each (iTIP allows one UID per message)."""
        sent = []
        recipients = [request.protege] + ([request.mentor] if request.mentor else [])
        for party in recipients:
            role = Role.PROTEGE if party is request.protege else Role.MENTOR
            sent.append(
                self.messages.build(
                    template="cancelled",
                    purpose="cancellation",
                    to=[party],
                    now=now,
                    request=request,
                    reply_role=role,
                    answering=answering,
                    calendars=[self.calendar(request, mentor, b, "CANCEL", now) for b in withdrawn[:1]],
                    context={
                        "greeting": party.name,
                        "canceller": canceller.name,
                        "by_recipient": party.email == canceller.email,
                        "reason": reason,
                        "withdrawn_sessions": len(withdrawn),
                    },
                )
            )
            sent.extend(self._further_cancellations(request, mentor, party, role, withdrawn[1:], now))
        return sent

    # -- to the coordinator ------------------------------------------------------------
    def escalation(self, request: Request, why: str, now: datetime) -> Outgoing:
        decision = request.decision
        asked = [f"{a.mentor}: {a.outcome}" + (f" ({a.reason})" if a.reason else "") for a in request.asks]
        rejected = [f"{r.name} <{r.email}>: {r.reason}" for r in decision.rejected] if decision else []
        if decision is not None and decision.also_qualified:
            rejected.append(
                f"{', '.join(decision.also_qualified)}: ranked below the first "
                f"{decision.policy.max_candidates} (max_candidates)"
            )
        return self.messages.build(
            template="escalation",
            purpose="escalation",
            to=[self.coordinator],
            now=now,
            request=request,
            reply_role=Role.COORDINATOR,
            context={
                "why": why,
                "rule": decision.rule if decision else None,
                "asked": asked,
                "rejected": rejected,
            },
        )

    def coordinator_note(
        self, request: Request, headline: str, details: list[str], now: datetime
    ) -> Outgoing:
        return self.messages.build(
            template="coordinator_note",
            purpose="coordinator note",
            to=[self.coordinator],
            now=now,
            request=request,
            reply_role=Role.COORDINATOR,
            context={"headline": headline, "details": details},
        )

    def needs_attention(
        self, incoming: Incoming, reason: str, advice: str, now: datetime, request: Request | None
    ) -> Outgoing:
        return self.messages.build(
            template="needs_attention",
            purpose="needs-attention note",
            to=[self.coordinator],
            now=now,
            request=request,
            context={
                "ref": request.ref if request else "",
                "headline": reason[:80],
                "sender": incoming.sender.display() or "(no sender)",
                "subject": incoming.subject or "(no subject)",
                "message_id": incoming.message_id,
                "reason": reason,
                "advice": advice,
            },
        )

    def too_large(self, incoming: Incoming, size: str, limit: str, now: datetime) -> Outgoing:
        return self.messages.build(
            template="too_large",
            purpose="too large",
            to=[incoming.sender],
            now=now,
            answering=incoming,
            context={"subject": incoming.subject or "(no subject)", "size": size, "limit": limit},
        )

    # -- sessions and calendars --------------------------------------------------------
    def protege_zone(self, request: Request) -> str:
        return request.form.time_zone or self.config.programme.time_zone

    def session_context(
        self, request: Request, mentor: Mentor | None, booking: Booking, protege_zone: str
    ) -> dict[str, object]:
        mentor_zone = mentor.time_zone if mentor else protege_zone
        return {
            "number": request.bookings.index(booking) + 1 if booking in request.bookings else 1,
            "count": len(request.bookings),
            "label": SESSION_LABELS.get(booking.kind, booking.kind.title()),
            "minutes": int((booking.end - booking.start).total_seconds() // 60),
            "protege_time": local_time(booking.start, protege_zone),
            "mentor_time": local_time(booking.start, mentor_zone),
            "protege_name": request.protege.name,
            "mentor_name": mentor.name if mentor else "",
            "start": booking.start,
            "end": booking.end,
        }

    def session_summary(self, request: Request, booking: Booking) -> str:
        """The SUMMARY: the topic, which session, and the reference (clients put the SUMMARY
        in their answers' subjects, `Accepted: …`, so the reference comes back)."""
        count = len(request.bookings)
        number = request.bookings.index(booking) + 1 if booking in request.bookings else 1
        label = SESSION_LABELS.get(booking.kind, booking.kind.title())
        which = f" ({label.lower()}, {number} of {count})" if count > 1 else ""
        return f"Micro mentoring: {request.form.topic}{which} [{request.ref}]"

    def calendar(
        self, request: Request, mentor: Mentor | None, booking: Booking, method: str, now: datetime
    ) -> CalendarPart:
        form = request.form
        programme = self.config.programme
        label = SESSION_LABELS.get(booking.kind, booking.kind.title())
        summary = self.session_summary(request, booking)
        mentor_name = request.mentor.name if request.mentor else ""
        lines = [
            f"{programme.name}, reference {request.ref}.",
            f"{label} between {request.protege.name} and {mentor_name}.",
        ]
        if form.goal:
            lines.append(f"Goal: {form.goal}")
        if form.questions:
            lines.append("Questions:")
            lines.extend(f"- {q}" for q in form.questions)
        video = (form.format or programme.default_format) == "video"
        if mentor and mentor.video_link and video:
            lines.append(f"Video link: {mentor.video_link}")
        lines.append(
            "Recording: both must agree before anything is recorded."
            if form.recording
            else "Recording: this session is not recorded."
        )
        lines.append(
            "To move it, reply 'reschedule' to the introduction email; to call it off, reply 'cancel'."
        )
        attendees = [Attendee(request.protege.email, request.protege.name)]
        if request.mentor:
            attendees.append(Attendee(request.mentor.email, request.mentor.name))
        return build_invite(
            method=method,
            uid=booking.uid,
            sequence=booking.sequence,
            start=booking.start,
            end=booking.end,
            stamp=now,
            summary=summary,
            description="\n".join(lines),
            organizer=Attendee(programme.address, programme.name),
            attendees=attendees,
            location=where(mentor, request),
            url=mentor.video_link if mentor and video else "",
        )


def hours(delta: timedelta) -> str:
    """`timedelta(hours=6)` -> `6 hours`; `timedelta(minutes=90)` -> `90 minutes`."""
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} hours" if minutes % 60 == 0 else f"{minutes} minutes"


def person(mentor: Mentor) -> Person:
    return Person(mentor.email, mentor.name, mentor.library)


def mentor_context(mentor: Mentor) -> dict[str, str]:
    return {
        "name": mentor.name,
        "email": mentor.email,
        "library": mentor.library,
        "video_link": mentor.video_link,
        "location": mentor.location,
        "phone": mentor.phone,
        "time_zone": mentor.time_zone,
    }


def where(mentor: Mentor | None, request: Request) -> str:
    """Where a session happens, by format: the video link, the phone, or the place."""
    if mentor is None:
        return ""
    kind = request.form.format or "video"
    if kind == "video":
        return (
            f"video call: {mentor.video_link}"
            if mentor.video_link
            else "video call (the mentor will send a link)"
        )
    if kind == "phone":
        return f"phone: {mentor.phone}" if mentor.phone else "phone (numbers to be exchanged)"
    return mentor.location or mentor.library or "to be agreed"

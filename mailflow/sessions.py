"""Deciding about the sessions of an introduced pair: reschedules and calendar answers.

Part of the request's state machine (workflow.py), in its own module because it is
its own subject. workflow.py hands over:

    `reschedule` from the protégé, the mentor or the coordinator   -> reschedule
    an iTIP REPLY (route.py: Kind.CALENDAR)                         -> calendar_answer
    `Accepted: …` with no calendar part                             -> the same, by SUMMARY
    the mentor's DECLINED   -> the rule's `on_mentor_decline`: workflow asks the next
                               candidate ("rematch", the default) or escalates

Like the workflow, it changes only the request it is given and returns its decisions
as `Effects`; letters.py writes the messages, scheduling.py finds the times.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from .authresults import dmarc_result
from .config import Config
from .directory import Mentor
from .incoming import Incoming
from .invite import Interval
from .letters import Letters
from .messages import Effects
from .model import Booking, Budget, Person, Policy, Request, Role, SessionSpec, State, Timer, TimerKind
from .replies import is_reschedule, reschedule_reason
from .rsvp import CalendarAnswer, Rsvp, subject_answer
from .scheduling import Planner

MAX_RESCHEDULES = 3  # then the coordinator arranges the time by hand


class Park(Protocol):
    def __call__(
        self,
        fx: Effects,
        incoming: Incoming,
        now: datetime,
        *,
        reason: str,
        advice: str,
        request: Request | None = None,
    ) -> Effects: ...


class Reopen(Protocol):
    def __call__(self, request: Request, fx: Effects, now: datetime, why: str, *, escalate: bool) -> None: ...


class Sessions:
    def __init__(
        self,
        *,
        config: Config,
        letters: Letters,
        planner: Planner,
        mentors: dict[str, Mentor],
        coordinator: Person,
        policy: Callable[[Request], Policy],
        park: Park,
        reopen: Reopen,
    ) -> None:
        self.config = config
        self.letters = letters
        self.planner = planner
        self.mentors = mentors
        self.coordinator = coordinator
        self._policy = policy
        self._park = park
        self._reopen = reopen

    def reflection_timer(self, request: Request, now: datetime) -> None:
        """Reflections are asked `reflection_delay` after the last session ends."""
        live = [b for b in request.bookings if b.status == "confirmed"]
        last_end = live[-1].end if live else now + self.config.scheduling.horizon
        request.timer = Timer(TimerKind.REFLECTION_DUE, last_end + self._policy(request).reflection_delay)

    def after_introduction(
        self, request: Request, role: Role, incoming: Incoming, fx: Effects, now: datetime
    ) -> None:
        """A protégé or the matched mentor writes after the introduction."""
        answered = subject_answer(incoming.subject)
        if is_reschedule(incoming.text):
            self.reschedule(request, role, incoming, fx, now)
        elif answered is not None:
            self._subject_only_answer(request, answered, incoming, fx, now)
        else:
            _conversation(request, fx)

    # -- reschedule ----------------------------------------------------------------------
    def reschedule(self, request: Request, by: Role, incoming: Incoming, fx: Effects, now: datetime) -> None:
        """Move every session that has not started to the next common time: the same UIDs,
        SEQUENCE + 1, sent as METHOD:REQUEST updates (RFC 5546 2.1.4, 3.2.2)."""
        requester = {
            Role.PROTEGE: request.protege,
            Role.MENTOR: request.mentor,
            Role.COORDINATOR: self.coordinator,
        }[by] or request.protege
        reason = reschedule_reason(incoming.text)
        mentor = self.mentors.get(request.mentor.email) if request.mentor else None
        live = [b for b in request.bookings if b.status == "confirmed"]
        ahead = [b for b in live if b.start > now]
        held = [b for b in live if b.start <= now]
        problem = ""
        if mentor is None:
            problem = "the mentor is no longer in the directory"
        elif request.reschedules >= MAX_RESCHEDULES:
            problem = f"{request.ref} was already rescheduled {request.reschedules} times"
        elif live and not ahead:
            problem = f"every session of {request.ref} has already started"
        elif request.agreed is None:
            problem = f"{request.ref} has no agreed time budget"
        if problem or mentor is None or request.agreed is None:
            self._park(
                fx,
                incoming,
                now,
                request=request,
                reason=f"the {by.value} asked to reschedule, but {problem}",
                advice="Please agree a time with them yourself.",
            )
            return
        budget = (
            Budget(
                tuple(SessionSpec(b.kind, _minutes(b)) for b in ahead),
                request.agreed.span_days if not held else None,
            )
            if ahead
            else request.agreed  # no time was found at the introduction: look again
        )
        gap = self.config.scheduling.debrief_after if held and held[-1].kind == "shadowing" else timedelta(0)
        planned = self.planner.plan(
            request,
            mentor,
            budget,
            now,
            avoid=self._days_tried(request, ahead, mentor),
            moving=True,
            not_before=held[-1].start + gap if held else None,
        )
        request.reschedules += 1
        asked = f"asked by the {by.value}" + (f" ({reason})" if reason else "")
        if planned.problem:
            request.note(
                now, "reschedule: no new time", f"{asked}: {planned.problem}; the sessions stay as they are"
            )
            fx.outgoing.append(
                self.letters.reschedule_failed(request, mentor, requester, reason, planned.problem, now)
            )
            fx.outcome = f"reschedule of {request.ref}: no new time found"
            return
        if ahead:
            for booking, session in zip(ahead, planned.sessions, strict=True):
                booking.earlier.append(booking.start)
                booking.start, booking.end = session.start, session.end
                booking.sequence += 1
                booking.rsvp, booking.rsvp_at = {}, {}  # a new time needs a new answer
            moved = ahead
        else:
            moved = request.bookings = self.planner.bookings(request, planned.sessions, now)
        fx.unbook.append((request.ref, now))
        book(request, mentor, moved, fx)
        request.note(now, "rescheduled", f"{asked}; new times: {describe_times(moved)}")
        for note in planned.notes:
            request.note(now, "planning", note)
        self.reflection_timer(request, now)
        fx.outgoing.extend(
            self.letters.rescheduled(request, mentor, moved, requester, reason, now, new=not ahead)
        )
        fx.outcome = f"{request.ref} rescheduled by the {by.value}"

    def _days_tried(self, request: Request, ahead: list[Booking], mentor: Mentor) -> list[Interval]:
        """A reschedule moves a session to another day: not the day it is on now, nor any day
        it was on before (in either person's zone), so two people cannot ping-pong between two times."""
        zones = {ZoneInfo(mentor.time_zone), ZoneInfo(self.planner.protege_zone(request))}
        days = []
        for booking in ahead:
            for start in [*booking.earlier, booking.start]:
                for zone in zones:
                    local = start.astimezone(zone)
                    midnight = datetime.combine(local.date(), time(0), tzinfo=zone)
                    days.append(
                        (midnight, datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone))
                    )
        return days

    # -- calendar answers (iTIP REPLY) ---------------------------------------------------
    def calendar_answer(
        self, request: Request, answer: CalendarAnswer, incoming: Incoming, now: datetime
    ) -> Effects:
        """A calendar answered a session invitation (RFC 5546 3.2.3): record it, then act on it."""
        fx = Effects()
        if not request.is_open:
            fx.log.append(
                (
                    "late calendar answer",
                    f"{incoming.message_id} from {incoming.sender.email}: {request.ref} is already "
                    f"{request.state.value}; filed",
                )
            )
            fx.outcome = f"calendar answer for {request.ref}, which is {request.state.value}: filed"
            return fx
        fx.save(request)
        if incoming.message_id not in request.message_ids:
            request.message_ids.append(incoming.message_id)
        security = self.config.security
        if security.require_dmarc:
            verdict = dmarc_result(incoming.message, security.authserv_id)
            if verdict != "pass":
                return self._park(
                    fx,
                    incoming,
                    now,
                    request=request,
                    reason=f"a calendar answer from {incoming.sender.email} without a DMARC pass ({verdict})",
                    advice="Nothing was recorded; please check it.",
                )
        if answer.method != "REPLY":
            what = (
                "proposes another time (iTIP COUNTER)"
                if answer.method == "COUNTER"
                else f"sent {answer.method}"
            )
            return self._park(
                fx,
                incoming,
                now,
                request=request,
                reason=f"{incoming.sender.email} {what} from {answer.client}; mailflow only reads answers",
                advice=f"To move the sessions, reply 'reschedule' to a note about {request.ref}.",
            )
        if not answer.rsvps:
            return self._park(
                fx,
                incoming,
                now,
                request=request,
                reason=f"a calendar reply from {answer.client} with no answer in it "
                "(no ATTENDEE with a PARTSTAT)",
                advice="Please read it; nothing was recorded.",
            )
        for rsvp in answer.rsvps:
            problem = self._rsvp(request, rsvp, answer.client, incoming, fx, now)
            if problem:
                return self._park(
                    fx,
                    incoming,
                    now,
                    request=request,
                    reason=problem,
                    advice="Nothing was recorded; please check it.",
                )
        return fx

    def _subject_only_answer(
        self, request: Request, answered: tuple[str, str], incoming: Incoming, fx: Effects, now: datetime
    ) -> None:
        """`Accepted: <summary>` with no calendar part: the session is the one whose SUMMARY
        the subject names (or the only one ahead); never a guess."""
        partstat, rest = answered
        ahead = [b for b in request.bookings if b.status == "confirmed" and b.end > now]
        named = [
            b for b in ahead if _squash(rest).startswith(_squash(self.letters.session_summary(request, b)))
        ]
        found = named if len(named) == 1 else (ahead if len(ahead) == 1 else [])
        if not found:
            self._park(
                fx,
                incoming,
                now,
                request=request,
                reason=f"a calendar answer ({partstat}) without its calendar part, "
                f"for no one session of {request.ref}",
                advice="Please ask them which session they meant.",
            )
            return
        booking = found[0]
        rsvp = Rsvp(
            uid=booking.uid, attendee=incoming.sender.email, partstat=partstat, sequence=booking.sequence
        )
        problem = self._rsvp(request, rsvp, "the subject line (no calendar part)", incoming, fx, now)
        if problem:
            self._park(fx, incoming, now, request=request, reason=problem, advice="Nothing was recorded.")

    def _rsvp(
        self, request: Request, rsvp: Rsvp, client: str, incoming: Incoming, fx: Effects, now: datetime
    ) -> str:
        """Record one answer on its session and act on it; a problem to park it for, or ""."""
        booking = request.find_booking(rsvp.uid)
        if booking is None:
            return f"a calendar answer for a session {request.ref} does not have (UID {rsvp.uid})"
        roles = {request.protege.email: Role.PROTEGE}
        if request.mentor:
            roles[request.mentor.email] = Role.MENTOR
        role = roles.get(rsvp.attendee)
        session = f"session {_number(request, booking)} ({booking.start:%Y-%m-%d %H:%M} UTC)"
        if booking.status == "cancelled":
            request.note(
                now, "calendar answer ignored", f"{rsvp.attendee} {rsvp.partstat} the withdrawn {session}"
            )
            fx.outcome = f"calendar answer for a withdrawn session of {request.ref}, no action"
            return ""
        if role is None and rsvp.attendee == self.coordinator.email.lower():
            # The coordinator, copied on the introduction, put the session in their own calendar.
            request.note(
                now, "calendar answer ignored", f"the coordinator's calendar {rsvp.partstat} {session}"
            )
            fx.outcome = f"the coordinator's calendar answered a session of {request.ref}, no action"
            return ""
        if role is None:
            return f"{rsvp.attendee} answered {session} of {request.ref}, but is not one of its attendees"
        if incoming.sender.email != rsvp.attendee:  # RFC 6047 section 3: the attendee answers for themself
            return (
                f"{incoming.sender.email} sent a calendar answer on behalf of {rsvp.attendee} "
                f"for {request.ref}"
            )
        if rsvp.sequence < booking.sequence:
            request.note(
                now,
                "calendar answer ignored",
                f"the {role.value} answered an earlier version of {session} "
                f"(SEQUENCE {rsvp.sequence}, now {booking.sequence}): {rsvp.partstat}",
            )
            fx.outcome = f"calendar answer to an earlier version of a session of {request.ref}, no action"
            return ""
        stamp = rsvp.stamp or now
        earlier = booking.rsvp_at.get(rsvp.attendee)
        if earlier is not None and stamp < earlier:
            request.note(
                now,
                "calendar answer ignored",
                f"the {role.value}'s answer of {stamp:%Y-%m-%d %H:%M} is older",
            )
            return ""
        before = booking.rsvp.get(rsvp.attendee)
        booking.rsvp[rsvp.attendee] = rsvp.partstat
        booking.rsvp_at[rsvp.attendee] = stamp
        request.note(
            now,
            f"calendar answer from the {role.value}",
            f"{rsvp.partstat} {session}, from {client}" + (f": {rsvp.comment}" if rsvp.comment else ""),
        )
        fx.outcome = f"calendar answer for {request.ref}: the {role.value} {rsvp.partstat}"
        if before == rsvp.partstat:
            return ""
        name = (
            request.protege.name if role is Role.PROTEGE else request.mentor.name if request.mentor else ""
        ) or rsvp.attendee
        if rsvp.partstat == "DECLINED" and role is Role.MENTOR:
            self._mentor_declined(request, booking, rsvp, fx, now)
        elif rsvp.partstat in ("DECLINED", "DELEGATED"):
            verb = (
                "declined"
                if rsvp.partstat == "DECLINED"
                else f"delegated to {', '.join(rsvp.delegated_to) or 'someone else'}"
            )
            fx.outgoing.append(
                self.letters.coordinator_note(
                    request,
                    f"{name} {verb} the calendar invitation for {session}",
                    [
                        *([f"Their note: {rsvp.comment}"] if rsvp.comment else []),
                        "Reply 'reschedule' to find another time for both, or 'cancel' to close the request.",
                    ],
                    now,
                )
            )
        return ""

    def _mentor_declined(
        self, request: Request, booking: Booking, rsvp: Rsvp, fx: Effects, now: datetime
    ) -> None:
        """The matched mentor declined the invitation: the rule's `on_mentor_decline` decides."""
        assert request.mentor is not None
        mentor_email = request.mentor.email
        live = [b for b in request.bookings if b.status == "confirmed"]
        if request.state is not State.INTRODUCED or any(b.start <= now for b in live):
            fx.outgoing.append(
                self.letters.coordinator_note(
                    request,
                    f"{request.mentor.name} declined the calendar invitation "
                    f"for session {_number(request, booking)}",
                    [
                        *([f"Their note: {rsvp.comment}"] if rsvp.comment else []),
                        "A session has already taken place, so mailflow changed nothing.",
                        "Reply 'reschedule' to find another time, or 'cancel' to close the request.",
                    ],
                    now,
                )
            )
            return
        action = self._policy(request).on_mentor_decline
        for session in live:
            session.sequence += 1
            session.status = "cancelled"
        fx.unbook.append((request.ref, None))
        ask = next((a for a in reversed(request.asks) if a.mentor == mentor_email), None)
        if ask is not None:
            ask.outcome, ask.answered_at = "declined", now
            ask.reason = "declined the calendar invitation" + (f": {rsvp.comment}" if rsvp.comment else "")
        fx.outgoing.extend(
            self.letters.mentor_declined(
                request, self.mentors.get(mentor_email), rsvp.comment, live, action, now
            )
        )
        request.withdrawn.extend(request.bookings)
        request.bookings, request.mentor, request.agreed, request.timer = [], None, None, None
        why = f"{mentor_email} declined the calendar invitation"
        if action == "escalate":
            self._reopen(request, fx, now, f"{why} (on_mentor_decline = escalate)", escalate=True)
        else:
            self._reopen(request, fx, now, why, escalate=False)


def book(request: Request, mentor: Mentor, bookings: list[Booking], fx: Effects) -> None:
    """Record sessions in the mentor's ledger, so nobody is double-booked."""
    for booking in bookings:
        fx.bookings.append((request.ref, mentor.email, booking.start, _minutes(booking)))


def _conversation(request: Request, fx: Effects) -> None:
    fx.log.append(
        (
            "no action",
            f"{request.ref}: a message between the pair after the introduction; nothing for mailflow to do",
        )
    )
    fx.outcome = f"conversation copy for {request.ref}, no action"


def _minutes(booking: Booking) -> int:
    return int((booking.end - booking.start).total_seconds() // 60)


def describe_times(bookings: list[Booking]) -> str:
    return "; ".join(f"{b.kind} {b.start:%Y-%m-%d %H:%M} UTC" for b in bookings)


def _number(request: Request, booking: Booking) -> int:
    group = request.bookings if booking in request.bookings else request.withdrawn
    return group.index(booking) + 1 if booking in group else 1


def _squash(text: str) -> str:
    return " ".join(text.lower().split())

"""The request's workflow: every event (a new request, a reply, a timer) -> `Effects`.

    received ─▶ incomplete ⇄ (protégé completes by reply)
        │
        ▼ acknowledged
    matching ─(no candidate / all asked)─▶ escalated ─(coordinator: assign | retry)─▶ asking
        ▼
    asking ─(decline | cancel | time-out)─▶ next candidate
        │ accept [counter-offer]
        ▼
    introduced ─(last session + reflection_delay)─▶ reflecting ─(both answered | reminder ran out)─▶ closed
    any open state ─(cancel by protégé, mentor after accepting, or coordinator)─▶ cancelled

Handlers never write to the store: they read from it, change a copy of the request
through `Request.move` (which records the reason), and return `Effects` that the
engine commits only when the whole event was handled. Timers enter here exactly like
mail does, so what happens next is decided in one place.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .availability import parse_availability
from .config import Config
from .directory import Mentor, by_email
from .form import merge, parse_form, required_problems
from .incoming import Incoming
from .invite import Attendee, CalendarPart, build_invite
from .match import MatchContext, match
from .messages import PAIR, Effects, Messages
from .model import (
    Ask,
    Booking,
    Budget,
    Person,
    Problem,
    Reflection,
    Request,
    Role,
    State,
    Timer,
    TimerKind,
)
from .render import local_time
from .replies import Intent, is_cancel, read_answer, read_reflection
from .route import Route
from .rules import Ruleset
from .slots import SlotSettings, plan_sessions
from .store import Store
from .tokens import new_ref

MAX_COMPLETION_ROUNDS = 3
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


class Workflow:
    def __init__(self, *, config: Config, ruleset: Ruleset, messages: Messages, store: Store) -> None:
        self.config = config
        self.ruleset = ruleset
        self.messages = messages
        self.store = store
        self.mentors = by_email(ruleset.mentors)
        self.coordinator = Person(config.programme.coordinator, "Programme coordinator")

    # -- new requests --------------------------------------------------------------
    def new_request(self, incoming: Incoming, now: datetime) -> Effects:
        fx = Effects()
        ref = new_ref(self.store.ref_taken)
        name = incoming.sender.name or incoming.sender.email.split("@")[0]
        request = Request(ref=ref, protege=Person(incoming.sender.email, name), created=now)
        request.message_ids.append(incoming.message_id)
        request.note(now, "received request", f"{incoming.message_id} from {incoming.sender.email}")
        text = incoming.text if _has_fields(incoming.text) else incoming.full_text
        parsed = parse_form(
            text,
            max_budget=self.ruleset.defaults.max_budget,
            shadowing_minutes=self.config.scheduling.shadowing_minutes,
        )
        request.form = parsed.form
        self._fill_identity(request)
        problems = required_problems(parsed.form) + parsed.problems
        if problems:
            self._ask_to_complete(request, problems, fx, now, incoming)
        else:
            self._accept_request(request, fx, now, incoming)
        fx.outcome = f"new request {ref} ({request.state.value})"
        fx.save(request)
        return fx

    def _fill_identity(self, request: Request) -> None:
        form = request.form
        if form.name:
            request.protege.name = form.name
        known = self.mentors.get(request.protege.email)
        request.protege.library = form.library or (known.library if known else "")

    def _ask_to_complete(
        self,
        request: Request,
        problems: list[Problem],
        fx: Effects,
        now: datetime,
        incoming: Incoming | None,
    ) -> None:
        request.problems = problems
        rounds = sum(1 for e in request.history if e.what == "sent completion request")
        fields = ", ".join(p.field for p in problems)
        if rounds >= MAX_COMPLETION_ROUNDS and incoming is not None:
            request.move(State.INCOMPLETE, now, f"still incomplete after {rounds} replies: {fields}")
            self.park(
                fx,
                incoming,
                now,
                request=request,
                reason=f"the request is still incomplete after {rounds} rounds ({fields})",
                advice="Please write to the protégé yourself; the request stays open.",
            )
            return
        request.move(State.INCOMPLETE, now, f"missing or unclear: {fields}")
        example = self._example(request)
        fx.outgoing.append(
            self.messages.build(
                template="incomplete",
                purpose="completion request",
                to=[request.protege],
                now=now,
                request=request,
                reply_role=Role.PROTEGE,
                answering=incoming,
                context={
                    "problems": [{"field": p.field, "message": p.message} for p in problems],
                    "example": example,
                    "max_budget": _hours(self.ruleset.defaults.max_budget),
                },
            )
        )

    def _example(self, request: Request) -> dict[str, str]:
        form = request.form
        return {
            "topic": form.topic or "Launching a teen advisory council",
            "budget": (form.budget_text or "")
            if form.budget and not any(p.field == "Time budget" for p in request.problems)
            else "one 45-minute conversation",
            "format": form.format or self.config.programme.default_format,
            "skills": ", ".join(form.skills) or "teen services, youth development",
            "goal": form.goal or "a plan for the council's first meeting",
            "availability": form.availability_text or "Tue/Thu 2-5pm",
            "time_zone": form.time_zone or self.config.programme.time_zone,
        }

    def _accept_request(
        self, request: Request, fx: Effects, now: datetime, incoming: Incoming | None
    ) -> None:
        request.problems = []
        fx.outgoing.append(
            self.messages.build(
                template="acknowledgement",
                purpose="acknowledgement",
                to=[request.protege],
                now=now,
                request=request,
                reply_role=Role.PROTEGE,
                answering=incoming,
            )
        )
        self._match_and_ask(request, fx, now, "request complete")

    # -- matching and asking ------------------------------------------------------------
    def _match_and_ask(self, request: Request, fx: Effects, now: datetime, why: str) -> None:
        excluded = {
            ask.mentor: f"already asked for this request ({ask.outcome}"
            + (f": {ask.reason}" if ask.reason else "")
            + ")"
            for ask in request.asks
            if ask.outcome != "withdrawn"
        }
        unavailable = {
            m: datetime.fromisoformat(t) for m, t in (self.store.get_meta("unavailable", {}) or {}).items()
        }
        ctx = MatchContext(
            today=now.astimezone(ZoneInfo(self.config.programme.time_zone)).date(),
            default_format=self.config.programme.default_format,
            load=self.store.mentor_load(now),
            known=self.store.known_mentors(request.protege.email),
            excluded=excluded,
            unavailable=unavailable,
        )
        decision = match(request.form, request.protege, self.ruleset, ctx, now)
        request.decision = decision
        ranked = ", ".join(c.email for c in decision.ranked) or "nobody"
        request.note(
            now,
            "matched",
            f"rule '{decision.rule}' ({decision.rule_file}); candidates: {ranked}"
            if decision.rule
            else "no rule matched: " + "; ".join(decision.skipped_rules),
        )
        budget = request.form.budget
        if decision.rule and budget and budget.total > decision.policy.max_budget:
            problem = Problem(
                "Time budget",
                f"{budget.describe()} is more than the "
                f"{_hours(decision.policy.max_budget)} allowed for "
                f"'{decision.rule}' requests; please ask for less time",
            )
            self._ask_to_complete(request, [problem], fx, now, None)
            return
        asked = len(request.asks[request_round_start(request) :])
        if not decision.rule:
            self._escalate(request, fx, now, "no rule matches the request")
        elif not decision.ranked:
            self._escalate(
                request,
                fx,
                now,
                f"no mentor qualifies under rule '{decision.rule}'" + (" any more" if asked else ""),
            )
        elif asked >= decision.policy.max_candidates:
            self._escalate(
                request,
                fx,
                now,
                f"{asked} mentors asked without an acceptance "
                f"(max_candidates = {decision.policy.max_candidates})",
            )
        else:
            candidate = decision.ranked[0]
            self._ask(
                request,
                self.mentors[candidate.email],
                fx,
                now,
                f"{why}; rule '{decision.rule}' ranks {candidate.email} first: "
                + "; ".join(candidate.reasons),
                candidate.reasons,
            )

    def _ask(
        self,
        request: Request,
        mentor: Mentor,
        fx: Effects,
        now: datetime,
        reason: str,
        reasons: list[str],
    ) -> None:
        policy = request.decision.policy if request.decision else self.ruleset.defaults
        due = now + policy.ask_timeout
        request.asks.append(Ask(mentor=mentor.email, asked_at=now, due=due))
        request.move(State.ASKING, now, f"asking {mentor.name} <{mentor.email}>: {reason}")
        request.timer = Timer(TimerKind.ASK_TIMEOUT, due)
        fx.outgoing.append(
            self.messages.build(
                template="ask",
                purpose="ask",
                to=[_person(mentor)],
                now=now,
                request=request,
                reply_role=Role.MENTOR,
                context={
                    "mentor": _mentor_context(mentor),
                    "reasons": reasons,
                    "due": local_time(due, mentor.time_zone),
                },
            )
        )

    def _escalate(self, request: Request, fx: Effects, now: datetime, why: str) -> None:
        request.move(State.ESCALATED, now, why)
        request.timer = None
        decision = request.decision
        asked = [f"{a.mentor}: {a.outcome}" + (f" ({a.reason})" if a.reason else "") for a in request.asks]
        rejected = [f"{r.name} <{r.email}>: {r.reason}" for r in decision.rejected] if decision else []
        fx.outgoing.append(
            self.messages.build(
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
        )

    # -- replies -----------------------------------------------------------------------
    def resolve_role(self, request: Request, route: Route, sender: str) -> tuple[Role | None, str]:
        """Who wrote this reply, and whether they may act on the request."""
        by_sender = None
        if sender == request.protege.email:
            by_sender = Role.PROTEGE
        elif (request.mentor and sender == request.mentor.email) or any(
            a.mentor == sender for a in request.asks
        ):
            by_sender = Role.MENTOR
        elif sender == self.config.programme.coordinator.lower():
            by_sender = Role.COORDINATOR
        if route.token is not None and not route.token_valid:
            return None, (
                f"the reply address token of {request.ref} does not belong to {sender} (forwarded, or forged)"
            )
        if route.role is not None and by_sender is not route.role:
            return (
                None,
                f"{sender} wrote to the {route.role.value}'s reply address of {request.ref}",
            )
        if by_sender is None:
            return (
                None,
                f"{sender} is not the protégé, a mentor asked, or the coordinator of {request.ref}",
            )
        return by_sender, ""

    def reply(self, request: Request, role: Role, incoming: Incoming, now: datetime) -> Effects:
        fx = Effects()
        request.note(
            now,
            f"received reply from the {role.value}",
            f"{incoming.message_id} from {incoming.sender.email}",
        )
        if incoming.message_id not in request.message_ids:
            request.message_ids.append(incoming.message_id)
        if not request.is_open:
            self.park(
                fx,
                incoming,
                now,
                request=request,
                reason=f"a reply to {request.ref}, which is already {request.state.value}",
                advice="If it needs an answer, please reply to the sender yourself.",
            )
        elif role is Role.COORDINATOR:
            self._coordinator_reply(request, incoming, fx, now)
        elif role is Role.MENTOR:
            self._mentor_reply(request, incoming, fx, now)
        else:
            self._protege_reply(request, incoming, fx, now)
        fx.save(request)
        if not fx.outcome:
            fx.outcome = f"reply to {request.ref} from the {role.value} ({request.state.value})"
        return fx

    def _protege_reply(self, request: Request, incoming: Incoming, fx: Effects, now: datetime) -> None:
        text = incoming.text
        if is_cancel(text):
            self._cancel(request, fx, now, by=Role.PROTEGE, reason=_cancel_reason(text), answering=incoming)
            return
        if request.state is State.REFLECTING:
            self._reflection(request, Role.PROTEGE, incoming, fx, now)
            return
        if request.state is State.INTRODUCED:
            fx.log.append(
                (
                    "no action",
                    f"{request.ref}: a message between the pair after the "
                    "introduction; nothing for mailflow to do",
                )
            )
            fx.outcome = f"conversation copy for {request.ref}, no action"
            return
        parsed = parse_form(
            text,
            max_budget=self.ruleset.defaults.max_budget,
            shadowing_minutes=self.config.scheduling.shadowing_minutes,
        )
        if not parsed.seen:
            self.park(
                fx,
                incoming,
                now,
                request=request,
                reason="the protégé wrote, but not a completion, correction or 'cancel'",
                advice="Please read it and answer the protégé yourself.",
            )
            return
        request.form = merge(request.form, parsed)
        self._fill_identity(request)
        request.note(
            now,
            "request updated",
            "fields from the protégé's reply: " + ", ".join(sorted(parsed.seen)),
        )
        problems = required_problems(request.form) + parsed.problems
        current = request.current_ask
        if current is not None:
            self._withdraw(request, current, fx, now, "changed")
        if problems:
            self._ask_to_complete(request, problems, fx, now, incoming)
        elif request.state is State.INCOMPLETE:
            self._accept_request(request, fx, now, incoming)
        else:
            self._match_and_ask(request, fx, now, "request corrected by the protégé")

    def _mentor_reply(self, request: Request, incoming: Incoming, fx: Effects, now: datetime) -> None:
        sender = incoming.sender.email
        current = request.current_ask
        if request.state is State.REFLECTING and request.mentor and sender == request.mentor.email:
            self._reflection(request, Role.MENTOR, incoming, fx, now)
            return
        if request.state is State.INTRODUCED and request.mentor and sender == request.mentor.email:
            if is_cancel(incoming.text):
                self._cancel(
                    request,
                    fx,
                    now,
                    by=Role.MENTOR,
                    reason=_cancel_reason(incoming.text),
                    answering=incoming,
                )
            else:
                fx.log.append(
                    (
                        "no action",
                        f"{request.ref}: a message between the pair after the introduction",
                    )
                )
                fx.outcome = f"conversation copy for {request.ref}, no action"
            return
        if current is None or current.mentor != sender:
            ask = next((a for a in reversed(request.asks) if a.mentor == sender), None)
            fx.log.append(
                (
                    "late answer",
                    f"{request.ref}: {sender} answered after the ask "
                    f"ended ({ask.outcome if ask else 'not asked'})",
                )
            )
            request.note(
                now,
                "late answer ignored",
                f"{sender} answered after the ask ended "
                f"({ask.outcome if ask else 'not asked'}); the mentor was already told",
            )
            fx.outcome = f"late answer for {request.ref}, no action"
            return
        answer = read_answer(incoming.text, shadowing_minutes=self.config.scheduling.shadowing_minutes)
        if answer.intent is Intent.ACCEPT:
            agreed = answer.counter or request.form.budget
            policy = request.decision.policy if request.decision else self.ruleset.defaults
            if agreed and agreed.total > policy.max_budget:
                self._clarify(
                    request,
                    Role.MENTOR,
                    incoming,
                    fx,
                    now,
                    f"{agreed.describe()} is more than the programme allows ({_hours(policy.max_budget)})",
                )
                return
            current.outcome, current.answered_at = "accepted", now
            if answer.counter:
                current.reason = f"counter-offer: {answer.counter.describe()}"
            assert agreed is not None
            self._introduce(request, self.mentors.get(sender), agreed, fx, now, incoming)
        elif answer.intent in (Intent.DECLINE, Intent.CANCEL):
            current.outcome, current.answered_at = "declined", now
            current.reason = answer.reason
            request.note(
                now,
                "mentor declined",
                f"{sender}" + (f": {answer.reason}" if answer.reason else ""),
            )
            self._match_and_ask(request, fx, now, f"{sender} declined")
        else:
            self._clarify(request, Role.MENTOR, incoming, fx, now, answer.problem)

    def _coordinator_reply(self, request: Request, incoming: Incoming, fx: Effects, now: datetime) -> None:
        lines = [line.strip() for line in incoming.text.split("\n") if line.strip()]
        first = lines[0].lower() if lines else ""
        assign = re.match(r"^assign\s+<?([^\s<>]+@[^\s<>]+?)>?\.?$", first)
        if is_cancel(first):
            self._cancel(
                request,
                fx,
                now,
                by=Role.COORDINATOR,
                reason=_cancel_reason(first),
                answering=incoming,
            )
        elif assign and request.state in (State.ESCALATED, State.ASKING, State.INCOMPLETE):
            mentor = self.mentors.get(assign.group(1).lower())
            if mentor is None:
                self._clarify(
                    request,
                    Role.COORDINATOR,
                    incoming,
                    fx,
                    now,
                    f"{assign.group(1)} is not in the mentor directory",
                )
                return
            if request.current_ask is not None:
                self._withdraw(request, request.current_ask, fx, now, "reassigned")
            request.round_start = len(request.asks)
            self._ask(
                request,
                mentor,
                fx,
                now,
                "assigned by the coordinator",
                ["the programme coordinator chose you for this request"],
            )
        elif first.startswith("retry") and request.state is State.ESCALATED:
            request.round_start = len(request.asks)
            self._match_and_ask(request, fx, now, "the coordinator asked to run the rules again")
        else:
            self._clarify(request, Role.COORDINATOR, incoming, fx, now, "")

    def _clarify(
        self,
        request: Request,
        role: Role,
        incoming: Incoming,
        fx: Effects,
        now: datetime,
        problem: str,
    ) -> None:
        """One short 'please answer …' per person and question; a second unclear reply is parked."""
        key = f"{role.value}:{len(request.asks)}"
        if request.clarifications.get(key):
            self.park(
                fx,
                incoming,
                now,
                request=request,
                reason=f"a second unclear reply from the {role.value}",
                advice="mailflow does not guess: please read it and act on it "
                "(mailflow status " + request.ref + ").",
            )
            return
        request.clarifications[key] = 1
        recipient = incoming.sender
        choices = MENTOR_CHOICES if role is Role.MENTOR else COORDINATOR_CHOICES
        request.note(
            now,
            "unclear reply",
            f"from {recipient.email}: asked to clarify" + (f" ({problem})" if problem else ""),
        )
        fx.outgoing.append(
            self.messages.build(
                template="clarify",
                purpose="clarification",
                to=[recipient],
                now=now,
                request=request,
                reply_role=role,
                answering=incoming,
                context={
                    "recipient": {
                        "name": recipient.name or recipient.email,
                        "email": recipient.email,
                    },
                    "choices": choices,
                    "problem": problem,
                },
            )
        )
        fx.outcome = f"unclear reply for {request.ref}: clarification asked"

    def _withdraw(self, request: Request, ask: Ask, fx: Effects, now: datetime, why: str) -> None:
        """Tell a mentor who was asked that no answer is needed any more."""
        ask.outcome, ask.answered_at = ("timed out" if why == "timed out" else "withdrawn"), now
        mentor = self.mentors.get(ask.mentor)
        if mentor is None:
            return
        fx.outgoing.append(
            self.messages.build(
                template="withdrawn",
                purpose="withdrawal",
                to=[_person(mentor)],
                now=now,
                request=request,
                reply_role=Role.MENTOR,
                context={
                    "mentor": _mentor_context(mentor),
                    "reason": why,
                    "due": local_time(ask.due, mentor.time_zone),
                },
            )
        )

    # -- introduction --------------------------------------------------------------------
    def _introduce(
        self,
        request: Request,
        mentor: Mentor | None,
        agreed: Budget,
        fx: Effects,
        now: datetime,
        incoming: Incoming,
    ) -> None:
        if mentor is None:
            self._escalate(
                request,
                fx,
                now,
                f"{incoming.sender.email} accepted but is no longer in the mentor directory",
            )
            return
        zone = request.form.time_zone or self.config.programme.time_zone
        windows = request.form.availability or parse_availability(self.config.scheduling.default_hours)
        settings = SlotSettings(
            self.config.scheduling.min_notice,
            self.config.scheduling.horizon,
            self.config.scheduling.step_minutes,
            self.config.scheduling.debrief_after,
        )
        plan = plan_sessions(agreed, mentor, zone, windows, now, self.store.booked(mentor.email), settings)
        request.mentor = _person(mentor)
        request.agreed = agreed
        domain = self.config.programme.address.partition("@")[2]
        request.bookings = (
            []
            if plan.problem
            else [
                Booking(
                    uid=f"{request.ref.lower()}-{n + 1}-{int(now.timestamp())}@{domain}",
                    kind=s.kind,
                    start=s.start,
                    end=s.end,
                )
                for n, s in enumerate(plan.sessions)
            ]
        )
        for booking in request.bookings:
            fx.bookings.append(
                (
                    request.ref,
                    mentor.email,
                    booking.start,
                    int((booking.end - booking.start).total_seconds() // 60),
                )
            )
        counter = f" with a counter-offer of {agreed.describe()}" if agreed != request.form.budget else ""
        when = "; ".join(f"{b.kind} {b.start:%Y-%m-%d %H:%M} UTC" for b in request.bookings)
        request.move(
            State.INTRODUCED,
            now,
            f"{mentor.name} <{mentor.email}> accepted{counter}; "
            + (f"sessions: {when}" if when else f"no common slot: {plan.problem}"),
        )
        policy = request.decision.policy if request.decision else self.ruleset.defaults
        last_end = request.bookings[-1].end if request.bookings else now + settings.horizon
        request.timer = Timer(TimerKind.REFLECTION_DUE, last_end + policy.reflection_delay)
        sessions = [
            self._session_context(request, mentor, b, n, zone) for n, b in enumerate(request.bookings)
        ]
        cc = [self.coordinator] if self.config.programme.cc_coordinator else []
        calendars = (
            [self._calendar(request, mentor, request.bookings[0], "REQUEST", now)] if request.bookings else []
        )
        context = {
            "mentor": _mentor_context(mentor),
            "agreed": agreed.describe(),
            "sessions": sessions,
            "no_slot": plan.problem or "",
            "where": _where(mentor, request),
        }
        fx.outgoing.append(
            self.messages.build(
                template="introduction",
                purpose="introduction",
                to=[request.protege, _person(mentor)],
                cc=cc,
                now=now,
                request=request,
                reply_role=PAIR,
                calendars=calendars,
                answering=incoming,
                context=context,
            )
        )
        for n, booking in enumerate(request.bookings[1:], start=1):
            fx.outgoing.append(
                self.messages.build(
                    template="session_invite",
                    purpose=f"invite for session {n + 1}",
                    to=[request.protege, _person(mentor)],
                    now=now,
                    request=request,
                    reply_role=PAIR,
                    calendars=[self._calendar(request, mentor, booking, "REQUEST", now)],
                    context={**context, "session": sessions[n]},
                )
            )
        if plan.problem:
            self._tell_coordinator(
                request,
                fx,
                now,
                "No common time found for an introduction",
                [plan.problem, "Both were asked to agree a time directly."],
            )

    def _session_context(
        self, request: Request, mentor: Mentor, booking: Booking, index: int, protege_zone: str
    ) -> dict[str, object]:
        return {
            "number": index + 1,
            "count": len(request.bookings),
            "label": SESSION_LABELS.get(booking.kind, booking.kind.title()),
            "minutes": int((booking.end - booking.start).total_seconds() // 60),
            "protege_time": local_time(booking.start, protege_zone),
            "mentor_time": local_time(booking.start, mentor.time_zone),
            "protege_name": request.protege.name,
            "mentor_name": mentor.name,
            "start": booking.start,
            "end": booking.end,
        }

    def _calendar(
        self, request: Request, mentor: Mentor | None, booking: Booking, method: str, now: datetime
    ) -> CalendarPart:
        form = request.form
        count = len(request.bookings)
        number = request.bookings.index(booking) + 1 if booking in request.bookings else 1
        label = SESSION_LABELS.get(booking.kind, booking.kind.title())
        summary = f"Micro mentoring: {form.topic}" + (
            f" ({label.lower()}, {number} of {count})" if count > 1 else ""
        )
        lines = [
            f"{self.config.programme.name}, reference {request.ref}.",
            f"{label} between {request.protege.name} and {request.mentor.name if request.mentor else ''}.",
        ]
        if form.goal:
            lines.append(f"Goal: {form.goal}")
        if form.questions:
            lines.append("Questions:")
            lines.extend(f"- {q}" for q in form.questions)
        if mentor and mentor.video_link and (form.format or "video") == "video":
            lines.append(f"Video link: {mentor.video_link}")
        lines.append(
            "Recording: both must agree before anything is recorded."
            if form.recording
            else "Recording: this session is not recorded."
        )
        programme = self.config.programme
        attendees = [Attendee(request.protege.email, request.protege.name)]
        if request.mentor:
            attendees.append(Attendee(request.mentor.email, request.mentor.name))
        url = mentor.video_link if mentor and (form.format or programme.default_format) == "video" else ""
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
            location=_where(mentor, request) if mentor else "",
            url=url,
        )

    # -- reflection ----------------------------------------------------------------------
    def _reflection(
        self, request: Request, role: Role, incoming: Incoming, fx: Effects, now: datetime
    ) -> None:
        request.reflections[role.value] = Reflection(
            role=role,
            received_at=now,
            text=incoming.text[:5000],
            answers=read_reflection(incoming.text),
        )
        request.note(now, f"reflection received from the {role.value}")
        if all(r.value in request.reflections for r in (Role.PROTEGE, Role.MENTOR)):
            self._close(request, fx, now, "both reflections received")
        fx.outcome = f"reflection for {request.ref} from the {role.value}"

    def _close(self, request: Request, fx: Effects, now: datetime, why: str) -> None:
        if request.mentor:
            fx.pairings.append((request.protege.email, request.mentor.email, request.ref))
        request.move(State.CLOSED, now, why)

    # -- timers --------------------------------------------------------------------------
    def timer(self, request: Request, now: datetime) -> Effects:
        fx = Effects()
        timer = request.timer
        if timer is None or timer.due > now:
            return fx
        request.timer = None
        request.note(now, f"timer {timer.kind.value}", f"due {timer.due:%Y-%m-%d %H:%M} UTC")
        policy = request.decision.policy if request.decision else self.ruleset.defaults
        if timer.kind is TimerKind.ASK_TIMEOUT and request.current_ask is not None:
            ask = request.current_ask
            self._withdraw(request, ask, fx, now, "timed out")
            ask.reason = f"no answer within {_hours(policy.ask_timeout)}"
            self._match_and_ask(request, fx, now, f"{ask.mentor} did not answer in time")
        elif timer.kind is TimerKind.REFLECTION_DUE and request.state is State.INTRODUCED:
            request.move(State.REFLECTING, now, "the last session has ended")
            for role in (Role.PROTEGE, Role.MENTOR):
                self._ask_reflection(request, role, fx, now, "reflection")
            request.timer = Timer(TimerKind.REFLECTION_REMINDER, now + policy.reflection_reminder)
        elif timer.kind is TimerKind.REFLECTION_REMINDER and request.state is State.REFLECTING:
            missing = [r for r in (Role.PROTEGE, Role.MENTOR) if r.value not in request.reflections]
            for role in missing:
                self._ask_reflection(request, role, fx, now, "reflection_reminder")
            request.reminded = True
            request.timer = Timer(TimerKind.REFLECTION_CLOSE, now + policy.reflection_reminder)
        elif timer.kind is TimerKind.REFLECTION_CLOSE and request.state is State.REFLECTING:
            answered = [r for r in ("protege", "mentor") if r in request.reflections]
            self._close(
                request,
                fx,
                now,
                "reflection period ended; answered: " + (", ".join(answered) or "nobody"),
            )
        fx.save(request)
        fx.outcome = f"timer {timer.kind.value} for {request.ref}"
        return fx

    def _ask_reflection(
        self, request: Request, role: Role, fx: Effects, now: datetime, template: str
    ) -> None:
        mentor = request.mentor or Person("")
        recipient, other = (request.protege, mentor) if role is Role.PROTEGE else (mentor, request.protege)
        fx.outgoing.append(
            self.messages.build(
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
        )

    # -- cancelling ----------------------------------------------------------------------
    def _cancel(
        self,
        request: Request,
        fx: Effects,
        now: datetime,
        *,
        by: Role,
        reason: str,
        answering: Incoming | None,
    ) -> None:
        canceller = {
            Role.PROTEGE: request.protege,
            Role.MENTOR: request.mentor,
            Role.COORDINATOR: self.coordinator,
        }[by] or request.protege
        current = request.current_ask
        if current is not None:
            self._withdraw(request, current, fx, now, "cancelled")
        future = [b for b in request.bookings if b.status == "confirmed" and b.end > now]
        for booking in future:
            booking.sequence += 1
            booking.status = "cancelled"
        if future:
            fx.unbook.append((request.ref, now))
        request.move(State.CANCELLED, now, f"cancelled by the {by.value}" + (f": {reason}" if reason else ""))
        mentor = self.mentors.get(request.mentor.email) if request.mentor else None
        recipients = [request.protege] + ([request.mentor] if request.mentor else [])
        for person in recipients:
            role = Role.PROTEGE if person is request.protege else Role.MENTOR
            answered = answering if answering and answering.sender.email == person.email else None
            fx.outgoing.append(
                self.messages.build(
                    template="cancelled",
                    purpose="cancellation",
                    to=[person],
                    now=now,
                    request=request,
                    reply_role=role,
                    answering=answered,
                    calendars=[self._calendar(request, mentor, b, "CANCEL", now) for b in future[:1]],
                    context={
                        "greeting": person.name,
                        "canceller": canceller.name,
                        "by_recipient": person.email == canceller.email,
                        "reason": reason,
                        "withdrawn_sessions": len(future),
                    },
                )
            )
            for booking in future[1:]:
                fx.outgoing.append(
                    self.messages.build(
                        template="session_cancelled",
                        purpose="session cancellation",
                        to=[person],
                        now=now,
                        request=request,
                        reply_role=role,
                        calendars=[self._calendar(request, mentor, booking, "CANCEL", now)],
                        context={
                            "greeting": person.name,
                            "session": self._session_context(
                                request,
                                mentor,
                                booking,
                                request.bookings.index(booking),
                                request.form.time_zone or self.config.programme.time_zone,
                            )
                            if mentor
                            else {},
                        },
                    )
                )
        if by is Role.COORDINATOR or request.mentor is not None:
            fx.log.append(("cancelled", f"{request.ref} cancelled by the {by.value}"))
        fx.outcome = f"{request.ref} cancelled by the {by.value}"

    # -- coordinator and parking ------------------------------------------------------------
    def _tell_coordinator(
        self, request: Request, fx: Effects, now: datetime, headline: str, details: list[str]
    ) -> None:
        fx.outgoing.append(
            self.messages.build(
                template="coordinator_note",
                purpose="coordinator note",
                to=[self.coordinator],
                now=now,
                request=request,
                reply_role=Role.COORDINATOR,
                context={"headline": headline, "details": details},
            )
        )

    def park(
        self,
        fx: Effects,
        incoming: Incoming,
        now: datetime,
        *,
        reason: str,
        advice: str,
        request: Request | None = None,
    ) -> Effects:
        """Move a message to needs-attention and tell the coordinator exactly why."""
        fx.folder = "needs-attention"
        fx.outcome = f"needs attention: {reason}"
        fx.log.append(("needs attention", f"{incoming.message_id} from {incoming.sender.email}: {reason}"))
        if request is not None:
            request.note(now, "parked in needs-attention", reason)
        fx.outgoing.append(
            self.messages.build(
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
        )
        return fx


def request_round_start(request: Request) -> int:
    return min(request.round_start, len(request.asks))


def _has_fields(text: str) -> bool:
    return bool(re.search(r"^\W*\w[^:\n]{0,40}:", text, re.MULTILINE))


def _cancel_reason(text: str) -> str:
    first = next((line.strip() for line in text.split("\n") if line.strip()), "")
    return re.sub(r"^(?:please\s+)?cancel\w*\W*", "", first, flags=re.IGNORECASE).strip()[:300]


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} hours" if minutes % 60 == 0 else f"{minutes} minutes"


def _person(mentor: Mentor) -> Person:
    return Person(mentor.email, mentor.name, mentor.library)


def _mentor_context(mentor: Mentor) -> dict[str, str]:
    return {
        "name": mentor.name,
        "email": mentor.email,
        "library": mentor.library,
        "video_link": mentor.video_link,
        "location": mentor.location,
        "phone": mentor.phone,
        "time_zone": mentor.time_zone,
    }


def _where(mentor: Mentor | None, request: Request) -> str:
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

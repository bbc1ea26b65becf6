"""The request's workflow: every event (a new request, a reply, a timer) -> `Effects`.

    received ─▶ incomplete ⇄ (protégé completes by reply)
        │
        ▼ acknowledged
    matching ─(no candidate / all asked)─▶ escalated ─(coordinator: assign | retry)─▶ asking
        ▼
    asking ─(decline | cancel | time-out)─▶ next candidate
        │ accept [counter-offer]
        ▼
    introduced ─(last session + delay)─▶ reflecting ─(both answered | reminder ran out)─▶ closed
        │ ⟲ reschedule (either party or the coordinator): sessions moved, same UIDs, SEQUENCE + 1
        └─(the mentor declines the calendar invitation)─▶ asking the next candidate | escalated
    any open state ─(cancel by protégé, mentor after accepting, or coordinator)─▶ cancelled

Calendar answers (iTIP REPLY) come in through `calendar_answer`: each is recorded on
its session; a mentor's DECLINED re-opens matching or escalates (the rule's
`on_mentor_decline`), a protégé's DECLINED is told to the coordinator.

This module decides; letters.py writes the messages. Handlers never write to the
store: they read from it, change a copy of the request through `Request.move` (which
records the reason), and return `Effects` that the engine commits only when the
whole event was handled. Timers enter here exactly like mail does, so what happens
next is decided in one place.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from .authresults import dmarc_result
from .bounces import Failure
from .config import Config
from .directory import Mentor, by_email
from .form import ParsedForm, merge, parse_form, required_problems
from .freebusy import FreeBusy
from .incoming import Incoming
from .letters import Letters, hours, person
from .match import MatchContext, match
from .messages import Effects
from .model import (
    Ask,
    Budget,
    Person,
    Policy,
    Problem,
    Reflection,
    Request,
    Role,
    State,
    Timer,
    TimerKind,
)
from .replies import Intent, is_cancel, is_reschedule, read_answer, read_reflection, read_return_date
from .route import Route
from .rsvp import CalendarAnswer
from .rules import Ruleset
from .scheduling import Planner
from .sessions import Sessions, book, describe_times
from .store import Store
from .tokens import new_ref

MAX_COMPLETION_ROUNDS = 3
_ASSIGN = re.compile(r"^assign\s+<?([^\s<>]+@[^\s<>]+?)>?\.?$")


class Workflow:
    def __init__(
        self,
        *,
        config: Config,
        ruleset: Ruleset,
        letters: Letters,
        store: Store,
        free_busy: FreeBusy | None = None,
    ) -> None:
        self.config = config
        self.ruleset = ruleset
        self.letters = letters
        self.store = store
        self.planner = Planner(config, store, free_busy or FreeBusy(config.rules_dir))
        self.mentors = by_email(ruleset.mentors)
        self.coordinator = letters.coordinator
        self.sessions = Sessions(
            config=config,
            letters=letters,
            planner=self.planner,
            mentors=self.mentors,
            coordinator=self.coordinator,
            policy=self.policy,
            park=self.park,
            reopen=self._reopen,
        )

    def policy(self, request: Request) -> Policy:
        return request.decision.policy if request.decision else self.ruleset.defaults

    # -- new requests --------------------------------------------------------------------
    def new_request(self, incoming: Incoming, now: datetime) -> Effects:
        fx = Effects()
        name = incoming.sender.name or incoming.sender.email.split("@")[0]
        request = Request(
            ref=new_ref(self.store.ref_taken), created=now, protege=Person(incoming.sender.email, name)
        )
        request.message_ids.append(incoming.message_id)
        request.note(now, "received request", f"{incoming.message_id} from {incoming.sender.email}")
        text = incoming.text if _has_fields(incoming.text) else incoming.full_text
        parsed = self._parse(text)
        request.form = parsed.form
        self._fill_identity(request)
        problems = required_problems(parsed.form) + parsed.problems
        if problems:
            self._ask_to_complete(request, problems, fx, now, incoming)
        else:
            self._accept_request(request, fx, now, incoming)
        fx.outcome = f"new request {request.ref} ({request.state.value})"
        fx.save(request)
        return fx

    def _parse(self, text: str) -> ParsedForm:
        return parse_form(
            text,
            max_budget=self.ruleset.defaults.max_budget,
            shadowing_minutes=self.config.scheduling.shadowing_minutes,
        )

    def _fill_identity(self, request: Request) -> None:
        form = request.form
        if form.name:
            request.protege.name = form.name
        known = self.mentors.get(request.protege.email)
        request.protege.library = form.library or (known.library if known else "")

    def _ask_to_complete(
        self, request: Request, problems: list[Problem], fx: Effects, now: datetime, incoming: Incoming | None
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
        fx.outgoing.append(
            self.letters.completion_request(
                request, problems, self.ruleset.defaults.max_budget, now, incoming
            )
        )

    def _accept_request(
        self, request: Request, fx: Effects, now: datetime, incoming: Incoming | None
    ) -> None:
        request.problems = []
        fx.outgoing.append(self.letters.acknowledgement(request, now, incoming))
        self._match_and_ask(request, fx, now, "request complete")

    # -- matching and asking -------------------------------------------------------------
    def _match_and_ask(self, request: Request, fx: Effects, now: datetime, why: str) -> None:
        ctx = match_context(request, self.store, self.config, now)
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
        limit = decision.policy.max_budget
        if decision.rule and budget and budget.total > limit:
            self._ask_to_complete(
                request,
                [
                    Problem(
                        "Time budget",
                        f"{budget.describe()} is more than the {hours(limit)} allowed for "
                        f"'{decision.rule}' requests; please ask for less time",
                    )
                ],
                fx,
                now,
                None,
            )
            return
        asked = len(request.asks[min(request.round_start, len(request.asks)) :])
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
        self, request: Request, mentor: Mentor, fx: Effects, now: datetime, reason: str, reasons: list[str]
    ) -> None:
        due = now + self.policy(request).ask_timeout
        request.asks.append(Ask(mentor=mentor.email, asked_at=now, due=due))
        request.move(State.ASKING, now, f"asking {mentor.name} <{mentor.email}>: {reason}")
        request.timer = Timer(TimerKind.ASK_TIMEOUT, due)
        fx.outgoing.append(self.letters.ask(request, mentor, reasons, due, now))

    def _escalate(self, request: Request, fx: Effects, now: datetime, why: str) -> None:
        request.move(State.ESCALATED, now, why)
        request.timer = None
        fx.outgoing.append(self.letters.escalation(request, why, now))

    def _reopen(self, request: Request, fx: Effects, now: datetime, why: str, *, escalate: bool) -> None:
        """Find another mentor, or hand the request to the coordinator."""
        if escalate:
            self._escalate(request, fx, now, why)
        else:
            self._match_and_ask(request, fx, now, why)

    def _withdraw(self, request: Request, ask: Ask, fx: Effects, now: datetime, why: str) -> None:
        """End an ask and tell the mentor that no answer is needed any more."""
        ask.outcome, ask.answered_at = ("timed out" if why == "timed out" else "withdrawn"), now
        mentor = self.mentors.get(ask.mentor)
        if mentor is not None:
            fx.outgoing.append(self.letters.withdrawal(request, mentor, why, ask.due, now))

    # -- replies -------------------------------------------------------------------------
    def resolve_role(self, request: Request, route: Route, incoming: Incoming) -> tuple[Role | None, str]:
        """Who wrote this reply, and whether they may act on the request.

        The sender must be the party the message was sent to, proven by the token in the
        reply address it was sent to, or (when a mail client dropped the Reply-To) by
        answering a message mailflow sent to that very address; with `require_dmarc`, our
        own server must also have seen a DMARC pass for the sender's domain.
        """
        sender = incoming.sender.email
        security = self.config.security
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
            return None, f"{sender} wrote to the {route.role.value}'s reply address of {request.ref}"
        if by_sender is None:
            return None, (f"{sender} is not the protégé, a mentor asked, or the coordinator of {request.ref}")
        if (
            security.require_token
            and route.token is None
            and not any(sender in request.sent_to.get(mid, []) for mid in incoming.refers_to)
        ):
            return None, (
                f"{sender} wrote about {request.ref} without its reply address and not in reply to "
                "a message sent to them, so it cannot be told from a forgery"
            )
        if security.require_dmarc:
            verdict = dmarc_result(incoming.message, security.authserv_id)
            if verdict != "pass":
                return None, f"DMARC for {sender} is '{verdict}' at {security.authserv_id or 'our server'}"
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
        fx.outcome = fx.outcome or f"reply to {request.ref} from the {role.value} ({request.state.value})"
        return fx

    def _protege_reply(self, request: Request, incoming: Incoming, fx: Effects, now: datetime) -> None:
        text = incoming.text
        if is_cancel(text):
            self._cancel(request, fx, now, by=Role.PROTEGE, reason=_cancel_reason(text), answering=incoming)
        elif request.state is State.REFLECTING:
            self._reflection(request, Role.PROTEGE, incoming, fx, now)
        elif request.state is State.INTRODUCED:
            self.sessions.after_introduction(request, Role.PROTEGE, incoming, fx, now)
        else:
            self._correction(request, incoming, fx, now)

    def _correction(self, request: Request, incoming: Incoming, fx: Effects, now: datetime) -> None:
        """Completing or correcting the form, before a mentor has accepted."""
        parsed = self._parse(incoming.text)
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
            now, "request updated", "fields from the protégé's reply: " + ", ".join(sorted(parsed.seen))
        )
        problems = required_problems(request.form) + parsed.problems
        if request.current_ask is not None:
            self._withdraw(request, request.current_ask, fx, now, "changed")
        if problems:
            self._ask_to_complete(request, problems, fx, now, incoming)
        elif request.state is State.INCOMPLETE:
            self._accept_request(request, fx, now, incoming)
        else:
            self._match_and_ask(request, fx, now, "request corrected by the protégé")

    def _mentor_reply(self, request: Request, incoming: Incoming, fx: Effects, now: datetime) -> None:
        sender = incoming.sender.email
        is_matched = request.mentor is not None and sender == request.mentor.email
        if request.state is State.REFLECTING and is_matched:
            self._reflection(request, Role.MENTOR, incoming, fx, now)
            return
        if request.state is State.INTRODUCED and is_matched:
            if is_cancel(incoming.text):
                self._cancel(
                    request, fx, now, by=Role.MENTOR, reason=_cancel_reason(incoming.text), answering=incoming
                )
            else:
                self.sessions.after_introduction(request, Role.MENTOR, incoming, fx, now)
            return
        current = request.current_ask
        if current is None or current.mentor != sender:
            ask = next((a for a in reversed(request.asks) if a.mentor == sender), None)
            ended = ask.outcome if ask else "not asked"
            fx.log.append(("late answer", f"{request.ref}: {sender} answered after the ask ended ({ended})"))
            request.note(
                now,
                "late answer ignored",
                f"{sender} answered after the ask ended ({ended}); the mentor was already told",
            )
            fx.outcome = f"late answer for {request.ref}, no action"
            return
        answer = read_answer(incoming.text, shadowing_minutes=self.config.scheduling.shadowing_minutes)
        if answer.intent is Intent.ACCEPT:
            agreed = answer.counter or request.form.budget
            limit = self.policy(request).max_budget
            if agreed is None or agreed.total > limit:
                problem = (
                    f"{agreed.describe()} is more than the programme allows ({hours(limit)})"
                    if agreed
                    else "no time budget"
                )
                self._clarify(request, Role.MENTOR, incoming, fx, now, problem)
                return
            current.outcome, current.answered_at = "accepted", now
            if answer.counter:
                current.reason = f"counter-offer: {answer.counter.describe()}"
            self._introduce(request, self.mentors.get(sender), agreed, fx, now)
        elif answer.intent in (Intent.DECLINE, Intent.CANCEL):  # "cancel" before accepting = decline
            current.outcome, current.answered_at, current.reason = "declined", now, answer.reason
            request.note(now, "mentor declined", sender + (f": {answer.reason}" if answer.reason else ""))
            self._match_and_ask(request, fx, now, f"{sender} declined")
        else:
            self._clarify(request, Role.MENTOR, incoming, fx, now, answer.problem)

    def _coordinator_reply(self, request: Request, incoming: Incoming, fx: Effects, now: datetime) -> None:
        lines = [line.strip() for line in incoming.text.split("\n") if line.strip()]
        first = lines[0].lower() if lines else ""
        assign = _ASSIGN.match(first)
        if is_cancel(first):
            self._cancel(
                request, fx, now, by=Role.COORDINATOR, reason=_cancel_reason(first), answering=incoming
            )
        elif is_reschedule(first) and request.state is State.INTRODUCED:
            self.sessions.reschedule(request, Role.COORDINATOR, incoming, fx, now)
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
        self, request: Request, role: Role, incoming: Incoming, fx: Effects, now: datetime, problem: str
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
                advice=f"mailflow does not guess: please read it and act on it "
                f"(mailflow status {request.ref}).",
            )
            return
        request.clarifications[key] = 1
        request.note(
            now,
            "unclear reply",
            f"from {incoming.sender.email}: asked to clarify" + (f" ({problem})" if problem else ""),
        )
        fx.outgoing.append(self.letters.clarification(request, role, incoming.sender, problem, now, incoming))
        fx.outcome = f"unclear reply for {request.ref}: clarification asked"

    # -- introduction --------------------------------------------------------------------
    def _introduce(
        self, request: Request, mentor: Mentor | None, agreed: Budget, fx: Effects, now: datetime
    ) -> None:
        if mentor is None:
            self._escalate(request, fx, now, "the mentor who accepted is no longer in the directory")
            return
        planned = self.planner.plan(request, mentor, agreed, now)
        request.mentor = person(mentor)
        request.agreed = agreed
        request.bookings = [] if planned.problem else self.planner.bookings(request, planned.sessions, now)
        book(request, mentor, request.bookings, fx)
        for note in planned.notes:
            request.note(now, "planning", note)
            fx.log.append(("planning", f"{request.ref}: {note}"))
        counter = f" with a counter-offer of {agreed.describe()}" if agreed != request.form.budget else ""
        request.move(
            State.INTRODUCED,
            now,
            f"{mentor.name} <{mentor.email}> accepted{counter}; "
            + (
                f"sessions: {describe_times(request.bookings)}"
                if request.bookings
                else f"no common slot: {planned.problem}"
            ),
        )
        self.sessions.reflection_timer(request, now)
        fx.outgoing.extend(self.letters.introduction(request, mentor, agreed, planned.problem or "", now))
        if planned.problem:
            fx.outgoing.append(
                self.letters.coordinator_note(
                    request,
                    "No common time found for an introduction",
                    [planned.problem, "Both were asked to agree a time directly."],
                    now,
                )
            )

    def calendar_answer(
        self, request: Request, answer: CalendarAnswer, incoming: Incoming, now: datetime
    ) -> Effects:
        """A calendar's answer to a session invitation (sessions.py decides)."""
        return self.sessions.calendar_answer(request, answer, incoming, now)

    # -- reflection ----------------------------------------------------------------------
    def _reflection(
        self, request: Request, role: Role, incoming: Incoming, fx: Effects, now: datetime
    ) -> None:
        request.reflections[role.value] = Reflection(
            role=role, received_at=now, text=incoming.text[:5000], answers=read_reflection(incoming.text)
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
        policy = self.policy(request)
        if timer.kind is TimerKind.ASK_TIMEOUT and request.current_ask is not None:
            ask = request.current_ask
            self._withdraw(request, ask, fx, now, "timed out")
            ask.reason = f"no answer within {hours(policy.ask_timeout)}"
            self._match_and_ask(request, fx, now, f"{ask.mentor} did not answer in time")
        elif timer.kind is TimerKind.REFLECTION_DUE and request.state is State.INTRODUCED:
            request.move(State.REFLECTING, now, "the last session has ended")
            for role in (Role.PROTEGE, Role.MENTOR):
                fx.outgoing.append(self.letters.reflection(request, role, now, reminder=False))
            request.timer = Timer(TimerKind.REFLECTION_REMINDER, now + policy.reflection_reminder)
        elif timer.kind is TimerKind.REFLECTION_REMINDER and request.state is State.REFLECTING:
            for role in (Role.PROTEGE, Role.MENTOR):
                if role.value not in request.reflections:
                    fx.outgoing.append(self.letters.reflection(request, role, now, reminder=True))
            request.reminded = True
            request.timer = Timer(TimerKind.REFLECTION_CLOSE, now + policy.reflection_reminder)
        elif timer.kind is TimerKind.REFLECTION_CLOSE and request.state is State.REFLECTING:
            answered = [r for r in ("protege", "mentor") if r in request.reflections]
            self._close(
                request, fx, now, "reflection period ended; answered: " + (", ".join(answered) or "nobody")
            )
        fx.save(request)
        fx.outcome = f"timer {timer.kind.value} for {request.ref}"
        return fx

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
        if request.current_ask is not None:
            self._withdraw(request, request.current_ask, fx, now, "cancelled")
        withdrawn = [b for b in request.bookings if b.status == "confirmed" and b.end > now]
        for booking in withdrawn:
            booking.sequence += 1
            booking.status = "cancelled"
        if withdrawn:
            fx.unbook.append((request.ref, now))
        request.move(State.CANCELLED, now, f"cancelled by the {by.value}" + (f": {reason}" if reason else ""))
        mentor = self.mentors.get(request.mentor.email) if request.mentor else None
        fx.outgoing.extend(
            self.letters.cancellation(request, mentor, canceller, reason, withdrawn, now, answering)
        )
        if by is Role.COORDINATOR or request.mentor is not None:
            fx.log.append(("cancelled", f"{request.ref} cancelled by the {by.value}"))
        fx.outcome = f"{request.ref} cancelled by the {by.value}"

    # -- signals from mail systems ----------------------------------------------------------
    def out_of_office(self, request: Request, incoming: Incoming, now: datetime) -> Effects:
        """An out-of-office reply from the mentor being asked: ask the next one now."""
        fx = Effects()
        ask = request.current_ask
        if ask is None or ask.mentor != incoming.sender.email:
            fx.outcome = f"automatic reply about {request.ref}, no action"
            return fx
        until = read_return_date(f"{incoming.subject}\n{incoming.full_text}", now)
        ask.outcome, ask.answered_at = "out of office", now
        ask.reason = f"away until {until:%Y-%m-%d}" if until else "away, no return date given"
        if until:
            fx.unavailable.append((ask.mentor, until))
        request.note(now, "out-of-office reply", f"{ask.mentor}: {ask.reason}")
        self._match_and_ask(request, fx, now, f"{ask.mentor} is out of the office")
        fx.save(request)
        fx.outcome = f"out-of-office from {ask.mentor} for {request.ref}: next candidate"
        return fx

    def bounce(self, request: Request, failures: list[Failure], original: str, now: datetime) -> Effects:
        """A message of ours could not be delivered: record it, tell the coordinator, and if it
        was the ask to the current mentor, ask the next one rather than wait for the time-out."""
        fx = Effects()
        described = [f.describe() for f in failures] or ["(the bounce names no recipient)"]
        request.note(now, "bounce", f"{original}: " + "; ".join(described))
        ask = request.current_ask
        failed = {f.recipient.lower() for f in failures}
        fx.outgoing.append(
            self.letters.coordinator_note(
                request,
                f"A message about {request.ref} could not be delivered",
                [f"Message: {original}", *described],
                now,
            )
        )
        if (
            ask is not None
            and ask.mentor in failed
            and original in request.sent_to
            and ask.mentor in request.sent_to[original]
        ):
            ask.outcome, ask.answered_at, ask.reason = "bounced", now, "; ".join(described)
            self._match_and_ask(request, fx, now, f"the ask to {ask.mentor} bounced")
        fx.save(request)
        fx.outcome = f"bounce for {request.ref}: coordinator told"
        return fx

    def too_large(self, incoming: Incoming, limit: int, now: datetime) -> Effects:
        """Refused politely: the sender is told, the message is kept for the coordinator."""
        fx = Effects()
        size = f"{incoming.size / 1_000_000:.1f} MB"
        self.park(
            fx,
            incoming,
            now,
            reason=f"the message is {size}, over the {limit / 1_000_000:g} MB limit",
            advice="The sender was asked to write again without attachments.",
        )
        fx.outgoing.append(self.letters.too_large(incoming, size, f"{limit / 1_000_000:g} MB", now))
        return fx

    # -- parking -------------------------------------------------------------------------
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
        fx.outgoing.append(self.letters.needs_attention(incoming, reason, advice, now, request))
        return fx


def match_context(request: Request, store: Store, config: Config, now: datetime) -> MatchContext:
    """What matching knows besides the rules: mentors' load, past pairings, who was asked.

    Shared with `mailflow simulate`, so a simulation decides exactly as the workflow does.
    """
    excluded = {
        ask.mentor: f"already asked for this request ({ask.outcome}"
        + (f": {ask.reason}" if ask.reason else "")
        + ")"
        for ask in request.asks
        if ask.outcome != "withdrawn"
    }
    unavailable = {m: datetime.fromisoformat(t) for m, t in (store.get_meta("unavailable", {}) or {}).items()}
    return MatchContext(
        today=now.astimezone(ZoneInfo(config.programme.time_zone)).date(),
        default_format=config.programme.default_format,
        load=store.mentor_load(now),
        known=store.known_mentors(request.protege.email),
        excluded=excluded,
        unavailable=unavailable,
    )


def _has_fields(text: str) -> bool:
    return bool(re.search(r"^\W*\w[^:\n]{0,40}:", text, re.MULTILINE))


def _cancel_reason(text: str) -> str:
    first = next((line.strip() for line in text.split("\n") if line.strip()), "")
    return re.sub(r"^(?:please\s+)?cancel\w*\W*", "", first, flags=re.IGNORECASE).strip()[:300]

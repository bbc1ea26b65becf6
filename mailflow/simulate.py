"""`mailflow simulate`: what would happen to a request, and why. Nothing is sent or saved.

A simulation runs the real pipeline (read_incoming ─▶ route ─▶ Workflow.new_request)
against the state opened read-only, with the rule and template files as they are on
disk, and throws the resulting `Effects` away instead of committing them. So it shows
exactly what `mailflow run` would decide, plus what the workflow only works out later:
the slots each candidate's invite would propose if they accepted right away.

`replay` runs the current rules over requests already in the state (open and
archived) and lists every request whose match would change: the coordinator sees
the effect of an edit on real requests before it goes live.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from .availability import parse_availability
from .config import Config
from .directory import by_email
from .incoming import read_incoming
from .letters import Letters
from .match import Load, match
from .messages import Messages
from .model import Candidate, Decision, Problem, Rejected, Request
from .render import Renderer, local_time
from .route import Kind, route
from .rules import Rule, Ruleset
from .slots import SlotPlan, SlotSettings, plan_sessions
from .status import all_requests
from .store import Store
from .tokens import Tokens
from .workflow import Workflow, match_context


@dataclass
class RuleVerdict:
    name: str
    where: str
    verdict: str  # "matched" | "no" | "not reached"
    reason: str = ""


@dataclass
class CandidatePlan:
    candidate: Candidate
    position: int
    plan: SlotPlan | None  # None: no budget to plan for
    mentor_zone: str


@dataclass
class Simulation:
    now: datetime
    sender: str
    subject: str
    routed: str  # "a new request", or why it would not be treated as one
    request: Request | None = None
    fields: list[tuple[str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rules: list[RuleVerdict] = field(default_factory=list)
    candidates: list[CandidatePlan] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    messages: list[tuple[str, list[str]]] = field(default_factory=list)  # purpose, recipients
    outcome: str = ""


def simulate(
    config: Config, store: Store, ruleset: Ruleset, renderer: Renderer, raw: bytes, now: datetime
) -> Simulation:
    """What `mailflow run` would do with this message at `now`, without doing it."""
    incoming = read_incoming(raw)
    # A throwaway reply-token key: nothing simulated is ever sent, so no token is ever checked.
    tokens = Tokens(secrets.token_bytes(16), config.programme.address)
    messages = Messages(config, renderer, tokens, loop_token="simulation")
    workflow = Workflow(config=config, ruleset=ruleset, letters=Letters(config, messages), store=store)
    sim = Simulation(now=now, sender=incoming.sender.display(), subject=incoming.subject, routed="")
    found = route(
        incoming,
        tokens,
        known_ref=lambda ref: store.ref_taken(ref),
        ref_for_message=store.ref_for_message,
        loop_token=store.get_meta("loop_token") or "",
        own_address=config.programme.address,
    )
    if found.kind is Kind.NOISE:
        sim.routed = f"not a request, never answered: {found.reason}"
        sim.outcome = "filed in processed, nothing sent"
        return sim
    if found.kind is Kind.REPLY:
        sim.routed = f"a reply to {found.ref} ({found.reason}), not a new request"
        sim.outcome = f"handled as a reply to {found.ref}; simulate explains new requests only"
        return sim
    sim.routed = "a new request"
    fx = workflow.new_request(incoming, now)
    request = next(iter(fx.saved.values()))
    sim.request = request
    sim.fields = read_fields(request, config)
    sim.problems = list(request.problems)
    sim.messages = [(o.purpose, o.recipients) for o in fx.outgoing]
    decision = request.decision
    if decision is not None:
        sim.rules = rule_verdicts(ruleset, request, config.programme.default_format)
        sim.candidates = _plans(request, decision, ruleset, store, config, now)
        sim.rejected = list(decision.rejected)
    sim.outcome = _outcome(request)
    return sim


def read_fields(request: Request, config: Config) -> list[tuple[str, str]]:
    """The request form as mailflow understood it, field by field."""
    form = request.form
    defaults = config.programme
    budget = (
        f"{form.budget.describe()} ({form.budget.total_minutes} minutes in all; written {form.budget_text!r})"
        if form.budget
        else (f"cannot be read: {form.budget_text!r}" if form.budget_text else "not given")
    )
    windows = ", ".join(w.describe() for w in form.availability)
    availability = (
        f"{form.availability_text!r}, read as {windows or 'any time'}"
        if form.availability_text
        else f"not given; the default hours are used ({config.scheduling.default_hours})"
    )
    return [
        (
            "From",
            request.protege.display() + (f", {request.protege.library}" if request.protege.library else ""),
        ),
        ("Topic", form.topic or "not given"),
        ("Time budget", budget),
        ("Format", form.format or f"{defaults.default_format} (not given: the programme's default)"),
        ("Skills", ", ".join(form.skills) or "none named"),
        ("Goal", form.goal or "not given"),
        ("Prior relationship", form.prior_relationship),
        ("Preferred mentor", form.preferred_mentor or "none"),
        ("Availability", availability),
        ("Time zone", form.time_zone or f"{defaults.time_zone} (not given: the programme's default)"),
        ("Recording", "yes, if both agree" if form.recording else "no"),
        ("Questions", " | ".join(form.questions) or "none"),
        ("Language", form.language),
    ]


def rule_verdicts(ruleset: Ruleset, request: Request, default_format: str) -> list[RuleVerdict]:
    """Every rule in order: the one that matched, why each earlier one did not, and the rest."""
    verdicts = []
    matched: Rule | None = None
    for rule in ruleset.rules:
        if matched is not None:
            verdicts.append(
                RuleVerdict(rule.name, rule.where, "not reached", f"'{matched.name}' matched first")
            )
            continue
        why = rule.mismatch(request.form, default_format)
        if why is None:
            matched = rule
            verdicts.append(RuleVerdict(rule.name, rule.where, "matched"))
        else:
            verdicts.append(RuleVerdict(rule.name, rule.where, "no", why))
    return verdicts


def _plans(
    request: Request, decision: Decision, ruleset: Ruleset, store: Store, config: Config, now: datetime
) -> list[CandidatePlan]:
    """For each candidate, the sessions the invite would propose if they accepted now."""
    scheduling = config.scheduling
    settings = SlotSettings(
        scheduling.min_notice, scheduling.horizon, scheduling.step_minutes, scheduling.debrief_after
    )
    windows = request.form.availability or parse_availability(scheduling.default_hours)
    zone = request.form.time_zone or config.programme.time_zone
    mentors = by_email(ruleset.mentors)
    plans = []
    for position, candidate in enumerate(decision.ranked, start=1):
        mentor = mentors[candidate.email]
        budget = request.form.budget
        booked = store.booked(mentor.email)
        plan = plan_sessions(budget, mentor, zone, windows, now, booked, settings) if budget else None
        plans.append(CandidatePlan(candidate, position, plan, mentor.time_zone))
    return plans


def _outcome(request: Request) -> str:
    ask = request.current_ask
    if ask is not None:
        return (
            f"{request.state.value}: {ask.mentor} would be asked first, and have until "
            f"{ask.due:%Y-%m-%d %H:%M} UTC to answer"
        )
    last = next((e for e in reversed(request.history) if e.state is not None), None)
    return f"{request.state.value}" + (f": {last.reason}" if last and last.reason else "")


def explain(sim: Simulation, source: str, config: Config) -> str:
    """The simulation as a coordinator reads it."""
    out = [
        f"Simulation of {source} at {sim.now:%Y-%m-%d %H:%M} UTC (nothing is sent and nothing is saved)",
        "",
        f"  From:     {sim.sender}",
        f"  Subject:  {sim.subject}",
        f"  Read as:  {sim.routed}",
    ]
    if sim.request is None:
        out += ["", f"Outcome: {sim.outcome}"]
        return "\n".join(out)
    out += ["", "Fields as read:"]
    width = max(len(label) for label, _ in sim.fields) + 1
    out += [f"  {(label + ':').ljust(width)} {value}" for label, value in sim.fields]
    if sim.problems:
        out += ["", "Missing or unclear (the protégé would be asked to complete the request):"]
        out += [f"  - {p.field}: {p.message}" for p in sim.problems]
    if sim.rules:
        out += ["", "Rules, in order (the first that matches decides):"]
        for verdict in sim.rules:
            mark = {"matched": "MATCHED", "no": "no", "not reached": "not reached"}[verdict.verdict]
            reason = f": {verdict.reason}" if verdict.reason else ""
            out.append(f"  {mark.ljust(11)} {verdict.name} ({_short(verdict.where)}){reason}")
        if not any(v.verdict == "matched" for v in sim.rules):
            out.append("  No rule matches: the request would go to the coordinator.")
    if sim.candidates:
        out += ["", "Candidates, in the order they would be asked:"]
        zone = sim.request.form.time_zone or config.programme.time_zone
        for item in sim.candidates:
            candidate = item.candidate
            out.append(
                f"  {item.position}. {candidate.name} <{candidate.email}>: " + "; ".join(candidate.reasons)
            )
            out.extend(_slot_lines(item, zone))
    elif sim.rules and any(v.verdict == "matched" for v in sim.rules):
        out += ["", "Candidates: nobody qualifies, so the request would go to the coordinator."]
    decision = sim.request.decision if sim.request else None
    if decision is not None and decision.also_qualified:
        out += [
            "",
            f"Also qualified, ranked below the first {decision.policy.max_candidates} "
            f"(max_candidates): " + ", ".join(decision.also_qualified),
        ]
    if sim.rejected:
        out += ["", "Filtered out, and the filter that removed each:"]
        out += [f"  - {r.name} <{r.email}>: {r.reason}" for r in sim.rejected]
    out += ["", "Messages that would be sent:"]
    out += [f"  - {purpose} to {', '.join(to)}" for purpose, to in sim.messages] or ["  none"]
    out += ["", f"Outcome: {sim.outcome}"]
    return "\n".join(out)


def _slot_lines(item: CandidatePlan, protege_zone: str) -> list[str]:
    if item.plan is None:
        return ["     no time budget, so no invite to plan"]
    lines = []
    count = len(item.plan.sessions)
    for number, session in enumerate(item.plan.sessions, start=1):
        minutes = int((session.end - session.start).total_seconds() // 60)
        which = f"session {number} of {count}, " if count > 1 else ""
        lines.append(
            f"     invite if they accept now: {which}{session.kind}, {minutes} minutes, "
            f"{local_time(session.start, protege_zone)} for the protégé = "
            f"{local_time(session.start, item.mentor_zone, '%a %H:%M')} for the mentor"
        )
    if item.plan.problem:
        lines.append(f"     no invite possible: {item.plan.problem}; both would be asked to agree a time")
    return lines


def _short(where: str) -> str:
    path, _, line = where.partition(":")
    try:
        shown = str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        shown = path
    return f"{shown}:{line}" if line else shown


# -- replay -------------------------------------------------------------------------------


@dataclass
class Change:
    """A request that the current rules would match differently."""

    request: Request
    old_rule: str | None
    old_candidates: list[str]
    new_rule: str | None
    new_candidates: list[str]


@dataclass
class Replay:
    replayed: int
    changes: list[Change]
    never_matched: int  # incomplete or cancelled before any rule was applied
    approximate: int  # matched before mailflow kept the loads: today's loads were used


def replay(config: Config, store: Store, ruleset: Ruleset, count: int) -> Replay:
    """The last `count` requests (by arrival) matched again with `ruleset`, as each was matched then.

    Each request is matched again as it was matched last: at that time (for `away`), with
    the mentors it had asked before then excluded, and with the mentors' loads recorded in
    its decision. So with unchanged files nothing changes, and every change listed comes
    from the rule or directory edit.
    """
    requests = all_requests(store)[-count:] if count > 0 else []
    mentors = by_email(ruleset.mentors)
    changes: list[Change] = []
    never = approximate = 0
    for request in reversed(requests):
        old = request.decision
        if old is None:
            never += 1
            continue
        at = next((e.at for e in reversed(request.history) if e.what == "matched"), request.created)
        then = replace(request, asks=[a for a in request.asks if a.asked_at < at])
        ctx = match_context(then, store, config, at)
        if old.loads is not None:
            ctx.load = {email: Load(minutes, active) for email, (minutes, active) in old.loads.items()}
        else:
            approximate += 1
        new = match(request.form, request.protege, ruleset, ctx, at)
        old_names = [c.name for c in old.ranked]
        new_names = [mentors[c.email].name for c in new.ranked]
        if (old.rule, [c.email for c in old.ranked]) != (new.rule, [c.email for c in new.ranked]):
            changes.append(Change(request, old.rule, old_names, new.rule, new_names))
    return Replay(replayed=len(requests), changes=changes, never_matched=never, approximate=approximate)


def explain_replay(result: Replay, rules_dir: Path) -> str:
    out = [
        f"Replayed the last {result.replayed} request(s) with the rules now in {_short(str(rules_dir))}/: "
        f"{len(result.changes)} would be matched differently."
    ]
    for change in result.changes:
        request = change.request
        out += [
            "",
            f"{request.ref}  {request.created:%Y-%m-%d}  {request.state.value}  "
            f'"{request.form.topic or "(no topic)"}" from {request.protege.email}',
            f"  was: {_match_text(change.old_rule, change.old_candidates)}",
            f"  now: {_match_text(change.new_rule, change.new_candidates)}",
        ]
    unchanged = result.replayed - len(result.changes) - result.never_matched
    out += [
        "",
        f"{unchanged} unchanged; {result.never_matched} never reached matching "
        "(incomplete, or cancelled first).",
    ]
    if result.approximate:
        out.append(
            f"{result.approximate} were matched before mailflow kept mentors' loads with each match, so "
            "today's loads were used for them: a change there can come from a mentor's load too."
        )
    return "\n".join(out)


def _match_text(rule: str | None, candidates: list[str]) -> str:
    if rule is None:
        return "no rule matched (to the coordinator)"
    return f"rule '{rule}': " + (
        ", ".join(candidates) if candidates else "nobody qualifies (to the coordinator)"
    )

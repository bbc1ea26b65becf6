"""Matching: which rule applies, which mentors qualify, in what order, and why.

`match` is pure: it gets the request, the rules and a `MatchContext` describing each
mentor's current load and history, and returns a `Decision` whose every candidate and
every rejection carries its reason, so `mailflow status` and `mailflow simulate` can
explain it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from .directory import Mentor
from .model import Candidate, Decision, Person, Rejected, RequestForm
from .rules import Rule, Ruleset


@dataclass
class Load:
    """A mentor's commitments: minutes booked this month and requests in hand."""

    minutes_this_month: int = 0
    active: int = 0


@dataclass
class MatchContext:
    today: date
    default_format: str
    load: dict[str, Load] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)  # mentors who worked with this protégé before
    excluded: dict[str, str] = field(default_factory=dict)  # mentor -> why (already asked)
    unavailable: dict[str, datetime] = field(default_factory=dict)  # mentor -> until


def first_rule(form: RequestForm, ruleset: Ruleset, default_format: str) -> tuple[Rule | None, list[str]]:
    skipped: list[str] = []
    for rule in ruleset.rules:
        why = rule.mismatch(form, default_format)
        if why is None:
            return rule, skipped
        skipped.append(f"{rule.name} ({rule.where}): {why}")
    return None, skipped


def match(
    form: RequestForm,
    protege: Person,
    ruleset: Ruleset,
    ctx: MatchContext,
    now: datetime | None = None,
) -> Decision:
    rule, skipped = first_rule(form, ruleset, ctx.default_format)
    loads = {email: (load.minutes_this_month, load.active) for email, load in ctx.load.items()}
    if rule is None:
        return Decision(rule=None, skipped_rules=skipped, policy=ruleset.defaults, loads=loads)
    ranked: list[tuple[tuple, Mentor, list[str]]] = []
    rejected: list[Rejected] = []
    for mentor in ruleset.mentors:
        why = _filter(mentor, form, protege, rule, ctx, now)
        if why:
            rejected.append(Rejected(mentor.email, mentor.name, why))
            continue
        key, reasons = _rank(mentor, form, protege, rule, ctx)
        ranked.append((key, mentor, reasons))
    ranked.sort(key=lambda item: (tuple(-k for k in item[0]), item[1].email))
    candidates = [Candidate(m.email, m.name, reasons) for _, m, reasons in ranked]
    limit = rule.policy.max_candidates
    return Decision(
        rule=rule.name,
        rule_file=rule.where,
        skipped_rules=skipped,
        ranked=candidates[:limit],
        also_qualified=[c.email for c in candidates[limit:]],
        rejected=rejected,
        policy=rule.policy,
        loads=loads,
    )


def rank_keys(rule: Rule, form: RequestForm) -> list[str]:
    """The rule's ranking, with the protégé's explicit wishes first."""
    keys = list(rule.rank)
    if form.prior_relationship == "preferred" and "prior_relationship" not in keys:
        keys.insert(0, "prior_relationship")
    if form.preferred_mentor and "preferred_mentor" not in keys:
        keys.insert(0, "preferred_mentor")
    return keys


def names_mentor(wish: str | None, mentor: Mentor) -> bool:
    if not wish:
        return False
    wish = wish.strip().lower().strip("<>")
    return (
        wish == mentor.email
        or wish in mentor.email.split("@")[0]
        or (len(wish) > 2 and wish in mentor.name.lower())
        or mentor.name.lower() in wish
    )


def _filter(
    mentor: Mentor,
    form: RequestForm,
    protege: Person,
    rule: Rule,
    ctx: MatchContext,
    now: datetime | None,
) -> str | None:
    if mentor.email == protege.email.lower():
        return "is the protégé"
    pool = pool_mismatch(mentor, rule)
    if pool:
        return pool
    if mentor.email in ctx.excluded:
        return ctx.excluded[mentor.email]
    wanted_format = form.format or ctx.default_format
    if wanted_format not in mentor.formats:
        return f"does not offer '{wanted_format}' (offers {', '.join(mentor.formats)})"
    if mentor.is_away(ctx.today):
        period = next(f"{a}..{b}" for a, b in mentor.away if a <= ctx.today <= b)
        return f"is away {period}"
    until = ctx.unavailable.get(mentor.email)
    if until and (now is None or until > now):
        return f"is unavailable until {until:%Y-%m-%d} (out-of-office reply)"
    load = ctx.load.get(mentor.email, Load())
    if load.active >= mentor.max_active:
        return f"already has {load.active} active (max_active = {mentor.max_active})"
    minutes = form.budget.total_minutes if form.budget else 0
    if load.minutes_this_month + minutes > mentor.max_hours_per_month * 60:
        return (
            f"would have {(load.minutes_this_month + minutes) / 60:g}h this month, over "
            f"max_hours_per_month = {mentor.max_hours_per_month:g}"
        )
    if form.prior_relationship == "required" and not _knows(mentor, protege, ctx):
        return "has no prior relationship with the protégé, which the request requires"
    return None


def pool_mismatch(mentor: Mentor, rule: Rule) -> str | None:
    if rule.pool_mentors and mentor.email not in rule.pool_mentors:
        return f"not among the mentors of rule '{rule.name}'"
    if rule.pool_libraries and mentor.library not in rule.pool_libraries:
        return f"library '{mentor.library}' is not in rule '{rule.name}'"
    if "*" not in rule.pool_skills and not set(rule.pool_skills) & set(mentor.skills):
        return f"has none of the skills of rule '{rule.name}' ({', '.join(rule.pool_skills)})"
    return None


def _knows(mentor: Mentor, protege: Person, ctx: MatchContext) -> bool:
    return protege.email.lower() in mentor.knows or mentor.email in ctx.known


def _overlap(mentor: Mentor, form: RequestForm) -> list[str]:
    wanted = {s.lower() for s in form.skills}
    text = " ".join([form.topic or "", form.goal or ""]).lower()
    return [s for s in mentor.skills if s in wanted or s in text]


def _rank(
    mentor: Mentor, form: RequestForm, protege: Person, rule: Rule, ctx: MatchContext
) -> tuple[tuple[float, ...], list[str]]:
    load = ctx.load.get(mentor.email, Load())
    values: list[float] = []
    reasons: list[str] = []
    for key in rank_keys(rule, form):
        if key == "preferred_mentor":
            named = names_mentor(form.preferred_mentor, mentor)
            values.append(1 if named else 0)
            if named:
                reasons.append("named by the protégé as preferred mentor")
        elif key == "prior_relationship":
            known = _knows(mentor, protege, ctx)
            values.append(1 if known else 0)
            if known:
                reasons.append("has worked with the protégé before")
        elif key == "skill_overlap":
            overlap = _overlap(mentor, form)
            values.append(len(overlap))
            reasons.append(
                f"skills matching the request: {', '.join(overlap)}"
                if overlap
                else "no skill named in the request, but in the rule's pool"
            )
        elif key == "least_loaded":
            values.append(-load.minutes_this_month)
            reasons.append(
                f"{load.minutes_this_month / 60:g}h of {mentor.max_hours_per_month:g}h "
                f"booked this month, {load.active} active"
            )
        elif key == "same_library":
            same = bool(protege.library) and mentor.library.lower() == protege.library.lower()
            values.append(1 if same else 0)
            if same:
                reasons.append(f"also at {mentor.library}")
        elif key == "language":
            speaks = form.language in mentor.languages
            values.append(1 if speaks else 0)
            if speaks and form.language != "en":
                reasons.append(f"speaks '{form.language}'")
    return tuple(values), reasons

"""Matching: the first rule decides; filters and ranking, each with its reason."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from mailflow.form import parse_form
from mailflow.match import Load, MatchContext, match
from mailflow.model import Person
from mailflow.rules import Ruleset, load_rules

from .programme import DATA

TODAY = date(2026, 12, 1)
PROTEGE = Person("danielle.jones@example.org", "Danielle Jones")


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_rules(DATA / "rules")


def decide(ruleset: Ruleset, text: str, protege: Person = PROTEGE, **context):  # type: ignore[no-untyped-def]
    form = parse_form(text, max_budget=timedelta(hours=6)).form
    ctx = MatchContext(today=context.pop("today", TODAY), default_format="video", **context)
    return match(form, protege, ruleset, ctx)


TEEN = "Topic: teen advisory council\nTime budget: 45 minutes\nSkills: teen services\n"


def test_the_first_matching_rule_decides(ruleset: Ruleset) -> None:
    decision = decide(ruleset, "Topic: grant for the youth room\nTime budget: 30 minutes\n")
    assert decision.rule == "Teen services"  # 'youth' matches before 'grant'
    decision = decide(ruleset, "Topic: grant narrative\nTime budget: 30 minutes\n")
    assert decision.rule == "Grants"
    assert decision.skipped_rules[0].startswith("Teen services")
    assert "none of the keywords" in decision.skipped_rules[0]


def test_prior_relationship_ranks_first_with_its_reason(ruleset: Ruleset) -> None:
    decision = decide(ruleset, TEEN)
    assert decision.ranked[0].email == "violeta.garza@example.org"
    assert "has worked with the protégé before" in decision.ranked[0].reasons


def test_pool_format_and_capacity_filters_give_reasons(ruleset: Ruleset) -> None:
    decision = decide(
        ruleset,
        TEEN + "Format: in person\n",
        load={"tomas.reyes@example.org": Load(minutes_this_month=0, active=1)},
    )
    reasons = {r.email: r.reason for r in decision.rejected}
    assert "does not offer 'in person'" in reasons["marcus.okafor@example.org"]
    assert "has none of the skills of rule 'Teen services'" in reasons["aiko.tanaka@example.org"]
    assert "does not offer 'in person'" in reasons["tomas.reyes@example.org"]
    decision = decide(ruleset, TEEN, load={"tomas.reyes@example.org": Load(0, 1)})
    reasons = {r.email: r.reason for r in decision.rejected}
    assert reasons["tomas.reyes@example.org"] == "already has 1 active (max_active = 1)"


def test_hours_per_month_are_never_exceeded(ruleset: Ruleset) -> None:
    decision = decide(ruleset, TEEN, load={"marcus.okafor@example.org": Load(150, 0)})
    reasons = {r.email: r.reason for r in decision.rejected}
    assert reasons["marcus.okafor@example.org"] == "would have 3.25h this month, over max_hours_per_month = 3"
    # Tomás has 1 hour a month: a 45-minute request fits, a 90-minute one does not.
    assert "tomas.reyes@example.org" in [c.email for c in decide(ruleset, TEEN).ranked]
    long = decide(ruleset, TEEN.replace("45 minutes", "90 minutes"))
    assert "tomas.reyes@example.org" in [r.email for r in long.rejected]


def test_away_mentors_are_not_asked(ruleset: Ruleset) -> None:
    text = "Topic: storytime\nTime budget: 30 minutes\nSkills: storytime\n"
    reasons = {r.email: r.reason for r in decide(ruleset, text).rejected}
    assert reasons["grace.kim@example.org"] == "is away 2026-11-25..2026-12-31"
    ranked = decide(ruleset, text, today=date(2027, 1, 4)).ranked
    assert ranked[0].email in ("grace.kim@example.org", "lucia.fernandez@example.org")
    assert "grace.kim@example.org" in [c.email for c in ranked]


def test_a_required_prior_relationship_admits_only_mentors_who_know_the_protege(
    ruleset: Ruleset,
) -> None:
    text = TEEN + "Prior relationship: required\n"
    assert [c.email for c in decide(ruleset, text).ranked] == ["violeta.garza@example.org"]
    stranger = Person("new.person@example.org", "New Person")
    assert decide(ruleset, text, protege=stranger).ranked == []
    learned = decide(ruleset, text, protege=stranger, known={"marcus.okafor@example.org"})
    assert [c.email for c in learned.ranked] == ["marcus.okafor@example.org"]


def test_a_preferred_mentor_goes_first(ruleset: Ruleset) -> None:
    decision = decide(ruleset, TEEN + "Preferred mentor: Marcus Okafor\n")
    assert decision.ranked[0].email == "marcus.okafor@example.org"
    assert "named by the protégé as preferred mentor" in decision.ranked[0].reasons


def test_least_loaded_breaks_ties(ruleset: Ruleset) -> None:
    text = "Topic: teens\nTime budget: 30 minutes\nSkills: youth development\n"
    decision = decide(
        ruleset,
        text,
        protege=Person("x@example.org"),
        load={
            "marcus.okafor@example.org": Load(60, 1),
            "violeta.garza@example.org": Load(0, 0),
            "tomas.reyes@example.org": Load(30, 0),
        },
    )
    assert [c.email for c in decision.ranked] == [
        "violeta.garza@example.org",
        "tomas.reyes@example.org",
        "marcus.okafor@example.org",
    ]


def test_mentors_already_asked_are_excluded_with_the_reason(ruleset: Ruleset) -> None:
    decision = decide(
        ruleset,
        TEEN,
        excluded={"violeta.garza@example.org": "already asked for this request (declined)"},
    )
    assert "violeta.garza@example.org" not in [c.email for c in decision.ranked]
    assert {r.email: r.reason for r in decision.rejected}[
        "violeta.garza@example.org"
    ] == "already asked for this request (declined)"


def test_max_candidates_limits_the_list(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mentors.toml").write_text((DATA / "rules" / "mentors.toml").read_text())
    (rules / "rules.toml").write_text('[[rule]]\nname = "All"\nmax_candidates = 2\n')
    decision = decide(load_rules(rules), "Topic: anything\nTime budget: 30 minutes\n")
    assert len(decision.ranked) == 2
    assert len(decision.also_qualified) == len(load_rules(rules).mentors) - 2 - len(decision.rejected)


def test_no_rule_matching_is_explained(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mentors.toml").write_text((DATA / "rules" / "mentors.toml").read_text())
    (rules / "rules.toml").write_text('[[rule]]\nname = "Only teens"\nwhen.keywords = ["teen"]\n')
    decision = decide(load_rules(rules), "Topic: budgets\nTime budget: 30 minutes\n")
    assert decision.rule is None
    assert decision.skipped_rules == [
        f"Only teens ({rules / 'rules.toml'}:1): none of the keywords ['teen'] in topic, skills or goal"
    ]

"""Request intake: MIME, charsets, HTML, signatures and quoted history never get in the way."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mailflow.form import parse_form, required_problems
from mailflow.incoming import read_incoming

REQUESTS = Path(__file__).parent / "data" / "requests"
SIX_HOURS = timedelta(hours=6)


def form_of(name: str):  # type: ignore[no-untyped-def]
    incoming = read_incoming((REQUESTS / name).read_bytes())
    return parse_form(incoming.text, max_budget=SIX_HOURS)


@pytest.mark.parametrize(
    ("name", "topic", "minutes", "extra"),
    [
        (
            "plain-utf8-bullets.eml",
            "Running a community seed library",
            90,
            {
                "format": "in person",
                "time_zone": "America/Denver",
                "goal": "a launch checklist",
                "skills": ["gardening programs", "community outreach"],
            },
        ),
        (
            "html-only.eml",
            "Writing a grant narrative",
            60,
            {"format": "video", "questions": ["How long should it be?", "Who reads it?"]},
        ),
        ("base64-plain.eml", "Makerspace safety", 45, {"format": "phone"}),
        (
            "latin1-smart-quotes.eml",
            "Reaching neighbours who “don’t do libraries” – café nights",
            60,
            {},
        ),
        (
            "cp1252-spanish-qp.eml",
            "Hora del cuento bilingüe",
            30,
            {
                "format": "in person",
                "time_zone": "Europe/Madrid",
                "language": "es",
                "recording": False,
            },
        ),
        ("multipart-alternative.eml", "Board presentations", 30, {}),
        ("signature-and-quoted-history.eml", "Volunteer scheduling", 20, {"format": None}),
        ("utf8-emoji.eml", "Podcasting for teens 🎙️", 30, {"recording": True}),
        ("unknown-charset.eml", "Café conversations", 45, {}),
        (
            "outlook-history.eml",
            "First-time supervisor",
            45,
            {"prior_relationship": "preferred", "preferred_mentor": "Samuel Bright"},
        ),
    ],
)
def test_request_emails_in_every_shape(name: str, topic: str, minutes: int, extra: dict) -> None:
    parsed = form_of(name)
    assert parsed.problems == []
    assert required_problems(parsed.form) == []
    assert parsed.form.topic == topic
    assert parsed.form.budget is not None and parsed.form.budget.total_minutes == minutes
    for key, value in extra.items():
        assert getattr(parsed.form, key) == value, key


# Field lines as protégés write them: (text, field, expected value).
FIELD_LINES = [
    ("Topic: Teen council", "topic", "Teen council"),
    ("topic : Teen council", "topic", "Teen council"),
    ("TOPIC: Teen council", "topic", "Teen council"),
    ("- Topic: Teen council", "topic", "Teen council"),
    ("* Topic: Teen council", "topic", "Teen council"),
    ("• Topic: Teen council", "topic", "Teen council"),
    ("1. Topic: Teen council", "topic", "Teen council"),
    ("**Topic:** Teen council", "topic", "Teen council"),
    ("Topic (what I need): Teen council", "topic", "Teen council"),
    ("What I need: Teen council", "topic", "Teen council"),
    ("Tema: Consejo juvenil", "topic", "Consejo juvenil"),
    ("Topic：Teen council", "topic", "Teen council"),
    ("Format: Zoom", "format", "video"),
    ("Format: Microsoft Teams", "format", "video"),
    ("Format: face to face", "format", "in person"),
    ("Format: In-Person please", "format", "in person"),
    ("Format: phone call", "format", "phone"),
    ("Format: job shadowing", "format", "shadowing"),
    ("Formato: videollamada", "format", "video"),
    ("Prior relationship: required", "prior_relationship", "required"),
    ("Prior relationship: nice to have", "prior_relationship", "preferred"),
    ("Prior relationship: not needed", "prior_relationship", "not needed"),
    ("Relationship: no preference", "prior_relationship", "not needed"),
    ("Recording: yes", "recording", True),
    ("Recording: No thanks", "recording", False),
    ("Grabación: sí", "recording", True),
    ("Time zone: america/new_york", "time_zone", "America/New_York"),
    ("Timezone: Pacific", "time_zone", "America/Los_Angeles"),
    ("TZ: Europe/Madrid", "time_zone", "Europe/Madrid"),
    ("Skills: teen services, youth development", "skills", ["teen services", "youth development"]),
    ("Expertise: budgeting; board relations", "skills", ["budgeting", "board relations"]),
    (
        "Preferred mentor: violeta.garza@example.org",
        "preferred_mentor",
        "violeta.garza@example.org",
    ),
    ("Goal: a plan the teens own", "goal", "a plan the teens own"),
    ("Success: a plan the teens own", "goal", "a plan the teens own"),
    ("Name: Dana Jones", "name", "Dana Jones"),
    ("Library: Beaverton City Library", "library", "Beaverton City Library"),
    ("Branch: Beaverton City Library", "library", "Beaverton City Library"),
    ("Availability: Tue/Thu 2-5pm", "availability_text", "Tue/Thu 2-5pm"),
    ("When: weekday afternoons", "availability_text", "weekday afternoons"),
    ("Disponibilidad: martes por la tarde", "availability_text", "martes por la tarde"),
]


@pytest.mark.parametrize(("line", "field", "value"), FIELD_LINES)
def test_forgiving_keys_synonyms_and_values(line: str, field: str, value: object) -> None:
    parsed = parse_form(line, max_budget=SIX_HOURS)
    assert parsed.problems == []
    assert getattr(parsed.form, field) == value


# The time budget grammar: (text, session minutes, kinds, span in days).
BUDGETS = [
    ("30 minutes", [30], ["call"], None),
    ("1 hour", [60], ["call"], None),
    ("1.5 hours", [90], ["call"], None),
    ("90m", [90], ["call"], None),
    ("1h30", [90], ["call"], None),
    ("an hour", [60], ["call"], None),
    ("half an hour", [30], ["call"], None),
    ("an hour and a half", [90], ["call"], None),
    ("45 min", [45], ["call"], None),
    ("one 45-minute conversation", [45], ["call"], None),
    ("a 20-minute phone call", [20], ["call"], None),
    ("1 hour 15 minutes", [75], ["call"], None),
    ("2 x 30 minutes over 2 weeks", [30, 30], ["call", "call"], 14),
    ("2x30 min over 2 weeks", [30, 30], ["call", "call"], 14),
    ("two 30-minute calls over three weeks", [30, 30], ["call", "call"], 21),
    ("3 sessions of 20 minutes", [20, 20, 20], ["call"] * 3, None),
    ("shadow a meeting then a 30 minute debrief", [60, 30], ["shadowing", "debrief"], None),
    (
        "shadow a 2-hour board meeting, then a 30-minute debrief",
        [120, 30],
        ["shadowing", "debrief"],
        None,
    ),
    ("shadowing followed by a 15 minute check-in", [60, 15], ["shadowing", "debrief"], None),
    ("30 minutes + 30 minute follow-up", [30, 30], ["call", "debrief"], None),
    ("una hora", [60], ["call"], None),
    ("media hora", [30], ["call"], None),
    ("dos sesiones de 30 minutos en 2 semanas", [30, 30], ["call", "call"], 14),
]


@pytest.mark.parametrize(("text", "sessions", "kinds", "span"), BUDGETS)
def test_the_time_budget_grammar(text: str, sessions: list[int], kinds: list[str], span: int | None) -> None:
    parsed = parse_form(f"Topic: x\nTime budget: {text}", max_budget=SIX_HOURS)
    assert parsed.problems == []
    budget = parsed.form.budget
    assert budget is not None
    assert [s.minutes for s in budget.sessions] == sessions
    assert [s.kind for s in budget.sessions] == kinds
    assert budget.span_days == span
    assert budget.total_minutes == sum(sessions)


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("Topic: x\nTime budget: whenever", "Time budget", "cannot read a length of time"),
        ("Topic: x\nTime budget: 45 minutes or an hour", "Time budget", "more than one length"),
        ("Topic: x\nTime budget: 10 hours", "Time budget", "outside 5 minutes to 8 hours"),
        ("Topic: x\nTime budget: 4 x 2 hours", "Time budget", "more than this programme's limit"),
        ("Topic: x\nTime budget: 1h\nFormat: carrier pigeon", "Format", "is not one of"),
        ("Topic: x\nTime budget: 1h\nTime zone: Mars/Olympus", "Time zone", "not a time zone"),
        (
            "Topic: x\nTime budget: 1h\nAvailability: when the moon is full",
            "Availability",
            "cannot read the availability",
        ),
        ("Topic: x\nTime budget: 1h\nRecording: perhaps", "Recording", "yes or no"),
        (
            "Topic: x\nTime budget: 1h\nPrior relationship: complicated",
            "Prior relationship",
            "is not one of",
        ),
    ],
)
def test_unclear_values_are_named(text: str, field: str, says: str) -> None:
    problems = parse_form(text, max_budget=SIX_HOURS).problems
    assert [p.field for p in problems] == [field]
    assert says in problems[0].message


def test_missing_required_fields_are_named() -> None:
    parsed = parse_form("Hello, I would like a mentor please.", max_budget=SIX_HOURS)
    assert [p.field for p in required_problems(parsed.form)] == ["Topic", "Time budget"]


def test_questions_are_one_per_line_and_stop_at_the_next_field() -> None:
    parsed = parse_form(
        "Questions:\n- How do I start?\nWhat about snacks?\n\n- Budget?\nGoal: a plan\n",
        max_budget=SIX_HOURS,
    )
    assert parsed.form.questions == ["How do I start?", "What about snacks?", "Budget?"]
    assert parsed.form.goal == "a plan"


def test_shadowing_in_the_budget_sets_the_format() -> None:
    parsed = parse_form(
        "Topic: x\nTime budget: shadow a meeting then a 30 minute debrief", max_budget=SIX_HOURS
    )
    assert parsed.form.format == "shadowing"
    assert parsed.form.budget is not None and parsed.form.budget.sessions[0].assumed

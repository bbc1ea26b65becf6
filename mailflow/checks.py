"""`mailflow check`: every problem in config, rules, directory and templates, at once.

Templates are compiled and then rendered with `sample_context()`, strictly: a name
that the workflow does not provide fails here, not in front of a protégé.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .clock import SystemClock
from .config import check_config
from .errors import TemplateError
from .freebusy import check_free_busy
from .render import LAYOUT, Renderer
from .rules import check_rules
from .tomlsource import Issue


def check_all(config_path: Path) -> list[Issue]:
    if not config_path.exists():
        return [Issue(str(config_path), None, "no such file; copy config.example.toml to it")]
    config, issues = check_config(config_path)
    if config is None:
        return issues
    ruleset, rule_issues = check_rules(config.rules_dir)
    issues.extend(rule_issues)
    if ruleset is not None:
        issues.extend(check_free_busy(ruleset.mentors, config.rules_dir, SystemClock().now()))
    issues.extend(check_templates(config.templates_dir))
    return issues


def sample_context() -> dict[str, Any]:
    """Every name any template may use, filled with realistic values."""
    person = {
        "name": "Danielle Jones",
        "email": "danielle.jones@example.org",
        "library": "Beaverton City Library",
    }
    mentor = {
        "name": "Violeta Garza",
        "email": "violeta.garza@example.org",
        "library": "Multnomah County Library",
        "video_link": "https://video.example.org/v",
        "location": "Central Library",
        "phone": "+1 503 555 0100",
        "time_zone": "America/Los_Angeles",
    }
    session = {
        "number": 1,
        "count": 2,
        "label": "Conversation",
        "minutes": 30,
        "protege_time": "Tuesday 08 December 2026, 15:00 PST",
        "mentor_time": "Tuesday 08 December 2026, 15:00 PST",
        "protege_name": person["name"],
        "mentor_name": mentor["name"],
        "start": None,
        "end": None,
    }
    return {
        "programme": {
            "name": "Library Micro Mentoring",
            "address": "mentoring@library.org",
            "coordinator": "coordinator@library.org",
        },
        "ref": "MM-7F3K2",
        "request": {
            "topic": "Launching a teen advisory council",
            "budget": "one 45-minute conversation",
            "format": "video",
            "skills": ["teen services"],
            "goal": "a first meeting plan",
            "questions": ["How do I recruit?"],
            "availability": "Tue/Thu 2-5pm",
            "time_zone": "America/Los_Angeles",
            "recording": False,
            "prior_relationship": "preferred",
            "preferred_mentor": "",
            "language": "en",
        },
        "protege": person,
        "mentor": mentor,
        "recipient": person,
        "other": mentor,
        "problems": [{"field": "Time budget", "message": "missing"}],
        "example": {
            "topic": "x",
            "budget": "45 minutes",
            "format": "video",
            "skills": "x",
            "goal": "x",
            "availability": "Tue 2-5pm",
            "time_zone": "America/Chicago",
        },
        "max_budget": "6 hours",
        "reasons": ["skills matching the request: teen services"],
        "due": "Thursday 03 December 2026, 09:00 PST",
        "choices": [("accept", "yes")],
        "problem": "",
        "reason": "timed out",
        "why": "no mentor qualifies",
        "rule": "Teen services",
        "asked": ["violeta.garza@example.org: declined"],
        "rejected": ["Grace Kim: is away"],
        "agreed": "one 45-minute conversation",
        "sessions": [session],
        "session": session,
        "no_slot": "",
        "where": "video call: https://video.example.org/v",
        "greeting": "Danielle Jones",
        "canceller": "Violeta Garza",
        "by_recipient": False,
        "withdrawn_sessions": 1,
        "headline": "Something needs you",
        "details": ["a detail"],
        "sender": "someone@example.org",
        "subject": "Hello",
        "message_id": "<x@example.org>",
        "advice": "Please look at it.",
        "by": "Danielle Jones",
        "first": True,
        "new": False,
        "comment": "I am away that week, sorry.",
        "to_mentor": False,
        "next_step": "rematch",
        "size": "12.3 MB",
        "limit": "10 MB",
        "canary_id": "3f2a9c1d",
        "sent_at": "2026-12-01T15:00:00+00:00",
        "deadline": "0:15:00",
    }


def check_templates(folder: Path) -> list[Issue]:
    if not folder.is_dir():
        return [Issue(str(folder), None, "the templates folder does not exist")]
    renderer = Renderer(folder)
    issues = []
    if not (folder / LAYOUT).exists():
        issues.append(
            Issue(str(folder / LAYOUT), None, "missing: every message's HTML part is rendered with it")
        )
    for name in renderer.names():
        try:
            renderer.render(name, sample_context())
        except TemplateError as error:
            issues.append(Issue(str(folder / f"{name}.txt"), None, str(error)))
    return issues

"""`mailflow check`: every problem in config, rules, directory and templates, at once.

The same checks guard the daemon: `load_programme` is what `mailflow run` loads at
start and on every hot reload, so a set of files that `mailflow check` rejects never
goes live. Each problem is an `Issue` with the file, the line and how to fix it.

Templates are checked twice: statically (every name and `name.field` a template
uses must be one mailflow provides, even in a branch the sample does not take), then
by rendering them with `sample_context()`, strictly: a name that the workflow does
not provide fails here, not in front of a protégé.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes

from .clock import SystemClock
from .config import check_config
from .errors import RuleError, TemplateError
from .freebusy import check_free_busy
from .render import LAYOUT, Renderer
from .rulecheck import check_ruleset
from .rules import Ruleset, read_rules
from .tomlsource import Issue

# Every message mailflow sends has a template of this name in templates/.
MESSAGE_TEMPLATES = (
    "acknowledgement",
    "incomplete",
    "ask",
    "clarify",
    "withdrawn",
    "escalation",
    "introduction",
    "session_invite",
    "reflection",
    "reflection_reminder",
    "cancelled",
    "session_cancelled",
    "needs_attention",
    "coordinator_note",
    "digest",
    "reload_failed",
    "session_moved",
    "reschedule_failed",
    "mentor_declined",
    "delivery_problem",
    "too_large",
    "canary",
    "liveness_alert",
)


def check_all(config_path: Path) -> list[Issue]:
    if not config_path.exists():
        return [Issue(str(config_path), None, "no such file; copy config.example.toml to it")]
    config, issues = check_config(config_path)
    if config is None:
        return issues
    ruleset, _, file_issues = check_programme(config.rules_dir, config.templates_dir)
    if ruleset is not None:
        file_issues.extend(check_free_busy(ruleset.mentors, config.rules_dir, SystemClock().now()))
    return sorted(issues + file_issues, key=lambda i: (i.path, i.line or 0))


def check_programme(
    rules_dir: Path, templates_dir: Path
) -> tuple[Ruleset | None, Renderer | None, list[Issue]]:
    """The rules, the directory and the templates, checked together as the daemon uses them."""
    ruleset, issues, directory_ok = read_rules(rules_dir)
    # The order of the rules is checked whatever else is wrong; their pools only against a
    # directory that loaded whole.
    issues.extend(check_ruleset(ruleset.rules, ruleset.mentors if directory_ok else None))
    template_issues = check_templates(templates_dir)
    issues.extend(template_issues)
    if issues or not templates_dir.is_dir():
        return None, None, issues
    return ruleset, Renderer(templates_dir), []


def load_programme(rules_dir: Path, templates_dir: Path) -> tuple[Ruleset, Renderer]:
    """Rules and templates for the daemon; a `RuleError` lists every problem."""
    ruleset, renderer, issues = check_programme(rules_dir, templates_dir)
    if ruleset is None or renderer is None:
        kind = TemplateError if all(i.path.startswith(str(templates_dir)) for i in issues) else RuleError
        raise kind("\n".join(str(issue) for issue in issues))
    return ruleset, renderer


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
        "issues": ["rules/programme.toml:12: unknown key 'ask_timout'; did you mean 'ask_timeout'?"],
        "loaded_at": "at Tuesday 01 December 2026, 09:00 CST",
        "digest": {
            "since": "Monday 23 November 2026",
            "until": "Monday 30 November 2026",
            "escalations": [
                {
                    "ref": "MM-7F3K2",
                    "topic": "Launching a teen advisory council",
                    "protege": "Danielle Jones <danielle.jones@example.org>",
                    "age": "3d 2h",
                    "why": "no mentor qualifies under rule 'Teen services'",
                }
            ],
            "stuck": [
                {
                    "ref": "MM-4H8QA",
                    "state": "incomplete",
                    "topic": "Storytime for toddlers",
                    "why": "waiting 9 days for the protégé to complete the request",
                }
            ],
            "mentors": [
                {
                    "name": "Violeta Garza",
                    "email": "violeta.garza@example.org",
                    "hours": "3.5",
                    "max_hours": "4",
                    "active": 2,
                    "max_active": 2,
                    "full": True,
                }
            ],
            "numbers": [{"label": "New requests", "value": "4"}],
        },
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
    names = renderer.names()
    for name in MESSAGE_TEMPLATES:
        if name not in names:
            issues.append(
                Issue(
                    str(folder / f"{name}.txt"),
                    None,
                    f"missing: mailflow sends the '{name}' message with it; copy it from mailflow's "
                    "own templates/ folder and edit it",
                )
            )
    context = sample_context()
    for name in names:
        path = folder / f"{name}.txt"
        guess = difflib.get_close_matches(name, MESSAGE_TEMPLATES, n=1, cutoff=0.8)
        if name not in MESSAGE_TEMPLATES and guess:
            issues.append(
                Issue(
                    str(path),
                    None,
                    f"mailflow sends no message called '{name}'; did you mean '{guess[0]}'? "
                    f"Rename the file to {guess[0]}.txt",
                )
            )
            continue
        found = static_issues(renderer, path, context)
        if not found:
            try:
                renderer.render(name, context)
            except TemplateError as error:
                found = [Issue(error.path or str(path), error.line, _advice(error.detail))]
        issues.extend(issue for issue in found if issue not in issues)  # a shared macro: once
    return issues


def static_issues(renderer: Renderer, path: Path, context: dict[str, Any]) -> list[Issue]:
    """Names (and `name.field`s) a template uses that mailflow never gives it, with lines."""
    source = path.read_text(encoding="utf-8")
    try:
        tree = renderer.env.parse(source, name=path.name, filename=str(path))
    except TemplateSyntaxError as error:
        return [Issue(str(path), error.lineno, _advice(error.message or str(error)))]
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    try:
        undeclared = meta.find_undeclared_variables(tree) - set(renderer.env.globals)
    except TemplateSyntaxError as error:  # found while compiling: an unknown filter or test
        return [Issue(str(path), error.lineno, _advice(error.message or str(error)))]
    issues: list[Issue] = []
    reported: set[str] = set()
    for node in tree.find_all(nodes.Name):
        unknown = node.ctx == "load" and node.name in undeclared and node.name not in context
        if unknown and node.name not in reported:
            reported.add(node.name)
            guess = difflib.get_close_matches(node.name, list(context), n=1)
            issues.append(
                Issue(
                    str(path),
                    node.lineno,
                    f"'{node.name}' is not a name mailflow gives templates"
                    + (f"; did you mean '{guess[0]}'?" if guess else "")
                    + " (the names are listed under Templates in the README)",
                )
            )
    for field in tree.find_all(nodes.Getattr):
        target = field.node
        if not isinstance(target, nodes.Name) or target.ctx != "load" or target.name in assigned:
            continue
        value = context.get(target.name)
        if isinstance(value, dict) and field.attr not in value and not hasattr(dict, field.attr):
            dotted = f"{target.name}.{field.attr}"
            if dotted in reported:
                continue
            reported.add(dotted)
            guess = difflib.get_close_matches(field.attr, list(value), n=1)
            issues.append(
                Issue(
                    str(path),
                    field.lineno,
                    f"'{dotted}' does not exist: {target.name} has "
                    + ", ".join(sorted(value))
                    + (f"; did you mean '{target.name}.{guess[0]}'?" if guess else ""),
                )
            )
    return sorted(issues, key=lambda i: i.line or 0)


def _advice(message: str) -> str:
    """Jinja's wording, with what to do about the common cases."""
    if re.search(r"unexpected end of template|Encountered unknown tag|expected token", message):
        closers = "{% endif %}, {% endfor %}, {% endblock %}"
        return f"{message}; check that every {{% ... %}} is closed ({closers})"
    if "is undefined" in message or "has no attribute" in message:
        return f"{message}; use only the names listed under Templates in the README"
    return message

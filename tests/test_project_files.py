"""The project's own config, rules, mentors, examples and templates stay valid."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from mailflow.checks import MESSAGE_TEMPLATES, check_templates, sample_context
from mailflow.config import check_config
from mailflow.form import parse_form, required_problems
from mailflow.incoming import read_incoming
from mailflow.render import Renderer
from mailflow.rules import check_rules

from .programme import REPO

MESSAGES = set(MESSAGE_TEMPLATES)


def test_every_template_the_code_sends_is_known_to_check() -> None:
    """`mailflow check` reports a missing template by this list; it must name every one sent."""
    sent = set()
    for path in (REPO / "mailflow").rglob("*.py"):
        sent.update(re.findall(r'template="([a-z_]+)"', path.read_text()))
    sent.update({"reflection", "reflection_reminder"})  # chosen at run time in letters.py
    assert sent == MESSAGES


def test_config_example_is_valid() -> None:
    config, issues = check_config(REPO / "config.example.toml")
    assert issues == []
    assert config is not None
    assert config.mail.inbox == "maildir:var/mailbox"
    assert config.mail.outbox == "maildir:var/outbox"
    assert config.state_path == REPO / "var" / "state.json"


def test_the_rules_and_mentor_directory_are_valid() -> None:
    ruleset, issues = check_rules(REPO / "rules")
    assert issues == []
    assert ruleset is not None
    assert len(ruleset.rules) >= 3
    assert len(ruleset.mentors) >= 8


def test_every_message_has_a_template_and_each_renders_strictly() -> None:
    renderer = Renderer(REPO / "templates")
    assert set(renderer.names()) == MESSAGES
    assert check_templates(REPO / "templates") == []
    for name in MESSAGES:
        rendered = renderer.render(name, sample_context())
        assert rendered.subject and "\n" not in rendered.subject
        assert rendered.text.strip()
        assert "<html" in rendered.html


def test_a_template_using_an_unknown_name_is_caught(tmp_path: Path) -> None:
    for path in (REPO / "templates").iterdir():
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "ask.txt").write_text(
        "{% block subject %}Hi{% endblock %}{% block body %}{{ mentor.nickname }}{% endblock %}"
    )
    (issue,) = check_templates(tmp_path)
    assert issue.path.endswith("ask.txt")
    assert "nickname" in issue.message


def test_the_examples_are_realistic_requests() -> None:
    examples = sorted((REPO / "examples").glob("*.eml"))
    assert len(examples) >= 8
    forms = {}
    for path in examples:
        parsed = parse_form(read_incoming(path.read_bytes()).text, max_budget=timedelta(hours=6))
        forms[path.name] = (parsed, required_problems(parsed.form))
    html_only = [p for p in examples if "text/plain" not in p.read_text(errors="replace").lower()]
    assert html_only, "one example is HTML-only"
    assert any(problems for _, problems in forms.values()), "one example is incomplete"
    assert any(parsed.form.language == "es" for parsed, _ in forms.values()), "one is in Spanish"
    assert any(parsed.form.prior_relationship == "required" for parsed, _ in forms.values())

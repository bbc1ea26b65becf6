"""Rules that load but cannot work: checked against each other and the mentor directory.

A rule file can be valid TOML with every key spelt right and still do nothing useful:

- a rule can never be used because an earlier rule matches every request it would
  (a rule without `when` hides everything after it);
- a `when` condition can never be true (a language requests are never read as,
  a prior relationship no request states, an empty keyword that matches everything);
- the rule's candidate pool is empty given the directory, or names addresses,
  libraries or skills that no mentor has;
- the rule accepts a format (`when.formats`) that no mentor in its pool offers, so
  those requests always end with the coordinator.

Each problem is an `Issue` naming the file and the line of the key to change.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from .directory import Mentor
from .form import RELATIONSHIPS
from .match import pool_mismatch
from .rules import Rule
from .tomlsource import Issue, TomlSource

# The languages the request reader can tell apart (form.py marks Spanish requests
# "es"; everything else is "en"). A rule for any other language never matches.
REQUEST_LANGUAGES = ("en", "es")


def check_ruleset(rules: list[Rule], mentors: list[Mentor] | None) -> list[Issue]:
    """Every rule that is hidden, can never match, or has nobody to ask.

    `mentors` is None when the directory itself has problems: pool checks are then
    skipped, so a broken directory does not also make every rule look empty.
    """
    lines = _Lines()
    issues: list[Issue] = []
    hidden_by_catch_all: dict[int, list[Rule]] = {}
    for index, rule in enumerate(rules):
        issues.extend(_never_true(rule, lines))
        cover = next((n for n, earlier in enumerate(rules[:index]) if covers(earlier, rule)), None)
        if cover is not None and is_catch_all(rules[cover]):
            hidden_by_catch_all.setdefault(cover, []).append(rule)
        elif cover is not None:
            issues.append(Issue(rule.file, rule.line, _hidden(rule, rules[cover])))
        if mentors is not None:
            issues.extend(_pool_problems(rule, mentors, lines))
    for index, hidden in hidden_by_catch_all.items():
        rule = rules[index]
        names = ", ".join(f"'{h.name}' ({h.where})" for h in hidden)
        issues.append(
            Issue(
                rule.file,
                rule.line,
                f"rule '{rule.name}' has no `when`, so it matches every request and the "
                f"{len(hidden)} rule(s) after it are never used: {names}; move '{rule.name}' to the end",
            )
        )
    return issues


def is_catch_all(rule: Rule) -> bool:
    return not any((rule.keywords, rule.formats, rule.skills, rule.prior_relationship, rule.languages))


def covers(first: Rule, later: Rule) -> bool:
    """True when every request `later` matches is matched by `first` already."""
    if not _keywords_cover(first.keywords, later.keywords):
        return False
    return all(
        _values_cover(a, b)
        for a, b in (
            (first.formats, later.formats),
            (first.skills, later.skills),
            (first.prior_relationship, later.prior_relationship),
            (first.languages, later.languages),
        )
    )


def _keywords_cover(first: tuple[str, ...], later: tuple[str, ...]) -> bool:
    # A keyword matches as a substring: "teen" in the text whenever "teens" is.
    if not first:
        return True
    if not later:
        return False
    return all(any(a.lower() in b.lower() for a in first) for b in later)


def _values_cover(first: tuple[str, ...], later: tuple[str, ...]) -> bool:
    if not first:
        return True
    return bool(later) and {v.lower() for v in later} <= {v.lower() for v in first}


def _hidden(rule: Rule, cover: Rule) -> str:
    return (
        f"rule '{rule.name}' is never used: rule '{cover.name}' ({cover.where}) comes first and "
        f"matches every request '{rule.name}' would; move '{rule.name}' above it, or narrow the "
        f"`when` of '{cover.name}'"
    )


def _never_true(rule: Rule, lines: _Lines) -> list[Issue]:
    issues = []
    if any(not k.strip() for k in rule.keywords):
        issues.append(
            Issue(
                rule.file,
                lines.of(rule, "when.keywords"),
                f"rule '{rule.name}': an empty keyword (\"\") matches every request; remove it",
            )
        )
    wrong = [v for v in rule.prior_relationship if v not in RELATIONSHIPS]
    if wrong:
        issues.append(
            Issue(
                rule.file,
                lines.of(rule, "when.prior_relationship"),
                f"rule '{rule.name}': no request ever says prior relationship {_quoted(wrong)}; "
                f"use any of {_quoted(list(RELATIONSHIPS))}",
            )
        )
    foreign = [v for v in rule.languages if v not in REQUEST_LANGUAGES]
    if foreign:
        issues.append(
            Issue(
                rule.file,
                lines.of(rule, "when.languages"),
                f"rule '{rule.name}': requests are only read as 'en' (English) or 'es' (Spanish), "
                f"so {_quoted(foreign)} never matches; use 'en' or 'es'",
            )
        )
    return issues


def _pool_problems(rule: Rule, mentors: list[Mentor], lines: _Lines) -> list[Issue]:
    issues = []
    known = {m.email for m in mentors}
    for address in rule.pool_mentors:
        if address not in known:
            guess = difflib.get_close_matches(address, sorted(known), n=1)
            issues.append(
                Issue(
                    rule.file,
                    lines.of(rule, "candidates.mentors"),
                    f"rule '{rule.name}': {address} is not in the mentor directory"
                    + (f"; did you mean {guess[0]}?" if guess else "; add them to mentors.toml first"),
                )
            )
    libraries = {m.library for m in mentors}
    for library in rule.pool_libraries:
        if library not in libraries:
            guess = difflib.get_close_matches(library, sorted(libraries), n=1)
            issues.append(
                Issue(
                    rule.file,
                    lines.of(rule, "candidates.libraries"),
                    f"rule '{rule.name}': no mentor works at '{library}'"
                    + (f"; did you mean '{guess[0]}'?" if guess else "; check the spelling in mentors.toml"),
                )
            )
    skills = {s for m in mentors for s in m.skills}
    for skill in rule.pool_skills:
        if skill != "*" and skill not in skills:
            guess = difflib.get_close_matches(skill, sorted(skills), n=1)
            issues.append(
                Issue(
                    rule.file,
                    lines.of(rule, "candidates.skills"),
                    f"rule '{rule.name}': no mentor has the skill '{skill}'"
                    + (f"; did you mean '{guess[0]}'?" if guess else "; add it to a mentor's skills"),
                )
            )
    pool = [m for m in mentors if pool_mismatch(m, rule) is None]
    if not pool:
        issues.append(
            Issue(
                rule.file,
                rule.line,
                f"rule '{rule.name}' has nobody to ask: no mentor in the directory is in its "
                "candidates, so every request it matches goes straight to the coordinator; "
                "widen `candidates` or add a mentor who fits",
            )
        )
        return issues
    for wanted in rule.formats:
        if not any(wanted in m.formats for m in pool):
            issues.append(
                Issue(
                    rule.file,
                    lines.of(rule, "when.formats"),
                    f"rule '{rule.name}' takes '{wanted}' requests, but no mentor in its pool offers "
                    f"'{wanted}' ({', '.join(m.name for m in pool)}); remove it from when.formats "
                    "or add it to a mentor's formats",
                )
            )
    return issues


def _quoted(values: list[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class _Lines:
    """The line of a key inside a rule's table, reading each file once."""

    def __init__(self) -> None:
        self.sources: dict[str, TomlSource | None] = {}

    def of(self, rule: Rule, key: str) -> int | None:
        if rule.file not in self.sources:
            self.sources[rule.file], _ = TomlSource.load(Path(rule.file))
        source = self.sources[rule.file]
        return source.key_line(key, after=rule.line) if source else rule.line

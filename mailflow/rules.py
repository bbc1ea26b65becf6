"""The matching rules: every `rules/*.toml` except the mentor directory.

Files are read in name order and rules in table order; the first rule whose `when`
matches a request decides the candidate pool, the ranking and the timing. A
`[defaults]` table sets the timing for every rule that does not set its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .config import Duration, FormatName
from .directory import DIRECTORY_FILE, Mentor, load_directory
from .errors import RuleError
from .model import Policy, RequestForm
from .tomlsource import Issue, TomlSource

RANK_KEYS = {
    "preferred_mentor": "the protégé named this mentor",
    "prior_relationship": "has worked with the protégé before",
    "skill_overlap": "skills that overlap the request",
    "least_loaded": "fewest hours booked this month",
    "same_library": "works at the protégé's library",
    "language": "speaks the request's language",
}


MentorDecline = Literal["rematch", "escalate"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DefaultsEntry(_Strict):
    ask_timeout: Duration = timedelta(days=3)
    reflection_delay: Duration = timedelta(days=1)
    reflection_reminder: Duration = timedelta(days=4)
    max_candidates: int = Field(default=3, ge=1, le=20)
    max_budget: Duration = timedelta(hours=6)
    on_mentor_decline: MentorDecline = "rematch"


class WhenEntry(_Strict):
    keywords: list[str] = []
    formats: list[FormatName] = []
    skills: list[str] = []
    prior_relationship: list[str] = []
    languages: list[str] = []


class CandidatesEntry(_Strict):
    skills: list[str] = ["*"]
    mentors: list[str] = []
    libraries: list[str] = []


class RuleEntry(_Strict):
    name: str = Field(min_length=1)
    when: WhenEntry = WhenEntry()
    candidates: CandidatesEntry = CandidatesEntry()
    rank: list[str] = ["skill_overlap", "least_loaded"]
    ask_timeout: Duration | None = None
    reflection_delay: Duration | None = None
    reflection_reminder: Duration | None = None
    max_candidates: int | None = Field(default=None, ge=1, le=20)
    max_budget: Duration | None = None
    on_mentor_decline: MentorDecline | None = None


class RulesFile(_Strict):
    # Each part is validated on its own, so an error in one does not hide the others.
    defaults: dict | None = None  # a DefaultsEntry
    rule: list[dict] = []  # each a RuleEntry, so errors can name the rule


@dataclass(frozen=True)
class Rule:
    name: str
    file: str
    line: int | None
    keywords: tuple[str, ...]
    formats: tuple[str, ...]
    skills: tuple[str, ...]
    prior_relationship: tuple[str, ...]
    languages: tuple[str, ...]
    pool_skills: tuple[str, ...]
    pool_mentors: tuple[str, ...]
    pool_libraries: tuple[str, ...]
    rank: tuple[str, ...]
    policy: Policy

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def mismatch(self, form: RequestForm, default_format: str) -> str | None:
        """Why this rule does not match the request, or None when it does."""
        text = " ".join([form.topic or "", " ".join(form.skills), form.goal or ""]).lower()
        if self.keywords and not any(k.lower() in text for k in self.keywords):
            return f"none of the keywords {list(self.keywords)} in topic, skills or goal"
        request_format = form.format or default_format
        if self.formats and request_format not in self.formats:
            return f"format '{request_format}' is not one of {list(self.formats)}"
        wanted = {s.lower() for s in form.skills}
        if self.skills and not wanted & {s.lower() for s in self.skills}:
            return f"the request's skills do not include any of {list(self.skills)}"
        if self.prior_relationship and form.prior_relationship not in self.prior_relationship:
            return (
                f"prior relationship '{form.prior_relationship}' is not one of "
                f"{list(self.prior_relationship)}"
            )
        if self.languages and form.language not in self.languages:
            return f"language '{form.language}' is not one of {list(self.languages)}"
        return None


@dataclass
class Ruleset:
    rules: list[Rule] = field(default_factory=list)
    mentors: list[Mentor] = field(default_factory=list)
    defaults: Policy = field(default_factory=Policy)


def check_rules(folder: Path) -> tuple[Ruleset | None, list[Issue]]:
    """Load the directory and every rule file; every problem comes back as an `Issue`."""
    ruleset, issues, _ = read_rules(folder)
    return (None if issues else ruleset), issues


def read_rules(folder: Path) -> tuple[Ruleset, list[Issue], bool]:
    """Every rule and mentor that could be read, every problem, and whether the directory
    had none (so `mailflow check` can go on to check what did load)."""
    issues: list[Issue] = []
    if not folder.is_dir():
        return Ruleset(), [Issue(str(folder), None, "the rules folder does not exist")], False
    mentors, problems = load_directory(folder / DIRECTORY_FILE)
    issues.extend(problems)
    directory_ok = not problems
    ruleset = Ruleset(mentors=mentors)
    entries: list[tuple[RuleEntry, str, int | None]] = []
    defaults_seen: str | None = None
    for path in sorted(folder.glob("*.toml")):
        if path.name == DIRECTORY_FILE:
            continue
        source, problems = TomlSource.load(path)
        issues.extend(problems)
        if source is None:
            continue
        parsed, problems = source.validate(RulesFile, source.data)
        issues.extend(problems)
        if parsed is None:
            continue
        if parsed.defaults is not None:
            if defaults_seen:
                issues.append(
                    Issue(
                        str(path),
                        source.table_line("defaults"),
                        f"[defaults] is already set in {defaults_seen}; keep one",
                    )
                )
            defaults_seen = str(path)
            defaults, problems = source.validate(
                DefaultsEntry, parsed.defaults, header="defaults", label="[defaults]"
            )
            issues.extend(problems)
            if defaults is not None:
                ruleset.defaults = Policy(**defaults.model_dump())
        for index, data in enumerate(parsed.rule):
            label = f"rule '{data.get('name', index + 1)}'"
            entry, problems = source.validate(RuleEntry, data, header="rule", index=index, label=label)
            issues.extend(problems)
            line = source.table_line("rule", index)
            if entry is not None:
                for key in entry.rank:
                    if key not in RANK_KEYS:
                        issues.append(
                            Issue(
                                str(path),
                                source.key_line("rank", line),
                                f"{label}: unknown rank key '{key}'; use any of "
                                f"{', '.join(sorted(RANK_KEYS))}",
                            )
                        )
                entries.append((entry, str(path), line))
    if not entries and not issues:
        issues.append(Issue(str(folder), None, "no [[rule]] tables in any rules file"))
    ruleset.rules = [_rule(entry, file, line, ruleset.defaults) for entry, file, line in entries]
    return ruleset, issues, directory_ok


def load_rules(folder: Path) -> Ruleset:
    ruleset, issues = check_rules(folder)
    if ruleset is None:
        raise RuleError("\n".join(str(issue) for issue in issues))
    return ruleset


def _rule(entry: RuleEntry, file: str, line: int | None, defaults: Policy) -> Rule:
    policy = Policy(
        ask_timeout=entry.ask_timeout or defaults.ask_timeout,
        reflection_delay=entry.reflection_delay or defaults.reflection_delay,
        reflection_reminder=entry.reflection_reminder or defaults.reflection_reminder,
        max_candidates=entry.max_candidates or defaults.max_candidates,
        max_budget=entry.max_budget or defaults.max_budget,
        on_mentor_decline=entry.on_mentor_decline or defaults.on_mentor_decline,
    )
    return Rule(
        name=entry.name,
        file=file,
        line=line,
        keywords=tuple(entry.when.keywords),
        formats=tuple(entry.when.formats),
        skills=tuple(entry.when.skills),
        prior_relationship=tuple(entry.when.prior_relationship),
        languages=tuple(entry.when.languages),
        pool_skills=tuple(s.lower() for s in entry.candidates.skills),
        pool_mentors=tuple(m.lower() for m in entry.candidates.mentors),
        pool_libraries=tuple(entry.candidates.libraries),
        rank=tuple(entry.rank),
        policy=policy,
    )

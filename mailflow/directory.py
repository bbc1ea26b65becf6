"""The mentor directory, `rules/mentors.toml`: one `[[mentor]]` table per mentor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .availability import parse_availability
from .config import Email, FormatName, ZoneName
from .form import FORMATS
from .model import Window
from .tomlsource import Issue, TomlSource

DIRECTORY_FILE = "mentors.toml"


def _window(value: str) -> str:
    parse_availability([value])
    return value


def _free_busy(value: str) -> str:
    text = value.strip()
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme and scheme not in ("http", "https", "webcal"):
        raise ValueError(f"free_busy must be an http(s) or webcal URL or an .ics file, not {scheme}://")
    if not scheme and text and not text.lower().endswith(".ics"):
        raise ValueError(f"free_busy {text!r} must be an .ics file (relative to the rules folder) or a URL")
    return text


def _away(value: str) -> str:
    parse_away(value)
    return value


# Each entry is checked on its own, so an error names the entry (and its line).
WindowText = Annotated[str, AfterValidator(_window)]
AwayText = Annotated[str, AfterValidator(_away)]


class MentorEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    name: str = Field(min_length=1)
    library: str = ""
    skills: list[str] = []
    formats: list[FormatName] = list(FORMATS)
    languages: list[str] = ["en"]
    time_zone: ZoneName
    availability: list[WindowText] = Field(min_length=1)
    max_hours_per_month: float = Field(default=4, gt=0)
    max_active: int = Field(default=2, ge=1)
    away: list[AwayText] = []
    video_link: str = ""
    location: str = ""
    phone: str = ""
    knows: list[Email] = []
    free_busy: Annotated[str, AfterValidator(_free_busy)] = ""


@dataclass(frozen=True)
class Mentor:
    email: str
    name: str
    library: str
    skills: tuple[str, ...]
    formats: tuple[str, ...]
    languages: tuple[str, ...]
    time_zone: str
    availability: tuple[Window, ...]
    max_hours_per_month: float
    max_active: int
    away: tuple[tuple[date, date], ...]
    video_link: str
    location: str
    phone: str
    knows: frozenset[str]
    line: int | None = None
    free_busy: str = ""  # an .ics file (relative to the rules folder) or an http(s)/webcal URL

    def is_away(self, day: date) -> bool:
        return any(first <= day <= last for first, last in self.away)


def parse_away(text: str) -> tuple[date, date]:
    """`2026-12-20..2027-01-04` (inclusive) or a single day `2026-12-24`."""
    first, _, last = text.partition("..")
    try:
        start = date.fromisoformat(first.strip())
        end = date.fromisoformat(last.strip()) if last else start
    except ValueError as error:
        raise ValueError(f"away period {text!r} must look like '2026-12-20..2027-01-04'") from error
    if end < start:
        raise ValueError(f"away period {text!r} ends before it starts")
    return start, end


def load_directory(path: Path) -> tuple[list[Mentor], list[Issue]]:
    source, issues = TomlSource.load(path)
    if source is None:
        return [], issues
    entries = source.data.get("mentor", [])
    extra = sorted(set(source.data) - {"mentor"})
    issues = [
        Issue(
            str(path),
            source.table_line(key) or source.key_line(key),
            f"unknown table '{key}'; the directory holds only [[mentor]] tables",
        )
        for key in extra
    ]
    mentors: list[Mentor] = []
    seen: dict[str, int | None] = {}
    for index, data in enumerate(entries if isinstance(entries, list) else []):
        line = source.table_line("mentor", index)
        label = f"mentor #{index + 1}" + (f" ({data.get('email')})" if isinstance(data, dict) else "")
        entry, problems = source.validate(MentorEntry, data, header="mentor", index=index, label=label)
        issues.extend(problems)
        if entry is None:
            continue
        email = entry.email.lower()
        if email in seen:
            issues.append(
                Issue(
                    str(path),
                    line,
                    f"{label}: {email} is already listed at line {seen[email]}; each mentor appears once",
                )
            )
            continue
        seen[email] = line
        mentors.append(_mentor(entry, line))
    if not mentors and not issues:
        issues.append(Issue(str(path), None, "no [[mentor]] tables: add at least one mentor"))
    return mentors, issues


def _mentor(entry: MentorEntry, line: int | None) -> Mentor:
    return Mentor(
        email=entry.email.lower(),
        name=entry.name,
        library=entry.library,
        skills=tuple(s.strip().lower() for s in entry.skills),
        formats=tuple(entry.formats),
        languages=tuple(entry.languages),
        time_zone=entry.time_zone,
        availability=tuple(parse_availability(list(entry.availability))),
        max_hours_per_month=entry.max_hours_per_month,
        max_active=entry.max_active,
        away=tuple(parse_away(a) for a in entry.away),
        video_link=entry.video_link,
        location=entry.location,
        phone=entry.phone,
        knows=frozenset(k.lower() for k in entry.knows),
        line=line,
        free_busy=entry.free_busy,
    )


def by_email(mentors: Iterable[Mentor]) -> dict[str, Mentor]:
    return {m.email: m for m in mentors}

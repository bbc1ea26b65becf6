"""The request form: `Field: value` lines -> a `RequestForm` and the `Problem`s found.

Keys are case-insensitive, may be bulleted or bold, may carry a parenthesis
(`Topic (what I need):`), and have English and Spanish synonyms. Values are checked
here, so every problem can be named in one reply to the protégé.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from .availability import parse_availability
from .budget import parse_budget
from .errors import ParseError
from .model import Problem, RequestForm

SYNONYMS: dict[str, tuple[str, ...]] = {
    "topic": (
        "topic",
        "what i need",
        "what i need help with",
        "need",
        "i need",
        "request",
        "help with",
        "challenge",
        "subject",
        "tema",
        "necesito",
        "lo que necesito",
        "asunto",
    ),
    "budget": (
        "time budget",
        "time",
        "budget",
        "duration",
        "how long",
        "length",
        "time commitment",
        "time needed",
        "time available",
        "tiempo",
        "duracion",
        "presupuesto de tiempo",
        "tiempo disponible",
    ),
    "format": ("format", "meeting format", "mode", "medium", "how", "formato", "modalidad"),
    "skills": (
        "skills",
        "skills wanted",
        "skills needed",
        "expertise",
        "areas",
        "keywords",
        "habilidades",
        "competencias",
        "areas de experiencia",
    ),
    "goal": (
        "goal",
        "goals",
        "success",
        "what success looks like",
        "outcome",
        "objective",
        "objetivo",
        "meta",
    ),
    "prior_relationship": (
        "prior relationship",
        "relationship",
        "existing relationship",
        "previous mentor",
        "relacion previa",
        "relacion",
    ),
    "preferred_mentor": (
        "preferred mentor",
        "mentor",
        "mentor preference",
        "mentor preferido",
        "mentora preferida",
        "preferred",
    ),
    "availability": (
        "availability",
        "available",
        "when",
        "times",
        "schedule",
        "disponibilidad",
        "horario",
    ),
    "time_zone": ("time zone", "timezone", "tz", "zona horaria", "huso horario"),
    "recording": ("recording", "record", "ok to record", "grabacion", "grabar"),
    "questions": ("questions", "my questions", "question", "preguntas", "pregunta"),
    "name": ("name", "your name", "full name", "nombre"),
    "library": ("library", "branch", "organization", "organisation", "institution", "biblioteca"),
}
FIELD_LABELS = {
    "topic": "Topic",
    "budget": "Time budget",
    "format": "Format",
    "skills": "Skills",
    "goal": "Goal",
    "prior_relationship": "Prior relationship",
    "preferred_mentor": "Preferred mentor",
    "availability": "Availability",
    "time_zone": "Time zone",
    "recording": "Recording",
    "questions": "Questions",
    "name": "Name",
    "library": "Library",
}
SPANISH_KEYS = {
    "tema",
    "necesito",
    "lo que necesito",
    "tiempo",
    "duracion",
    "formato",
    "habilidades",
    "objetivo",
    "disponibilidad",
    "zona horaria",
    "preguntas",
    "nombre",
    "biblioteca",
    "grabacion",
    "relacion previa",
    "modalidad",
    "presupuesto de tiempo",
    "tiempo disponible",
}
FORMATS: dict[str, tuple[str, ...]] = {
    "video": (
        "video",
        "video call",
        "videocall",
        "zoom",
        "teams",
        "google meet",
        "meet",
        "online",
        "virtual",
        "webex",
        "videollamada",
        "en linea",
        "remote",
    ),
    "in person": (
        "in person",
        "in-person",
        "face to face",
        "face-to-face",
        "f2f",
        "on site",
        "onsite",
        "presencial",
        "en persona",
    ),
    "phone": ("phone", "telephone", "phone call", "call", "telefono", "llamada", "por telefono"),
    "shadowing": (
        "shadowing",
        "shadow",
        "job shadow",
        "job shadowing",
        "observe",
        "observation",
        "acompanamiento",
        "observacion",
    ),
}
RELATIONSHIPS: dict[str, tuple[str, ...]] = {
    "not needed": (
        "not needed",
        "no",
        "none",
        "not necessary",
        "n/a",
        "na",
        "no preference",
        "not required",
        "doesn't matter",
        "no es necesaria",
        "no necesaria",
        "no hace falta",
        "new mentor is fine",
        "anyone",
    ),
    "preferred": (
        "preferred",
        "prefer",
        "preferable",
        "nice to have",
        "ideally",
        "if possible",
        "would be nice",
        "preferida",
        "de preferencia",
        "si es posible",
    ),
    "required": (
        "required",
        "must",
        "needed",
        "necessary",
        "essential",
        "yes",
        "requerida",
        "obligatoria",
        "necesaria",
        "imprescindible",
    ),
}
YES = ("yes", "y", "ok", "okay", "fine", "sure", "allowed", "si", "sí", "of course", "true")
NO = ("no", "n", "not", "none", "prefer not", "please don't", "please do not", "false", "no thanks")
ZONE_ALIASES = {
    "pacific": "America/Los_Angeles",
    "pt": "America/Los_Angeles",
    "pst": "America/Los_Angeles",
    "pdt": "America/Los_Angeles",
    "mountain": "America/Denver",
    "mt": "America/Denver",
    "mst": "America/Denver",
    "mdt": "America/Denver",
    "central": "America/Chicago",
    "ct": "America/Chicago",
    "cst": "America/Chicago",
    "cdt": "America/Chicago",
    "eastern": "America/New_York",
    "et": "America/New_York",
    "est": "America/New_York",
    "edt": "America/New_York",
    "utc": "UTC",
    "gmt": "Europe/London",
    "uk": "Europe/London",
}
_KEY_OF = {s: key for key, names in SYNONYMS.items() for s in names}
_BULLET = re.compile(r"^\s*(?:[-*•·◦‣▪–—>]+|\d{1,2}[.)])\s+")
_LINE = re.compile(r"^\**\s*(?P<key>[^:：]{1,60}?)\s*\**\s*[:：]\s*\**\s*(?P<value>.*?)\s*$")


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"\(.*?\)", " ", text)
    text = re.sub(r"[^\w/' -]", " ", text)
    return " ".join(text.split())


@dataclass
class ParsedForm:
    form: RequestForm
    problems: list[Problem] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # the fields the text actually gave


def split_fields(text: str) -> dict[str, list[str]]:
    """The raw `Field: value` lines of a text, by canonical field name; continuation lines kept."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    blank_before = False
    for raw_line in text.split("\n"):
        line = raw_line.strip()
        if not line:
            blank_before = current is not None
            continue
        bare = _BULLET.sub("", line).strip()
        match = _LINE.match(bare)
        key = _KEY_OF.get(_plain(match["key"])) if match else None
        if match and key:
            current = key
            found[key] = [match["value"].strip("* ")] if match["value"].strip("* ") else []
            blank_before = False
            continue
        if match and not key:
            current = None  # an unknown `Key: value` line ends the field before it
            continue
        if current is None:
            continue
        bulleted = bare != line
        if current == "questions":
            if blank_before and not (bulleted or bare.endswith("?")):
                current = None
                continue
            found[current].append(bare)
        elif blank_before:
            current = None
        else:
            found[current].append(bare)
        blank_before = False
    return found


def parse_form(text: str, *, max_budget: timedelta, shadowing_minutes: int = 60) -> ParsedForm:
    """Read every field in `text` and check its value."""
    raw = split_fields(text)
    form = RequestForm()
    problems: list[Problem] = []
    keys_used = {
        _plain(m["key"]) for line in text.split("\n") if (m := _LINE.match(_BULLET.sub("", line.strip())))
    }
    if keys_used & SPANISH_KEYS:
        form.language = "es"

    def value(key: str) -> str | None:
        lines = raw.get(key)
        joined = " ".join(lines).strip() if lines else ""
        return joined or None

    form.topic = value("topic")
    form.goal = value("goal")
    form.name = value("name")
    form.library = value("library")
    form.preferred_mentor = value("preferred_mentor")
    form.questions = [q for q in raw.get("questions", []) if q.strip()]
    if skills := value("skills"):
        form.skills = [s.strip(" .") for s in re.split(r"[,;/]|\band\b|\by\b", skills) if s.strip(" .")]

    if text_budget := value("budget"):
        form.budget_text = text_budget
        try:
            form.budget = parse_budget(text_budget, shadowing_minutes=shadowing_minutes)
        except ParseError as error:
            problems.append(Problem("Time budget", str(error)))
    if form.budget and form.budget.total > max_budget:
        problems.append(
            Problem(
                "Time budget",
                f"{form.budget.describe()} adds up to {form.budget.total_minutes} minutes, more than "
                f"this programme's limit of {int(max_budget.total_seconds() // 60)} minutes; "
                "please ask for less time",
            )
        )

    if text_format := value("format"):
        form.format = _one_of(text_format, FORMATS)
        if form.format is None:
            problems.append(
                Problem("Format", f"{text_format!r} is not one of: video, in person, phone, shadowing")
            )
    elif form.budget and any(s.kind == "shadowing" for s in form.budget.sessions):
        form.format = "shadowing"

    if text_rel := value("prior_relationship"):
        relationship = _one_of(text_rel, RELATIONSHIPS)
        if relationship is None:
            problems.append(
                Problem(
                    "Prior relationship",
                    f"{text_rel!r} is not one of: not needed, preferred, required",
                )
            )
        else:
            form.prior_relationship = relationship

    if text_avail := value("availability"):
        form.availability_text = text_avail
        try:
            form.availability = parse_availability(text_avail)
        except ParseError as error:
            problems.append(Problem("Availability", str(error)))

    if text_zone := value("time_zone"):
        form.time_zone = resolve_zone(text_zone)
        if form.time_zone is None:
            problems.append(
                Problem(
                    "Time zone",
                    f"{text_zone!r} is not a time zone name; write "
                    "one like America/Los_Angeles or Europe/Madrid",
                )
            )

    if text_rec := value("recording"):
        answer = _plain(text_rec)
        if answer in NO or answer.startswith(("no ", "not ", "prefer not")):
            form.recording = False
        elif answer in YES or answer.startswith(("yes", "si ")):
            form.recording = True
        else:
            problems.append(Problem("Recording", f"{text_rec!r}: please answer yes or no"))

    return ParsedForm(form=form, problems=problems, seen=set(raw))


def required_problems(form: RequestForm) -> list[Problem]:
    problems = []
    if not form.topic:
        problems.append(Problem("Topic", "missing: say in one line what you need help with"))
    if not form.budget_text:
        problems.append(
            Problem(
                "Time budget",
                "missing: say how much time you are asking for, "
                "like '45 minutes' or '2 x 30 minutes over 2 weeks'",
            )
        )
    return problems


def merge(earlier: RequestForm, later: ParsedForm) -> RequestForm:
    """A completion reply: the fields it gives replace the earlier ones, the rest stay."""
    updates: dict[str, Any] = {}
    for key in later.seen:
        if key == "budget":
            updates["budget_text"] = later.form.budget_text
            updates["budget"] = later.form.budget
        elif key == "availability":
            updates["availability_text"] = later.form.availability_text
            updates["availability"] = later.form.availability
        else:
            updates[key] = getattr(later.form, key)
    if "format" not in later.seen and "budget" in later.seen and later.form.format:
        updates["format"] = later.form.format
    merged = replace(earlier, **updates)
    if later.form.language == "es":
        merged.language = "es"
    return merged


def resolve_zone(text: str) -> str | None:
    """An IANA zone name (any case) or a common North American / UK alias."""
    cleaned = text.strip().split()[0] if text.strip() else ""
    alias = ZONE_ALIASES.get(_plain(text)) or ZONE_ALIASES.get(cleaned.lower())
    if alias:
        return alias
    by_lower = {zone.lower(): zone for zone in _zones()}
    zone = by_lower.get(cleaned.lower())
    if zone:
        ZoneInfo(zone)
    return zone


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return _ZONES


def _one_of(text: str, table: dict[str, tuple[str, ...]]) -> str | None:
    answer = _plain(text)
    for canonical, words in table.items():
        if answer in words or answer == canonical:
            return canonical
    for canonical, words in table.items():  # "video (Zoom is fine)", "in person please"
        if any(re.search(rf"\b{re.escape(w)}\b", answer) for w in words if len(w) > 2):
            return canonical
    return None

"""Reading what people answer: the reply words of PRODUCT.md, never a guess.

    accept | yes | happy to                 -> ACCEPT (the protégé's budget)
    accept 45 minutes                       -> ACCEPT with a counter-offered budget
    decline | no | can't  [+ reason]        -> DECLINE
    cancel                                  -> CANCEL
    anything else, or both yes and no       -> UNCLEAR

After the introduction either party (or the coordinator) may write `reschedule
[reason]` (`is_reschedule`): the sessions still ahead move to the next common time.

Only the first substantive line decides (greetings are skipped); a reason may follow
on the same line or the next ones.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from dateutil import parser as dateparser

from .budget import parse_budget
from .durations import find_amounts, words_to_numbers
from .errors import ParseError
from .model import Budget


class Intent(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    CANCEL = "cancel"
    UNCLEAR = "unclear"


@dataclass(frozen=True)
class Answer:
    intent: Intent
    counter: Budget | None = None
    reason: str = ""
    problem: str = ""  # why a counter-offer could not be read


_GREETING = re.compile(
    r"^(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|hola|buenos d[ií]as|"
    r"buenas tardes|greetings|thanks|thank you|gracias)\b[^.!?]*[,.!:]?$",
    re.IGNORECASE,
)
_NEUTRAL = re.compile(r"\bno (?:problem|worries|doubt)\b|\bnot a problem\b|\bsin problema\b", re.IGNORECASE)
_HEDGE = re.compile(
    r"\b(?:not sure|unsure|maybe|perhaps|might|not certain|let me (?:check|think)|"
    r"i'?ll (?:check|think|let you know)|depends|tal vez|quiz[aá]s|no s[eé])\b",
    re.IGNORECASE,
)
_CANCEL = re.compile(
    r"^(?:please\s+)?(?:cancel|cancelar|cancela|cancelo)\b|^i(?:'d| would)? (?:like|want) to cancel\b"
    r"|^we need to cancel\b|^please cancel\b",
    re.IGNORECASE,
)
_RESCHEDULE = re.compile(
    r"^(?:please\s+|can we\s+|could we\s+|i need to\s+|we need to\s+)?"
    r"(?:re-?schedule|reprogramar|cambiar (?:la )?(?:hora|fecha))\b",
    re.IGNORECASE,
)
_ACCEPT = re.compile(
    r"\b(?:accept(?:ed|ing)?|yes|yep|yeah|happy to|glad to|delighted to|sure|"
    r"of course|count me in|i can do (?:it|that)|i'?d love to|absolutely|"
    r"s[ií]|acepto|con gusto|claro)\b",
    re.IGNORECASE,
)
_DECLINE = re.compile(
    r"\b(?:decline[sd]?|declining|no|nope|can'?t|cannot|can not|won'?t be able|"
    r"unable|not able|not available|unavailable|not this time|pass|"
    r"no puedo|lo siento|rechazo)\b",
    re.IGNORECASE,
)


def _plain(line: str) -> str:
    """Normalised for matching; the case is kept so a reason reads as it was written."""
    line = unicodedata.normalize("NFKC", line).replace("’", "'").strip()
    return line.strip(" *_>-–—:;,.!")


def substantive_lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    while lines and _GREETING.match(_plain(lines[0])) and len(lines) > 1:
        lines.pop(0)
    return lines


def read_answer(text: str, *, shadowing_minutes: int = 60) -> Answer:
    """What a mentor's reply says, from its new text only."""
    lines = substantive_lines(text)
    if not lines:
        return Answer(Intent.UNCLEAR)
    first = _plain(lines[0])
    rest = " ".join(lines[1:])
    if _CANCEL.search(first):
        return Answer(Intent.CANCEL, reason=_after(first, _CANCEL) or rest)
    scrubbed = _NEUTRAL.sub(" ", first)
    if _HEDGE.search(scrubbed):
        return Answer(Intent.UNCLEAR)
    accepts, declines = _ACCEPT.search(scrubbed), _DECLINE.search(scrubbed)
    if accepts and declines:
        return Answer(Intent.UNCLEAR)
    if declines:
        reason = _after(first, _DECLINE) or rest
        return Answer(Intent.DECLINE, reason=reason.strip(" ,.-–—:;")[:500])
    if accepts:
        remainder = scrubbed[accepts.end() :]
        if find_amounts(words_to_numbers(remainder)):
            try:
                return Answer(
                    Intent.ACCEPT,
                    counter=parse_budget(_budget_words(remainder), shadowing_minutes=shadowing_minutes),
                )
            except ParseError as error:
                return Answer(Intent.UNCLEAR, problem=str(error))
        return Answer(Intent.ACCEPT)
    return Answer(Intent.UNCLEAR)


def is_cancel(text: str) -> bool:
    lines = substantive_lines(text)
    return bool(lines) and bool(_CANCEL.search(_plain(lines[0])))


def is_reschedule(text: str) -> bool:
    lines = substantive_lines(text)
    return bool(lines) and bool(_RESCHEDULE.search(_plain(lines[0])))


def reschedule_reason(text: str) -> str:
    """What follows `reschedule` on its line: `reschedule - I am ill that week` -> `I am ill that week`."""
    lines = substantive_lines(text)
    return _after(_plain(lines[0]), _RESCHEDULE).strip(" ?!,.")[:300] if lines else ""


def _after(line: str, pattern: re.Pattern[str]) -> str:
    match = pattern.search(line)
    return line[match.end() :].strip(" ,.-–—:;") if match else ""


def _budget_words(text: str) -> str:
    """`, but only 30 minutes please` -> `30 minutes`: drop the words around the budget."""
    text = re.sub(
        r"\b(?:but|only|just|please|for|with|can do|i can|of|a|max(?:imum)?|up to|"
        r"happy|to|offer|instead|at most|about|around)\b",
        " ",
        text,
    )
    return " ".join(text.replace(",", " ").split()).strip(" .!-–—:")


REFLECTION_KEYS = {
    "worked": ("what worked", "worked", "lo que funciono", "que funciono"),
    "did_not_work": (
        "what didn't",
        "what didn't work",
        "what did not work",
        "didn't work",
        "did not work",
        "lo que no funciono",
        "que no funciono",
    ),
    "will_try": (
        "what you'll try",
        "what i'll try",
        "what i will try",
        "i'll try",
        "will try",
        "next",
        "lo que probare",
        "que probare",
    ),
    "more_help": (
        "more help",
        "more help later",
        "would you like more help later",
        "would you like more help",
        "more help later?",
        "mas ayuda",
    ),
}


def read_reflection(text: str) -> dict[str, str]:
    """The answers to the reflection questions, where they are labelled; the rest is kept whole."""
    answers: dict[str, str] = {}
    current: str | None = None
    for raw in text.split("\n"):
        line = raw.strip().lstrip("-*•0123456789.) ").strip()
        labelled = re.match(r"^(.{3,60}?)[:?]\s*(.*)$", line)
        key = _reflection_key(labelled.group(1)) if labelled else None
        if key and labelled:
            value = labelled.group(2)
            current = key
            answers[key] = value.strip()
        elif current and line:
            answers[current] = (answers[current] + " " + line).strip()
    return answers


def _reflection_key(text: str) -> str | None:
    plain = _plain(unicodedata.normalize("NFKD", text)).lower()
    plain = "".join(c for c in plain if not unicodedata.combining(c)).rstrip("?")
    for key, names in REFLECTION_KEYS.items():
        if plain in names:
            return key
    return None


_RETURN = re.compile(
    r"\b(?:until|till|back (?:in the office )?on|back|return(?:ing)? (?:to the office )?on|returning|"
    r"return|away through|hasta el|hasta|regreso el|vuelvo el)\s+(?P<date>[^.;\n]{3,40})",
    re.IGNORECASE,
)


def read_return_date(text: str, now: datetime) -> datetime | None:
    """When an out-of-office reply says its writer is back, or None if it does not say.

    Reads phrases like "until Monday 14 December", "back on 2027-01-04", "returning
    January 4"; a date without a year is the next such date after `now`.
    """
    for match in _RETURN.finditer(text):
        phrase = re.sub(r"\b(?:the|of|on|at|in)\b", " ", match.group("date"))
        try:
            found = dateparser.parse(phrase, fuzzy=True, default=datetime(now.year, now.month, now.day))
        except (ValueError, OverflowError):
            continue
        if found is None:
            continue
        when = found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
        if when.date() < now.date() and not re.search(r"\b\d{4}\b", phrase):
            when = when.replace(year=when.year + 1)
        if now - timedelta(days=1) <= when <= now + timedelta(days=366):
            return when
    return None

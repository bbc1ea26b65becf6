"""Lengths of time written by people: `3d`, `90m`, `1.5 hours`, `half an hour`, `2 weeks`.

Used by the budget grammar (budget.py) and by every duration setting in config and rules.
"""

from __future__ import annotations

import re
from datetime import timedelta

from .errors import ParseError

MINUTES_PER_UNIT: dict[str, float] = {}
for _names, _minutes in (
    (("m", "min", "mins", "minute", "minutes", "minuto", "minutos"), 1),
    (("h", "hr", "hrs", "hour", "hours", "hora", "horas"), 60),
    (("d", "day", "days", "dia", "dias", "día", "días"), 60 * 24),
    (("w", "wk", "wks", "week", "weeks", "semana", "semanas"), 60 * 24 * 7),
):
    for _name in _names:
        MINUTES_PER_UNIT[_name] = _minutes

UNIT_PATTERN = "|".join(sorted(map(re.escape, MINUTES_PER_UNIT), key=len, reverse=True))

NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "forty-five": 45,
    "fortyfive": 45,
    "sixty": 60,
    "ninety": 90,
    "un": 1,
    "una": 1,
    "uno": 1,
    "dos": 2,
    "tres": 3,
    "cuatro": 4,
    "cinco": 5,
    "seis": 6,
    "diez": 10,
    "quince": 15,
    "veinte": 20,
    "treinta": 30,
    "noventa": 90,
    "single": 1,
    "couple": 2,
    "pair": 2,
}

# "half an hour" and friends are rewritten before numbers are read.
_PHRASES = (
    (r"\ban hour and a half\b|\bone and a half hours?\b|\bhour and a half\b", "90 minutes"),
    (r"\bhora y media\b", "90 minutos"),
    (r"\bhalf an hour\b|\ba half hour\b|\bhalf hour\b|\bmedia hora\b", "30 minutes"),
    (r"\bquarter of an hour\b|\ba quarter hour\b", "15 minutes"),
)

# One amount: `45 minutes`, `1.5h`, `90m`, `45-minute`, `1h30`, `1:30 hours`.
# `1 hour 30 minutes` is two amounts; callers add up amounts that stand side by side.
_AMOUNT = re.compile(
    rf"(?P<num>\d+(?:[.,]\d+)?)\s*-?\s*(?P<unit>{UNIT_PATTERN})(?![a-zá-ú])"
    r"(?:(?<=h)(?P<rest>[0-5]\d)\b)?",
)
_CLOCK = re.compile(r"\b(?P<h>\d{1,2}):(?P<m>[0-5]\d)\s*(?:h|hours?|hrs?)\b")


def words_to_numbers(text: str) -> str:
    """Lower-case `text`, rewrite common phrases and number words as digits."""
    text = text.lower().replace("\u2011", "-").replace("\u2013", "-").replace("\u00a0", " ")
    for pattern, replacement in _PHRASES:
        text = re.sub(pattern, replacement, text)

    def number(match: re.Match[str]) -> str:
        return str(NUMBER_WORDS[match.group(0)])

    words = "|".join(sorted(map(re.escape, NUMBER_WORDS), key=len, reverse=True))
    # A word number only counts when a unit or a count follows it ("an hour", "two 30-minute calls"),
    # so the article "a" in "a meeting" stays a word.
    return re.sub(
        rf"\b(?:{words})\b(?=[\s-]*(?:\d|{UNIT_PATTERN}\b|x\b|sessions?\b|calls?\b|"
        rf"conversations?\b|meetings?\b|chats?\b|sesi[oó]n(?:es)?\b|llamadas?\b))",
        number,
        text,
    )


def find_amounts(text: str) -> list[tuple[int, int, float]]:
    """Every amount of time in already-normalised `text`: (start, end, minutes)."""
    found: list[tuple[int, int, float]] = []
    for match in _CLOCK.finditer(text):
        found.append((match.start(), match.end(), int(match["h"]) * 60 + int(match["m"])))
    taken = [(s, e) for s, e, _ in found]
    for match in _AMOUNT.finditer(text):
        if any(s <= match.start() < e for s, e in taken):
            continue
        value = float(match["num"].replace(",", "."))
        minutes = value * MINUTES_PER_UNIT[match["unit"]]
        if match["rest"]:
            minutes += int(match["rest"])
        found.append((match.start(), match.end(), minutes))
    return sorted(found)


def parse_duration(text: str) -> timedelta:
    """Read a whole string as one length of time: `3d`, `6h`, `45 minutes`, `1 week`."""
    normalised = words_to_numbers(str(text)).strip()
    amounts = find_amounts(normalised)
    leftover = normalised
    for start, end, _ in reversed(amounts):
        leftover = leftover[:start] + leftover[end:]
    if not amounts or re.sub(r"[\s,+]|and", "", leftover):
        raise ParseError(
            f"cannot read {text!r} as a length of time; write it like '3d', '6h', '90m' or '45 minutes'"
        )
    return timedelta(minutes=sum(minutes for _, _, minutes in amounts))


def format_duration(delta: timedelta) -> str:
    """`timedelta(minutes=90)` -> `1h 30m`; the short form used in status and logs."""
    total = int(delta.total_seconds() // 60)
    days, rest = divmod(total, 60 * 24)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    return " ".join(p for p in parts if p) or "0m"


def describe_minutes(minutes: int) -> str:
    """45 -> `45 minutes`; 60 -> `1 hour`; 90 -> `1 hour 30 minutes`."""
    hours, rest = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(f"{hours} hour" + ("s" if hours != 1 else ""))
    if rest or not hours:
        parts.append(f"{rest} minute" + ("s" if rest != 1 else ""))
    return " ".join(parts)

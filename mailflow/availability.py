"""Weekly availability as people write it -> `Window`s in their local time.

Tue 15:00-17:00          (the mentor directory's form)
Mon-Fri 09:00-12:00
weekday afternoons       -> Mon..Fri 12:00-17:00
Tue/Thu 2-5pm            -> Tue, Thu 14:00-17:00
Mondays after 3pm        -> Mon 15:00-18:00
mornings                 -> Mon..Fri 09:00-12:00
flexible / any time      -> no constraint (an empty list)
"""

from __future__ import annotations

import re
import unicodedata
from datetime import time

from .errors import ParseError
from .model import Window

WEEKDAYS = (0, 1, 2, 3, 4)
_DAY_NAMES = {
    0: ("mon", "monday", "lun", "lunes"),
    1: ("tue", "tues", "tuesday", "mar", "martes"),
    2: ("wed", "weds", "wednesday", "mie", "miercoles"),
    3: ("thu", "thur", "thurs", "thursday", "jue", "jueves"),
    4: ("fri", "friday", "vie", "viernes"),
    5: ("sat", "saturday", "sab", "sabado"),
    6: ("sun", "sunday", "dom", "domingo"),
}
_DAY_OF = {name: day for day, names in _DAY_NAMES.items() for name in names}
_DAY_WORD = r"(?:{})s?\b".format("|".join(sorted(_DAY_OF, key=len, reverse=True)))
_GROUPS = {
    r"\bweekdays?\b|\bwork ?days?\b|\bentre semana\b|\bd[ií]as laborables\b|\bany weekday\b": WEEKDAYS,
    r"\bweekends?\b|\bfines de semana\b": (5, 6),
    r"\bany ?day\b|\bdaily\b|\bevery ?day\b|\bcualquier d[ií]a\b": (0, 1, 2, 3, 4, 5, 6),
}
_PARTS_OF_DAY = {
    r"\bmornings?\b|\bam\b only|\bma[nñ]anas?\b": (time(9), time(12)),
    r"\bafternoons?\b|\btardes?\b": (time(12), time(17)),
    r"\bevenings?\b|\bnoches?\b": (time(17), time(20)),
    r"\blunch ?times?\b|\bover lunch\b|\bmediod[ií]a\b": (time(12), time(13)),
    r"\ball day\b|\bworking hours\b|\bbusiness hours\b|\bany time\b|\banytime\b": (
        time(9),
        time(17),
    ),
}
_NO_CONSTRAINT = re.compile(
    r"^(?:flexible|any ?time|whenever|open|no preference|none|n/?a|any|cualquier momento|flexible\W*)$"
)
_CLOCK = r"(?P<{n}h>\d{{1,2}})(?:[:.h](?P<{n}m>[0-5]\d))?\s*(?P<{n}ap>a\.?m\.?|p\.?m\.?)?"
_RANGE = re.compile(
    r"(?:from\s+|de\s+)?"
    + _CLOCK.format(n="s")
    + r"\s*(?:-|–|to|until|till|a|hasta)\s*"
    + _CLOCK.format(n="e")
)
_AFTER = re.compile(r"\b(?:after|from|despu[eé]s de las?|desde las?)\s+" + _CLOCK.format(n="s"))
_BEFORE = re.compile(r"\b(?:before|until|antes de las?|hasta las?)\s+" + _CLOCK.format(n="e"))
_DEFAULT_HOURS = (time(9), time(17))
_DAY_END = time(18)
_DAY_START = time(9)


def parse_availability(text: str | list[str] | None) -> list[Window]:
    """Read availability; raises `ParseError` naming the part that cannot be read."""
    if not text:
        return []
    chunks = text if isinstance(text, list) else re.split(r"[;\n]|,(?![^()]*\))|\bor\b|\bo\b", text)
    windows: list[Window] = []
    for chunk in chunks:
        cleaned = _plain(chunk)
        if not cleaned or _NO_CONSTRAINT.match(cleaned):
            continue
        windows.extend(_read_chunk(cleaned, chunk.strip()))
    return windows


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.replace("&", " and ").split()).strip(" .,")


def _read_chunk(text: str, original: str) -> list[Window]:
    days = _read_days(text)
    hours = _read_hours(text)
    if days is None and hours is None:
        raise ParseError(
            f"cannot read the availability {original!r}; write it like 'weekday afternoons', "
            "'Tue/Thu 2-5pm' or 'Mon 09:00-12:00'"
        )
    start, end = hours or _DEFAULT_HOURS
    if end <= start:
        raise ParseError(f"the availability {original!r} ends before it starts")
    return [Window(weekdays=tuple(sorted(days or WEEKDAYS)), start=start, end=end)]


def _read_days(text: str) -> set[int] | None:
    days: set[int] = set()
    for pattern, group in _GROUPS.items():
        if re.search(pattern, text):
            days.update(group)
    span = re.search(rf"\b({_DAY_WORD})\s*(?:-|–|to|through|thru|a)\s*({_DAY_WORD})", text)
    if span:
        first, last = _day(span.group(1)), _day(span.group(2))
        day = first
        while True:
            days.add(day)
            if day == last:
                break
            day = (day + 1) % 7
        text = text[: span.start()] + text[span.end() :]
    for match in re.finditer(rf"\b{_DAY_WORD}", text):
        days.add(_day(match.group(0)))
    return days or None


def _day(word: str) -> int:
    word = word.strip()
    return _DAY_OF[word] if word in _DAY_OF else _DAY_OF[word.rstrip("s")]


def _read_hours(text: str) -> tuple[time, time] | None:
    match = _RANGE.search(text)
    if match:
        return _clock_pair(match)
    after, before = _AFTER.search(text), _BEFORE.search(text)
    if after or before:
        start = _clock(after["sh"], after["sm"], after["sap"], afternoon_guess=True) if after else _DAY_START
        end = _clock(before["eh"], before["em"], before["eap"], afternoon_guess=True) if before else _DAY_END
        return start, end
    for pattern, hours in _PARTS_OF_DAY.items():
        if re.search(pattern, text):
            return hours
    return None


def _clock_pair(match: re.Match[str]) -> tuple[time, time]:
    start_ap, end_ap = match["sap"], match["eap"]
    if start_ap is None and end_ap is not None and int(match["sh"]) <= int(match["eh"]) < 12:
        start_ap = end_ap  # "2-5pm": both afternoon
    start = _clock(match["sh"], match["sm"], start_ap, afternoon_guess=end_ap is None)
    end = _clock(match["eh"], match["em"], end_ap, afternoon_guess=end_ap is None)
    if end <= start and end.hour < 12 and end_ap is None:
        end = time(end.hour + 12, end.minute)  # "10-2" means 10:00-14:00
    return start, end


def _clock(hour: str, minute: str | None, ampm: str | None, *, afternoon_guess: bool) -> time:
    h, m = int(hour), int(minute or 0)
    if ampm:
        if ampm.startswith("p") and h < 12:
            h += 12
        elif ampm.startswith("a") and h == 12:
            h = 0
    elif afternoon_guess and 1 <= h <= 7:
        h += 12  # nobody means 3 in the morning
    if h == 24 and m == 0:
        return time(23, 59)
    if not (0 <= h <= 23):
        raise ParseError(f"{hour}:{minute or '00'} is not a time of day")
    return time(h, m)

"""The time budget grammar: what a protégé writes -> a `Budget` of sessions.

    30 minutes                                -> one 30-minute conversation
    1.5 hours, 90m, 1h30                      -> one 90-minute conversation
    one 45-minute conversation                -> one 45-minute conversation
    2 x 30 minutes over 2 weeks               -> two 30-minute conversations, 14 days apart at most
    three 20-minute calls                     -> three 20-minute conversations
    shadow a meeting then a 30 minute debrief -> a shadowing slot (default length) + a 30-minute debrief

A budget is a sequence of parts joined by "then" / "followed by" / "+"; each part may
carry a count (`2 x`, `two`, `3 sessions of`), a length, a kind (shadowing, debrief,
conversation) and a span (`over 2 weeks`). Anything that cannot be read raises a
`ParseError` that says what to write instead.
"""

from __future__ import annotations

import re
from itertools import pairwise

from .durations import MINUTES_PER_UNIT, UNIT_PATTERN, find_amounts, words_to_numbers
from .errors import ParseError
from .model import Budget, SessionSpec

_THEN = re.compile(r"\s*(?:,?\s*(?:and\s+)?then\b|followed by|\+|;|\by luego\b|\bluego\b|\bdespu[eé]s\b)\s*")
_SPAN = re.compile(
    rf"\b(?:over|across|within|spread over|in|during|en|durante)\s+(?:the\s+next\s+|a\s+period\s+of\s+)?"
    rf"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>{UNIT_PATTERN})(?![a-z])"
)
_COUNT = re.compile(
    r"(?:^|\b)(?P<n>\d+)\s*(?:x|×|\*|times)\s*"
    r"|(?:^|\b)(?P<n2>\d+)\s+(?:sessions?|calls?|conversations?|meetings?|chats?|sesi[oó]n(?:es)?|llamadas?)\s+(?:of|de)\s+"
    r"|(?:^|\b)(?P<n3>\d+)\s+(?=\d+(?:[.,]\d+)?\s*-?\s*(?:m|min|mins|minutes?|h|hrs?|hours?|minutos?|horas?)\b)"
)
_SHADOW = re.compile(r"\bshadow|\bacompa[nñ]ar|\bobserv")
_DEBRIEF = re.compile(
    r"\bdebrief|\bfollow[- ]?up|\bwrap[- ]?up|\bcheck[- ]?in|\bseguimiento|\breuni[oó]n posterior"
)
_DAY_MINUTES = 60 * 24


def parse_budget(text: str, *, shadowing_minutes: int = 60) -> Budget:
    """Read a time budget; `shadowing_minutes` is used when a shadowing slot has no length."""
    original = " ".join(str(text).split())
    if not original:
        raise ParseError("the time budget is empty")
    normalised = words_to_numbers(original)

    span_days: int | None = None
    span = _SPAN.search(normalised)
    if span:
        minutes = float(span["num"]) * _unit_minutes(span["unit"])
        if minutes >= _DAY_MINUTES:
            span_days = round(minutes / _DAY_MINUTES)
            normalised = normalised[: span.start()] + normalised[span.end() :]

    sessions: list[SessionSpec] = []
    for part in _THEN.split(normalised):
        if part.strip(" ,.-"):
            sessions.extend(_read_part(part, original, shadowing_minutes))
    if not sessions:
        raise ParseError(f"cannot read a time budget in {original!r}")
    if len(sessions) == 1 and span_days is not None and sessions[0].kind == "call":
        span_days = None  # "30 minutes within 2 weeks": one session, the span is only a deadline
    return Budget(sessions=tuple(sessions), span_days=span_days, text=original)


def _read_part(part: str, original: str, shadowing_minutes: int) -> list[SessionSpec]:
    kind = "shadowing" if _SHADOW.search(part) else "debrief" if _DEBRIEF.search(part) else "call"
    count = 1
    count_match = _COUNT.search(part)
    if count_match:
        count = int(count_match["n"] or count_match["n2"] or count_match["n3"])
        part = part[: count_match.start()] + " " + part[count_match.end() :]
    amounts = [(s, e, m) for s, e, m in find_amounts(part) if m < _DAY_MINUTES]
    minutes = _add_neighbours(part, amounts)
    if minutes is None:
        if kind == "shadowing":
            return [SessionSpec("shadowing", shadowing_minutes, assumed=True)] * count
        raise ParseError(
            f"cannot read a length of time in {original!r}; write it like '45 minutes', "
            "'1 hour', '2 x 30 minutes over 2 weeks' or 'shadow a meeting then a 30 minute debrief'"
        )
    if not 5 <= minutes <= 8 * 60:
        raise ParseError(
            f"{minutes:g} minutes in one session ({original!r}) is outside 5 minutes to 8 hours; "
            "split a long budget into sessions, like '2 x 2 hours over 2 weeks'"
        )
    if count < 1 or count > 12:
        raise ParseError(f"{count} sessions in {original!r} is more than a micro mentoring budget")
    return [SessionSpec(kind, round(minutes))] * count


def _add_neighbours(part: str, amounts: list[tuple[int, int, float]]) -> float | None:
    """`1 hour 30 minutes` is one length; `45 minutes or 1 hour` is ambiguous."""
    if not amounts:
        return None
    total = amounts[0][2]
    for (_, end, _), (start, _, minutes) in pairwise(amounts):
        if re.fullmatch(r"\s*(?:and|y|,)?\s*", part[end:start]):
            total += minutes
        else:
            raise ParseError(
                f"{part.strip()!r} names more than one length of time; give one, like '45 minutes'"
            )
    return total


def _unit_minutes(unit: str) -> float:
    return MINUTES_PER_UNIT[unit]

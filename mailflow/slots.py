"""Slot finding: when the sessions of an agreed budget can take place.

Every session must fall inside the mentor's weekly availability (in the mentor's
time zone) and the protégé's (in theirs, or the configured default hours), on a day
the mentor is not away, after the minimum notice, before the horizon, and clear of
every interval the mentor is busy: sessions already booked through mailflow and the
busy times of their free/busy calendar (freebusy.py). Times are computed in UTC from
each person's local wall-clock windows, so daylight-saving changes in either zone,
on different dates in different zones, are respected.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .directory import Mentor
from .model import Budget, SessionSpec, Window

Interval = tuple[datetime, datetime]
UTC = ZoneInfo("UTC")
MAX_FIRST_STARTS = 400  # start times tried for the first session of a budget with a span


@dataclass(frozen=True)
class PlannedSession:
    kind: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SlotSettings:
    min_notice: timedelta
    horizon: timedelta
    step_minutes: int
    debrief_after: timedelta


@dataclass
class SlotPlan:
    sessions: list[PlannedSession]
    problem: str | None = None  # no time found: why
    note: str = ""  # a plan that bends the budget's wording (sessions spread wider than asked)


def plan_sessions(
    budget: Budget,
    mentor: Mentor,
    protege_zone: str,
    protege_windows: Sequence[Window],
    now: datetime,
    booked: Iterable[Interval],
    settings: SlotSettings,
    *,
    not_before: datetime | None = None,
) -> SlotPlan:
    """Place every session of `budget`, in order, or say why it cannot be done.

    `booked` holds every interval the mentor is not free (sessions booked through
    mailflow, busy times from their free/busy calendar). Sessions of a budget spread
    over a span (`2 x 30 minutes over 2 weeks`) are placed about span/count apart and
    all inside the span when the calendars allow it; otherwise as close as they allow,
    which the plan's `note` says. A debrief comes `debrief_after` the shadowing.
    """
    earliest = _round_up(max(now + settings.min_notice, not_before or now), settings.step_minutes)
    horizon_end = now + settings.horizon + timedelta(days=budget.span_days or 0)
    free = free_intervals(mentor, protege_zone, protege_windows, earliest, horizon_end, booked)
    specs = list(budget.sessions)
    count = len(specs)
    gap = timedelta(days=(budget.span_days / count) if budget.span_days else 7)
    if budget.span_days and count > 1:
        span = timedelta(days=budget.span_days)
        for spacing in dict.fromkeys((gap, max(timedelta(days=1), gap / 2), timedelta(days=1))):
            within = _within_span(specs, free, earliest, horizon_end, settings, spacing, span)
            if within:  # inside the span, as evenly spread as the calendars allow
                return SlotPlan(within)
    placed, failed = _place(specs, free, earliest, horizon_end, settings, gap)
    if failed is not None:
        spec = specs[failed]
        which = f"session {failed + 1} ({spec.describe()})" if count > 1 else spec.describe()
        return SlotPlan(
            placed,
            f"no time for the {which} in both people's availability before {horizon_end:%Y-%m-%d}",
        )
    note = ""
    if budget.span_days and count > 1:
        spread = (placed[-1].end - placed[0].start).days
        note = (
            f"the sessions are spread over {spread} days, more than the {budget.span_days} "
            "asked for: there were no closer common times"
        )
    return SlotPlan(placed, note=note)


def _place(
    specs: Sequence[SessionSpec],
    free: list[Interval],
    earliest: datetime,
    latest: datetime,
    settings: SlotSettings,
    gap: timedelta,
    placed: list[PlannedSession] | None = None,
) -> tuple[list[PlannedSession], int | None]:
    """Greedy: each session at the first fit after the previous one plus its gap."""
    placed = list(placed or [])
    for index, spec in enumerate(specs):
        length = timedelta(minutes=spec.minutes)
        avoid = [(p.start, p.end) for p in placed]
        start = first_fit(free, length, earliest, latest, settings.step_minutes, avoid)
        if start is None:
            return placed, index
        placed.append(PlannedSession(spec.kind, start, start + length))
        earliest = start + (settings.debrief_after if spec.kind == "shadowing" else gap)
    return placed, None


def _within_span(
    specs: Sequence[SessionSpec],
    free: list[Interval],
    earliest: datetime,
    latest: datetime,
    settings: SlotSettings,
    gap: timedelta,
    span: timedelta,
) -> list[PlannedSession] | None:
    """The earliest plan whose sessions all end within `span` of the first one's start
    (trying the first `MAX_FIRST_STARTS` start times; after that the plan may spread wider)."""
    step = timedelta(minutes=settings.step_minutes)
    first = timedelta(minutes=specs[0].minutes)
    tried = 0
    for begin, end in free:
        start = _round_up(max(begin, earliest), settings.step_minutes)
        while start + first <= min(end, latest) and tried < MAX_FIRST_STARTS:
            tried += 1
            opening = PlannedSession(specs[0].kind, start, start + first)
            after = start + (settings.debrief_after if specs[0].kind == "shadowing" else gap)
            placed, failed = _place(
                specs[1:], free, after, min(latest, start + span), settings, gap, [opening]
            )
            if failed is None:
                return placed
            start += step
    return None


def find_slot(
    length: timedelta,
    earliest: datetime,
    latest: datetime,
    mentor: Mentor,
    protege_zone: str,
    protege_windows: Sequence[Window],
    busy: Sequence[Interval],
    step_minutes: int,
) -> datetime | None:
    """The first start at or after `earliest` where `length` fits for both people."""
    free = free_intervals(mentor, protege_zone, protege_windows, earliest, latest, busy)
    return first_fit(free, length, earliest, latest, step_minutes)


def free_intervals(
    mentor: Mentor,
    protege_zone: str,
    protege_windows: Sequence[Window],
    first: datetime,
    last: datetime,
    busy: Iterable[Interval],
) -> list[Interval]:
    """When both are available (each in their own zone), the mentor is not away, and not busy."""
    mentor_free = local_intervals(mentor.availability, mentor.time_zone, first, last, skip=mentor.is_away)
    common = mentor_free
    if protege_windows:  # no stated availability: the mentor's windows decide
        common = _intersect(mentor_free, local_intervals(protege_windows, protege_zone, first, last))
    return _subtract(common, sorted(busy))


def first_fit(
    free: Sequence[Interval],
    length: timedelta,
    earliest: datetime,
    latest: datetime,
    step_minutes: int,
    avoid: Sequence[Interval] = (),
) -> datetime | None:
    """The first step-aligned start in `free`, at or after `earliest`, clear of `avoid`."""
    for begin, end in free[bisect_right(free, earliest, key=lambda interval: interval[1]) :]:
        if begin >= latest:
            break
        start = _round_up(max(begin, earliest), step_minutes)
        while start + length <= end and start + length <= latest:
            clash = next((b for b in avoid if b[0] < start + length and start < b[1]), None)
            if clash is None:
                return start
            start = _round_up(clash[1], step_minutes)
    return None


def local_intervals(
    windows: Iterable[Window],
    zone_name: str,
    first: datetime,
    last: datetime,
    skip: Callable[[date], bool] | None = None,
) -> list[Interval]:
    """Weekly local windows turned into UTC intervals between `first` and `last`."""
    zone = ZoneInfo(zone_name)
    day = first.astimezone(zone).date() - timedelta(days=1)
    final = last.astimezone(zone).date() + timedelta(days=1)
    intervals: list[Interval] = []
    windows = list(windows)
    while day <= final:
        if skip is None or not skip(day):
            for window in windows:
                if day.weekday() in window.weekdays:
                    begin = _at(day, window.start, zone)
                    end = _at(day, window.end, zone)
                    if end > begin and end > first and begin < last:
                        intervals.append((begin, end))
        day += timedelta(days=1)
    return _merge(sorted(intervals))


def _at(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """A local wall-clock time as UTC; a time skipped by a DST change moves forward."""
    local = datetime.combine(day, clock, tzinfo=zone)
    there_and_back = local.astimezone(UTC).astimezone(zone)
    if there_and_back.replace(tzinfo=None) != local.replace(tzinfo=None):
        local = local + timedelta(hours=1)  # inside the spring-forward gap
    return local.astimezone(UTC)


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for begin, end in intervals:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    result: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        begin, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if begin < end:
            result.append((begin, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return result


def _subtract(free: list[Interval], busy: Sequence[Interval]) -> list[Interval]:
    result: list[Interval] = []
    for begin, end in free:
        pieces = [(begin, end)]
        for busy_begin, busy_end in busy:
            next_pieces = []
            for p_begin, p_end in pieces:
                if busy_end <= p_begin or busy_begin >= p_end:
                    next_pieces.append((p_begin, p_end))
                    continue
                if p_begin < busy_begin:
                    next_pieces.append((p_begin, busy_begin))
                if busy_end < p_end:
                    next_pieces.append((busy_end, p_end))
            pieces = next_pieces
        result.extend(pieces)
    return result


def _round_up(when: datetime, step_minutes: int) -> datetime:
    base = when.replace(second=0, microsecond=0)
    if base < when:
        base += timedelta(minutes=1)
    minutes = base.hour * 60 + base.minute
    rounded = math.ceil(minutes / step_minutes) * step_minutes
    return base.replace(hour=0, minute=0) + timedelta(minutes=rounded)

"""Slot finding: when the sessions of an agreed budget can take place.

Every session must fall inside the mentor's weekly availability (in the mentor's
time zone) and the protégé's (in theirs, or the configured default hours), on a day
the mentor is not away, after the minimum notice, before the horizon, and clear of
the mentor's sessions already booked. Times are computed in UTC from each person's
local wall-clock windows, so daylight-saving changes in either zone are respected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .directory import Mentor
from .model import Budget, Window

Interval = tuple[datetime, datetime]
UTC = ZoneInfo("UTC")


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
    problem: str | None = None


def plan_sessions(
    budget: Budget,
    mentor: Mentor,
    protege_zone: str,
    protege_windows: Sequence[Window],
    now: datetime,
    booked: Iterable[Interval],
    settings: SlotSettings,
) -> SlotPlan:
    """Place every session of `budget`, in order, or say why it cannot be done."""
    busy = sorted(booked)
    earliest = _round_up(now + settings.min_notice, settings.step_minutes)
    horizon_end = now + settings.horizon + timedelta(days=budget.span_days or 0)
    count = len(budget.sessions)
    gap = timedelta(days=(budget.span_days / count) if budget.span_days else 7)
    placed: list[PlannedSession] = []
    for index, spec in enumerate(budget.sessions):
        length = timedelta(minutes=spec.minutes)
        start = find_slot(
            length,
            earliest,
            horizon_end,
            mentor,
            protege_zone,
            protege_windows,
            busy,
            settings.step_minutes,
        )
        if start is None:
            which = f"session {index + 1} ({spec.describe()})" if count > 1 else spec.describe()
            return SlotPlan(
                placed,
                f"no time for the {which} in both people's availability before {horizon_end:%Y-%m-%d}",
            )
        placed.append(PlannedSession(spec.kind, start, start + length))
        busy = sorted([*busy, (start, start + length)])
        earliest = start + (settings.debrief_after if spec.kind == "shadowing" else gap)
    return SlotPlan(placed)


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
    mentor_free = local_intervals(
        mentor.availability, mentor.time_zone, earliest, latest, skip=mentor.is_away
    )
    common = mentor_free
    if protege_windows:  # no stated availability: the mentor's windows decide
        common = _intersect(mentor_free, local_intervals(protege_windows, protege_zone, earliest, latest))
    for begin, end in _subtract(common, busy):
        start = _round_up(max(begin, earliest), step_minutes)
        if start + length <= end and start + length <= latest:
            return start
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

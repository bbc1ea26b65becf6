"""The clock is passed in, so tests and `--now` can move time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that says what it is told; `advance` moves it forward."""

    current: datetime

    def __post_init__(self) -> None:
        self.current = as_utc(self.current)

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current = self.current + delta

    def set(self, when: datetime) -> None:
        self.current = as_utc(when)


def as_utc(when: datetime) -> datetime:
    """Naive datetimes are taken to be UTC."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_iso(text: str) -> datetime:
    """Read an ISO-8601 time such as `2026-12-01T09:00` or `2026-12-01T09:00-08:00`."""
    return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


@dataclass
class OffsetClock:
    """The system clock shifted so that it read `start` when created (`--now` for the daemon)."""

    start: datetime

    def __post_init__(self) -> None:
        self.offset = as_utc(self.start) - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

"""Planning a request's sessions: from the agreed budget and both calendars to bookings.

workflow.py decides *when* sessions are planned (a mentor accepts, someone asks to
reschedule); this module gathers what the slot finder (slots.py) needs: the scheduling
settings, the protégé's stated hours (else the configured default), the mentor's
sessions already booked through mailflow (the store's ledger, so nobody is
double-booked) and the busy times of their free/busy calendar (freebusy.py). It turns
a plan into `Booking`s whose UID names the request
(`mm-7f3k2-1-1796511600-9c1e04af@library.org`),
so a calendar's answer routes back to it (route.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .availability import parse_availability
from .config import Config
from .directory import Mentor
from .freebusy import FreeBusy
from .invite import Interval
from .model import Booking, Budget, Request
from .slots import PlannedSession, SlotSettings, plan_sessions
from .store import Store


@dataclass
class Planned:
    sessions: list[PlannedSession]
    problem: str | None = None  # no common time: why
    notes: list[str] = field(
        default_factory=list
    )  # worth recording: an unreadable free/busy file, a wide spread


class Planner:
    def __init__(self, config: Config, store: Store, free_busy: FreeBusy) -> None:
        self.config = config
        self.store = store
        self.free_busy = free_busy

    @property
    def settings(self) -> SlotSettings:
        scheduling = self.config.scheduling
        return SlotSettings(
            scheduling.min_notice, scheduling.horizon, scheduling.step_minutes, scheduling.debrief_after
        )

    def protege_zone(self, request: Request) -> str:
        return request.form.time_zone or self.config.programme.time_zone

    def plan(
        self,
        request: Request,
        mentor: Mentor,
        budget: Budget,
        now: datetime,
        *,
        avoid: Sequence[Interval] = (),
        moving: bool = False,
        not_before: datetime | None = None,
    ) -> Planned:
        """Sessions for `budget`. `moving`: the request's own booked sessions are being
        moved, so they do not count as busy, but their times (`avoid`) are not offered again."""
        scheduling = self.config.scheduling
        windows = request.form.availability or parse_availability(scheduling.default_hours)
        until = now + scheduling.horizon + timedelta(days=budget.span_days or 0)
        booked = self.store.booked(mentor.email, excluding=request.ref if moving else None)
        busy, problem = self.free_busy.busy(mentor, now, until)
        plan = plan_sessions(
            budget,
            mentor,
            self.protege_zone(request),
            windows,
            now,
            [*booked, *busy, *avoid],
            self.settings,
            not_before=not_before,
        )
        notes = [n for n in (problem, plan.note) if n]
        return Planned(plan.sessions, plan.problem, notes)

    def bookings(self, request: Request, sessions: Sequence[PlannedSession], now: datetime) -> list[Booking]:
        """New bookings. The UID is stable for the life of each session (RFC 5545 3.8.4.7),
        names the request, and holds a random part only the invitees see, so a calendar
        answer for it cannot be forged by someone who only knows the reference."""
        domain = self.config.programme.address.partition("@")[2]
        stamp = int(now.timestamp())
        return [
            Booking(
                uid=f"{request.ref.lower()}-{n}-{stamp}-{secrets.token_hex(4)}@{domain}",
                kind=s.kind,
                start=s.start,
                end=s.end,
            )
            for n, s in enumerate(sessions, start=1)
        ]

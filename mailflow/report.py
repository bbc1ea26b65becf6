"""`mailflow report`: what the programme did over a period, from the state, as plain data.

The period selects requests by the day they arrived (in the programme's time zone);
everything about a request (its asks, sessions, reflections) counts with it. Open
requests come from state.json, finished ones from the monthly archives. The figures:

- requests by state, by topic area (the rule that matched) and by format;
- time from the request to the first mentor asked ("matched") and to the introduction;
- per mentor: asks accepted, declined and timed out, and hours given against capacity;
- the reflection response rate, and the reflections themselves.

`report_html.py` draws it for a director; `write_csv` gives the tables to a spreadsheet.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .directory import Mentor
from .model import Request, State

AVERAGE_MONTH = timedelta(days=365.25 / 12)
UNMATCHED = "(no rule matched yet)"


@dataclass
class RequestLine:
    """One request, as the report counts it."""

    ref: str
    received: datetime
    state: str
    topic: str
    area: str  # the rule that matched
    format: str
    protege_name: str
    protege_email: str
    library: str
    mentor_name: str
    mentor_email: str
    budget_minutes: int | None
    agreed_minutes: int | None
    to_match: timedelta | None  # to the first mentor asked
    to_introduction: timedelta | None
    asked: int
    declined: int
    timed_out: int
    reflection_asked: bool
    reflected: list[str]  # roles that answered


@dataclass
class MentorLine:
    email: str
    name: str
    library: str
    max_hours_per_month: float | None  # None: no longer in the directory
    asked: int = 0
    accepted: int = 0
    declined: int = 0
    timed_out: int = 0
    withdrawn: int = 0  # the request changed or was cancelled before an answer
    waiting: int = 0
    minutes_given: int = 0  # sessions that have ended
    minutes_booked: int = 0  # sessions still to come
    capacity_hours: float = 0.0  # max_hours_per_month over the period

    @property
    def answered(self) -> int:
        return self.accepted + self.declined + self.timed_out

    def rate(self, count: int) -> float | None:
        return count / self.answered if self.answered else None


@dataclass
class ReflectionLine:
    ref: str
    topic: str
    role: str  # protege | mentor
    name: str
    received: datetime
    text: str


@dataclass
class Report:
    programme: str
    since: date
    until: date  # inclusive
    generated: datetime
    zone: str
    requests: list[RequestLine] = field(default_factory=list)
    mentors: list[MentorLine] = field(default_factory=list)
    reflections: list[ReflectionLine] = field(default_factory=list)

    def count_by(self, attribute: str) -> list[tuple[str, int]]:
        counts = Counter(getattr(r, attribute) for r in self.requests)
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def by_state(self) -> list[tuple[str, int]]:
        counts = Counter(r.state for r in self.requests)
        return [(s.value, counts[s.value]) for s in State if counts[s.value]]

    @property
    def introduced(self) -> list[RequestLine]:
        return [r for r in self.requests if r.to_introduction is not None]

    def times(self, which: str) -> list[timedelta]:
        return [t for r in self.requests if (t := getattr(r, which)) is not None]

    def reflection_rate(self, role: str | None = None) -> tuple[int, int]:
        """(answered, asked) reflections, for one role or both."""
        roles = [role] if role else ["protege", "mentor"]
        asked = sum(len(roles) for r in self.requests if r.reflection_asked)
        answered = sum(1 for r in self.requests if r.reflection_asked for x in r.reflected if x in roles)
        return answered, asked

    @property
    def hours_given(self) -> float:
        return sum(m.minutes_given for m in self.mentors) / 60


def build_report(
    requests: list[Request],
    mentors: list[Mentor],
    *,
    programme: str,
    zone: str,
    default_format: str,
    since: date | None,
    until: date | None,
    now: datetime,
) -> Report:
    """Count every request that arrived between `since` and `until` (inclusive days)."""
    tz = ZoneInfo(zone)
    received_days = [r.created.astimezone(tz).date() for r in requests]
    first = since or (min(received_days) if received_days else now.astimezone(tz).date())
    last = until or now.astimezone(tz).date()
    start = datetime.combine(first, time(0), tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)
    chosen = sorted((r for r in requests if start <= r.created < end), key=lambda r: r.created)
    report = Report(programme=programme, since=first, until=last, generated=now, zone=zone)
    report.requests = [_line(r, default_format) for r in chosen]
    report.mentors = _mentors(chosen, mentors, now, end - start)
    report.reflections = [
        ReflectionLine(
            ref=r.ref,
            topic=r.form.topic or "",
            role=role,
            name=(r.protege.name if role == "protege" else (r.mentor.name if r.mentor else "")),
            received=reflection.received_at,
            text=reflection.text.strip(),
        )
        for r in chosen
        for role, reflection in sorted(r.reflections.items())
    ]
    return report


def _line(request: Request, default_format: str) -> RequestLine:
    form = request.form
    introduced = next((e.at for e in request.history if e.state is State.INTRODUCED), None)
    first_ask = min((a.asked_at for a in request.asks), default=None)
    budget = form.budget.total_minutes if form.budget else None
    return RequestLine(
        ref=request.ref,
        received=request.created,
        state=request.state.value,
        topic=form.topic or "(no topic given)",
        area=(request.decision.rule if request.decision and request.decision.rule else UNMATCHED),
        format=form.format or default_format,
        protege_name=request.protege.name or request.protege.email,
        protege_email=request.protege.email,
        library=request.protege.library,
        mentor_name=request.mentor.name if request.mentor else "",
        mentor_email=request.mentor.email if request.mentor else "",
        budget_minutes=budget,
        agreed_minutes=request.agreed.total_minutes if request.agreed else None,
        to_match=(first_ask - request.created) if first_ask else None,
        to_introduction=(introduced - request.created) if introduced else None,
        asked=len(request.asks),
        declined=sum(1 for a in request.asks if a.outcome == "declined"),
        timed_out=sum(1 for a in request.asks if a.outcome == "timed out"),
        reflection_asked=any(e.state is State.REFLECTING for e in request.history),
        reflected=sorted(request.reflections),
    )


def _mentors(
    requests: list[Request], directory: list[Mentor], now: datetime, span: timedelta
) -> list[MentorLine]:
    months = max(span, timedelta(days=1)) / AVERAGE_MONTH
    lines = {
        m.email: MentorLine(
            m.email, m.name, m.library, m.max_hours_per_month, capacity_hours=m.max_hours_per_month * months
        )
        for m in directory
    }
    for request in requests:
        for ask in request.asks:
            line = lines.setdefault(ask.mentor, MentorLine(ask.mentor, ask.mentor, "", None))
            line.asked += 1
            outcome = ask.outcome or "waiting"
            if outcome == "accepted":
                line.accepted += 1
            elif outcome == "declined":
                line.declined += 1
            elif outcome == "timed out":
                line.timed_out += 1
            elif outcome == "withdrawn":
                line.withdrawn += 1
            else:
                line.waiting += 1
        if request.mentor is None:
            continue
        line = lines.setdefault(
            request.mentor.email, MentorLine(request.mentor.email, request.mentor.name, "", None)
        )
        for booking in request.bookings:
            if booking.status != "confirmed":
                continue
            minutes = int((booking.end - booking.start).total_seconds() // 60)
            if booking.end <= now:
                line.minutes_given += minutes
            else:
                line.minutes_booked += minutes
    return sorted(lines.values(), key=lambda m: (-m.asked, -m.minutes_given, m.name))


# -- summaries shared by the HTML report and the digest -------------------------------------


def days(delta: timedelta) -> str:
    """`timedelta(hours=36)` -> `1.5 days`; under a day in hours."""
    hours = delta.total_seconds() / 3600
    if hours < 24:
        return f"{hours:.1f} hours" if hours < 10 else f"{hours:.0f} hours"
    return f"{hours / 24:.1f} days"


def median(values: list[timedelta]) -> timedelta | None:
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values)) if values else None


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


# -- CSV ------------------------------------------------------------------------------------

TABLES = ("requests", "mentors", "reflections")


def write_csv(report: Report, table: str) -> str:
    """One of the report's tables as CSV (for a spreadsheet)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if table == "requests":
        writer.writerow(
            [
                "ref", "received", "state", "topic", "topic_area", "format", "protege_name",
                "protege_email", "library", "mentor_name", "mentor_email", "budget_minutes",
                "agreed_minutes", "hours_to_match", "hours_to_introduction", "mentors_asked",
                "declined", "timed_out", "reflection_asked", "reflections_received",
            ]
        )  # fmt: skip
        for r in report.requests:
            writer.writerow(
                [
                    r.ref, r.received.isoformat(), r.state, r.topic, r.area, r.format, r.protege_name,
                    r.protege_email, r.library, r.mentor_name, r.mentor_email, _blank(r.budget_minutes),
                    _blank(r.agreed_minutes), _hours(r.to_match), _hours(r.to_introduction), r.asked,
                    r.declined, r.timed_out, "yes" if r.reflection_asked else "no", " ".join(r.reflected),
                ]
            )  # fmt: skip
    elif table == "mentors":
        writer.writerow(
            [
                "email", "name", "library", "asked", "accepted", "declined", "timed_out", "withdrawn",
                "waiting", "accept_rate", "decline_rate", "timeout_rate", "hours_given", "hours_booked",
                "capacity_hours", "max_hours_per_month",
            ]
        )  # fmt: skip
        for m in report.mentors:
            writer.writerow(
                [
                    m.email, m.name, m.library, m.asked, m.accepted, m.declined, m.timed_out, m.withdrawn,
                    m.waiting, _rate(m.rate(m.accepted)), _rate(m.rate(m.declined)),
                    _rate(m.rate(m.timed_out)), f"{m.minutes_given / 60:.2f}", f"{m.minutes_booked / 60:.2f}",
                    f"{m.capacity_hours:.1f}", _blank(m.max_hours_per_month),
                ]
            )  # fmt: skip
    elif table == "reflections":
        writer.writerow(["ref", "received", "role", "name", "topic", "text"])
        for x in report.reflections:
            writer.writerow([x.ref, x.received.isoformat(), x.role, x.name, x.topic, x.text])
    else:
        raise ValueError(f"no table {table!r}; use one of {', '.join(TABLES)}")
    return out.getvalue()


def _blank(value: object) -> str:
    return "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


def _hours(delta: timedelta | None) -> str:
    return "" if delta is None else f"{delta.total_seconds() / 3600:.1f}"


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"

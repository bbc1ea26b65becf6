"""The weekly digest: what the coordinator should look at, mailed once a week.

    [digest] weekday = "monday", time = "08:00" (programme.time_zone)

Every pass of the engine asks `slot_due`: has a scheduled time passed whose digest was
not sent yet? If so the digest is built, queued in the store's outbox and the slot is
recorded in the store's meta, in the same commit, so it goes out exactly once even
if the daemon is killed and restarted; a daemon that was down at the hour sends the
missed digest when it comes back (one, however many weeks it missed). A new state
records the current slot without sending: the first digest comes at the next one.

Why not the `schedule` library: it reads the wall clock, so `--now` and the tests'
clocks would not move it, and it keeps "last run" in memory, so a restart would lose
or repeat a digest. The engine's clock and the store already give both properties.

The digest holds: escalations waiting for the coordinator; requests stuck (a timer
that should have fired, a protégé who never completed the form, an introduction with
no session in the calendar); mentors at or near capacity this month; and last week's
numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .config import DAYS, Config, DigestSettings
from .directory import Mentor
from .durations import format_duration
from .match import Load
from .messages import Messages
from .model import Outgoing, Person, Request, State

SENT_META = "digest_slot"  # the scheduled time of the last digest sent (or skipped at first run)
OVERDUE = timedelta(hours=1)  # a timer this late did not fire: the daemon is not running


def latest_slot(settings: DigestSettings, zone: str, now: datetime) -> datetime:
    """The last scheduled time at or before `now` (in UTC; daylight saving respected)."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    hour, minute = (int(part) for part in settings.time.split(":"))
    day = local.date() - timedelta(days=(local.weekday() - DAYS.index(settings.weekday)) % 7)
    slot = datetime.combine(day, time(hour, minute), tzinfo=tz)
    if slot > local:
        slot = datetime.combine(day - timedelta(days=7), time(hour, minute), tzinfo=tz)
    return slot.astimezone(UTC)


def slot_due(
    last_sent: str | None, settings: DigestSettings, zone: str, now: datetime
) -> tuple[datetime, str]:
    """The latest slot, and what to do about it: "send", "record" (a new state: remember the
    slot, send nothing) or "wait" (its digest is already out)."""
    slot = latest_slot(settings, zone, now)
    if last_sent is None:
        return slot, "record"
    return slot, ("send" if datetime.fromisoformat(last_sent) < slot else "wait")


@dataclass
class Digest:
    since: datetime
    until: datetime
    escalations: list[dict[str, str]] = field(default_factory=list)
    stuck: list[dict[str, str]] = field(default_factory=list)
    mentors: list[dict[str, Any]] = field(default_factory=list)
    numbers: list[dict[str, str]] = field(default_factory=list)


def build_digest(
    requests: list[Request],
    mentors: list[Mentor],
    loads: dict[str, Load],
    config: Config,
    until: datetime,
    now: datetime,
) -> Digest:
    """The digest for the week before `until`, with open requests as they are `now`."""
    digest = Digest(since=until - timedelta(days=7), until=until)
    settings = config.digest
    for request in (r for r in requests if r.is_open):
        moved = next((e for e in reversed(request.history) if e.state is request.state), None)
        since = moved.at if moved else request.created
        if request.state is State.ESCALATED:
            digest.escalations.append(
                {
                    "ref": request.ref,
                    "topic": request.form.topic or "(no topic)",
                    "protege": request.protege.display(),
                    "age": format_duration(now - since),
                    "why": moved.reason if moved else "",
                }
            )
            continue
        why = _stuck(request, since, settings.stuck_after, now, config.programme.time_zone)
        if why:
            digest.stuck.append(
                {
                    "ref": request.ref,
                    "state": request.state.value,
                    "topic": request.form.topic or "",
                    "why": why,
                }
            )
    digest.mentors = _near_capacity(mentors, loads, settings.near_capacity)
    digest.numbers = _numbers(requests, digest.since, until)
    return digest


def _stuck(request: Request, since: datetime, stuck_after: timedelta, now: datetime, zone: str) -> str:
    timer = request.timer
    if timer is not None and now - timer.due > OVERDUE:
        return (
            f"its {timer.kind.value} timer was due {format_duration(now - timer.due)} ago and has not "
            "fired: is `mailflow run` running? Its log says why"
        )
    if request.state is State.INCOMPLETE and now - since > stuck_after:
        return f"waiting {format_duration(now - since)} for the protégé to complete the request"
    if request.state is State.INTRODUCED and not request.bookings and now - since > stuck_after:
        return (
            f"introduced {format_duration(now - since)} ago with no session in the calendar (no common time)"
        )
    return ""


def _near_capacity(mentors: list[Mentor], loads: dict[str, Load], near: float) -> list[dict[str, Any]]:
    found = []
    for mentor in mentors:
        load = loads.get(mentor.email, Load())
        hours = load.minutes_this_month / 60
        share = max(hours / mentor.max_hours_per_month, load.active / mentor.max_active)
        if share >= near:
            found.append(
                {
                    "name": mentor.name,
                    "email": mentor.email,
                    "hours": f"{hours:g}",
                    "max_hours": f"{mentor.max_hours_per_month:g}",
                    "active": load.active,
                    "max_active": mentor.max_active,
                    "full": hours >= mentor.max_hours_per_month or load.active >= mentor.max_active,
                    "share": share,
                }
            )
    return sorted(found, key=lambda m: (-m["share"], m["name"]))


def _numbers(requests: list[Request], since: datetime, until: datetime) -> list[dict[str, str]]:
    def within(when: datetime | None) -> bool:
        return when is not None and since <= when < until

    def moved_to(state: State) -> int:
        return sum(1 for r in requests for e in r.history if e.state is state and within(e.at))

    asks = [a for r in requests for a in r.asks]
    minutes = sum(
        int((b.end - b.start).total_seconds() // 60)
        for r in requests
        for b in r.bookings
        if b.status == "confirmed" and within(b.end)
    )
    rows = [
        ("New requests", sum(1 for r in requests if within(r.created))),
        ("Mentors asked", sum(1 for a in asks if within(a.asked_at))),
        ("Asks accepted", sum(1 for a in asks if a.outcome == "accepted" and within(a.answered_at))),
        ("Asks declined", sum(1 for a in asks if a.outcome == "declined" and within(a.answered_at))),
        ("Asks timed out", sum(1 for a in asks if a.outcome == "timed out" and within(a.answered_at))),
        ("Introductions", moved_to(State.INTRODUCED)),
        ("Escalated to you", moved_to(State.ESCALATED)),
        (
            "Reflections received",
            sum(1 for r in requests for x in r.reflections.values() if within(x.received_at)),
        ),
        ("Requests closed", moved_to(State.CLOSED)),
        ("Requests cancelled", moved_to(State.CANCELLED)),
        ("Hours of mentoring held", f"{minutes / 60:g}"),
    ]
    return [{"label": label, "value": str(value)} for label, value in rows]


def digest_context(digest: Digest, zone: str) -> dict[str, Any]:
    tz = ZoneInfo(zone)
    return {
        "since": f"{digest.since.astimezone(tz):%A %d %B %Y}",
        "until": f"{digest.until.astimezone(tz):%A %d %B %Y}",
        "escalations": digest.escalations,
        "stuck": digest.stuck,
        "mentors": digest.mentors,
        "numbers": digest.numbers,
    }


def digest_message(
    messages: Messages, coordinator: Person, digest: Digest, zone: str, now: datetime
) -> Outgoing:
    return messages.build(
        template="digest",
        purpose="digest",
        to=[coordinator],
        now=now,
        context={"digest": digest_context(digest, zone)},
    )

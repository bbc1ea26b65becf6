"""Slot finding across zones, daylight saving, availability, away dates and bookings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mailflow.availability import parse_availability
from mailflow.budget import parse_budget
from mailflow.directory import Mentor, parse_away
from mailflow.slots import SlotSettings, plan_sessions

SETTINGS = SlotSettings(
    min_notice=timedelta(days=2),
    horizon=timedelta(weeks=6),
    step_minutes=15,
    debrief_after=timedelta(days=3),
)
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday


def mentor(zone: str, *windows: str, away: tuple[str, ...] = ()) -> Mentor:
    return Mentor(
        email="m@example.org",
        name="M",
        library="",
        skills=(),
        formats=("video",),
        languages=("en",),
        time_zone=zone,
        availability=tuple(parse_availability(list(windows))),
        max_hours_per_month=10,
        max_active=5,
        away=tuple(parse_away(a) for a in away),
        video_link="",
        location="",
        phone="",
        knows=frozenset(),
    )


def local(when: datetime, zone: str) -> datetime:
    return when.astimezone(ZoneInfo(zone))


def test_one_session_in_both_availabilities_and_zones() -> None:
    m = mentor("America/New_York", "Tue 09:00-12:00", "Thu 13:00-17:00")
    plan = plan_sessions(
        parse_budget("45 minutes"),
        m,
        "America/Los_Angeles",
        parse_availability("Tue/Thu 10am-1pm"),
        NOW,
        [],
        SETTINGS,
    )
    assert plan.problem is None
    (session,) = plan.sessions
    assert session.end - session.start == timedelta(minutes=45)
    ny, la = local(session.start, "America/New_York"), local(session.start, "America/Los_Angeles")
    # Thu 13:00 New York is Thu 10:00 Los Angeles: the first time inside both, after 2 days' notice.
    assert (ny.weekday(), ny.hour, ny.minute) == (3, 13, 0)
    assert (la.weekday(), la.hour) == (3, 10)
    assert session.start >= NOW + SETTINGS.min_notice


def test_sessions_already_booked_are_avoided() -> None:
    m = mentor("America/Chicago", "Mon-Fri 09:00-10:00")
    first = plan_sessions(
        parse_budget("1 hour"),
        m,
        "America/Chicago",
        parse_availability("weekdays 9-10am"),
        NOW,
        [],
        SETTINGS,
    ).sessions[0]
    second = plan_sessions(
        parse_budget("1 hour"),
        m,
        "America/Chicago",
        parse_availability("weekdays 9-10am"),
        NOW,
        [(first.start, first.end)],
        SETTINGS,
    ).sessions[0]
    assert second.start >= first.end


def test_an_away_period_blocks_the_first_weeks() -> None:
    m = mentor("America/Chicago", "Mon-Fri 09:00-17:00", away=("2026-12-01..2026-12-27",))
    (session,) = plan_sessions(
        parse_budget("30 minutes"), m, "America/Chicago", [], NOW, [], SETTINGS
    ).sessions
    assert local(session.start, "America/Chicago").date().isoformat() == "2026-12-28"


def test_two_sessions_are_spread_over_the_span_and_add_up() -> None:
    m = mentor("Europe/Madrid", "Mon-Fri 16:00-18:00")
    plan = plan_sessions(
        parse_budget("2 x 30 minutes over 2 weeks"),
        m,
        "America/New_York",
        parse_availability("weekdays 10am-noon"),
        NOW,
        [],
        SETTINGS,
    )
    first, second = plan.sessions
    assert sum((s.end - s.start for s in plan.sessions), timedelta()) == timedelta(minutes=60)
    assert timedelta(days=7) <= second.start - first.start <= timedelta(days=14)


def test_shadowing_then_a_debrief_a_few_days_later() -> None:
    m = mentor("America/New_York", "Tue 09:00-12:00", "Thu 13:00-17:00")
    plan = plan_sessions(
        parse_budget("shadow a 2-hour meeting then a 30 minute debrief"),
        m,
        "America/New_York",
        [],
        NOW,
        [],
        SETTINGS,
    )
    shadow, debrief = plan.sessions
    assert (shadow.kind, debrief.kind) == ("shadowing", "debrief")
    assert shadow.end - shadow.start == timedelta(hours=2)
    assert debrief.start - shadow.start >= SETTINGS.debrief_after


def test_crossing_the_end_of_daylight_saving() -> None:
    # Europe leaves summer time on 2026-10-25, the US on 2026-11-01: a week of different offsets.
    now = datetime(2026, 10, 19, 12, 0, tzinfo=UTC)
    m = mentor("Europe/London", "Mon-Fri 14:00-15:00")
    plan = plan_sessions(
        parse_budget("2 x 30 minutes over 2 weeks"),
        m,
        "America/New_York",
        parse_availability("weekdays 9am-10am"),
        now,
        [],
        SETTINGS,
    )
    for session in plan.sessions:
        london = local(session.start, "Europe/London")
        new_york = local(session.start, "America/New_York")
        assert 14 <= london.hour < 15
        assert 9 <= new_york.hour < 10
    # 14:00 London = 09:00 New York only while both are on summer time or both on winter time.
    assert plan.sessions[0].start.date().isoformat() < "2026-10-25"
    assert plan.sessions[1].start.date().isoformat() >= "2026-11-01"


def test_crossing_the_start_of_daylight_saving() -> None:
    now = datetime(2027, 3, 8, 12, 0, tzinfo=UTC)  # US springs forward on 14 March 2027
    m = mentor("America/Chicago", "Mon-Fri 08:00-09:00")
    plan = plan_sessions(parse_budget("2 x 1 hour over 2 weeks"), m, "America/Chicago", [], now, [], SETTINGS)
    hours = [local(s.start, "America/Chicago").hour for s in plan.sessions]
    assert hours == [8, 8]
    offsets = [s.start.hour for s in plan.sessions]
    assert offsets == [14, 13]  # UTC-6 before, UTC-5 after


def test_no_common_time_is_said_plainly() -> None:
    m = mentor("America/Los_Angeles", "Mon 09:00-10:00")
    plan = plan_sessions(
        parse_budget("45 minutes"),
        m,
        "Europe/Berlin",
        parse_availability("Mon 9-10am"),
        NOW,
        [],
        SETTINGS,
    )
    assert plan.sessions == []
    assert plan.problem is not None and "no time for the 45-minute conversation" in plan.problem


def test_sessions_over_a_span_stay_inside_it_when_the_calendars_allow() -> None:
    # Monday and Wednesday 09:00-10:00 only; two sessions "over 2 days". The first Monday slot
    # would push the second past the span; starting at 09:30 keeps both inside it.
    m = mentor("America/Chicago", "Mon 09:00-10:00", "Wed 09:00-10:00")
    plan = plan_sessions(
        parse_budget("2 x 30 minutes over 2 days"), m, "America/Chicago", [], NOW, [], SETTINGS
    )
    first, second = plan.sessions
    assert plan.note == "" and plan.problem is None
    assert local(first.start, "America/Chicago").strftime("%a %H:%M") == "Mon 09:30"
    assert local(second.start, "America/Chicago").strftime("%a %H:%M") == "Wed 09:00"
    assert second.end - first.start <= timedelta(days=2)


def test_sessions_that_cannot_fit_the_span_are_spread_wider_and_it_is_said() -> None:
    m = mentor("America/Chicago", "Mon 09:00-10:00")
    plan = plan_sessions(
        parse_budget("2 x 30 minutes over 3 days"), m, "America/Chicago", [], NOW, [], SETTINGS
    )
    first, second = plan.sessions
    assert second.start - first.start == timedelta(days=7)
    assert "spread over 7 days, more than the 3 asked for" in plan.note


def test_not_before_and_busy_intervals_from_any_source_are_respected() -> None:
    m = mentor("America/Chicago", "Mon-Fri 09:00-10:00")
    not_before = datetime(2026, 12, 9, 0, 0, tzinfo=UTC)
    busy = [(datetime(2026, 12, 9, 15, 0, tzinfo=UTC), datetime(2026, 12, 9, 15, 45, tzinfo=UTC))]
    (session,) = plan_sessions(
        parse_budget("30 minutes"), m, "America/Chicago", [], NOW, busy, SETTINGS, not_before=not_before
    ).sessions
    assert session.start == datetime(2026, 12, 10, 15, 0, tzinfo=UTC)

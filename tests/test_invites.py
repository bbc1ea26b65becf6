"""Invitations every client shows with Accept/Decline, sized to the agreed budget, at times
inside both people's windows in their own zones; updates and withdrawals that keep the UID.

Every invitation here is read back with icalendar (tests/calendars.py) and checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mailflow.model import State

from .calendars import Zone, attendees, invite_of, minutes, span
from .programme import DATA, Programme, of, only, ref_of, text_of
from .test_workflow import TEEN, ask_teen_request

VIOLETA = Zone.of("America/Los_Angeles", "Tue 15:00-17:00", "Thu 10:00-12:00")
DANIELLE = Zone.of("America/Los_Angeles", "Tue/Thu 14:00-17:00")
CALENDAR_RULES = DATA / "rules-calendar"


def introduce(programme: Programme, answer: str = "accept"):  # type: ignore[no-untyped-def]
    """Danielle's teen-council request, accepted by Violeta: the messages sent."""
    ask = only(ask_teen_request(programme), "ask")
    programme.answer(ask, answer)
    programme.run(after=timedelta(hours=1))
    return programme.new()


def request_for(programme: Programme, sender: str, body: str, *, mentor_answer: str = "accept"):  # type: ignore[no-untyped-def]
    programme.request(sender, body, name=sender.split("@")[0].replace(".", " ").title())
    programme.run()
    ask = only(programme.new(), "ask")
    programme.answer(ask, mentor_answer)
    programme.run(after=timedelta(hours=1))
    return programme.new()


def sessions_of(sent) -> list:  # type: ignore[no-untyped-def]
    """The invitations of an introduction, in order: the introduction's, then one per session."""
    return [
        invite_of(m)
        for m in of(sent, "introduction")
        + sorted(
            (m for m in sent if str(m.get("X-Mailflow-Purpose", "")).startswith("invite for session")),
            key=lambda m: str(m["X-Mailflow-Purpose"]),
        )
    ]


# -- the shape ---------------------------------------------------------------------------
def test_the_introduction_is_an_imip_invitation_in_every_clients_shape(programme: Programme) -> None:
    intro = only(introduce(programme), "introduction")
    assert intro.get_content_type() == "multipart/mixed"
    alternative, attachment = intro.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.get_payload()] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    calendar_part = alternative.get_payload()[2]
    assert calendar_part["Content-Transfer-Encoding"] == "base64"
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_param("name") == "invite.ics"
    assert attachment.get_content_disposition() == "attachment"
    event = invite_of(intro)
    ref = ref_of(intro)
    assert str(event["UID"]).startswith(ref.lower() + "-1-") and str(event["UID"]).endswith("@library.org")
    assert int(event["SEQUENCE"]) == 0
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["ORGANIZER"].params["CN"]) == "Library Micro Mentoring"
    people = attendees(event)
    assert set(people) == {"danielle.jones@example.org", "violeta.garza@example.org"}
    for params in people.values():
        assert params["ROLE"] == "REQ-PARTICIPANT"
        assert params["PARTSTAT"] == "NEEDS-ACTION"
        assert params["RSVP"] == "TRUE"
    assert people["violeta.garza@example.org"]["CN"] == "Violeta Garza"
    assert str(event["SUMMARY"]) == f"Micro mentoring: Launching a teen advisory council [{ref}]"
    description = str(event["DESCRIPTION"])
    assert "Goal: a plan for the first meeting" in description
    assert "- How do I recruit?\n- What goes on the first agenda?" in description
    assert "Video link: https://video.example.org/violeta" in description
    assert "Recording: this session is not recorded." in description
    assert str(event["URL"]) == "https://video.example.org/violeta"
    assert str(event["LOCATION"]) == "video call: https://video.example.org/violeta"
    assert minutes(event) == 45
    assert VIOLETA.holds(*span(event)) and DANIELLE.holds(*span(event))


def test_user_text_is_escaped_folded_and_read_back_unchanged(programme: Programme) -> None:
    goal = 'a plan; a budget, a "charter" \\ and a long wish: ' + "señales de éxito — " * 6
    body = TEEN.replace("a plan for the first meeting", goal).replace(
        "How do I recruit?", "How do I recruit, keep; and thank teens?"
    )
    body = body.replace("- Time budget:", '- Name: Danielle "Dani" Jones\n- Time budget:')
    programme.request("danielle.jones@example.org", body)
    programme.run()
    programme.answer(only(programme.new(), "ask"), "accept")
    programme.run(after=timedelta(hours=1))
    event = invite_of(only(programme.new(), "introduction"))
    description = str(event["DESCRIPTION"])
    assert f"Goal: {goal.strip()}" in description
    assert "- How do I recruit, keep; and thank teens?" in description
    assert attendees(event)["danielle.jones@example.org"]["CN"] == "Danielle 'Dani' Jones"


# -- sized to the budget -----------------------------------------------------------------
def test_two_sessions_over_two_weeks_are_two_invites_inside_the_span(programme: Programme) -> None:
    sent = request_for(
        programme,
        "chris@example.org",
        "Topic: teen makerspace nights\nTime budget: 2 x 30 minutes over 2 weeks\n"
        "Skills: makerspaces\nFormat: video\nTime zone: America/Chicago\n",
    )
    events = sessions_of(sent)
    assert len(events) == 2
    assert [minutes(e) for e in events] == [30, 30]
    uids = {str(e["UID"]) for e in events}
    assert len(uids) == 2
    first, second = (span(e) for e in events)
    assert timedelta(days=7) <= second[0] - first[0] and second[1] - first[0] <= timedelta(days=14)
    marcus = Zone.of("America/Chicago", "Mon-Wed 13:00-16:00")
    chris = Zone.of("America/Chicago", "Mon-Fri 09:00-17:00")  # the configured default hours
    assert all(marcus.holds(*span(e)) and chris.holds(*span(e)) for e in events)
    assert "(conversation, 1 of 2)" in str(events[0]["SUMMARY"])
    assert "(conversation, 2 of 2)" in str(events[1]["SUMMARY"])
    assert all(set(attendees(e)) == {"chris@example.org", "marcus.okafor@example.org"} for e in events)


def test_shadowing_then_a_debrief_add_up_and_the_debrief_comes_days_later(programme: Programme) -> None:
    sent = request_for(
        programme,
        "jordan@example.org",
        "Topic: running a library board meeting\nTime budget: shadow a meeting then a 30 minute debrief\n"
        "Format: shadowing\nSkills: library leadership\n",
    )
    shadow, debrief = sessions_of(sent)
    assert (minutes(shadow), minutes(debrief)) == (60, 30)  # scheduling.shadowing_minutes + 30
    assert "shadowing, 1 of 2" in str(shadow["SUMMARY"]) and "debrief, 2 of 2" in str(debrief["SUMMARY"])
    assert span(debrief)[0] - span(shadow)[0] >= timedelta(days=3)
    samuel = Zone.of("America/New_York", "Tue 09:00-12:00", "Thu 13:00-17:00")
    assert samuel.holds(*span(shadow)) and samuel.holds(*span(debrief))
    assert str(shadow["LOCATION"]) == "Boston Public Library, 700 Boylston St"
    assert "URL" not in shadow  # no video link for shadowing


def test_a_counter_offer_of_two_sessions_sizes_the_invites(programme: Programme) -> None:
    sent = introduce(programme, answer="accept 2 x 20 minutes")
    events = sessions_of(sent)
    assert [minutes(e) for e in events] == [20, 20]
    ref = ref_of(sent[0])
    request = programme.request_of(ref)
    assert request.agreed is not None and request.agreed.total_minutes == 40
    assert sum(minutes(e) for e in events) == request.agreed.total_minutes
    assert all(VIOLETA.holds(*span(e)) and DANIELLE.holds(*span(e)) for e in events)
    assert "2 x 20-minute conversations" in text_of(of(sent, "introduction")[0])


# -- zones, daylight saving, away, free/busy ---------------------------------------------
READER = (
    "Topic: a reader development plan\nTime budget: 2 x 30 minutes over {span}\n"
    "Availability: weekdays 9am-10am\nTime zone: America/New_York\n"
)
IMOGEN = Zone.of("Europe/London", "Mon-Fri 14:00-15:00")
NEW_YORK_9_TO_10 = Zone.of("America/New_York", "Mon-Fri 09:00-10:00")


def test_europe_leaves_summer_time_a_week_before_america(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # London falls back on 25 October 2026, New York on 1 November: for that week 14:00 in
    # London is 10:00 in New York, outside the protégé's 9-10am, so no session falls in it.
    programme = Programme(tmp_path, rules=CALENDAR_RULES)
    programme.now = datetime(2026, 10, 19, 12, 0, tzinfo=UTC)
    first, second = sessions_of(request_for(programme, "pat@example.org", READER.format(span="2 weeks")))
    for event in (first, second):
        assert IMOGEN.holds(*span(event)) and NEW_YORK_9_TO_10.holds(*span(event))
        assert not datetime(2026, 10, 25, tzinfo=UTC) <= span(event)[0] < datetime(2026, 11, 1, tzinfo=UTC)
    assert span(first)[0] < datetime(2026, 10, 25, tzinfo=UTC) <= span(second)[0]
    assert span(first)[0].hour == 13 and span(second)[0].hour == 14  # BST, then GMT
    assert span(second)[1] - span(first)[0] <= timedelta(days=14)


def test_america_springs_forward_two_weeks_before_europe(tmp_path) -> None:  # type: ignore[no-untyped-def]
    programme = Programme(tmp_path, rules=CALENDAR_RULES)
    programme.now = datetime(2027, 3, 8, 12, 0, tzinfo=UTC)  # US: 14 March, UK: 28 March 2027
    first, second = sessions_of(request_for(programme, "pat@example.org", READER.format(span="3 weeks")))
    for event in (first, second):
        assert IMOGEN.holds(*span(event)) and NEW_YORK_9_TO_10.holds(*span(event))
    assert span(first)[0] < datetime(2027, 3, 14, tzinfo=UTC)
    assert span(second)[0] > datetime(2027, 3, 28, tzinfo=UTC)
    assert span(first)[0].hour == 14 and span(second)[0].hour == 13  # EST/GMT, then EDT/BST


def test_across_the_date_line_and_opposite_seasons(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Sydney leaves summer time on 4 April 2027 while Los Angeles is already on it; a
    # Sydney Monday morning is a Los Angeles Sunday afternoon.
    programme = Programme(tmp_path, rules=CALENDAR_RULES)
    programme.now = datetime(2027, 3, 22, 12, 0, tzinfo=UTC)
    body = (
        "Topic: digital preservation for local history\nTime budget: 3 x 30 minutes over 3 weeks\n"
        "Availability: weekdays 1-4pm\nTime zone: America/Los_Angeles\n"
    )
    events = sessions_of(request_for(programme, "sam@example.org", body))
    kiri = Zone.of("Australia/Sydney", "Mon-Fri 08:00-10:00")
    los_angeles = Zone.of("America/Los_Angeles", "Mon-Fri 13:00-16:00")
    assert len(events) == 3
    for event in events:
        assert kiri.holds(*span(event)) and los_angeles.holds(*span(event))
    offsets = {span(e)[0].astimezone(ZoneInfo("Australia/Sydney")).utcoffset() for e in events}
    assert offsets == {timedelta(hours=11), timedelta(hours=10)}  # both sides of 4 April


def test_an_away_period_blocks_the_first_weeks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    programme = Programme(tmp_path, rules=CALENDAR_RULES)
    body = "Topic: an open access policy\nTime budget: 45 minutes\nTime zone: Europe/London\n"
    (event,) = sessions_of(request_for(programme, "ana@example.org", body))
    start, end = span(event)
    berlin = start.astimezone(ZoneInfo("Europe/Berlin"))
    assert berlin.date().isoformat() == "2026-12-29"  # away 3..27 December; the 28th is a Monday
    assert Zone.of("Europe/Berlin", "Tue 10:00-12:00", "Thu 10:00-12:00").holds(start, end)
    assert Zone.of("Europe/London", "Mon-Fri 09:00-17:00").holds(start, end)


def test_busy_times_from_the_mentors_free_busy_file_are_avoided(tmp_path) -> None:  # type: ignore[no-untyped-def]
    programme = Programme(tmp_path, rules=CALENDAR_RULES)
    body = "Topic: maker nights for teens\nTime budget: 45 minutes\nSkills: makerspaces\n"
    sent = request_for(programme, "lee@example.org", body)
    (event,) = sessions_of(sent)
    # Thursday 3 December is busy until 16:30 (30 minutes left), every Tuesday is busy,
    # 10 December has only a "free" (transparent) entry: the first fit is 10 December 13:00.
    assert span(event)[0] == datetime(2026, 12, 10, 18, 0, tzinfo=UTC)
    assert "frank.osei@example.org" in attendees(event)
    # Never double-booked: the next protégé of the same mentor gets the next free time.
    second = sessions_of(request_for(programme, "kim@example.org", body.replace("teens", "adults")))[0]
    assert span(second)[0] == span(event)[1]


def test_a_free_busy_file_that_cannot_be_read_is_recorded_and_planning_goes_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    programme = Programme(tmp_path, rules=CALENDAR_RULES)
    (tmp_path / "rules" / "busy" / "frank.ics").write_text("this is not a calendar")
    sent = request_for(programme, "lee@example.org", "Topic: maker nights\nTime budget: 45 minutes\n")
    (event,) = sessions_of(sent)
    assert span(event)[0] == datetime(2026, 12, 3, 18, 0, tzinfo=UTC)  # Thursday 13:00 New York
    request = programme.request_of(ref_of(sent[0]))
    notes = [e.reason for e in request.history if e.what == "planning"]
    assert any(
        "free/busy calendar of frank.osei@example.org (busy/frank.ics) could not be read" in n for n in notes
    )


def test_mailflow_check_names_a_missing_free_busy_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    programme = Programme(tmp_path, rules=CALENDAR_RULES)
    (tmp_path / "rules" / "busy" / "frank.ics").unlink()
    from click.testing import CliRunner

    from mailflow.cli import main

    result = CliRunner().invoke(main, ["check", "--config", str(programme.config_path)])
    assert result.exit_code == 1
    assert (
        "mentors.toml:" in result.output
        and "frank.osei@example.org: free_busy 'busy/frank.ics'" in result.output
    )


def test_no_time_within_the_horizon_is_said_and_the_coordinator_told(tmp_path) -> None:  # type: ignore[no-untyped-def]
    programme = Programme(tmp_path, rules=CALENDAR_RULES, extra_config='\n[scheduling]\nhorizon = "3w"\n')
    sent = request_for(programme, "ana@example.org", "Topic: open access\nTime budget: 45 minutes\n")
    intro = only(sent, "introduction")
    assert "We could not find a time that suits you both" in text_of(intro)
    assert not [p for p in intro.walk() if p.get_content_type() == "text/calendar"]
    note = only(sent, "coordinator note", to="coordinator@library.org")
    assert "No common time found" in str(note["Subject"])
    request = programme.request_of(ref_of(intro))
    assert request.state is State.INTRODUCED and request.bookings == []


# -- changes: reschedule (same UID, SEQUENCE + 1) and cancel ------------------------------
def test_reschedule_sends_an_update_then_cancel_withdraws_it(programme: Programme) -> None:
    intro = only(introduce(programme), "introduction")
    first = invite_of(intro)
    programme.answer(
        intro, "Reschedule please - I have a board meeting then", sender="danielle.jones@example.org"
    )
    programme.run(after=timedelta(hours=1))
    sent = programme.new()
    moved_message = only(sent, "new time for session 1")
    assert sorted(a.addr_spec for a in moved_message["To"].addresses) == [
        "danielle.jones@example.org",
        "violeta.garza@example.org",
    ]
    assert "I have a board meeting then" in text_of(moved_message)
    moved = invite_of(moved_message)
    assert str(moved["UID"]) == str(first["UID"])
    assert int(moved["SEQUENCE"]) == int(first["SEQUENCE"]) + 1
    assert span(moved)[0] >= span(first)[1] or span(moved)[1] <= span(first)[0]  # a different time
    assert minutes(moved) == 45 and VIOLETA.holds(*span(moved)) and DANIELLE.holds(*span(moved))
    assert all(p["PARTSTAT"] == "NEEDS-ACTION" for p in attendees(moved).values())
    request = programme.request_of(ref_of(intro))
    assert request.bookings[0].start == span(moved)[0] and request.reschedules == 1
    assert request.timer is not None and request.timer.due == span(moved)[1] + timedelta(days=1)

    programme.answer(intro, "cancel", sender="violeta.garza@example.org")
    programme.run(after=timedelta(hours=1))
    sent = programme.new()
    for person in ("danielle.jones@example.org", "violeta.garza@example.org"):
        message = only(sent, "cancellation", to=person)
        event = invite_of(message, "CANCEL")
        assert str(event["UID"]) == str(first["UID"])
        assert int(event["SEQUENCE"]) == 2
        assert str(event["STATUS"]) == "CANCELLED"
        assert all("RSVP" not in p and "PARTSTAT" not in p for p in attendees(event).values())


def test_cancel_withdraws_every_future_session_but_not_those_held(programme: Programme) -> None:
    sent = request_for(
        programme,
        "chris@example.org",
        "Topic: teen makerspace nights\nTime budget: 2 x 30 minutes over 2 weeks\nSkills: makerspaces\n",
    )
    first, second = sessions_of(sent)
    intro = only(sent, "introduction")
    programme.run(at=(span(first)[1] + timedelta(hours=1)).isoformat())  # the first session is over
    programme.new()
    programme.answer(intro, "cancel, our makerspace is closing", sender="chris@example.org")
    programme.run(after=timedelta(hours=1))
    sent = programme.new()
    withdrawn = [invite_of(m, "CANCEL") for m in sent if calendar_method(m) == "CANCEL"]
    assert {str(e["UID"]) for e in withdrawn} == {str(second["UID"])}
    assert len(withdrawn) == 2  # one to each of the pair
    assert all(int(e["SEQUENCE"]) == 1 for e in withdrawn)


def test_a_cancel_before_any_session_withdraws_them_all(programme: Programme) -> None:
    sent = request_for(
        programme,
        "chris@example.org",
        "Topic: teen makerspace nights\nTime budget: 2 x 30 minutes over 2 weeks\nSkills: makerspaces\n",
    )
    uids = {str(e["UID"]) for e in sessions_of(sent)}
    programme.answer(only(sent, "introduction"), "cancel", sender="marcus.okafor@example.org")
    programme.run(after=timedelta(hours=1))
    withdrawn = [invite_of(m, "CANCEL") for m in programme.new() if calendar_method(m) == "CANCEL"]
    assert len(withdrawn) == 4  # two sessions, each to both
    assert {str(e["UID"]) for e in withdrawn} == uids


def test_the_mentor_and_the_coordinator_can_reschedule_too_but_not_forever(programme: Programme) -> None:
    intro = only(introduce(programme), "introduction")
    uid = str(invite_of(intro)["UID"])
    starts = []
    for sender in ("violeta.garza@example.org", "danielle.jones@example.org"):
        programme.answer(intro, "reschedule", sender=sender)
        programme.run(after=timedelta(hours=1))
        moved = invite_of(only(programme.new(), "new time for session 1"))
        assert str(moved["UID"]) == uid
        starts.append(span(moved)[0])
    note = only(ask_protege_decline(programme, intro), "coordinator note")
    programme.answer(note, "reschedule")
    programme.run(after=timedelta(hours=1))
    third = invite_of(only(programme.new(), "new time for session 1"))
    assert int(third["SEQUENCE"]) == 3 and len({*starts, span(third)[0]}) == 3
    programme.answer(intro, "reschedule again?", sender="danielle.jones@example.org")
    programme.run(after=timedelta(hours=1))
    parked = only(programme.new(), "needs-attention note", to="coordinator@library.org")
    assert "already rescheduled 3 times" in text_of(parked)


def test_a_reschedule_with_no_other_time_keeps_the_session_and_says_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    programme = Programme(tmp_path, extra_config='\n[scheduling]\nhorizon = "9d"\n')
    intro = only(introduce(programme), "introduction")
    before = invite_of(intro)
    programme.answer(intro, "reschedule", sender="danielle.jones@example.org")
    programme.run(after=timedelta(hours=1))
    failed = only(programme.new(), "no new time found")
    assert [a.addr_spec for a in failed["Cc"].addresses] == ["coordinator@library.org"]
    assert "still stands" in text_of(failed)
    booking = programme.request_of(ref_of(intro)).bookings[0]
    assert booking.sequence == 0 and booking.start == span(before)[0]


def calendar_method(message) -> str | None:  # type: ignore[no-untyped-def]
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    return parts[0].get_param("method") if parts else None


def ask_protege_decline(programme: Programme, intro):  # type: ignore[no-untyped-def]
    """Danielle declines the current invitation from her calendar."""
    from mailflow.correspondent import answer_invitation
    from mailflow.model import Person

    latest = [m for m in programme.outbox() if calendar_method(m) == "REQUEST"][-1]
    programme.deliver(
        answer_invitation(
            latest, Person("danielle.jones@example.org", "Danielle Jones"), "DECLINED", programme.now
        )
    )
    programme.run(after=timedelta(minutes=5))
    return programme.new()


def test_a_reschedule_after_no_common_time_looks_again_and_invites(tmp_path) -> None:  # type: ignore[no-untyped-def]
    programme = Programme(tmp_path, rules=CALENDAR_RULES, extra_config='\n[scheduling]\nhorizon = "3w"\n')
    body = "Topic: open access\nTime budget: 45 minutes\nTime zone: Europe/London\n"
    intro = only(request_for(programme, "ana@example.org", body), "introduction")
    assert programme.request_of(ref_of(intro)).bookings == []  # Olga is away until 27 December
    programme.run(at="2026-12-20T12:00:00+00:00")
    programme.new()
    programme.answer(intro, "reschedule - can we try again now?", sender="ana@example.org")
    programme.run(after=timedelta(hours=1))
    invitation = only(programme.new(), "new time for session 1")
    assert str(invitation["Subject"]).startswith(f"[{ref_of(intro)}] New invitation")
    event = invite_of(invitation)
    assert int(event["SEQUENCE"]) == 0 and minutes(event) == 45
    assert span(event)[0].astimezone(ZoneInfo("Europe/Berlin")).date().isoformat() == "2026-12-29"

"""Calendar answers (iTIP REPLY, RFC 5546 3.2.3) as Outlook, Google Calendar, Apple Calendar
and Thunderbird send them, through the inbox: routed by the session's UID, recorded on
the session, acted on, never answered. The stored answers are in tests/data/rsvp/."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailflow.correspondent import answer_invitation, read, reply
from mailflow.model import Person, State

from .calendars import invite_of
from .programme import DATA, Programme, calendar_answer, of, only, ref_of, text_of, with_headers
from .test_invites import introduce, request_for
from .test_workflow import TEEN

DANIELLE = "danielle.jones@example.org"
VIOLETA = "violeta.garza@example.org"


def introduced(programme: Programme) -> tuple[str, str]:
    """Danielle and Violeta introduced; (reference, UID of the session)."""
    intro = only(introduce(programme), "introduction")
    return ref_of(intro), str(invite_of(intro)["UID"])


def answer(programme: Programme, raw: bytes) -> list:  # type: ignore[type-arg]
    programme.deliver(raw)
    programme.run(after=timedelta(minutes=30))
    return programme.new()


def test_outlook_acceptance_is_recorded_and_nobody_is_answered(programme: Programme) -> None:
    ref, uid = introduced(programme)
    assert answer(programme, calendar_answer("outlook-accepted", uid)) == []
    request = programme.request_of(ref)
    assert request.bookings[0].rsvp == {VIOLETA: "ACCEPTED"}
    event = request.history[-1]
    assert event.what == "calendar answer from the mentor"
    assert (
        "ACCEPTED session 1" in event.reason
        and "from Outlook: Looking forward to meeting Danielle." in event.reason
    )
    filed = [str(m["Subject"]) for m in programme.folder("processed")]
    assert any(subject.startswith("Accepted: Micro mentoring") for subject in filed)
    assert "RSVP: mentor ACCEPTED, protégé no answer" in programme.cli("status", ref)


@pytest.mark.parametrize(
    "automatic",
    [
        {},
        {"Auto-Submitted": "auto-generated"},
        {"Precedence": "bulk"},
        {"Auto-Submitted": "auto-replied", "X-Autoreply": "yes", "Return-Path": "<>"},
    ],
    ids=["plain", "auto-submitted", "precedence-bulk", "every-noise-header"],
)
def test_google_acceptance_counts_even_when_marked_automatic(
    programme: Programme, automatic: dict[str, str]
) -> None:
    ref, uid = introduced(programme)
    assert answer(programme, with_headers(calendar_answer("google-accepted", uid), automatic)) == []
    request = programme.request_of(ref)
    assert request.bookings[0].rsvp == {DANIELLE: "ACCEPTED"}
    assert "from Google Calendar: I'll bring our survey results" in request.history[-1].reason


def test_apple_calendar_maybe_is_recorded_as_tentative(programme: Programme) -> None:
    ref, uid = introduced(programme)
    assert answer(programme, calendar_answer("apple-tentative", uid)) == []
    request = programme.request_of(ref)
    assert request.bookings[0].rsvp == {DANIELLE: "TENTATIVE"}
    assert request.state is State.INTRODUCED
    assert "protégé TENTATIVE" in programme.cli("status", ref)


def test_thunderbird_decline_by_the_mentor_withdraws_the_session_and_asks_the_next(
    programme: Programme,
) -> None:
    ref, uid = introduced(programme)
    sent = answer(programme, calendar_answer("thunderbird-declined", uid))
    request = programme.request_of(ref)
    assert request.state is State.ASKING
    nxt = only(sent, "ask")
    assert nxt["To"].addresses[0].addr_spec not in (VIOLETA, DANIELLE)
    told = only(sent, "mentor declined the invitation", to=DANIELLE)
    assert "Violeta Garza has declined the calendar invitation" in text_of(told)
    assert "We are asking another mentor now" in text_of(told)
    for person in (DANIELLE, VIOLETA):
        cancel = invite_of(only(sent, "mentor declined the invitation", to=person), "CANCEL")
        assert str(cancel["UID"]) == uid and int(cancel["SEQUENCE"]) == 1
    assert request.mentor is None and request.bookings == []
    assert [(b.uid, b.status, b.rsvp) for b in request.withdrawn] == [
        (uid, "cancelled", {VIOLETA: "DECLINED"})
    ]
    violeta_ask = next(a for a in request.asks if a.mentor == VIOLETA)
    assert (violeta_ask.outcome, violeta_ask.reason) == ("declined", "declined the calendar invitation")
    # Marcus (no common time with Danielle) declines by mail, Tomás accepts: a new session with a
    # new UID; a late answer to the withdrawn one changes nothing.
    assert nxt["To"].addresses[0].addr_spec == "marcus.okafor@example.org"
    programme.answer(nxt, "decline")
    programme.run(after=timedelta(hours=1))
    programme.answer(only(programme.new(), "ask", to="tomas.reyes@example.org"), "accept")
    programme.run(after=timedelta(hours=1))
    new_uid = str(invite_of(only(programme.new(), "introduction"))["UID"])
    assert new_uid != uid
    assert answer(programme, calendar_answer("google-accepted", uid)) == []
    request = programme.request_of(ref)
    assert request.bookings[0].rsvp == {} and request.history[-1].what == "calendar answer ignored"
    assert "withdrawn session" in programme.cli("status", ref)


def test_a_mentors_decline_escalates_when_the_rule_says_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    programme = Programme(
        tmp_path, rules=DATA / "rules-calendar"
    )  # Makerspaces: on_mentor_decline = "escalate"
    sent = request_for(programme, "lee@example.org", "Topic: maker nights\nTime budget: 45 minutes\n")
    intro = only(sent, "introduction")
    frank = Person("frank.osei@example.org", "Frank Osei")
    sent = answer(
        programme, answer_invitation(intro, frank, "DECLINED", programme.now, comment="Away that week")
    )
    request = programme.request_of(ref_of(intro))
    assert request.state is State.ESCALATED
    escalation = only(sent, "escalation", to="coordinator@library.org")
    assert (
        "frank.osei@example.org declined the calendar invitation (on_mentor_decline = escalate)"
        in text_of(escalation)
    )
    told = only(sent, "mentor declined the invitation", to="lee@example.org")
    assert "Their note: Away that week" in text_of(told)
    assert "coordinator will be in touch" in text_of(told)
    assert not of(sent, "ask")


def test_a_proteges_decline_tells_the_coordinator_who_can_reschedule(programme: Programme) -> None:
    ref, uid = introduced(programme)
    declined = calendar_answer(
        "outlook-accepted",
        uid,
        {
            "PARTSTAT=ACCEPTED;CN=Violeta Garza:MAILTO:violeta.garza": (
                "PARTSTAT=DECLINED;CN=Danielle Jones:MAILTO:danielle.jones"
            ),
            "Violeta Garza <violeta.garza@example.org>": "Danielle Jones <danielle.jones@example.org>",
            "Looking forward to meeting Danielle.": "Sorry, I am at a conference that day.",
            "Accepted:": "Declined:",
        },
    )
    sent = answer(programme, declined)
    note = only(sent, "coordinator note", to="coordinator@library.org")
    assert "Danielle Jones declined the calendar invitation for session 1" in str(note["Subject"])
    assert "Their note: Sorry, I am at a conference that day." in text_of(note)
    assert len(sent) == 1
    assert programme.request_of(ref).state is State.INTRODUCED
    programme.answer(note, "reschedule")
    programme.run(after=timedelta(hours=1))
    moved = invite_of(only(programme.new(), "new time for session 1"))
    assert str(moved["UID"]) == uid and int(moved["SEQUENCE"]) == 1


def test_an_answer_to_an_earlier_version_is_not_taken_for_the_new_time(programme: Programme) -> None:
    ref, uid = introduced(programme)
    intro = of(programme.outbox(), "introduction")[0]
    programme.answer(intro, "reschedule", sender=DANIELLE)
    programme.run(after=timedelta(hours=1))
    programme.new()
    assert answer(programme, calendar_answer("outlook-accepted", uid)) == []  # SEQUENCE:0, now 1
    request = programme.request_of(ref)
    assert request.bookings[0].sequence == 1 and request.bookings[0].rsvp == {}
    assert "answered an earlier version" in request.history[-1].reason


def test_an_answer_sent_for_someone_else_is_parked_and_nothing_recorded(programme: Programme) -> None:
    ref, uid = introduced(programme)
    forged = calendar_answer(
        "outlook-accepted",
        uid,
        {"Violeta Garza <violeta.garza@example.org>": "Mallory <mallory@example.net>"},
    )
    sent = answer(programme, forged)
    note = only(sent, "needs-attention note", to="coordinator@library.org")
    assert "mallory@example.net sent a calendar answer on behalf of violeta.garza@example.org" in text_of(
        note
    )
    assert programme.request_of(ref).bookings[0].rsvp == {}
    assert len(programme.folder("needs-attention")) == 1


def test_an_answer_for_an_event_mailflow_did_not_send_is_parked_never_answered(programme: Programme) -> None:
    introduced(programme)
    foreign = calendar_answer(
        "google-accepted", "mm-7f3k2-1-1796511600@library.org", {"@library.org": "@google.com"}
    )
    sent = answer(programme, foreign)
    note = only(sent, "needs-attention note")
    assert note["To"].addresses[0].addr_spec == "coordinator@library.org"
    assert "for an event mailflow did not send" in text_of(note)


def test_a_proposal_of_another_time_is_parked_for_the_coordinator(programme: Programme) -> None:
    ref, uid = introduced(programme)
    counter = calendar_answer(
        "outlook-accepted", uid, {"METHOD:REPLY": "METHOD:COUNTER", "method=REPLY": "method=COUNTER"}
    )
    note = only(answer(programme, counter), "needs-attention note")
    assert "proposes another time (iTIP COUNTER) from Outlook" in text_of(note)
    assert programme.request_of(ref).bookings[0].rsvp == {}


def test_an_accepted_subject_without_its_calendar_part_is_matched_by_summary(programme: Programme) -> None:
    ref, _ = introduced(programme)
    intro = of(programme.outbox(), "introduction")[0]
    summary = str(invite_of(intro)["SUMMARY"])
    from .programme import request_mail

    # Only as a reply to a message sent to her: without the calendar part there is no UID to prove it.
    headers = {"In-Reply-To": str(intro["Message-ID"])}
    raw = request_mail(VIOLETA, "", subject=f"Accepted: {summary}", name="Violeta Garza", headers=headers)
    assert answer(programme, raw) == []
    request = programme.request_of(ref)
    assert request.bookings[0].rsvp == {VIOLETA: "ACCEPTED"}
    assert "the subject line (no calendar part)" in request.history[-1].reason


def test_the_same_answer_twice_and_an_older_one_change_nothing(programme: Programme) -> None:
    ref, uid = introduced(programme)
    answer(programme, calendar_answer("apple-tentative", uid))  # DTSTAMP 2 December
    answer(programme, calendar_answer("google-accepted", uid))  # DTSTAMP 1 December: older
    request = programme.request_of(ref)
    assert request.bookings[0].rsvp == {DANIELLE: "TENTATIVE"}
    assert "is older" in request.history[-1].reason


def test_a_late_answer_for_a_cancelled_request_is_filed_quietly(programme: Programme) -> None:
    ref, uid = introduced(programme)
    intro = of(programme.outbox(), "introduction")[0]
    programme.answer(intro, "cancel", sender=DANIELLE)
    programme.run(after=timedelta(hours=1))
    programme.new()
    assert answer(programme, calendar_answer("outlook-accepted", uid)) == []
    assert programme.request_of(ref).state is State.CANCELLED
    assert programme.folder("needs-attention") == []


def test_the_coordinators_own_calendar_answer_is_filed_without_a_note(programme: Programme) -> None:
    ref, _ = introduced(programme)
    intro = of(programme.outbox(), "introduction")[0]
    coordinator = Person("coordinator@library.org", "Programme coordinator")
    assert answer(programme, answer_invitation(intro, coordinator, "ACCEPTED", programme.now)) == []
    request = programme.request_of(ref)
    assert request.bookings[0].rsvp == {}
    assert request.history[-1].reason.startswith("the coordinator's calendar ACCEPTED")


def test_an_outlook_answer_wrapped_in_tnef_is_read_from_its_subject(programme: Programme) -> None:
    # Exchange sends rich-text contacts a winmail.dat instead of text/calendar.
    ref, _ = introduced(programme)
    summary = str(invite_of(of(programme.outbox(), "introduction")[0])["SUMMARY"])
    from .programme import request_mail

    intro = of(programme.outbox(), "introduction")[0]
    headers = {"In-Reply-To": str(intro["Message-ID"])}
    message = read(
        request_mail(VIOLETA, "", subject=f"Declined: {summary}", name="Violeta Garza", headers=headers)
    )
    message.add_attachment(
        b"\x78\x9f\x3e\x22" + b"\0" * 64, maintype="application", subtype="ms-tnef", filename="winmail.dat"
    )
    sent = answer(programme, message.as_bytes())
    request = programme.request_of(ref)
    assert request.state is State.ASKING  # the mentor's decline: the next candidate is asked
    assert only(sent, "ask")["To"].addresses[0].addr_spec != VIOLETA
    assert request.withdrawn[0].rsvp == {VIOLETA: "DECLINED"}


def test_an_accepted_subject_from_nowhere_is_not_taken_on_trust(programme: Programme) -> None:
    ref, _ = introduced(programme)
    summary = str(invite_of(of(programme.outbox(), "introduction")[0])["SUMMARY"])
    from .programme import request_mail

    sent = answer(programme, request_mail(VIOLETA, "", subject=f"Declined: {summary}", name="Violeta Garza"))
    assert "cannot be told from a forgery" in text_of(only(sent, "needs-attention note"))
    assert programme.request_of(ref).state is State.INTRODUCED


def test_with_require_dmarc_a_calendar_answer_needs_our_servers_pass(tmp_path) -> None:  # type: ignore[no-untyped-def]
    programme = Programme(
        tmp_path, extra_config='\n[security]\nrequire_dmarc = true\nauthserv_id = "mx.library.org"\n'
    )
    passed = {"Authentication-Results": "mx.library.org; dmarc=pass header.from=example.org"}
    programme.request(DANIELLE, TEEN, name="Danielle Jones", headers=passed)
    programme.run()
    ask = only(programme.new(), "ask")
    programme.deliver(
        with_headers(reply(ask, Person(VIOLETA, "Violeta Garza"), "accept", programme.now), passed)
    )
    programme.run(after=timedelta(hours=1))
    intro = only(programme.new(), "introduction")
    ref, uid = ref_of(intro), str(invite_of(intro)["UID"])
    sent = answer(programme, calendar_answer("thunderbird-declined", uid))
    assert "without a DMARC pass (missing)" in text_of(only(sent, "needs-attention note"))
    assert programme.request_of(ref).state is State.INTRODUCED
    answer(programme, with_headers(calendar_answer("thunderbird-declined", uid), passed))
    assert programme.request_of(ref).state is State.ASKING

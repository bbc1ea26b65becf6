"""The workflow of PRODUCT.md, row by row, driven through the mailbox and the CLI."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from mailflow.model import State

from .programme import Programme, events_of, minutes, of, only, ref_of, text_of

TEEN = """Hi,

- Topic: Launching a teen advisory council
- Time budget: one 45-minute conversation
- Format: video
- Skills: teen services, youth development
- Goal: a plan for the first meeting
- Availability: Tue/Thu 2-5pm
- Time zone: America/Los_Angeles
- Questions:
  - How do I recruit?
  - What goes on the first agenda?

Thanks,
Danielle
"""


def ask_teen_request(programme: Programme, sender: str = "danielle.jones@example.org", body: str = TEEN):  # type: ignore[no-untyped-def]
    programme.request(sender, body, name="Danielle Jones")
    programme.run()
    sent = programme.new()
    return sent


def test_a_complete_request_is_acknowledged_and_a_mentor_asked(programme: Programme) -> None:
    sent = ask_teen_request(programme)
    ack = only(sent, "acknowledgement", to="danielle.jones@example.org")
    ref = ref_of(ack)
    text = text_of(ack)
    assert "Launching a teen advisory council" in text
    assert "one 45-minute conversation" in text
    assert ref in text
    ask = only(sent, "ask")
    assert [a.addr_spec for a in ask["To"].addresses] == ["violeta.garza@example.org"]
    ask_text = text_of(ask)
    assert "Launching a teen advisory council" in ask_text  # the need
    assert "one 45-minute conversation" in ask_text  # the budget
    assert "video" in ask_text  # the format
    assert "has worked with the protégé before" in ask_text  # why this mentor
    assert f"[{ref}]" in str(ask["Subject"])
    assert "+mm-" in str(ask["Reply-To"]) and ".m." in str(ask["Reply-To"])
    request = programme.request_of(ref)
    assert request.state is State.ASKING
    assert request.decision and request.decision.rule == "Teen services"
    # The processed request is filed away, nothing left in the inbox.
    assert programme.inbox_waiting() == 0
    assert len(programme.folder("processed")) == 1


def test_accept_sends_one_introduction_with_an_invite_sized_to_the_budget(
    programme: Programme,
) -> None:
    ask = only(ask_teen_request(programme), "ask")
    programme.answer(ask, "Yes, happy to help!")
    programme.run(after=timedelta(hours=1))
    intro = only(programme.new(), "introduction")
    to = sorted(a.addr_spec for a in intro["To"].addresses)
    assert to == ["danielle.jones@example.org", "violeta.garza@example.org"]
    assert [a.addr_spec for a in intro["Cc"].addresses] == ["coordinator@library.org"]
    (event,) = events_of(intro)
    assert minutes(event) == 45
    start = event.decoded("dtstart")
    # Inside Violeta's Tue 15-17 / Thu 10-12 (Los Angeles) and Danielle's Tue/Thu 2-5pm (LA).
    local = start.astimezone(ZoneInfo("America/Los_Angeles"))
    assert local.weekday() == 1 and 15 <= local.hour < 17
    text = text_of(intro)
    assert local.strftime("%H:%M") in text  # both local times are shown
    assert "How do I recruit?" in text
    assert programme.request_of(ref_of(intro)).state is State.INTRODUCED


def test_accept_with_a_counter_offer_sizes_the_invite_to_it(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    programme.answer(ask, "accept 30 minutes\n\nThat is all I can do this month.")
    programme.run(after=timedelta(hours=1))
    intro = only(programme.new(), "introduction")
    (event,) = events_of(intro)
    assert minutes(event) == 30
    request = programme.request_of(ref_of(intro))
    assert request.agreed is not None and request.agreed.total_minutes == 30
    assert request.asks[-1].reason == "counter-offer: one 30-minute conversation"


def test_decline_asks_the_next_candidate_and_records_the_reason(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    programme.answer(ask, "Decline - I'm travelling all month, sorry.")
    programme.run(after=timedelta(hours=1))
    second = only(programme.new(), "ask")
    assert second["To"].addresses[0].addr_spec != "violeta.garza@example.org"
    request = programme.request_of(ref_of(second))
    assert request.asks[0].outcome == "declined"
    assert "travelling all month" in request.asks[0].reason
    assert "already asked" in " ".join(r.reason for r in request.decision.rejected)


def test_no_answer_in_time_withdraws_the_ask_and_asks_the_next(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    ref = ref_of(ask)
    programme.run(after=timedelta(days=1))  # the Teen services rule waits 2 days
    assert programme.new() == []
    programme.run(after=timedelta(days=1, minutes=1))
    sent = programme.new()
    only(sent, "withdrawal", to="violeta.garza@example.org")
    nxt = only(sent, "ask")
    assert nxt["To"].addresses[0].addr_spec != "violeta.garza@example.org"
    request = programme.request_of(ref)
    assert request.asks[0].outcome == "timed out"
    assert any("did not answer in time" in e.reason for e in request.history)


def test_candidates_exhausted_goes_to_the_coordinator(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    for _ in range(3):
        programme.answer(ask, "no")
        programme.run(after=timedelta(hours=1))
        sent = programme.new()
        if of(sent, "escalation"):
            break
        ask = only(sent, "ask")
    escalation = only(sent, "escalation", to="coordinator@library.org")
    text = text_of(escalation)
    assert "assign someone@example.org" in text
    assert "declined" in text
    assert programme.request_of(ref_of(escalation)).state is State.ESCALATED


NOBODY_FITS = (
    "Topic: storytime for toddlers\nTime budget: 30 minutes\nFormat: phone\n"
    "Skills: storytime\nPrior relationship: required\n"
)


def test_no_candidate_at_all_escalates_at_once(programme: Programme) -> None:
    programme.request("kevin@example.org", NOBODY_FITS)
    programme.run()
    sent = programme.new()
    only(sent, "acknowledgement")
    escalation = only(sent, "escalation", to="coordinator@library.org")
    request = programme.request_of(ref_of(escalation))
    assert request.state is State.ESCALATED
    reasons = {r.email: r.reason for r in request.decision.rejected}
    assert "does not offer 'phone'" in reasons["violeta.garza@example.org"]
    assert "no prior relationship" in reasons["lucia.fernandez@example.org"]
    assert reasons["grace.kim@example.org"].startswith("does not offer 'phone'")
    assert "lucia.fernandez@example.org" in text_of(escalation)  # the coordinator sees why


def test_coordinator_assigns_a_mentor_to_an_escalated_request(programme: Programme) -> None:
    programme.request("kevin@example.org", NOBODY_FITS)
    programme.run()
    escalation = only(programme.new(), "escalation")
    programme.answer(escalation, "assign samuel.bright@example.org")
    programme.run(after=timedelta(hours=1))
    ask = only(programme.new(), "ask", to="samuel.bright@example.org")
    assert "programme coordinator chose you" in text_of(ask)


def test_an_incomplete_request_is_completed_by_reply_into_the_same_request(
    programme: Programme,
) -> None:
    programme.request("kevin@example.org", "Hello,\n\nFormat: carrier pigeon\nSkills: storytime\n")
    programme.run()
    reply = only(programme.new(), "completion request", to="kevin@example.org")
    text = text_of(reply)
    assert "Topic: missing" in text
    assert "Time budget: missing" in text
    assert "Format: 'carrier pigeon' is not one of" in text
    assert "Time budget: one 45-minute conversation" in text  # the filled-in example
    ref = ref_of(reply)
    assert programme.request_of(ref).state is State.INCOMPLETE
    programme.answer(
        reply, "Topic: Toddler storytime for 40 families\nTime budget: 30 minutes\nFormat: video"
    )
    programme.run(after=timedelta(hours=1))
    sent = programme.new()
    ack = only(sent, "acknowledgement", to="kevin@example.org")
    assert ref_of(ack) == ref
    only(sent, "ask")
    request = programme.request_of(ref)
    assert request.form.topic == "Toddler storytime for 40 families"
    assert request.form.skills == ["storytime"]  # kept from the first message
    assert request.state is State.ASKING


def test_a_budget_over_the_limit_is_named_in_the_reply(programme: Programme) -> None:
    programme.request("sam@example.org", "Topic: leadership\nTime budget: 4 x 2 hours over 8 weeks")
    programme.run()
    reply = only(programme.new(), "completion request")
    assert "480 minutes, more than this programme's limit of 360 minutes" in text_of(reply)


def test_an_unclear_answer_gets_one_clarification_never_a_guess(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    programme.answer(ask, "Maybe? Let me check my calendar.")
    programme.run(after=timedelta(hours=1))
    clarification = only(programme.new(), "clarification", to="violeta.garza@example.org")
    assert "accept 45 minutes" in text_of(clarification)
    programme.answer(clarification, "Hmm, still not sure.")
    programme.run(after=timedelta(hours=1))
    note = only(programme.new(), "needs-attention note", to="coordinator@library.org")
    assert "second unclear reply" in text_of(note)
    assert len(programme.folder("needs-attention")) == 1
    assert programme.request_of(ref_of(ask)).state is State.ASKING  # nothing guessed


def test_only_the_new_text_of_a_reply_counts(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    # The quoted ask contains "decline" and "accept"; Outlook style history.
    programme.answer(ask, "Decline, sorry.", quote_style="outlook")
    programme.run(after=timedelta(hours=1))
    request = programme.request_of(ref_of(ask))
    assert request.asks[0].outcome == "declined"


def test_a_reply_from_someone_else_is_parked_and_the_coordinator_told(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    programme.answer(ask, "accept", sender="intruder@example.net")
    programme.run(after=timedelta(hours=1))
    note = only(programme.new(), "needs-attention note", to="coordinator@library.org")
    assert "intruder@example.net" in text_of(note)
    assert programme.request_of(ref_of(ask)).state is State.ASKING
    (parked,) = programme.folder("needs-attention")
    assert "intruder@example.net" in str(parked["From"])  # the original is kept


def test_reflection_after_the_last_session_then_one_reminder_then_closed(
    programme: Programme,
) -> None:
    ask = only(ask_teen_request(programme), "ask")
    programme.answer(ask, "accept")
    programme.run(after=timedelta(hours=1))
    intro = only(programme.new(), "introduction")
    (event,) = events_of(intro)
    end = event.decoded("dtend")
    programme.run(at=(end + timedelta(hours=23)).isoformat())
    assert programme.new() == []  # reflection_delay is one day
    programme.run(at=(end + timedelta(days=1, minutes=1)).isoformat())
    sent = programme.new()
    to_protege = only(sent, "reflection", to="danielle.jones@example.org")
    only(sent, "reflection", to="violeta.garza@example.org")
    assert "What worked" in text_of(to_protege)
    programme.answer(
        to_protege,
        "What worked: the examples\nWhat didn't: too short\nWhat you'll try: a pilot\nMore help later? yes",
    )
    programme.run(after=timedelta(hours=2))
    assert programme.new() == []
    programme.run(after=timedelta(days=4))
    reminder = only(programme.new(), "reflection reminder")
    assert reminder["To"].addresses[0].addr_spec == "violeta.garza@example.org"
    programme.run(after=timedelta(days=4, minutes=1))
    request = programme.request_of(ref_of(intro))
    assert request.state is State.CLOSED
    assert request.reflections["protege"].answers["worked"] == "the examples"
    assert "answered: protege" in request.history[-1].reason


def test_a_finished_pairing_is_remembered_for_a_later_request(programme: Programme) -> None:
    # Marcus has no prior relationship with Chris until they finish a mentoring together.
    body = "Topic: teen makerspace nights\nTime budget: 30 minutes\nSkills: makerspaces\nFormat: video\n"
    programme.request("chris@example.org", body)
    programme.run()
    ask = only(programme.new(), "ask")
    assert ask["To"].addresses[0].addr_spec == "marcus.okafor@example.org"
    programme.answer(ask, "accept")
    programme.run(after=timedelta(hours=1))
    intro = only(programme.new(), "introduction")
    end = events_of(intro)[0].decoded("dtend")
    programme.run(at=(end + timedelta(days=1, minutes=1)).isoformat())
    for message in of(programme.new(), "reflection"):
        programme.answer(message, "What worked: all of it")
    programme.run(after=timedelta(hours=1))
    assert programme.request_of(ref_of(intro)).state is State.CLOSED
    # A new request that requires a prior relationship goes back to Marcus.
    programme.request(
        "chris@example.org",
        body.replace("30 minutes", "45 minutes") + "Prior relationship: required\n",
    )
    programme.run(after=timedelta(hours=1))
    ask = only(programme.new(), "ask")
    assert ask["To"].addresses[0].addr_spec == "marcus.okafor@example.org"
    assert "has worked with the protégé before" in text_of(ask)


def test_protege_cancels_while_a_mentor_is_asked(programme: Programme) -> None:
    sent = ask_teen_request(programme)
    programme.answer(only(sent, "acknowledgement"), "cancel, I found help locally")
    programme.run(after=timedelta(hours=1))
    sent = programme.new()
    only(sent, "withdrawal", to="violeta.garza@example.org")
    confirmation = only(sent, "cancellation", to="danielle.jones@example.org")
    assert "found help locally" in text_of(confirmation)
    assert programme.request_of(ref_of(confirmation)).state is State.CANCELLED


def test_cancel_after_the_introduction_withdraws_the_invites(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    programme.answer(ask, "accept")
    programme.run(after=timedelta(hours=1))
    intro = only(programme.new(), "introduction")
    (invite,) = events_of(intro)
    programme.answer(intro, "cancel - my travel plans changed", sender="violeta.garza@example.org")
    programme.run(after=timedelta(hours=1))
    sent = programme.new()
    for person in ("danielle.jones@example.org", "violeta.garza@example.org"):
        note = only(sent, "cancellation", to=person)
        (cancel,) = events_of(note)
        assert str(cancel["uid"]) == str(invite["uid"])
        assert int(cancel["sequence"]) == int(invite["sequence"]) + 1
    assert "Violeta Garza has cancelled" in text_of(
        only(sent, "cancellation", to="danielle.jones@example.org")
    )
    assert programme.request_of(ref_of(intro)).state is State.CANCELLED


def test_conversation_between_the_pair_is_not_answered(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    programme.answer(ask, "accept")
    programme.run(after=timedelta(hours=1))
    intro = only(programme.new(), "introduction")
    programme.answer(
        intro,
        "Looking forward to it! Shall I bring the survey?",
        sender="danielle.jones@example.org",
    )
    programme.run(after=timedelta(hours=1))
    assert programme.new() == []
    assert programme.request_of(ref_of(intro)).state is State.INTRODUCED


def test_an_auto_reply_is_never_answered(programme: Programme) -> None:
    programme.request(
        "someone@example.org",
        "I am out of the office until Monday.",
        headers={"Auto-Submitted": "auto-replied"},
    )
    programme.run()
    assert programme.new() == []
    assert len(programme.folder("processed")) == 1


def test_running_twice_sends_nothing_new(programme: Programme) -> None:
    ask_teen_request(programme)
    before = len(programme.outbox())
    programme.run()
    programme.run()
    assert len(programme.outbox()) == before


def test_a_message_handled_before_a_crash_is_only_filed_on_restart(programme: Programme) -> None:
    raw = programme.root / "request.eml"
    from .programme import request_mail

    raw.write_bytes(request_mail("danielle.jones@example.org", TEEN))
    programme.deliver(raw)
    programme.run()
    sent = len(programme.outbox())
    # As if the daemon died after committing but before filing: the message is back.
    programme.deliver(raw)
    programme.run()
    assert len(programme.outbox()) == sent
    assert programme.inbox_waiting() == 0
    assert len(programme.folder("processed")) == 2

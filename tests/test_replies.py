"""The reply words of PRODUCT.md, read from the new text only, never guessed."""

from __future__ import annotations

import pytest

from mailflow.mailtext import new_text
from mailflow.replies import Intent, read_answer, read_reflection


@pytest.mark.parametrize(
    ("text", "intent", "counter_minutes"),
    [
        ("accept", Intent.ACCEPT, None),
        ("Accept.", Intent.ACCEPT, None),
        ("yes", Intent.ACCEPT, None),
        ("Yes!", Intent.ACCEPT, None),
        ("happy to", Intent.ACCEPT, None),
        ("Hi Maria,\n\nHappy to help!\n\nBest, V", Intent.ACCEPT, None),
        ("No problem, happy to help!", Intent.ACCEPT, None),
        ("Sí, con gusto", Intent.ACCEPT, None),
        ("accept 45 minutes", Intent.ACCEPT, 45),
        ("Accept, 30 min", Intent.ACCEPT, 30),
        ("Yes, but only 30 minutes please", Intent.ACCEPT, 30),
        ("yes - 1 hour", Intent.ACCEPT, 60),
        ("accept 2 x 20 minutes", Intent.ACCEPT, 40),
        ("decline", Intent.DECLINE, None),
        ("Decline - travelling", Intent.DECLINE, None),
        ("no", Intent.DECLINE, None),
        ("No, sorry.", Intent.DECLINE, None),
        ("can't this month", Intent.DECLINE, None),
        ("I can’t, sorry", Intent.DECLINE, None),
        ("Unfortunately I'm unable to this time", Intent.DECLINE, None),
        ("cancel", Intent.CANCEL, None),
        ("Please cancel, plans changed", Intent.CANCEL, None),
        ("maybe", Intent.UNCLEAR, None),
        ("Not sure yet", Intent.UNCLEAR, None),
        ("yes no", Intent.UNCLEAR, None),
        ("Yes but I can't do December", Intent.UNCLEAR, None),
        ("What is this about?", Intent.UNCLEAR, None),
        ("", Intent.UNCLEAR, None),
    ],
)
def test_mentor_answers(text: str, intent: Intent, counter_minutes: int | None) -> None:
    answer = read_answer(text)
    assert answer.intent is intent
    if counter_minutes is None:
        assert answer.counter is None
    else:
        assert answer.counter is not None and answer.counter.total_minutes == counter_minutes


def test_a_decline_keeps_its_reason_as_written() -> None:
    assert read_answer("Decline - I'm on leave until March.").reason == "I'm on leave until March"
    assert read_answer("No.\nI am travelling that week.").reason == "I am travelling that week"


def test_an_unreadable_counter_offer_is_unclear_not_a_guess() -> None:
    answer = read_answer("accept 45 minutes or maybe an hour")
    assert answer.intent is Intent.UNCLEAR


@pytest.mark.parametrize(
    "body",
    [
        "accept\n\nOn Tue, 1 Dec 2026 at 10:00, Library Mentoring <mentoring@library.org> wrote:\n"
        "> Reply decline if you cannot.\n",
        "accept\n\n> decline\n> no\n",
        "accept\n\n________________________________\nFrom: Library Mentoring <mentoring@library.org>\n"
        "Sent: Tuesday, December 1, 2026 10:00 AM\nTo: Violeta\nSubject: Could you mentor?\n\ndecline\n",
        "accept\n\n-----Original Message-----\nFrom: mentoring@library.org\ndecline\n",
        "accept\n\nEl mar, 1 dic 2026 a las 10:00, Mentoring (<mentoring@library.org>) escribió:\n"
        "> decline\n",
        "accept\n\nSent from my iPhone",
        "accept\n\n-- \nViolet Garza\nSay no to plastic",
    ],
)
def test_quoted_history_and_signatures_are_ignored(body: str) -> None:
    assert read_answer(new_text(body)).intent is Intent.ACCEPT


def test_reflection_answers_are_read_by_label() -> None:
    answers = read_reflection(
        "What worked: the agenda\nand the examples\nWhat didn't: time\n"
        "What you'll try: a survey\nMore help later? yes"
    )
    assert answers == {
        "worked": "the agenda and the examples",
        "did_not_work": "time",
        "will_try": "a survey",
        "more_help": "yes",
    }

"""The workflow of PRODUCT.md end to end over real servers: requests and replies arrive
in a Dovecot inbox over IMAP, everything mailflow says leaves through an SMTP server."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from mailflow.model import State

from .programme import events_of, only, ref_of, text_of
from .server_programme import ServerProgramme
from .servers import Dovecot, SmtpServer
from .test_workflow import TEEN


def test_request_to_reflection_over_imap_and_smtp(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    programme = ServerProgramme(tmp_path, dovecot, smtp_server)
    programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")
    programme.request("someone@example.org", "Hi, can you help me with storytime?")  # incomplete
    programme.run()
    sent = programme.new()
    ack = only(sent, "acknowledgement", to="danielle.jones@example.org")
    ask = only(sent, "ask", to="violeta.garza@example.org")
    only(sent, "completion request", to="someone@example.org")
    ref = ref_of(ack)
    assert programme.request_of(ref).state is State.ASKING
    # Both requests were filed into mailflow/processed (Dovecot's separator is "."), none left.
    assert programme.inbox_waiting() == 0
    assert len(programme.folder("processed")) == 2
    # Envelope: from the programme's address, to exactly the people in the headers.
    first = smtp_server.received[0]
    assert first.sender == "mentoring@library.org"

    programme.answer(ask, "Yes, happy to help!")
    programme.run(after=timedelta(hours=1))
    intro = only(programme.new(), "introduction")
    assert sorted(a.addr_spec for a in intro["To"].addresses) == [
        "danielle.jones@example.org",
        "violeta.garza@example.org",
    ]
    (event,) = events_of(intro)
    assert programme.request_of(ref).state is State.INTRODUCED

    end = event.decoded("dtend")
    programme.run(at=(end + timedelta(days=1, minutes=1)).isoformat())
    sent = programme.new()
    to_protege = only(sent, "reflection", to="danielle.jones@example.org")
    to_mentor = only(sent, "reflection", to="violeta.garza@example.org")
    assert "What worked" in text_of(to_protege)
    programme.answer(to_protege, "What worked: the examples\nWhat didn't: nothing\nMore help later? no")
    programme.answer(to_mentor, "What worked: a clear question\nWhat didn't: nothing")
    programme.run(after=timedelta(hours=2))
    assert programme.request_of(ref).state is State.CLOSED

    # Every message reached the SMTP server exactly once; nothing is left in the inbox.
    counts = Counter(smtp_server.message_ids())
    assert counts and set(counts.values()) == {1}
    assert programme.inbox_waiting() == 0
    assert len(programme.folder("processed")) == 5  # two requests, an accept, two reflections
    assert programme.folder("needs-attention") == []


def test_running_again_over_imap_sends_nothing_new(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    programme = ServerProgramme(tmp_path, dovecot, smtp_server)
    programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")
    programme.run()
    before = len(smtp_server.received)
    assert before >= 2
    programme.run()
    programme.run(after=timedelta(minutes=5))
    assert len(smtp_server.received) == before


def test_a_message_handled_but_not_filed_before_a_crash_is_only_filed(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    programme = ServerProgramme(tmp_path, dovecot, smtp_server)
    programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")
    programme.run()
    sent = len(smtp_server.received)
    # As if mailflow died after its commit but before the MOVE: the same bytes are back.
    (raw,) = dovecot.messages("mailflow.processed")
    dovecot.append(raw)
    output = programme.run()
    assert "1 already handled before" in output
    assert len(smtp_server.received) == sent
    assert programme.inbox_waiting() == 0

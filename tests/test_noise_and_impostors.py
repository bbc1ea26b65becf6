"""No loops, no noise, no impostors: what must never be answered, and what it means."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import make_msgid
from pathlib import Path

from mailflow.correspondent import purpose
from mailflow.model import State

from .programme import DATA, Programme, of, only, ref_of, request_mail, text_of
from .test_workflow import TEEN, ask_teen_request

NOISE = sorted((DATA / "noise").glob("*.eml"))


def test_auto_replies_bounces_and_list_mail_are_never_answered(programme: Programme) -> None:
    assert len(NOISE) >= 10
    for path in NOISE:
        programme.deliver(path)
    programme.run()
    assert programme.outbox() == []
    assert programme.inbox_waiting() == 0
    assert len(programme.folder("processed")) == len(NOISE)
    status = programme.cli("status")
    for reason in (
        "Auto-Submitted",
        "X-Autoreply",
        "Precedence: list",
        "empty Return-Path",
        "another mailflow",
        "disposition-notification",
    ):
        assert reason in status, reason


def automatic_reply(original: EmailMessage, sender: str, text: str) -> bytes:
    """An out-of-office as Exchange sends it: to the envelope sender, not the Reply-To."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "mentoring@library.org"
    message["Subject"] = f"Automatic reply: {original['Subject']}"
    message["Message-ID"] = make_msgid(domain="example.org")
    message["In-Reply-To"] = str(original["Message-ID"])
    message["Auto-Submitted"] = "auto-replied"
    message.set_content(text)
    return message.as_bytes()


def test_an_out_of_office_from_the_mentor_asked_moves_on_at_once(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    programme.deliver(
        automatic_reply(ask, "violeta.garza@example.org", "I am out of the office until Monday 14 December.")
    )
    programme.run(after=timedelta(minutes=5))
    sent = programme.new()
    nxt = only(sent, "ask")
    assert nxt["To"].addresses[0].addr_spec != "violeta.garza@example.org"
    assert not of(sent, "clarification")  # the automatic reply itself is never answered
    request = programme.request_of(ref_of(ask))
    assert request.asks[0].outcome == "out of office"
    assert request.asks[0].reason == "away until 2026-12-14"
    # Until she is back, Violeta is not asked for anything else either.
    programme.request("new.person@example.org", TEEN.replace("Launching", "Running"))
    programme.run(after=timedelta(days=1))
    other = only(programme.new(), "ask")
    other_request = programme.request_of(ref_of(other))
    reasons = {r.email: r.reason for r in other_request.decision.rejected}
    assert reasons["violeta.garza@example.org"].startswith("is unavailable until 2026-12-14")


def test_an_out_of_office_from_anyone_else_is_only_filed(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    programme.deliver(automatic_reply(ask, "someone.else@example.org", "Away until Friday."))
    programme.run(after=timedelta(minutes=5))
    assert programme.new() == []
    assert programme.request_of(ref_of(ask)).state is State.ASKING


def dsn(original: EmailMessage, recipient: str) -> bytes:
    """A bounce shaped like Postfix's RFC 3464 delivery status notification."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "Mail Delivery System <MAILER-DAEMON@mx.library.org>"
    report["To"] = "mentoring@library.org"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Message-ID"] = make_msgid(domain="mx.library.org")
    report.attach(
        MIMEText(f"I'm sorry to have to inform you that your message could not be delivered to {recipient}.")
    )
    status = MIMEBase("message", "delivery-status")
    status.set_payload(
        [
            _fields({"Reporting-MTA": "dns; mx.library.org"}),
            _fields(
                {
                    "Final-Recipient": f"rfc822; {recipient}",
                    "Action": "failed",
                    "Status": "5.1.1",
                    "Diagnostic-Code": "smtp; 550 5.1.1 user unknown",
                }
            ),
        ]
    )
    report.attach(status)
    report.attach(MIMEMessage(original))
    return report.as_bytes()


def _fields(values: dict[str, str]) -> EmailMessage:
    block = EmailMessage()
    for key, value in values.items():
        block[key] = value
    return block


def test_a_bounce_is_recorded_against_its_request_and_the_coordinator_told(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    programme.deliver(dsn(ask, "violeta.garza@example.org"))
    programme.run(after=timedelta(minutes=5))
    sent = programme.new()
    note = only(sent, "coordinator note", to="coordinator@library.org")
    assert "could not be delivered" in str(note["Subject"])
    assert "5.1.1" in text_of(note) and "user unknown" in text_of(note)
    assert only(sent, "ask")["To"].addresses[0].addr_spec != "violeta.garza@example.org"
    request = programme.request_of(ref_of(ask))
    assert request.asks[0].outcome == "bounced"
    assert any(e.what == "bounce" for e in request.history)
    assert not [m for m in sent if "MAILER-DAEMON" in str(m["To"])]


def forged(
    programme: Programme,
    ask: EmailMessage,
    *,
    sender: str,
    to: str,
    text: str,
    headers: dict[str, str] | None = None,
    thread: bool = True,
) -> None:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"Re: {ask['Subject']}"
    message["Message-ID"] = make_msgid(domain="example.net")
    if thread:
        message["In-Reply-To"] = str(ask["Message-ID"])
    for key, value in (headers or {}).items():
        message[key] = value
    message.set_content(text)
    programme.deliver(message.as_bytes())


def test_replies_without_proof_of_who_wrote_them_are_parked(programme: Programme) -> None:
    sent = ask_teen_request(programme)
    ask, ack = only(sent, "ask"), only(sent, "acknowledgement")
    # The mentor's address, but a fresh message with only the reference in the subject.
    forged(
        programme,
        ask,
        sender="violeta.garza@example.org",
        to="mentoring@library.org",
        text="accept",
        thread=False,
    )
    # The mentor's address, sent to the protégé's reply address (the token is not hers).
    forged(programme, ask, sender="violeta.garza@example.org", to=str(ack["Reply-To"]), text="accept")
    programme.run(after=timedelta(minutes=5))
    notes = of(programme.new(), "needs-attention note", to="coordinator@library.org")
    assert len(notes) == 2
    reasons = " ".join(text_of(n) for n in notes)
    assert "cannot be told from a forgery" in reasons
    assert "does not belong to violeta.garza@example.org" in reasons
    assert len(programme.folder("needs-attention")) == 2
    assert programme.request_of(ref_of(ask)).state is State.ASKING


def test_a_reply_threaded_to_our_message_counts_when_the_reply_address_was_lost(programme: Programme) -> None:
    ask = only(ask_teen_request(programme), "ask")
    forged(programme, ask, sender="violeta.garza@example.org", to="mentoring@library.org", text="accept")
    programme.run(after=timedelta(minutes=5))
    only(programme.new(), "introduction")


def test_with_require_dmarc_only_our_servers_pass_counts(tmp_path: Path) -> None:
    programme = Programme(
        tmp_path, extra_config='\n[security]\nrequire_dmarc = true\nauthserv_id = "mx.library.org"\n'
    )
    ask = only(ask_teen_request(programme), "ask")
    reply_to = str(ask["Reply-To"])
    forged(programme, ask, sender="violeta.garza@example.org", to=reply_to, text="accept")
    forged(
        programme,
        ask,
        sender="violeta.garza@example.org",
        to=reply_to,
        text="accept",
        headers={"Authentication-Results": "evil.example.net; dmarc=pass header.from=example.org"},
    )
    programme.run(after=timedelta(minutes=5))
    notes = of(programme.new(), "needs-attention note")
    assert [("'missing'" in text_of(n)) for n in notes] == [True, True]
    forged(
        programme,
        ask,
        sender="violeta.garza@example.org",
        to=reply_to,
        text="accept",
        headers={
            "Authentication-Results": "mx.library.org; spf=pass smtp.mailfrom=example.org; "
            "dmarc=pass header.from=example.org"
        },
    )
    programme.run(after=timedelta(minutes=5))
    only(programme.new(), "introduction")


def test_automatic_replies_to_one_sender_are_limited_per_day(tmp_path: Path) -> None:
    programme = Programme(tmp_path, extra_config="\n[security]\nauto_replies_per_sender_per_day = 3\n")
    for n in range(5):
        programme.request("looping@example.org", f"Hello {n}, I would like a mentor")
    programme.run()
    assert len(of(programme.new(), "completion request")) == 3
    assert "not sent: 3 automatic replies to looping@example.org today (limit 3)" in programme.cli("status")
    programme.request("looping@example.org", "One more, the next day")
    programme.run(after=timedelta(days=1))
    assert len(of(programme.new(), "completion request")) == 1


def test_a_message_over_the_size_cap_is_refused_politely_and_kept(tmp_path: Path) -> None:
    programme = Programme(tmp_path, extra_config="\n[security]\nmax_message_bytes = 20000\n")
    programme.request("big@example.org", "Topic: scans\nTime budget: 30 minutes\n" + "x" * 30000)
    programme.run()
    sent = programme.new()
    reply = only(sent, "too large", to="big@example.org")
    assert "more than" in text_of(reply) and "20000" not in str(reply["Subject"])
    only(sent, "needs-attention note", to="coordinator@library.org")
    assert len(programme.folder("needs-attention")) == 1


def test_two_mailflows_pointed_at_each_other_exchange_at_most_one_message(tmp_path: Path) -> None:
    a, b = Programme(tmp_path / "a"), Programme(tmp_path / "b")
    for here, there in ((a, b), (b, a)):  # each one's outbox is the other's inbox
        text = here.config_path.read_text().replace(
            'outbox = "maildir:outbox"', f'outbox = "maildir:{there.root / "mailbox"}"'
        )
        here.config_path.write_text(text.replace("mentoring@library.org", f"mentoring@{here.root.name}.org"))
    b.deliver(request_mail("mentoring@a.org", "Hello, is anyone there?"))  # A's address writes to B
    for _ in range(3):
        b.run(after=timedelta(minutes=1))
        a.run(after=timedelta(minutes=1))
    between = [
        m
        for p in (a, b)
        for m in p.folder("processed") + p.folder("needs-attention")
        if m["X-Mailflow-Loop"]
        and str(m["To"]).endswith(
            ("mentoring@a.org>", "mentoring@b.org>", "mentoring@a.org", "mentoring@b.org")
        )
    ]
    assert len(between) == 1  # B's one answer; A never answers it
    assert a.inbox_waiting() == 0 and b.inbox_waiting() == 0


HOSTILE = (
    b"From: =?utf-8?q?Danielle=0D=0ABcc=3A_evil=40example=2Enet?= <danielle.jones@example.org>\r\n"
    b"To: mentoring@library.org\r\n"
    b"Subject: =?utf-8?q?Hi=0D=0ABcc=3A_evil=40example=2Enet?=\r\n"
    b"Message-ID: <hostile@example.org>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Topic: Teens=?x?\r\nTime budget: 30 minutes\r\nName: Dana\rBcc: evil@example.net\r\n"
)


def test_names_and_subjects_cannot_add_headers(programme: Programme) -> None:
    programme.deliver(HOSTILE)
    programme.run()
    sent = programme.new()
    assert {purpose(m) for m in sent} == {"acknowledgement", "ask"}
    for message in sent:
        assert message["Bcc"] is None
        addresses = [
            a.addr_spec for h in ("To", "Cc", "Reply-To") if message[h] for a in message[h].addresses
        ]
        assert "evil@example.net" not in addresses
        raw = message.as_bytes()
        assert b"\nBcc:" not in raw and b"\rBcc:" not in raw


def test_the_canary_comes_back_through_the_mailbox(tmp_path: Path) -> None:
    programme = Programme(
        tmp_path, extra_config='\n[liveness]\ncanary_every = "1h"\ncanary_deadline = "10m"\n'
    )
    # Mail sent to the programme address comes back to its inbox, as a real mail system would.
    text = programme.config_path.read_text()
    programme.config_path.write_text(text.replace('outbox = "maildir:outbox"', 'outbox = "maildir:mailbox"'))
    programme.run()
    assert "canary: on its way" in programme.cli("status", "--now", "2026-12-01T15:01:00+00:00")
    programme.run(after=timedelta(minutes=2))
    assert "canary: ok" in programme.cli("status", "--now", programme.now.isoformat())
    assert len(programme.folder("processed")) == 1  # the canary, filed, never answered


def test_a_canary_that_does_not_come_back_raises_an_alert_by_the_second_route(tmp_path: Path) -> None:
    programme = Programme(
        tmp_path,
        programme_lines='alert_address = "director@library.org"\n',
        extra_config='\n[liveness]\ncanary_every = "1h"\ncanary_deadline = "10m"\n'
        'alert_outbox = "maildir:alerts"\n',
    )
    programme.run()  # the canary leaves by the outbox and never comes back
    assert [purpose(m) for m in programme.new()] == ["canary"]
    programme.run(after=timedelta(minutes=9))
    assert not list((tmp_path / "alerts").glob("new/*"))
    programme.run(after=timedelta(minutes=2))
    (alert,) = list((tmp_path / "alerts" / "new").iterdir())
    assert b"director@library.org" in alert.read_bytes()
    assert "canary: LATE" in programme.cli("status", "--now", programme.now.isoformat())
    programme.run(after=timedelta(minutes=20))
    assert len(list((tmp_path / "alerts" / "new").iterdir())) == 1  # one alert, not one per minute

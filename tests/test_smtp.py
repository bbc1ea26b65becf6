"""The SMTP outbox against a real SMTP server: down and back, refusals, TLS, login."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mailflow.auth import Password
from mailflow.errors import DeliveryError
from mailflow.mailboxes.smtp import SmtpSender
from mailflow.model import Outgoing
from mailflow.servers import parse_server_url

from .programme import of, only
from .server_programme import Daemon, ServerProgramme
from .servers import Certificates, Dovecot, SmtpServer, wait_until
from .test_workflow import TEEN

FAST_RETRY = """
[delivery]
retry_first_seconds = 0.2
retry_max_seconds = 0.5
"""


def test_smtp_down_then_back_every_message_delivered_exactly_once(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    programme = ServerProgramme(tmp_path, dovecot, smtp_server, extra_config=FAST_RETRY)
    senders = [f"person{n}@example.org" for n in range(3)]
    smtp_server.stop()
    with Daemon(programme) as daemon:
        for sender in senders:
            programme.request(sender, TEEN)
        wait_until(lambda: len(dovecot.messages("mailflow.processed")) == 3, what="three requests handled")
        wait_until(lambda: daemon.engine.store.next_attempt() is not None, what="a failed delivery")
        assert smtp_server.received == []
        smtp_server.start()  # same port
        wait_until(lambda: len(smtp_server.received) >= 6, what="three acknowledgements and three asks")
        wait_until(lambda: not daemon.engine.store.outbox_entries(), what="an empty outbox")
    delivered = smtp_server.message_ids()
    # A restart sends nothing again.
    with Daemon(programme) as daemon:
        wait_until(lambda: daemon.imap.idling, what="IDLE after the restart")
    assert smtp_server.message_ids() == delivered
    assert set(delivered.values()) == {1} and len(delivered) == 6
    acks = [r for r in smtp_server.received if b"acknowledgement" in r.raw]
    assert sorted(r.recipients[0] for r in acks) == senders


def test_a_long_refusal_is_reported_to_the_coordinator_once_then_all_is_delivered_once(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    extra = '\n[delivery]\nretry_first_seconds = 60\nretry_max_seconds = 600\nreport_after = "30m"\n'
    programme = ServerProgramme(tmp_path, dovecot, smtp_server, extra_config=extra)
    smtp_server.refuse = "451 4.3.0 Temporary local problem, try again later"
    programme.request("danielle.jones@example.org", TEEN)
    assert "2 delivery failure(s)" in programme.run()
    programme.run(after=timedelta(minutes=10))
    programme.run(after=timedelta(minutes=21))  # 31 minutes: the coordinator is told (the note waits too)
    programme.run(after=timedelta(minutes=20))
    assert smtp_server.received == []
    smtp_server.refuse = ""
    programme.run(after=timedelta(minutes=11))
    sent = programme.new()
    only(sent, "acknowledgement")
    only(sent, "ask")
    note = only(sent, "delivery report", to="coordinator@library.org")
    body = note.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "451 4.3.0" in body and "not delivered since" in body and "2 messages" in str(note["Subject"])
    programme.run(after=timedelta(hours=2))
    assert set(smtp_server.message_ids().values()) == {1} and len(smtp_server.received) == 3


def test_a_permanent_refusal_is_reported_to_the_coordinator_at_once(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    programme = ServerProgramme(tmp_path, dovecot, smtp_server)
    smtp_server.refuse_recipients = {"violeta.garza@example.org"}
    programme.request("danielle.jones@example.org", TEEN)
    assert "1 delivery failure(s)" in programme.run()
    sent = programme.new()
    only(sent, "acknowledgement")
    assert of(sent, "ask") == []
    note = only(sent, "delivery report", to="coordinator@library.org")
    body = note.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "refused for good" in body and "550 5.1.1" in body and "violeta.garza@example.org" in body
    programme.run(after=timedelta(hours=2))  # tried again, not reported again
    assert of(programme.new(), "delivery report") == []


def test_a_message_refused_for_some_recipients_counts_as_sent_and_is_not_repeated(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    programme = ServerProgramme(tmp_path, dovecot, smtp_server)
    smtp_server.refuse_recipients = {"coordinator@library.org"}  # cc'd on introductions
    programme.request("danielle.jones@example.org", TEEN)
    programme.run()
    programme.answer(only(programme.new(), "ask"), "accept")
    programme.run(after=timedelta(hours=1))
    intro = only(programme.new(), "introduction")
    (got,) = [r for r in smtp_server.received if r.message_id == str(intro["Message-ID"])]
    assert sorted(got.recipients) == ["danielle.jones@example.org", "violeta.garza@example.org"]
    programme.run(after=timedelta(hours=3))
    assert of(programme.new(), "introduction") == []
    assert set(smtp_server.message_ids().values()) == {1}
    # The coordinator is told (the note to the coordinator waits: that address is refused).
    store_log = programme.cli("status", "--json")
    assert "delivery problem" in store_log and "550 5.1.1" in store_log


def test_tls_and_starttls_with_a_private_ca_and_a_password(
    tmp_path: Path, certificates: Certificates
) -> None:
    for implicit in (False, True):
        server = SmtpServer(users={"mentoring": "pw"}, certificates=certificates, implicit_tls=implicit)
        server.start()
        try:
            sender = SmtpSender(
                parse_server_url(server.url("mentoring"), ("smtp", "smtps")),
                Password("mentoring", "pw"),
                envelope_from="mentoring@library.org",
                timeout_seconds=10,
                ca_file=str(certificates.ca_file),
            )
            assert ("TLS" if implicit else "STARTTLS") in sender.describe()
            sender.send(Outgoing("<t@x>", None, "test", ["a@example.org"], b"Message-ID: <t@x>\n\nhi\n"))
            sender.close()
            assert server.message_ids() == {"<t@x>": 1}
            assert server.logins == [("mentoring", "PLAIN")]
            # Without the private CA the certificate is refused, and nothing is sent.
            unverified = SmtpSender(
                parse_server_url(server.url("mentoring"), ("smtp", "smtps")),
                Password("mentoring", "pw"),
                envelope_from="mentoring@library.org",
                timeout_seconds=10,
            )
            with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED") as caught:
                unverified.send(Outgoing("<u@x>", None, "test", ["a@example.org"], b"\n"))
            assert caught.value.route_down
        finally:
            server.close()


def test_a_refused_login_says_what_to_change(smtp_server_with_login: SmtpServer) -> None:
    server = smtp_server_with_login
    server.auth_failure = (
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."
    )
    sender = SmtpSender(
        parse_server_url(server.url("mentoring@library.org"), ("smtp",)),
        Password("mentoring@library.org", "wrong"),
        envelope_from="mentoring@library.org",
        timeout_seconds=10,
    )
    with pytest.raises(DeliveryError, match="SmtpClientAuthenticationDisabled \\$false") as caught:
        sender.send(Outgoing("<v@x>", None, "test", ["a@example.org"], b"\n"))
    assert caught.value.route_down
    assert "wrong" not in str(caught.value)


@pytest.fixture
def smtp_server_with_login() -> Iterator[SmtpServer]:
    server = SmtpServer(users={"mentoring@library.org": "right"})
    server.start()
    yield server
    server.close()

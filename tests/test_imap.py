"""The IMAP inbox against a real Dovecot: IDLE, reconnecting, filing, polling, connections."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mailflow.auth import Password
from mailflow.errors import MailflowError
from mailflow.mailboxes.base import PROCESSED
from mailflow.mailboxes.imap import ImapSource
from mailflow.servers import parse_server_url

from .programme import request_mail
from .server_programme import Daemon, ServerProgramme, server_mail
from .servers import Dovecot, SmtpServer, message_id, wait_until
from .test_workflow import TEEN

QUIET = "poll_seconds = 3600\n"  # no poll could ever explain a quick answer


def acknowledged(smtp: SmtpServer, sender: str) -> int:
    return sum(1 for r in smtp.received if r.recipients == [sender] and b"acknowledgement" in r.raw)


def test_mail_appended_during_idle_is_handled_at_once_woken_by_idle(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    programme = ServerProgramme(
        tmp_path, dovecot, smtp_server, mail=server_mail(dovecot, smtp_server, extra=QUIET)
    )
    with Daemon(programme) as daemon:
        wait_until(lambda: daemon.imap.idling, what="the daemon to enter IDLE")
        wait_until(lambda: daemon.engine.source.wakes["catch-up"] >= 1, what="the first catch-up")
        catch_ups = daemon.imap.wakes["catch-up"]
        appended = time.monotonic()
        programme.request("danielle.jones@example.org", TEEN, name="Danielle Jones")
        wait_until(
            lambda: acknowledged(smtp_server, "danielle.jones@example.org"), what="the acknowledgement"
        )
        took = time.monotonic() - appended
        wakes = dict(daemon.imap.wakes)
    # The only way in: the IDLE connection's EXISTS. No poll fired, no reconnect happened.
    assert wakes.get("idle", 0) >= 1, wakes
    assert wakes.get("poll", 0) == 0
    assert wakes["catch-up"] == catch_ups
    assert took < 5, f"{took:.2f}s"  # Dovecot itself waits about 0.5 s before it tells IDLE


def test_dovecot_restarted_during_idle_mail_from_meanwhile_handled_once(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    programme = ServerProgramme(
        tmp_path, dovecot, smtp_server, mail=server_mail(dovecot, smtp_server, extra=QUIET)
    )
    senders = [f"person{n}@example.org" for n in range(3)]
    with Daemon(programme) as daemon:
        wait_until(lambda: daemon.imap.idling, what="IDLE")
        logins = daemon.imap.logins
        dovecot.stop()  # Dovecot says BYE to both connections
        for sender in senders:  # delivered by the MTA into the Maildir while IMAP is down
            dovecot.deliver_on_disk(request_mail(sender, TEEN))
        dovecot.start()  # same port
        wait_until(
            lambda: all(acknowledged(smtp_server, s) for s in senders), timeout=20, what="acknowledgements"
        )
        wait_until(lambda: daemon.imap.idling, what="IDLE again")
        assert daemon.imap.logins > logins
        assert dovecot.connections() == 2  # one watching, one working: none leaked
    for sender in senders:
        assert acknowledged(smtp_server, sender) == 1
    assert dovecot.messages("INBOX") == []
    assert len(dovecot.messages("mailflow.processed")) == 3
    assert set(smtp_server.message_ids().values()) == {1}


def test_idle_is_renewed_and_the_connections_stay_two(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer
) -> None:
    mail = server_mail(dovecot, smtp_server, extra=QUIET).replace("idle_seconds = 60", "idle_seconds = 0.2")
    programme = ServerProgramme(tmp_path, dovecot, smtp_server, mail=mail)
    with Daemon(programme) as daemon:
        wait_until(lambda: daemon.imap.wakes["renewed"] >= 5, what="five IDLE renewals")
        assert dovecot.connections() == 2
        programme.request("danielle.jones@example.org", TEEN)
        wait_until(
            lambda: acknowledged(smtp_server, "danielle.jones@example.org"), what="the acknowledgement"
        )
        assert daemon.imap.logins == 2
        assert dovecot.connections() == 2


def test_without_idle_the_inbox_is_polled_and_copy_expunges_only_its_own_message(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MAILFLOW_TEST_IMAP_PASSWORD", "secret")
    dovecot = Dovecot(capabilities="IMAP4rev1 LITERAL+ UIDPLUS NAMESPACE")  # no IDLE, no MOVE
    dovecot.start()
    try:
        # A message a person has marked deleted (and not expunged) must survive our filing.
        dovecot.append(request_mail("kept@example.org", "marked deleted by a person"))
        with dovecot.client() as person:
            person.select_folder("INBOX")
            person.add_flags(person.search(["ALL"]), [b"\\Deleted"])
        mail = server_mail(dovecot, smtp_server).replace("idle_seconds = 60", "poll_seconds = 0.3")
        programme = ServerProgramme(tmp_path, dovecot, smtp_server, mail=mail)
        with Daemon(programme) as daemon:
            wait_until(lambda: daemon.imap.wakes["poll"] >= 1, what="a first poll")
            programme.request("danielle.jones@example.org", TEEN)
            wait_until(
                lambda: acknowledged(smtp_server, "danielle.jones@example.org"), what="acknowledgement"
            )
            wakes = dict(daemon.imap.wakes)
            assert dovecot.connections() == 1  # no watcher without IDLE
        assert wakes["poll"] >= 2 and wakes.get("idle", 0) == 0, wakes
        inbox = dovecot.messages("INBOX")
        assert [b"kept@example.org" in raw for raw in inbox] == [True]
        assert len(dovecot.messages("mailflow.processed")) == 1
    finally:
        dovecot.close()


def test_a_message_moved_away_by_a_person_meanwhile_is_not_an_error(dovecot: Dovecot) -> None:
    source = ImapSource(
        parse_server_url(dovecot.url(), ("imap", "imaps")),
        Password("mentoring", "secret"),
        folders={"processed": "mailflow/processed", "needs-attention": "mailflow/needs-attention"},
        timeout_seconds=10,
    )
    try:
        raw = request_mail("danielle.jones@example.org", TEEN)
        dovecot.append(raw)
        (item,) = source.fetch()
        assert message_id(item.raw) == message_id(raw)
        with dovecot.client() as person:  # someone files it by hand first
            person.create_folder("Handled")
            person.select_folder("INBOX")
            person.move(person.search(["ALL"]), "Handled")
        source.file(item, PROCESSED)
        assert dovecot.messages("mailflow.processed") == []
        assert len(dovecot.messages("Handled")) == 1
        assert source.fetch() == []
        assert "mailflow.processed" in source.describe()
    finally:
        source.close()


def test_implicit_tls_and_starttls_with_a_private_ca(tmp_path: Path, certificates) -> None:  # type: ignore[no-untyped-def]
    dovecot = Dovecot(certificates=certificates)
    dovecot.start()
    try:
        raw = request_mail("danielle.jones@example.org", TEEN)
        for url, security in ((dovecot.url(tls=True), "TLS"), (dovecot.url(), "STARTTLS")):
            dovecot.append(raw)
            source = ImapSource(
                parse_server_url(url, ("imap", "imaps")),
                Password("mentoring", "secret"),
                folders={"processed": "mailflow/processed", "needs-attention": "mailflow/needs-attention"},
                timeout_seconds=10,
                ca_file=str(certificates.ca_file),
            )
            try:
                assert security in source.describe()
                (item,) = source.fetch()
                assert message_id(item.raw) == message_id(raw)
                source.file_many([item], PROCESSED)
                assert source.fetch() == []
            finally:
                source.close()
        assert len(dovecot.messages("mailflow.processed")) == 2
        # Without the private CA the server's certificate is refused before any password goes.
        unverified = ImapSource(
            parse_server_url(dovecot.url(tls=True), ("imap", "imaps")),
            Password("mentoring", "secret"),
            folders={"processed": "mailflow/processed", "needs-attention": "mailflow/needs-attention"},
            timeout_seconds=10,
        )
        try:
            with pytest.raises(MailflowError, match="CERTIFICATE_VERIFY_FAILED"):
                unverified.fetch()
        finally:
            unverified.close()
    finally:
        dovecot.close()

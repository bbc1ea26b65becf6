"""The programme of programme.py, with its mailbox on Dovecot and its outbox on SMTP.

Requests and replies are appended to the IMAP inbox (as a mail server delivering
them would), `mailflow run` reads them over IMAP and sends over SMTP, and what the
SMTP server received is what the people got.
"""

from __future__ import annotations

import threading
from email.message import EmailMessage
from pathlib import Path

from mailflow.clock import Clock, OffsetClock
from mailflow.config import load_config
from mailflow.correspondent import read
from mailflow.engine import Engine
from mailflow.mailboxes import open_mail
from mailflow.mailboxes.imap import ImapSource
from mailflow.store import Store

from .programme import DATA, Programme
from .servers import Dovecot, SmtpServer


def server_mail(dovecot: Dovecot, smtp: SmtpServer, *, extra: str = "") -> str:
    """The [mail] table for a programme on these two servers (password login to IMAP)."""
    return (
        f'inbox = "{dovecot.url()}"\n'
        f'outbox = "{smtp.url()}"\n'
        'password_env = "MAILFLOW_TEST_IMAP_PASSWORD"\n'
        "idle_seconds = 60\n"
        "reconnect_max_seconds = 2\n"
        "timeout_seconds = 10\n" + extra
    )


class ServerProgramme(Programme):
    def __init__(
        self,
        root: Path,
        dovecot: Dovecot,
        smtp: SmtpServer,
        *,
        mail: str | None = None,
        extra_config: str = "",
        rules: Path = DATA / "rules",
    ) -> None:
        super().__init__(
            root, rules=rules, mail=mail or server_mail(dovecot, smtp), extra_config=extra_config
        )
        self.dovecot = dovecot
        self.smtp = smtp

    def deliver(self, raw: bytes | Path) -> None:
        self.dovecot.append(raw.read_bytes() if isinstance(raw, Path) else raw)

    def outbox(self) -> list[EmailMessage]:
        return [read(raw) for raw in self.smtp.messages()]

    def folder(self, name: str) -> list[EmailMessage]:
        return [read(raw) for raw in self.dovecot.messages(f"mailflow.{name}")]

    def inbox_waiting(self) -> int:
        return len(self.dovecot.messages("INBOX"))


class Daemon:
    """`mailflow run` in a thread of the test: the real engine, source and sender."""

    def __init__(self, programme: Programme, clock: Clock | None = None) -> None:
        self.config = load_config(programme.config_path)
        self.store = Store(self.config.state_path)
        self.source, self.sender = open_mail(self.config)
        self.engine = Engine(
            self.config, self.store, self.source, self.sender, clock or OffsetClock(programme.now)
        )
        self.thread: threading.Thread | None = None
        self.errors: list[BaseException] = []

    def __enter__(self) -> Daemon:
        def run() -> None:
            try:
                self.engine.run_forever()
            except BaseException as error:  # shown by __exit__
                self.errors.append(error)
                raise

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.stop()
        assert self.thread is not None
        self.thread.join(timeout=30)
        alive = self.thread.is_alive()
        self.engine.close()
        self.source.close()
        self.sender.close()
        self.store.close()
        assert not alive, "the daemon did not stop within 30 s"
        assert not self.errors, f"the daemon failed: {self.errors!r}"

    @property
    def imap(self) -> ImapSource:
        assert isinstance(self.source, ImapSource)
        return self.source

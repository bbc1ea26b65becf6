"""The programme of programme.py, with its mailbox on Dovecot and its outbox on SMTP.

Requests and replies are appended to the IMAP inbox (as a mail server delivering
them would), `mailflow run` reads them over IMAP and sends over SMTP, and what the
SMTP server received is what the people got.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from mailflow.correspondent import read

from .programme import Programme
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
    ) -> None:
        super().__init__(root, mail=mail or server_mail(dovecot, smtp), extra_config=extra_config)
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

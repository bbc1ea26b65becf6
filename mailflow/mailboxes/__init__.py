"""Where mail comes from and where it goes, named by URL in config.toml.

    maildir:var/mailbox            a Maildir folder (the embedded default)
    imap://user@host/INBOX         IMAP (issue: real mail servers)
    smtp://host:587                SMTP

The workflow only sees the `MailSource` and `MailSender` protocols in base.py.
"""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .base import Fetched, MailSender, MailSource
from .maildir import MaildirSender, MaildirSource

__all__ = ["Fetched", "MailSender", "MailSource", "open_sender", "open_sender_url", "open_source"]


def open_source(config: Config) -> MailSource:
    url = config.mailbox_url(config.mail.inbox)
    if url.startswith("maildir:"):
        return MaildirSource(url.removeprefix("maildir:"), poll_seconds=config.mail.poll_seconds)
    raise ConfigError(
        f"mail.inbox = {config.mail.inbox!r}: unknown kind of mailbox; use "
        "'maildir:PATH' or 'imap://USER@HOST/FOLDER'"
    )


def open_sender(config: Config) -> MailSender:
    return open_sender_url(config, config.mail.outbox)


def open_sender_url(config: Config, configured: str) -> MailSender:
    """A sender for `configured` (the outbox, or a second route such as the alert outbox)."""
    url = config.mailbox_url(configured)
    if url.startswith("maildir:"):
        return MaildirSender(url.removeprefix("maildir:"))
    raise ConfigError(f"{configured!r}: unknown kind of sender; use 'maildir:PATH' or 'smtp://HOST:PORT'")

"""Where mail comes from and where it goes, named by URL in config.toml.

    maildir:var/mailbox                          a Maildir folder (the embedded default)
    imaps://mentoring@library.org@host/INBOX     IMAP over TLS; imap:// for STARTTLS (imap.py)
    smtp://mentoring@library.org@host:587        SMTP with STARTTLS; smtps:// for TLS (smtp.py)

The workflow only sees the `MailSource` and `MailSender` protocols in base.py. When
both ends use OAuth2 they share one token source (auth.py).
"""

from __future__ import annotations

from ..auth import MsalTokens, TokenSource, credentials_for
from ..config import Config
from ..errors import ConfigError
from ..servers import parse_server_url
from .base import Fetched, MailSender, MailSource
from .maildir import MaildirSender, MaildirSource

__all__ = ["Fetched", "MailSender", "MailSource", "open_mail", "open_sender", "open_source"]


def open_mail(config: Config) -> tuple[MailSource, MailSender]:
    """The inbox and the outbox of config.toml, sharing one OAuth2 token source."""
    needs_tokens = config.mail.auth == "oauth2" and not (
        config.mail.inbox.startswith("maildir:") and config.mail.outbox.startswith("maildir:")
    )
    tokens = MsalTokens.from_config(config) if needs_tokens else None
    source = open_source(config, tokens=tokens)
    try:
        return source, open_sender(config, tokens=tokens)
    except BaseException:
        source.close()
        raise


def open_source(config: Config, *, tokens: TokenSource | None = None) -> MailSource:
    mail = config.mail
    url = config.mailbox_url(mail.inbox)
    if url.startswith("maildir:"):
        return MaildirSource(url.removeprefix("maildir:"), poll_seconds=mail.poll_seconds)
    if url.startswith(("imap:", "imaps:")):
        from .imap import ImapSource  # imapclient is only loaded when an IMAP inbox is used

        address = parse_server_url(url, ("imap", "imaps"))
        credentials = credentials_for(config, address.user, tokens=tokens)
        assert credentials is not None
        return ImapSource(
            address,
            credentials,
            folders={"processed": mail.processed_folder, "needs-attention": mail.needs_attention_folder},
            idle_seconds=mail.idle_seconds,
            poll_seconds=mail.poll_seconds,
            reconnect_max_seconds=mail.reconnect_max_seconds,
            timeout_seconds=mail.timeout_seconds,
            ca_file=_ca_file(config),
        )
    raise ConfigError(
        f"mail.inbox = {mail.inbox!r}: unknown kind of mailbox; use "
        "'maildir:PATH', 'imaps://USER@HOST/FOLDER' or 'imap://USER@HOST/FOLDER'"
    )


def open_sender(config: Config, *, tokens: TokenSource | None = None, url: str | None = None) -> MailSender:
    """The outbox of config.toml, or `url` (a second route, such as `liveness.alert_outbox`)."""
    mail = config.mail
    configured = url or mail.outbox
    url = config.mailbox_url(configured)
    if url.startswith("maildir:"):
        return MaildirSender(url.removeprefix("maildir:"))
    if url.startswith(("smtp:", "smtps:")):
        from .smtp import SmtpSender

        address = parse_server_url(url, ("smtp", "smtps"))
        return SmtpSender(
            address,
            credentials_for(config, address.user, smtp=True, tokens=tokens),
            envelope_from=config.programme.address,
            timeout_seconds=mail.timeout_seconds,
            ca_file=_ca_file(config),
        )
    raise ConfigError(
        f"{configured!r}: unknown kind of sender; use "
        "'maildir:PATH', 'smtp://USER@HOST:587' or 'smtps://USER@HOST'"
    )


def _ca_file(config: Config) -> str | None:
    return str(config.resolve(config.mail.ca_file)) if config.mail.ca_file else None

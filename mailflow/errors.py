"""One family of errors. Each message says what is wrong, where, and what to do."""

from __future__ import annotations


class MailflowError(Exception):
    """Base of every error mailflow raises on purpose."""


class ConfigError(MailflowError, ValueError):
    """config.toml is missing, unreadable or invalid."""


class RuleError(MailflowError, ValueError):
    """A rule file or the mentor directory is invalid."""


class TemplateError(MailflowError, ValueError):
    """A template does not compile or does not render; `path` and `line` say where."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.detail = message
        self.path = path
        self.line = line
        where = f"{path}:{line}" if path and line else (path or "")
        super().__init__(f"{where}: {message}" if where else message)


class StateError(MailflowError):
    """The state file is locked by another process, or unreadable."""


class DeliveryError(MailflowError):
    """A message could not be handed to the outgoing mail route."""


class MailboxError(MailflowError):
    """The incoming mailbox could not be read or written."""


class ParseError(MailflowError, ValueError):
    """Text (a duration, a budget, an availability window) could not be read."""

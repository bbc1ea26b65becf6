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
    """A message could not be handed to the outgoing mail route.

    `permanent`: the server refused this message for good (an SMTP 5yz reply), so the
    coordinator is told at once; it is still tried again, at the longest interval.
    `route_down`: the route itself failed (no connection, login refused), so the other
    messages waiting would fail the same way and are not tried in this pass.
    """

    def __init__(self, message: str, *, permanent: bool = False, route_down: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.route_down = route_down


class PartlyDelivered(DeliveryError):
    """The server took the message for some recipients and refused the others.

    The message counts as sent (sending it again would double it for the ones who
    got it); the refused addresses are reported to the coordinator.
    """

    def __init__(self, message: str, refused: dict[str, str]) -> None:
        super().__init__(message, permanent=True)
        self.refused = refused


class MailboxError(MailflowError):
    """The incoming mailbox could not be read or written."""


class AuthError(MailflowError):
    """A server or Microsoft Entra ID refused mailflow's credentials; the message says
    what to change. Never carries a password, a secret or a token."""


class ParseError(MailflowError, ValueError):
    """Text (a duration, a budget, an availability window) could not be read."""


class CalendarError(MailflowError, ValueError):
    """A calendar (an iTIP message or a mentor's free/busy file) could not be read."""

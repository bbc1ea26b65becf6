"""The two seams between the workflow and the outside world."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..model import Outgoing

PROCESSED = "processed"
NEEDS_ATTENTION = "needs-attention"


@dataclass(frozen=True)
class Fetched:
    """A message as the source gave it: its source-specific key and its exact bytes."""

    key: str
    raw: bytes


class MailSource(Protocol):
    def fetch(self, limit: int | None = None) -> list[Fetched]:
        """The messages waiting in the inbox, oldest first; at most `limit` of them."""
        ...

    def file(self, item: Fetched, folder: str) -> None:
        """Move a handled message to `processed` or `needs-attention`; never delete it.
        A message that is no longer there (moved by a person) is not an error."""
        ...

    def file_many(self, items: list[Fetched], folder: str) -> None:
        """`file` for several messages at once (one server command where it can)."""
        ...

    def wait(self, timeout: float) -> bool:
        """Block until new mail may have arrived (True) or `timeout` seconds passed (False)."""
        ...

    def wake(self) -> None:
        """Make a `wait` in progress return at once (used on shutdown)."""
        ...

    def describe(self) -> str:
        """One line for the health summary; may connect, and raises when it cannot."""
        ...

    def close(self) -> None: ...


class MailSender(Protocol):
    def send(self, outgoing: Outgoing, handed_over: Callable[[], None] | None = None) -> None:
        """Deliver one message; raise DeliveryError when it could not be handed over.

        `handed_over` is called at the moment the message has irrevocably left (for SMTP:
        its last byte is on the wire, the server's answer not yet read), so that the caller
        can note it before anything else can happen."""
        ...

    def describe(self) -> str:
        """One line for the health summary; may connect, and raises when it cannot."""
        ...

    def close(self) -> None: ...

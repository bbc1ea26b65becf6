"""Capped exponential back-off: how long to wait before trying something again.

Used for reconnecting to the IMAP server (mailboxes/imap.py) and for delivering a
message the SMTP server did not take (engine.py). The delays double from `first`
up to `cap` and stay there: 1, 2, 4, 8 … cap. No jitter: one daemon per mailbox
has no herd to spread out, and predictable delays are easier to read in a log.
"""

from __future__ import annotations

from dataclasses import dataclass


def delay(attempt: int, first: float, cap: float) -> float:
    """Seconds to wait after failure number `attempt` (1 = the first failure)."""
    if attempt < 1:
        return 0.0
    return float(min(cap, first * 2 ** min(attempt - 1, 62)))


@dataclass
class Backoff:
    """Counts consecutive failures; `reset()` after a success."""

    first: float
    cap: float
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        return delay(self.failures, self.first, self.cap)

    def reset(self) -> None:
        self.failures = 0

"""Liveness: a canary message proves, end to end, that mail still flows and is handled.

A silently dead watcher is the most common failure of mail-triggered tools: the
process runs, nothing arrives. Every `liveness.canary_every`, mailflow sends a canary
to its own address through its normal outgoing route; the canary must come back
through the inbox and be handled within `liveness.canary_deadline`. If it does not,
the coordinator (or `programme.alert_address`) is told by a second route
(`liveness.alert_outbox`, when configured), and `mailflow status` shows it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from .config import Config
from .incoming import Incoming
from .messages import Messages
from .model import Outgoing, Person
from .noise import CANARY_HEADER
from .store import Store

META = "canary"


@dataclass
class CanaryState:
    id: str = ""
    sent_at: str = ""
    seen_at: str = ""
    alerted: bool = False

    @property
    def pending(self) -> bool:
        return bool(self.id) and not self.seen_at


class Liveness:
    def __init__(self, config: Config, store: Store, messages: Messages) -> None:
        self.config = config
        self.store = store
        self.messages = messages
        self.settings = config.liveness

    @property
    def enabled(self) -> bool:
        return self.settings.canary_every is not None

    def state(self) -> CanaryState:
        return CanaryState(**(self.store.get_meta(META) or {}))

    def _save(self, state: CanaryState) -> None:
        self.store.set_meta(META, state.__dict__.copy())

    def tick(self, now: datetime) -> tuple[list[Outgoing], Outgoing | None]:
        """(canaries to queue, an alert to send by the second route) due at `now`."""
        if not self.enabled:
            return [], None
        state = self.state()
        alert = None
        if state.pending and not state.alerted:
            sent = datetime.fromisoformat(state.sent_at)
            if now - sent > self.settings.canary_deadline:
                state.alerted = True
                self._save(state)
                alert = self._alert(state, now)
        every = self.settings.canary_every
        assert every is not None
        last = datetime.fromisoformat(state.sent_at) if state.sent_at else None
        if last is not None and now - last < every:
            return [], alert
        if state.pending and not state.alerted:
            return [], alert  # still within its deadline
        canary_id = secrets.token_hex(8)
        programme = Person(self.config.programme.address, self.config.programme.name)
        outgoing = self.messages.build(
            template="canary",
            purpose="canary",
            to=[programme],
            now=now,
            context={"canary_id": canary_id, "sent_at": now.isoformat(timespec="seconds")},
            headers={CANARY_HEADER: canary_id},
        )
        previous_alert = state.alerted and state.pending
        self._save(CanaryState(id=canary_id, sent_at=now.isoformat(), alerted=previous_alert))
        return [outgoing], alert

    def seen(self, incoming: Incoming, now: datetime) -> str:
        """A canary came back; returns what happened, for the log."""
        canary_id = incoming.header(CANARY_HEADER)
        state = self.state()
        if canary_id != state.id:
            return f"an old canary ({canary_id}) came back late"
        state.seen_at = now.isoformat()
        latency = now - datetime.fromisoformat(state.sent_at)
        was_alerted = state.alerted
        state.alerted = False
        self._save(state)
        return f"canary {canary_id} back after {latency.total_seconds():.1f}s" + (
            " (mail flows again after an alert)" if was_alerted else ""
        )

    def _alert(self, state: CanaryState, now: datetime) -> Outgoing:
        address = self.config.programme.alert_address or self.config.programme.coordinator
        return self.messages.build(
            template="liveness_alert",
            purpose="liveness alert",
            to=[Person(address, "Coordinator")],
            now=now,
            context={
                "canary_id": state.id,
                "sent_at": state.sent_at,
                "deadline": str(self.settings.canary_deadline),
            },
        )


def summary(config: Config, store: Store, now: datetime) -> str:
    """One line for `mailflow status`."""
    settings = config.liveness
    if settings.canary_every is None:
        return "canary: off (set liveness.canary_every to check that mail keeps arriving)"
    state = CanaryState(**(store.get_meta(META) or {}))
    if not state.id:
        return "canary: not sent yet"
    sent = datetime.fromisoformat(state.sent_at)
    if state.seen_at:
        seen = datetime.fromisoformat(state.seen_at)
        took = (seen - sent).total_seconds()
        return f"canary: ok, the last one came back {took:.1f}s after {sent:%Y-%m-%d %H:%M} UTC"
    if now - sent > settings.canary_deadline:
        alerted = ", alert sent" if state.alerted else ""
        return f"canary: LATE, sent {sent:%Y-%m-%d %H:%M} UTC and not back{alerted}: mail may not be arriving"
    return f"canary: on its way since {sent:%Y-%m-%d %H:%M} UTC"

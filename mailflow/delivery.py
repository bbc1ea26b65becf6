"""Delivery: the outbox of the state, handed to the sender, with retries.

    store.pending(now) ─▶ courier (own thread): sender.send ─(last byte sent)─▶ store.handed_over (journal)
                                                         ─▶ outcome ─▶ store.mark_sent / mark_failed
                              └─ DeliveryError ─▶ store.mark_failed(next attempt) ─▶ note to coordinator

Every message was recorded in the outbox, with its final Message-ID, by the commit
that decided to send it; it leaves the outbox only when the sender took it. A message
the server does not take is tried again after `retry_first_seconds`, doubling up to
`retry_max_seconds`; a permanent refusal (5yz) waits the longest interval at once.
The coordinator gets one note per pass naming the messages that became overdue in
it: refused for good, or not delivered for `report_after`. Each message is reported
once, and a note about delivery is never itself reported, so there is no loop. When
the route is down (no connection, login refused) the rest of the pass waits too,
rather than each message paying a connection time-out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from .backoff import delay
from .config import Config
from .courier import Courier, Outcome
from .errors import DeliveryError
from .mailboxes import MailSender
from .messages import Messages
from .model import Outgoing, Person
from .store import Store

log = logging.getLogger(__name__)

DELIVERY_REPORT = "delivery report"  # the purpose of a note about messages that did not leave


@dataclass
class Delivered:
    sent: int = 0
    failed: int = 0
    overdue: list[tuple[Outgoing, str]] = field(default_factory=list)  # to tell the coordinator


class Delivery:
    def __init__(
        self,
        config: Config,
        store: Store,
        sender: MailSender,
        messages: Messages,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.sender = sender
        self.messages = messages
        self.courier = Courier(
            sender,
            store.handed_over,
            on_done,
            workers=config.delivery.connections,
            journal=store.sent_journal,
        )
        self._in_flight: set[str] = set()
        self._overdue: list[tuple[Outgoing, str]] = []  # told to the coordinator once the pass ends
        store.journal_in_use = self.busy

    def busy(self) -> bool:
        """Messages handed to the courier whose outcome the state does not hold yet."""
        return bool(self._in_flight)

    def deliver(self, now: datetime, *, wait: bool = True) -> Delivered:
        """Hand what is due to the courier and apply what it has finished; with `wait`,
        until nothing due is left (failures wait for their next attempt)."""
        result = Delivered()
        while True:
            self._apply(self.courier.collect(), now, result)
            due = [o for o in self.store.pending(now) if o.message_id not in self._in_flight]
            if due:
                self._in_flight.update(o.message_id for o in due)
                self.courier.submit(due)
            if not wait or not self._in_flight:
                return result
            self.courier.wait_for_outcomes()

    def close(self) -> None:
        self.courier.close()

    def _apply(self, outcomes: list[Outcome], now: datetime, result: Delivered) -> None:
        failed_before = result.failed
        for outcome in outcomes:
            outgoing = outcome.outgoing
            self._in_flight.discard(outgoing.message_id)
            if outcome.partly is not None:
                self.store.mark_sent(outgoing.message_id)
                result.sent += 1
                log.warning("%s %s: %s", outgoing.ref or "-", outgoing.message_id, outcome.partly)
                if outgoing.purpose != DELIVERY_REPORT:
                    result.overdue.append((outgoing, f"delivered to the others; {outcome.partly}"))
            elif outcome.error is not None:
                if outcome.handed_over:
                    self.store.taken_back(outgoing.message_id)
                self._hold_back(outgoing, outcome.error, now, result)
                result.failed += 1
            else:
                if not outcome.handed_over:  # a sender that does not say when: note it now
                    self.store.handed_over(outgoing.message_id)
                self.store.mark_sent(outgoing.message_id)
                result.sent += 1
                log.info(
                    "%s %s sent %s to %s",
                    outgoing.ref or "-",
                    outgoing.message_id,
                    outgoing.purpose,
                    ", ".join(outgoing.recipients),
                )
        self._overdue.extend(result.overdue)
        result.overdue = []
        noted = bool(self._overdue) and not self._in_flight  # one note per pass, naming them all
        if noted:
            self._tell_coordinator(self._overdue, now)
            self._overdue = []
        if noted or result.failed > failed_before:
            # Failures and the note are recorded before anything more is sent.
            self.store.commit(now)

    def _hold_back(self, outgoing: Outgoing, error: DeliveryError, now: datetime, result: Delivered) -> None:
        settings = self.config.delivery
        before = self.store.attempts(outgoing.message_id)
        count = (before.count if before else 0) + 1
        wait = (
            settings.retry_max_seconds
            if error.permanent
            else delay(count, settings.retry_first_seconds, settings.retry_max_seconds)
        )
        retry = now + timedelta(seconds=wait)
        after = self.store.mark_failed(outgoing.message_id, str(error), at=now, next_attempt=retry)
        log.warning(
            "%s %s: %s not delivered (attempt %d): %s; next try %s",
            outgoing.ref or "-",
            outgoing.message_id,
            outgoing.purpose,
            count,
            error,
            f"{retry:%Y-%m-%d %H:%M:%S} UTC",
        )
        if after is None or after.reported or outgoing.purpose == DELIVERY_REPORT:
            return
        since = after.first_failure or now
        if error.permanent or now - since >= settings.report_after:
            said = (
                "refused for good" if error.permanent else f"not delivered since {since:%Y-%m-%d %H:%M} UTC"
            )
            result.overdue.append((outgoing, f"{said}: {error}"))
            self.store.mark_reported(outgoing.message_id)

    def _tell_coordinator(self, overdue: list[tuple[Outgoing, str]], now: datetime) -> None:
        """One note naming every message that became overdue in this pass."""
        details: list[str] = []
        for outgoing, problem in overdue:
            subject = BytesHeaderParser(policy=default_policy).parsebytes(outgoing.raw).get("Subject", "")
            details += [
                f"{outgoing.purpose} to {', '.join(outgoing.recipients)}",
                f"    Subject:    {subject}",
                f"    Message-ID: {outgoing.message_id}",
                f"    Problem:    {problem}",
            ]
        refs = {o.ref for o, _ in overdue}
        only_ref = next(iter(refs)) if len(refs) == 1 else None
        request = self.store.get(only_ref) if only_ref else None
        cap = max(1, round(self.config.delivery.retry_max_seconds / 60))
        first = overdue[0][0]
        headline = (
            f"{first.purpose} to {', '.join(first.recipients)}"
            if len(overdue) == 1
            else f"{len(overdue)} messages"
        )
        note = self.messages.build(
            template="delivery_problem",
            purpose=DELIVERY_REPORT,
            to=[Person(self.config.programme.coordinator, "")],
            now=now,
            request=request,
            context={
                "headline": headline,
                "details": details,
                "advice": "A message refused for good needs its address checked; for the others, check "
                "the outgoing server (mail.outbox in config.toml) and its login. mailflow keeps trying "
                f"each message, at least every {cap} minute(s), and tells you about each only once.",
            },
        )
        if request is not None:
            self.store.put(request)
        self.store.queue(note, now)
        for outgoing, problem in overdue:
            self.store.log(now, "delivery problem", f"{outgoing.message_id}: {problem}", ref=outgoing.ref)
        log.warning("coordinator told about %d message(s) that did not leave", len(overdue))

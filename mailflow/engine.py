"""The pipeline: the one path every message and every timer takes.

    source.fetch ─▶ read_incoming ─▶ route ─▶ workflow (decide) ─▶ Effects
        ─▶ store (state + outbox, one atomic commit) ─▶ sender.send ─▶ source.file

A message is filed away only after the commit that records its effects, and the
store remembers which messages it has handled, so a crash at any point repeats
nothing: after a restart, a handled message is only filed, and a queued message is
only sent if it was not recorded as sent. An exception while handling one message
parks that message (needs-attention, coordinator told) and the engine goes on.

A message the outgoing server does not take stays in the outbox and is tried again
with capped exponential back-off (`[delivery]` in config.toml); the coordinator is
told once, at once for a permanent refusal, else after `delivery.report_after`. When
the inbox cannot be reached, timers still fire and the outbox is still delivered;
the source reconnects on its own. `stop()` (SIGTERM, SIGINT) lets the message in
hand finish, then the daemon returns and the caller closes the connections.
"""

from __future__ import annotations

import logging
import secrets
import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from . import __version__
from .backoff import delay
from .clock import Clock
from .config import Config
from .errors import AuthError, DeliveryError, MailboxError, MailflowError, PartlyDelivered
from .incoming import Incoming, read_incoming
from .letters import Letters
from .mailboxes import Fetched, MailSender, MailSource
from .mailboxes.base import NEEDS_ATTENTION, PROCESSED
from .messages import Effects, Messages
from .model import Outgoing, Person
from .render import Renderer
from .route import Kind, route
from .rules import Ruleset, load_rules
from .store import Store
from .tokens import Tokens, load_secret
from .workflow import Workflow

log = logging.getLogger(__name__)
BATCH = 200
DELIVERY_REPORT = "delivery report"  # the purpose of a note about a message that did not leave


@dataclass
class RunReport:
    handled: int = 0
    already_handled: int = 0
    timers: int = 0
    sent: int = 0
    failed: int = 0
    outcomes: list[str] = field(default_factory=list)
    inbox_error: str = ""  # the inbox could not be read; timers and delivery still ran


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        source: MailSource,
        sender: MailSender,
        clock: Clock,
        *,
        ruleset: Ruleset | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.source = source
        self.sender = sender
        self.clock = clock
        self.ruleset = ruleset or load_rules(config.rules_dir)
        self.renderer = renderer or Renderer(config.templates_dir)
        secret = load_secret(config.security.secret_env, config.state_path.parent / "secret.key")
        self.tokens = Tokens(secret, config.programme.address)
        self.loop_token = store.get_meta("loop_token") or secrets.token_hex(8)
        store.set_meta("loop_token", self.loop_token)
        self.stopping = threading.Event()
        self._build_workflow()

    def _build_workflow(self) -> None:
        messages = Messages(self.config, self.renderer, self.tokens, self.loop_token)
        self.messages = messages
        letters = Letters(self.config, messages)
        self.workflow = Workflow(config=self.config, ruleset=self.ruleset, letters=letters, store=self.store)

    # -- the daemon --------------------------------------------------------------------
    def run_once(self) -> RunReport:
        """Handle everything waiting in the inbox, fire due timers, deliver, file away."""
        report = RunReport()
        try:
            while not self.stopping.is_set():
                items = self.source.fetch()[:BATCH]
                if not items:
                    break
                self._batch(items, report)
                if len(items) < BATCH:
                    break
        except (MailboxError, AuthError) as error:
            report.inbox_error = str(error)
            log.warning("inbox not read: %s", error)
        if not self.stopping.is_set():
            self._fire_timers(report)
            self._deliver(report)
        return report

    def run_forever(self) -> None:
        """Wait for mail, the next timer or the next delivery attempt; repeat until `stop()`."""
        while not self.stopping.is_set():
            self.run_once()
            if self.stopping.is_set():
                break
            self.source.wait(self.seconds_to_wait())
        log.info("stopping: the message in hand is finished; closing connections")

    def seconds_to_wait(self) -> float:
        timeout = self.config.mail.poll_seconds * 60
        now = self.clock.now()
        for when in (self.store.next_due(), self.store.next_attempt()):
            if when is not None:
                timeout = min(timeout, (when - now).total_seconds())
        return max(0.0, timeout)

    def stop(self) -> None:
        self.stopping.set()
        self.source.wake()

    def health(self) -> str:
        """One line: where mail comes from and goes, and what the state holds."""
        parts = []
        for name, end in (("inbox", self.source), ("outbox", self.sender)):
            try:
                parts.append(f"{name} {end.describe()}")
            except (MailflowError, OSError) as error:
                parts.append(f"{name} UNREACHABLE ({error}; mailflow keeps trying)")
        waiting = len(self.store.outbox_entries())
        next_due = self.store.next_due()
        timer = f"next timer {next_due:%Y-%m-%d %H:%M} UTC" if next_due else "no timer set"
        return (
            f"mailflow {__version__}: {'; '.join(parts)}; state {self.store.path}: "
            f"{len(self.store.open_requests())} open request(s), {waiting} message(s) to send, {timer}"
        )

    # -- one batch of messages ---------------------------------------------------------
    def _batch(self, items: list[Fetched], report: RunReport) -> None:
        now = self.clock.now()
        filing: list[tuple[Fetched, str]] = []
        for item in items:
            if self.stopping.is_set():
                break  # the message in hand is finished; the rest wait for the next start
            incoming = read_incoming(item.raw)
            seen = self.store.seen_message(incoming.key)
            if seen is not None:
                report.already_handled += 1
                filing.append((item, seen.folder))
                continue
            fx = self._handle_safely(incoming, now)
            self._apply(fx, now)
            self.store.remember(incoming.key, now, fx.outcome, fx.folder, next(iter(fx.saved), None))
            filing.append((item, fx.folder))
            report.handled += 1
            report.outcomes.append(fx.outcome)
            ref = next(iter(fx.saved), None) or "-"
            log.info("%s %s from %s: %s", ref, incoming.message_id, incoming.sender.email or "-", fx.outcome)
        self.store.commit(now)
        self._deliver(report)
        for item, folder in filing:
            self.source.file(item, folder)

    def _handle_safely(self, incoming: Incoming, now: datetime) -> Effects:
        try:
            return self._handle(incoming, now)
        except Exception as error:  # one bad message must never stop the daemon
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            log.exception("%s: failed, parked in needs-attention", incoming.message_id)
            try:
                return self.workflow.park(
                    Effects(),
                    incoming,
                    now,
                    reason=f"mailflow failed on this message: {detail}",
                    advice="This is a mailflow bug or a broken template; the message is kept. "
                    "Fix the cause, then move the message back into the inbox.",
                )
            except Exception:
                log.exception("%s: could not even tell the coordinator", incoming.message_id)
                fx = Effects(folder=NEEDS_ATTENTION, outcome=f"needs attention: {detail}")
                fx.log.append(("needs attention", f"{incoming.message_id}: {detail}"))
                return fx

    def _handle(self, incoming: Incoming, now: datetime) -> Effects:
        found = route(
            incoming,
            self.tokens,
            known_ref=self._known_ref,
            ref_for_message=self.store.ref_for_message,
            loop_token=self.loop_token,
            own_address=self.config.programme.address,
        )
        if found.kind is Kind.NOISE:
            fx = Effects(folder=PROCESSED, outcome=f"skipped: {found.reason}")
            fx.log.append(
                (
                    "skipped",
                    f"{incoming.message_id} from {incoming.sender.email or '-'}: {found.reason}",
                )
            )
            return fx
        if found.kind is Kind.NEW_REQUEST:
            return self.workflow.new_request(incoming, now)
        assert found.ref is not None
        request = self.store.find(found.ref)
        if request is None:
            return self.workflow.park(
                Effects(),
                incoming,
                now,
                reason=f"{found.reason}: no such request",
                advice="Check the reference; the sender may have mistyped it.",
            )
        role, problem = self.workflow.resolve_role(request, found, incoming.sender.email)
        if role is None:
            return self.workflow.park(
                Effects(),
                incoming,
                now,
                reason=problem,
                request=request,
                advice="mailflow only acts on replies from the people a "
                "message was sent to. Forward it to them, or act "
                "on it yourself.",
            )
        return self.workflow.reply(request, role, incoming, now)

    def _known_ref(self, ref: str) -> bool:
        return self.store.get(ref) is not None or self.store.ref_taken(ref)

    def _apply(self, fx: Effects, now: datetime) -> None:
        for request in fx.saved.values():
            self.store.put(request)
        for ref, after in fx.unbook:
            self.store.unbook(ref, after)
        for ref, mentor, start, minutes in fx.bookings:
            self.store.book(ref, mentor, start, minutes)
        for protege, mentor, ref in fx.pairings:
            self.store.remember_pairing(protege, mentor, ref, now)
        for outgoing in fx.outgoing:
            self.store.queue(outgoing, now)
        touched = next(iter(fx.saved), None)
        for what, reason in fx.log:
            self.store.log(now, what, reason, ref=touched)

    # -- timers and delivery -----------------------------------------------------------
    def _fire_timers(self, report: RunReport) -> None:
        now = self.clock.now()
        due = self.store.due(now)
        for ref in due:
            request = self.store.get(ref)
            if request is None:
                continue
            try:
                fx = self.workflow.timer(request, now)
            except Exception:
                log.exception("%s: timer failed; it will be tried again", ref)
                continue
            self._apply(fx, now)
            report.timers += 1
            report.outcomes.append(fx.outcome)
            log.info("%s: %s", ref, fx.outcome)
        if due:
            self.store.commit(now)

    def _deliver(self, report: RunReport) -> None:
        """Send what is due; hold back what fails, with back-off; tell the coordinator once."""
        now = self.clock.now()
        tried: set[str] = set()
        while True:
            due = [o for o in self.store.pending(now) if o.message_id not in tried]
            if not due:
                return
            tried.update(o.message_id for o in due)
            held_back = self._send(due, report, now)
            if held_back:
                # Failures and notes to the coordinator are recorded before anything more is
                # sent; notes queued just now are due, so they go round once more.
                self.store.commit(now)
            if held_back and held_back[-1].route_down:
                return

    def _send(self, due: list[Outgoing], report: RunReport, now: datetime) -> list[DeliveryError]:
        """Send each message in turn; the failures, in order (a route down ends the list)."""
        failures: list[DeliveryError] = []
        for index, outgoing in enumerate(due):
            try:
                self.sender.send(outgoing)
            except PartlyDelivered as partly:
                self.store.mark_sent(outgoing.message_id)
                report.sent += 1
                log.warning("%s %s: %s", outgoing.ref or "-", outgoing.message_id, partly)
                self._tell_coordinator(outgoing, str(partly), now, permanent=True)
                failures.append(partly)
                continue
            except (DeliveryError, OSError) as caught:
                error = (
                    caught
                    if isinstance(caught, DeliveryError)
                    else DeliveryError(f"{type(caught).__name__}: {caught}", route_down=True)
                )
                held = due[index:] if error.route_down else [outgoing]
                for waiting in held:
                    self._hold_back(waiting, error, now)
                report.failed += len(held)
                failures.append(error)
                if error.route_down:
                    return failures
                continue
            self.store.mark_sent(outgoing.message_id)
            report.sent += 1
            log.info(
                "%s %s sent %s to %s",
                outgoing.ref or "-",
                outgoing.message_id,
                outgoing.purpose,
                ", ".join(outgoing.recipients),
            )
        return failures

    def _hold_back(self, outgoing: Outgoing, error: DeliveryError, now: datetime) -> None:
        settings = self.config.delivery
        permanent = error.permanent
        before = self.store.attempts(outgoing.message_id)
        count = (before.count if before else 0) + 1
        wait = (
            settings.retry_max_seconds
            if permanent
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
        waited = now - (after.first_failure or now)
        if permanent or waited >= settings.report_after:
            self._tell_coordinator(outgoing, str(error), now, permanent=permanent, since=after.first_failure)
            self.store.mark_reported(outgoing.message_id)

    def _tell_coordinator(
        self,
        outgoing: Outgoing,
        error: str,
        now: datetime,
        *,
        permanent: bool,
        since: datetime | None = None,
    ) -> None:
        """A note to the coordinator about one message that did not (fully) leave."""
        headers = BytesHeaderParser(policy=default_policy).parsebytes(outgoing.raw)
        request = self.store.get(outgoing.ref) if outgoing.ref else None
        cap = timedelta(seconds=self.config.delivery.retry_max_seconds)
        details = [
            f"Message:     {outgoing.purpose} to {', '.join(outgoing.recipients)}",
            f"Subject:     {headers.get('Subject', '')}",
            f"Message-ID:  {outgoing.message_id}",
        ]
        if since is not None:
            details.append(f"Not sent since {since:%Y-%m-%d %H:%M} UTC")
        details.append(f"Server said: {error}")
        advice = (
            "The server refused this for good: check the addresses above. "
            if permanent
            else "Check the outgoing server (mail.outbox in config.toml) and its login. "
        ) + f"mailflow keeps trying, at least every {_minutes(cap)}, and tells you only once."
        note = self.messages.build(
            template="delivery_problem",
            purpose=DELIVERY_REPORT,
            to=[Person(self.config.programme.coordinator, "")],
            now=now,
            request=request,
            context={
                "headline": f"{outgoing.purpose} to {', '.join(outgoing.recipients)}",
                "details": details,
                "advice": advice,
                "message_id": outgoing.message_id,
            },
        )
        if request is not None:
            self.store.put(request)
        self.store.queue(note, now)
        self.store.log(now, "delivery problem", f"{outgoing.message_id}: {error}", ref=outgoing.ref)
        log.warning("%s %s: coordinator told that it did not leave", outgoing.ref or "-", outgoing.message_id)


def _minutes(span: timedelta) -> str:
    minutes = max(1, round(span.total_seconds() / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"

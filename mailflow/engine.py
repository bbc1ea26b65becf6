"""The pipeline: the one path every message and every timer takes.

    source.fetch ─▶ read_incoming ─▶ route ─▶ workflow (decide) ─▶ Effects
        ─▶ store (state + outbox, one atomic commit) ─▶ sender.send ─▶ source.file

A message is filed away only after the commit that records its effects, and the
store remembers which messages it has handled, so a crash at any point repeats
nothing: after a restart, a handled message is only filed, and a queued message is
only sent if it was not recorded as sent. An exception while handling one message
parks that message (needs-attention, coordinator told) and the engine goes on.

A message the outgoing server does not take stays in the outbox and is tried again
with capped exponential back-off (delivery.py). When
the inbox cannot be reached, timers still fire and the outbox is still delivered;
the source reconnects on its own. `stop()` (SIGTERM, SIGINT) lets the message in
hand finish, then the daemon returns and the caller closes the connections.
"""

from __future__ import annotations

import gc
import logging
import secrets
import sys
import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime

from . import __version__, digest
from .bounces import read_bounce
from .clock import Clock
from .config import Config
from .delivery import Delivery
from .errors import AuthError, DeliveryError, MailboxError, MailflowError
from .freebusy import FreeBusy
from .incoming import Incoming, read_incoming
from .letters import Letters
from .liveness import Liveness
from .mailboxes import Fetched, MailSender, MailSource, open_sender
from .mailboxes.base import NEEDS_ATTENTION, PROCESSED
from .mailtext import clean
from .messages import Effects, Messages
from .model import Outgoing
from .noise import NoiseKind
from .reload import LiveFiles, Loaded, refusal_note
from .render import Renderer
from .route import Kind, Route, route
from .rules import Ruleset
from .store import Store
from .tokens import Tokens, load_secret
from .workflow import Workflow

log = logging.getLogger(__name__)
SWITCH_INTERVAL = 0.0002  # seconds
GC_THRESHOLD = 10_000
FIRST_BATCH = 25
BATCH = 200  # messages decided and committed together (the courier sends one batch while the next is decided)
REFUSED_META = "refused_files"  # the version of rules/templates the coordinator was told about


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
        # Rules and templates come from a checked copy that follows the coordinator's edits
        # (reload.py), unless the caller passes its own.
        self.live: LiveFiles | None = None
        self.files_loaded_at: datetime | None = None
        refused: Loaded | None = None
        if ruleset is None or renderer is None:
            work_dir = config.state_path.parent / "programme"
            self.live = LiveFiles(config.rules_dir, config.templates_dir, work_dir)
            loaded = self.live.start()
            assert loaded.ruleset is not None and loaded.renderer is not None
            ruleset, renderer = ruleset or loaded.ruleset, renderer or loaded.renderer
            refused = loaded if loaded.issues else None
            self.files_loaded_at = None if refused else clock.now()
        self.ruleset: Ruleset = ruleset
        self.renderer: Renderer = renderer
        secret = load_secret(config.security.secret_env, config.state_path.parent / "secret.key")
        self.tokens = Tokens(secret, config.programme.address)
        self.loop_token = store.get_meta("loop_token") or secrets.token_hex(8)
        store.set_meta("loop_token", self.loop_token)
        self.stopping = threading.Event()
        store.warm()
        # The courier's thread waits on the server most of the time; when an answer comes it
        # needs the interpreter lock back soon, not after the default 5 ms turn of the thread
        # that is deciding the next batch, or sending crawls while a backlog is decided.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        # Parsing and writing mail makes many short-lived objects; a young-generation
        # collection every 700 of them costs more than it frees (memory stays flat: the
        # scaling benchmark's RSS).
        gc.set_threshold(max(gc.get_threshold()[0], GC_THRESHOLD), *gc.get_threshold()[1:])
        self._build_workflow()
        self.delivery = Delivery(self.config, self.store, self.sender, self.messages, on_done=source.wake)
        if refused is not None:
            self._refuse(refused, clock.now())
            store.commit(clock.now())

    def _build_workflow(self) -> None:
        messages = Messages(self.config, self.renderer, self.tokens, self.loop_token)
        self.messages = messages
        if hasattr(self, "delivery"):
            self.delivery.messages = messages
        letters = Letters(self.config, messages)
        self.liveness = Liveness(self.config, self.store, messages)
        self.workflow = Workflow(
            config=self.config,
            ruleset=self.ruleset,
            letters=letters,
            store=self.store,
            free_busy=FreeBusy(self.config.rules_dir),
        )

    # -- the daemon --------------------------------------------------------------------
    def close(self) -> None:
        """Stop the courier's thread (after the message in hand); the caller closes the rest."""
        self.delivery.close()

    def run_once(self, *, read_inbox: bool = True, settle: bool = True) -> RunReport:
        """Handle everything waiting in the inbox, fire due timers, deliver, file away.

        `read_inbox=False` skips asking the mailbox, for a round that only woke up to look
        at timers, the outbox and edited rules (the mailbox said nothing arrived)."""
        report = RunReport()
        self._reload()
        size = FIRST_BATCH
        try:
            while read_inbox and not self.stopping.is_set():
                items = self.source.fetch(size)
                if not items:
                    break
                self._batch(items, report)
                if len(items) < size:
                    break
                size = min(BATCH, size * 2)  # small at first, so that sending starts soon
        except (MailboxError, AuthError) as error:
            report.inbox_error = str(error)
            log.warning("inbox not read: %s", error)
        if not self.stopping.is_set():
            self._fire_timers(report)
            self._check_liveness()
            self._send_digest(report)
            self._deliver(report, wait=settle)
        return report

    def _check_liveness(self) -> None:
        now = self.clock.now()
        canaries, alert = self.liveness.tick(now)
        for outgoing in canaries:
            self.store.queue(outgoing, now)
        if alert is not None:
            log.error("liveness: the canary did not come back in time; alerting %s", alert.recipients)
            self.store.log(now, "liveness alert", "the canary did not come back within its deadline")
            self._send_alert(alert, now)
        if canaries or alert is not None:
            self.store.commit(now)

    def _send_alert(self, alert: Outgoing, now: datetime) -> None:
        """By the second route when one is configured (the first may be what is broken)."""
        url = self.config.liveness.alert_outbox
        if url is None:
            self.store.queue(alert, now)
            return
        try:
            second = open_sender(self.config, url=url)
            try:
                second.send(alert)
            finally:
                second.close()
        except (DeliveryError, OSError) as error:
            log.error("liveness alert could not be sent by %s either: %s", url, error)
            self.store.queue(alert, now)

    def run_forever(self) -> None:
        """Wait for mail, the next timer or the next delivery attempt; repeat until `stop()`."""
        new_mail = True
        while not self.stopping.is_set():
            retry = False
            try:
                retry = bool(self.run_once(read_inbox=new_mail, settle=False).inbox_error)
            except (MailboxError, DeliveryError, OSError) as error:
                log.error("this round failed and will be tried again: %s", error)
                retry = True
            if self.stopping.is_set():
                break
            new_mail = self.source.wait(self.seconds_to_wait()) or retry
        log.info("stopping: the message in hand is finished; the outbox is handed over; closing connections")
        try:
            self._deliver(RunReport())  # what was committed leaves now, or waits for the next start
            self.store.commit(self.clock.now())
        except (DeliveryError, OSError) as error:
            log.error("stopping: delivery left for the next start: %s", error)

    def seconds_to_wait(self) -> float:
        timeout = self.config.mail.poll_seconds * 60
        now = self.clock.now()
        for when in (self.store.next_due(), self.store.next_attempt()):
            if when is not None:
                timeout = min(timeout, (when - now).total_seconds())
        if self.live is not None:  # look for edits to rules/ and templates/ this often
            timeout = min(timeout, self.config.mail.poll_seconds)
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
        self._deliver(report, wait=False)  # sent while the next batch is decided
        for folder in dict.fromkeys(folder for _, folder in filing):
            self.source.file_many([item for item, where in filing if where == folder], folder)

    def _handle_safely(self, incoming: Incoming, now: datetime) -> Effects:
        try:
            return self._handle(incoming, now)
        except Exception as error:  # one bad message must never stop the daemon
            detail = clean("".join(traceback.format_exception_only(type(error), error)).strip())
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
        found = self._route(incoming)
        if found.kind is Kind.NOISE:
            return self._noise(incoming, found, now)
        if incoming.size > self.config.security.max_message_bytes:
            return self.workflow.too_large(incoming, self.config.security.max_message_bytes, now)
        if found.kind is Kind.NEW_REQUEST:
            return self.workflow.new_request(incoming, now)
        if found.kind is Kind.CALENDAR:
            return self._calendar_answer(incoming, found, now)
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
        role, problem = self.workflow.resolve_role(request, found, incoming)
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

    def _route(self, incoming: Incoming, *, check_noise: bool = True) -> Route:
        return route(
            incoming,
            self.tokens,
            known_ref=self._known_ref,
            ref_for_message=self.store.ref_for_message,
            loop_token=self.loop_token,
            own_address=self.config.programme.address,
            check_noise=check_noise,
        )

    def _calendar_answer(self, incoming: Incoming, found: Route, now: datetime) -> Effects:
        """A calendar's answer, routed by the UID of the session it answers; never replied to."""
        assert found.calendar is not None
        request = self.store.find(found.ref) if found.ref else None
        if request is None:
            return self.workflow.park(
                Effects(),
                incoming,
                now,
                reason=found.reason + ("" if found.ref is None else ": no such request"),
                advice="A calendar answered an invitation mailflow does not know; nothing was recorded.",
            )
        return self.workflow.calendar_answer(request, found.calendar, incoming, now)

    def _noise(self, incoming: Incoming, found: Route, now: datetime) -> Effects:
        """Never answered; but a bounce, a mentor's out-of-office and our canary mean something."""
        noise = found.noise
        if noise is not None and noise.kind is NoiseKind.CANARY:
            return Effects(outcome=self.liveness.seen(incoming, now))
        if noise is not None and noise.kind is NoiseKind.BOUNCE:
            bounce = read_bounce(incoming.message)
            for original in bounce.original_ids:
                ref = self.store.ref_for_message(original)
                request = self.store.get(ref) if ref else None
                if request is not None:
                    return self.workflow.bounce(request, bounce.failures, original, now)
        if noise is not None and noise.kind is NoiseKind.AUTO_REPLY:
            behind = self._route(incoming, check_noise=False)
            request = self.store.get(behind.ref) if behind.ref else None
            if request is not None and request.current_ask is not None:
                return self.workflow.out_of_office(request, incoming, now)
        fx = Effects(folder=PROCESSED, outcome=f"skipped: {found.reason}")
        fx.log.append(
            ("skipped", f"{incoming.message_id} from {incoming.sender.email or '-'}: {found.reason}")
        )
        return fx

    def _known_ref(self, ref: str) -> bool:
        return self.store.get(ref) is not None or self.store.ref_taken(ref)

    def _apply(self, fx: Effects, now: datetime) -> None:
        self._limit_auto_replies(fx, now)
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
        if fx.unavailable:
            away = dict(self.store.get_meta("unavailable", {}) or {})
            away.update({mentor: until.isoformat() for mentor, until in fx.unavailable})
            self.store.set_meta("unavailable", {m: t for m, t in away.items() if t > now.isoformat()})

    def _limit_auto_replies(self, fx: Effects, now: datetime) -> None:
        """At most `auto_replies_per_sender_per_day` automatic answers to one address."""
        limit = self.config.security.auto_replies_per_sender_per_day
        day = now.date().isoformat()
        counts = self.store.get_meta("auto_replies", {}) or {}
        if counts.get("day") != day:
            counts = {"day": day}
        kept = []
        for outgoing in fx.outgoing:
            sender = outgoing.auto_reply_to
            if sender is None:
                kept.append(outgoing)
                continue
            counts[sender] = counts.get(sender, 0) + 1
            if counts[sender] <= limit:
                kept.append(outgoing)
                continue
            why = f"not sent: {counts[sender] - 1} automatic replies to {sender} today (limit {limit})"
            fx.log.append(("rate limit", f"{outgoing.purpose} {outgoing.message_id}: {why}"))
            if outgoing.ref in fx.saved:
                fx.saved[outgoing.ref].note(now, f"{outgoing.purpose} not sent", why)
        fx.outgoing = kept
        self.store.set_meta("auto_replies", counts)

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

    def _deliver(self, report: RunReport, *, wait: bool = True) -> None:
        """Send what is due (delivery.py, courier.py): in the background, and with `wait` until
        it has all gone; failures wait with back-off, the coordinator is told."""
        outcome = self.delivery.deliver(self.clock.now(), wait=wait)
        report.sent += outcome.sent
        report.failed += outcome.failed

    # -- hot reload (reload.py) --------------------------------------------------------
    def _reload(self) -> None:
        """Swap in edited rules and templates once they pass the checks; else keep the old."""
        loaded = self.live.poll() if self.live is not None else None
        if loaded is None:
            return
        now = self.clock.now()
        if loaded.ruleset is not None and loaded.renderer is not None:
            self.ruleset, self.renderer = loaded.ruleset, loaded.renderer
            self._build_workflow()
            self.files_loaded_at = now
            self.store.set_meta(REFUSED_META, None)
            self.store.log(now, "rules reloaded", f"rules and templates version {loaded.digest} in use")
            log.info("rules and templates reloaded (version %s)", loaded.digest)
        else:
            self._refuse(loaded, now)
        self.store.commit(now)

    def _refuse(self, loaded: Loaded, now: datetime) -> None:
        """Tell the coordinator what is wrong with their edit, once per broken version."""
        self.store.log(
            now,
            "edit refused",
            f"{len(loaded.issues)} problem(s) in rules/templates version {loaded.digest}; "
            "the last good set stays in use: " + "; ".join(str(i) for i in loaded.issues[:3]),
        )
        log.warning("edit refused, keeping the last good rules and templates: %s", loaded.issues[0])
        if self.store.get_meta(REFUSED_META) == loaded.digest:
            return
        note = refusal_note(
            self.workflow.letters.messages,
            self.workflow.coordinator,
            loaded.issues,
            self.files_loaded_at,
            self.config.programme.time_zone,
            now,
        )
        self.store.queue(note, now)
        self.store.set_meta(REFUSED_META, loaded.digest)

    # -- the weekly digest (digest.py) -------------------------------------------------
    def _send_digest(self, report: RunReport) -> None:
        """Queue the coordinator's digest when its weekly time has passed; once per week."""
        settings, zone = self.config.digest, self.config.programme.time_zone
        if not settings.enabled:
            return
        now = self.clock.now()
        slot, action = digest.slot_due(self.store.get_meta(digest.SENT_META), settings, zone, now)
        if action == "wait":
            return
        if action == "send":
            requests = self.store.open_requests() + list(self.store.archived())
            loads = self.store.mentor_load(now)
            data = digest.build_digest(requests, self.ruleset.mentors, loads, self.config, slot, now)
            messages = self.workflow.letters.messages
            self.store.queue(digest.digest_message(messages, self.workflow.coordinator, data, zone, now), now)
            report.outcomes.append(f"weekly digest for {slot:%Y-%m-%d}")
            log.info("weekly digest for the week to %s queued", f"{slot:%Y-%m-%d %H:%M} UTC")
        self.store.set_meta(digest.SENT_META, slot.isoformat())
        self.store.commit(now)

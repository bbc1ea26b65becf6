"""The pipeline: the one path every message and every timer takes.

    source.fetch ─▶ read_incoming ─▶ route ─▶ workflow (decide) ─▶ Effects
        ─▶ store (state + outbox, one atomic commit) ─▶ sender.send ─▶ source.file

A message is filed away only after the commit that records its effects, and the
store remembers which messages it has handled, so a crash at any point repeats
nothing: after a restart, a handled message is only filed, and a queued message is
only sent if it was not recorded as sent. An exception while handling one message
parks that message (needs-attention, coordinator told) and the engine goes on.
"""

from __future__ import annotations

import logging
import secrets
import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime

from . import digest
from .clock import Clock
from .config import Config
from .errors import DeliveryError
from .incoming import Incoming, read_incoming
from .letters import Letters
from .mailboxes import Fetched, MailSender, MailSource
from .mailboxes.base import NEEDS_ATTENTION, PROCESSED
from .messages import Effects, Messages
from .reload import LiveFiles, Loaded, refusal_note
from .render import Renderer
from .route import Kind, route
from .rules import Ruleset
from .store import Store
from .tokens import Tokens, load_secret
from .workflow import Workflow

log = logging.getLogger(__name__)
BATCH = 200
REFUSED_META = "refused_files"  # the version of rules/templates the coordinator was told about


@dataclass
class RunReport:
    handled: int = 0
    already_handled: int = 0
    timers: int = 0
    sent: int = 0
    failed: int = 0
    outcomes: list[str] = field(default_factory=list)


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
        self._build_workflow()
        if refused is not None:
            self._refuse(refused, clock.now())
            store.commit(clock.now())

    def _build_workflow(self) -> None:
        messages = Messages(self.config, self.renderer, self.tokens, self.loop_token)
        letters = Letters(self.config, messages)
        self.workflow = Workflow(config=self.config, ruleset=self.ruleset, letters=letters, store=self.store)

    # -- the daemon --------------------------------------------------------------------
    def run_once(self) -> RunReport:
        """Handle everything waiting in the inbox, fire due timers, deliver, file away."""
        report = RunReport()
        self._reload()
        while not self.stopping.is_set():
            items = self.source.fetch()[:BATCH]
            if not items:
                break
            self._batch(items, report)
            if len(items) < BATCH:
                break
        self._fire_timers(report)
        self._send_digest(report)
        self._deliver(report)
        return report

    def run_forever(self) -> None:
        """Wait for mail or the next timer, handle it, repeat until `stop()`."""
        while not self.stopping.is_set():
            self.run_once()
            if self.stopping.is_set():
                break
            next_due = self.store.next_due()
            timeout = self.config.mail.poll_seconds * 60
            if next_due is not None:
                timeout = max(0.0, min(timeout, (next_due - self.clock.now()).total_seconds()))
            if self.live is not None:  # look for edits to rules/ and templates/ this often
                timeout = min(timeout, self.config.mail.poll_seconds)
            self.source.wait(timeout)

    def stop(self) -> None:
        self.stopping.set()
        self.source.wake()

    # -- one batch of messages ---------------------------------------------------------
    def _batch(self, items: list[Fetched], report: RunReport) -> None:
        now = self.clock.now()
        filing: list[tuple[Fetched, str]] = []
        for item in items:
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
            log.info("%s %s: %s", incoming.message_id, incoming.sender.email or "-", fx.outcome)
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
        for outgoing in self.store.pending():
            try:
                self.sender.send(outgoing)
            except (DeliveryError, OSError) as error:
                report.failed += 1
                self.store.mark_failed(outgoing.message_id, str(error))
                log.warning("%s: delivery failed: %s", outgoing.message_id, error)
                continue
            self.store.mark_sent(outgoing.message_id)
            report.sent += 1
            log.info(
                "%s sent %s to %s",
                outgoing.ref or "-",
                outgoing.purpose,
                ", ".join(outgoing.recipients),
            )

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

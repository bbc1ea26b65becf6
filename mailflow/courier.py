"""The courier: hands queued messages to the sender in a thread of its own.

Deciding (parsing, matching, rendering, committing) is CPU work; sending is mostly
waiting for the outgoing server's answers. With the courier, the engine goes on with
the next batch while the previous one is being sent, so a backlog costs about the
larger of the two instead of their sum.

The courier never touches the state. It only calls the sender, notes each message in
the sent journal the moment its last byte has left (`handed_over`, the crash-safety
point), and hands every outcome back; the engine's thread applies them to the state
(delivery.py). After a failure that takes the route down (no connection, login
refused) the rest of what it was given comes back untried, "held", as the synchronous
delivery did. With `workers` > 1 it sends over that many connections at once (the
server's answers are waited for side by side); a request's messages keep their order.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import DeliveryError, PartlyDelivered
from .mailboxes import MailSender
from .model import Outgoing
from .sending import SendingProcess

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    outgoing: Outgoing
    error: DeliveryError | None = None  # None: the server took it
    partly: PartlyDelivered | None = None  # taken, but refused for some recipients
    handed_over: bool = False  # its last byte had left when the error came
    held: bool = False  # not tried: the route was down


class Courier:
    def __init__(
        self,
        sender: MailSender,
        handed_over: Callable[[str], None],
        on_done: Callable[[], None] | None = None,
        *,
        workers: int = 1,
        journal: Path | None = None,
    ) -> None:
        self.sender = sender
        self._handed_over = handed_over
        self._on_done = on_done
        # A sender that talks to a server sends from child processes (sending.py), which
        # write the sent journal themselves.
        self._journal = journal if getattr(sender, "remote", False) else None
        self._processes: dict[int, SendingProcess] = {}
        # One queue per worker; a request's messages always go to the same worker, so they
        # leave in the order they were decided.
        self._queues: list[deque[Outgoing]] = [deque() for _ in range(max(1, workers))]
        self._outcomes: list[Outcome] = []
        self._busy = 0
        self._down: DeliveryError | None = None
        self._closed = False
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, args=(queue,), name=f"mailflow-courier-{n}", daemon=True)
            for n, queue in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()

    # -- the engine's side ---------------------------------------------------------------
    def submit(self, batch: list[Outgoing]) -> None:
        with self._changed:
            self._down = None  # the engine only submits what is due: try the route again
            for outgoing in batch:
                key = (outgoing.ref or outgoing.message_id).encode()
                self._queues[zlib.crc32(key) % len(self._queues)].append(outgoing)
            self._changed.notify_all()

    def collect(self) -> list[Outcome]:
        with self._changed:
            outcomes, self._outcomes = self._outcomes, []
            return outcomes

    def _idle(self) -> bool:
        return not self._busy and not any(self._queues)

    def idle(self) -> bool:
        with self._changed:
            return self._idle()

    def wait_for_outcomes(self, timeout: float | None = None) -> None:
        """Until there is an outcome to collect or nothing is left to send."""
        with self._changed:
            self._changed.wait_for(lambda: self._outcomes or self._idle(), timeout=timeout)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=60)
        for process in self._processes.values():
            process.close()
        self._processes.clear()

    # -- the couriers' own threads -----------------------------------------------------------
    def _run(self, queue: deque[Outgoing]) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: queue or self._closed)
                if not queue:
                    return
                outgoing = queue.popleft()
                down = self._down
                self._busy += 1
            outcome = Outcome(outgoing, error=down, held=True) if down else self._send(outgoing)
            with self._changed:
                if outcome.error is not None and outcome.error.route_down:
                    self._down = outcome.error
                self._outcomes.append(outcome)
                self._busy -= 1
                done = self._idle()
                self._changed.notify_all()
            if done and self._on_done is not None:
                self._on_done()

    def _send(self, outgoing: Outgoing) -> Outcome:
        if self._journal is not None:
            return self._send_from_child(outgoing)
        noted: list[bool] = []

        def handed_over() -> None:
            self._handed_over(outgoing.message_id)
            noted.append(True)

        try:
            self.sender.send(outgoing, handed_over=handed_over)
        except PartlyDelivered as partly:
            return Outcome(outgoing, partly=partly, handed_over=bool(noted))
        except DeliveryError as error:
            return Outcome(outgoing, error=error, handed_over=bool(noted))
        except Exception as error:  # the sender failed in a way it did not foresee
            log.exception("%s: sending failed", outgoing.message_id)
            failure = DeliveryError(f"{type(error).__name__}: {error}", route_down=True)
            return Outcome(outgoing, error=failure, handed_over=bool(noted))
        return Outcome(outgoing, handed_over=bool(noted))

    def _send_from_child(self, outgoing: Outgoing) -> Outcome:
        worker = threading.get_ident()
        process = self._processes.get(worker)
        if process is None or not process.alive:
            if process is not None:
                process.close()
            assert self._journal is not None
            process = self._processes[worker] = SendingProcess(self.sender, self._journal)
        handed_over, error = process.send(outgoing)
        if isinstance(error, PartlyDelivered):
            return Outcome(outgoing, partly=error, handed_over=handed_over)
        return Outcome(outgoing, error=error, handed_over=handed_over)
